"""A corpus as the runner reads it: examples in corpus order, read one window at a time.

:func:`as_corpus` accepts what :func:`~captum_text_ext.corpus.attribute_corpus` takes: a file of texts (read as
:mod:`captum_text_ext.corpus.texts` says, streamed from byte offsets so that a large file is never held in memory), a
list of raw texts (ids ``"0"``, ``"1"``, ...), a list of :class:`~captum_text_ext.corpus.texts.Text`, or a list of
``(words, label)`` pairs such as a zoo dataset's split (:func:`zoo_dataset`, e.g. ``sst2:train``). Every example has
a content hash (its id, text or words, and label), and :meth:`Corpus.scan` hashes each window and the whole corpus:
a resumed run refuses a corpus that is not the one it started with.
"""

from __future__ import annotations

import abc
import array
import dataclasses
import hashlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from captum_text_ext.corpus.texts import Text, iter_texts
from captum_text_ext.datasets._checks import check_choice
from captum_text_ext.datasets._paths import PathLike
from captum_text_ext.models.zoo_data import ZOO_DATASETS, load_zoo_data

__all__ = [
    "SPLITS",
    "Corpus",
    "CorpusItem",
    "CorpusScan",
    "FileCorpus",
    "ListCorpus",
    "as_corpus",
    "zoo_dataset",
]

SPLITS = ("train", "dev", "test")
"""The splits of a zoo dataset (``NAME:SPLIT``)."""


@dataclasses.dataclass(frozen=True)
class CorpusItem:
    """One example: raw ``text`` (tokenized by the run) or tokenized ``words``, and its gold ``label`` if known."""

    id: str
    text: Optional[str] = None
    words: Optional[Tuple[str, ...]] = None
    label: Optional[int] = None

    def content_hash(self) -> str:
        """The hex SHA-256 of the id, the text or words, and the label (the per-example hash of a run)."""
        content = self.text if self.words is None else "\x1f".join(self.words)
        digest = hashlib.sha256(f"{self.id}\x1e{content}\x1e{self.label}".encode("utf-8"))
        return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class CorpusScan:
    """What one pass over a corpus found.

    Attributes:
        count: examples.
        window_hashes: the hash of each window of examples (its examples' content hashes, hashed).
        fingerprint: the hash of the whole corpus (its window hashes, hashed).
        skipped: what the source held that is no example, with why (blank lines of a file).
        unlabelled: examples without a gold label.
    """

    count: int
    window_hashes: List[str]
    fingerprint: str
    skipped: Dict[str, str]
    unlabelled: int


class Corpus(abc.ABC):
    """Examples in corpus order, read a window at a time.

    Attributes:
        description: what the corpus is, for the run's provenance (a file name, ``sst2:train``).
    """

    description: str

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def items(self, start: int, stop: int) -> List[CorpusItem]:
        """The examples at corpus positions ``start`` … ``stop - 1``."""

    def window(self, index: int, size: int) -> List[CorpusItem]:
        """Window ``index`` of ``size`` examples (the last one may be shorter)."""
        return self.items(index * size, min((index + 1) * size, len(self)))

    def scan(self, size: int) -> CorpusScan:
        """Hash every window of ``size`` examples and the corpus, and check that the ids are unique.

        Raises:
            ValueError: for an empty corpus or an id given twice.
        """
        if len(self) == 0:
            raise ValueError(f"The corpus {self.description} holds no example")
        hashes, id_digests, unlabelled = [], array.array("Q"), 0
        for start in range(0, len(self), size):
            items = self.items(start, min(start + size, len(self)))
            unlabelled += sum(item.label is None for item in items)
            hashes.append(hashlib.sha256("".join(i.content_hash() for i in items).encode()).hexdigest())
            id_digests.extend(int.from_bytes(hashlib.sha256(i.id.encode()).digest()[:8], "little") for i in items)
        digests = np.frombuffer(id_digests, dtype=np.uint64)
        values, counts = np.unique(digests, return_counts=True)
        if bool((counts > 1).any()):
            repeated = {int(v) for v in values[counts > 1]}
            twice = [i.id for i in self.items(0, len(self))
                     if int.from_bytes(hashlib.sha256(i.id.encode()).digest()[:8], "little") in repeated]
            raise ValueError(f"The corpus {self.description} gives the id {twice[0]!r} more than once; ids must be "
                             "unique")
        fingerprint = hashlib.sha256("".join(hashes).encode()).hexdigest()
        return CorpusScan(len(self), hashes, fingerprint, self.skipped(), unlabelled)

    def skipped(self) -> Dict[str, str]:
        """What the source held that is no example, with why."""
        return {}


