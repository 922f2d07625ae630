"""Explain a classifier's predictions for tokenized texts with the methods of the registry: :func:`explain`."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_text_ext.datasets._checks import check_choice
from captum_text_ext.datasets.subwords import aggregate_subword_scores
from captum_text_ext.decomposition import UnsupportedOperationError
from captum_text_ext.explain.layers import LayerBatch, embedding_layer, embedding_layer_name
from captum_text_ext.explain.outputs import check_output
from captum_text_ext.explain.methods import DEFAULT_METHODS, METHODS
from captum_text_ext.explain.texts import (
    UNITS,
    EncodedTexts,
    TextWarning,
    encode_texts,
    token_limit,
    unknown_words_message,
)
from captum_text_ext.models.checkpoints import TokenVocabulary
from captum_text_ext.records import TextAttribution

__all__ = ["Explanation", "check_evaluation_mode", "check_methods", "explain", "model_device", "truncation_message"]


@dataclasses.dataclass(frozen=True)
class Explanation:
    """The attributions of several texts by several methods.

    Attributes:
        records: one :class:`~captum_text_ext.records.TextAttribution` per text and method, text by text.
        skipped: method label to the reason it was skipped.
        predicted: the predicted class index per text.
        target: the explained class index per text.
        unit: ``"word"`` or ``"subword"``: what the records' tokens are
            (:data:`~captum_text_ext.explain.texts.UNITS`).
    """

    records: List[TextAttribution]
    skipped: Dict[str, str]
    predicted: List[int]
    target: List[int]
    unit: str = "word"

    def scores(self, method_label: str) -> List[Tensor]:
        """The per-token scores of one method, text by text."""
        return [r.scores for r in self.records if r.method == method_label]

    def by_text(self) -> List[List[TextAttribution]]:
        """The records of each text (one per method that ran), text by text."""
        per_text = len(self.records) // len(self.predicted) if self.predicted else 0
        return [self.records[i * per_text : (i + 1) * per_text] for i in range(len(self.predicted))]


def check_methods(methods: Sequence[str]) -> None:
    """Raises ``ValueError`` naming the keys of ``methods`` that :data:`METHODS` does not have."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"Unknown method(s) {unknown}; expected some of {list(METHODS)}")


def check_evaluation_mode(model: nn.Module) -> None:
    """Raises ``ValueError`` when a module of ``model`` is in training mode (the model is never switched)."""
    if any(module.training for module in model.modules()):
        raise ValueError(
            "Expected the model in evaluation mode (dropout in training mode makes every method's scores random); "
            "call model.eval() first — explain() never switches it for you"
        )


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters are (the CPU for a model without any)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def truncation_message(encoded: EncodedTexts, limit: Optional[int]) -> Optional[str]:
    """A sentence saying how many texts lost trailing words to the model's token limit, or ``None``."""
    cut = [(i, n) for i, n in enumerate(encoded.truncated) if n]
    if not cut:
        return None
    first = ", ".join(f"text {i} lost {n}" for i, n in cut[:5])
    return (f"{len(cut)} text(s) are longer than the model's limit of {limit} tokens and were cut to fit ({first}"
            f"{' …' if len(cut) > 5 else ''} trailing words); their scores cover the words the model read")


def _resolve_target(
    target: Union[None, int, str, Sequence[int]], predicted: Tensor, class_names: Sequence[str]
) -> Tensor:
    if target is None:
        return predicted
    if isinstance(target, str):
        if target not in class_names:
            raise ValueError(f"Expected `target` to be a class index or one of {list(class_names)}, but got {target!r}")
        target = list(class_names).index(target)
    if isinstance(target, int):
        if not 0 <= target < len(class_names):
            raise ValueError(f"Expected `target` in [0, {len(class_names)}), but got {target}")
        return torch.full_like(predicted, target)
    return torch.as_tensor(list(target), dtype=torch.long, device=predicted.device)


