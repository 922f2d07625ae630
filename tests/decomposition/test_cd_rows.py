"""CD's parts at the rows a head reads: a routing op that copies whole rows of a row-wise deferred tensor (the [CLS]
row of a transformer's last layer) makes the row-wise rules before it (``Linear``, element-wise activations,
LayerNorm over the last dimension, residual sums, dropout) compute their parts at those rows only. The result must be
the decomposition computed everywhere (float64), and ops that move entries within rows or bring values in must not be
taken for row gathers."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, List

import pytest
import torch
from torch import Tensor, nn

from _transformer_models import build_case
from captum_text_ext import ContextualDecomposition, LayerContextualDecomposition
from captum_text_ext.decomposition.cd import decomposed, routing

Head = Callable[[Tensor], Tensor]

SAME = 1e-12
"""The decomposition with and without row gathers (float64)."""

ROW_GATHERS: List[Head] = [
    lambda h: h[:, 0],
    lambda h: h[:, -1],
    lambda h: h.select(1, 2),
    lambda h: h[:, torch.tensor([3, 1, 3])],
    lambda h: h.narrow(1, 1, 2).transpose(0, 1).flatten(0, 1).reshape(3, 2, 6),
    lambda h: h[torch.tensor([[True, False, True, False, False]] * 3)].reshape(3, 2, 6),
    lambda h: h.unsqueeze(0)[0, :, 4],
]
"""Heads that read whole rows: each must go through a row gather."""

NOT_ROW_GATHERS: List[Head] = [
    lambda h: h.flip(-1)[:, 0],  # the entries of each row reversed
    lambda h: h.reshape(3, 5, 2, 3).transpose(-1, -2).flatten(2)[:, 0],  # rows cut up and interleaved
    lambda h: h.roll(1, -1)[:, 0],  # the entries of each row rotated
    lambda h: torch.take_along_dim(h, torch.arange(6).reshape(1, 1, 6) % 5, dim=1)[:, 0],  # each entry its own row
    lambda h: nn.functional.pad(h, (0, 0, 1, 0), value=2.0)[:, 0],  # a row of fills
]
"""Heads whose routing is not a copy of whole rows: no row gather may be made."""


class RowWiseTail(nn.Module):
    """Linear → GELU → Linear, a residual sum, dropout (evaluation mode), LayerNorm: all row-wise; then ``head``
    reads rows, and a tanh layer and a linear output follow (a BERT layer's feed-forward and its pooler)."""

    def __init__(self, head: Head) -> None:
        super().__init__()
        self.head = head
        self.inner, self.outer = nn.Linear(6, 10), nn.Linear(10, 6)
        self.norm, self.dropout = nn.LayerNorm(6), nn.Dropout(0.1)
        self.pooler, self.output = nn.Linear(6, 6), nn.Linear(6, 2)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(x + self.dropout(self.outer(nn.functional.gelu(self.inner(x)))))
        logits = self.output(torch.tanh(self.pooler(self.head(h))))
        return logits if logits.dim() == 2 else logits.sum(1)


def _decompose(model: nn.Module, x: Tensor, masks: Tensor) -> List[Tensor]:
    return list(ContextualDecomposition(model).decompose(x, masks, return_bias=True))


class _Counting:
    def __init__(self) -> None:
        self.made = 0


@pytest.fixture
def gathers(monkeypatch: pytest.MonkeyPatch) -> _Counting:
    """Counts the row gathers the CD runs make."""
    counting, make = _Counting(), decomposed.RowGather.__init__

    def counted(self: decomposed.RowGather, *args: object) -> None:
        counting.made += 1
        make(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(decomposed.RowGather, "__init__", counted)
    return counting


def _inputs() -> tuple:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 6, generator=generator, dtype=torch.float64)
    masks = torch.rand(4, 3, 5, generator=generator) < 0.4
    masks[0] = True  # every position: γ stays exactly 0
    masks[1] = False  # none: β stays exactly 0
    return x, masks


@pytest.mark.parametrize("head", ROW_GATHERS)
def test_parts_at_the_rows_a_head_reads_are_the_parts_computed_everywhere(
    head: Head, gathers: _Counting, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    model = RowWiseTail(head).double().eval()
    x, masks = _inputs()
    at_rows = _decompose(model, x, masks)
    assert gathers.made > 0
    monkeypatch.setattr(routing, "_row_gather", lambda *args: None)
    everywhere = _decompose(model, x, masks)
    for a, b in zip(at_rows, everywhere):
        assert (a - b).abs().max() < SAME
    relevant, irrelevant, bias = at_rows
    with torch.no_grad():
        logits = model(x)
    assert (relevant + irrelevant + bias - logits).abs().max() < SAME
    assert torch.equal(irrelevant[0], torch.zeros_like(irrelevant[0]))
    assert torch.equal(relevant[1], torch.zeros_like(relevant[1]))


@pytest.mark.parametrize("head", NOT_ROW_GATHERS)
def test_routing_that_moves_entries_within_rows_or_brings_values_in_is_not_a_row_gather(
    head: Head, gathers: _Counting
) -> None:
    torch.manual_seed(0)
    model = RowWiseTail(head).double().eval()
    x, masks = _inputs()
    relevant, irrelevant, bias = _decompose(model, x, masks)
    assert gathers.made == 0
    with torch.no_grad():
        logits = model(x)
    assert (relevant + irrelevant + bias - logits).abs().max() < SAME


def test_a_bert_pooler_reads_the_cls_row_of_the_last_layer_only(
    gathers: _Counting, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    case = build_case("bert-eager", tmp_path)
    ids, mask = case.batch()
    masks = torch.rand(3, *ids.shape, generator=torch.Generator().manual_seed(1)) < 0.5
    cd = LayerContextualDecomposition(case.model, case.embeddings)
    at_rows = cd.decompose(ids, masks, (mask,), return_bias=True)
    assert gathers.made > 0
    monkeypatch.setattr(routing, "_row_gather", lambda *args: None)
    everywhere = cd.decompose(ids, masks, (mask,), return_bias=True)
    for a, b in zip(at_rows, everywhere):
        assert (a - b).abs().max() < SAME


@pytest.mark.parametrize("block_rows", [1, 7])
def test_parts_computed_block_by_block_are_the_parts_computed_whole(
    block_rows: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    case = build_case("bert-sdpa", tmp_path)
    ids, mask = case.batch()
    lengths = mask.sum(1)
    masks = torch.rand(4, *ids.shape, generator=torch.Generator().manual_seed(2)) < 0.4
    masks[0] = torch.arange(ids.shape[1]) < lengths.unsqueeze(1)  # each whole sentence
    masks[1] = False
    cd = LayerContextualDecomposition(case.model, case.embeddings)
    monkeypatch.setattr(decomposed, "BLOCK_ROWS", 10**9)
    whole = cd.decompose(ids, masks, (mask,), return_bias=True)
    blocks: List[int] = []
    block = decomposed.RowGather.block

    def counted(start: int, stop: int, device: torch.device) -> decomposed.RowGather:
        blocks.append(stop - start)
        return block(start, stop, device)

    monkeypatch.setattr(decomposed, "BLOCK_ROWS", block_rows)
    monkeypatch.setattr(decomposed.RowGather, "block", staticmethod(counted))
    relevant, irrelevant, bias = cd.decompose(ids, masks, (mask,), return_bias=True)
    assert len(blocks) > 10 and min(blocks) >= 1
    for a, b in zip((relevant, irrelevant, bias), whole):
        assert (a - b).abs().max() < SAME
    with torch.no_grad():
        logits = case.model(ids, mask)
    assert (relevant + irrelevant + bias - logits).abs().max() < 1e-8
    assert torch.equal(irrelevant[0], torch.zeros_like(irrelevant[0]))
    assert torch.equal(relevant[1], torch.zeros_like(relevant[1]))


class MatrixProducts(nn.Module):
    """``x W`` (a map of each row), tanh, ``A h`` with a constant lower-triangular ``A`` (row ``t`` mixes the rows
    ``s <= t``, as causal attention weights do), a linear output on two of the rows."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.register_buffer("weight", torch.randn(6, 6, generator=generator))
        self.register_buffer("mixing", torch.rand(5, 5, generator=generator).tril())
        self.output = nn.Linear(6, 2)

    def forward(self, x: Tensor) -> Tensor:
        mixed = torch.matmul(self.mixing, torch.tanh(x @ self.weight))
        return self.output(mixed[:, 0] + mixed[:, 2])


def test_matrix_products_carry_beta_alone_and_keep_exact_zeros(monkeypatch: pytest.MonkeyPatch) -> None:
    from captum_text_ext.decomposition.cd import rules

    torch.manual_seed(0)
    model = MatrixProducts().double().eval()
    x, masks = _inputs()
    masks[2] = torch.arange(5) < 4  # all but the last position, which rows 0 and 2 never mix in: γ exactly 0
    relevant, irrelevant, bias = _decompose(model, x, masks)
    with torch.no_grad():
        logits = model(x)
    assert (relevant + irrelevant + bias - logits).abs().max() < SAME
    assert torch.equal(irrelevant[0], torch.zeros_like(irrelevant[0]))
    assert torch.equal(irrelevant[2], torch.zeros_like(irrelevant[2]))
    assert torch.equal(relevant[1], torch.zeros_like(relevant[1]))
    monkeypatch.setattr(rules, "MATRIX_PRODUCTS", ())  # both parts through both products
    for a, b in zip((relevant, irrelevant, bias), _decompose(model, x, masks)):
        assert (a - b).abs().max() < SAME
