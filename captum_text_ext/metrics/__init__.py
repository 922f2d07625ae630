"""Faithfulness metrics for text explanations: a class and a functional form each (see :doc:`/metrics`)."""

from captum_text_ext.metrics.captum_interop import text_infidelity, text_sensitivity_max
from captum_text_ext.metrics.curves import (
    CurveResult,
    DeletionCurve,
    InsertionCurve,
    deletion_curve,
    insertion_curve,
    top_k_masks,
)
from captum_text_ext.metrics.eraser import (
    ERASER_PERCENTS,
    Comprehensiveness,
    ErasureResult,
    Sufficiency,
    comprehensiveness,
    sufficiency,
)
from captum_text_ext.metrics.ground_truth import (
    GROUND_TRUTH_COLUMNS,
    GroundTruth,
    GroundTruthMetric,
    best_rank,
    decisive_auprc,
    ground_truth,
    negation_interaction_sign,
    precision_at_k,
    sign_accuracy,
    top1_precision,
)
from captum_text_ext.metrics.naopc import BEAM_WIDTH, EXACT_MAX_TOKENS, AOPCBounds, NAOPCResult, aopc_bounds, naopc
from captum_text_ext.metrics.perturbation import (
    REMOVALS,
    apply_removal,
    replacement_embedding,
    resolve_removal,
    target_probabilities,
)
from captum_text_ext.metrics.reduction import REDUCTIONS, percent_count, removal_order, token_scores

__all__ = [
    "GROUND_TRUTH_COLUMNS",
    "AOPCBounds",
    "BEAM_WIDTH",
    "Comprehensiveness",
    "CurveResult",
    "DeletionCurve",
    "ERASER_PERCENTS",
    "EXACT_MAX_TOKENS",
    "ErasureResult",
    "GroundTruth",
    "GroundTruthMetric",
    "InsertionCurve",
    "NAOPCResult",
    "REDUCTIONS",
    "REMOVALS",
    "Sufficiency",
    "aopc_bounds",
    "apply_removal",
    "best_rank",
    "comprehensiveness",
    "decisive_auprc",
    "deletion_curve",
    "ground_truth",
    "insertion_curve",
    "naopc",
    "negation_interaction_sign",
    "percent_count",
    "precision_at_k",
    "removal_order",
    "replacement_embedding",
    "resolve_removal",
    "sign_accuracy",
    "sufficiency",
    "target_probabilities",
    "text_infidelity",
    "text_sensitivity_max",
    "token_scores",
    "top1_precision",
    "top_k_masks",
]
