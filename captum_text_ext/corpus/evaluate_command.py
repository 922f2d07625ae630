"""``captum-text-ext evaluate DIR``: the command around :func:`~captum_text_ext.corpus.evaluation.evaluate_run`."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from captum_text_ext.corpus.evaluation import BATCH_SIZE, DEFAULT_RESULTS, METRICS, REMOVALS_EVALUATED, evaluate_run
from captum_text_ext.models.checkpoints import Checkpoint, load_checkpoint
from captum_text_ext.models.zoo import ZOO, checkpoint_path, load_zoo_model

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``captum-text-ext evaluate``."""
    parser.add_argument("run_dir", type=Path, metavar="DIR", help="a complete run of `captum-text-ext attribute`")
    parser.add_argument("--out", type=Path, default=None, help=f"the results file (default: DIR/{DEFAULT_RESULTS})")
    parser.add_argument("--metrics", default=None,
                        help=f"comma-separated metrics of {', '.join(METRICS)} (default: the removal metrics, and "
                        "the ground-truth ones on the synthetic corpus)")
    parser.add_argument("--removals", default=",".join(REMOVALS_EVALUATED),
                        help="comma-separated removals of the removal metrics (default "
                        f"{','.join(REMOVALS_EVALUATED)})")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model", choices=list(ZOO), help="the zoo model to use instead of the one the run names "
                       "(checked against the run's hashes all the same)")
    model.add_argument("--checkpoint", type=Path, help="the checkpoint to use instead of the one the run names "
                       "(checked against the run's hashes all the same)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="the model cache zoo models are loaded from")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help=f"examples per batch (default {BATCH_SIZE})")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _split(value: Optional[str]) -> Optional[List[str]]:
    return None if value is None else [part.strip() for part in value.split(",") if part.strip()]


def _override(args: argparse.Namespace) -> Tuple[Optional[Checkpoint], Optional[Path]]:
    if args.checkpoint is not None:
        return load_checkpoint(args.checkpoint), args.checkpoint
    if args.model is not None:
        return (load_zoo_model(args.model, args.cache_dir, train_if_missing=False),
                checkpoint_path(args.model, args.cache_dir))
    return None, None


def run(args: argparse.Namespace, argv: Sequence[str]) -> List[str]:
    """Run ``captum-text-ext evaluate``; returns the lines it prints: one per method and metric, then the file."""
    checkpoint, checkpoint_file = _override(args)
    path, results = evaluate_run(
        args.run_dir, args.out, checkpoint, checkpoint_file, args.cache_dir, _split(args.metrics),
        _split(args.removals) or [], args.batch_size, not args.quiet, shlex.join(["captum-text-ext", *argv]))
    lines = [f"evaluated {results['examples']} examples of {args.run_dir} (scores explaining: {results['target']})"]
    for method, result in results["methods"].items():
        cells = [f"{key} {'-' if s['mean'] is None else format(s['mean'], '.4f')}"
                 for key, s in result["summary"].items()]
        lines.append(f"{method}: {', '.join(cells)}")
    lines += [f"not computed: {key} ({why})" for key, why in results["not_computed"].items()]
    lines.append(f"wrote {path}")
    return lines
