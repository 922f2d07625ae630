"""MR, the sentence polarity dataset v1.0 (Pang & Lee, 2005), with a seeded stratified train/dev/test split.

Files: ``<data dir>/mr/rt-polarity.pos[.gz]`` and ``rt-polarity.neg[.gz]``, 5331 UTF-8 lines each, one sentence
per line, the label given by the file. MR has no official split; here a seeded stratified split holds out
``MR_SPLIT_SIZES``: test 1066 (533 per class), dev 960 and train 8636 (480 and 4318 per class).
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence

from captum_text_ext.datasets._checks import check_choice
from captum_text_ext.datasets._paths import CorruptDatasetError, PathLike, find_dataset_file, read_lines
from captum_text_ext.datasets._records import TextDataset, TextExample
from captum_text_ext.datasets._splits import stratified_split
from captum_text_ext.datasets.tokenize import kim_tokenize

__all__ = ["MR_CLASS_NAMES", "MR_LINES_PER_FILE", "MR_SPLITS", "MR_SPLIT_SIZES", "load_mr"]

MR_CLASS_NAMES = ("negative", "positive")
"""The MR labels by index."""
MR_SPLITS = ("train", "dev", "test", "train+dev", "all")
"""The splits :func:`load_mr` serves."""
MR_SPLIT_SIZES = (("test", 1066), ("dev", 960), ("train", 8636))
"""The sizes of the seeded stratified split."""
MR_LINES_PER_FILE = 5331
"""Sentences in each of the two files."""


def load_mr(
    split: str,
    root: Optional[PathLike] = None,
    seed: int = 0,
    tokenizer: Callable[[str], Sequence[str]] = kim_tokenize,
) -> TextDataset:
    """Read MR and return one split of its seeded stratified split.

    The text is already lowercased and tokenized (punctuation separated by spaces). ``text`` is the line without
    its trailing whitespace. ``tokens`` come from :func:`kim_tokenize` by default, the tokenizer of Kim (2014)
    and Yuan et al. on this dataset: it splits off contractions (``"century's"`` gives ``century 's``) and drops
    the characters it does not keep (periods, hyphens, double quotes, accented letters; see :func:`kim_tokenize`).
    Pass ``tokenizer=str.split`` to keep the file's own tokens.

    Args:
        split: ``"train"``, ``"dev"``, ``"test"``, ``"train+dev"`` (everything but test) or ``"all"``.
        root: the data directory; by default ``$CAPTUM_TEXT_EXT_DATA``, then ``~/.cache/captum_text_ext``.
        seed: the seed of the split (see :func:`stratified_split`); the test split depends only on the seed.
        tokenizer: turns a text into its tokens.

    Returns:
        The split's examples (label 0 negative, 1 positive): the negative lines, then the positive ones, each in
        file order.

    Raises:
        ValueError: when ``split`` is not one of the accepted values.
        DatasetNotFoundError: when a file is in none of the data directories.
        CorruptDatasetError: when a file does not have 5331 lines, or a line is not UTF-8 or is blank.
    """
    check_choice("split", split, MR_SPLITS)
    texts: List[str] = []
    labels: List[int] = []
    for label, suffix in enumerate(("neg", "pos")):
        path = find_dataset_file("mr", f"rt-polarity.{suffix}", root)
        lines = read_lines(path)
        if len(lines) != MR_LINES_PER_FILE:
            raise CorruptDatasetError(path, None, f"expected {MR_LINES_PER_FILE} lines (MR v1.0); found {len(lines)}")
        for number, line in enumerate(lines, start=1):
            text = line.rstrip()
            if not text:
                raise CorruptDatasetError(path, number, "blank line; every line must hold a sentence")
            texts.append(text)
            labels.append(label)
    seed_used: Optional[int] = None
    if split == "all":
        indices = list(range(len(texts)))
    else:
        seed_used = seed
        parts = stratified_split(labels, MR_SPLIT_SIZES, seed)
        indices = sorted(parts["train"] + parts["dev"]) if split == "train+dev" else parts[split]
    examples = tuple(TextExample(texts[i], tuple(tokenizer(texts[i])), labels[i]) for i in indices)
    return TextDataset("mr", split, "rt-polarity v1.0", seed_used, MR_CLASS_NAMES, examples)
