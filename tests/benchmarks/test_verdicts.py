"""The method guide's tables: every metric's verdict for every method, read from the leaderboard's results."""

from __future__ import annotations

import math

from captum_text_ext.benchmarks.verdicts import answer_rst, guide_tables_rst, verdict, verdicts


def _cell(mean: float, best: bool = False, differs: bool = False) -> dict:
    return {"mean": mean, "low": mean - 0.01, "high": mean + 0.01, "n": 10, "best": best, "differs": differs}


def _leaderboard(judging=None) -> dict:
    summary = {
        "comp": {"A": _cell(0.5, best=True), "B": _cell(0.45), "C": _cell(0.2, differs=True)},
        "suff@unk": {"A": _cell(0.3, differs=True), "B": _cell(0.1, best=True)},
    }
    model = {"n": 10, "methods": {"A": {}, "B": {}, "C": {}}, "summary": summary, "judging": judging}
    return {"provenance": {"started_utc": "2026-12-01 10:00:00"},
            "results": {"columns": [{"key": "comp", "higher_is_better": True},
                                    {"key": "suff", "higher_is_better": False}],
                        "methods": {"A": "", "B": "", "C": ""}, "models": {"m": model}}}


def test_every_cell_has_its_verdict() -> None:
    assert verdicts(_leaderboard()["results"]) == {"m": {
        "A": {"comp": "best", "suff@unk": "worse"}, "B": {"comp": "tied", "suff@unk": "best"}, "C": {"comp": "worse"}}}
    assert verdict({"best": True, "differs": False}) == "best"


def test_tables_show_every_column_and_count_the_verdicts() -> None:
    text = guide_tables_rst(_leaderboard())
    assert "``comp`` ↑" in text and "``suff@unk`` ↓" in text
    rows = text.split("   * - ")[1:]
    assert rows[1].split("\n     - ") == ["A", "**0.500 best**", "0.300 worse", "1 / 0 / 1\n"]
    assert rows[2].split("\n     - ") == ["B", "0.450 tied", "**0.100 best**", "1 / 1 / 0\n"]
    assert rows[3].split("\n     - ")[2:] == ["n/a", "0 / 0 / 1\n"]
    assert "has no metric-judging table: it predates it" in text and "2026-12-01 10:00:00" in text


def test_the_judging_table_comes_first_when_the_results_have_it() -> None:
    judging = [{"column": {"metric": "comp", "removal": "unk"}, "tau": 0.6, "low": 0.2, "high": 0.9,
                "ranking": ["A", "B"], "flips": ["A vs B: zero, unk"]},
               {"column": {"metric": "infid", "removal": None}, "tau": math.nan, "low": math.nan, "high": math.nan,
                "ranking": ["B", "A"], "flips": []}]
    text = guide_tables_rst(_leaderboard(judging))
    assert text.index("Which metric to believe") < text.index("Every metric's verdict")
    assert "0.600 [0.200, 0.900]" in text and "⚠ A vs B: zero, unk" in text and "predates" not in text
    assert "   * - ``infid``\n     - no removal\n     - n/a\n     - B\n     - none" in text


def test_an_answer_lists_every_column_by_verdict_for_its_methods_on_every_model() -> None:
    results = _leaderboard()["results"]
    model = results["models"]["m"]
    model["methods"] = {"A": {"seconds_per_100": 1.5}, "B": {"seconds_per_100": 0.25}, "C": {}}
    model["excluded"] = {"D": "its op guard meets aten::foo"}
    text = answer_rst(results, ["A", "C", "D"])
    assert text.splitlines() == [
        "**m**:",
        "",
        "- A — best: ``comp``; worse: ``suff@unk``; 1.50 s per 100 sentences",
        "- C — worse: ``comp``",
        "- D — not applicable: its op guard meets aten::foo",
        "- best of each column: A in ``comp``; B in ``suff@unk``",
    ]
