r"""Bootstrap intervals and paired bootstrap tests with Holm's correction, for tables of per-sentence scores.

- **Interval.** The 95% percentile bootstrap interval of a mean: ``scipy.stats.bootstrap`` with ``B`` resamples of
  the sentences.
- **Paired test.** Two methods scored on the same sentences give differences :math:`d_i`; with :math:`\bar d` their
  mean and :math:`\bar d^{*}_b` the means of :math:`B` bootstrap resamples of the :math:`d_i`, the two-sided
  p-value of :math:`H_0: \mathbb{E}[d] = 0` is the share of resampled means at least as far from :math:`\bar d` as
  :math:`\bar d` is from 0 (the bootstrap distribution shifted to the null, Efron & Tibshirani 1993, §16.4),

  .. math::
      p = \frac{1 + \#\{b : |\bar d^{*}_b - \bar d| \ge |\bar d|\}}{1 + B}.

- **Holm.** :math:`m` p-values sorted :math:`p_{(1)} \le \ldots \le p_{(m)}` are adjusted to
  :math:`\tilde p_{(i)} = \max_{j \le i} \min\big(1, (m - j + 1)\, p_{(j)}\big)`; a difference survives at level
  :math:`\alpha` when :math:`\tilde p < \alpha`.

- **Method comparison.** :func:`compare_methods` puts the three together for one column of a results table: each
  method's mean and interval, the best method, and which methods differ from it after Holm's correction.

Every function takes a seed; equal arguments give equal results.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Sequence, Tuple, Union

import numpy as np
from scipy import stats

__all__ = ["bootstrap_interval", "compare_methods", "holm", "paired_bootstrap_pvalue"]

RESAMPLES = 2000
"""Bootstrap resamples (:math:`B`)."""
Values = Union[Sequence[float], np.ndarray]
"""Numbers, as a sequence or a 1-D array."""


def bootstrap_interval(values: Values, seed: int = 0, resamples: int = RESAMPLES,
                       confidence: float = 0.95) -> Tuple[float, float]:
    """The percentile bootstrap interval of the mean of ``values`` (``nan`` values left out).

    Returns:
        ``(low, high)``; ``(nan, nan)`` for no values, ``(v, v)`` when every value is ``v``.
    """
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    if data.size == 0:
        return float("nan"), float("nan")
    if np.all(data == data[0]):
        return float(data[0]), float(data[0])
    result = stats.bootstrap((data,), np.mean, n_resamples=resamples, confidence_level=confidence,
                             method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_bootstrap_pvalue(first: Values, second: Values, seed: int = 0,
                            resamples: int = RESAMPLES) -> float:
    """The two-sided paired bootstrap p-value of equal means (module docstring); pairs with a ``nan`` are left out.

    Raises:
        ValueError: when the sequences differ in length.
    """
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"Expected paired values of equal length, but got {a.shape[0]} and {b.shape[0]}")
    difference = (a - b)[np.isfinite(a) & np.isfinite(b)]
    if difference.size == 0:
        return float("nan")
    observed = difference.mean()
    if observed == 0:
        return 1.0
    rng = np.random.default_rng(seed)
    index = rng.integers(0, difference.size, size=(resamples, difference.size))
    means = difference[index].mean(1)
    return float((1 + np.count_nonzero(np.abs(means - observed) >= abs(observed))) / (1 + resamples))


def holm(pvalues: Values) -> np.ndarray:
    """Holm's step-down adjustment of ``pvalues`` (module docstring); ``nan`` stays ``nan`` and is not counted.

    Examples:
        >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
        [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    adjusted = np.full_like(p, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def compare_methods(values: Mapping[str, Values], higher_is_better: bool, seed: int = 0,
                    alpha: float = 0.05) -> Dict[str, Dict[str, Any]]:
    """One column of a results table: every method's per-sentence values (paired: the same sentences in the same
    order, ``nan`` where undefined) summarized and tested against the best method.

    Args:
        values: method → its per-sentence values; methods without a finite value are left out.
        higher_is_better: whether the best method has the highest mean (else the lowest).
        seed: seeds the bootstrap.
        alpha: the level of the Holm-corrected paired tests.

    Returns:
        method → ``{"mean", "low", "high", "n", "best", "p_holm", "differs"}``: the mean and its
        :func:`bootstrap_interval`, the count of finite values, whether it is the best, and its
        :func:`paired_bootstrap_pvalue` against the best after :func:`holm` over the other methods (``None`` for the
        best, or where no pair is finite) and whether that is below ``alpha``.
    """
    have = {m: np.asarray(v, dtype=np.float64) for m, v in values.items()
            if np.isfinite(np.asarray(v, dtype=np.float64)).any()}
    cells: Dict[str, Dict[str, Any]] = {}
    for method, data in have.items():
        low, high = bootstrap_interval(data, seed)
        cells[method] = {"mean": float(np.nanmean(data)), "low": low, "high": high,
                         "n": int(np.isfinite(data).sum()), "best": False, "p_holm": None, "differs": False}
    if not cells:
        return cells
    pick = max if higher_is_better else min
    best = pick(cells, key=lambda m: cells[m]["mean"])
    cells[best]["best"] = True
    others = [m for m in cells if m != best]
    adjusted = holm([paired_bootstrap_pvalue(have[best], have[m], seed) for m in others])
    for method, p in zip(others, adjusted):
        cells[method]["p_holm"] = None if math.isnan(p) else float(p)
        cells[method]["differs"] = bool(p < alpha)
    return cells
