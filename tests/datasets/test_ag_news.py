"""Tests of the AG News loader, offline and official sources."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from captum_text_ext.datasets._paths import CorruptDatasetError, DatasetNotFoundError
from captum_text_ext.datasets._records import TextDataset
from captum_text_ext.datasets.ag_news import load_ag_news
from captum_text_ext.datasets.tokenize import kim_tokenize

OFFLINE_PER_CLASS = {"train": 1330, "dev": 190, "test": 380}
TINY_ROWS = ['"1","World title","World text."', '"2","Sports ""quoted""","Sports, text"', '"4","Tech","AP - x\\y"']


@pytest.fixture(scope="module")
def offline(shared_data_dir: Path) -> Dict[str, TextDataset]:
    return {split: load_ag_news(split, root=shared_data_dir) for split in OFFLINE_PER_CLASS}


def _keys(dataset: TextDataset) -> List[Tuple[str, int]]:
    return [(example.text, example.label) for example in dataset]


def _write(path: Path, rows: List[str], compress: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(row + "\n" for row in rows).encode("utf-8")
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("split", list(OFFLINE_PER_CLASS))
def test_offline_sizes_and_stratification(split: str, offline: Dict[str, TextDataset]) -> None:
    dataset = offline[split]
    assert Counter(example.label for example in dataset) == {label: OFFLINE_PER_CLASS[split] for label in range(4)}
    assert (dataset.name, dataset.split, dataset.source, dataset.seed) == ("ag_news", split, "offline", 0)
    assert dataset.class_names == ("World", "Sports", "Business", "Sci/Tech")


def test_offline_splits_partition_the_test_file(shared_data_dir: Path, offline: Dict[str, TextDataset]) -> None:
    parts = [set(_keys(offline[split])) for split in OFFLINE_PER_CLASS]
    assert sum(len(part) for part in parts) == 7600
    official_test = load_ag_news("test", root=shared_data_dir, source="official")
    assert set.union(*parts) == set(_keys(official_test))


def test_official_test_rows(shared_data_dir: Path) -> None:
    dataset = load_ag_news("test", root=shared_data_dir, source="official", seed=5)
    assert len(dataset) == 7600 and (dataset.source, dataset.seed) == ("official", None)
    first = dataset[0]
    assert first.label == 2  # class "3", Business
    assert first.text.startswith("Fears for T N pension after talks Unions representing workers")
    assert first.tokens == tuple(kim_tokenize(first.text))
    assert "\\" in dataset[1].text and "#36;" in dataset[1].text  # the dataset's own escapes are kept


def test_offline_is_seeded(shared_data_dir: Path, offline: Dict[str, TextDataset]) -> None:
    assert load_ag_news("dev", root=shared_data_dir, seed=0) == offline["dev"]
    assert set(_keys(load_ag_news("dev", root=shared_data_dir, seed=1))) != set(_keys(offline["dev"]))


def test_official_reads_train_and_test_csv(tmp_path: Path) -> None:
    _write(tmp_path / "ag_news" / "train.csv", TINY_ROWS)
    _write(tmp_path / "ag_news" / "test.csv", TINY_ROWS[:1], compress=True)
    train = load_ag_news("train", root=tmp_path, source="official")
    assert [(example.text, example.label) for example in train] == [
        ("World title World text.", 0),
        ('Sports "quoted" Sports, text', 1),
        ("Tech AP - x\\y", 3),
    ]
    assert len(load_ag_news("test", root=tmp_path, source="official")) == 1


def test_plain_and_gz_read_alike(tmp_path: Path) -> None:
    _write(tmp_path / "plain" / "ag_news" / "train.csv", TINY_ROWS)
    _write(tmp_path / "gz" / "ag_news" / "train.csv", TINY_ROWS, compress=True)
    plain = load_ag_news("train", root=tmp_path / "plain", source="official")
    assert plain == load_ag_news("train", root=tmp_path / "gz", source="official")


def test_official_train_missing(shared_data_dir: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"train\.csv.*source='offline' needs only test\.csv"):
        load_ag_news("train", root=shared_data_dir, source="official")


def test_source_never_switches(tmp_path: Path) -> None:
    _write(tmp_path / "ag_news" / "train.csv", TINY_ROWS)
    with pytest.raises(DatasetNotFoundError, match=r"test\.csv\[\.gz\] not found"):
        load_ag_news("train", root=tmp_path)  # offline needs test.csv, even though train.csv is there


def test_offline_needs_the_full_test_file(tmp_path: Path) -> None:
    _write(tmp_path / "ag_news" / "test.csv", TINY_ROWS)
    with pytest.raises(CorruptDatasetError, match=r"test\.csv: the offline split needs the published 7600-row"):
        load_ag_news("train", root=tmp_path)


@pytest.mark.parametrize(
    ("bad_row", "match"),
    [
        ('"1","only two"', r"line 3: expected 3 fields \(class, title, description\); got 2"),
        ('"1","a","b","c"', r"line 3: expected 3 fields .*; got 4"),
        ("", r"line 3: expected 3 fields .*; got 0"),
        ('"5","a","b"', r"line 3: class must be 1, 2, 3 or 4; got '5'"),
        ('"World","a","b"', r"line 3: class must be 1, 2, 3 or 4; got 'World'"),
        ('"1","a"b","c"', r"line 3: malformed CSV"),
    ],
)
def test_corrupt_row(tmp_path: Path, bad_row: str, match: str) -> None:
    path = _write(tmp_path / "ag_news" / "train.csv", TINY_ROWS[:2] + [bad_row] + TINY_ROWS[2:])
    with pytest.raises(CorruptDatasetError, match=r"ag_news[/\\]train\.csv, " + match) as info:
        load_ag_news("train", root=tmp_path, source="official")
    assert (info.value.path, info.value.line) == (path, 3)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"source must be one of 'offline', 'official'; got 'web'"):
        load_ag_news("train", root=tmp_path, source="web")
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test' for source='official'; got 'dev'"):
        load_ag_news("dev", root=tmp_path, source="official")
    with pytest.raises(ValueError, match=r"split must be one of 'train', 'dev', 'test'; got 'valid'"):
        load_ag_news("valid", root=tmp_path)
