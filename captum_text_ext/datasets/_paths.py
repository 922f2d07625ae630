"""Where the datasets live, and how a missing or damaged file is reported.

Resolution order for the data directory (first hit wins):

1. the ``root`` argument of a loader,
2. the environment variable ``CAPTUM_TEXT_EXT_DATA``,
3. ``~/.cache/captum_text_ext``.

Inside the data directory each dataset has its own sub-directory (``sst/``, ``mr/``, ``ag_news/``, ``imdb/``,
``arras_lrp/``). A file may be stored plain or gzip-compressed (``train.txt`` or ``train.txt.gz``); both are read.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path
from typing import List, Optional, Union

__all__ = [
    "CorruptDatasetError",
    "DATA_ENV_VAR",
    "DEFAULT_DATA_DIR",
    "DatasetNotFoundError",
    "PathLike",
    "candidate_data_dirs",
    "find_dataset_file",
    "missing_dataset_message",
    "open_binary",
    "read_lines",
]

DATA_ENV_VAR = "CAPTUM_TEXT_EXT_DATA"
"""The environment variable naming the data directory."""
DEFAULT_DATA_DIR = Path("~/.cache/captum_text_ext")

PathLike = Union[str, "os.PathLike[str]"]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file is in none of the directories searched.

    The message names the dataset, every directory searched, the environment variable and the command that
    downloads the dataset.
    """


class CorruptDatasetError(ValueError):
    """A dataset file exists but cannot be parsed; the message names the file and the line number.

    Attributes:
        path: the file.
        line: 1-based line number of the first bad line (``None`` when the problem is not tied to a line).
    """

    def __init__(self, path: PathLike, line: Optional[int], reason: str) -> None:
        self.path = Path(path)
        self.line = line
        where = f"{self.path}, line {line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {reason}")


def candidate_data_dirs(root: Optional[PathLike] = None) -> List[Path]:
    """The data directories searched, in order: ``root`` if given, else ``$CAPTUM_TEXT_EXT_DATA``, then the cache.

    An explicit ``root`` is the only directory searched: a user who names a directory does not want a file from
    somewhere else.
    """
    if root is not None:
        return [Path(root).expanduser()]
    dirs = []
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(DEFAULT_DATA_DIR.expanduser())
    return dirs


def find_dataset_file(dataset: str, filename: str, root: Optional[PathLike] = None) -> Path:
    """Find ``<data dir>/<dataset>/<filename>`` (or its ``.gz`` twin) in the directories searched.

    Args:
        dataset: the dataset's sub-directory name, e.g. ``"sst"``.
        filename: the file name without ``.gz``, e.g. ``"train.txt"``.
        root: an explicit data directory (see :func:`candidate_data_dirs`).

    Returns:
        The path of the first existing file; the plain file wins over the ``.gz`` one in the same directory.

    Raises:
        DatasetNotFoundError: when no directory holds the file.
    """
    searched = candidate_data_dirs(root)
    for directory in searched:
        for name in (filename, filename + ".gz"):
            path = directory / dataset / name
            if path.is_file():
                return path
    raise DatasetNotFoundError(missing_dataset_message(dataset, f"{filename}[.gz]", searched))


def missing_dataset_message(dataset: str, what: str, searched: List[Path]) -> str:
    """The message of :class:`DatasetNotFoundError`: dataset, directories searched, env var, download command."""
    dirs = ", ".join(str(d / dataset) for d in searched)
    return (
        f"Dataset {dataset!r}: {what} not found. Searched: {dirs}. Pass `root=...`, set the environment variable "
        f"{DATA_ENV_VAR} to the directory that holds `{dataset}/`, or download it with "
        f"`captum-text-ext download {dataset}` (or `captum_text_ext.datasets.download({dataset!r}, root)`)."
    )


def open_binary(path: PathLike) -> io.BufferedIOBase:
    """Open a file for reading bytes, decompressing it when its name ends in ``.gz``."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def read_lines(path: PathLike) -> List[str]:
    """All lines of a UTF-8 text file (plain or ``.gz``) without their line ending (``\\n``, or ``\\r\\n``).

    Lines are decoded one at a time, so a decoding error names its exact line.

    Raises:
        CorruptDatasetError: when a line is not valid UTF-8 or the file is not valid gzip.
    """
    lines: List[str] = []
    try:
        with open_binary(path) as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise CorruptDatasetError(path, number, f"not valid UTF-8 ({err.reason})") from err
                lines.append(line.rstrip("\r\n") if line.endswith("\n") else line)
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise CorruptDatasetError(path, None, f"cannot be read ({err})") from err
    return lines
