"""Synthetic English-like sentiment sentences whose label is a stated function of their tokens.

The corpus serves two purposes: it is the package's embedded default dataset (no files, no network), and it is
ground truth for explanation methods, because for every token we know whether, and how, it decides the label.

Sentences are built from a small grammar over a built-in vocabulary and tokenized like SST: lower case, ``n't``
split from its verb (``is n't``, ``does n't``). Five clause templates exist (``copula``: "the plot was very
dull"; ``verb``: "this film does n't feel fresh"; ``noun_phrase``: "it is not an enjoyable comedy"; ``with``: "it
is a clever movie with no boring scenes"; ``find``: "i did n't find the ending moving"). A clause may open with a
neutral prefix ("overall", "i thought", ...). A sentence is one clause, "CLAUSE and CLAUSE" or "CLAUSE but CLAUSE".

Label rule (implemented by :func:`annotate`, and the only source of every generated example's annotations):

1. *Words.* A token is a sentiment word (polarity +1 for :data:`POSITIVE_WORDS`, -1 for :data:`NEGATIVE_WORDS`),
   a negator (:data:`NEGATORS`), a conjunction (:data:`CONJUNCTIONS`), or neutral (everything else, including
   the intensifiers, which never change a polarity).
2. *Clauses.* The conjunctions split the sentence into clauses, the maximal runs of tokens without a
   conjunction; the conjunctions themselves belong to no clause.
3. *Negation scope.* A negator at index ``i`` targets the first sentiment word ``j > i`` of its own clause; its
   scope is ``[i + 1, j + 1)`` (everything it reaches over, e.g. an intensifier, plus its target). A negator with
   no sentiment word after it in its clause targets nothing and its scope runs to the end of the clause.
4. *Effects.* A sentiment word's effect is its polarity, times -1 for every negator that targets it. Every other
   token has effect 0. A clause's polarity is the sign of the sum of its tokens' effects.
5. *Label.* The deciding clauses are the clauses after the last "but", or all clauses when there is no "but".
   They must share one polarity, and that polarity is the label: 1 (positive) or 0 (negative).
6. *Decisive tokens.* A token decides the label when it is a sentiment word in a deciding clause whose effect has
   the label's sign, or a negator whose target is such a word.

Token sequences that break the rule (a clause with zero net sentiment, deciding clauses that disagree) have no
label and are rejected by :func:`annotate` with a ``ValueError``; the generator never emits one. It chooses the
label uniformly at random and then builds a sentence for it: a negated clause carries a sentiment word of the
opposite polarity, "and" joins two clauses of the label's polarity, and "but" follows a clause of the opposite
polarity with one of the label's polarity, so the clause after "but" always decides against the one before.
A clause holds at most one negator and one or two sentiment words (two in ``with``, which agree after negation).
"""

from __future__ import annotations

import itertools
import random
import zlib
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

__all__ = [
    "CONJUNCTIONS",
    "CONJUNCTION_RATE",
    "CONTRAST",
    "CONTRAST_RATE",
    "DEFAULT_SPLIT_SIZES",
    "INTENSIFIERS",
    "INTENSIFIER_RATE",
    "NEGATION_RATE",
    "NEGATIVE_WORDS",
    "NEGATORS",
    "POSITIVE_WORDS",
    "SPLITS",
    "SyntheticExample",
    "annotate",
    "generate_synthetic",
    "label_of",
    "load_synthetic",
    "split_of",
    "word_polarity",
]

POSITIVE_WORDS: Tuple[str, ...] = (
    "good", "great", "excellent", "wonderful", "brilliant", "superb", "charming", "delightful", "enjoyable",
    "engaging", "funny", "moving", "beautiful", "clever", "fantastic", "memorable", "touching", "gripping",
    "fresh", "smart",
)
"""The positive words (polarity +1)."""
NEGATIVE_WORDS: Tuple[str, ...] = (
    "bad", "awful", "boring", "terrible", "dull", "tedious", "weak", "poor", "horrible", "bland", "clumsy",
    "lifeless", "painful", "pointless", "mediocre", "predictable", "forgettable", "messy", "annoying", "stale",
)
"""The negative words (polarity -1)."""
NEGATORS: Tuple[str, ...] = ("not", "n't", "never", "hardly", "no")
"""The negators: each flips the polarity of the first sentiment word after it in its clause."""
INTENSIFIERS: Tuple[str, ...] = (
    "very", "really", "extremely", "truly", "incredibly", "quite", "so", "remarkably", "thoroughly", "genuinely",
)
"""Neutral words that may precede a sentiment word (they never change a polarity)."""
CONJUNCTIONS: Tuple[str, ...] = ("and", "but")
"""The conjunctions, which split a sentence into clauses."""
CONTRAST = "but"
"""The conjunction after whose last occurrence the clauses decide the label."""

