"""Attributing whole corpora: texts from files, sharded and resumable runs on one process or many."""

from captum_text_ext.corpus.texts import Text, TextFile, read_texts

__all__ = ["Text", "TextFile", "read_texts"]
