import json
from pathlib import Path

import pytest
from _browser import elements_with_class, render_in_chromium

from captum_text_ext.cli import main
from captum_text_ext.explain import DEFAULT_METHODS, METHODS, OUTPUTS, explain
from captum_text_ext.models.checkpoints import load_checkpoint, weights_sha256


def test_demo_explains_scores_and_writes_a_report_that_renders(synthetic_zoo: dict, tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--cache-dir", str(synthetic_zoo["cache"]), "--quiet"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert set(report["models"]) == {"lstm-synthetic", "textcnn-synthetic"}
    for name, info in report["models"].items():
        assert f"{name}: test accuracy {info['test_accuracy']:.3f}" in printed
        loaded = load_checkpoint(synthetic_zoo["cache"] / f"{name}.pt")
        assert (info["checkpoint_sha256"], info["checkpoint_weights_sha256"]) == (loaded.sha256,
                                                                                  loaded.weights_sha256)
        precision = info["top1_ground_truth_precision"]
        assert set(precision) == {METHODS[key].label for key in DEFAULT_METHODS}
        assert all(0.0 <= v <= 1.0 for v in precision.values())
    assert len(list(out.glob("*.png"))) == 2 * 6
    dom = render_in_chromium(out / "report.html", tmp_path / "shot.png")
    rows = elements_with_class(dom, "heatmap-row")
    assert len(rows) == 6 * 2 * len(DEFAULT_METHODS)  # sentences × models × methods
    import matplotlib.image

    assert matplotlib.image.imread(tmp_path / "shot.png").std() > 0


def test_explain_writes_a_report_for_any_checkpoint(synthetic_zoo: dict, tmp_path: Path) -> None:
    checkpoint = synthetic_zoo["cache"] / "textcnn-synthetic.pt"
    status = main(["explain", "--checkpoint", str(checkpoint), "--text", "The movie wasn't good!",
                   "--methods", "integrated_gradients", "--target", "positive", "--out", str(tmp_path)])
    assert status == 0
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["weights_sha256"] == weights_sha256(load_checkpoint(checkpoint).model.state_dict())
    (sentence,) = report["sentences"]
    assert sentence["tokens"] == ["the", "movie", "was", "n't", "good", "!"]
    assert sentence["target"] == "positive"
    assert len(sentence["scores"]["Integrated Gradients"]) == 6
    assert report["output"] == "logit"


def test_explain_explains_the_logit_difference_on_request(synthetic_zoo: dict, tmp_path: Path) -> None:
    checkpoint = synthetic_zoo["cache"] / "textcnn-synthetic.pt"
    runs = {}
    for output in ("logit", "logit_difference"):
        assert main(["explain", "--checkpoint", str(checkpoint), "--text", "the movie was good", "--methods",
                     "saliency", "--target", "positive", "--output", output, "--out", str(tmp_path / output),
                     "--quiet"]) == 0
        runs[output] = json.loads((tmp_path / output / "report.json").read_text(encoding="utf-8"))
        assert runs[output]["output"] == output
        assert OUTPUTS[output] in (tmp_path / output / "report.html").read_text(encoding="utf-8")
    loaded = load_checkpoint(checkpoint)
    expected = explain(loaded.model, loaded.vocabulary, [["the", "movie", "was", "good"]],
                       loaded.metadata["class_names"], methods=["saliency"], target="positive",
                       output="logit_difference").records[0].scores
    (difference,), (logit,) = runs["logit_difference"]["sentences"], runs["logit"]["sentences"]
    assert difference["scores"]["Saliency"] == pytest.approx(expected.tolist(), abs=1e-6)
    assert difference["scores"]["Saliency"] != pytest.approx(logit["scores"]["Saliency"], abs=1e-6)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--text", "...", "--methods", "saliency"], "tokenizes to nothing"),
        (["--text", "good", "--methods", "shap"], "Unknown method(s) ['shap']"),
        (["--text", "good", "--target", "7"], "Expected `target` in [0, 2)"),
    ],
)
def test_explain_errors_are_one_line(arguments, message: str, synthetic_zoo: dict, tmp_path: Path, capsys) -> None:
    checkpoint = synthetic_zoo["cache"] / "lstm-synthetic.pt"
    assert main(["explain", "--checkpoint", str(checkpoint), *arguments, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_unreadable_checkpoint_is_one_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    assert main(["explain", "--checkpoint", str(bad), "--text", "good", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not a captum_text_ext checkpoint" in err


def test_user_errors_are_one_line_and_exit_2(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("CAPTUM_TEXT_EXT_DATA", str(tmp_path))
    assert main(["download", "imdb", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("captum-text-ext download: error:") and "allow-unverified" in err


def test_unknown_dataset_is_an_argparse_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["download", "nope"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_demo_on_sst_uses_the_cached_bilstm_sst5(shared_data_dir: Path, tmp_path: Path, capsys) -> None:
    """The SST path end to end, with a small stand-in saved under the zoo name (training the real one takes minutes;
    its accuracy is recorded in benchmarks/results/models.md, not tested here)."""
    import torch

    from captum_text_ext.datasets import SST_FINE_CLASS_NAMES, Vocabulary, load_sst
    from captum_text_ext.models import LSTMClassifier, save_checkpoint

    vocab = Vocabulary.build(tuple(t.lower() for t in tree.tokens) for tree in load_sst("test", shared_data_dir))
    torch.manual_seed(0)
    model = LSTMClassifier(len(vocab), 8, 8, 5, output_bias=False)
    metadata = {"zoo_name": "bilstm-sst5", "dataset": "sst5", "class_names": list(SST_FINE_CLASS_NAMES),
                "test_accuracy": 0.0}
    save_checkpoint(tmp_path / "cache" / "bilstm-sst5.pt", model, vocab, metadata)
    out = tmp_path / "demo"
    status = main(["demo", "--dataset", "sst", "--data-root", str(shared_data_dir), "--cache-dir",
                   str(tmp_path / "cache"), "--out", str(out), "--quiet"])
    assert status == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert list(report["models"]) == ["bilstm-sst5"]
    assert "top1_ground_truth_precision" not in report["models"]["bilstm-sst5"]  # SST has no ground truth
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count('class="heatmap-row"') == 6 * len(DEFAULT_METHODS)
    assert any(word in page for word in ("not", "n&#x27;t", "never"))  # the showcase includes negations


def _tiny_checkpoint(path: Path) -> Path:
    import torch

    from captum_text_ext.datasets import Vocabulary
    from captum_text_ext.models import LSTMClassifier, save_checkpoint

    vocab = Vocabulary(["<pad>", "<unk>", "the", "movie", "was", "n't", "good", "a", "dull", "plot", "!"])
    torch.manual_seed(0)
    model = LSTMClassifier(len(vocab), embedding_dim=6, hidden_size=5, num_classes=2)
    save_checkpoint(path, model, vocab, {"dataset": "synthetic", "class_names": ["negative", "positive"]})
    return path


def test_explain_reads_a_file_of_texts_into_one_report(tmp_path: Path, capsys) -> None:
    checkpoint = _tiny_checkpoint(tmp_path / "tiny.pt")
    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"text": "The movie was good!", "id": "r1"}\n\n{"text": "a dull plot, superb cast"}\n',
                     encoding="utf-8")
    status = main(["explain", "--checkpoint", str(checkpoint), "--texts", str(texts), "--methods",
                   "saliency,lrp", "--device", "cpu", "--out", str(tmp_path / "out"), "--quiet"])
    printed = capsys.readouterr().out
    assert status == 0, printed
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert [s["id"] for s in report["sentences"]] == ["r1", "3"]
    assert report["sentences"][1]["tokens"] == ["a", "dull", "plot", ",", "superb", "cast"]
    assert "skipped line 2 of" in printed and "text r1: predicted" in printed
    assert "warning: 3 of 11 words (27.3%) are not in the model's vocabulary" in printed
    assert "',', 'superb', 'cast'" in printed
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert page.count('class="heatmap-row"') == 2 * 2


def test_explain_refuses_a_file_that_is_not_utf8_in_one_line(tmp_path: Path, capsys) -> None:
    checkpoint = _tiny_checkpoint(tmp_path / "tiny.pt")
    texts = tmp_path / "texts.txt"
    texts.write_bytes("good\nthe caf\xe9\n".encode("latin-1"))
    assert main(["explain", "--checkpoint", str(checkpoint), "--texts", str(texts), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not UTF-8: byte 12 (line 2)" in err


def test_train_with_another_seed_records_it_and_moves_the_weights(synthetic_zoo: dict, tmp_path: Path,
                                                                  capsys) -> None:
    cache, record = tmp_path / "cache", tmp_path / "results" / "models"
    assert main(["train", "lstm-synthetic", "--seed", "1", "--cache-dir", str(cache), "--record", str(record),
                 "--quiet"]) == 0
    assert "lstm-synthetic: test accuracy" in capsys.readouterr().out
    reseeded, recipe = load_checkpoint(cache / "lstm-synthetic.pt"), load_checkpoint(
        synthetic_zoo["cache"] / "lstm-synthetic.pt")
    assert reseeded.metadata["seed"] == 1 and recipe.metadata["seed"] == 0
    assert reseeded.weights_sha256 != recipe.weights_sha256
    saved = json.loads((record / "lstm-synthetic.json").read_text(encoding="utf-8"))
    assert saved["provenance"]["seeds"] == {"model": 1}
    row = next(line for line in (record.parent / "models.md").read_text(encoding="utf-8").splitlines()
               if line.startswith("| lstm-synthetic |"))
    assert " | 1 | " in row and "--seed 1" in row