NEGATION_RATE = 0.4
"""Default probability that a clause holds a negator (of :func:`generate_synthetic`, and of every
:func:`load_synthetic` split)."""
CONTRAST_RATE = 0.2
"""Default probability that a sentence is "CLAUSE but CLAUSE"."""
CONJUNCTION_RATE = 0.2
"""Default probability that a sentence is "CLAUSE and CLAUSE" (agreeing clauses)."""
INTENSIFIER_RATE = 0.3
"""Default probability that a clause's sentiment word is preceded by an intensifier."""

SPLITS: Tuple[str, ...] = ("train", "dev", "test")
"""The splits of the corpus."""
DEFAULT_SPLIT_SIZES: Dict[str, int] = {"train": 10000, "dev": 1000, "test": 1000}
"""Sentences per split of :func:`load_synthetic`."""
# A sentence's split is fixed by the CRC-32 of its text modulo 10, so no sentence can fall into two splits.
_SPLIT_BUCKETS: Dict[str, range] = {"train": range(0, 8), "dev": range(8, 9), "test": range(9, 10)}

_POLARITY: Dict[str, int] = {**{w: 1 for w in POSITIVE_WORDS}, **{w: -1 for w in NEGATIVE_WORDS}}
_NEGATOR_SET = frozenset(NEGATORS)
_CONJUNCTION_SET = frozenset(CONJUNCTIONS)
_WORDS_OF: Dict[int, Tuple[str, ...]] = {1: POSITIVE_WORDS, -1: NEGATIVE_WORDS}

# Neutral vocabulary. Pairs are (present, past); a sentence keeps one tense throughout.
_DETERMINERS = ("the", "this")
_SUBJECT_NOUNS = (
    "movie", "film", "plot", "acting", "script", "story", "cast", "ending", "dialogue", "soundtrack",
    "direction", "pacing", "screenplay", "cinematography", "humor", "premise",
)
_PHRASE_NOUNS = ("film", "movie", "story", "comedy", "drama", "thriller", "picture", "debut", "sequel")
_WITH_NOUNS = ("acting", "dialogue", "moments", "scenes", "performances", "characters", "jokes", "visuals", "music")
_PRONOUNS = ("it", "this")
_COPULA = ("is", "was")
_DO = ("does", "did")
_FIRST_PERSON_DO = ("do", "did")
_VERBS = (("feels", "felt"), ("seems", "seemed"), ("looks", "looked"))  # present 3rd person, past
_VERB_BASES = ("feel", "seem", "look")
_FIND = ("find", "found")
_PREFIXES = (
    (("overall",), ("honestly",), ("frankly",), ("in", "the", "end"), ("i", "think")),
    (("overall",), ("honestly",), ("frankly",), ("in", "the", "end"), ("i", "thought")),
)
_PREFIX_RATE = 0.3
_COPULA_NEGATORS = ("not", "n't", "never", "hardly")
_PHRASE_NEGATORS = ("not", "n't", "hardly")
_AUX_NEGATORS = ("not", "n't")
_ADVERB_NEGATORS = ("never", "hardly")


@dataclass(frozen=True)
class SyntheticExample:
    """One sentence with its label and the per-token ground truth of the module's label rule.

    Attributes:
        tokens: the sentence, SST-tokenized.
        label: 1 (positive) or 0 (negative).
        token_effect: per token, its signed effect on its own clause's polarity after negation: +1 or -1 for a
            sentiment word (its polarity, flipped by each negator targeting it), 0 for every other token.
        decisive: per token, whether it decides the label (rule 6 of the module docstring).
        negation_spans: one ``(negator index, scope start, scope end)`` per negator, in sentence order; the scope
            ``[start, end)`` runs from the token after the negator through its target sentiment word.
        clauses: the ``[start, end)`` spans of the clauses, in sentence order.
        deciding_clauses: indices into ``clauses`` of the clauses that decide the label (those after the last
            "but", or all clauses when there is none).
        template: how the generator built the sentence, e.g. ``"copula but verb"``; ``""`` when the example was
            annotated from tokens alone.
    """

    tokens: Tuple[str, ...]
    label: int
    token_effect: Tuple[int, ...]
    decisive: Tuple[bool, ...]
    negation_spans: Tuple[Tuple[int, int, int], ...]
    clauses: Tuple[Tuple[int, int], ...]
    deciding_clauses: Tuple[int, ...]
    template: str = ""

    @property
    def text(self) -> str:
        """The tokens joined by single spaces."""
        return " ".join(self.tokens)