class ListCorpus(Corpus):
    """Examples held in memory."""

    def __init__(self, items: Sequence[CorpusItem], description: str) -> None:
        self._items = list(items)
        self.description = description

    def __len__(self) -> int:
        return len(self._items)

    def items(self, start: int, stop: int) -> List[CorpusItem]:
        return self._items[start:stop]


class FileCorpus(Corpus):
    """The texts of a file (:mod:`~captum_text_ext.corpus.texts`), streamed: only each text's byte offset and line
    number are kept (16 bytes per text).

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: as :func:`~captum_text_ext.corpus.texts.iter_texts` does.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        self.description = self.path.name
        self._offsets, self._numbers = array.array("q"), array.array("q")
        self._blank: Dict[str, str] = {}
        for line in iter_texts(self.path):
            if line.text is None:
                self._blank[f"line {line.number}"] = "blank line"
            else:
                self._offsets.append(line.offset)
                self._numbers.append(line.number)

    def __len__(self) -> int:
        return len(self._offsets)

    def items(self, start: int, stop: int) -> List[CorpusItem]:
        if start >= stop:
            return []
        out: List[CorpusItem] = []
        for line in iter_texts(self.path, (self._offsets[start], self._numbers[start])):
            if line.text is not None:
                out.append(CorpusItem(line.text.id, text=line.text.text))
                if len(out) == stop - start:
                    break
        return out

    def skipped(self) -> Dict[str, str]:
        return dict(self._blank)


def zoo_dataset(spec: str, root: Optional[PathLike] = None) -> ListCorpus:
    """The sentences of a zoo dataset's split, ``NAME:SPLIT`` (``sst2:train``: 6,920 sentences), as the zoo's models
    read them (tokenized and, for SST, lowercased; whole sentences, never phrases); ids are the positions ``"0"``,
    ``"1"``, ...

    Raises:
        ValueError: for a malformed spec or an unknown dataset or split.
    """
    name, _, split = spec.partition(":")
    if not split:
        raise ValueError(f"Expected a dataset as NAME:SPLIT (e.g. sst2:train), but got {spec!r}")
    check_choice("dataset", name, ZOO_DATASETS)
    check_choice("split", split, SPLITS)
    data = load_zoo_data(name, root)
    pairs = {"train": data.train, "dev": data.dev, "test": data.test}[split]
    items = [CorpusItem(str(i), words=tuple(words), label=label) for i, (words, label) in enumerate(pairs)]
    return ListCorpus(items, spec)


CorpusLike = Union[Corpus, PathLike, Sequence[str], Sequence[Text], Sequence[Tuple[Sequence[str], int]]]
"""What :func:`as_corpus` reads."""


def as_corpus(source: CorpusLike) -> Corpus:
    """A :class:`Corpus` from a file path, a list of raw texts, of :class:`~captum_text_ext.corpus.texts.Text`, or of
    ``(words, label)`` pairs (module docstring).

    Raises:
        TypeError: for anything else.
    """
    if isinstance(source, Corpus):
        return source
    if isinstance(source, (str, Path)):
        return FileCorpus(source)
    if not isinstance(source, Sequence):
        raise TypeError(f"Expected a file path or a list of examples, but got {type(source).__name__}")
    items: List[CorpusItem] = []
    entry: object
    for index, entry in enumerate(source):
        if isinstance(entry, str):
            items.append(CorpusItem(str(index), text=entry))
        elif isinstance(entry, Text):
            items.append(CorpusItem(entry.id, text=entry.text))
        elif isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], int):
            items.append(CorpusItem(str(index), words=tuple(entry[0]), label=entry[1]))
        else:
            raise TypeError(f"Expected raw texts, Text objects or (words, label) pairs, but item {index} is "
                            f"{type(entry).__name__}")
    return ListCorpus(items, f"{len(items)} examples given in memory")
