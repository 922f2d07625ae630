"""Bootstrap intervals, paired bootstrap p-values and Holm's adjustment."""

from __future__ import annotations

import numpy as np
import pytest

from captum_text_ext.benchmarks.statistics import bootstrap_interval, holm, paired_bootstrap_pvalue


def test_interval_contains_the_mean_and_shrinks_with_more_data():
    rng = np.random.default_rng(0)
    small, large = rng.normal(1.0, 1.0, 50), rng.normal(1.0, 1.0, 2000)
    low, high = bootstrap_interval(small)
    assert low < small.mean() < high
    low_large, high_large = bootstrap_interval(large)
    assert high_large - low_large < high - low
    assert bootstrap_interval([2.0, 2.0, float("nan")]) == (2.0, 2.0)
    assert all(np.isnan(bootstrap_interval([float("nan")])))


def test_interval_is_seeded():
    values = np.random.default_rng(1).normal(size=40)
    assert bootstrap_interval(values, seed=3) == bootstrap_interval(values, seed=3)


def test_paired_pvalue_separates_real_from_absent_differences():
    rng = np.random.default_rng(2)
    base = rng.normal(size=200)
    shifted = base + 0.5 + rng.normal(scale=0.1, size=200)
    assert paired_bootstrap_pvalue(shifted, base) < 0.001
    noisy = base + rng.normal(scale=1.0, size=200) * 1e-3
    assert paired_bootstrap_pvalue(noisy - noisy.mean() + base.mean(), base) > 0.2
    assert paired_bootstrap_pvalue(base, base) == 1.0
    with pytest.raises(ValueError, match="equal length"):
        paired_bootstrap_pvalue(base, base[:3])


def test_holm_matches_the_step_down_definition():
    p = [0.01, 0.04, 0.03, 0.5, float("nan")]
    adjusted = holm(p)
    # sorted: 0.01 (x4), 0.03 (x3), 0.04 (x2), 0.5 (x1); monotone
    assert adjusted[:4].tolist() == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert np.isnan(adjusted[4])
