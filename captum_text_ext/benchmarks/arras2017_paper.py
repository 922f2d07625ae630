"""What Arras et al. (2017) print: the example sentences of Figures 1-2, the signs of relevance the text points
out, Table 1 and the SST counts, with which :mod:`~captum_text_ext.benchmarks.arras2017` compares its results.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

__all__ = ["PAPER_COUNTS", "PAPER_EXAMPLES", "PAPER_TABLE1", "PAPER_WORD_SIGNS", "PaperExample"]

PAPER_COUNTS = (2210, 1849)
"""The paper's SST test sentences, and how many of them have at least 10 words (the word-deletion set)."""


@dataclasses.dataclass(frozen=True)
class PaperExample:
    """One sentence of the paper's Figures 1-2.

    Attributes:
        number: its number in the figures (1-21).
        text: its words as printed (lowercased, space-separated).
        true_class: the true class the paper shows (0 very negative .. 4 very positive).
        paper_prediction: the class the paper's model predicted.
    """

    number: int
    text: str
    true_class: int
    paper_prediction: int


_PAPER_ROWS = (
    ("do n't waste your money .", 0, 0),
    ("neither funny nor suspenseful nor particularly well-drawn .", 0, 0),
    ("it 's not horrible , just horribly mediocre .", 0, 0),
    ("... too slow , too boring , and occasionally annoying .", 0, 0),
    ("it 's neither as romantic nor as thrilling as it should be .", 0, 0),
    ("the master of disaster - it 's a piece of dreck disguised as comedy .", 0, 0),
    ("so stupid , so ill-conceived , so badly drawn , it created whole new levels of ugly .", 0, 0),
    ("a film so tedious that it is impossible to care whether that boast is true or not .", 0, 0),
    ("choppy editing and too many repetitive scenes spoil what could have been an important documentary about "
     "stand-up comedy .", 0, 0),
    ("this idea has lost its originality ... and neither star appears very excited at rehashing what was basically "
     "a one-joke picture .", 0, 0),
    ("ecks this one off your must-see list .", 0, 4),
    ("this is n't a `` friday '' worth waiting for .", 0, 1),
    ("there is not an ounce of honesty in the entire production .", 0, 1),
    ("do n't expect any surprises in this checklist of teamwork cliches ...", 0, 1),
    ("he has not learnt that storytelling is what the movies are about .", 0, 1),
    ("but here 's the real damn : it is n't funny , either .", 0, 1),
    ("these are names to remember , in order to avoid them in the future .", 0, 3),
    ("the cartoon that is n't really good enough to be on afternoon tv is now a movie that is n't really good "
     "enough to be in theaters .", 0, 1),
    ("a worthy entry into a very difficult genre .", 4, 4),
    ("it 's a good film -- not a classic , but odd , entertaining and authentic .", 4, 4),
    ("it never fails to engage us .", 4, 0),
)
PAPER_EXAMPLES: Tuple[PaperExample, ...] = tuple(
    PaperExample(number, text, true, predicted) for number, (text, true, predicted) in enumerate(_PAPER_ROWS, 1)
)
"""The 21 example sentences of Figures 1-2 (rows 1-10 and 19-20 correctly classified by the paper's model)."""


PAPER_WORD_SIGNS: Tuple[Tuple[int, str, int], ...] = (
    (1, "n't", -1),
    (3, "not", -1),
    (12, "n't", 1),
    (14, "n't", 1),
    (16, "n't", 1),
    (18, "n't", 1),
    (11, "must-see", -1),
    (11, "list", -1),
    (17, "remember", -1),
    (17, "future", -1),
    (21, "fails", -1),
)
"""The signs of LRP relevance the paper's text points out in Fig. 2 (Sec. 4.1), one ``(example number, word, sign)``
each. Negators followed by negative words are negative, followed by positive words positive; words speaking against
the true class of the misclassified examples 11, 17 and 21 are negative."""


PAPER_TABLE1: Tuple[Tuple[str, str, str, str], ...] = (
    ("broken-down", "into", "funnier", "wrong"),
    ("wall", "what", "charm", "n't"),
    ("execution", "that", "polished", "forgettable"),
    ("lackadaisical", "a", "gorgeous", "shame"),
    ("milestone", "do", "excellent", "little"),
    ("unreality", "of", "screen", "predictable"),
    ("soldier", "all", "honest", "overblown"),
    ("mournfully", "ca", "wall", "trying"),
    ("insight", "in", "confidence", "lacking"),
    ("disorienting", "'s", "perfectly", "nonsense"),
)
"""The paper's Table 1, row by row: the words ranked 1-10 as (SA most, SA least, LRP most, LRP least) relevant for
"very positive"."""
