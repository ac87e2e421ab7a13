"""mbmlab: a notebook-driven research workbench for small multimodal GPT models."""

__version__ = "0.1.0"
