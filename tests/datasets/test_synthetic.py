"""Tests of the synthetic sentiment corpus: the label rule, the generator's guarantees and the splits."""

from __future__ import annotations

from typing import List, Sequence, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_text_ext.datasets.synthetic import (
    CONJUNCTIONS,
    DEFAULT_SPLIT_SIZES,
    INTENSIFIERS,
    NEGATIVE_WORDS,
    NEGATORS,
    POSITIVE_WORDS,
    SPLITS,
    SyntheticExample,
    annotate,
    generate_synthetic,
    label_of,
    load_synthetic,
    split_of,
    word_polarity,
)

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
PROPERTY_SETTINGS = settings(max_examples=30, deadline=None)


@pytest.fixture(scope="module")
def corpus() -> List[SyntheticExample]:
    return generate_synthetic(5000, seed=0)


def _clause_sign(example: SyntheticExample, clause: int) -> int:
    start, end = example.clauses[clause]
    return 1 if sum(example.token_effect[start:end]) > 0 else -1


def _check_invariants(example: SyntheticExample) -> None:
    """Every guarantee the generator makes about one example, checked from its fields."""
    assert annotate(example.tokens, template=example.template) == example
    assert label_of(example.tokens) == example.label
    label_sign = 1 if example.label else -1
    names = example.template.split()
    assert len(names) == 2 * len(example.clauses) - 1
    if "but" in names:
        assert example.deciding_clauses == (1,)
        assert _clause_sign(example, 0) == -_clause_sign(example, 1) == -label_sign
    else:
        assert example.deciding_clauses == tuple(range(len(example.clauses)))
        assert all(_clause_sign(example, c) == label_sign for c in example.deciding_clauses)
    assert any(example.decisive)
    targets = {end - 1: negator for negator, _, end in example.negation_spans}
    for i, token in enumerate(example.tokens):
        expected = -word_polarity(token) if i in targets else word_polarity(token)
        assert example.token_effect[i] == expected
        if example.decisive[i]:
            in_deciding = any(
                example.clauses[c][0] <= i < example.clauses[c][1] for c in example.deciding_clauses
            )
            assert in_deciding
            if token in NEGATORS:
                assert any(negator == i and example.decisive[end - 1] for negator, _, end in example.negation_spans)
            else:
                assert example.token_effect[i] == label_sign
    for negator, start, end in example.negation_spans:
        assert example.tokens[negator] in NEGATORS
        assert start == negator + 1 and word_polarity(example.tokens[end - 1]) != 0
        assert any(c_start <= negator and end <= c_end for c_start, c_end in example.clauses)
        assert example.decisive[negator] == example.decisive[end - 1]


# --- the label rule on hand-written sentences -------------------------------------------------------------------

HAND_WRITTEN: List[Tuple[str, int, Tuple[str, ...], Tuple[int, ...]]] = [
    # (sentence, label, decisive tokens, deciding clauses)
    ("the movie was good", 1, ("good",), (0,)),
    ("the movie was not good", 0, ("not", "good"), (0,)),
    ("the acting is n't very bad", 1, ("n't", "bad"), (0,)),
    ("this film does n't feel fresh", 0, ("n't", "fresh"), (0,)),
    ("i did n't find the ending moving", 0, ("n't", "moving"), (0,)),
    ("it is a clever movie with no boring scenes", 1, ("clever", "no", "boring"), (0,)),
    ("the plot was boring but the acting was great", 1, ("great",), (1,)),
    ("the plot was great but the acting was not good", 0, ("not", "good"), (1,)),
    ("the movie was good and the plot was great", 1, ("good", "great"), (0, 1)),
    ("the movie was not never good", 1, ("not", "never", "good"), (0,)),
    ("the plot was dull and the cast was bad but the ending was moving", 1, ("moving",), (2,)),
]


@pytest.mark.parametrize(("sentence", "label", "decisive", "deciding"), HAND_WRITTEN)
def test_hand_written_labels(sentence: str, label: int, decisive: Tuple[str, ...], deciding: Tuple[int, ...]) -> None:
    example = annotate(sentence.split())
    assert example.label == label_of(sentence.split()) == label
    assert tuple(t for t, d in zip(example.tokens, example.decisive) if d) == decisive
    assert example.deciding_clauses == deciding
    assert example.template == ""
    assert example.text == sentence


