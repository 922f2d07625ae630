"""The IMDB large movie review dataset (Maas et al., 2011), from the ``aclImdb`` directory tree.

Layout: ``<split>/pos/*.txt`` and ``<split>/neg/*.txt`` with ``split`` ``train`` or ``test`` and file names
``<id>_<rating>.txt``; ``unsup/`` is ignored. For each data directory ``d`` searched (see :func:`load_imdb`), the
first of ``d/imdb/aclImdb``, ``d/imdb``, ``d/aclImdb`` and ``d`` itself that holds ``<split>/pos`` and
``<split>/neg`` is used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from captum_text_ext.datasets._checks import check_choice
from captum_text_ext.datasets._paths import (
    CorruptDatasetError,
    DatasetNotFoundError,
    PathLike,
    candidate_data_dirs,
    missing_dataset_message,
    read_lines,
)
from captum_text_ext.datasets._records import TextDataset, TextExample
from captum_text_ext.datasets.tokenize import kim_tokenize

__all__ = ["IMDB_CLASS_NAMES", "IMDB_SPLITS", "load_imdb"]

IMDB_CLASS_NAMES = ("negative", "positive")
"""The IMDB labels by index."""
IMDB_SPLITS = ("train", "test")
"""The IMDB splits."""
_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_FILE_NAME = re.compile(r"(\d+)_(\d+)\.txt")


def load_imdb(
    split: str,
    root: Optional[PathLike] = None,
    tokenizer: Callable[[str], Sequence[str]] = kim_tokenize,
) -> TextDataset:
    """Read one split of IMDB.

    ``text`` is the review with every HTML line break (``<br />``, ``<br/>``, ``<br>``, any case) replaced by a
    space; a review stored on several lines is joined with spaces. ``tokens`` are ``tokenizer(text)``, by
    default :func:`kim_tokenize` (case kept).

    Args:
        split: ``"train"`` or ``"test"``.
        root: the data directory; by default ``$CAPTUM_TEXT_EXT_DATA``, then ``~/.cache/captum_text_ext``.
        tokenizer: turns a text into its tokens.

    Returns:
        The split's examples: the negative reviews (label 0), then the positive ones (label 1), each sorted by
        review id.

    Raises:
        ValueError: when ``split`` is not one of the accepted values.
        DatasetNotFoundError: when no searched directory holds ``<split>/pos`` and ``<split>/neg``.
        CorruptDatasetError: when a ``.txt`` file is not named ``<id>_<rating>.txt`` or is not UTF-8.
    """
    check_choice("split", split, IMDB_SPLITS)
    split_dir = _find_split_dir(split, root)
    examples = []
    for label, polarity in enumerate(("neg", "pos")):
        for path in _review_files(split_dir / polarity):
            text = _LINE_BREAK.sub(" ", " ".join(read_lines(path)))
            examples.append(TextExample(text, tuple(tokenizer(text)), label))
    return TextDataset("imdb", split, "aclImdb", None, IMDB_CLASS_NAMES, tuple(examples))


def _find_split_dir(split: str, root: Optional[PathLike]) -> Path:
    """The first ``<candidate>/<split>`` directory holding ``pos/`` and ``neg/`` (see the module docstring)."""
    searched = candidate_data_dirs(root)
    bases = [base for d in searched for base in (d / "imdb" / "aclImdb", d / "imdb", d / "aclImdb", d)]
    for base in bases:
        if (base / split / "pos").is_dir() and (base / split / "neg").is_dir():
            return base / split
    message = missing_dataset_message("imdb", f"the directories {split}/pos and {split}/neg", searched)
    raise DatasetNotFoundError(f"{message} Looked for them in: {', '.join(str(base) for base in bases)}.")


def _review_files(directory: Path) -> List[Path]:
    """The ``.txt`` files of ``directory`` sorted by review id, then rating."""
    keyed: List[Tuple[Tuple[int, int], Path]] = []
    for path in directory.glob("*.txt"):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise CorruptDatasetError(path, None, "file name must be <id>_<rating>.txt, e.g. 123_8.txt")
        keyed.append(((int(match.group(1)), int(match.group(2))), path))
    return [path for _, path in sorted(keyed)]
