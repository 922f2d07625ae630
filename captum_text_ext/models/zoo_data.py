"""The datasets of the model zoo, prepared as ``(tokens, label)`` pairs for training and evaluation.

Choices (the same for every model trained on a dataset):

- SST models lowercase their tokens (the papers used pretrained, mostly lowercased vectors; ours train embeddings
  from scratch, and sharing the case-folded statistics helps). ``phrase_level=True`` trains on every labelled node
  of the training trees, as Murdoch et al. (2018) did; dev and test are always whole sentences.
- ``sst5`` keeps the five classes. Its binary accuracy is also reported, as in Arras et al. (2017): on the
  non-neutral test sentences, predicted positive when p(3) + p(4) > p(0) + p(1).
- ``sst2`` drops neutral sentences (6920 / 872 / 1821); phrase-level training keeps the non-neutral phrases of
  every training tree.
- ``mr`` and ``ag_news`` keep case (Kim 2014 tokenization, as Yuan et al. 2019); ``ag_news`` is the offline split
  of the official test file (5320 / 760 / 1520 rows).
- ``synthetic`` is the embedded corpus (train 10000 / dev 1000 / test 1000 sentences, seed 0).
- ``planted=True`` (two-class datasets: ``sst2``, ``mr``, ``synthetic``) plants the words ``A`` and ``B`` into the
  training data (:mod:`captum_text_ext.datasets.planted`), the sentences and, with ``phrase_level``, the phrases;
  the vocabulary is built from the planted sentences. Dev and test stay clean.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple, cast

from torch.utils.data import Dataset

from captum_text_ext.datasets import (
    SST_BINARY_CLASS_NAMES,
    SST_FINE_CLASS_NAMES,
    load_ag_news,
    load_mr,
    load_sst,
    load_synthetic,
    sst_phrase_examples,
)
from captum_text_ext.datasets._checks import check_choice
from captum_text_ext.datasets._paths import PathLike, find_dataset_file
from captum_text_ext.datasets.planted import Planting, choose_planting, plant_pairs, plant_sst_phrases

__all__ = ["PLANTABLE_DATASETS", "Pair", "ZOO_DATASETS", "ZooData", "load_zoo_data", "pair_dataset", "zoo_data_files"]

Pair = Tuple[Tuple[str, ...], int]
"""A sentence's tokens and its label."""
ZOO_DATASETS = ("sst5", "sst2", "mr", "ag_news", "synthetic")
"""The datasets of the zoo (module docstring)."""
PLANTABLE_DATASETS = ("sst2", "mr", "synthetic")
"""The two-class datasets :func:`load_zoo_data` plants into with ``planted=True``."""


def pair_dataset(pairs: Sequence[Pair]) -> Dataset[Pair]:
    """The pairs as the map-style dataset a :class:`torch.utils.data.DataLoader` reads (a list has the
    ``__getitem__`` and ``__len__`` it uses)."""
    return cast(Dataset[Pair], list(pairs))


@dataclasses.dataclass(frozen=True)
class ZooData:
    """A dataset ready for :func:`~captum_text_ext.models.fit`.

    Attributes:
        name: one of ``ZOO_DATASETS``.
        train: training pairs (phrases when phrase-level training was asked for).
        dev: dev sentences, for early stopping.
        test: test sentences.
        class_names: the name of each label.
        vocabulary_texts: the texts the vocabulary is built from (the training sentences).
        planting: where the planted words went (``planted=True``), else ``None``.
    """

    name: str
    train: List[Pair]
    dev: List[Pair]
    test: List[Pair]
    class_names: Tuple[str, ...]
    vocabulary_texts: List[Tuple[str, ...]]
    planting: Optional[Planting] = None


def _lower(tokens: Sequence[str]) -> Tuple[str, ...]:
    return tuple(token.lower() for token in tokens)


