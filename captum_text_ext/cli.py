"""The ``captum-text-ext`` command line.

Sub-commands:

- ``demo [--out DIR]``: train a small model on the embedded synthetic corpus and explain it (no files, no network).
- ``download NAME [--root DIR]``: fetch a public dataset, verify its checksum and unpack it safely.
- ``train NAME [--record DIR] [--seed S]``: train a model of the zoo with its seed (or ``S``) and save it in the model
  cache.
- ``explain --checkpoint PATH --text TEXT [--text ...] | --texts FILE --out DIR``: the demo's report for any saved
  model and texts.
- ``attribute --checkpoint PATH | --model NAME --dataset NAME:SPLIT | --texts FILE --methods A,B --out DIR``: every
  example of a corpus attributed by several methods, stored as shards; resumable, and shared by the processes of
  ``torchrun`` (:mod:`captum_text_ext.corpus`).
- ``evaluate DIR [--metrics A,B] [--removals zero,unk,pad] [--out FILE]``: the faithfulness metrics of a saved
  ``attribute`` run, with the model its manifest names (:mod:`captum_text_ext.corpus.evaluation`).
- ``benchmark NAME [--out DIR] [--data-root DIR] [--cache-dir DIR]``: run a benchmark of
  :data:`~captum_text_ext.benchmarks.BENCHMARKS` (``arras2017``, ``lrp-speed``, ``murdoch2018``, ``cd-speed``,
  ``hechtlinger2016``, ``yuan2019``, ``hiddenunit-speed``, ``leaderboard``, ``planted``) and write its results files;
  ``hechtlinger2016`` also takes ``--imdb-dir DIR``, ``leaderboard`` takes ``--models A,B``, ``--n N``,
  ``--sensitivity-n M``, ``--methods`` and ``--processes P``, ``planted`` takes ``--models``, ``--n`` and
  ``--methods``.

Errors a user can fix (a bad argument, a missing dataset) print one line and exit with status 2, no traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from captum_text_ext._version import __version__

__all__ = ["main"]


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None,
                        help="where the model runs: cpu, cuda or cuda:N (default: cpu)")


def _build_parser() -> argparse.ArgumentParser:
    from captum_text_ext.benchmarks import BENCHMARKS
    from captum_text_ext.datasets.download import DOWNLOADS
    from captum_text_ext.explain import DEFAULT_METHODS, METHODS
    from captum_text_ext.models.zoo import ZOO

    parser = argparse.ArgumentParser(prog="captum-text-ext", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"captum_text_ext {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="train and explain a small model on the synthetic corpus")
    demo.add_argument("--out", type=Path, default=Path("captum-text-ext-demo"), help="report directory")
    demo.add_argument("--dataset", choices=["synthetic", "sst"], default="synthetic",
                      help="synthetic (embedded, default) or sst (needs SST in the data directory)")
    demo.add_argument("--data-root", type=Path, default=None, help="data directory (for --dataset sst)")
    demo.add_argument("--cache-dir", type=Path, default=None, help="model cache")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_device(demo)

    download = commands.add_parser("download", help="download a public dataset into the data directory")
    download.add_argument("name", choices=sorted(DOWNLOADS), help="dataset name")
    download.add_argument("--root", type=Path, default=None, help="data directory (default: $CAPTUM_TEXT_EXT_DATA "
                          "or ~/.cache/captum_text_ext)")
    download.add_argument("--source", default=None, help="alternative source, where the dataset has several")
    download.add_argument("--allow-unverified", action="store_true",
                          help="accept a file whose checksum nobody has published or verified")

    train = commands.add_parser("train", help="train a model of the zoo and save it in the model cache")
    train.add_argument("name", choices=list(ZOO), help="zoo model")
    train.add_argument("--data-root", type=Path, default=None, help="data directory")
    train.add_argument("--cache-dir", type=Path, default=None,
                       help="model cache (default: $CAPTUM_TEXT_EXT_CACHE or ~/.cache/captum_text_ext/models)")
    train.add_argument("--record", type=Path, default=None,
                       help="write NAME.json here and rebuild models.md beside it (e.g. benchmarks/results/models)")
    train.add_argument("--seed", type=int, default=None,
                       help="replace the recipe's seed (initialization, dropout, batch order), e.g. to measure the "
                       "spread over seeds; use another --cache-dir to keep the recipe's model")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_device(train)

    explain = commands.add_parser("explain", help="explain a saved model's predictions for texts")
    explain.add_argument("--checkpoint", type=Path, required=True, help="a checkpoint written by the package")
    given = explain.add_mutually_exclusive_group(required=True)
    given.add_argument("--text", action="append", help="a text to explain (repeatable)")
    given.add_argument("--texts", type=Path, help="a file of texts: one per line, or JSON Lines (.jsonl) with a "
                       "`text` field and an optional `id`")
    explain.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                         help=f"comma-separated methods of {', '.join(METHODS)} "
                         f"(default: {', '.join(DEFAULT_METHODS)})")
    explain.add_argument("--target", default=None,
                         help="class index or name to explain (default: the predicted class)")
    explain.add_argument("--out", type=Path, default=Path("captum-text-ext-explain"), help="report directory")
    explain.add_argument("--unit", choices=["word", "subword"], default="word",
                         help="one score per word (a word's subword scores summed) or per subword (default: word)")
    explain.add_argument("--output", choices=["logit", "logit_difference"], default="logit",
                         help="what every method explains: the target logit, or the target logit minus the largest "
                         "other logit at the input (default: logit)")
    explain.add_argument("--batch-size", type=int, default=32, help="texts per batch (default 32)")
    explain.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(explain)

    attribute = commands.add_parser("attribute", help="attribute a whole corpus with several methods (sharded, "
                                    "resumable; run it under torchrun to share the work)")
    from captum_text_ext.corpus.command import add_arguments

    add_arguments(attribute)

    evaluate = commands.add_parser("evaluate", help="score a saved `attribute` run by the faithfulness metrics, "
                                   "with the model it names")
    from captum_text_ext.corpus import evaluate_command

    evaluate_command.add_arguments(evaluate)

    benchmark = commands.add_parser("benchmark", help="run a paper reproduction or speed benchmark")
    benchmark.add_argument("name", choices=list(BENCHMARKS), help="; ".join(
        f"{b.name}: {b.description}" for b in BENCHMARKS.values()))
    benchmark.add_argument("--out", type=Path, default=None, help="results directory (default: "
                           + ", ".join(f"{b.default_out} for {b.name}" for b in BENCHMARKS.values()) + ")")
    benchmark.add_argument("--data-root", type=Path, default=None, help="data directory (holds sst/, mr/, ag_news/)")
    benchmark.add_argument("--cache-dir", type=Path, default=None, help="model cache (holds the zoo checkpoints)")
    benchmark.add_argument("--imdb-dir", type=Path, default=None,
                           help="an aclImdb directory (hechtlinger2016: also train and explain a BoW MLP on IMDB)")
    benchmark.add_argument("--models", default=None, help="leaderboard: comma-separated zoo models (default: "
                           "bilstm-sst5,lstm-sst2,textcnn-mr,lstm-synthetic); yuan2019: the rows to compute alone "
                           "(default: all, with the figures); planted: planted twins (default: "
                           "lstm-sst2-planted,bilstm-sst2-planted,textcnn-mr-planted,transformer-sst2-planted); "
                           "seed-spread: default lstm-sst2,textcnn-agnews,bilstm-sst5")
    benchmark.add_argument("--n", type=int, default=None, help="leaderboard: test sentences per model (default 500); "
                           "planted: texts scored per probe (default 500)")
    benchmark.add_argument("--sensitivity-n", type=int, default=None,
                           help="leaderboard: sentences for sensitivity-max (default 100)")
    benchmark.add_argument("--methods", default=None, help="leaderboard, planted: comma-separated method keys "
                           "(default: all)")
    benchmark.add_argument("--processes", type=int, default=None,
                           help="leaderboard: models scored at once, one process each (default 1)")
    benchmark.add_argument("--seeds", type=_seed_list, default=None,
                           help="seed-spread: comma-separated training seeds (default 0,1,2)")
    return parser


def _seed_list(value: str) -> List[int]:
    """``--seeds``: comma-separated integers."""
    try:
        return [int(item) for item in value.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, but got {value!r}") from None


def _train(args: argparse.Namespace, argv: Sequence[str]) -> List[str]:
    from captum_text_ext.models.zoo import ZOO
    from captum_text_ext.models.zoo_report import train_and_record

    entry = ZOO[args.name]
    result, _, written = train_and_record(args.name, args.data_root, args.cache_dir, args.record,
                                          shlex.join(["captum-text-ext", *argv]), progress=not args.quiet,
                                          device=args.device, seed=args.seed)
    met = "met" if result.target_met else "NOT met"
    lines = [f"{args.name}: test accuracy {result.test_accuracy:.4f} (target >= {entry.target_accuracy:.2f}: {met})"]
    lines += [f"{args.name}: {key} {value:.4f}" for key, value in result.extra_metrics.items()]
    lines.append(f"{args.name}: trained in {result.train_seconds / 60:.1f} min, best epoch {result.fit.best_epoch} "
                 f"of {result.fit.epochs_run}")
    lines.append(f"saved {result.checkpoint} (sha256 {result.sha256})")
    if written is not None:
        lines.append(f"wrote {written}")
    return lines


def _benchmark_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The benchmark options given on the command line (comma lists split)."""
    options: Dict[str, Any] = {}
    for name in ("models", "methods"):
        value = getattr(args, name)
        if value is not None:
            options[name] = [item.strip() for item in value.split(",") if item.strip()]
    if args.seeds is not None:
        options["seeds"] = args.seeds
    for name in ("n", "sensitivity_n", "imdb_dir", "processes"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    return options


def _explain(args: argparse.Namespace) -> List[str]:
    from captum_text_ext.corpus.texts import read_texts
    from captum_text_ext.explain import TextWarning
    from captum_text_ext.report import MAX_PNGS, explain_checkpoint

    target = int(args.target) if args.target is not None and args.target.isdigit() else args.target
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    lines = []
    if args.texts is not None:
        read = read_texts(args.texts)
        texts, ids = [t.text for t in read.texts], [t.id for t in read.texts]
        lines += [f"skipped line {line} of {args.texts}: {why}" for line, why in read.skipped.items()]
    else:
        texts, ids = args.text, None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TextWarning)
        report = explain_checkpoint(args.checkpoint, texts, args.out, methods, target, ids=ids,
                                    device=args.device, unit=args.unit, batch_size=args.batch_size,
                                    progress=not args.quiet, output=args.output)
    for warning in caught:
        if issubclass(warning.category, TextWarning):
            lines.append(f"warning: {warning.message}")
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    for sentence in report["sentences"][:10]:
        lines.append(f"text {sentence['id']}: predicted {sentence['predicted']}, explained {sentence['target']} "
                     f"({len(sentence['tokens'])} {report['unit']}s)")
    if len(report["sentences"]) > 10:
        lines.append(f"... and {len(report['sentences']) - 10} more texts (all in report.json and report.html)")
    lines += [f"skipped {method}: {reason}" for method, reason in report["skipped"].items()]
    if len(report["sentences"]) > report["pngs"]:
        lines.append(f"PNG figures for the first {MAX_PNGS} texts only")
    return lines + [f"wrote {path}" for path in report["paths"]]


