"""The metric-judging table's statistics: Kendall's τ_b against the ground truth with bootstrap intervals over
sentences, and the flips between removal variants, on hand-made per-sentence values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from captum_text_ext.benchmarks.metric_judging import FLIP_SHARE, JudgedColumn, judge_metrics

METHODS = ("A", "B", "C", "D")
TRUTH = {"A": 0.9, "B": 0.7, "C": 0.5, "D": 0.2}


def values(seed: int = 0, n: int = 60) -> dict:
    """Per-sentence top-1 hits around each method's truth level, and metrics that follow or reverse it."""
    rng = np.random.default_rng(seed)
    out = {}
    for m in METHODS:
        truth = (rng.random(n) < TRUTH[m]).astype(float)
        out[m] = {
            "top1": truth,
            "agree": TRUTH[m] + rng.normal(0, 0.05, n),
            "reverse": -TRUTH[m] + rng.normal(0, 0.05, n),
            "lower_better": -TRUTH[m] + rng.normal(0, 0.05, n),
            "noise": rng.normal(0, 1, n),
        }
    return out


def column(key: str, higher: bool = True, metric: str = "", removal=None) -> JudgedColumn:
    return JudgedColumn(key, metric or key, removal, higher)


def test_tau_follows_the_rankings_and_its_direction() -> None:
    data = values()
    judged = {j.column.key: j for j in judge_metrics(data, [column("agree"), column("reverse"),
                                                            column("lower_better", higher=False)], "top1")}
    assert judged["agree"].tau == pytest.approx(1.0) and judged["agree"].ranking == METHODS
    assert judged["reverse"].tau == pytest.approx(-1.0)
    assert judged["lower_better"].tau == pytest.approx(1.0)  # lower is better: the reversed values agree
    for j in judged.values():
        assert j.low <= j.tau + 1e-12 and j.tau <= j.high + 1e-12 and j.sentences == 60 and not j.flips


def test_tau_is_scipys_on_the_means_and_the_interval_resamples_sentences() -> None:
    data = values(seed=1)
    [noise] = judge_metrics(data, [column("noise")], "top1", seed=3)
    means = np.array([data[m]["noise"].mean() for m in METHODS])
    truth = np.array([data[m]["top1"].mean() for m in METHODS])
    assert noise.tau == pytest.approx(stats.kendalltau(means, truth)[0])
    assert noise.high - noise.low > 0.5  # a metric of noise: resampling the sentences reorders the methods


def test_sentences_without_a_value_for_every_method_are_left_out() -> None:
    data = values()
    data["B"]["agree"][:10] = np.nan
    data["C"]["top1"][50:] = np.nan
    [agree] = judge_metrics(data, [column("agree")], "top1")
    assert agree.sentences == 40


def test_a_ranking_reversed_by_another_removal_is_flagged_and_a_noisy_one_is_not() -> None:
    data = values()
    for m in METHODS:
        data[m]["agree@unk"] = data[m]["reverse"]
        data[m]["agree@pad"] = data[m]["agree"] + np.random.default_rng(4).normal(0, 1e-3, 60)
    columns = [column("agree", metric="agree", removal="zero"), column("agree@unk", metric="agree", removal="unk"),
               column("agree@pad", metric="agree", removal="pad")]
    judged = {j.column.key: j for j in judge_metrics(data, columns, "top1")}
    assert "A vs D: zero puts A first, unk puts D first" in judged["agree"].flips
    assert all("unk" in flip for flip in judged["agree"].flips)  # pad keeps zero's order
    assert "A vs D: unk puts D first, zero puts A first" in judged["agree@unk"].flips
    assert len(judged["agree"].flips) == 6 and FLIP_SHARE == 0.95  # every pair of the 4 methods


def test_too_few_methods_or_sentences_are_not_judged() -> None:
    data = {m: {"top1": np.ones(1), "agree": np.ones(1)} for m in METHODS}
    assert judge_metrics(data, [column("agree")], "top1") == []
    assert judge_metrics({"A": values()["A"]}, [column("agree")], "top1") == []
