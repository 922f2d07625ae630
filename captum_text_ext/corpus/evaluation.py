r"""Scoring a saved corpus run by the faithfulness metrics: ``captum-text-ext evaluate DIR``.

:func:`evaluate_run` reads the scores a run of ``captum-text-ext attribute`` stored
(:func:`~captum_text_ext.corpus.load_attributions`), loads the model its manifest names (the zoo model from the
model cache, or the checkpoint's path), checks that it is the model the scores were computed with (the recorded
hashes of its weights and vocabulary), and computes, for every method of the run and every example, the leaderboard's
per-sentence metrics that the stored scores determine (:mod:`captum_text_ext.benchmarks.leaderboard`, same keys):

- the removal metrics :data:`REMOVAL_METRICS`: ``comp`` / ``suff`` (ERASER comprehensiveness and sufficiency, AOPC
  over 1/5/10/20/50%), ``del`` / ``ins`` (AOPC of the deletion and insertion curves over 0, 10, ..., 100%) and
  ``NAOPC comp`` / ``NAOPC suff`` (:mod:`~captum_text_ext.metrics.naopc`: exact bounds up to
  :data:`~captum_text_ext.metrics.EXACT_MAX_TOKENS` tokens, beam search of width
  :data:`~captum_text_ext.metrics.BEAM_WIDTH` beyond), each with every removal of :data:`REMOVALS_EVALUATED`
  (``zero``; ``unk`` and ``pad``: the token replaced by that token's embedding; a variant whose embedding is the zero
  vector is stated to give the numbers of ``zero`` and not computed again), keyed ``comp``, ``comp@unk``, ...;
- on the synthetic corpus (a run of ``--dataset synthetic:SPLIT``), against its ground truth
  (:func:`~captum_text_ext.datasets.synthetic.annotate` of each sentence), counting the sentences the model
  classifies correctly: :data:`GROUND_TRUTH_METRICS` (``top1``, ``R-prec``, ``AUPRC``, ``sign``, ``neg sign``; the
  sign columns only for signed reductions).

Every metric reads the class each example's scores explain (the run's ``target``: the predicted class, the gold label
or a fixed class) and ranks tokens by their signed score. The model reads each example as the run did: its stored
tokens, encoded with the model's vocabulary, padded within a batch. What the stored scores cannot give is refused by
name (:data:`NOT_FROM_SAVED_SCORES`): infidelity needs the attribution at every embedding entry and sensitivity-max
runs the method again, while the run stores one score per token; the negator × word sign needs CD's interaction
scores.

The results file (``evaluation.json`` in the run's directory by default, written atomically) holds the run's
provenance header (this command's, citing the run's manifest and the checkpoint with both its hashes), every metric's
mean and count per method and the per-example values, keyed by example id.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_text_ext.corpus import storage
from captum_text_ext.corpus.loading import Attributions, load_attributions
from captum_text_ext.corpus.runner import _sha256, model_fingerprint
from captum_text_ext.datasets._paths import PathLike
from captum_text_ext.datasets.synthetic import annotate
from captum_text_ext.datasets.vocab import Vocabulary
from captum_text_ext.metrics import (
    GROUND_TRUTH_COLUMNS,
    BEAM_WIDTH,
    EXACT_MAX_TOKENS,
    REMOVALS,
    GroundTruthMetric,
    aopc_bounds,
    comprehensiveness,
    deletion_curve,
    ground_truth,
    insertion_curve,
    naopc,
    replacement_embedding,
    sufficiency,
)
from captum_text_ext.models import embedding_forward
from captum_text_ext.models.checkpoints import Checkpoint, load_checkpoint
from captum_text_ext.models.zoo import checkpoint_path, load_zoo_model
from captum_text_ext.provenance import RunRecorder

__all__ = [
    "DEFAULT_RESULTS",
    "GROUND_TRUTH_METRICS",
    "METRICS",
    "NOT_FROM_SAVED_SCORES",
    "REMOVALS_EVALUATED",
    "REMOVAL_METRICS",
    "ModelMismatchError",
    "check_same_model",
    "evaluate_attributions",
    "evaluate_run",
    "removal_variants",
    "run_checkpoint",
]

REMOVAL_METRICS: Dict[str, str] = {
    "comp": "ERASER comprehensiveness, AOPC over 1/5/10/20/50% (higher is better)",
    "suff": "ERASER sufficiency, AOPC over 1/5/10/20/50% (lower is better)",
    "del": "deletion-curve AOPC over 0-100% in steps of 10% (higher is better)",
    "ins": "insertion-curve AOPC over 0-100% in steps of 10% (higher is better)",
    "NAOPC comp": f"normalized AOPC of comprehensiveness over every prefix (Edin et al. 2025): exact bounds up to "
                  f"{EXACT_MAX_TOKENS} tokens, beam search of width {BEAM_WIDTH} beyond (higher is better)",
    "NAOPC suff": "normalized AOPC of sufficiency over every prefix, bounds as NAOPC comp (lower is better)",
}
"""The removal metrics (the leaderboard's keys), computed with every removal of :data:`REMOVALS_EVALUATED`."""
GROUND_TRUTH_METRICS: Dict[str, str] = {
    "top1": "top-1 ground-truth precision (higher is better)",
    "R-prec": "precision at the number of decisive tokens (higher is better)",
    "AUPRC": "average precision of the decisive tokens (higher is better)",
    "sign": "sign accuracy of the sentiment words (higher is better; signed reductions only)",
    "neg sign": "sign accuracy of the negated words (higher is better; signed reductions only)",
}
"""The metrics against the synthetic corpus's ground truth, on the sentences the model classifies correctly."""
METRICS: Tuple[str, ...] = (*REMOVAL_METRICS, *GROUND_TRUTH_METRICS)
"""Every metric ``evaluate`` computes."""
NOT_FROM_SAVED_SCORES: Dict[str, str] = {
    "infid": "infidelity needs the attribution at every embedding entry, and the run stores one score per token",
    "sens": "sensitivity-max runs the method again on perturbed inputs, which the stored scores cannot do",
    "neg×word": "the negator × word sign needs CD's interaction scores, which the run does not store",
}
"""The leaderboard's other metrics, with why the stored scores cannot give them."""
REMOVALS_EVALUATED: Tuple[str, ...] = ("zero", "unk", "pad")
"""The removals every removal metric is computed with (:data:`~captum_text_ext.metrics.REMOVALS`)."""
DEFAULT_RESULTS = "evaluation.json"
"""The results file's name in the run's directory (the default ``--out``)."""
BATCH_SIZE = 64
"""Examples per batch."""
_NAOPC = {"NAOPC comp": "comprehensiveness", "NAOPC suff": "sufficiency"}
_SIGN_METRICS = ("sign", "neg sign")
_SYNTHETIC = "synthetic:"


class ModelMismatchError(ValueError):
    """The model loaded for a run is not the model its scores were computed with."""


def run_checkpoint(attributions: Attributions, cache_dir: Optional[PathLike] = None) -> Tuple[Checkpoint, Path]:
    """The checkpoint the run's manifest names (``model``: a zoo model, loaded from the model cache without training,
    or a checkpoint's path), checked by :func:`check_same_model`; returns it and its file.

    Raises:
        ValueError: for a run whose manifest names no model (written by :func:`attribute_corpus` without
            ``model_record``, or before it existed), or a :class:`ModelMismatchError`.
        FileNotFoundError: when the zoo model is not in the cache or the checkpoint file is gone.
    """
    record = attributions.manifest.get("model") or {}
    if "zoo" in record:
        path = checkpoint_path(str(record["zoo"]), cache_dir)
        checkpoint = load_zoo_model(str(record["zoo"]), cache_dir, train_if_missing=False)
    elif "checkpoint" in record:
        path = Path(record["checkpoint"])
        if not path.is_file():
            raise FileNotFoundError(f"The run in {attributions.directory} was computed with the checkpoint {path}, "
                                    "which is gone; pass --checkpoint with that checkpoint")
        checkpoint = load_checkpoint(path)
    else:
        raise ValueError(f"The run in {attributions.directory} does not name its model (its manifest has no `model`); "
                         "pass --model NAME or --checkpoint PATH, the model it was computed with")
    check_same_model(attributions, checkpoint)
    return checkpoint, path


def check_same_model(attributions: Attributions, checkpoint: Checkpoint) -> None:
    """Check that ``checkpoint`` holds the weights and vocabulary the run's scores were computed with.

    The weights are compared by the hash of the weights alone when the run recorded it (``model.weights_sha256``; a
    zoo model trained again to the same weights passes), else by the run's ``model_sha256`` (the checkpoint file's
    SHA-256, or :func:`~captum_text_ext.corpus.runner.model_fingerprint` of a model given without one); the
    vocabulary by its recorded hash.

    Raises:
        ModelMismatchError: naming both hashes.
    """
    record = attributions.manifest.get("model") or {}
    recorded_weights = record.get("weights_sha256")
    if recorded_weights is not None:
        if recorded_weights != checkpoint.weights_sha256:
            raise ModelMismatchError(
                f"The model's weights differ from those the run in {attributions.directory} was computed with "
                f"(weights sha256 {checkpoint.weights_sha256} now, {recorded_weights} recorded); evaluate it with "
                "the checkpoint it was computed with, or attribute again")
    else:
        recorded = attributions.settings["model_sha256"]
        if recorded not in (checkpoint.sha256, model_fingerprint(checkpoint.model)):
            raise ModelMismatchError(
                f"The checkpoint is not the one the run in {attributions.directory} was computed with (sha256 "
                f"{checkpoint.sha256} now, {recorded} recorded); evaluate it with the checkpoint it was computed "
                "with, or attribute again")
    if _sha256(checkpoint.vocabulary.to_dict()) != attributions.settings["vocabulary_sha256"]:
        raise ModelMismatchError(f"The checkpoint's vocabulary differs from the one the run in "
                                 f"{attributions.directory} was computed with")


def _chosen_metrics(attributions: Attributions, metrics: Optional[Sequence[str]]) -> Tuple[List[str], Dict[str, str]]:
    """The metrics to compute and, for the default choice, those left out with why."""
    truth_missing = _ground_truth_missing(attributions)
    if metrics is None:
        chosen = [*REMOVAL_METRICS, *([] if truth_missing else GROUND_TRUTH_METRICS)]
        left_out = {**NOT_FROM_SAVED_SCORES, **{key: truth_missing for key in GROUND_TRUTH_METRICS if truth_missing}}
        return chosen, left_out
    for key in metrics:
        if key in NOT_FROM_SAVED_SCORES:
            raise ValueError(f"{key} cannot be computed from a saved run: {NOT_FROM_SAVED_SCORES[key]}")
        if key not in METRICS:
            raise ValueError(f"Expected metrics among {list(METRICS)}, but got {key!r}")
        if key in GROUND_TRUTH_METRICS and truth_missing:
            raise ValueError(f"{key} needs the synthetic corpus's ground truth: {truth_missing}")
    return list(dict.fromkeys(metrics)), {}


def _ground_truth_missing(attributions: Attributions) -> Optional[str]:
    """Why the run's corpus has no ground truth, or ``None`` when it has."""
    description = str(attributions.settings["corpus"]["description"])
    if not description.startswith(_SYNTHETIC):
        return (f"the run's corpus is {description}, not the synthetic corpus (a run of --dataset synthetic:SPLIT), "
                "so its sentences have no ground truth")
    if len(attributions) and bool((attributions.labels < 0).any()):
        return "some of the run's examples have no gold label, which the ground-truth metrics need"
    if attributions.settings["unit"] != "word":
        return "the ground truth is per word, and the run stores scores per subword"
    return None


def removal_variants(embedding: nn.Module, vocabulary: Vocabulary,
                      removals: Sequence[str]) -> Tuple[Dict[str, Optional[Tensor]], Dict[str, str]]:
    """The removals to compute (``None``: zeroing; else the replacement embedding) and what each does on this model
    (a variant whose embedding is the zero vector gives the numbers of ``zero`` and, when ``zero`` is computed too,
    is not computed again).

    Raises:
        ValueError: for no removal, or one not in :data:`REMOVALS_EVALUATED`.
    """
    variants: Dict[str, Optional[Tensor]] = {}
    described: Dict[str, str] = {}
    if not removals:
        raise ValueError(f"Expected at least one removal of {list(REMOVALS_EVALUATED)} for the removal metrics")
    for removal in removals:
        if removal not in REMOVALS_EVALUATED:
            raise ValueError(f"Expected removals among {list(REMOVALS_EVALUATED)}, but got {removal!r}")
        if removal == "zero":
            variants[removal], described[removal] = None, REMOVALS[removal]
            continue
        vector = replacement_embedding(embedding, vocabulary, removal)
        if bool((vector == 0).all()) and "zero" in removals:
            described[removal] = f"{REMOVALS[removal]}: the zero vector on this model, so the numbers of `zero`"
        else:
            variants[removal], described[removal] = vector, REMOVALS[removal]
    return variants, described


def evaluate_attributions(
    attributions: Attributions,
    checkpoint: Checkpoint,
    metrics: Optional[Sequence[str]] = None,
    removals: Sequence[str] = REMOVALS_EVALUATED,
    batch_size: int = BATCH_SIZE,
    progress: bool = False,
) -> Dict[str, Any]:
    """Compute the metrics of the run's scores (module docstring) with the run's model.

    Args:
        attributions: a complete run (:func:`~captum_text_ext.corpus.load_attributions`).
        checkpoint: its model, checked with :func:`check_same_model`.
        metrics: keys of :data:`METRICS` (default: the removal metrics, and the ground-truth metrics when the corpus
            has ground truth; those left out are listed with the reason).
        removals: removals of :data:`REMOVALS_EVALUATED` for the removal metrics (``zero`` is the unsuffixed key).
        batch_size: examples per batch.
        progress: a progress bar.

    Returns:
        The results (JSON-like): ``metrics`` (key to description), ``not_computed`` (key to why), ``removals``,
        ``methods`` (method to its reduction, per-metric ``summary`` of ``mean`` and ``n``, and per-example
        ``values``, ``None`` where undefined), ``ids`` and ``target``.

    Raises:
        ValueError: for a metric that cannot be computed (named, with why), an unknown removal, a model that reads
            subwords, or a :class:`ModelMismatchError`.
    """
    if batch_size < 1:
        raise ValueError(f"Expected `batch_size` >= 1, but got {batch_size}")
    check_same_model(attributions, checkpoint)
    vocabulary = checkpoint.vocabulary
    if not isinstance(vocabulary, Vocabulary):
        raise ValueError(f"evaluate removes the model's tokens one by one, and this {checkpoint.architecture} model "
                         f"reads {type(vocabulary).__name__} subwords, whose scores the run does not store per model "
                         "token; a word-vocabulary model is needed")
    chosen, left_out = _chosen_metrics(attributions, metrics)
    model = checkpoint.model
    embedding = model.get_submodule(attributions.settings["layer"])
    variants, described = removal_variants(embedding, vocabulary, removals if any(
        key in REMOVAL_METRICS for key in chosen) else ())
    keys = [_key(metric, removal) for metric in chosen if metric in REMOVAL_METRICS for removal in variants]
    keys += [metric for metric in chosen if metric in GROUND_TRUTH_METRICS]
    values = {method: {key: [math.nan] * len(attributions) for key in keys} for method in attributions.methods}
    order = sorted(range(len(attributions)), key=lambda i: len(attributions.tokens(i)))
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    for rows in tqdm(batches, desc="evaluate", disable=not progress):
        _evaluate_batch(attributions, model, embedding, vocabulary, rows, chosen, variants, values)
    reductions = attributions.settings["reductions"]
    return {
        "run": str(attributions.directory),
        "examples": len(attributions),
        "target": attributions.settings["target"],
        "metrics": {key: {**REMOVAL_METRICS, **GROUND_TRUTH_METRICS}[key] for key in chosen},
        "not_computed": left_out,
        "removals": described,
        "ids": attributions.ids,
        "methods": {method: {
            "reduction": reductions[method],
            "summary": {key: _summary(column) for key, column in per_key.items()},
            "values": {key: [None if math.isnan(v) else v for v in column] for key, column in per_key.items()},
        } for method, per_key in values.items()},
    }


def _key(metric: str, removal: str) -> str:
    return metric if removal == "zero" else f"{metric}@{removal}"


def _summary(column: Sequence[float]) -> Dict[str, Any]:
    defined = [v for v in column if not math.isnan(v)]
    return {"mean": sum(defined) / len(defined) if defined else None, "n": len(defined)}


def _evaluate_batch(attributions: Attributions, model: nn.Module, embedding: nn.Module, vocabulary: Vocabulary,
                    rows: List[int], chosen: Sequence[str], variants: Mapping[str, Optional[Tensor]],
                    values: Dict[str, Dict[str, List[float]]]) -> None:
    """Every chosen metric of every method on the examples ``rows``."""
    tokens = [attributions.tokens(i) for i in rows]
    lengths = torch.tensor([len(t) for t in tokens], dtype=torch.long)
    ids = torch.full((len(rows), int(lengths.max())), vocabulary.pad_index, dtype=torch.long)
    for j, words in enumerate(tokens):
        ids[j, : len(words)] = torch.tensor(vocabulary.encode(words), dtype=torch.long)
    device = next(model.parameters()).device
    ids, lengths = ids.to(device), lengths.to(device)
    with torch.no_grad():
        embeddings = embedding(ids).detach()
    forward = embedding_forward(model)
    index = torch.tensor(rows, dtype=torch.long)
    target = attributions.targets[index].to(device)
    removal_metrics = [m for m in chosen if m in REMOVAL_METRICS]
    bounds = {removal: aopc_bounds(forward, embeddings, lengths, target, removal, replacement=replacement)
              for removal, replacement in variants.items() if any(metric in _NAOPC for metric in removal_metrics)}
    truth = [m for m in chosen if m in GROUND_TRUTH_METRICS]
    for method in attributions.methods:
        stored = attributions.scores(method)
        scores = torch.zeros(ids.shape, dtype=torch.float32)
        for j, i in enumerate(rows):
            per_token = stored[i]
            if per_token.shape[0] != len(tokens[j]):
                raise ValueError(f"Example {attributions.ids[i]!r} of the run has {len(tokens[j])} tokens and "
                                 f"{per_token.shape[0]} scores of {method}")
            scores[j, : len(tokens[j])] = per_token
        scores = scores.to(device)
        out = values[method]
        for removal, replacement in variants.items():
            common = dict(forward_func=forward, embeddings=embeddings, lengths=lengths, scores=scores, target=target,
                          removal=removal, replacement=replacement)
            for metric in removal_metrics:
                if metric in _NAOPC:
                    value = naopc(**common, metric=_NAOPC[metric], bounds=bounds[removal]).naopc
                else:
                    value = _REMOVAL_FUNCTIONS[metric](**common).aopc
                _store(out[_key(metric, removal)], rows, value)
        if truth:
            _ground_truth_values(attributions, tokens, rows, scores, lengths, target, truth,
                                 attributions.settings["reductions"][method], out)


_REMOVAL_FUNCTIONS: Dict[str, Any] = {"comp": comprehensiveness, "suff": sufficiency, "del": deletion_curve,
                                      "ins": insertion_curve}


def _store(column: List[float], rows: Sequence[int], value: Tensor) -> None:
    for row, v in zip(rows, value.detach().double().cpu().tolist()):
        column[row] = float(v)


def _ground_truth_values(attributions: Attributions, tokens: Sequence[Sequence[str]], rows: List[int], scores: Tensor,
                         lengths: Tensor, target: Tensor, truth_metrics: Sequence[str], reduction: str,
                         out: Dict[str, List[float]]) -> None:
    """The ground-truth metrics on the sentences the model classifies correctly (``nan`` elsewhere)."""
    index = torch.tensor(rows, dtype=torch.long)
    correct = attributions.predictions[index] == attributions.labels[index]
    truth = ground_truth([annotate(words) for words in tokens], scores.shape[1])
    metric = GroundTruthMetric()
    metric.update(scores.cpu(), lengths.cpu(), truth, target.cpu())
    computed = metric.compute()
    for key in truth_metrics:
        if key in _SIGN_METRICS and reduction == "l2":
            continue  # the sign of an unsigned score says nothing; left undefined
        _store(out[key], rows, computed[GROUND_TRUTH_COLUMNS[key]].masked_fill(~correct, float("nan")))


def evaluate_run(
    directory: PathLike,
    out: Optional[PathLike] = None,
    checkpoint: Optional[Checkpoint] = None,
    checkpoint_file: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
    metrics: Optional[Sequence[str]] = None,
    removals: Sequence[str] = REMOVALS_EVALUATED,
    batch_size: int = BATCH_SIZE,
    progress: bool = False,
    command: Optional[str] = None,
) -> Tuple[Path, Dict[str, Any]]:
    """Evaluate the run in ``directory`` and write the results file (module docstring).

    Args:
        directory: a complete run of ``captum-text-ext attribute``.
        out: the results file (default: :data:`DEFAULT_RESULTS` in ``directory``).
        checkpoint: the model to use instead of the one the manifest names (it is checked all the same), with
            ``checkpoint_file`` its file, recorded in the provenance.
        cache_dir: the model cache a zoo model is loaded from.
        metrics, removals, batch_size, progress: as :func:`evaluate_attributions`.
        command: the command line, for the provenance.

    Returns:
        The results file and the results.

    Raises:
        FileNotFoundError: for a directory without a run, or a model that is not cached.
        ValueError: for a run that is not complete, a model that is not the run's (:class:`ModelMismatchError`), or
            a metric the run cannot give.
    """
    attributions = load_attributions(directory)
    if checkpoint is None:
        checkpoint, path = run_checkpoint(attributions, cache_dir)
    else:
        if checkpoint_file is None:
            raise ValueError("Expected `checkpoint_file` with `checkpoint`, for the provenance")
        path = Path(checkpoint_file)
    target = Path(out) if out is not None else Path(directory) / DEFAULT_RESULTS
    command = command or shlex.join(["captum-text-ext", "evaluate", str(directory)])
    with RunRecorder(command=command) as recorder:
        recorder.record_file("corpus run manifest", Path(directory) / storage.MANIFEST)
        recorder.record_file("checkpoint", path, weights_sha256=checkpoint.weights_sha256)
        results = evaluate_attributions(attributions, checkpoint, metrics, removals, batch_size, progress)
        results["model"] = attributions.manifest.get("model")
    payload = {"provenance": recorder.provenance.as_dict(), "results": results}
    storage.write_atomically(target, (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return target, results
