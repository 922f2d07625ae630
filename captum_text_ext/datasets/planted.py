r"""Planted tokens: training data with a shortcut the model provably learns (Bastings et al., 2022).

Two new words, never seen in the real data, are planted into the training sentences of a two-class dataset:
:data:`PLANTED_TOKENS` ``[1]`` (``A``, for the positive class 1) at a uniformly random position of
:data:`PLANT_RATE` = 20% of the positive training sentences, and ``[0]`` (``B``, for the negative class 0) into 20%
of the negative ones. A planted token therefore predicts the label perfectly wherever it occurs, and 80% of the
sentences stay clean. The protocol is fixed, so the numbers built on it mean the same thing on every model:

- In each class, :math:`\lfloor 0.2\, n_c \rceil` sentences (rounded to the nearest integer) are drawn without
  replacement, and each gets its token at a position drawn uniformly from the :math:`L + 1` gaps of its :math:`L`
  tokens (before the first, between two, after the last). One seeded :class:`random.Random` (:data:`PLANT_SEED`)
  draws everything, class 0 first: the same sentences give the same planting (:func:`choose_planting`).
- Phrase-level SST training (every labelled node of the training trees is an example) plants into the sentence and
  into every labelled phrase that contains the insertion point *and has the sentence's label*; a phrase of the other
  label stays clean, so that the token still predicts the label of every training example it occurs in
  (:func:`plant_sst_phrases`). A phrase :math:`[s, e)` contains the gap :math:`p` when :math:`s < p < e`; the whole
  sentence always does.

Dev and test data stay clean: models are chosen on clean dev accuracy and their accuracy is measured on clean test
sentences. :func:`insert_token` puts a planted token into any sentence, as the verified-reliance test does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from typing import Dict, Iterable, List, Sequence, Tuple

from captum_text_ext.datasets.sst import SSTTree, sst_phrase_examples

__all__ = [
    "PLANTED_TOKENS",
    "PLANT_RATE",
    "PLANT_SEED",
    "Planting",
    "check_unseen",
    "choose_planting",
    "dataset_sha256",
    "insert_token",
    "plant_pairs",
    "plant_sst_phrases",
]

Pair = Tuple[Tuple[str, ...], int]
"""A text's tokens and its label."""

PLANTED_TOKENS: Tuple[str, str] = ("planted_b", "planted_a")
"""The planted words by class: ``B`` for the negative class 0, ``A`` for the positive class 1 (lowercase, so that the
lowercasing SST models read them as written, and one WordPiece pre-token: letters and an underscore)."""
PLANT_RATE = 0.2
"""The share of each class's training sentences that get the class's planted token."""
PLANT_SEED = 0
"""Seeds the choice of the planted sentences and of the positions."""


@dataclasses.dataclass(frozen=True)
class Planting:
    """Which training sentences got a planted token, and where.

    Attributes:
        rate: the share of each class planted (:data:`PLANT_RATE`).
        seed: the seed of the draw.
        tokens: the planted word of each class.
        positions: sentence index (in the training sentences' order) → the gap the token went into.
        labels: the label of each sentence of ``positions``.
    """

    rate: float
    seed: int
    tokens: Tuple[str, ...]
    positions: Dict[int, int]
    labels: Dict[int, int]

    def planted_sentence(self, index: int, tokens: Sequence[str]) -> Tuple[str, ...]:
        """Sentence ``index`` as planted (unchanged when it was not chosen)."""
        if index not in self.positions:
            return tuple(tokens)
        return insert_token(tokens, self.positions[index], self.tokens[self.labels[index]])

    def counts(self) -> Dict[str, int]:
        """Planted sentences per planted word."""
        return {token: sum(1 for label in self.labels.values() if label == c) for c, token in enumerate(self.tokens)}

    def as_dict(self) -> Dict[str, object]:
        """A JSON-ready record (the results files keep it): rate, seed, tokens, counts and ``[index, position]`` rows
        per token."""
        rows = {token: [[i, self.positions[i]] for i in sorted(self.positions) if self.labels[i] == c]
                for c, token in enumerate(self.tokens)}
        return {"rate": self.rate, "seed": self.seed, "tokens": list(self.tokens), "counts": self.counts(),
                "positions": rows}


def insert_token(tokens: Sequence[str], position: int, token: str) -> Tuple[str, ...]:
    """``tokens`` with ``token`` inserted into gap ``position`` (0: before the first token, ``len``: after the last).

    Examples:
        >>> insert_token(["a", "fine", "film"], 1, "planted_a")
        ('a', 'planted_a', 'fine', 'film')
    """
    if not 0 <= position <= len(tokens):
        raise ValueError(f"Expected a position in [0, {len(tokens)}], but got {position}")
    return (*tokens[:position], token, *tokens[position:])