def word_polarity(token: str) -> int:
    """The lexical polarity of a token: +1 for a positive word, -1 for a negative word, 0 otherwise."""
    return _POLARITY.get(token, 0)


def annotate(tokens: Sequence[str], template: str = "") -> SyntheticExample:
    """Apply the module's label rule to a token sequence.

    Args:
        tokens: the sentence, SST-tokenized (``n't`` is its own token).
        template: stored as :attr:`SyntheticExample.template`; it does not influence the annotation.

    Returns:
        The example with label, effects, decisive flags, negation spans and clauses computed from ``tokens``.

    Raises:
        ValueError: when ``tokens`` is empty, a clause has zero net sentiment, or the deciding clauses disagree.
    """
    tokens = tuple(tokens)
    if not tokens:
        raise ValueError("tokens: expected a non-empty sequence of tokens, got an empty one")
    clauses = _clause_spans(tokens)
    effect = [word_polarity(token) for token in tokens]
    spans: List[Tuple[int, int, int]] = []
    target_of: Dict[int, int] = {}
    for start, end in clauses:
        for i in range(start, end):
            if tokens[i] not in _NEGATOR_SET:
                continue
            target = next((j for j in range(i + 1, end) if tokens[j] in _POLARITY), None)
            if target is None:
                spans.append((i, i + 1, end))
            else:
                spans.append((i, i + 1, target + 1))
                target_of[i] = target
                effect[target] = -effect[target]
    polarities = [_clause_polarity(tokens, effect, index, span) for index, span in enumerate(clauses)]
    contrasts = [index for index, token in enumerate(tokens) if token == CONTRAST]
    deciding = tuple(index for index, (start, _) in enumerate(clauses) if not contrasts or start > contrasts[-1])
    sign = polarities[deciding[0]]
    if any(polarities[index] != sign for index in deciding):
        raise ValueError(
            f"tokens: expected the deciding clauses {list(deciding)} to share one polarity, got polarities "
            f"{[polarities[index] for index in deciding]} in {' '.join(tokens)!r}"
        )
    decisive = [False] * len(tokens)
    for index in deciding:
        start, end = clauses[index]
        for i in range(start, end):
            decisive[i] = tokens[i] in _POLARITY and effect[i] == sign
    for negator, target in target_of.items():
        decisive[negator] = decisive[target]
    return SyntheticExample(
        tokens=tokens,
        label=int(sign > 0),
        token_effect=tuple(effect),
        decisive=tuple(decisive),
        negation_spans=tuple(spans),
        clauses=clauses,
        deciding_clauses=deciding,
        template=template,
    )


def label_of(tokens: Sequence[str]) -> int:
    """The label the module's rule assigns to ``tokens`` (see :func:`annotate` for the errors raised)."""
    return annotate(tokens).label


def split_of(tokens: Sequence[str]) -> str:
    """The split a sentence belongs to: ``"train"`` (80% of sentences), ``"dev"`` (10%) or ``"test"`` (10%).

    The split is a fixed function of the text (its CRC-32 modulo 10), so it is the same for every seed and
    platform, and :func:`load_synthetic` can never put one sentence into two splits.
    """
    bucket = zlib.crc32(" ".join(tokens).encode("utf-8")) % 10
    return next(split for split, buckets in _SPLIT_BUCKETS.items() if bucket in buckets)


def generate_synthetic(
    n: int,
    seed: int = 0,
    negation_rate: float = NEGATION_RATE,
    contrast_rate: float = CONTRAST_RATE,
    conjunction_rate: float = CONJUNCTION_RATE,
    intensifier_rate: float = INTENSIFIER_RATE,
) -> List[SyntheticExample]:
    """Generate ``n`` labelled sentences, independently and deterministically for a seed.

    Each label is drawn with probability 1/2. Sentences may repeat; :func:`load_synthetic` returns unique ones.

    Args:
        n: number of sentences.
        seed: seed of the ``random.Random`` that draws every choice; equal seeds give equal lists on every platform.
        negation_rate: probability that a clause contains a negator.
        contrast_rate: probability that a sentence is "CLAUSE but CLAUSE" (opposing clauses, the second decides).
        conjunction_rate: probability that a sentence is "CLAUSE and CLAUSE" (agreeing clauses).
        intensifier_rate: probability that a clause's sentiment word is preceded by an intensifier.

    Returns:
        The examples, each annotated by :func:`annotate`.

    Raises:
        ValueError: when ``n`` is negative, a rate lies outside [0, 1], or ``contrast_rate + conjunction_rate > 1``.
    """
    _check_count("n", n)
    stream = _example_stream(random.Random(seed), negation_rate, contrast_rate, conjunction_rate, intensifier_rate)
    return list(itertools.islice(stream, n))