def test_negation_flips_effect_of_the_same_word() -> None:
    plain = annotate("the movie was good".split())
    negated = annotate("the movie was not good".split())
    assert plain.token_effect == (0, 0, 0, 1)
    assert negated.token_effect == (0, 0, 0, 0, -1)
    assert negated.negation_spans == ((3, 4, 5),)
    assert (plain.label, negated.label) == (1, 0)


def test_negation_scope_reaches_over_an_intensifier_and_stays_in_its_clause() -> None:
    example = annotate("the acting is n't very bad but the plot was dull".split())
    assert example.clauses == ((0, 6), (7, 11))
    assert example.negation_spans == ((3, 4, 6),)
    assert example.token_effect[5] == 1 and example.token_effect[10] == -1
    assert example.label == 0


def test_negator_without_target_scopes_to_clause_end() -> None:
    example = annotate("the movie was good i did not care and the plot was fresh".split())
    assert example.negation_spans == ((6, 7, 8),)
    assert example.label == 1 and not example.decisive[6]


def test_clause_with_two_agreeing_words() -> None:
    example = annotate("it is a clever movie with great acting".split())
    assert example.token_effect == (0, 0, 0, 1, 0, 0, 1, 0)
    assert example.label == 1 and sum(example.decisive) == 2


@pytest.mark.parametrize(
    ("sentence", "match"),
    [
        ("", "non-empty"),
        ("the movie was", "nonzero net sentiment"),
        ("it is a good film with bad acting", "nonzero net sentiment"),
        ("the movie was good but", "nonzero net sentiment"),
        ("the movie was good and the plot was bad", "share one polarity"),
    ],
)
def test_annotate_rejects_sentences_without_a_label(sentence: str, match: str) -> None:
    with pytest.raises(ValueError, match=f"tokens: .*{match}"):
        annotate(sentence.split())


# --- vocabulary ---------------------------------------------------------------------------------------------------


def test_vocabulary() -> None:
    assert len(POSITIVE_WORDS) >= 15 and len(NEGATIVE_WORDS) >= 15
    groups = [POSITIVE_WORDS, NEGATIVE_WORDS, NEGATORS, INTENSIFIERS, CONJUNCTIONS]
    assert sum(len(set(g)) for g in groups) == len(set().union(*groups))
    assert {"not", "never", "hardly", "n't"} <= set(NEGATORS)
    assert word_polarity("good") == 1 and word_polarity("boring") == -1 and word_polarity("movie") == 0


# --- the generator ------------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(seed=SEEDS)
def test_generation_is_deterministic(seed: int) -> None:
    assert generate_synthetic(100, seed=seed) == generate_synthetic(100, seed=seed)


@PROPERTY_SETTINGS
@given(seed=SEEDS, other=SEEDS)
def test_different_seeds_differ(seed: int, other: int) -> None:
    if seed != other:
        assert generate_synthetic(50, seed=seed) != generate_synthetic(50, seed=other)


@PROPERTY_SETTINGS
@given(
    seed=SEEDS,
    negation_rate=st.floats(0.0, 1.0),
    contrast_rate=st.floats(0.0, 0.5),
    conjunction_rate=st.floats(0.0, 0.5),
    intensifier_rate=st.floats(0.0, 1.0),
)
def test_label_rule_holds_on_every_generated_example(
    seed: int, negation_rate: float, contrast_rate: float, conjunction_rate: float, intensifier_rate: float
) -> None:
    examples = generate_synthetic(
        100,
        seed=seed,
        negation_rate=negation_rate,
        contrast_rate=contrast_rate,
        conjunction_rate=conjunction_rate,
        intensifier_rate=intensifier_rate,
    )
    assert len(examples) == 100
    for example in examples:
        _check_invariants(example)


def test_default_corpus_invariants(corpus: List[SyntheticExample]) -> None:
    for example in corpus:
        _check_invariants(example)