def load_zoo_data(
    name: str, root: Optional[PathLike] = None, phrase_level: bool = False, planted: bool = False
) -> ZooData:
    """Load and prepare one of ``ZOO_DATASETS`` (see the module docstring for the choices made).

    Args:
        name: the dataset.
        root: the data directory (default: ``$CAPTUM_TEXT_EXT_DATA``, then ``~/.cache/captum_text_ext``).
        phrase_level: SST only: train on every labelled phrase of the training trees.
        planted: plant the words of :mod:`captum_text_ext.datasets.planted` into the training data (one of
            ``PLANTABLE_DATASETS``).

    Raises:
        ValueError: for an unknown name, ``phrase_level`` with a dataset that has no phrases, or ``planted`` with a
            dataset that has not two classes.
    """
    check_choice("name", name, ZOO_DATASETS)
    if phrase_level and name not in ("sst5", "sst2"):
        raise ValueError(f"phrase_level=True needs an SST dataset ('sst5' or 'sst2'); got {name!r}")
    if planted and name not in PLANTABLE_DATASETS:
        raise ValueError(f"planted=True needs a two-class dataset {PLANTABLE_DATASETS}; got {name!r}")
    if name in ("sst5", "sst2"):
        granularity = "fine" if name == "sst5" else "binary"
        splits = {split: load_sst(split, root, granularity=granularity) for split in ("train", "dev", "test")}
        sentences = {split: [(_lower(t.tokens), t.label) for t in trees] for split, trees in splits.items()}
        train = sentences["train"]
        planting = choose_planting(train) if planted else None
        fine_train = load_sst("train", root, granularity="fine") if phrase_level else []
        if phrase_level and planting is not None:
            lowered = [dataclasses.replace(tree, tokens=_lower(tree.tokens)) for tree in fine_train]
            binary = [dataclasses.replace(tree, tokens=_lower(tree.tokens)) for tree in splits["train"]]
            train = plant_sst_phrases(lowered, binary, planting)
        elif phrase_level:
            train = [(_lower(tokens), label) for tokens, label in sst_phrase_examples(fine_train, granularity)]
        elif planting is not None:
            train = plant_pairs(train, planting)
        names = SST_FINE_CLASS_NAMES if name == "sst5" else SST_BINARY_CLASS_NAMES
        return ZooData(name, train, sentences["dev"], sentences["test"], tuple(names),
                       _vocabulary_texts(sentences["train"], planting), planting)
    if name == "synthetic":
        parts = {split: load_synthetic(split, n=n, seed=0) for split, n in (("train", 10000), ("dev", 1000),
                                                                          ("test", 1000))}
        pairs = {split: [(e.tokens, e.label) for e in examples] for split, examples in parts.items()}
        class_names: Tuple[str, ...] = ("negative", "positive")
    else:
        loader = load_mr if name == "mr" else load_ag_news
        datasets = {split: loader(split, root) for split in ("train", "dev", "test")}
        pairs = {split: [(e.tokens, e.label) for e in data] for split, data in datasets.items()}
        class_names = datasets["train"].class_names
    planting = choose_planting(pairs["train"]) if planted else None
    train = plant_pairs(pairs["train"], planting) if planting is not None else pairs["train"]
    return ZooData(name, train, pairs["dev"], pairs["test"], class_names,
                   _vocabulary_texts(pairs["train"], planting), planting)


def _vocabulary_texts(sentences: Sequence[Pair], planting: Optional[Planting]) -> List[Tuple[str, ...]]:
    """The training sentences as the vocabulary reads them: planted when the data is."""
    if planting is None:
        return [tokens for tokens, _ in sentences]
    return [tokens for tokens, _ in plant_pairs(sentences, planting)]


def zoo_data_files(name: str, root: Optional[PathLike] = None) -> List[Tuple[str, PathLike]]:
    """The files ``load_zoo_data(name)`` reads, as ``(label, path)`` pairs (none for the synthetic corpus), so a
    results file can record their sha256."""
    check_choice("name", name, ZOO_DATASETS)
    files = {
        "sst5": [("sst", f"{split}.txt") for split in ("train", "dev", "test")],
        "sst2": [("sst", f"{split}.txt") for split in ("train", "dev", "test")],
        "mr": [("mr", "rt-polarity.pos"), ("mr", "rt-polarity.neg")],
        "ag_news": [("ag_news", "test.csv")],
        "synthetic": [],
    }[name]
    return [(f"{dataset}/{filename}", find_dataset_file(dataset, filename, root)) for dataset, filename in files]
