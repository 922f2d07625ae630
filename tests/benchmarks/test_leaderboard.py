"""The leaderboard end to end on the two synthetic zoo models at tiny scale, and its tables' marks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from captum_text_ext.benchmarks import BENCHMARKS
from captum_text_ext.benchmarks.leaderboard import RANDOM, _Scores, summarize
from captum_text_ext.benchmarks.leaderboard_columns import COLUMNS
from captum_text_ext.cli import main
from captum_text_ext.explain import METHODS


def test_leaderboard_runs_end_to_end_and_writes_what_it_prints(synthetic_zoo: dict, tmp_path: Path, capsys) -> None:
    out = tmp_path / "leaderboard"
    status = main(["benchmark", "leaderboard", "--out", str(out), "--cache-dir", str(synthetic_zoo["cache"]),
                   "--models", "lstm-synthetic,textcnn-synthetic", "--n", "10", "--sensitivity-n", "3"])
    captured = capsys.readouterr()
    printed = captured.out
    assert status == 0, captured.err
    markdown = (out / "leaderboard.md").read_text(encoding="utf-8")
    body = markdown.split("\n\n", 2)[2]  # after the provenance comment and the visible summary line
    assert body.strip() in printed
    payload = json.loads((out / "leaderboard.json").read_text(encoding="utf-8"))
    models = payload["results"]["models"]
    assert set(models) == {"lstm-synthetic", "textcnn-synthetic"}
    lstm, cnn = models["lstm-synthetic"], models["textcnn-synthetic"]
    assert "DeepLift" in lstm["excluded"] and "DeepLift" not in cnn["excluded"] and "DeepLift" in cnn["methods"]
    assert set(lstm["methods"]) == {m.label for m in METHODS.values()} - {"DeepLift", "TransformerLRP"} | {RANDOM}
    assert "no self-attention" in lstm["excluded"]["TransformerLRP"]
    for model in (lstm, cnn):
        assert model["n"] == 10 and len(model["sentences"]) == 10
        summary = model["summary"]
        assert {"comp", "suff", "del", "ins", "NAOPC comp", "NAOPC suff", "infid", "sens", "top1", "AUPRC",
                "sign"} <= set(summary)
        assert set(summary["NAOPC comp"]) == set(summary["comp"])  # every method and the random row
        for column, cells in summary.items():
            assert sum(cell["best"] for cell in cells.values()) == 1
            for cell in cells.values():
                assert cell["low"] <= cell["mean"] + 1e-12 and cell["mean"] <= cell["high"] + 1e-12
        assert summary["sens"]["LRP"]["n"] == 3 and summary["comp"]["LRP"]["n"] == 10
        assert RANDOM not in summary["infid"]
        assert "Saliency" not in summary["sign"] and "LRP" in summary["sign"] and RANDOM in summary["sign"]
        assert set(summary["neg×word"]) <= {"CD"}
        assert (out / f"curves-{'lstm-synthetic' if model is lstm else 'textcnn-synthetic'}.png").is_file()
    assert "## lstm-synthetic" in markdown and "Not applicable:" in markdown
    assert payload["results"]["output"] == "logit"
    assert "the same quantity, the target logit z_t of the predicted class (CD included, with bias_product='phrase')" \
        in markdown
    assert "- CD: sum over the embedding" in markdown and "bias_product='phrase'" in payload["results"]["methods"]["CD"]
    assert "(not the full run of the default models: no goal)" in markdown
    top1, auprc = lstm["summary"]["top1"], lstm["summary"]["AUPRC"]
    for label in ("LRP", "CD"):
        line = (f"lstm-synthetic, top-1 ground-truth precision of {label}: {top1[label]['mean']:.3f}, AUPRC "
                f"{auprc[label]['mean']:.3f} (sanity check on the synthetic")
        assert line in markdown
    judging = body.index("## Which metric to believe: agreement with the ground truth")
    first, synthetic = body.index("## Ground truth the models provably use"), body.index("## Faithfulness metrics")
    assert judging < first < synthetic < body.index("\n## lstm-synthetic")
    for name, model in (("lstm-synthetic", lstm), ("textcnn-synthetic", cnn)):
        # the pad embedding is zero (padding_idx): said, not computed twice; unk is computed beside zero
        assert "the zero vector on this model, so the numbers of `zero`" in model["removals"]["pad"]
        assert {"comp@unk", "suff@unk", "del@unk", "ins@unk", "NAOPC comp@unk", "NAOPC suff@unk", "NAOPC comp",
                "NAOPC suff"} <= set(model["summary"])
        assert not any(key.endswith("@pad") for key in model["summary"])
        rows = {(j["column"]["metric"], j["column"]["removal"]): j for j in model["judging"]}
        removal_metrics = ("comp", "suff", "del", "ins", "NAOPC comp", "NAOPC suff")
        assert set(rows) == {(m, r) for m in removal_metrics for r in ("zero", "unk", "ft")} | {("infid", None),
                                                                                                 ("sens", None)}
        # the fine-tuned removal: its own columns, and what the fine-tuning did, stated
        assert {f"{m}@ft" for m in removal_metrics} <= set(model["summary"])
        tuning = model["fine_tuning"]
        assert tuning["epochs"] == 1 and len(tuning["train_loss"]) == 1 and tuning["seconds"] > 0
        assert set(tuning["accuracy"]) == {"original", "fine-tuned"}
        accuracy = tuning["accuracy"]
        assert accuracy["original"]["clean"] == model["accuracy"]
        assert (f"original {accuracy['original']['clean']:.3f} / {accuracy['original']['tokens removed']:.3f}, "
                f"fine-tuned {accuracy['fine-tuned']['clean']:.3f} / {accuracy['fine-tuned']['tokens removed']:.3f}"
                in body.split(f"\n## {name}\n")[1])
        assert "fine-tuned with random token removal (F-Fidelity style" in model["removals"]["ft"]
        for (metric, removal), j in rows.items():
            assert -1 <= j["tau"] <= 1 and j["low"] <= j["high"] and j["ranking"][0] in model["methods"]
            cell = f"| {metric} | {removal or '-'} | {j['tau']:.3f} [{j['low']:.3f}, {j['high']:.3f}] |"
            assert cell in body[judging:first].split(f"### {name}")[1], (name, metric, removal)
            if metric.startswith("NAOPC"):  # a one-token sentence has one ordering: NAOPC is undefined there
                assert 0 < j["sentences"] <= model["n_correct"]
            else:
                assert j["sentences"] == (3 if metric == "sens" else model["n_correct"])  # sens: the first 3 only
        assert rows[("comp", "zero")]["column"]["key"] == "comp" and rows[("comp", "unk")]["column"]["key"] == \
            "comp@unk"
    assert "Not measured yet: run `captum-text-ext benchmark planted`" in body  # no planted.json beside this out
    assert payload["provenance"]["command"].startswith("captum-text-ext benchmark leaderboard")


def test_models_scored_in_worker_processes_give_the_same_numbers(synthetic_zoo: dict, tmp_path: Path) -> None:
    runs = {}
    for processes in (1, 2):
        out = tmp_path / f"processes-{processes}"
        assert main(["benchmark", "leaderboard", "--out", str(out), "--cache-dir", str(synthetic_zoo["cache"]),
                     "--models", "lstm-synthetic,textcnn-synthetic", "--n", "6", "--sensitivity-n", "2",
                     "--methods", "saliency,lrp,shapley_value_sampling", "--processes", str(processes)]) == 0
        runs[processes] = json.loads((out / "leaderboard.json").read_text(encoding="utf-8"))["results"]
    assert runs[2]["processes"] == 2
    assert re.search(r"logical cores, 2 processes × \d+ torch threads? \(not the full run",
                     (tmp_path / "processes-2" / "leaderboard.md").read_text(encoding="utf-8"))
    for name in ("lstm-synthetic", "textcnn-synthetic"):
        serial, parallel = runs[1]["models"][name], runs[2]["models"][name]
        assert serial["summary"] == parallel["summary"] and serial["judging"] == parallel["judging"]
        assert serial["fine_tuning"]["train_loss"] == parallel["fine_tuning"]["train_loss"]
        assert set(parallel["seconds"]) == {"fine-tuning", "NAOPC bounds", "attribution", "sensitivity-max",
                                            "other metrics"}


def test_leaderboard_options_are_checked(tmp_path: Path, capsys) -> None:
    assert main(["benchmark", "arras2017", "--n", "3", "--out", str(tmp_path)]) == 2
    assert "--n" in capsys.readouterr().err
    assert main(["benchmark", "leaderboard", "--models", "nope", "--out", str(tmp_path)]) == 2
    assert "--models" in capsys.readouterr().err
    assert main(["benchmark", "leaderboard", "--processes", "0", "--out", str(tmp_path)]) == 2
    assert "--processes >= 1" in capsys.readouterr().err
    assert main(["benchmark", "planted", "--processes", "2", "--out", str(tmp_path)]) == 2
    assert "--processes" in capsys.readouterr().err
    assert main(["benchmark", "leaderboard", "--models", "lstm-synthetic", "--n", "0", "--out", str(tmp_path)]) == 2
    assert BENCHMARKS["leaderboard"].options


def test_summary_marks_only_differences_that_survive_holm() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.1, 300)
    results = {
        "best": _Scores({"comp": base + 0.2}, 1.0, [], []),
        "tied": _Scores({"comp": base + 0.2 + rng.normal(0, 1e-4, 300)}, 1.0, [], []),
        "worse": _Scores({"comp": base}, 1.0, [], []),
    }
    cells = summarize(results)["comp"]
    winner = max(cells, key=lambda m: cells[m]["mean"])
    assert cells[winner]["best"] and winner in ("best", "tied")
    assert cells["worse"]["differs"] and cells["worse"]["p_holm"] < 0.05
    other = "tied" if winner == "best" else "best"
    assert not cells[other]["differs"]
    assert [c.key for c in COLUMNS][:2] == ["comp", "suff"]
