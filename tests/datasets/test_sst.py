"""Tests of the SST tree loader and of Arras et al.'s SST test copy."""

from __future__ import annotations

import gzip
import shutil
from collections import Counter
from pathlib import Path
from typing import Dict, List, Set

import pytest

from captum_text_ext.datasets._paths import CorruptDatasetError
from captum_text_ext.datasets.sst import (
    SSTPhrase,
    SSTTree,
    load_arras_sst_test,
    load_sst,
    sst_phrase_examples,
    unescape_ptb,
)

ROOT_LABELS = {
    "train": [1092, 2218, 1624, 2322, 1288],
    "dev": [139, 289, 229, 279, 165],
    "test": [279, 633, 389, 510, 399],
}
NODES_AND_LEAVES = {"train": (318582, 163563), "dev": (41447, 21274), "test": (82600, 42405)}
BINARY_TREES = {"train": 6920, "dev": 872, "test": 1821}
TINY_TREE = "(3 (2 -LRB-) (4 (3 good\\/great) (2 -RRB-)))"


@pytest.fixture(scope="module")
def sst_train(shared_data_dir: Path) -> List[SSTTree]:
    return load_sst("train", root=shared_data_dir)


@pytest.fixture(scope="module")
def sst_train_binary(shared_data_dir: Path) -> List[SSTTree]:
    return load_sst("train", root=shared_data_dir, granularity="binary")


def _fine(split: str, data_dir: Path, sst_train: List[SSTTree]) -> List[SSTTree]:
    return sst_train if split == "train" else load_sst(split, root=data_dir)


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_counts_and_root_labels(split: str, shared_data_dir: Path, sst_train: List[SSTTree]) -> None:
    trees = _fine(split, shared_data_dir, sst_train)
    assert len(trees) == sum(ROOT_LABELS[split])
    assert (sum(len(t.phrases) for t in trees), sum(len(t.tokens) for t in trees)) == NODES_AND_LEAVES[split]
    counts = Counter(t.label for t in trees)
    assert [counts[label] for label in range(5)] == ROOT_LABELS[split]
    assert [t.line for t in trees] == list(range(1, len(trees) + 1))
    assert all(t.granularity == "fine" for t in trees)


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_binary(
    split: str, shared_data_dir: Path, sst_train: List[SSTTree], sst_train_binary: List[SSTTree]
) -> None:
    binary = sst_train_binary if split == "train" else load_sst(split, root=shared_data_dir, granularity="binary")
    assert len(binary) == BINARY_TREES[split]
    fine_by_line = {t.line: t for t in _fine(split, shared_data_dir, sst_train)}
    to_binary = {0: 0, 1: 0, 3: 1, 4: 1}
    for tree in binary:
        fine = fine_by_line[tree.line]
        assert tree.granularity == "binary"
        assert tree.tokens == fine.tokens
        assert tree.label == to_binary[fine.label]
        expected = [SSTPhrase(p.start, p.end, to_binary[p.label]) for p in fine.phrases if p.label != 2]
        assert list(tree.phrases) == expected
    dropped = set(fine_by_line) - {t.line for t in binary}
    assert all(fine_by_line[line].label == 2 for line in dropped)


def test_non_breaking_space_tokens_survive(sst_train: List[SSTTree]) -> None:
    tokens = [token for tree in sst_train for token in tree.tokens if "\u00a0" in token]
    assert tokens == ["8\u00a01/2", "2\u00a01/2", "2\u00a01/2"]


def test_first_tree(sst_train: List[SSTTree]) -> None:
    first = sst_train[0]
    assert first.tokens[:4] == ("The", "Rock", "is", "destined")
    assert first.label == 3
    assert first.phrases[0] == SSTPhrase(0, len(first.tokens), 3)
    assert "``" in first.tokens and "''" in first.tokens  # PTB quotes are kept


