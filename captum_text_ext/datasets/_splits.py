"""Seeded stratified splits: every split keeps the class proportions of the whole, as closely as integers allow."""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence, Tuple, Union

import numpy as np

__all__ = ["SplitSizes", "stratified_split"]

SplitSizes = Union[Mapping[str, int], Sequence[Tuple[str, int]]]


def stratified_split(labels: Sequence[int], sizes: SplitSizes, seed: int) -> Dict[str, List[int]]:
    """Split the indices ``0 .. len(labels) - 1`` into named parts of given sizes, stratified by label.

    Per-class counts are decided split by split, in the order of ``sizes``: a split of size ``m`` drawn from ``r``
    remaining examples takes ``m * r_c / r`` of each class ``c`` (``r_c`` of which remain), rounded by the
    largest-remainder method (ties go to the smaller label). The first split is therefore exactly the
    largest-remainder rounding of the class proportions, and the last takes what is left.

    Each class's indices are shuffled once with ``numpy.random.default_rng(seed)`` (classes in increasing label
    order) and handed out in consecutive blocks, in the order of ``sizes``. Hence the first split depends only on
    the labels, its size and the seed, not on how the rest is divided: list the held-out test split first.

    Args:
        labels: one integer class label per example.
        sizes: the splits' names and sizes, in order, as a mapping or as ``(name, size)`` pairs. The sizes must
            add up to ``len(labels)``.
        seed: the seed of the random generator; the same seed gives the same split.

    Returns:
        For each name, its indices in increasing order. The parts are disjoint and together cover every index.

    Raises:
        ValueError: when a name repeats, a size is negative or not an integer, or the sizes do not add up to
            ``len(labels)``.
    """
    named_sizes = _check_sizes(sizes, len(labels))
    label_array = np.asarray(labels, dtype=np.int64)
    classes = np.unique(label_array)
    remaining = np.array([np.count_nonzero(label_array == c) for c in classes], dtype=np.int64)
    counts = []  # counts[s][k]: examples of class k in split s
    for _, size in named_sizes:
        taken = _largest_remainder(remaining, size)
        counts.append(taken)
        remaining = remaining - taken
    rng = np.random.default_rng(seed)
    parts: Dict[str, List[int]] = {name: [] for name, _ in named_sizes}
    for k, label in enumerate(classes):
        shuffled = rng.permutation(np.flatnonzero(label_array == label))
        start = 0
        for (name, _), taken in zip(named_sizes, counts):
            parts[name].extend(shuffled[start : start + taken[k]].tolist())
            start += int(taken[k])
    return {name: sorted(indices) for name, indices in parts.items()}


def _check_sizes(sizes: SplitSizes, total: int) -> List[Tuple[str, int]]:
    """``sizes`` as ``(name, size)`` pairs, after checking names, sizes and their sum."""
    pairs: List[Tuple[str, int]] = (
        list(sizes.items()) if isinstance(sizes, Mapping) else [(name, size) for name, size in sizes]
    )
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"sizes must name each split once; got the names {names}")
    for name, size in pairs:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
            raise ValueError(f"sizes[{name!r}] must be a non-negative integer; got {size!r}")
    size_sum = sum(size for _, size in pairs)
    if size_sum != total:
        raise ValueError(f"sizes must add up to len(labels) = {total}; got {dict(pairs)}, which add up to {size_sum}")
    return [(name, int(size)) for name, size in pairs]


def _largest_remainder(available: np.ndarray, size: int) -> np.ndarray:
    """Per-class counts adding up to ``size``, proportional to ``available``, rounded by largest remainder."""
    total = int(available.sum())
    if total == 0:
        return np.zeros_like(available)
    numerators = available * size  # exact integer arithmetic: quota_k = numerators[k] / total
    counts = numerators // total
    remainders = numerators - counts * total
    short = size - int(counts.sum())
    by_remainder = sorted(range(len(available)), key=lambda k: (-remainders[k], k))
    for k in by_remainder[:short]:
        counts[k] += 1
    return counts
