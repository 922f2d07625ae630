import gzip
from pathlib import Path

import pytest

from captum_text_ext.datasets import DatasetNotFoundError, load_ag_news, load_mr, load_sst
from captum_text_ext.datasets._paths import (
    DATA_ENV_VAR,
    CorruptDatasetError,
    candidate_data_dirs,
    find_dataset_file,
    read_lines,
)


def test_resolution_order_root_then_env_then_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "env"))
    cache = tmp_path / "home" / ".cache" / "captum_text_ext"
    assert candidate_data_dirs(tmp_path / "explicit") == [tmp_path / "explicit"]
    assert candidate_data_dirs() == [tmp_path / "env", cache]
    monkeypatch.delenv(DATA_ENV_VAR)
    assert candidate_data_dirs() == [cache]


def test_env_dir_wins_over_cache_and_plain_wins_over_gz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "env"))
    for base in (tmp_path / "env" / "mr", tmp_path / "home" / ".cache" / "captum_text_ext" / "mr"):
        base.mkdir(parents=True)
        (base / "f.txt.gz").write_bytes(gzip.compress(b"x\n"))
    assert find_dataset_file("mr", "f.txt") == tmp_path / "env" / "mr" / "f.txt.gz"
    (tmp_path / "env" / "mr" / "f.txt").write_text("x\n")
    assert find_dataset_file("mr", "f.txt") == tmp_path / "env" / "mr" / "f.txt"


@pytest.mark.parametrize(
    "load, dataset, filename",
    [
        (lambda: load_sst("train"), "sst", "train.txt"),
        (lambda: load_mr("train"), "mr", "rt-polarity."),
        (lambda: load_ag_news("train"), "ag_news", "test.csv"),
        (lambda: load_ag_news("train", source="official"), "ag_news", "train.csv"),
    ],
)
def test_missing_dataset_message_says_where_and_how(load, dataset: str, filename: str, empty_data_env: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load()
    message = str(info.value)
    cache = Path.home() / ".cache" / "captum_text_ext" / dataset
    for part in (repr(dataset), filename, str(empty_data_env / dataset), str(cache), DATA_ENV_VAR,
                 f"captum-text-ext download {dataset}"):
        assert part in message, (part, message)


def test_read_lines_reports_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(b"good\r\nfine\n\xff\xfebad\nlast")
    with pytest.raises(CorruptDatasetError, match=r"data.txt, line 3: not valid UTF-8") as info:
        read_lines(path)
    assert (info.value.path, info.value.line) == (path, 3)
    path.write_bytes(b"good\r\nfine\nlast")
    assert read_lines(path) == ["good", "fine", "last"]


def test_read_lines_reports_a_broken_gzip(tmp_path: Path) -> None:
    path = tmp_path / "data.txt.gz"
    path.write_bytes(gzip.compress(b"a\nb\n")[:-6])
    with pytest.raises(CorruptDatasetError, match=r"data.txt.gz: cannot be read"):
        read_lines(path)
