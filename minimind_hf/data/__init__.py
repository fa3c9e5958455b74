"""Data sources, builders and embedded corpora."""