def test_unescaping(sst_train: List[SSTTree], shared_data_dir: Path) -> None:
    tokens = Counter(token for tree in sst_train for token in tree.tokens)
    assert tokens["("] > 0 and tokens[")"] > 0 and tokens["writer/director"] > 0 and tokens["***"] > 0
    escaped = ("-LRB-", "-RRB-", "\\/", "\\*")
    assert not [token for token in tokens if any(escape in token for escape in escaped)]
    raw = Counter(token for tree in load_sst("dev", root=shared_data_dir, unescape=False) for token in tree.tokens)
    assert raw["-LRB-"] > 0 and "(" not in raw


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("-LRB-", "("),
        ("-RRB-", ")"),
        ("-LSB-", "["),
        ("-RSB-", "]"),
        ("-LCB-", "{"),
        ("-RCB-", "}"),
        ("-lrb-", "("),
        ("writer\\/director", "writer/director"),
        ("\\*\\*\\*", "***"),
        ("``", "``"),
        ("''", "''"),
        ("-LRB-x", "-LRB-x"),  # bracket escapes are whole tokens
    ],
)
def test_unescape_ptb(token: str, expected: str) -> None:
    assert unescape_ptb(token) == expected


def _check_spans(tree: SSTTree) -> None:
    """The phrases form a binary tree over the tokens, in pre-order."""
    n = len(tree.tokens)
    spans = [(p.start, p.end) for p in tree.phrases]
    assert spans[0] == (0, n)
    assert len(spans) == 2 * n - 1 == len(set(spans))
    assert sorted(s for s in spans if s[1] - s[0] == 1) == [(i, i + 1) for i in range(n)]
    assert all(0 <= s < e <= n for s, e in spans)
    assert [s for s, _ in spans] == sorted(s for s, _ in spans)  # pre-order: starts never decrease
    ends_by_start: Dict[int, Set[int]] = {}
    for start, end in spans:
        ends_by_start.setdefault(start, set()).add(end)
    for start, end in spans:
        if end - start > 1:  # the left child is the longest shorter span with the same start
            middle = max(e for e in ends_by_start[start] if e < end)
            assert end in ends_by_start[middle], (tree.line, start, end)


def test_spans_partition(sst_train: List[SSTTree]) -> None:
    for tree in sst_train:
        _check_spans(tree)


def test_phrase_examples(sst_train: List[SSTTree], sst_train_binary: List[SSTTree]) -> None:
    examples = sst_phrase_examples(sst_train)
    assert len(examples) == NODES_AND_LEAVES["train"][0]
    assert examples[0] == (sst_train[0].tokens, sst_train[0].label)
    assert Counter(label for _, label in examples) == Counter(p.label for t in sst_train for p in t.phrases)
    binary = sst_phrase_examples(sst_train, granularity="binary")
    assert len(binary) == sum(p.label != 2 for t in sst_train for p in t.phrases)
    assert {label for _, label in binary} == {0, 1}
    from_binary_trees = sst_phrase_examples(sst_train_binary)
    assert len(from_binary_trees) < len(binary)  # neutral-root sentences lose their phrases
    assert sst_phrase_examples(sst_train[:5], granularity="fine") == sst_phrase_examples(sst_train[:5])
    with pytest.raises(ValueError, match=r"granularity='binary' needs fine-grained trees .*got a 'binary' tree"):
        sst_phrase_examples(sst_train_binary, granularity="binary")
    with pytest.raises(ValueError, match=r"granularity must be one of 'fine', 'binary'; got 'coarse'"):
        sst_phrase_examples(sst_train, granularity="coarse")


def test_arras_copy_equals_lowercased_test_trees(shared_data_dir: Path) -> None:
    arras = load_arras_sst_test(root=shared_data_dir)
    assert len(arras) == 2210
    assert Counter(label for label, _ in arras) == Counter(dict(enumerate(ROOT_LABELS["test"])))
    raw = load_sst("test", root=shared_data_dir, unescape=False)
    assert Counter(arras) == Counter((t.label, tuple(tok.lower() for tok in t.tokens)) for t in raw)
    unescaped = load_sst("test", root=shared_data_dir)
    arras_unescaped = load_arras_sst_test(root=shared_data_dir, unescape=True)
    assert Counter(arras_unescaped) == Counter((t.label, tuple(tok.lower() for tok in t.tokens)) for t in unescaped)


