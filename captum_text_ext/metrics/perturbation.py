r"""Removing tokens from embedded sentences, and the model's target probability on many perturbed copies at once.

Every faithfulness metric of :mod:`captum_text_ext.metrics` asks the same question many times: what is the model's
probability for the target class when only some tokens of a sentence are kept? :func:`target_probabilities` answers
it for :math:`S` keep-masks of :math:`N` sentences in batches of ``batch_size`` rows (no Python loop over sentences).

**The model.** ``forward_func(embeddings, lengths, *additional_forward_args)`` returns logits :math:`(N, C)` (or
probabilities, with ``apply_softmax=False``); every zoo model's ``forward_embeddings`` has this form. Wrap a model
that takes no lengths as ``lambda embeddings, lengths: model(embeddings)``; such a model reads every position, so
use it only with removals that keep the length (``"zero"`` or a replacement embedding).

**Removal** (the ``removal`` argument, :data:`REMOVALS`):

- ``"zero"`` (the default): the removed token's embedding is set to zero (Arras et al. 2017); the sentence keeps its
  length. Zero embeddings are out of distribution for a model that never saw them, and they are the very
  perturbation Occlusion, FeatureAblation, ShapleyValueSampling and Lime estimate, which favours those methods by
  construction (Madsen et al. 2024).
- ``"unk"``: the removed token is replaced by the ``<unk>`` token's embedding, and ``"pad"``: by the pad token's
  embedding — tokens the model saw in training, so the perturbed sentence stays closer to its distribution. The
  metrics read embeddings, not token ids, so these need the embedding vector itself, given as ``replacement``
  (:func:`replacement_embedding` takes it from the model's ``nn.Embedding`` and vocabulary). A pad embedding trained
  with ``padding_idx`` (every zoo model) is zero, and then ``"pad"`` gives the numbers of ``"zero"``.
- a tensor :math:`(E,)`: the removed token's embedding is replaced by it; the sentence keeps its length.
- ``"drop"``: the token is deleted; the kept tokens move left in their order, the length shrinks, and the freed
  positions hold zeros. A sentence whose every token is dropped is read as one zero embedding (length 1), because
  no model can read an empty sequence.

Positions past a sentence's length are never changed by ``"zero"`` or a replacement.

References:
    A. Madsen, S. Reddy, S. Chandar. Faithfulness Measurable Masked Language Models. ICML 2024.
    https://arxiv.org/abs/2310.07819
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_text_ext.datasets.vocab import Vocabulary

__all__ = [
    "REMOVALS",
    "Removal",
    "apply_removal",
    "check_removal",
    "check_target",
    "replacement_embedding",
    "resolve_removal",
    "select_example_args",
    "target_probabilities",
]

Removal = Union[str, Tensor]
"""A key of :data:`REMOVALS`, or a replacement embedding :math:`(E,)`."""
REMOVALS: Dict[str, str] = {
    "zero": "the token's embedding set to zero",
    "unk": "the token replaced by the <unk> token's embedding",
    "pad": "the token replaced by the pad token's embedding",
    "drop": "the token deleted (the sentence shortens)",
}
"""The named removals (module docstring), with the words reports print."""
_REPLACED = ("unk", "pad")


def resolve_removal(removal: Removal, replacement: Optional[Tensor], embedding_dim: Optional[int]) -> Removal:
    """What :func:`apply_removal` applies: ``"zero"``, ``"drop"``, or a replacement embedding :math:`(E,)`.

    Args:
        removal: a key of :data:`REMOVALS` or a replacement embedding.
        replacement: the ``<unk>`` (for ``"unk"``) or pad (for ``"pad"``) token's embedding :math:`(E,)`; required
            with those two and refused with any other removal, so that it is never silently ignored.
        embedding_dim: :math:`E`; ``None`` checks the setting without the shapes.

    Raises:
        ValueError: for an unknown removal, ``"unk"`` / ``"pad"`` without ``replacement``, a ``replacement`` with
            another removal, or a vector of another shape.

    Examples:
        >>> resolve_removal("unk", torch.tensor([0.5, -1.0]), 2)
        tensor([ 0.5000, -1.0000])
        >>> resolve_removal("zero", None, 2)
        'zero'
    """
    if isinstance(removal, str) and removal in _REPLACED:
        if replacement is None:
            raise ValueError(
                f"removal={removal!r} replaces each removed token by the {'<unk>' if removal == 'unk' else 'pad'} "
                "token's embedding, which the metrics cannot know from embeddings: pass it as `replacement=` "
                f"(e.g. replacement_embedding(model.embedding, vocabulary, {removal!r}))"
            )
        if not isinstance(replacement, Tensor) or replacement.dim() != 1:
            raise ValueError(f"Expected `replacement` to be one embedding vector (E,), but got {replacement!r}")
        check_removal(replacement, replacement.shape[0] if embedding_dim is None else embedding_dim)
        return replacement
    if replacement is not None:
        raise ValueError(f"`replacement` is read only with removal='unk' or 'pad', but removal={removal!r}")
    if embedding_dim is None:
        if not isinstance(removal, Tensor):
            check_removal(removal, 0)
        return removal
    check_removal(removal, embedding_dim)
    return removal


def replacement_embedding(embedding: nn.Module, vocabulary: Vocabulary, removal: str) -> Tensor:
    """The embedding vector of the ``<unk>`` (``removal="unk"``) or pad (``"pad"``) token: the ``replacement`` of
    those removals.

    Args:
        embedding: the model's token embedding, an ``nn.Embedding``.
        vocabulary: the vocabulary its ids come from.
        removal: ``"unk"`` or ``"pad"``.

    Raises:
        TypeError: for a layer that is not an ``nn.Embedding`` (a transformer's embeddings module adds positions
            and normalizes, so a token's vector there is not one vector: pass a replacement of your own).
        ValueError: for another removal, or a vocabulary without that token.
    """
    if removal not in _REPLACED:
        raise ValueError(f"Expected removal 'unk' or 'pad', but got {removal!r}")
    if not isinstance(embedding, nn.Embedding):
        raise TypeError(
            f"Expected an nn.Embedding, whose rows are the tokens' embeddings, but got {type(embedding).__name__}; "
            "where a token's vector depends on its position, build the replacement yourself"
        )
    index = vocabulary.unk_index if removal == "unk" else vocabulary.pad_index
    return embedding.weight[index].detach().clone()
ForwardFunc = Callable[..., Tensor]
"""``forward_func(embeddings (N, T, E), lengths (N,), *additional_forward_args) -> (N, C)``."""


def check_removal(removal: Removal, embedding_dim: int) -> None:
    """Raise ``ValueError`` unless ``removal`` is ``"zero"``, ``"drop"`` or a tensor of shape ``(embedding_dim,)``
    (what :func:`apply_removal` applies; :func:`resolve_removal` turns ``"unk"`` and ``"pad"`` into their tensor)."""
    if isinstance(removal, Tensor):
        if tuple(removal.shape) != (embedding_dim,):
            raise ValueError(f"Expected a replacement embedding of shape ({embedding_dim},), but got "
                             f"{tuple(removal.shape)}")
    elif removal in _REPLACED:
        raise ValueError(f"removal={removal!r} needs the token's embedding: resolve it with resolve_removal(removal, "
                         "replacement, embedding_dim)")
    elif removal not in ("zero", "drop"):
        raise ValueError(f"Expected `removal` to be one of {list(REMOVALS)} or a replacement embedding tensor (E,), "
                         f"but got {removal!r}")


def check_target(target: Union[int, Sequence[int], Tensor], batch: int, device: torch.device) -> Tensor:
    """Captum's per-example target forms (an int, a list or a 1-D tensor of class indices) as a :math:`(N,)` tensor.

    Raises:
        ValueError: for a target that does not give one class per example.
    """
    if isinstance(target, bool) or target is None:
        raise ValueError(f"Expected `target` to be a class index or one index per example, but got {target!r}")
    if isinstance(target, int):
        return torch.full((batch,), target, dtype=torch.long, device=device)
    result = torch.as_tensor(target, dtype=torch.long, device=device).reshape(-1)
    if result.numel() == 1:
        return result.expand(batch).clone()
    if result.numel() != batch:
        raise ValueError(f"Expected one target per example ({batch}), but got {result.numel()}")
    return result


def apply_removal(embeddings: Tensor, lengths: Tensor, keep: Tensor, removal: Removal) -> Tuple[Tensor, Tensor]:
    """Remove the tokens where ``keep`` is False.

    Args:
        embeddings: :math:`(N, T, E)` embedded sentences.
        lengths: :math:`(N,)` their lengths.
        keep: :math:`(N, T)` bool, True at the tokens to keep (ignored past each length).
        removal: see the module docstring.

    Returns:
        ``(embeddings, lengths)`` of the perturbed sentences (new tensors).

    Examples:
        >>> x = torch.arange(1.0, 4.0).reshape(1, 3, 1)
        >>> keep = torch.tensor([[True, False, True]])
        >>> apply_removal(x, torch.tensor([3]), keep, "zero")[0].flatten().tolist()
        [1.0, 0.0, 3.0]
        >>> y, n = apply_removal(x, torch.tensor([3]), keep, "drop")
        >>> y.flatten().tolist(), n.tolist()
        ([1.0, 3.0, 0.0], [2])
    """
    check_removal(removal, embeddings.shape[-1])
    steps = embeddings.shape[1]
    real = torch.arange(steps, device=embeddings.device).unsqueeze(0) < lengths.to(embeddings.device).unsqueeze(1)
    keep = keep.to(embeddings.device)
    if isinstance(removal, Tensor):
        kept = keep | ~real
        return torch.where(kept.unsqueeze(-1), embeddings, removal.to(embeddings)), lengths.clone()
    if removal == "zero":
        return embeddings * (keep | ~real).unsqueeze(-1).to(embeddings.dtype), lengths.clone()
    kept = keep & real
    moved = torch.argsort((~kept).to(torch.int8), dim=1, stable=True)
    gathered = embeddings.gather(1, moved.unsqueeze(-1).expand_as(embeddings))
    new_lengths = kept.sum(1)
    inside = torch.arange(steps, device=embeddings.device).unsqueeze(0) < new_lengths.unsqueeze(1)
    out = gathered * inside.unsqueeze(-1).to(embeddings.dtype)
    return out, torch.clamp(new_lengths, min=1).to(lengths.dtype).to(lengths.device)


def select_example_args(args: Tuple[Any, ...], index: Tensor, batch: int) -> Tuple[Any, ...]:
    """Per-example arguments (tensors with a first dimension of ``batch``) at ``index``; others as they are."""
    return tuple(a[index.to(a.device)] if isinstance(a, Tensor) and a.dim() and a.shape[0] == batch else a
                 for a in args)


@torch.no_grad()
def target_probabilities(
    forward_func: ForwardFunc,
    embeddings: Tensor,
    lengths: Tensor,
    keep: Tensor,
    target: Tensor,
    removal: Removal = "zero",
    additional_forward_args: Optional[Tuple[Any, ...]] = None,
    labels: Optional[Tensor] = None,
    apply_softmax: bool = True,
    batch_size: int = 256,
    progress: bool = False,
) -> Tuple[Tensor, Optional[Tensor]]:
    """The target probability of :math:`S` perturbed copies of :math:`N` sentences, in batches.

    Args:
        forward_func: see the module docstring.
        embeddings: :math:`(N, T, E)`.
        lengths: :math:`(N,)`.
        keep: :math:`(S, N, T)` bool keep-masks.
        target: :math:`(N,)` class indices.
        removal: see the module docstring.
        additional_forward_args: passed after the lengths; tensors whose first dimension is :math:`N` follow their
            example.
        labels: :math:`(N,)` true classes, to also return whether each copy is classified correctly.
        apply_softmax: the model returns logits (True) or probabilities (False).
        batch_size: rows per forward call.
        progress: show a progress bar.

    Returns:
        ``(probability, correct)``: :math:`(S, N)` float64 target probabilities, and :math:`(S, N)` bool (``None``
        without ``labels``).
    """
    masks, batch = keep.shape[0], embeddings.shape[0]
    args = tuple(additional_forward_args or ())
    flat_keep = keep.reshape(masks * batch, -1)
    example = torch.arange(batch, device=embeddings.device).repeat(masks)
    probability = torch.empty(masks * batch, dtype=torch.float64, device=embeddings.device)
    correct = torch.empty(masks * batch, dtype=torch.bool, device=embeddings.device)
    starts = range(0, masks * batch, max(1, batch_size))
    for start in tqdm(starts, desc="perturbed forward passes", disable=not progress, leave=False):
        rows = slice(start, start + batch_size)
        index = example[rows]
        x, n = apply_removal(embeddings[index], lengths[index.to(lengths.device)], flat_keep[rows], removal)
        output = forward_func(x, n, *select_example_args(args, index, batch))
        scores = output.softmax(-1) if apply_softmax else output
        probability[rows] = scores.gather(1, target[index].unsqueeze(1).to(scores.device)).squeeze(1).double()
        if labels is not None:
            correct[rows] = scores.argmax(-1) == labels[index].to(scores.device)
    shaped = probability.reshape(masks, batch)
    return shaped, (correct.reshape(masks, batch) if labels is not None else None)
