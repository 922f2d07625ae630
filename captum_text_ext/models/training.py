"""A small, seeded training loop with early stopping on a dev set."""

from __future__ import annotations

import copy
import dataclasses
from typing import Iterable, List, Optional

import torch
from torch import nn
from tqdm import tqdm

from captum_text_ext.datasets.collate import TextBatch

__all__ = ["FitResult", "accuracy", "fit"]


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What :func:`fit` did.

    Attributes:
        best_epoch: the epoch (1-based) whose weights were kept.
        best_dev_accuracy: its dev accuracy (``None`` without a dev set; then the last epoch is kept).
        epochs_run: epochs trained before stopping.
        train_loss: mean training loss per epoch.
        dev_accuracy: dev accuracy per epoch.
    """

    best_epoch: int
    best_dev_accuracy: Optional[float]
    epochs_run: int
    train_loss: List[float]
    dev_accuracy: List[float]


def _on_device(batch: TextBatch, device: torch.device) -> TextBatch:
    """The batch on ``device`` (the model's)."""
    return TextBatch(*(tensor.to(device) for tensor in batch))


def _device_of(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


@torch.no_grad()
def accuracy(model: nn.Module, batches: Iterable[TextBatch]) -> float:
    """The share of examples whose arg-max logit is the label (on the model's device); the model's ``training`` flag
    is restored."""
    was_training = model.training
    model.eval()
    device = _device_of(model)
    try:
        correct = total = 0
        for batch in (_on_device(b, device) for b in batches):
            predicted = model(batch.token_ids, batch.lengths).argmax(dim=-1)
            correct += int((predicted == batch.labels).sum())
            total += len(batch.labels)
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("Expected at least one example to score, but the batches were empty")
    return correct / total


def fit(
    model: nn.Module,
    train_batches: Iterable[TextBatch],
    dev_batches: Optional[Iterable[TextBatch]] = None,
    *,
    epochs: int = 10,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    patience: int = 3,
    seed: int = 0,
    progress: bool = True,
    examples_per_epoch: Optional[int] = None,
) -> FitResult:
    """Train ``model`` with Adam and cross-entropy, keep the weights of the best dev epoch.

    Args:
        model: takes ``(token_ids, lengths)`` and returns logits; it trains on the device of its parameters (the
            batches are moved there).
        train_batches: re-iterable training batches (e.g. a ``DataLoader`` with a seeded sampler).
        dev_batches: batches for early stopping; training stops after ``patience`` epochs without improvement.
        epochs: the most epochs.
        lr: Adam's learning rate.
        weight_decay: Adam's weight decay.
        patience: epochs without dev improvement before stopping.
        seed: seeds ``torch`` before the weights are touched (dropout masks).
        progress: show a tqdm bar per epoch ("epoch 2/10", examples done of ``examples_per_epoch`` and
            examples per second).
        examples_per_epoch: the number of training examples, the bar's total (``None``: the bar counts without one).

    Returns:
        A :class:`FitResult`; the model holds the kept weights and is left in eval mode.
    """
    if epochs < 1:
        raise ValueError(f"Expected `epochs` >= 1, but got {epochs}")
    torch.manual_seed(seed)
    device = _device_of(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    losses: List[float] = []
    dev_scores: List[float] = []
    best_state = copy.deepcopy(model.state_dict())
    best_epoch, best_score = 0, -1.0
    for epoch in range(1, epochs + 1):
        model.train()
        total, count = 0.0, 0
        with tqdm(total=examples_per_epoch, desc=f"epoch {epoch}/{epochs}", unit="ex", unit_scale=True,
                  disable=not progress, leave=False) as bar:
            for batch in (_on_device(b, device) for b in train_batches):
                optimizer.zero_grad()
                loss = loss_fn(model(batch.token_ids, batch.lengths), batch.labels)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch.labels)
                count += len(batch.labels)
                bar.update(len(batch.labels))
        losses.append(total / max(count, 1))
        if dev_batches is None:
            best_state, best_epoch = copy.deepcopy(model.state_dict()), epoch
            continue
        score = accuracy(model, dev_batches)
        dev_scores.append(score)
        if score > best_score:
            best_state, best_epoch, best_score = copy.deepcopy(model.state_dict()), epoch, score
        elif epoch - best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(
        best_epoch=best_epoch,
        best_dev_accuracy=best_score if dev_batches is not None else None,
        epochs_run=len(losses),
        train_loss=losses,
        dev_accuracy=dev_scores,
    )
