r"""Padding and masked global max pooling shared by the convolutional classifiers
(:class:`~captum_text_ext.models.TextCNN`, :class:`~captum_text_ext.models.EmbeddingCNN`).

The two helpers implement one contract: a convolution stack with receptive field :math:`R` reads an input padded with
zeros (the pad embedding) to at least :math:`R` steps, and pooling only reads the output positions whose window lies
inside the first :math:`\max(L, R)` input steps of a sentence of length :math:`L`. Whatever follows a sentence in a
padded batch is then never read, so a padded batch gives each sentence the logits it gets alone.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_text_ext.datasets.collate import lengths_to_mask

__all__ = ["checked_lengths", "masked_max_over_time", "pad_for_convolution"]


def pad_for_convolution(
    embeddings: Tensor, lengths: Optional[Tensor], min_length: int, fixed_length: Optional[int] = None
) -> Tuple[Tensor, Tensor]:
    r"""Zero the padded positions, then pad with zeros (or crop) along time.

    Args:
        embeddings: :math:`(N, T, E)` embedded tokens.
        lengths: :math:`(N,)` real tokens per sentence, each in :math:`[1, T]`; all :math:`T` when ``None``.
        min_length: pad to at least this many steps (the receptive field :math:`R`).
        fixed_length: pad or crop to exactly this many steps instead.

    Returns:
        ``(embeddings (N, T', E), lengths (N,))``: :math:`T' = \max(T, R)` or ``fixed_length``; the lengths are
        clipped to :math:`T'` and live on the embeddings' device.

    Raises:
        ValueError: when ``lengths`` has the wrong shape or a value outside :math:`[1, T]`.
    """
    batch, steps = embeddings.shape[:2]
    if lengths is None:
        lengths = torch.full((batch,), steps, dtype=torch.long, device=embeddings.device)
    else:
        lengths = checked_lengths(lengths, batch, steps).to(embeddings.device)
        embeddings = embeddings.masked_fill(~lengths_to_mask(lengths, steps).unsqueeze(-1), 0.0)
    target = fixed_length if fixed_length is not None else max(steps, min_length)
    if target > steps:
        embeddings = F.pad(embeddings, (0, 0, 0, target - steps))
    return embeddings[:, :target], lengths.clamp(max=target)


def checked_lengths(lengths: Tensor, batch: int, steps: int) -> Tensor:
    """``lengths`` when it holds one length in :math:`[1, T]` per example.

    Raises:
        ValueError: naming the argument, for a wrong shape or a length outside :math:`[1, T]` (longer than the
            padded batch, or empty).
    """
    if tuple(lengths.shape) != (batch,):
        raise ValueError(f"Expected `lengths` to have shape ({batch},), but got {tuple(lengths.shape)}")
    if lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise ValueError(f"Expected `lengths` to hold integers, but got {lengths.dtype}")
    if batch and (int(lengths.min()) < 1 or int(lengths.max()) > steps):
        raise ValueError(f"Expected `lengths` in [1, {steps}] (the padded batch has {steps} steps), but got "
                         f"{lengths.tolist()}")
    return lengths


def masked_max_over_time(features: Tensor, lengths: Tensor, min_length: int, window: int) -> Tensor:
    r"""Global max pooling over the output positions whose input window lies inside the sentence.

    Position :math:`i` of a convolution output with window :math:`w` reads input steps :math:`i, \dots, i + w - 1`;
    it is read when :math:`i \le \max(L, R) - w` for a sentence of length :math:`L` and ``min_length`` :math:`R`. The
    other positions are set to :math:`-\infty` before the maximum.

    Args:
        features: :math:`(N, C, P)` convolution outputs.
        lengths: :math:`(N,)` sentence lengths.
        min_length: :math:`R`, the length the input was padded to at least.
        window: :math:`w`, the receptive field of ``features`` (at most ``min_length``).

    Returns:
        :math:`(N, C)` pooled features.
    """
    valid = lengths.clamp(min=min_length) - window + 1
    mask = torch.arange(features.shape[-1], device=features.device).unsqueeze(0) < valid.unsqueeze(1)
    return features.masked_fill(~mask.unsqueeze(1), float("-inf")).amax(dim=-1)