def test_class_balance(corpus: List[SyntheticExample]) -> None:
    assert 0.45 <= sum(e.label for e in corpus) / len(corpus) <= 0.55


def test_negation_share(corpus: List[SyntheticExample]) -> None:
    assert sum(bool(e.negation_spans) for e in corpus) / len(corpus) >= 0.30


def test_opposing_but_clauses_exist_and_the_second_decides(corpus: List[SyntheticExample]) -> None:
    contrasts = [e for e in corpus if "but" in e.tokens]
    assert len(contrasts) / len(corpus) >= 0.1
    for example in contrasts:
        assert _clause_sign(example, 0) != _clause_sign(example, 1)
        assert example.deciding_clauses == (1,)
        first_end = example.clauses[0][1]
        assert not any(example.decisive[:first_end])


def test_every_template_and_form_occurs(corpus: List[SyntheticExample]) -> None:
    names = {name for e in corpus for name in e.template.split()}
    assert names == {"copula", "verb", "noun_phrase", "with", "find", "and", "but"}
    assert any(" " not in e.template for e in corpus)


def test_articles_agree_with_the_next_word(corpus: List[SyntheticExample]) -> None:
    for example in corpus:
        for token, following in zip(example.tokens, example.tokens[1:]):
            if token in ("a", "an"):
                assert (token == "an") == (following[0] in "aeiou"), example.text


def test_rates_are_honoured() -> None:
    assert not any(e.negation_spans for e in generate_synthetic(300, seed=1, negation_rate=0.0))
    assert all("but" in e.tokens for e in generate_synthetic(300, seed=1, contrast_rate=1.0, conjunction_rate=0.0))
    assert all(len(e.clauses) == 1 for e in generate_synthetic(300, seed=1, contrast_rate=0.0, conjunction_rate=0.0))
    assert not any(set(e.tokens) & set(INTENSIFIERS) for e in generate_synthetic(300, seed=1, intensifier_rate=0.0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": -1}, "n: expected a non-negative int, got -1"),
        ({"n": 2.5}, "n: expected a non-negative int"),
        ({"n": 1, "negation_rate": 1.5}, r"negation_rate: expected a probability in \[0, 1\], got 1.5"),
        ({"n": 1, "intensifier_rate": -0.1}, "intensifier_rate: expected a probability"),
        ({"n": 1, "contrast_rate": 0.7, "conjunction_rate": 0.6}, r"contrast_rate \+ conjunction_rate: expected at"),
    ],
)
def test_generate_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate_synthetic(**kwargs)


def test_generate_zero() -> None:
    assert generate_synthetic(0) == []


# --- splits -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def splits() -> dict:
    return {split: load_synthetic(split) for split in SPLITS}


def _texts(examples: Sequence[SyntheticExample]) -> set:
    return {e.tokens for e in examples}


def test_splits_have_default_sizes_and_unique_sentences(splits: dict) -> None:
    for split, examples in splits.items():
        assert len(examples) == DEFAULT_SPLIT_SIZES[split]
        assert len(_texts(examples)) == len(examples)
        assert all(split_of(e.tokens) == split for e in examples)


def test_splits_are_disjoint(splits: dict) -> None:
    train, dev, test = (_texts(splits[s]) for s in SPLITS)
    assert not train & dev and not train & test and not dev & test
    assert not _texts(load_synthetic("train", n=2000, seed=1)) & test


def test_splits_are_deterministic_and_seeded(splits: dict) -> None:
    assert load_synthetic("dev") == splits["dev"]
    assert load_synthetic("test", n=10) == splits["test"][:10]
    assert load_synthetic("test", n=10, seed=1) != splits["test"][:10]


def test_split_balance_and_negation(splits: dict) -> None:
    train = splits["train"]
    assert 0.45 <= sum(e.label for e in train) / len(train) <= 0.55
    assert sum(bool(e.negation_spans) for e in train) / len(train) >= 0.30


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "valid"}, r"split: expected one of \['train', 'dev', 'test'\], got 'valid'"),
        ({"split": "train", "n": -3}, "n: expected a non-negative int, got -3"),
    ],
)
def test_load_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_synthetic(**kwargs)
