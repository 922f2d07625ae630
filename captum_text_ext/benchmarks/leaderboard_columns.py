"""The leaderboard's columns: the metrics, their removal variants and the columns the judging table judges
(:mod:`~captum_text_ext.benchmarks.leaderboard` computes them)."""

from __future__ import annotations

import dataclasses
from typing import Dict, Sequence, Tuple

from captum_text_ext.benchmarks.metric_judging import JudgedColumn
from captum_text_ext.metrics import BEAM_WIDTH, EXACT_MAX_TOKENS, REMOVALS
from captum_text_ext.models.removal_fine_tuning import EPOCHS, LR_SCALE

__all__ = [
    "COLUMNS",
    "FINE_TUNED",
    "INFIDELITY_NOISE",
    "JUDGED_AGAINST",
    "REMOVAL_COLUMNS",
    "REMOVAL_VARIANTS",
    "REMOVAL_WORDS",
    "Column",
    "judged_columns",
    "variant_columns",
]

INFIDELITY_NOISE = 0.1
"""Standard deviation of infidelity's Gaussian noise."""


@dataclasses.dataclass(frozen=True)
class Column:
    """A column of the leaderboard.

    Attributes:
        key: its name in the JSON file and the table head.
        higher_is_better: whether larger means a better explanation.
        ground_truth: only on the synthetic corpus.
        description: what it is, for the table's notes.
    """

    key: str
    higher_is_better: bool
    ground_truth: bool
    description: str


COLUMNS: Tuple[Column, ...] = (
    Column("comp", True, False, "ERASER comprehensiveness, AOPC over 1/5/10/20/50%"),
    Column("suff", False, False, "ERASER sufficiency, AOPC over 1/5/10/20/50%"),
    Column("del", True, False, "deletion-curve AOPC over 0-100% in steps of 10%"),
    Column("ins", True, False, "insertion-curve AOPC over 0-100% in steps of 10%"),
    Column("NAOPC comp", True, False, f"normalized AOPC of comprehensiveness over every prefix (Edin et al. 2025): "
           f"exact bounds up to {EXACT_MAX_TOKENS} tokens, beam search of width {BEAM_WIDTH} beyond"),
    Column("NAOPC suff", False, False, "normalized AOPC of sufficiency over every prefix, bounds as NAOPC comp"),
    Column("infid", False, False, f"Captum infidelity, normalized, Gaussian noise σ={INFIDELITY_NOISE}"),
    Column("sens", False, False, "Captum sensitivity-max, radius 0.02"),
    Column("top1", True, True, "top-1 ground-truth precision"),
    Column("R-prec", True, True, "precision at the number of decisive tokens"),
    Column("AUPRC", True, True, "average precision of the decisive tokens"),
    Column("sign", True, True, "sign accuracy of the sentiment words"),
    Column("neg sign", True, True, "sign accuracy of the negated words"),
    Column("neg×word", True, True, "sign of the negator × word interaction (CD)"),
)
"""The metric columns, in table order (``s/100`` follows them); the removal columns remove by zeroing."""
REMOVAL_COLUMNS: Tuple[str, ...] = ("comp", "suff", "del", "ins", "NAOPC comp", "NAOPC suff")
"""The columns that remove tokens: each is also computed with every other removal of :data:`REMOVAL_VARIANTS`."""
REMOVAL_VARIANTS: Tuple[str, ...] = ("zero", "unk", "pad", "ft")
"""The removals every removal column is computed with (:data:`~captum_text_ext.metrics.REMOVALS`, and ``ft``:
zeroing scored by the model fine-tuned with random token removal); ``zero`` is the main table's."""
FINE_TUNED = "ft"
"""The removal variant scored by the fine-tuned model."""
REMOVAL_WORDS: Dict[str, str] = {
    **REMOVALS,
    FINE_TUNED: f"embedding zeroed, scored by a copy of the model fine-tuned with random token removal (F-Fidelity "
                f"style: {EPOCHS} epoch over its training data, a uniform count of each sentence's tokens zeroed, "
                f"the recipe's learning rate × {LR_SCALE}, embedding frozen)",
}
"""What each removal variant does, for the tables."""
JUDGED_AGAINST = "top1"
"""The ground-truth column the metrics are judged against (:mod:`~captum_text_ext.benchmarks.metric_judging`)."""


def variant_columns(removals: Sequence[str]) -> Tuple[Column, ...]:
    """The removal columns computed with each removal but zeroing, keyed ``comp@unk`` and so on."""
    base = {c.key: c for c in COLUMNS}
    return tuple(Column(f"{key}@{removal}", base[key].higher_is_better, False,
                        f"{base[key].description}, {REMOVAL_WORDS[removal]}")
                 for removal in removals if removal != "zero" for key in REMOVAL_COLUMNS)


def judged_columns(removals: Sequence[str]) -> Tuple[JudgedColumn, ...]:
    """Every non-ground-truth column with its removal: the metrics the judging table judges."""
    out = []
    for column in COLUMNS:
        if column.ground_truth:
            continue
        if column.key not in REMOVAL_COLUMNS:
            out.append(JudgedColumn(column.key, column.key, None, column.higher_is_better))
            continue
        out += [JudgedColumn(column.key if removal == "zero" else f"{column.key}@{removal}", column.key, removal,
                             column.higher_is_better) for removal in removals]
    return tuple(out)
