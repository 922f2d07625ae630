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