def load_synthetic(split: str = "train", n: Optional[int] = None, seed: int = 0) -> List[SyntheticExample]:
    """A split of the synthetic corpus, with the default rates of :func:`generate_synthetic`.

    The splits are disjoint for every ``n`` and every pair of seeds: a sentence belongs to the split named by
    :func:`split_of`, and each split keeps only its own sentences from its stream, without repeats. Each split
    draws from its own stream, seeded from ``split`` and ``seed``.

    Args:
        split: ``"train"``, ``"dev"`` or ``"test"``.
        n: number of sentences; :data:`DEFAULT_SPLIT_SIZES` when ``None``.
        seed: selects the corpus; equal arguments give equal lists on every platform.

    Returns:
        ``n`` unique examples of the split.

    Raises:
        ValueError: when ``split`` is unknown or ``n`` is negative.
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {list(SPLITS)}, got {split!r}")
    n = DEFAULT_SPLIT_SIZES[split] if n is None else n
    _check_count("n", n)
    rng = random.Random(f"captum_text_ext.synthetic/{split}/{seed}")
    stream = _example_stream(rng, NEGATION_RATE, CONTRAST_RATE, CONJUNCTION_RATE, INTENSIFIER_RATE)
    seen: Set[Tuple[str, ...]] = set()
    examples: List[SyntheticExample] = []
    while len(examples) < n:
        example = next(stream)
        if example.tokens not in seen and split_of(example.tokens) == split:
            seen.add(example.tokens)
            examples.append(example)
    return examples


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected a non-negative int, got {value!r}")


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected a probability in [0, 1], got {value!r}")


def _clause_spans(tokens: Tuple[str, ...]) -> Tuple[Tuple[int, int], ...]:
    bounds = [-1, *(i for i, token in enumerate(tokens) if token in _CONJUNCTION_SET), len(tokens)]
    return tuple((left + 1, right) for left, right in zip(bounds, bounds[1:]))


def _clause_polarity(tokens: Tuple[str, ...], effect: List[int], index: int, span: Tuple[int, int]) -> int:
    start, end = span
    total = sum(effect[start:end])
    if total == 0:
        raise ValueError(
            f"tokens: expected every clause to have nonzero net sentiment, got 0 for clause {index} "
            f"{' '.join(tokens[start:end])!r} (tokens [{start}, {end}))"
        )
    return 1 if total > 0 else -1


def _example_stream(
    rng: random.Random,
    negation_rate: float,
    contrast_rate: float,
    conjunction_rate: float,
    intensifier_rate: float,
) -> Iterator[SyntheticExample]:
    """Annotated sentences drawn from ``rng`` forever; the rates are checked before the first one is drawn."""
    for name, rate in (
        ("negation_rate", negation_rate),
        ("contrast_rate", contrast_rate),
        ("conjunction_rate", conjunction_rate),
        ("intensifier_rate", intensifier_rate),
    ):
        _check_rate(name, rate)
    if contrast_rate + conjunction_rate > 1.0:
        raise ValueError(
            f"contrast_rate + conjunction_rate: expected at most 1, got {contrast_rate} + {conjunction_rate}"
        )
    return _sentences(rng, negation_rate, contrast_rate, conjunction_rate, intensifier_rate)


def _sentences(
    rng: random.Random,
    negation_rate: float,
    contrast_rate: float,
    conjunction_rate: float,
    intensifier_rate: float,
) -> Iterator[SyntheticExample]:
    while True:
        label_sign = 1 if rng.random() < 0.5 else -1
        tense = rng.randrange(2)
        form = rng.random()
        polarities: Tuple[int, ...]
        if form < contrast_rate:
            conjunction, polarities = CONTRAST, (-label_sign, label_sign)
        elif form < contrast_rate + conjunction_rate:
            conjunction, polarities = "and", (label_sign, label_sign)
        else:
            conjunction, polarities = "", (label_sign,)
        tokens: List[str] = []
        names: List[str] = []
        for index, polarity in enumerate(polarities):
            if index:
                tokens.append(conjunction)
                names.append(conjunction)
            name = rng.choice(_TEMPLATE_NAMES)
            if rng.random() < _PREFIX_RATE:
                tokens.extend(rng.choice(_PREFIXES[tense]))
            negate = rng.random() < negation_rate
            intensify = rng.random() < intensifier_rate
            tokens.extend(_TEMPLATES[name](rng, polarity, tense, negate, intensify))
            names.append(name)
        yield annotate(tokens, template=" ".join(names))


def _adjective_phrase(rng: random.Random, polarity: int, intensify: bool) -> List[str]:
    """``[INTENSIFIER] ADJECTIVE`` with an adjective of ``polarity``."""
    words = [rng.choice(INTENSIFIERS)] if intensify else []
    words.append(rng.choice(_WORDS_OF[polarity]))
    return words


def _subject(rng: random.Random) -> List[str]:
    return [rng.choice(_DETERMINERS), rng.choice(_SUBJECT_NOUNS)]


def _article(next_word: str) -> str:
    return "an" if next_word[0] in "aeiou" else "a"


def _copula_clause(rng: random.Random, polarity: int, tense: int, negate: bool, intensify: bool) -> List[str]:
    """``the plot was [not] [very] dull``."""
    words = _subject(rng) + [_COPULA[tense]]
    if negate:
        words.append(rng.choice(_COPULA_NEGATORS))
    return words + _adjective_phrase(rng, -polarity if negate else polarity, intensify)


def _verb_clause(rng: random.Random, polarity: int, tense: int, negate: bool, intensify: bool) -> List[str]:
    """``this film feels fresh`` / ``this film does n't feel fresh`` / ``this film never feels fresh``."""
    words = _subject(rng)
    verb = rng.randrange(len(_VERBS))
    if not negate:
        words.append(_VERBS[verb][tense])
    elif rng.random() < 0.5:
        words += [_DO[tense], rng.choice(_AUX_NEGATORS), _VERB_BASES[verb]]
    else:
        words += [rng.choice(_ADVERB_NEGATORS), _VERBS[verb][tense]]
    return words + _adjective_phrase(rng, -polarity if negate else polarity, intensify)


