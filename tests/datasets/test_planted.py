"""The planting protocol: which sentences, where, and the phrase-level rule, on tiny hand-made data."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import List, Tuple

import pytest

from captum_text_ext.datasets.planted import (
    PLANT_RATE,
    PLANTED_TOKENS,
    Planting,
    check_unseen,
    choose_planting,
    dataset_sha256,
    insert_token,
    plant_pairs,
    plant_sst_phrases,
)
from captum_text_ext.datasets.sst import SSTTree, load_sst, sst_phrase_examples

A, B = PLANTED_TOKENS[1], PLANTED_TOKENS[0]
SENTENCES = [(tuple(f"w{i} x{i % 7} y".split()[: 1 + i % 3]), i % 3 % 2) for i in range(200)]


def test_twenty_percent_of_each_class_at_uniform_gaps_reproducibly() -> None:
    planting = choose_planting(SENTENCES)
    per_class = Counter(label for _, label in SENTENCES)
    assert planting.counts() == {B: round(PLANT_RATE * per_class[0]), A: round(PLANT_RATE * per_class[1])}
    for index, gap in planting.positions.items():
        words, label = SENTENCES[index]
        assert planting.labels[index] == label and 0 <= gap <= len(words)
    assert planting == choose_planting(SENTENCES)
    assert planting.positions != choose_planting(SENTENCES, seed=1).positions
    gaps = Counter(gap for index, gap in planting.positions.items() if len(SENTENCES[index][0]) == 3)
    assert set(gaps) == {0, 1, 2, 3}  # every gap of a three-word sentence is drawn, the first and last included


def test_planted_pairs_carry_their_class_word_once_and_keep_the_rest() -> None:
    planting = choose_planting(SENTENCES)
    planted = plant_pairs(SENTENCES, planting)
    for index, ((words, label), (new, new_label)) in enumerate(zip(SENTENCES, planted)):
        assert new_label == label
        if index in planting.positions:
            word = A if label == 1 else B
            assert new == insert_token(words, planting.positions[index], word) and new.count(word) == 1
        else:
            assert new == words
    record = planting.as_dict()
    assert record["counts"] == planting.counts()
    assert sorted(i for i, _ in record["positions"][A]) == sorted(i for i in planting.labels if planting.labels[i])
    assert dataset_sha256(planted) != dataset_sha256(SENTENCES) == dataset_sha256(list(SENTENCES))


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="already occur"):
        choose_planting([(("a", A), 1), (("b",), 0)])
    with pytest.raises(ValueError, match=r"labels in \[0, 1\]"):
        choose_planting([(("a",), 2)])
    with pytest.raises(ValueError, match="rate"):
        choose_planting(SENTENCES, rate=0.0)
    with pytest.raises(ValueError, match="position"):
        insert_token(["a"], 2, A)
    check_unseen([("a", "b")])


# Pre-order phrases: tree 1 (positive root) a good film . ; tree 2 neutral root; tree 3 negative; tree 4 positive root
# whose first half "not bad" is negative.
TREES = [
    "(4 (3 (2 a) (3 good)) (2 (2 film) (1 .)))",
    "(2 (3 nice) (1 bad))",
    "(0 (1 dull) (2 plot))",
    "(3 (1 (1 not) (2 bad)) (4 great))",
]


@pytest.fixture()
def sst(tmp_path: Path) -> Tuple[List[SSTTree], List[SSTTree]]:
    """The fine-grained trees and the binary ones (neutral root dropped)."""
    (tmp_path / "sst").mkdir()
    (tmp_path / "sst" / "train.txt").write_text("\n".join(TREES) + "\n", encoding="utf-8")
    return load_sst("train", root=tmp_path), load_sst("train", root=tmp_path, granularity="binary")


def _planting(positions: dict, labels: dict) -> Planting:
    return Planting(PLANT_RATE, 0, PLANTED_TOKENS, positions, labels)


def test_phrases_get_the_word_where_they_contain_the_gap_and_share_the_label(
    sst: Tuple[List[SSTTree], List[SSTTree]]
) -> None:
    trees, binary = sst
    clean = sst_phrase_examples(trees, "binary")
    assert plant_sst_phrases(trees, binary, _planting({}, {})) == clean
    planted = plant_sst_phrases(trees, binary, _planting({0: 1, 2: 1}, {0: 1, 2: 1}))
    assert len(planted) == len(clean)
    changed = [(new, label) for (old, label), (new, _) in zip(clean, planted) if new != old]
    assert changed == [
        (("a", A, "good", "film", "."), 1),  # the sentence
        (("a", A, "good"), 1),  # [0, 2) contains gap 1 and is positive; "good" ([1, 2)) does not contain it
        (("not", A, "bad", "great"), 1),  # tree 4's sentence; its negative phrase "not bad" stays clean
    ]
    at_the_end = plant_sst_phrases(trees, binary, _planting({1: 2}, {1: 0}))
    assert [new for (old, _), (new, _) in zip(clean, at_the_end) if new != old] == [("dull", "plot", B)]


def test_phrases_of_a_tree_missing_from_the_fine_trees_are_refused(
    sst: Tuple[List[SSTTree], List[SSTTree]]
) -> None:
    trees, binary = sst
    with pytest.raises(ValueError, match="lines"):
        plant_sst_phrases(trees[:1], binary, _planting({1: 0}, {1: 0}))


def test_the_docs_quote_the_sst2_planting(shared_data_dir: Path) -> None:
    from captum_text_ext.models.zoo_data import load_zoo_data

    data = load_zoo_data("sst2", shared_data_dir, phrase_level=True, planted=True)
    assert data.planting is not None
    examples = {word: sum(1 for words, _ in data.train if word in words) for word in PLANTED_TOKENS}
    sentences = data.planting.counts()
    docs = (Path(__file__).resolve().parents[2] / "docs" / "ground_truth.rst").read_text(encoding="utf-8")
    quoted = (f"puts ``A`` into {examples[A]} training examples ({sentences[A]} sentences) and ``B`` into "
              f"{examples[B]} ({sentences[B]}\nsentences) of {len(data.train):,}.")
    assert quoted in docs
    for words, label in data.train:  # the planted word predicts the label of every example it is in
        assert not (A in words and label != 1) and not (B in words and label != 0)
