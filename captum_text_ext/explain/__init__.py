"""Explain a text classifier's predictions with every applicable attribution method: the method registry.

This is what ``captum-text-ext demo``, ``explain`` and ``attribute`` run, and the method table of the leaderboard
(``captum-text-ext benchmark leaderboard``); writing their reports is :mod:`captum_text_ext.report`'s job, and this
package imports no report-writing code.

- :mod:`~captum_text_ext.explain.methods`: :data:`METHODS`, every method with its reduction to one score per token,
  its settings and the rules that decide whether it applies to a model;
- :mod:`~captum_text_ext.explain.layers`: where the methods attribute — the output of the model's named token
  embedding layer — so that every method applies to any model that reads token ids and has one;
- :mod:`~captum_text_ext.explain.outputs`: what every method explains, the same for all: the target logit, or the
  target logit minus the largest other logit;
- :mod:`~captum_text_ext.explain.texts`: words to token ids (word vocabularies and WordPiece tokenizers), the words
  the model does not know, texts longer than it reads;
- :mod:`~captum_text_ext.explain.explanation`: :func:`explain`, the records of many texts by many methods, per word
  or per subword.

Examples:
    >>> import torch
    >>> from captum_text_ext.datasets import Vocabulary
    >>> from captum_text_ext.models import LSTMClassifier
    >>> _ = torch.manual_seed(0)
    >>> vocabulary = Vocabulary(["<pad>", "<unk>", "a", "good", "film"])
    >>> model = LSTMClassifier(len(vocabulary), embedding_dim=4, hidden_size=3, num_classes=2).eval()
    >>> explanation = explain(model, vocabulary, [["a", "good", "film"]], ["negative", "positive"],
    ...                       methods=["integrated_gradients", "lrp"], target="positive")
    >>> [(r.method, tuple(r.scores.shape)) for r in explanation.records]
    [('Integrated Gradients', (3,)), ('LRP', (3,))]
"""

from captum_text_ext.explain.explanation import Explanation, explain
from captum_text_ext.explain.layers import LayerBatch, LayerForward, embedding_layer, embedding_layer_name
from captum_text_ext.explain.methods import (
    CD_BIAS_PRODUCT,
    DEFAULT_METHODS,
    LIME_SAMPLES,
    METHODS,
    PERTURBATIONS_PER_EVAL,
    SHAPLEY_SAMPLES,
    UNSIGNED_REDUCTIONS,
    Method,
    method_table,
)
from captum_text_ext.explain.outputs import OUTPUTS, ContrastedOutput, largest_other_class
from captum_text_ext.explain.texts import (
    UNITS,
    EncodedTexts,
    TextWarning,
    encode_texts,
    tokenize_for,
    tokenize_texts,
)

__all__ = [
    "CD_BIAS_PRODUCT",
    "DEFAULT_METHODS",
    "LIME_SAMPLES",
    "METHODS",
    "OUTPUTS",
    "PERTURBATIONS_PER_EVAL",
    "SHAPLEY_SAMPLES",
    "UNITS",
    "UNSIGNED_REDUCTIONS",
    "ContrastedOutput",
    "EncodedTexts",
    "Explanation",
    "LayerBatch",
    "LayerForward",
    "Method",
    "TextWarning",
    "embedding_layer",
    "embedding_layer_name",
    "encode_texts",
    "explain",
    "largest_other_class",
    "method_table",
    "tokenize_for",
    "tokenize_texts",
]
