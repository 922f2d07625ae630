"""The Stanford Sentiment Treebank (Socher et al., 2013) from its PTB tree files, and Arras et al.'s test copy.

Files: ``<data dir>/sst/{train,dev,test}.txt[.gz]``, one tree per line, every node written ``(LABEL child child)``
or, for a leaf, ``(LABEL token)``, with LABEL a digit 0-4 (very negative .. very positive). The trees are
strictly binary. Lines are split on ASCII spaces only: three train tokens (``8 1\\/2``, ``2 1\\/2`` twice) contain
a non-breaking space (U+00A0) and stay whole.

PTB escapes are undone by default (``unescape=True``): the whole tokens ``-LRB-``, ``-RRB-``, ``-LSB-``,
``-RSB-``, ``-LCB-`` and ``-RCB-`` become ``(``, ``)``, ``[``, ``]``, ``{`` and ``}``, and ``\\/`` and ``\\*``
become ``/`` and ``*`` inside any token. The PTB quotes (two backticks, two apostrophes) are left as they are:
the treebank does not say which straight quote they stood for, and models trained on SST (e.g. Arras et al.'s
vocabulary) use them as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, cast

from captum_text_ext.datasets._checks import check_choice
from captum_text_ext.datasets._paths import CorruptDatasetError, PathLike, find_dataset_file, read_lines

__all__ = [
    "SSTPhrase",
    "SSTTree",
    "SST_BINARY_CLASS_NAMES",
    "SST_FINE_CLASS_NAMES",
    "SST_GRANULARITIES",
    "SST_SPLITS",
    "load_arras_sst_test",
    "load_sst",
    "sst_phrase_examples",
    "unescape_ptb",
]

SST_SPLITS = ("train", "dev", "test")
"""The SST splits."""
SST_GRANULARITIES = ("fine", "binary")
"""The label sets: five classes, or two with the neutral sentences dropped."""
SST_FINE_CLASS_NAMES = ("very negative", "negative", "neutral", "positive", "very positive")
"""The five SST labels by index."""
SST_BINARY_CLASS_NAMES = ("negative", "positive")
"""The binary SST labels by index (neutral sentences dropped)."""

_FINE_TO_BINARY: Dict[int, Optional[int]] = {0: 0, 1: 0, 2: None, 3: 1, 4: 1}
_BRACKET_ESCAPES = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}"}
_LEXEME = re.compile(r"[()]|[^ ()]+")  # a parenthesis or a run of anything but ASCII space and parentheses
_ARRAS_SEPARATOR = " | "


@dataclass(frozen=True)
class SSTPhrase:
    """One node of a tree: the tokens ``tokens[start:end]`` and their sentiment label."""

    start: int
    end: int
    label: int


@dataclass(frozen=True)
class SSTTree:
    """One sentence of the treebank.

    Attributes:
        tokens: the sentence's tokens (the tree's leaves, left to right).
        label: the sentence's label (the root's).
        phrases: every node with its label, in pre-order (the root first, then the left subtree, then the right),
            leaves included. With ``granularity="binary"`` the neutral nodes are left out.
        line: the 1-based line number of the tree in its file.
        granularity: ``"fine"`` (labels 0-4) or ``"binary"`` (0 negative, 1 positive).
    """

    tokens: Tuple[str, ...]
    label: int
    phrases: Tuple[SSTPhrase, ...] = field(repr=False)
    line: int
    granularity: str


def load_sst(
    split: str, root: Optional[PathLike] = None, granularity: str = "fine", unescape: bool = True
) -> List[SSTTree]:
    """Read one split of the Stanford Sentiment Treebank.

    Args:
        split: ``"train"`` (8544 trees), ``"dev"`` (1101) or ``"test"`` (2210).
        root: the data directory; by default ``$CAPTUM_TEXT_EXT_DATA``, then ``~/.cache/captum_text_ext``.
        granularity: ``"fine"`` keeps the labels 0-4 (see ``SST_FINE_CLASS_NAMES``); ``"binary"`` maps 0 and 1 to
            0 (negative) and 3 and 4 to 1 (positive), drops the sentences whose root is neutral (2), leaving
            6920/872/1821 trees, and drops the neutral nodes from ``phrases``.
        unescape: undo the PTB escapes (see the module docstring); ``False`` keeps the tokens as written.

    Returns:
        The trees in file order.

    Raises:
        ValueError: when ``split`` or ``granularity`` is not one of the accepted values.
        DatasetNotFoundError: when the split's file is in none of the data directories.
        CorruptDatasetError: when a line is not a well-formed binary tree with labels 0-4.
    """
    check_choice("split", split, SST_SPLITS)
    check_choice("granularity", granularity, SST_GRANULARITIES)
    path = find_dataset_file("sst", f"{split}.txt", root)
    trees = []
    for number, line in enumerate(read_lines(path), start=1):
        tokens, phrases = _parse_tree(line, path, number)
        if unescape:
            tokens = [unescape_ptb(token) for token in tokens]
        tree = SSTTree(tuple(tokens), phrases[0].label, tuple(phrases), number, "fine")
        if granularity == "binary":
            binary = _to_binary(tree)
            if binary is not None:
                trees.append(binary)
        else:
            trees.append(tree)
    return trees


def sst_phrase_examples(
    trees: Sequence[SSTTree], granularity: Optional[str] = None
) -> List[Tuple[Tuple[str, ...], int]]:
    """Every phrase of every tree as its own ``(tokens, label)`` example, as in phrase-level SST training.

    Murdoch et al. (2018) trained on all subtrees of the train trees (torchtext's ``train_subtrees=True``,
    neutral examples filtered out for the binary task). Subtrees are not deduplicated: a phrase that occurs in
    several trees gives several examples.

    Args:
        trees: the trees, e.g. ``load_sst("train")``.
        granularity: ``None`` keeps each tree's phrases and labels as they are. ``"binary"`` needs fine-grained
            trees; it maps their labels to binary and drops the neutral phrases but, unlike
            ``load_sst(..., granularity="binary")``, keeps the non-neutral phrases of sentences whose root is
            neutral, as torchtext did. ``"fine"`` needs fine-grained trees and keeps them as they are.

    Returns:
        The examples, tree by tree, each tree's phrases in pre-order.

    Raises:
        ValueError: when ``granularity`` is not ``None``, ``"fine"`` or ``"binary"``, or when it is given and a
            tree is not fine-grained.
    """
    if granularity is not None:
        check_choice("granularity", granularity, SST_GRANULARITIES)
    examples = []
    for tree in trees:
        if granularity is not None and tree.granularity != "fine":
            raise ValueError(
                f"granularity={granularity!r} needs fine-grained trees (load_sst(..., granularity='fine')); got a "
                f"{tree.granularity!r} tree (line {tree.line})"
            )
        for phrase in tree.phrases:
            label: Optional[int] = phrase.label
            if granularity == "binary":
                label = _FINE_TO_BINARY[phrase.label]
            if label is not None:
                examples.append((tree.tokens[phrase.start : phrase.end], label))
    return examples


def load_arras_sst_test(root: Optional[PathLike] = None, unescape: bool = False) -> List[Tuple[int, Tuple[str, ...]]]:
    """Read Arras et al. (2017)'s copy of the SST test sentences, ``arras_lrp/sequence_test.txt[.gz]``.

    Each line is ``LABEL<TAB>tok | tok | ... | tok`` with LABEL 1-5 and lowercased tokens. As a multiset, the
    sentences equal the SST test trees' roots, lowercased; the line order differs.

    Args:
        root: the data directory (see :func:`load_sst`).
        unescape: undo the PTB escapes as :func:`load_sst` does. Off by default because the vocabulary released
            with these sentences (``arras_lrp/vocab``) holds the escaped tokens (``-lrb-``, ``\\/``).

    Returns:
        ``(label, tokens)`` per line in file order, with the label shifted to SST's 0-4.

    Raises:
        DatasetNotFoundError: when the file is in none of the data directories.
        CorruptDatasetError: when a line has no tab, a label other than 1-5 or an empty token.
    """
    path = find_dataset_file("arras_lrp", "sequence_test.txt", root)
    sentences = []
    for number, line in enumerate(read_lines(path), start=1):
        label_text, tab, text = line.partition("\t")
        if not tab:
            raise CorruptDatasetError(path, number, "expected LABEL<TAB>tokens; found no tab")
        if label_text not in ("1", "2", "3", "4", "5"):
            raise CorruptDatasetError(path, number, f"label must be a digit 1-5; got {label_text!r}")
        tokens = text.split(_ARRAS_SEPARATOR)
        if "" in tokens:
            raise CorruptDatasetError(path, number, f"empty token; tokens must be joined by {_ARRAS_SEPARATOR!r}")
        if unescape:
            tokens = [unescape_ptb(token) for token in tokens]
        sentences.append((int(label_text) - 1, tuple(tokens)))
    return sentences


def unescape_ptb(token: str) -> str:
    """Undo the PTB escapes of one token (see the module docstring); quotes are left as they are.

    The bracket escapes are matched case-insensitively so that lowercased text (``-lrb-``) is unescaped too.
    """
    bracket = _BRACKET_ESCAPES.get(token.upper())
    if bracket is not None:
        return bracket
    return token.replace("\\/", "/").replace("\\*", "*")


@dataclass
class _Node:
    """A node whose closing parenthesis has not been read yet."""

    index: int  # its slot in the pre-order list of phrases
    start: int
    label: int = -1
    children: int = 0
    has_token: bool = False


def _parse_tree(line: str, path: Path, number: int) -> Tuple[List[str], List[SSTPhrase]]:
    """The leaves and the pre-order nodes of one tree line; raises :class:`CorruptDatasetError` if malformed."""

    def fail(column: int, reason: str) -> CorruptDatasetError:
        return CorruptDatasetError(path, number, f"{reason} (character {column + 1})")

    tokens: List[str] = []
    phrases: List[Optional[SSTPhrase]] = []
    stack: List[_Node] = []
    expect_label = False
    done = False
    for match in _LEXEME.finditer(line):
        lexeme, column = match.group(), match.start()
        if done:
            raise fail(column, f"text after the end of the tree: {line[column:column + 20]!r}")
        if expect_label:
            if len(lexeme) != 1 or lexeme not in "01234":
                raise fail(column, f"a node's label must be a digit 0-4; got {lexeme!r}")
            stack[-1].label = int(lexeme)
            expect_label = False
        elif lexeme == "(":
            if stack:
                parent = stack[-1]
                if parent.has_token:
                    raise fail(column, "a leaf holds a token and a subtree")
                parent.children += 1
                if parent.children > 2:
                    raise fail(column, "a node has more than two children; trees must be binary")
            stack.append(_Node(index=len(phrases), start=len(tokens)))
            phrases.append(None)
            expect_label = True
        elif lexeme == ")":
            if not stack:
                raise fail(column, "unbalanced parentheses: ')' closes no node")
            node = stack.pop()
            if not node.has_token and node.children != 2:
                raise fail(column, f"a node must be a leaf or have two children (binary tree); got {node.children}")
            phrases[node.index] = SSTPhrase(node.start, len(tokens), node.label)
            done = not stack
        else:
            if not stack:
                raise fail(column, f"text outside the tree: {lexeme!r}")
            node = stack[-1]
            if node.has_token or node.children:
                raise fail(column, f"a leaf holds more than one token or a subtree and a token: {lexeme!r}")
            node.has_token = True
            tokens.append(lexeme)
    if stack:
        raise fail(len(line), f"unbalanced parentheses: {len(stack)} node(s) not closed at the end of the line")
    if not done:
        raise fail(0, "no tree on this line")
    return tokens, cast(List[SSTPhrase], phrases)  # every slot was filled when its node closed


def _to_binary(tree: SSTTree) -> Optional[SSTTree]:
    """The binary version of a fine-grained tree, or ``None`` when its root is neutral."""
    label = _FINE_TO_BINARY[tree.label]
    if label is None:
        return None
    phrases = []
    for phrase in tree.phrases:
        phrase_label = _FINE_TO_BINARY[phrase.label]
        if phrase_label is not None:
            phrases.append(SSTPhrase(phrase.start, phrase.end, phrase_label))
    return SSTTree(tree.tokens, label, tuple(phrases), tree.line, "binary")
