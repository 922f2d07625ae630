"""The records returned by the text-classification loaders (MR, AG News, IMDB)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

__all__ = ["TextDataset", "TextExample"]


@dataclass(frozen=True)
class TextExample:
    """One labelled text.

    Attributes:
        text: the text as stored in the dataset (after the loader's documented clean-up, if any).
        tokens: the text's tokens.
        label: the class index, ``0 .. len(class_names) - 1``.
    """

    text: str
    tokens: Tuple[str, ...]
    label: int


@dataclass(frozen=True)
class TextDataset:
    """The examples of one split, with the class names and where they came from.

    It behaves as a read-only sequence of :class:`TextExample`.

    Attributes:
        name: the dataset, e.g. ``"mr"``.
        split: the split requested, e.g. ``"train"``.
        source: which files and split scheme produced the examples, e.g. ``"offline"`` or ``"official"`` for
            AG News.
        seed: the seed of the stratified split, or ``None`` when the split is the one published.
        class_names: the name of each class index.
        examples: the examples, in a fixed documented order.
    """

    name: str
    split: str
    source: str
    seed: Optional[int]
    class_names: Tuple[str, ...]
    examples: Tuple[TextExample, ...]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> TextExample:
        return self.examples[index]

    def __iter__(self) -> Iterator[TextExample]:
        return iter(self.examples)
