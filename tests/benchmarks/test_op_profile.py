"""`op_profile` says which ops a method's calls spend their time in, per call."""

from __future__ import annotations

import torch

from captum_text_ext.benchmarks.op_profile import op_profile, op_profile_lines


def test_op_profile_counts_each_methods_ops_per_call_most_time_first() -> None:
    a = torch.randn(64, 64)

    def two_products() -> torch.Tensor:
        return a @ (a @ a)

    def one_sum() -> torch.Tensor:
        return a.sum()

    profiles = op_profile({"products": two_products, "sum": one_sum}, calls=3, rows=4)
    assert list(profiles) == ["products", "sum"]
    calls = {row["op"]: row["calls"] for row in profiles["products"]["rows"]}
    assert calls["aten::mm"] == 2 and "aten::mm" not in {row["op"] for row in profiles["sum"]["rows"]}
    for profiled in profiles.values():
        own = [row["own_ms"] for row in profiled["rows"]]
        assert own == sorted(own, reverse=True) and len(own) <= 4
        assert profiled["ms_per_call"] > 0 and profiled["own_ms_per_call"] >= sum(own) - 1e-9
    assert profiles["products"]["matrix_product_ms_per_call"] > 0 == profiles["sum"]["matrix_product_ms_per_call"]
    lines = op_profile_lines(profiles, "a test")
    assert lines[0].startswith("Profile by op (a test;") and "| `aten::mm` | 2 |" in "\n".join(lines)
