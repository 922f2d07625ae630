"""Where a call's time goes, op by op, for methods compared side by side: PyTorch's profiler (``torch.profiler``,
CPU activities) over a few calls of each method, the entries with the most own CPU time per call. The speed
benchmarks give it for the cell that misses its target by the most, so that the results file says why.

An entry is an ATen op (``aten::mm``) or a node the profiler records around other ops: an autograd function's
forward or backward (``RecurrentLRP``, ``RecurrentLRPBackward``), whose own time is the Python that runs between the
ops it calls. The profiler adds its own cost per op, so the milliseconds per call are above the timed ones; the
column to read is where they go.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List

from torch.profiler import ProfilerActivity, profile

__all__ = ["MATRIX_PRODUCTS", "OP_PROFILE_CALLS", "OP_PROFILE_ROWS", "op_profile", "op_profile_lines"]

OP_PROFILE_CALLS = 10
"""Profiled calls per method (after one untimed call)."""
OP_PROFILE_ROWS = 10
"""Entries listed per method."""
MATRIX_PRODUCTS = frozenset({"aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm", "aten::baddbmm_"})
"""The ATen matrix products (their own time is the BLAS call's), summed apart in each profile."""


def op_profile(
    methods: Dict[str, Callable[[], Any]], calls: int = OP_PROFILE_CALLS, rows: int = OP_PROFILE_ROWS
) -> Dict[str, Dict[str, Any]]:
    """Profile each method's calls (one untimed call first) by op.

    Args:
        methods: what to call, by name (each call one method call on fixed inputs).
        calls: profiled calls per method.
        rows: entries kept per method.

    Returns:
        By method: ``calls`` (profiled), ``ms_per_call`` (wall time under the profiler), ``own_ms_per_call``
        (the own CPU time of every entry together), ``matrix_product_ms_per_call`` (that of the
        :data:`MATRIX_PRODUCTS`) and ``rows``: ``op``, ``calls`` per method call and ``own_ms`` per method call, the
        most first.
    """
    result: Dict[str, Dict[str, Any]] = {}
    for name, run in methods.items():
        run()
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            started = time.perf_counter()
            for _ in range(calls):
                run()
            elapsed = time.perf_counter() - started
        entries = [
            {"op": entry.key, "calls": entry.count / calls, "own_ms": entry.self_cpu_time_total / 1e3 / calls}
            for entry in profiler.key_averages()
        ]
        entries.sort(key=lambda entry: entry["own_ms"], reverse=True)
        result[name] = {
            "calls": calls,
            "ms_per_call": 1e3 * elapsed / calls,
            "own_ms_per_call": sum(entry["own_ms"] for entry in entries),
            "matrix_product_ms_per_call": sum(entry["own_ms"] for entry in entries if entry["op"] in MATRIX_PRODUCTS),
            "rows": entries[:rows],
        }
    return result


def op_profile_lines(profiles: Dict[str, Dict[str, Any]], where: str) -> List[str]:
    """The profiles side by side as markdown: a line saying what was profiled (``where``), then a table per
    method."""
    lines = [f"Profile by op ({where}; torch.profiler, its own cost included): the entries with the most own CPU time, "
             "per call."]
    for name, profiled in profiles.items():
        lines += [
            "",
            f"{name}, {profiled['calls']} calls: {profiled['ms_per_call']:.2f} ms per call under the profiler, "
            f"{profiled['own_ms_per_call']:.2f} ms own CPU time in all entries, of which the matrix products "
            f"{profiled['matrix_product_ms_per_call']:.2f} ms.",
            "",
            "| entry | calls | own ms |",
            "|---|---|---|",
            *(f"| `{row['op']}` | {row['calls']:g} | {row['own_ms']:.3f} |" for row in profiled["rows"]),
        ]
    return lines
