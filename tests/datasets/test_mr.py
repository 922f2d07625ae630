"""Tests of the MR loader and its seeded stratified split."""

from __future__ import annotations

import gzip
import shutil
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest

from captum_text_ext.datasets._paths import CorruptDatasetError
from captum_text_ext.datasets._records import TextDataset
from captum_text_ext.datasets.mr import load_mr
from captum_text_ext.datasets.tokenize import kim_tokenize

SIZES = {"train": (4318, 4318), "dev": (480, 480), "test": (533, 533), "train+dev": (4798, 4798), "all": (5331, 5331)}


@pytest.fixture(scope="module")
def mr_splits(shared_data_dir: Path) -> Dict[str, TextDataset]:
    return {split: load_mr(split, root=shared_data_dir) for split in SIZES}


def _keys(dataset: TextDataset) -> List[Tuple[str, int]]:
    return [(example.text, example.label) for example in dataset]


@pytest.mark.parametrize("split", list(SIZES))
def test_sizes_and_stratification(split: str, mr_splits: Dict[str, TextDataset]) -> None:
    dataset = mr_splits[split]
    counts = Counter(example.label for example in dataset)
    assert (counts[0], counts[1]) == SIZES[split]
    assert (dataset.name, dataset.split, dataset.class_names) == ("mr", split, ("negative", "positive"))
    assert dataset.seed == (None if split == "all" else 0)


def test_splits_are_disjoint_and_cover_everything(mr_splits: Dict[str, TextDataset]) -> None:
    train, dev, test = (set(_keys(mr_splits[split])) for split in ("train", "dev", "test"))
    assert not (train & dev or train & test or dev & test)
    assert train | dev | test == set(_keys(mr_splits["all"]))
    assert len(set(_keys(mr_splits["all"]))) == 10662  # no line repeats
    assert set(_keys(mr_splits["train+dev"])) == train | dev


def test_order_labels_and_text(mr_splits: Dict[str, TextDataset]) -> None:
    everything = mr_splits["all"]
    assert [example.label for example in everything] == [0] * 5331 + [1] * 5331
    assert everything[0].text == "simplistic , silly and tedious ."
    assert everything[5331].text.startswith("the rock is destined to be the 21st century's new \" conan \"")
    assert all(example.text == example.text.rstrip() for example in everything)
    assert all(example.tokens == tuple(kim_tokenize(example.text)) for example in everything)
    assert any("é" in example.text for example in everything)  # UTF-8, not latin-1 mojibake


def test_deterministic_and_seeded(shared_data_dir: Path, mr_splits: Dict[str, TextDataset]) -> None:
    assert load_mr("test", root=shared_data_dir, seed=0) == mr_splits["test"]
    other = load_mr("test", root=shared_data_dir, seed=1)
    assert other.seed == 1
    assert set(_keys(other)) != set(_keys(mr_splits["test"]))


def test_custom_tokenizer(shared_data_dir: Path) -> None:
    dataset = load_mr("dev", root=shared_data_dir, tokenizer=str.split)
    assert all(example.tokens == tuple(example.text.split()) for example in dataset)


def _copy_mr(shared_data_dir: Path, target: Path, plain: bool) -> Path:
    """Copy the MR files into ``target/mr``: the .pos file as .gz and the .neg file plain or .gz."""
    directory = target / "mr"
    directory.mkdir(parents=True)
    shutil.copy(shared_data_dir / "mr" / "rt-polarity.pos.gz", directory)
    if plain:
        with gzip.open(shared_data_dir / "mr" / "rt-polarity.neg.gz", "rb") as source:
            (directory / "rt-polarity.neg").write_bytes(source.read())
    else:
        shutil.copy(shared_data_dir / "mr" / "rt-polarity.neg.gz", directory)
    return directory


def test_plain_and_gz_read_alike(tmp_path: Path, shared_data_dir: Path, mr_splits: Dict[str, TextDataset]) -> None:
    _copy_mr(shared_data_dir, tmp_path, plain=True)
    assert load_mr("all", root=tmp_path).examples == mr_splits["all"].examples


def _neg_lines(shared_data_dir: Path) -> List[bytes]:
    with gzip.open(shared_data_dir / "mr" / "rt-polarity.neg.gz", "rb") as source:
        return source.read().splitlines(keepends=True)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda lines: lines[:3], r"rt-polarity\.neg: expected 5331 lines \(MR v1\.0\); found 3"),
        (lambda lines: lines[:6] + [b" \n"] + lines[7:], r"rt-polarity\.neg, line 7: blank line"),
        (lambda lines: lines[:2] + [b"caf\xe9\n"] + lines[3:], r"rt-polarity\.neg, line 3: not valid UTF-8"),
    ],
)
def test_corrupt_file(
    tmp_path: Path, shared_data_dir: Path, edit: Callable[[List[bytes]], List[bytes]], match: str
) -> None:
    directory = _copy_mr(shared_data_dir, tmp_path, plain=False)
    (directory / "rt-polarity.neg.gz").unlink()
    (directory / "rt-polarity.neg").write_bytes(b"".join(edit(_neg_lines(shared_data_dir))))
    with pytest.raises(CorruptDatasetError, match=match):
        load_mr("all", root=tmp_path)


def test_bad_split(tmp_path: Path) -> None:
    expected = r"split must be one of 'train', 'dev', 'test', 'train\+dev', 'all'; got 'val'"
    with pytest.raises(ValueError, match=expected):
        load_mr("val", root=tmp_path)