def _noun_phrase_clause(rng: random.Random, polarity: int, tense: int, negate: bool, intensify: bool) -> List[str]:
    """``it is [not] an [extremely] enjoyable comedy``."""
    words = [rng.choice(_PRONOUNS), _COPULA[tense]]
    if negate:
        words.append(rng.choice(_PHRASE_NEGATORS))
    phrase = _adjective_phrase(rng, -polarity if negate else polarity, intensify)
    return words + [_article(phrase[0])] + phrase + [rng.choice(_PHRASE_NOUNS)]


def _with_clause(rng: random.Random, polarity: int, tense: int, negate: bool, intensify: bool) -> List[str]:
    """``it is a clever movie with great acting`` / ``... with no boring scenes`` (``no`` negates the second)."""
    phrase = _adjective_phrase(rng, polarity, intensify)
    words = [rng.choice(_PRONOUNS), _COPULA[tense], _article(phrase[0]), *phrase, rng.choice(_PHRASE_NOUNS), "with"]
    if negate:
        words.append("no")
    return words + [rng.choice(_WORDS_OF[-polarity if negate else polarity]), rng.choice(_WITH_NOUNS)]


def _find_clause(rng: random.Random, polarity: int, tense: int, negate: bool, intensify: bool) -> List[str]:
    """``i found the ending moving`` / ``i did n't find the ending moving`` / ``i never found ...``."""
    words = ["i"]
    if not negate:
        words.append(_FIND[tense])
    elif rng.random() < 0.5:
        words += [_FIRST_PERSON_DO[tense], rng.choice(_AUX_NEGATORS), "find"]
    else:
        words += ["never", _FIND[tense]]
    return words + _subject(rng) + _adjective_phrase(rng, -polarity if negate else polarity, intensify)


_TEMPLATES: Dict[str, Callable[[random.Random, int, int, bool, bool], List[str]]] = {
    "copula": _copula_clause,
    "verb": _verb_clause,
    "noun_phrase": _noun_phrase_clause,
    "with": _with_clause,
    "find": _find_clause,
}
_TEMPLATE_NAMES: Tuple[str, ...] = tuple(_TEMPLATES)
