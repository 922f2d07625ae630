r"""Which metric to believe: each faithfulness metric judged by how well its ranking of the methods agrees with a
ground truth.

A metric ranks the methods by their mean over the sentences (oriented so that the better method comes first). The
ground truth ranks them too: here the top-1 precision against the synthetic corpus's decisive tokens
(:mod:`captum_text_ext.metrics.ground_truth`), on the sentences the model classifies correctly. For each metric and
removal variant the agreement is Kendall's :math:`\tau_b` (``scipy.stats.kendalltau``) between the two rankings,

.. math::
    \tau_b = \frac{P - Q}{\sqrt{(P + Q + T_m)(P + Q + T_g)}},

with :math:`P` and :math:`Q` the concordant and discordant pairs of methods and :math:`T_m`, :math:`T_g` the pairs
tied only by the metric or only by the ground truth: 1 when the metric orders the methods as the ground truth does,
-1 when it reverses them. Only sentences with a value for every method in both are used.

**Intervals.** :data:`RESAMPLES` bootstrap resamples of those sentences (the same resample for the metric and the
ground truth, seeded) give the 95% percentile interval of :math:`\tau_b` (resamples where :math:`\tau_b` is
undefined, every method tied, are left out and counted).

**Flips between removal variants.** The same metric with another removal (``zero``, ``unk``, ``pad``:
:mod:`~captum_text_ext.metrics.perturbation`) may rank the methods differently. A pair of methods *flips* when one
variant puts the first ahead in at least :data:`FLIP_SHARE` of the bootstrap resamples and another variant puts the
second ahead in at least as many: a reversal that resampling the sentences does not undo. A metric with a flip is
flagged: its verdict depends on how tokens are removed.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy import stats

__all__ = ["FLIP_SHARE", "RESAMPLES", "Judgement", "JudgedColumn", "judge_metrics"]

RESAMPLES = 1000
"""Bootstrap resamples of the sentences."""
FLIP_SHARE = 0.95
"""The share of resamples in which each of two removal variants must hold its order of a pair for a flip."""


@dataclasses.dataclass(frozen=True)
class JudgedColumn:
    """A metric column to judge.

    Attributes:
        key: the column's key in the per-sentence values.
        metric: the metric's name (the variants of one metric share it).
        removal: the removal variant, or ``None`` for a metric that removes no token.
        higher_is_better: the metric's direction.
    """

    key: str
    metric: str
    removal: Optional[str]
    higher_is_better: bool


@dataclasses.dataclass(frozen=True)
class Judgement:
    """One metric column's agreement with the ground truth.

    Attributes:
        column: the judged column.
        tau: Kendall's :math:`\\tau_b` between the metric's and the ground truth's rankings (``nan`` if undefined).
        low, high: its 95% bootstrap interval.
        sentences: the sentences used.
        undefined_resamples: resamples where :math:`\\tau_b` was undefined (left out of the interval).
        ranking: the methods, best first by the metric.
        flips: ``"A vs B: <variant> puts A first, <other> puts B first"`` for every flip with another variant.
    """

    column: JudgedColumn
    tau: float
    low: float
    high: float
    sentences: int
    undefined_resamples: int
    ranking: Tuple[str, ...]
    flips: Tuple[str, ...]


def _tau(first: np.ndarray, second: np.ndarray) -> float:
    if np.all(first == first[0]) or np.all(second == second[0]):
        return math.nan
    return float(stats.kendalltau(first, second)[0])


def _table(values: Mapping[str, Mapping[str, np.ndarray]], key: str, truth: str) -> Tuple[List[str], np.ndarray,
                                                                                          np.ndarray]:
    """The methods with both columns, and their values on the sentences where every method has both."""
    methods = [m for m, columns in values.items() if key in columns and truth in columns]
    if not methods:
        return [], np.zeros((0, 0)), np.zeros((0, 0))
    metric = np.stack([np.asarray(values[m][key], dtype=np.float64) for m in methods])
    target = np.stack([np.asarray(values[m][truth], dtype=np.float64) for m in methods])
    keep = np.isfinite(metric).all(0) & np.isfinite(target).all(0)
    return methods, metric[:, keep], target[:, keep]


def _resamples(count: int, seed: int, resamples: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, count, size=(resamples, count))


def judge_metrics(
    values: Mapping[str, Mapping[str, np.ndarray]],
    columns: Sequence[JudgedColumn],
    truth: str,
    seed: int = 0,
    resamples: int = RESAMPLES,
) -> List[Judgement]:
    """Judge every column against the ground-truth column ``truth`` (module docstring).

    Args:
        values: method -> column key -> per-sentence values (``nan`` where a sentence has none); every method's
            arrays index the same sentences.
        columns: the columns to judge; variants of one metric share :attr:`JudgedColumn.metric`.
        truth: the key of the ground-truth column (higher is better).
        seed: seeds the resamples.
        resamples: bootstrap resamples.

    Returns:
        One :class:`Judgement` per column with at least two methods and two sentences, in the order of ``columns``.
    """
    judgements: Dict[str, Judgement] = {}
    for column in columns:
        methods, metric, target = _table(values, column.key, truth)
        if len(methods) < 2 or metric.shape[1] < 2:
            continue
        sign = 1.0 if column.higher_is_better else -1.0
        oriented = sign * metric
        picks = _resamples(metric.shape[1], seed, resamples)
        boot_metric, boot_truth = oriented[:, picks].mean(-1), target[:, picks].mean(-1)  # (methods, resamples)
        taus = np.array([_tau(boot_metric[:, b], boot_truth[:, b]) for b in range(resamples)])
        defined = taus[np.isfinite(taus)]
        low, high = (float(np.percentile(defined, 2.5)), float(np.percentile(defined, 97.5))) if defined.size else (
            math.nan, math.nan)
        means = oriented.mean(1)
        ranking = tuple(methods[i] for i in np.argsort(-means, kind="stable"))
        judgements[column.key] = Judgement(column, _tau(means, target.mean(1)), low, high, metric.shape[1],
                                           int(resamples - defined.size), ranking, ())
    judged = [j.column for j in judgements.values()]
    return [dataclasses.replace(j, flips=tuple(_flips(j.column, judged, values, truth, seed, resamples)))
            for j in judgements.values()]


def _flips(column: JudgedColumn, judged: Sequence[JudgedColumn], values: Mapping[str, Mapping[str, np.ndarray]],
           truth: str, seed: int, resamples: int) -> List[str]:
    """The pairs of methods ``column`` and another removal variant of its metric order oppositely (module
    docstring), read on the sentences both variants have."""
    found = []
    for other in judged:
        if other.metric != column.metric or other.key == column.key:
            continue
        shares = _pair_shares(values, (column, other), truth, seed, resamples)
        for (first, second), (mine, theirs) in shares.items():
            if mine >= FLIP_SHARE and theirs <= 1 - FLIP_SHARE:
                found.append(f"{first} vs {second}: {column.removal} puts {first} first, {other.removal} puts "
                             f"{second} first")
            elif mine <= 1 - FLIP_SHARE and theirs >= FLIP_SHARE:
                found.append(f"{first} vs {second}: {column.removal} puts {second} first, {other.removal} puts "
                             f"{first} first")
    return found


def _pair_shares(values: Mapping[str, Mapping[str, np.ndarray]], variants: Tuple[JudgedColumn, JudgedColumn],
                 truth: str, seed: int, resamples: int) -> Dict[Tuple[str, str], Tuple[float, float]]:
    """For each pair of methods both variants score: the share of resamples in which each variant puts the first
    ahead of the second (on the sentences where every method has both variants and the ground truth)."""
    methods = [m for m, columns in values.items() if all(v.key in columns for v in variants) and truth in columns]
    if len(methods) < 2:
        return {}
    stacked = [np.stack([np.asarray(values[m][v.key], dtype=np.float64) * (1.0 if v.higher_is_better else -1.0)
                         for m in methods]) for v in variants]
    target = np.stack([np.asarray(values[m][truth], dtype=np.float64) for m in methods])
    keep = np.isfinite(stacked[0]).all(0) & np.isfinite(stacked[1]).all(0) & np.isfinite(target).all(0)
    if keep.sum() < 2:
        return {}
    picks = _resamples(int(keep.sum()), seed, resamples)
    means = [table[:, keep][:, picks].mean(-1) for table in stacked]
    return {(methods[a], methods[b]): (float((means[0][a] > means[0][b]).mean()),
                                       float((means[1][a] > means[1][b]).mean()))
            for a, b in itertools.combinations(range(len(methods)), 2)}
