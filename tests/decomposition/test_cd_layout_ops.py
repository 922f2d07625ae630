"""CD's layout ops on the parts without vmap: ``contiguous``, ``transpose``, ``permute``, ``view`` and ``reshape`` are
applied to a part with its leading phrase dimension directly (dimensions shifted, shapes extended); the result must be
what vmap gives, for every argument form, and a transformer's decomposition must not change."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Tuple

import pytest
import torch
from torch import Tensor

from _transformer_models import CASES, build_case
from captum_text_ext import LayerContextualDecomposition
from captum_text_ext.decomposition.cd import Decomposed, routing
from captum_text_ext.decomposition.cd.call import Call

CALLS: Tuple[Tuple[str, Callable[..., Any], Tuple[Any, ...]], ...] = (
    ("contiguous", Tensor.contiguous, ()),
    ("transpose", Tensor.transpose, (1, 2)),
    ("transpose", torch.transpose, (-1, -3)),
    ("permute", Tensor.permute, (2, 0, 1)),
    ("permute", Tensor.permute, ((-1, 0, 1),)),
    ("permute", torch.permute, ((1, 2, 0),)),
    ("view", Tensor.view, (6, -1)),
    ("view", Tensor.view, ((3, 2, 4),)),
    ("reshape", torch.reshape, ((-1,),)),
    ("reshape", Tensor.reshape, (2, 12)),
)
"""Layout calls on a ``(2, 3, 4)`` tensor, in their argument forms (positional sizes, a tuple, negative dims)."""


@pytest.mark.parametrize("name, func, rest", CALLS)
def test_a_layout_op_on_a_part_is_what_vmap_gives(name: str, func: Callable[..., Any], rest: Tuple[Any, ...]) -> None:
    value = torch.randn(2, 3, 4)
    part = torch.randn(5, 2, 3, 4).transpose(0, 1).contiguous().transpose(0, 1)  # not contiguous, as parts may be
    x = Decomposed.wrap(value, part, part, None)
    call = Call(func, (x,) + rest, {})
    direct = routing._layout_op(call, name)
    assert direct is not None
    assert torch.equal(direct(part), call.run([part.contiguous()]))  # vmap cannot view every layout


def test_other_forms_are_left_to_vmap() -> None:
    x = Decomposed.wrap(torch.randn(2, 3), torch.randn(4, 2, 3), torch.randn(4, 2, 3), None)
    assert routing._layout_op(Call(Tensor.view, (x, torch.float32), {}), "view") is None  # a dtype, not a shape
    assert routing._layout_op(Call(Tensor.contiguous, (x,), {"memory_format": torch.contiguous_format}),
                              "contiguous") is None
    assert routing._layout_op(Call(Tensor.flip, (x, 0), {}), "flip") is None


@pytest.mark.parametrize("name", CASES)
def test_a_transformer_decomposition_is_the_same_with_layout_ops_through_vmap(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    case = build_case(name, tmp_path)
    ids, mask = case.batch()
    masks = torch.rand(3, *ids.shape, generator=torch.Generator().manual_seed(4)) < 0.5
    cd = LayerContextualDecomposition(case.model, case.embeddings)
    direct = cd.decompose(ids, masks, (mask,), return_bias=True)
    monkeypatch.setattr(routing, "_layout_op", lambda call, name: None)
    for a, b in zip(direct, cd.decompose(ids, masks, (mask,), return_bias=True)):
        assert (a - b).abs().max() < 1e-12