def _run(args: argparse.Namespace, argv: Sequence[str]) -> List[str]:
    if args.command == "demo":
        from captum_text_ext.demo import format_summary, run_demo

        report = run_demo(args.out, dataset=args.dataset, root=args.data_root, cache_dir=args.cache_dir,
                          progress=not args.quiet, device=args.device)
        return format_summary(report)
    if args.command == "train":
        return _train(args, argv)
    if args.command == "benchmark":
        from captum_text_ext.benchmarks import BENCHMARKS

        entry = BENCHMARKS[args.name]
        out = args.out if args.out is not None else entry.default_out
        options = _benchmark_options(args)
        for name in options:
            if name not in entry.options:
                users = ", ".join(b.name for b in BENCHMARKS.values() if name in b.options)
                raise ValueError(f"--{name.replace('_', '-')} does not apply to the benchmark {entry.name}; it is "
                                 f"accepted only by: {users}")
        return entry.run(out, args.data_root, args.cache_dir, shlex.join(["captum-text-ext", *argv]), **options)
    if args.command == "explain":
        return _explain(args)
    if args.command == "attribute":
        from captum_text_ext.corpus.command import run

        return run(args, argv)
    if args.command == "evaluate":
        from captum_text_ext.corpus import evaluate_command

        return evaluate_command.run(args, argv)
    from captum_text_ext.datasets.download import download

    path = download(args.name, args.root, allow_unverified=args.allow_unverified, source=args.source)
    return [f"{args.name} is in {path}"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _build_parser().parse_args(argv)
    try:
        lines = _run(args, argv)
    except (ValueError, OSError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"captum-text-ext {args.command}: error: {message}", file=sys.stderr)
        return 2
    if lines:
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
