r"""Receptive fields of the spatial locations of a 1-D convolution stack.

A location :math:`i` of the output of ``nn.Conv1d`` / ``nn.MaxPool1d`` / ``nn.AvgPool1d`` with kernel :math:`k`,
stride :math:`s`, dilation :math:`d` and left padding :math:`p` reads the input positions

.. math::
    i s - p + j d, \qquad j = 0, \dots, k - 1,

those inside the input (padding is not an input position). Composing these read maps from the layer back to the
first module of the stack gives the positions each location reads; its receptive field :math:`[l, r)` is their span
(with dilation, some positions inside the span may be skipped).

An ``nn.Conv2d`` reads positions along one of its two spatial axes, ``axis`` (0: height, dimension 2 of its input;
1: width, dimension 3), with that axis's kernel, stride, dilation and padding: the Kim CNN of Captum's tutorials runs
``nn.Conv2d(1, F, (k, E))`` over the embeddings as an :math:`(N, 1, T, E)` image, whose output :math:`(N, F, L, 1)` has
its :math:`L` locations along axis 0.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

__all__ = [
    "SPATIAL_MODULES",
    "SpatialModule",
    "chain_of",
    "from_module_layout",
    "output_length",
    "position_dim",
    "read_matrix",
    "stack_receptive_fields",
    "to_module_layout",
    "window_geometry",
]

SPATIAL_MODULES = (nn.Conv1d, nn.Conv2d, nn.MaxPool1d, nn.AvgPool1d)
"""The module types a stack may hold."""

SpatialModule = Union[nn.Conv1d, nn.Conv2d, nn.MaxPool1d, nn.AvgPool1d]
"""A module of :data:`SPATIAL_MODULES`."""


def _single(value: Union[int, Tuple[int, ...]], axis: int = 0) -> int:
    return int(value[axis]) if isinstance(value, tuple) else int(value)


def position_dim(module: nn.Module, axis: int = 0) -> int:
    """The dimension of ``module``'s input (and output) that holds the positions: the last one of a 1-D module,
    ``2 + axis`` of an ``nn.Conv2d``."""
    return 2 + axis if isinstance(module, nn.Conv2d) else -1


def to_module_layout(module: nn.Module, axis: int, tensor: Tensor) -> Tensor:
    """``tensor`` :math:`(B, T, K)` (embeddings, or a mask with :math:`K = 1`) laid out as ``module`` reads its input:
    :math:`(B, K, T)` for a 1-D module, :math:`(B, 1, T, K)` / :math:`(B, 1, K, T)` for an ``nn.Conv2d`` whose
    positions are on ``axis`` 0 / 1."""
    if not isinstance(module, nn.Conv2d):
        return tensor.transpose(1, 2)
    return tensor.unsqueeze(1) if axis == 0 else tensor.transpose(1, 2).unsqueeze(1)


def from_module_layout(module: nn.Module, axis: int, tensor: Tensor) -> Optional[Tensor]:
    """The inverse of :func:`to_module_layout`: ``module``'s input as :math:`(B, T, K)`, or ``None`` when it is not
    laid out that way (a 1-D module's input that is not 3-D, an ``nn.Conv2d``'s that is not one channel)."""
    if not isinstance(module, nn.Conv2d):
        return tensor.transpose(1, 2) if tensor.dim() == 3 else None
    if tensor.dim() != 4 or tensor.shape[1] != 1:
        return None
    return tensor[:, 0] if axis == 0 else tensor[:, 0].transpose(1, 2)


def window_geometry(module: nn.Module, axis: int = 0) -> Tuple[int, int, int, int, int]:
    """``(kernel, stride, dilation, left padding, total padding)`` of a spatial module (of an ``nn.Conv2d``: along
    its spatial axis ``axis``).

    Raises:
        TypeError: for a module that is not ``nn.Conv1d``, ``nn.Conv2d``, ``nn.MaxPool1d`` or ``nn.AvgPool1d``.
        ValueError: for settings whose receptive field is not an interval of input positions (circular or reflected
            padding, ``ceil_mode=True``), or an ``axis`` other than 0 and 1.
    """
    if not isinstance(module, SPATIAL_MODULES):
        supported = ", ".join(t.__name__ for t in SPATIAL_MODULES)
        raise TypeError(f"Expected a spatial module ({supported}), but got {type(module).__name__}")
    if axis not in (0, 1):
        raise ValueError(f"Expected the spatial axis 0 or 1, but got {axis}")
    kernel, stride = _single(module.kernel_size, axis), _single(module.stride, axis)
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        if module.padding_mode != "zeros":
            raise ValueError(
                f"Expected {type(module).__name__} layers with padding_mode='zeros' (the receptive field of "
                f"{module.padding_mode!r} padding wraps or mirrors the input), but got {module.padding_mode!r}"
            )
        dilation = _single(module.dilation, axis)
        if isinstance(module.padding, str):
            total = 0 if module.padding == "valid" else dilation * (kernel - 1)
            return kernel, stride, dilation, total // 2, total
        left = _single(module.padding, axis)
        return kernel, stride, dilation, left, 2 * left
    if module.ceil_mode:
        raise ValueError(f"Expected pooling with ceil_mode=False, but {type(module).__name__} has ceil_mode=True")
    dilation = _single(module.dilation) if isinstance(module, nn.MaxPool1d) else 1
    left = _single(module.padding)
    return kernel, stride, dilation, left, 2 * left


def output_length(module: nn.Module, input_length: int, axis: int = 0) -> int:
    """The number of output locations of ``module`` for ``input_length`` input positions (0 when too short)."""
    kernel, stride, dilation, _, total = window_geometry(module, axis)
    span = input_length + total - dilation * (kernel - 1) - 1
    return span // stride + 1 if span >= 0 else 0


def stack_receptive_fields(stack: Sequence[nn.Module], seq_len: int, axis: int = 0) -> Tensor:
    """The receptive field ``[start, end)`` in input positions of every output location of ``stack``.

    Args:
        stack: the spatial modules in the order they run, each reading the previous one's output (element-wise
            functions in between do not matter).
        seq_len: the number of positions the first module reads.
        axis: the spatial axis of the ``nn.Conv2d`` modules that holds the positions (0: height, 1: width).

    Returns:
        ``(L, 2)`` int64: one ``[start, end)`` row per output location of the last module; a location that reads
        only padding gets an empty field (``start == end``).

    Raises:
        ValueError: for an empty stack, a ``seq_len`` below 1, or an input too short for the stack.

    Examples:
        >>> stack = [nn.Conv1d(4, 3, 3, padding=1), nn.MaxPool1d(2), nn.Conv1d(3, 2, 2, dilation=2)]
        >>> stack_receptive_fields(stack, 8).tolist()
        [[0, 7], [1, 8]]
        >>> stack_receptive_fields([nn.Conv2d(1, 4, (3, 16))], 5).tolist()   # a Kim CNN's convolution
        [[0, 3], [1, 4], [2, 5]]
    """
    if not stack:
        raise ValueError("Expected a non-empty stack of spatial modules")
    if seq_len < 1:
        raise ValueError(f"Expected `seq_len` >= 1, but got {seq_len}")
    lengths = [seq_len]
    for module in stack:
        lengths.append(output_length(module, lengths[-1], axis))
        if lengths[-1] < 1:
            raise ValueError(
                f"Expected an input long enough for the stack, but {seq_len} positions leave none after "
                f"{type(module).__name__} #{len(lengths) - 1}"
            )
    reads = torch.eye(lengths[-1], dtype=torch.bool)
    for module, in_length, out_length in zip(reversed(stack), reversed(lengths[:-1]), reversed(lengths[1:])):
        reads = reads.to(torch.float32) @ read_matrix(module, in_length, out_length, axis).to(torch.float32) > 0
    positions = torch.arange(seq_len)
    first = torch.where(reads, positions, seq_len).amin(dim=1)
    last = torch.where(reads, positions + 1, 0).amax(dim=1)
    return torch.stack([first.clamp(max=seq_len), torch.maximum(last, first.clamp(max=seq_len))], dim=1)


def read_matrix(module: nn.Module, in_length: int, out_length: int, axis: int = 0) -> Tensor:
    """``(out_length, in_length)`` bool: which input positions each output location of ``module`` reads."""
    kernel, stride, dilation, left, _ = window_geometry(module, axis)
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
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            if channels is not None and module.out_channels != channels:
                continue
            channels = module.in_channels
        stack.insert(0, module)
        read = module_in
    return stack
