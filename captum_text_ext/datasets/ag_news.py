"""AG's News topic classification (Zhang et al., 2015), from its CSV files.

Files: ``<data dir>/ag_news/train.csv[.gz]`` (120000 rows) and ``test.csv[.gz]`` (7600 rows), no header, three
quoted fields per row: class (1-4), title, description. The loader has two sources, chosen by the caller and
never by which files happen to exist:

* ``"offline"`` uses only ``test.csv``, the file shipped with the test data, split with a seeded stratified split
  into ``AG_NEWS_OFFLINE_SIZES``: train 5320, dev 760, test 1520 (1330, 190 and 380 per class).
* ``"official"`` uses the published ``train.csv`` and ``test.csv`` as they are. It has no ``"dev"`` split:
  carving one out of ``train.csv`` would make ``"train"`` differ from the published split, so the caller
  decides (e.g. with :func:`stratified_split` on the train labels).

The text keeps the dataset's own escapes (a ``\\`` where a line break was, ``#36;``-style entity remnants).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from captum_text_ext.datasets._checks import check_choice
from captum_text_ext.datasets._paths import (
    CorruptDatasetError,
    DatasetNotFoundError,
    PathLike,
    find_dataset_file,
    read_lines,
)
from captum_text_ext.datasets._records import TextDataset, TextExample
from captum_text_ext.datasets._splits import stratified_split
from captum_text_ext.datasets.tokenize import kim_tokenize

__all__ = [
    "AG_NEWS_CLASS_NAMES",
    "AG_NEWS_OFFLINE_SIZES",
    "AG_NEWS_SOURCES",
    "AG_NEWS_SPLITS",
    "AG_NEWS_TEST_ROWS",
    "load_ag_news",
]

AG_NEWS_CLASS_NAMES = ("World", "Sports", "Business", "Sci/Tech")
"""The AG News labels by index (the file's class 1 is index 0)."""
AG_NEWS_SOURCES = ("offline", "official")
"""Where the splits come from (module docstring)."""
AG_NEWS_SPLITS = {"offline": ("train", "dev", "test"), "official": ("train", "test")}
"""The splits of each source."""
AG_NEWS_OFFLINE_SIZES = (("test", 1520), ("dev", 760), ("train", 5320))
"""The sizes of the offline source's splits of ``test.csv``."""
AG_NEWS_TEST_ROWS = 7600
"""Rows of the official ``test.csv``."""
_CLASS_FIELDS = ("1", "2", "3", "4")


def load_ag_news(
    split: str,
    root: Optional[PathLike] = None,
    source: str = "offline",
    seed: int = 0,
    tokenizer: Callable[[str], Sequence[str]] = kim_tokenize,
) -> TextDataset:
    """Read one split of AG News.

    ``text`` is ``title + " " + description``; ``tokens`` are ``tokenizer(text)``, by default
    :func:`kim_tokenize` (case kept). Labels are the CSV class minus one: 0 World, 1 Sports, 2 Business,
    3 Sci/Tech. The returned dataset's ``source`` says which source produced it.

    Args:
        split: ``"train"``, ``"dev"`` or ``"test"`` for ``source="offline"``; ``"train"`` or ``"test"`` for
            ``source="official"``.
        root: the data directory; by default ``$CAPTUM_TEXT_EXT_DATA``, then ``~/.cache/captum_text_ext``.
        source: ``"offline"`` (a seeded split of ``test.csv``) or ``"official"`` (``train.csv`` and ``test.csv``);
            see the module docstring.
        seed: the seed of the offline split; ignored by the official source.
        tokenizer: turns a text into its tokens.

    Returns:
        The split's examples in file order.

    Raises:
        ValueError: when ``source`` or ``split`` is not one of the accepted values.
        DatasetNotFoundError: when a file the source needs is in none of the data directories.
        CorruptDatasetError: when a row does not have 3 fields, its class is not 1-4, or the CSV is malformed;
            or, for the offline source, when ``test.csv`` does not have 7600 rows.
    """
    check_choice("source", source, AG_NEWS_SOURCES)
    if source == "official" and split == "dev":
        raise ValueError(
            "split must be 'train' or 'test' for source='official'; got 'dev': AG News publishes no dev split. "
            "Split one off the train labels with stratified_split, or use source='offline'."
        )
    check_choice("split", split, AG_NEWS_SPLITS[source])
    if source == "official":
        try:
            path = find_dataset_file("ag_news", f"{split}.csv", root)
        except DatasetNotFoundError as err:
            raise DatasetNotFoundError(
                f"{err} source='official' needs the published {split}.csv (`captum-text-ext download ag_news "
                f"--source official --allow-unverified`: its checksums are published but unverified here); "
                f"source='offline' needs only test.csv."
            ) from err
        return _dataset(split, source, None, _read_rows(path), tokenizer)
    path = find_dataset_file("ag_news", "test.csv", root)
    rows = _read_rows(path)
    if len(rows) != AG_NEWS_TEST_ROWS:
        raise CorruptDatasetError(
            path,
            None,
            f"the offline split needs the published {AG_NEWS_TEST_ROWS}-row test.csv; found {len(rows)} rows",
        )
    parts = stratified_split([label for label, _ in rows], AG_NEWS_OFFLINE_SIZES, seed)
    return _dataset(split, source, seed, [rows[i] for i in parts[split]], tokenizer)


def _read_rows(path: Path) -> List[Tuple[int, str]]:
    """``(label, text)`` for every row of an AG News CSV file."""
    rows = []
    reader = csv.reader(read_lines(path), strict=True)
    try:
        for row in reader:
            if len(row) != 3:
                raise CorruptDatasetError(
                    path, reader.line_num, f"expected 3 fields (class, title, description); got {len(row)}"
                )
            class_field, title, description = row
            if class_field not in _CLASS_FIELDS:
                raise CorruptDatasetError(path, reader.line_num, f"class must be 1, 2, 3 or 4; got {class_field!r}")
            rows.append((int(class_field) - 1, f"{title} {description}"))
    except csv.Error as err:
        raise CorruptDatasetError(path, reader.line_num, f"malformed CSV ({err})") from err
    return rows


def _dataset(
    split: str,
    source: str,
    seed: Optional[int],
    rows: List[Tuple[int, str]],
    tokenizer: Callable[[str], Sequence[str]],
) -> TextDataset:
    """The :class:`TextDataset` of the given rows."""
    examples = tuple(TextExample(text, tuple(tokenizer(text)), label) for label, text in rows)
    return TextDataset("ag_news", split, source, seed, AG_NEWS_CLASS_NAMES, examples)
