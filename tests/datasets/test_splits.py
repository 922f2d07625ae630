"""Tests of the seeded stratified split."""

from __future__ import annotations

from collections import Counter
from typing import Dict, List

import numpy as np
import pytest

from captum_text_ext.datasets._splits import stratified_split

MR_LIKE = [0] * 5331 + [1] * 5331


def _class_counts(labels: List[int], parts: Dict[str, List[int]]) -> Dict[str, Counter]:
    return {name: Counter(labels[i] for i in indices) for name, indices in parts.items()}


def test_sizes_disjoint_and_covering() -> None:
    labels = [i % 3 for i in range(100)]
    parts = stratified_split(labels, {"test": 20, "dev": 10, "train": 70}, seed=0)
    assert {name: len(indices) for name, indices in parts.items()} == {"test": 20, "dev": 10, "train": 70}
    everything = sorted(i for indices in parts.values() for i in indices)
    assert everything == list(range(100))
    assert all(indices == sorted(indices) for indices in parts.values())


def test_exact_proportions_when_divisible() -> None:
    parts = stratified_split(MR_LIKE, [("test", 1066), ("dev", 960), ("train", 8636)], seed=0)
    assert _class_counts(MR_LIKE, parts) == {
        "test": Counter({0: 533, 1: 533}),
        "dev": Counter({0: 480, 1: 480}),
        "train": Counter({0: 4318, 1: 4318}),
    }


def test_largest_remainder_rounding() -> None:
    labels = [0] * 7 + [1] * 3
    parts = stratified_split(labels, [("test", 3), ("train", 7)], seed=1)
    # quotas 2.1 and 0.9: floors 2 and 0, the one left over goes to the larger remainder (class 1)
    assert _class_counts(labels, parts)["test"] == Counter({0: 2, 1: 1})


def test_ties_go_to_the_smaller_label() -> None:
    labels = [5] * 3 + [9] * 3
    parts = stratified_split(labels, [("a", 1), ("b", 5)], seed=0)
    assert _class_counts(labels, parts)["a"] == Counter({5: 1})


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    sizes = {"test": 1066, "dev": 960, "train": 8636}
    assert stratified_split(MR_LIKE, sizes, seed=3) == stratified_split(MR_LIKE, sizes, seed=3)
    assert stratified_split(MR_LIKE, sizes, seed=3)["test"] != stratified_split(MR_LIKE, sizes, seed=4)["test"]


def test_first_split_does_not_depend_on_how_the_rest_is_divided() -> None:
    labels = [i % 4 for i in range(400)]
    three = stratified_split(labels, [("test", 40), ("dev", 60), ("train", 300)], seed=7)
    two = stratified_split(labels, [("test", 40), ("rest", 360)], seed=7)
    assert three["test"] == two["test"]
    assert sorted(three["dev"] + three["train"]) == two["rest"]


def test_indices_are_shuffled_within_a_class() -> None:
    parts = stratified_split([0] * 100, [("test", 10), ("train", 90)], seed=0)
    assert parts["test"] != list(range(10))


def test_accepts_numpy_labels_and_mapping_or_pairs() -> None:
    labels = np.array([0, 1] * 10)
    assert stratified_split(labels, {"a": 4, "b": 16}, seed=2) == stratified_split(labels, [("a", 4), ("b", 16)], 2)


def test_empty_split_and_empty_labels() -> None:
    assert stratified_split([0, 1], {"none": 0, "all": 2}, seed=0) == {"none": [], "all": [0, 1]}
    assert stratified_split([], {"none": 0}, seed=0) == {"none": []}


@pytest.mark.parametrize(
    ("sizes", "match"),
    [
        ({"a": 3, "b": 3}, r"sizes must add up to len\(labels\) = 5; got \{'a': 3, 'b': 3\}, which add up to 6"),
        ({"a": -1, "b": 6}, r"sizes\['a'\] must be a non-negative integer; got -1"),
        ({"a": 2.5, "b": 2.5}, r"sizes\['a'\] must be a non-negative integer; got 2.5"),
        ([("a", 2), ("a", 3)], r"sizes must name each split once; got the names \['a', 'a'\]"),
    ],
)
def test_bad_sizes(sizes: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        stratified_split([0, 0, 1, 1, 1], sizes, seed=0)  # type: ignore[arg-type]
