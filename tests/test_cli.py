import json

import pytest

from captum_text_ext.cli import main


def test_demo_trains_explains_and_writes_the_report(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n-train", "1500", "--quiet"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["test_accuracy"] >= 0.9
    assert set(report["top1_ground_truth_precision"]) == {"Saliency (ℓ2 norm)", "IntegratedGradients (sum)"}
    assert all(0.0 <= v <= 1.0 for v in report["top1_ground_truth_precision"].values())
    assert f"test accuracy: {report['test_accuracy']:.3f}" in printed and "report.html" in printed
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("<h3>Sentence") == 6
    assert page.count('class="tok"') > 0 and "decisive tokens" in page


def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch) -> None:
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
