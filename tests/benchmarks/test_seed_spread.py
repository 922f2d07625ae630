"""The seed spread end to end on a synthetic zoo model: one model per seed, the spread of its numbers, and refusals."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest

from captum_text_ext.benchmarks.seed_spread import run_seed_spread
from captum_text_ext.cli import main
from captum_text_ext.models.checkpoints import load_checkpoint


def test_seed_spread_trains_each_seed_once_and_reports_the_spread(synthetic_zoo: dict, tmp_path: Path,
                                                                  capsys) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    cache.mkdir()
    shutil.copy(synthetic_zoo["cache"] / "lstm-synthetic.pt", cache)  # the recipe's seed (0): reused, not retrained
    status = main(["benchmark", "seed-spread", "--models", "lstm-synthetic", "--seeds", "0,1", "--cache-dir",
                   str(cache), "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    reseeded = cache / "seeds" / "seed-1" / "lstm-synthetic.pt"
    assert load_checkpoint(reseeded).metadata["seed"] == 1
    payload = json.loads((out / "seed_spread.json").read_text(encoding="utf-8"))
    model = payload["results"]["models"]["lstm-synthetic"]
    accuracies = [model["seeds"][s]["numbers"]["test accuracy"] for s in ("0", "1")]
    assert accuracies[0] == load_checkpoint(cache / "lstm-synthetic.pt").metadata["test_accuracy"]
    assert accuracies[1] == load_checkpoint(reseeded).metadata["test_accuracy"]
    assert model["spread"]["test accuracy"] == pytest.approx({
        "mean": statistics.fmean(accuracies), "sd": statistics.stdev(accuracies), "min": min(accuracies),
        "max": max(accuracies)})
    assert model["seeds"]["0"]["weights_sha256"] != model["seeds"]["1"]["weights_sha256"]
    assert payload["provenance"]["seeds"] == {"training 1": 0, "training 2": 1}
    markdown = (out / "seed_spread.md").read_text(encoding="utf-8")
    row = f"| test accuracy | {accuracies[0]:.4f} | {accuracies[1]:.4f} |"
    assert row in markdown and row in captured.out
    met = sum(a >= model["target_accuracy"] for a in accuracies)
    assert f"seeds meeting it: {met} of 2." in markdown
    # a second run reuses both models
    modified = reseeded.stat().st_mtime_ns
    run_seed_spread(out, cache_dir=cache, models=["lstm-synthetic"], seeds=[0, 1], progress=False)
    assert reseeded.stat().st_mtime_ns == modified


def test_seed_spread_refuses_a_cached_model_of_another_seed_and_too_few_seeds(synthetic_zoo: dict,
                                                                             tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "seeds" / "seed-3").mkdir(parents=True)
    shutil.copy(synthetic_zoo["cache"] / "lstm-synthetic.pt", cache)
    shutil.copy(synthetic_zoo["cache"] / "lstm-synthetic.pt", cache / "seeds" / "seed-3")
    with pytest.raises(ValueError, match="trained with seed 3, but its metadata says 0"):
        run_seed_spread(tmp_path / "out", cache_dir=cache, models=["lstm-synthetic"], seeds=[0, 3], progress=False)
    for seeds in ([0], [1, 1, 2]):
        with pytest.raises(ValueError, match="at least two distinct --seeds"):
            run_seed_spread(tmp_path / "out", cache_dir=cache, models=["lstm-synthetic"], seeds=seeds)
    with pytest.raises(ValueError, match="--models among"):
        run_seed_spread(tmp_path / "out", cache_dir=cache, models=["gpt-5"], seeds=[0, 1])
    with pytest.raises(SystemExit):
        main(["benchmark", "seed-spread", "--seeds", "0,one"])
    assert not (tmp_path / "out").exists()
