r"""Fine-tuning with random token removal, so that the removal metrics ask a model that has seen removed tokens.

The removal metrics (comprehensiveness, sufficiency, deletion and insertion curves, NAOPC) zero a token's embedding,
an input the model never saw in training: a drop in its output may measure that the input left the training
distribution rather than that the token mattered (Madsen et al., ICML 2024). F-Fidelity (Zheng et al., ICLR 2025)
fine-tunes the classifier on training inputs with *random* features removed (explanation-agnostic, so no
explanation's ranking leaks into the model, unlike ROAR) and evaluates removals with the fine-tuned model.

Here, for each training sentence of length :math:`L` in each batch, a count :math:`K \sim \mathcal{U}\{0, \dots,
L\}` and then :math:`K` of its positions, uniformly, are removed by zeroing their embedding:

.. math::

    \tilde{e}_t = m_t\, e_t, \qquad m_t = 0 \text{ for the } K \text{ chosen positions}, \ 1 \text{ otherwise},

and the model is trained on :math:`(\tilde{e}, y)` with its own recipe's optimizer (Adam, cross-entropy) for
:data:`EPOCHS` epoch(s) at its learning rate times :data:`LR_SCALE`, seeded. The embedding layer is frozen: the
fine-tuned model reads the same token embeddings as the original, so an explanation of the original's embeddings
is scored on the very inputs it explains. The removed count is uniform over every
count because the metrics remove every share of the tokens (the deletion curve up to all of them).

Where this differs from F-Fidelity: F-Fidelity removes at most a fraction :math:`\beta` of the features in
fine-tuning and, at evaluation, removes a random subset of size :math:`\beta |x|` drawn from the explanation's top
:math:`\alpha` features (averaged over draws). Our metrics stay the deterministic ones of
:mod:`captum_text_ext.metrics`, computed on the fine-tuned model; the fine-tuning covers every count they remove.
"""

from __future__ import annotations

import copy
from typing import Iterable, Optional, Tuple

import torch
from torch import Tensor, nn

from captum_text_ext.datasets.collate import TextBatch
from captum_text_ext.models._base import embedding_forward
from captum_text_ext.models.training import FitResult, fit

__all__ = ["EPOCHS", "LR_SCALE", "fine_tune_with_removal", "random_removal_mask"]

EPOCHS = 1
"""Fine-tuning epochs over the training data."""
LR_SCALE = 0.5
"""The fine-tuning learning rate as a share of the recipe's."""


def random_removal_mask(lengths: Tensor, width: int, generator: Optional[torch.Generator] = None) -> Tensor:
    r"""Which positions to remove: for sentence :math:`i` of length :math:`L_i`, :math:`K_i \sim \mathcal{U}\{0,
    \dots, L_i\}` positions among its first :math:`L_i`, chosen uniformly; never a padding position.

    Args:
        lengths: :math:`(N,)` true lengths, each at most ``width``.
        width: the padded length :math:`T`.
        generator: the random source (default: torch's global one).

    Returns:
        A boolean :math:`(N, T)` mask, ``True`` where the token is removed.

    Example:
        >>> mask = random_removal_mask(torch.tensor([3, 1]), 4, torch.Generator().manual_seed(0))
        >>> mask.shape, bool(mask[:, 3].any()), bool(mask[1, 1:].any())
        (torch.Size([2, 4]), False, False)
    """
    if lengths.dim() != 1 or bool((lengths < 0).any()) or bool((lengths > width).any()):
        raise ValueError(f"Expected lengths (N,) in [0, {width}], but got {lengths.tolist()}")
    lengths = lengths.cpu()
    counts = torch.floor(torch.rand(len(lengths), generator=generator, dtype=torch.float64)
                         * (lengths.double() + 1)).long()
    keys = torch.rand(len(lengths), width, generator=generator, dtype=torch.float64)
    keys[torch.arange(width)[None, :] >= lengths[:, None]] = float("inf")  # padding sorts last
    ranks = keys.argsort(dim=1).argsort(dim=1)
    return ranks < counts[:, None]


class _RemovingTokens(nn.Module):
    """``model`` read from its token embeddings, with random tokens removed while training (eval: unchanged)."""

    def __init__(self, model: nn.Module, embedding: str) -> None:
        super().__init__()
        self.model = model
        self.embedding_name = embedding

    def forward(self, token_ids: Tensor, lengths: Tensor) -> Tensor:
        embeddings = self.model.get_submodule(self.embedding_name)(token_ids)
        if self.training:
            removed = random_removal_mask(lengths, token_ids.shape[1]).to(embeddings.device)
            embeddings = embeddings.masked_fill(removed[..., None], 0.0)
        return embedding_forward(self.model)(embeddings, lengths)


def fine_tune_with_removal(
    model: nn.Module,
    train_batches: Iterable[TextBatch],
    *,
    lr: float,
    epochs: int = EPOCHS,
    weight_decay: float = 0.0,
    seed: int = 0,
    embedding: str = "embedding",
    progress: bool = True,
    examples_per_epoch: Optional[int] = None,
) -> Tuple[nn.Module, FitResult]:
    """A copy of ``model`` fine-tuned on ``train_batches`` with random tokens removed (module docstring).

    Args:
        model: a model with an embedding submodule named ``embedding`` and ``forward_embeddings(embeddings,
            lengths)``; it is not changed (a deep copy is trained, its embedding submodule frozen).
        train_batches: re-iterable training batches.
        lr: Adam's learning rate.
        epochs: epochs over the batches (the last epoch's weights are kept: there is no dev set to stop on).
        weight_decay: Adam's weight decay.
        seed: seeds the removal masks and dropout (torch's global generator, as :func:`fit` does).
        embedding: the name of the embedding submodule.
        progress: show a bar per epoch.
        examples_per_epoch: the bar's total.

    Returns:
        ``(fine-tuned copy in eval mode, the fit's history)``.

    Raises:
        TypeError: for a model without ``forward_embeddings``.
    """
    embedding_forward(model)  # refuse a model the fine-tuning cannot remove tokens from, before copying it
    tuned = copy.deepcopy(model)
    frozen = [p for p in tuned.get_submodule(embedding).parameters() if p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(False)
    try:
        history = fit(_RemovingTokens(tuned, embedding), train_batches, None, epochs=epochs, lr=lr,
                      weight_decay=weight_decay, patience=epochs, seed=seed, progress=progress,
                      examples_per_epoch=examples_per_epoch)
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
    return tuned.eval(), history
