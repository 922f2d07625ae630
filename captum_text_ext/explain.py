"""Explain a text classifier's predictions with every applicable attribution method.

This is what ``captum-text-ext demo`` and ``captum-text-ext explain`` run. :data:`METHODS` lists the methods the
package can apply today, each with the reduction that turns its attribution into one score per token, and the
rule that decides whether it applies to a model. A method that does not apply is skipped with its reason, never
replaced by another: every method needs an ``embedding`` layer with a ``forward_embeddings`` twin, and
:class:`~captum_text_ext.LSTMLRP` is skipped on a model with an op its rules do not cover (the
:class:`~captum_text_ext.decomposition.UnsupportedOperationError` it raises is the reason shown). The package's other
methods join this table as they are released.

Reductions: methods that multiply by the input (Integrated Gradients, LRP) are summed over the embedding, keeping
their sign (red supports the target, blue speaks against it); pure gradients (Saliency) are reduced by their ℓ2
norm, which has no sign.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from captum.attr import IntegratedGradients, Saliency
from torch import Tensor, nn

from captum_text_ext.attr import LSTMLRP
from captum_text_ext.datasets import Vocabulary, kim_tokenize, pad_sequences
from captum_text_ext.decomposition import UnsupportedOperationError
from captum_text_ext.datasets._paths import PathLike
from captum_text_ext.models.checkpoints import Checkpoint, load_checkpoint
from captum_text_ext.visualization import TextAttribution, plot_comparison, render_html, save_png

# (model, embeddings (N, T, E) requiring grad, lengths (N,), target (N,)) -> per-token scores (N, T)
AttributeFn = Callable[[nn.Module, Tensor, Tensor, Tensor], Tensor]


@dataclasses.dataclass(frozen=True)
class Method:
    """An attribution method as the reports use it.

    Attributes:
        key: the name on the command line.
        label: the name shown in reports.
        attribute: computes per-token scores for a batch.
        reduction: how the attribution becomes one score per token.
    """

    key: str
    label: str
    attribute: AttributeFn
    reduction: str

    def skip_reason(self, model: nn.Module) -> Optional[str]:
        """Why the method does not apply to ``model``, or ``None`` when it does."""
        if not callable(getattr(model, "forward_embeddings", None)) or not isinstance(
            getattr(model, "embedding", None), nn.Embedding
        ):
            return (
                f"{self.label} attributes at the token embeddings; {type(model).__name__} has no `embedding` layer "
                "with a `forward_embeddings` twin (a bag-of-words model has no per-token embedding)"
            )
        return None


def _saliency(model: nn.Module, embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
    gradients = Saliency(model.forward_embeddings).attribute(
        embeddings, target=target, additional_forward_args=(lengths,), abs=True
    )
    return gradients.norm(dim=-1)


def _lrp(bias_factor: float) -> AttributeFn:
    def attribute(model: nn.Module, embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
        relevance = LSTMLRP(model.forward_embeddings, epsilon=1e-3, bias_factor=bias_factor).attribute(
            embeddings, target=target, additional_forward_args=(lengths,)
        )
        return relevance.sum(dim=-1)

    return attribute


def _integrated_gradients(model: nn.Module, embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
    attributions = IntegratedGradients(model.forward_embeddings).attribute(
        embeddings, target=target, additional_forward_args=(lengths,), n_steps=32, internal_batch_size=2048
    )
    return attributions.sum(dim=-1)


METHODS: Dict[str, Method] = {
    method.key: method
    for method in (
        Method("saliency", "Saliency", _saliency, "ℓ2 norm of the gradient over the embedding (unsigned)"),
        Method(
            "integrated_gradients",
            "Integrated Gradients",
            _integrated_gradients,
            "sum over the embedding (signed); zero baseline, 32 steps",
        ),
        Method("lrp", "LRP", _lrp(0.0), "sum over the embedding (signed); LSTMLRP, epsilon 1e-3, bias_factor 0"),
        Method(
            "lrp_cons", "LRP_cons", _lrp(1.0), "sum over the embedding (signed); LSTMLRP, epsilon 1e-3, bias_factor 1"
        ),
    )
}


@dataclasses.dataclass(frozen=True)
class Explanation:
    """The attributions of several sentences by several methods.

    Attributes:
        records: one :class:`~captum_text_ext.visualization.TextAttribution` per sentence and method, sentence by
            sentence.
        skipped: method label to the reason it was skipped.
        predicted: the predicted class index per sentence.
        target: the explained class index per sentence.
    """

    records: List[TextAttribution]
    skipped: Dict[str, str]
    predicted: List[int]
    target: List[int]

    def scores(self, method_label: str) -> List[Tensor]:
        """The per-token scores of one method, sentence by sentence."""
        return [r.scores for r in self.records if r.method == method_label]


def tokenize_for(dataset: Optional[str]) -> Callable[[str], List[str]]:
    """The tokenizer that matches a zoo dataset: Kim (2014) with case kept for MR and AG News, lowercased for the
    SST and synthetic models (whose vocabularies are lowercase)."""
    if dataset in ("mr", "ag_news"):
        return kim_tokenize
    return lambda text: kim_tokenize(text, lower=True)


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
    return torch.as_tensor(list(target), dtype=torch.long)


def explain(
    model: nn.Module,
    vocabulary: Vocabulary,
    token_lists: Sequence[Sequence[str]],
    class_names: Sequence[str],
    methods: Sequence[str] = tuple(METHODS),
    target: Union[None, int, str, Sequence[int]] = None,
    true_labels: Optional[Sequence[int]] = None,
    name_prefix: str = "",
) -> Explanation:
    """Attribute every sentence with every applicable method, in one batch per method.

    Args:
        model: a classifier with ``embedding`` and ``forward_embeddings(embeddings, lengths)``.
        vocabulary: encodes the tokens.
        token_lists: the tokenized sentences (each non-empty).
        class_names: the model's class names.
        methods: keys of :data:`METHODS`.
        target: the class to explain: ``None`` (the predicted class), an index or name for all sentences, or one
            index per sentence.
        true_labels: gold labels, shown in the report when given.
        name_prefix: put before each method's label (to tell models apart in one report).

    Raises:
        ValueError: for an unknown method or target, or an empty sentence.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"Unknown method(s) {unknown}; expected some of {list(METHODS)}")
    ids, lengths = pad_sequences([vocabulary.encode(tokens) for tokens in token_lists], vocabulary.pad_index)
    model.eval()
    with torch.no_grad():
        probabilities = model(ids, lengths).softmax(dim=-1)
    predicted = probabilities.argmax(dim=-1)
    targets = _resolve_target(target, predicted, class_names)
    per_method: Dict[str, Tensor] = {}
    skipped: Dict[str, str] = {}
    for key in methods:
        method = METHODS[key]
        reason = method.skip_reason(model)
        if reason is not None:
            skipped[name_prefix + method.label] = reason
            continue
        with torch.no_grad():
            embeddings = model.embedding(ids)
        try:
            scores = method.attribute(model, embeddings.requires_grad_(), lengths, targets)
        except UnsupportedOperationError as unsupported:
            skipped[name_prefix + method.label] = str(unsupported)
            continue
        per_method[name_prefix + method.label] = scores.detach()
    records = []
    for i, tokens in enumerate(token_lists):
        for label, scores in per_method.items():
            records.append(
                TextAttribution(
                    list(tokens),
                    scores[i, : len(tokens)].contiguous(),
                    label,
                    target=class_names[int(targets[i])],
                    predicted=class_names[int(predicted[i])],
                    probability=float(probabilities[i, predicted[i]]),
                    true_label=None if true_labels is None else class_names[true_labels[i]],
                )
            )
    return Explanation(records, skipped, predicted.tolist(), targets.tolist())


