"""Data: the sources (easy-VQA, procedural scenes, TTS speech, a user's folder or hub dataset),
cleaning with a drop report, the task rows built from them, the data card, the attribute and voice
vocabularies. Imports nothing above it (no model, training or lab code)."""
