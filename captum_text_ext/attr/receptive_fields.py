r"""Receptive fields of the spatial locations of a 1-D convolution stack.

A location :math:`i` of the output of ``nn.Conv1d`` / ``nn.MaxPool1d`` / ``nn.AvgPool1d`` with kernel :math:`k`,
stride :math:`s`, dilation :math:`d` and left padding :math:`p` reads the input positions

.. math::
    i s - p + j d, \qquad j = 0, \dots, k - 1,

those inside the input (padding is not an input position). Composing these read maps from the layer back to the
first module of the stack gives the positions each location reads; its receptive field :math:`[l, r)` is their span
(with dilation, some positions inside the span may be skipped).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

__all__ = [
    "SPATIAL_MODULES",
    "SpatialModule",
    "chain_of",
    "output_length",
    "read_matrix",
    "stack_receptive_fields",
    "window_geometry",
]

SPATIAL_MODULES = (nn.Conv1d, nn.MaxPool1d, nn.AvgPool1d)
"""The module types a stack may hold."""

SpatialModule = Union[nn.Conv1d, nn.MaxPool1d, nn.AvgPool1d]
"""A module of :data:`SPATIAL_MODULES`."""


def _single(value: Union[int, Tuple[int, ...]]) -> int:
    return int(value[0]) if isinstance(value, tuple) else int(value)


def window_geometry(module: nn.Module) -> Tuple[int, int, int, int, int]:
    """``(kernel, stride, dilation, left padding, total padding)`` of a spatial module.

    Raises:
        TypeError: for a module that is not ``nn.Conv1d``, ``nn.MaxPool1d`` or ``nn.AvgPool1d``.
        ValueError: for settings whose receptive field is not an interval of input positions (circular or reflected
            padding, ``ceil_mode=True``).
    """
    if not isinstance(module, SPATIAL_MODULES):
        supported = ", ".join(t.__name__ for t in SPATIAL_MODULES)
        raise TypeError(f"Expected a spatial module ({supported}), but got {type(module).__name__}")
    kernel, stride = _single(module.kernel_size), _single(module.stride)
    if isinstance(module, nn.Conv1d):
        if module.padding_mode != "zeros":
            raise ValueError(
                f"Expected Conv1d layers with padding_mode='zeros' (the receptive field of {module.padding_mode!r} "
                "padding wraps or mirrors the input), but got "
                f"{module.padding_mode!r}"
            )
        dilation = _single(module.dilation)
        if isinstance(module.padding, str):
            total = 0 if module.padding == "valid" else dilation * (kernel - 1)
            return kernel, stride, dilation, total // 2, total
        left = _single(module.padding)
        return kernel, stride, dilation, left, 2 * left
    if module.ceil_mode:
        raise ValueError(f"Expected pooling with ceil_mode=False, but {type(module).__name__} has ceil_mode=True")
    dilation = _single(module.dilation) if isinstance(module, nn.MaxPool1d) else 1
    left = _single(module.padding)
    return kernel, stride, dilation, left, 2 * left


def output_length(module: nn.Module, input_length: int) -> int:
    """The number of output locations of ``module`` for ``input_length`` input positions (0 when too short)."""
    kernel, stride, dilation, _, total = window_geometry(module)
    span = input_length + total - dilation * (kernel - 1) - 1
    return span // stride + 1 if span >= 0 else 0


def stack_receptive_fields(stack: Sequence[nn.Module], seq_len: int) -> Tensor:
    """The receptive field ``[start, end)`` in input positions of every output location of ``stack``.

    Args:
        stack: the spatial modules in the order they run, each reading the previous one's output (element-wise
            functions in between do not matter).
        seq_len: the number of positions the first module reads.

    Returns:
        ``(L, 2)`` int64: one ``[start, end)`` row per output location of the last module; a location that reads
        only padding gets an empty field (``start == end``).

    Raises:
        ValueError: for an empty stack, a ``seq_len`` below 1, or an input too short for the stack.

    Examples:
        >>> stack = [nn.Conv1d(4, 3, 3, padding=1), nn.MaxPool1d(2), nn.Conv1d(3, 2, 2, dilation=2)]
        >>> stack_receptive_fields(stack, 8).tolist()
        [[0, 7], [1, 8]]
    """
    if not stack:
        raise ValueError("Expected a non-empty stack of spatial modules")
    if seq_len < 1:
        raise ValueError(f"Expected `seq_len` >= 1, but got {seq_len}")
    lengths = [seq_len]
    for module in stack:
        lengths.append(output_length(module, lengths[-1]))
        if lengths[-1] < 1:
            raise ValueError(
                f"Expected an input long enough for the stack, but {seq_len} positions leave none after "
                f"{type(module).__name__} #{len(lengths) - 1}"
            )
    reads = torch.eye(lengths[-1], dtype=torch.bool)
    for module, in_length, out_length in zip(reversed(stack), reversed(lengths[:-1]), reversed(lengths[1:])):
        reads = reads.to(torch.float32) @ read_matrix(module, in_length, out_length).to(torch.float32) > 0
    positions = torch.arange(seq_len)
    first = torch.where(reads, positions, seq_len).amin(dim=1)
    last = torch.where(reads, positions + 1, 0).amax(dim=1)
    return torch.stack([first.clamp(max=seq_len), torch.maximum(last, first.clamp(max=seq_len))], dim=1)


def read_matrix(module: nn.Module, in_length: int, out_length: int) -> Tensor:
    """``(out_length, in_length)`` bool: which input positions each output location of ``module`` reads."""
    kernel, stride, dilation, left, _ = window_geometry(module)
    positions = torch.arange(out_length).unsqueeze(1) * stride - left + torch.arange(kernel) * dilation
    inside = (positions >= 0) & (positions < in_length)
    matrix = torch.zeros(out_length, in_length + 1, dtype=torch.bool)
    matrix.scatter_(1, torch.where(inside, positions, in_length), True)
    return matrix[:, :in_length]


def chain_of(ran: Sequence[Tuple[nn.Module, int, int]], layer: nn.Module) -> List[nn.Module]:
    """The spatial modules that feed ``layer``, from the ones that ran before it in a forward pass.

    Walking back from ``layer`` (or, when ``layer`` is not spatial itself, from the last spatial module that ran
    before it), a module joins the stack when it returned as many positions as the module after it read and, for
    convolutions, as many channels as it takes; parallel branches of a Kim-style CNN are skipped this way.

    Args:
        ran: ``(module, positions read, positions returned)`` of each spatial module, in the order they ran.
        layer: the layer.

    Raises:
        ValueError: when no spatial module ran up to ``layer``.
    """
    if not ran:
        supported = ", ".join(t.__name__ for t in SPATIAL_MODULES)
        raise ValueError(
            f"Expected a spatial module ({supported}) to run before or as the layer {type(layer).__name__}, but none did"
        )
    last, last_in, _ = ran[-1]
    stack = [last]
    channels: Optional[int] = getattr(last, "in_channels", None)
    read = last_in
    for module, module_in, module_out in reversed(ran[:-1]):
        if module_out != read:
            continue
        if isinstance(module, nn.Conv1d):
            if channels is not None and module.out_channels != channels:
                continue
            channels = module.in_channels
        stack.insert(0, module)
        read = module_in
    return stack
