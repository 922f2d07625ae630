"""Tests of the IMDB loader on a tiny aclImdb tree."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import pytest

from captum_text_ext.datasets._paths import DATA_ENV_VAR, CorruptDatasetError, DatasetNotFoundError
from captum_text_ext.datasets.imdb import load_imdb
from captum_text_ext.datasets.tokenize import kim_tokenize

REVIEWS: Dict[str, Dict[str, str]] = {
    "train/pos": {"10_9.txt": "Great film.<br /><br />Loved it!", "2_8.txt": "Good<br/>fun", "3_7.txt": "Nice<BR>one"},
    "train/neg": {"0_1.txt": "Awful.", "11_2.txt": "Bad, bad."},
    "test/pos": {"0_10.txt": "Superb."},
    "test/neg": {"0_3.txt": "Dull."},
    "unsup": {"0_0.txt": "Not labelled."},
}


def _build(base: Path) -> Path:
    for directory, files in REVIEWS.items():
        (base / directory).mkdir(parents=True)
        for name, text in files.items():
            (base / directory / name).write_text(text, encoding="utf-8")
    (base / "train" / "urls_pos.txt").write_text("http://example.com\n", encoding="utf-8")  # not a review
    return base


def test_train_order_labels_and_line_breaks(tmp_path: Path) -> None:
    _build(tmp_path / "aclImdb")
    dataset = load_imdb("train", root=tmp_path)
    assert [(example.text, example.label) for example in dataset] == [
        ("Awful.", 0),
        ("Bad, bad.", 0),
        ("Good fun", 1),
        ("Nice one", 1),
        ("Great film.  Loved it!", 1),
    ]
    assert all(example.tokens == tuple(kim_tokenize(example.text)) for example in dataset)
    assert (dataset.name, dataset.split, dataset.source, dataset.seed) == ("imdb", "train", "aclImdb", None)
    assert dataset.class_names == ("negative", "positive")


def test_test_split(tmp_path: Path) -> None:
    _build(tmp_path / "aclImdb")
    assert [(example.text, example.label) for example in load_imdb("test", root=tmp_path)] == [
        ("Dull.", 0),
        ("Superb.", 1),
    ]


@pytest.mark.parametrize("layout", ["aclImdb", "", "imdb/aclImdb", "imdb"])
def test_layouts(tmp_path: Path, layout: str) -> None:
    _build(tmp_path / layout if layout else tmp_path)
    assert len(load_imdb("train", root=tmp_path)) == 5


def test_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _build(tmp_path / "imdb" / "aclImdb")
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert len(load_imdb("test")) == 2


def test_multi_line_review_is_joined(tmp_path: Path) -> None:
    base = _build(tmp_path / "aclImdb")
    (base / "test" / "pos" / "0_10.txt").write_text("First line.\nSecond line.\n", encoding="utf-8")
    assert load_imdb("test", root=tmp_path)[1].text == "First line. Second line."


def test_bad_file_name(tmp_path: Path) -> None:
    base = _build(tmp_path / "aclImdb")
    (base / "train" / "neg" / "review.txt").write_text("x", encoding="utf-8")
    with pytest.raises(CorruptDatasetError, match=r"neg[/\\]review\.txt: file name must be <id>_<rating>\.txt"):
        load_imdb("train", root=tmp_path)


def test_invalid_utf8(tmp_path: Path) -> None:
    base = _build(tmp_path / "aclImdb")
    (base / "train" / "neg" / "5_1.txt").write_bytes(b"caf\xe9")
    with pytest.raises(CorruptDatasetError, match=r"5_1\.txt, line 1: not valid UTF-8"):
        load_imdb("train", root=tmp_path)


def test_missing_dataset(empty_data_env: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_imdb("train")
    message = str(info.value)
    for part in (
        "'imdb'",
        "train/pos",
        str(empty_data_env / "imdb" / "aclImdb"),
        str(empty_data_env / "aclImdb"),
        "CAPTUM_TEXT_EXT_DATA",
        "captum-text-ext download imdb",
    ):
        assert part in message


def test_bad_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"split must be one of 'train', 'test'; got 'dev'"):
        load_imdb("dev", root=tmp_path)
