"""``captum-text-ext benchmark corpus`` at a tiny scale: it runs every configuration as a user would and writes its
tables (the measurement itself is for an idle machine)."""

from __future__ import annotations

import json
from pathlib import Path

from captum_text_ext.cli import main


def test_the_corpus_benchmark_runs_every_configuration(synthetic_zoo: dict, tmp_path: Path, capsys) -> None:
    out = tmp_path / "results"
    status = main(["benchmark", "corpus", "--out", str(out), "--cache-dir", str(synthetic_zoo["cache"]),
                   "--models", "lstm-synthetic", "--methods", "lrp", "--n", "6"])
    printed = capsys.readouterr().out
    assert status == 0, printed
    results = json.loads((out / "corpus_speed.json").read_text(encoding="utf-8"))["results"]
    rows = results["throughput"]["lrp"]
    assert {"1 × 1", "1 × 2", "2 × 1"} <= set(rows) and not results["full"]
    assert all(rows[label]["examples"] == 6 and rows[label]["seconds"] > 0 for label in ("1 × 1", "1 × 2", "2 × 1"))
    assert len(rows["2 × 1"]["peak_memory_mb"]) == 2 and rows["efficiency"] > 0
    assert set(results["memory"]["peak_memory_mb_per_rank"]) == {"6", "60"}
    markdown = (out / "corpus_speed.md").read_text(encoding="utf-8")
    assert "a small-scale check, not the measurement" in markdown and "| lrp |" in printed
    assert main(["benchmark", "corpus", "--out", str(out), "--cache-dir", str(tmp_path), "--models",
                 "lstm-synthetic"]) == 2
    assert "captum-text-ext train lstm-synthetic" in capsys.readouterr().err


def test_rounds_take_the_median_and_the_range_of_the_efficiency(monkeypatch, tmp_path: Path) -> None:
    from captum_text_ext.benchmarks import corpus_speed

    times = iter([8.0, 6.0, 5.0, 6.0, 6.0, 3.0, 7.0, 5.0, 4.0])  # rounds of 1 × 1, 1 × 2, 2 × 1
    monkeypatch.setattr(corpus_speed, "_attribute", lambda arguments, processes, threads, work: {
        "seconds": next(times), "examples": 12, "peak_memory_mb": [100.0 + threads] * (processes or 1)})
    rows = corpus_speed._rounds(["--methods", "lrp"], corpus_speed.CONFIGURATIONS, tmp_path, rounds=3)
    assert rows["rounds"] == 3 and rows["1 × 1"]["seconds_per_round"] == [8.0, 6.0, 7.0]
    assert rows["1 × 1"]["seconds"] == 7.0 and rows["2 × 1"]["seconds"] == 4.0
    assert rows["efficiency"] == 7.0 / 8.0 and rows["efficiency_range"] == [0.8, 1.0]
    assert rows["1 × 1"]["sentences_per_second"] == 12 / 7.0 and rows["2 × 1 faster than 1 × 2"]
    assert rows["2 × 1"]["peak_memory_mb"] == [101.0, 101.0]