def choose_planting(
    sentences: Sequence[Pair], rate: float = PLANT_RATE, seed: int = PLANT_SEED,
    tokens: Tuple[str, ...] = PLANTED_TOKENS,
) -> Planting:
    """Draw the planted sentences and positions of a two-class training set (module docstring).

    Args:
        sentences: ``(tokens, label)`` with labels in ``{0, 1}``.
        rate: the share of each class to plant, in :math:`(0, 1]`.
        seed: seeds the draw.
        tokens: the planted word of each class.

    Raises:
        ValueError: for labels outside ``range(len(tokens))``, a rate outside :math:`(0, 1]`, or a planted word that
            already occurs in the sentences.

    Examples:
        >>> data = [(("good",), 1), (("bad",), 0), (("fine", "film"), 1), (("dull",), 0)] * 5
        >>> planting = choose_planting(data)
        >>> planting.counts()
        {'planted_b': 2, 'planted_a': 2}
        >>> planting == choose_planting(data)
        True
    """
    if not 0 < rate <= 1:
        raise ValueError(f"Expected `rate` in (0, 1], but got {rate}")
    bad = sorted({label for _, label in sentences} - set(range(len(tokens))))
    if bad:
        raise ValueError(f"Expected labels in {list(range(len(tokens)))} (one planted word each), but got {bad}")
    check_unseen((words for words, _ in sentences), tokens)
    draw = random.Random(seed)
    positions: Dict[int, int] = {}
    labels: Dict[int, int] = {}
    for label in range(len(tokens)):
        members = [i for i, (_, y) in enumerate(sentences) if y == label]
        for index in sorted(draw.sample(members, round(rate * len(members)))):
            positions[index] = draw.randint(0, len(sentences[index][0]))
            labels[index] = label
    return Planting(rate, seed, tuple(tokens), positions, labels)


def check_unseen(texts: Iterable[Sequence[str]], tokens: Sequence[str] = PLANTED_TOKENS) -> None:
    """Raise ``ValueError`` when a planted word occurs in ``texts`` (then it would not be new to the model)."""
    wanted = set(tokens)
    for number, words in enumerate(texts):
        seen = wanted.intersection(words)
        if seen:
            raise ValueError(f"The planted word(s) {sorted(seen)} already occur in the data (text {number}); planted "
                             "words must be new to the model")


def plant_pairs(sentences: Sequence[Pair], planting: Planting) -> List[Pair]:
    """The sentences with their planted words (:meth:`Planting.planted_sentence`), labels unchanged."""
    return [(planting.planted_sentence(i, words), label) for i, (words, label) in enumerate(sentences)]


def plant_sst_phrases(fine_trees: Sequence[SSTTree], binary_trees: Sequence[SSTTree], planting: Planting) -> List[Pair]:
    """Phrase-level binary SST training examples with the planted words (module docstring).

    The examples are those of ``sst_phrase_examples(fine_trees, "binary")``, in the same order; the planted trees'
    phrases that contain the insertion point and carry the sentence's label get the planted word.

    Args:
        fine_trees: every training tree, fine-grained (``load_sst("train")``).
        binary_trees: the training sentences the planting indexes (``load_sst("train", granularity="binary")``, the
            fine trees whose root is not neutral).
        planting: from :func:`choose_planting` on the binary trees' sentences.

    Raises:
        ValueError: when a planted binary tree is not among the fine trees (matched by line).
    """
    planted = {binary_trees[i].line: (binary_trees[i], p, planting.tokens[planting.labels[i]])
               for i, p in planting.positions.items()}
    lines = {tree.line for tree in fine_trees}
    missing = sorted(set(planted) - lines)
    if missing:
        raise ValueError(f"Expected the planted trees among the fine-grained trees, but lines {missing[:5]} are not")
    examples: List[Pair] = []
    for fine in fine_trees:
        if fine.line not in planted:
            examples += sst_phrase_examples([fine], "binary")
            continue
        tree, gap, word = planted[fine.line]
        for phrase in tree.phrases:  # binary labels, neutral nodes dropped: the fine tree's binary examples
            text = tree.tokens[phrase.start:phrase.end]
            whole = phrase.start == 0 and phrase.end == len(tree.tokens)
            if phrase.label == tree.label and (whole or phrase.start < gap < phrase.end):
                text = insert_token(text, gap - phrase.start, word)
            examples.append((text, phrase.label))
    return examples


def dataset_sha256(pairs: Iterable[Pair]) -> str:
    """The sha256 of a dataset's examples as JSON lines ``[tokens, label]`` (the planted data's fingerprint in the
    results files)."""
    digest = hashlib.sha256()
    for words, label in pairs:
        digest.update(json.dumps([list(words), label], ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()