def _batches(count: int, batch_size: Optional[int]) -> List[slice]:
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"Expected `batch_size` >= 1 or None, but got {batch_size}")
    size = count if batch_size is None else batch_size
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def _rows(encoded: EncodedTexts, rows: slice, device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
    """``(token_ids, lengths, word_ids)`` of some texts on ``device``, cut to the longest of them."""
    lengths = encoded.lengths[rows]
    width = int(lengths.max())
    return (encoded.token_ids[rows, :width].to(device), lengths.to(device),
            encoded.word_ids[rows, :width].to(device))


def explain(
    model: nn.Module,
    vocabulary: TokenVocabulary,
    token_lists: Sequence[Sequence[str]],
    class_names: Sequence[str],
    methods: Sequence[str] = DEFAULT_METHODS,
    target: Union[None, int, str, Sequence[int]] = None,
    true_labels: Optional[Sequence[int]] = None,
    name_prefix: str = "",
    *,
    layer: Optional[str] = None,
    unit: str = "word",
    batch_size: Optional[int] = None,
    progress: bool = False,
    output: str = "logit",
) -> Explanation:
    """Attribute every text with every applicable method of :data:`METHODS`, at the model's token embedding layer.

    The model reads ``model(token_ids, lengths)`` on the device of its parameters and must be in evaluation mode; it
    is not changed. A text longer than the model's limit (:func:`~captum_text_ext.explain.texts.token_limit`) is cut
    to fit, and words the model does not know are explained as its unknown token; both are said in a warning.

    Args:
        model: a classifier of token ids with a token embedding layer.
        vocabulary: its :class:`~captum_text_ext.datasets.Vocabulary`, or its
            :class:`~captum_text_ext.datasets.wordpiece.WordPieceTokenizer`.
        token_lists: the tokenized texts (each non-empty), as words.
        class_names: the model's class names.
        methods: keys of :data:`METHODS`.
        target: the class to explain: ``None`` (the predicted class), an index or name for all texts, or one
            index per text.
        true_labels: gold labels, shown in the report when given.
        name_prefix: put before each method's label (to tell models apart in one report).
        layer: the qualified name of the layer the methods attribute to (default:
            :func:`~captum_text_ext.explain.layers.embedding_layer_name`).
        unit: ``"word"`` (a word's score is the sum of its subwords' scores; special tokens are left out) or
            ``"subword"`` (one score per token the model reads, ``[CLS]`` and ``[SEP]`` included). The same for a
            word vocabulary.
        batch_size: texts per batch (``None``: all in one batch).
        progress: show a progress bar over methods and batches.
        output: what every method explains (:data:`~captum_text_ext.explain.outputs.OUTPUTS`): ``"logit"``, the
            target logit, or ``"logit_difference"``, the target logit minus the largest other logit at the input.

    Raises:
        ValueError: for an unknown method, unit, output or target, an empty text, a layer the model does not have, or a
            model in training mode.
    """
    check_methods(methods)
    check_choice("unit", unit, UNITS)
    check_output(output)
    check_evaluation_mode(model)
    limit = token_limit(model)
    encoded = encode_texts(vocabulary, token_lists, limit)
    for message in (truncation_message(encoded, limit), unknown_words_message(encoded, vocabulary.unk_token or "")):
        if message is not None:
            warnings.warn(message, TextWarning, stacklevel=2)
    layer_name = layer if layer is not None else embedding_layer_name(model)
    module = None if layer_name is None else embedding_layer(model, layer_name)
    device = model_device(model)
    chunks = _batches(len(token_lists), batch_size)
    with torch.no_grad():
        probability = torch.cat([model(*_rows(encoded, rows, device)[:2]).softmax(dim=-1) for rows in chunks])
    predicted = probability.argmax(dim=-1)
    targets = _resolve_target(target, predicted, class_names)
    per_method: Dict[str, Tuple[List[Tensor], bool]] = {}
    skipped: Dict[str, str] = {}
    bar = tqdm(total=len(methods) * len(chunks), desc="explain", unit="batch", disable=not progress, leave=False)
    with bar:
        for key in methods:
            method = METHODS[key]
            label = name_prefix + method.label
            reason = method.skip_reason(model, module)
            if module is None or reason is not None:
                skipped[label] = str(reason)
                bar.update(len(chunks))
                continue
            try:
                scores = []
                for rows in chunks:
                    ids, lengths, word_ids = _rows(encoded, rows, device)
                    batch = LayerBatch(module, ids, lengths, probability.shape[1], output=output)
                    per_token = method.token_scores(model, batch, targets[rows]).detach()
                    scores += list(aggregate_subword_scores(per_token, word_ids) if unit == "word" else per_token)
                    bar.update(1)
            except UnsupportedOperationError as unsupported:
                skipped[label] = str(unsupported)
                continue
            per_method[label] = scores, method.signed
    records = [
        TextAttribution(
            list(tokens), scores[i][: len(tokens)].cpu().contiguous(), label,
            target=class_names[int(targets[i])],
            predicted=class_names[int(predicted[i])],
            probability=float(probability[i, predicted[i]]),
            true_label=None if true_labels is None else class_names[true_labels[i]],
            signed=signed,
            word_ids=None if unit == "word" else encoded.word_ids[i, : len(tokens)].tolist(),
        )
        for i, tokens in enumerate(encoded.words if unit == "word" else encoded.tokens)
        for label, (scores, signed) in per_method.items()
    ]
    return Explanation(records, skipped, predicted.tolist(), targets.tolist(), unit)
