"""The applications the seed article names, built on a trained run: ``ask`` (typed or spoken
questions about a picture, with a spoken answer)."""
