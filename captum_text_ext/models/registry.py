"""The reference architectures by name: build a model from ``(architecture, config)`` and name a model's
architecture, as checkpoints, the command line and the tests do."""

from __future__ import annotations

import inspect
from typing import Any, Dict, Mapping, Type

from torch import nn

from captum_text_ext.models.bag_of_words import BagOfWordsMLP
from captum_text_ext.models.embedding_cnn import EmbeddingCNN
from captum_text_ext.models.kim_cnn import KimCNN
from captum_text_ext.models.lstm_classifier import LSTMClassifier
from captum_text_ext.models.text_cnn import TextCNN
from captum_text_ext.models.transformer_classifier import TransformerClassifier

__all__ = ["ARCHITECTURES", "architecture_name", "build_model"]

ARCHITECTURES: Dict[str, Type[nn.Module]] = {
    "lstm": LSTMClassifier,
    "textcnn": TextCNN,
    "kimcnn": KimCNN,
    "bow_mlp": BagOfWordsMLP,
    "embedding_cnn": EmbeddingCNN,
    "transformer": TransformerClassifier,
}
"""Architecture name → model class. Every class takes ``(token_ids, lengths=None)`` and has a ``config`` property
holding its constructor's keyword arguments."""


def build_model(architecture: str, config: Mapping[str, Any]) -> nn.Module:
    """A freshly initialised model of a registered architecture.

    Args:
        architecture: a key of :data:`ARCHITECTURES`.
        config: the constructor's keyword arguments, e.g. a model's ``config``.

    Returns:
        ``ARCHITECTURES[architecture](**config)``.

    Raises:
        ValueError: for an unknown architecture (the message lists the known ones), or when ``config`` has keys the
            constructor does not take or lacks required ones (the message names them).

    Examples:
        >>> model = build_model("bow_mlp", {"vocab_size": 10, "num_classes": 2, "hidden_sizes": [4]})
        >>> type(model).__name__, architecture_name(model)
        ('BagOfWordsMLP', 'bow_mlp')
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"Expected `architecture` to be one of {sorted(ARCHITECTURES)}, but got {architecture!r}")
    cls = ARCHITECTURES[architecture]
    parameters = inspect.signature(cls).parameters
    unexpected = sorted(set(config) - set(parameters))
    missing = [name for name, p in parameters.items() if p.default is inspect.Parameter.empty and name not in config]
    if unexpected or missing:
        raise ValueError(
            f"Expected `config` for {architecture!r} to hold keyword arguments of {cls.__name__} "
            f"({', '.join(parameters)}), but got unexpected keys {unexpected} and lacks required keys {missing}"
        )
    return cls(**config)


def architecture_name(model: nn.Module) -> str:
    """The :data:`ARCHITECTURES` key of ``model``'s exact class.

    Raises:
        TypeError: when the class is not registered (subclasses are not: their constructors may differ).
    """
    for name, cls in ARCHITECTURES.items():
        if type(model) is cls:
            return name
    known = ", ".join(cls.__name__ for cls in ARCHITECTURES.values())
    raise TypeError(f"Expected a model of a registered architecture ({known}), but got {type(model).__name__}")