def _write(path: Path, lines: List[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_tiny_tree(tmp_path: Path) -> None:
    _write(tmp_path / "sst" / "dev.txt", [TINY_TREE])
    (tree,) = load_sst("dev", root=tmp_path)
    assert tree.tokens == ("(", "good/great", ")")
    assert tree.phrases == (
        SSTPhrase(0, 3, 3),
        SSTPhrase(0, 1, 2),
        SSTPhrase(1, 3, 4),
        SSTPhrase(1, 2, 3),
        SSTPhrase(2, 3, 2),
    )
    (binary,) = load_sst("dev", root=tmp_path, granularity="binary")
    assert binary.phrases == (SSTPhrase(0, 3, 1), SSTPhrase(1, 3, 1), SSTPhrase(1, 2, 1))


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("(2 (2 a) (2 b)", r"unbalanced parentheses: 1 node\(s\) not closed"),
        (")", r"unbalanced parentheses: '\)' closes no node"),
        ("(x (2 a) (2 b))", r"label must be a digit 0-4; got 'x'"),
        ("(5 (2 a) (2 b))", r"label must be a digit 0-4; got '5'"),
        ("(2 (2 a) (2 b) (2 c))", r"more than two children"),
        ("(2 (2 a))", r"must be a leaf or have two children \(binary tree\); got 1"),
        ("(2)", r"must be a leaf or have two children \(binary tree\); got 0"),
        ("(2 a b)", r"a leaf holds more than one token"),
        ("(2 a (2 b))", r"a leaf holds a token and a subtree"),
        ("(2 (2 a) (2 b)) trailing", r"text after the end of the tree: 'trailing'"),
        ("(2 (2 a) (2 b)) (2 c)", r"text after the end of the tree"),
        ("word (2 a)", r"text outside the tree: 'word'"),
        ("", r"no tree on this line"),
    ],
)
def test_corrupt_line(tmp_path: Path, bad_line: str, reason: str) -> None:
    path = _write(tmp_path / "sst" / "train.txt", [TINY_TREE, bad_line])
    with pytest.raises(CorruptDatasetError, match=r"sst[/\\]train\.txt, line 2: .*" + reason) as info:
        load_sst("train", root=tmp_path)
    assert (info.value.path, info.value.line) == (path, 2)


def test_corrupt_arras_line(tmp_path: Path) -> None:
    _write(tmp_path / "arras_lrp" / "sequence_test.txt", ["1\ta | b", "6\tc"])
    with pytest.raises(CorruptDatasetError, match=r"sequence_test\.txt, line 2: label must be a digit 1-5; got '6'"):
        load_arras_sst_test(root=tmp_path)
    _write(tmp_path / "arras_lrp" / "sequence_test.txt", ["1 a | b"])
    with pytest.raises(CorruptDatasetError, match=r"sequence_test\.txt, line 1: expected LABEL<TAB>tokens"):
        load_arras_sst_test(root=tmp_path)
    _write(tmp_path / "arras_lrp" / "sequence_test.txt", ["1\ta |  | b"])
    with pytest.raises(CorruptDatasetError, match=r"sequence_test\.txt, line 1: empty token"):
        load_arras_sst_test(root=tmp_path)


def test_plain_and_gz_read_alike(tmp_path: Path, shared_data_dir: Path) -> None:
    plain = tmp_path / "plain" / "sst" / "dev.txt"
    plain.parent.mkdir(parents=True)
    with gzip.open(shared_data_dir / "sst" / "dev.txt.gz", "rb") as source, open(plain, "wb") as target:
        shutil.copyfileobj(source, target)
    assert load_sst("dev", root=tmp_path / "plain") == load_sst("dev", root=shared_data_dir)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"split must be one of 'train', 'dev', 'test'; got 'validation'"):
        load_sst("validation", root=tmp_path)
    with pytest.raises(ValueError, match=r"granularity must be one of 'fine', 'binary'; got 'coarse'"):
        load_sst("dev", root=tmp_path, granularity="coarse")


def test_records_are_frozen(tmp_path: Path) -> None:
    _write(tmp_path / "sst" / "dev.txt", [TINY_TREE])
    (tree,) = load_sst("dev", root=tmp_path)
    with pytest.raises(AttributeError):
        tree.label = 0  # type: ignore[misc]
    assert isinstance(tree.tokens, tuple) and isinstance(tree.phrases, tuple)
