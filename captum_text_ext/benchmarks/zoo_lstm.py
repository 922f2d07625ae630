"""The zoo's LSTM classifiers as the benchmarks that explain them load them: from the cache, never trained there."""

from __future__ import annotations

from typing import Optional, Tuple

from captum_text_ext.datasets import Vocabulary
from captum_text_ext.datasets._paths import PathLike
from captum_text_ext.models import LSTMClassifier
from captum_text_ext.models.zoo import load_zoo_model

__all__ = ["load_zoo_lstm"]


def load_zoo_lstm(name: str, cache_dir: Optional[PathLike] = None) -> Tuple[LSTMClassifier, Vocabulary]:
    """The cached zoo model ``name`` (in eval mode) and its vocabulary; it is not trained here.

    Raises:
        FileNotFoundError: when it is not in the cache (the message gives the command that trains it).
        ValueError: when the checkpoint holds another architecture than :class:`~captum_text_ext.models.LSTMClassifier`.
    """
    checkpoint = load_zoo_model(name, cache_dir, train_if_missing=False)
    model = checkpoint.model
    if not isinstance(model, LSTMClassifier):
        raise ValueError(f"Expected {name} to hold an LSTMClassifier, but its checkpoint holds {type(model).__name__}")
    return model.eval(), checkpoint.word_vocabulary
