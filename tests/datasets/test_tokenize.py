"""Tests of Kim (2014)'s regex tokenizer."""

from __future__ import annotations

from typing import List

import pytest
from hypothesis import given
from hypothesis import strategies as st

from captum_text_ext.datasets.tokenize import kim_tokenize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("don't", ["do", "n't"]),
        ("it's", ["it", "'s"]),
        ("we've they're I'd we'll", ["we", "'ve", "they", "'re", "I", "'d", "we", "'ll"]),
        ("can't", ["ca", "n't"]),
        ("DON'T", ["DON'T"]),  # contractions are matched case-sensitively, as in the original
    ],
)
def test_contractions_are_split_off(text: str, expected: List[str]) -> None:
    assert kim_tokenize(text) == expected


def test_punctuation_becomes_tokens() -> None:
    assert kim_tokenize("Hello, world! (yes) what?") == ["Hello", ",", "world", "!", "(", "yes", ")", "what", "?"]


def test_disallowed_characters_become_spaces() -> None:
    assert kim_tokenize('café-au-lait. "x" a/b; c:d_e') == ["café", "au", "lait", "x", "a", "b", "c", "d", "e"]


def test_accented_letters_are_kept_in_one_token_also_when_combining() -> None:
    assert kim_tokenize("clichés") == ["clichés"]
    assert kim_tokenize("cliche\u0301s naïve Ærø") == ["clichés", "naïve", "Ærø"]
    assert kim_tokenize("Clichés", lower=True) == ["clichés"]


def test_ascii_only_removes_non_ascii_letters_as_the_original() -> None:
    assert kim_tokenize("clichés café-au-lait", ascii_only=True) == ["clich", "s", "caf", "au", "lait"]


def test_quotes_backticks_digits_are_kept() -> None:
    assert kim_tokenize("``hi'' 21st 'quoted'") == ["``hi''", "21st", "'quoted'"]


def test_whitespace_collapses() -> None:
    assert kim_tokenize("  a \t\n b\u00a0c  ") == ["a", "b", "c"]


def test_case_is_kept_unless_lower() -> None:
    assert kim_tokenize("The Rock's") == ["The", "Rock", "'s"]
    assert kim_tokenize("The Rock's", lower=True) == ["the", "rock", "'s"]


def test_empty_and_all_removed() -> None:
    assert kim_tokenize("") == []
    assert kim_tokenize("... -- ;") == []


@given(st.text())
def test_tokenizing_tokens_again_changes_nothing(text: str) -> None:
    tokens = kim_tokenize(text)
    assert kim_tokenize(" ".join(tokens)) == tokens
    assert all(token and " " not in token for token in tokens)