def method_table(methods: Mapping[str, Method] = METHODS) -> List[Tuple[str, str, str]]:
    """``(key, label, reduction)`` for every method, for reports and ``--help``."""
    return [(m.key, m.label, m.reduction) for m in methods.values()]


def save_sentence_pngs(
    out_dir: Path, explanation: Explanation, token_lists: Sequence[Sequence[str]], prefix: str
) -> List[Path]:
    """One PNG per sentence comparing the methods of ``explanation``; returns the paths written."""
    paths = []
    for i, tokens in enumerate(token_lists):
        sentence = [r for r in explanation.records if r.tokens == list(tokens)]
        if not sentence:
            continue
        figure = plot_comparison(
            list(tokens),
            {r.method.split(" · ", 1)[-1]: r.scores for r in sentence},
            title=f"{prefix}: sentence {i + 1}",
            target=sentence[0].target,
            prediction=sentence[0].predicted,
            probability=sentence[0].probability,
        )
        path = out_dir / f"{re.sub(r'[^a-z0-9]+', '-', prefix.lower()).strip('-')}-sentence-{i + 1}.png"
        save_png(figure, path)
        paths.append(path)
    return paths


def explain_checkpoint(
    checkpoint_path: PathLike,
    texts: Sequence[str],
    out_dir: PathLike,
    methods: Sequence[str] = tuple(METHODS),
    target: Union[None, int, str] = None,
) -> Dict[str, Any]:
    """``captum-text-ext explain``: explain raw texts with a saved model; writes ``report.html``, PNGs and
    ``report.json`` to ``out_dir``.

    Raises:
        ValueError: for an unreadable checkpoint, an unknown method or target, or a text that tokenizes to nothing.
    """
    checkpoint = load_checkpoint(checkpoint_path)
    tokenize = tokenize_for(checkpoint.metadata.get("dataset"))
    token_lists = []
    for text in texts:
        tokens = tokenize(text)
        if not tokens:
            raise ValueError(f"The text {text!r} tokenizes to nothing; give a text with at least one word")
        token_lists.append(tokens)
    class_names = checkpoint.metadata.get("class_names") or [str(c) for c in range(_num_classes(checkpoint))]
    explanation = explain(checkpoint.model, checkpoint.vocabulary, token_lists, class_names, methods, target)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = checkpoint.metadata.get("zoo_name") or Path(checkpoint_path).stem
    pngs = save_sentence_pngs(out, explanation, token_lists, name)
    skipped = "".join(f"<li>{html.escape(m)}: {html.escape(r)}</li>" for m, r in explanation.skipped.items())
    preamble = f"<p>Model: {html.escape(name)} (sha256 {checkpoint.sha256[:16]}…)</p>"
    if skipped:
        preamble += f"<h2>Skipped methods</h2><ul>{skipped}</ul>"
    if not explanation.records:
        raise ValueError(f"No method applies to this model: {explanation.skipped}")
    html_path = out / "report.html"
    html_path.write_text(render_html(explanation.records, f"captum-text-ext explain: {name}", preamble),
                         encoding="utf-8")
    report = {
        "checkpoint": str(checkpoint_path),
        "sha256": checkpoint.sha256,
        "sentences": [
            {"tokens": list(tokens), "predicted": class_names[p], "target": class_names[t],
             "scores": {r.method: r.scores.tolist() for r in explanation.records if r.tokens == list(tokens)}}
            for tokens, p, t in zip(token_lists, explanation.predicted, explanation.target)
        ],
        "skipped": explanation.skipped,
        "paths": [str(html_path), str(out / "report.json"), *map(str, pngs)],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return report


def _num_classes(checkpoint: Checkpoint) -> int:
    return int(checkpoint.config["num_classes"])
