"""``captum-text-ext attribute``: the command around :func:`~captum_text_ext.corpus.attribute_corpus`.

It loads the model (a checkpoint, or a zoo model, which rank 0 trains first when it is not cached while the other
ranks wait), reads the corpus (a zoo dataset's split or a file of texts), puts the model on this process's device
(``--device cuda`` is ``cuda:LOCAL_RANK``), and runs. Only rank 0 prints.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any, Dict, List, Sequence

import torch

from captum_text_ext.corpus.distributed import Ranks, launched_ranks, process_group
from captum_text_ext.corpus.plan import DEFAULT_WINDOW
from captum_text_ext.corpus.runner import TARGETS, attribute_corpus
from captum_text_ext.corpus.source import Corpus, FileCorpus, zoo_dataset
from captum_text_ext.corpus.storage import STORAGE_DTYPES
from captum_text_ext.explain import METHODS, tokenize_for
from captum_text_ext.models.checkpoints import Checkpoint, load_checkpoint
from captum_text_ext.models.zoo import ZOO, load_zoo_model

__all__ = ["add_arguments", "model_record", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``captum-text-ext attribute``."""
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", type=Path, help="a checkpoint written by the package")
    model.add_argument("--model", choices=list(ZOO), help="a zoo model (trained once, by rank 0, if not cached)")
    corpus = parser.add_mutually_exclusive_group(required=True)
    corpus.add_argument("--dataset", help="a zoo dataset's split, NAME:SPLIT (sst2:train, sst5:train, mr:test, "
                        "synthetic:test, ...)")
    corpus.add_argument("--texts", type=Path, help="a file of texts: one per line, or JSON Lines (.jsonl) with a "
                        "`text` field and an optional `id`")
    parser.add_argument("--methods", required=True, help=f"comma-separated methods of {', '.join(METHODS)}")
    parser.add_argument("--out", type=Path, required=True, help="the run's directory (empty, or the run to resume)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="the most examples per batch (and batch-size x 32 padded tokens; default 64)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (each process then uses cuda:LOCAL_RANK)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out, keeping its shards")
    parser.add_argument("--seed", type=int, default=0, help="the run's seed (sampling methods; default 0)")
    parser.add_argument("--storage-dtype", choices=list(STORAGE_DTYPES), default="float32",
                        help="how scores are stored: float32, or float16 (2 bytes, relative error <= 2^-11)")
    parser.add_argument("--unit", choices=["word", "subword"], default="word",
                        help="one score per word (a word's subword scores summed) or per subword (default: word)")
    parser.add_argument("--target", default="predicted",
                        help=f"what the scores explain: {' or '.join(TARGETS)} or a class index (default: predicted)")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                        help=f"examples per shard (default {DEFAULT_WINDOW})")
    parser.add_argument("--data-root", type=Path, default=None, help="data directory (for --dataset)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="model cache (for --model)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _device(name: str, ranks: Ranks) -> torch.device:
    device = torch.device(name)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device("cuda", ranks.local_rank if device.index is None else device.index)


def _checkpoint(args: argparse.Namespace, ranks: Ranks, device: torch.device) -> Checkpoint:
    if args.checkpoint is not None:
        checkpoint = load_checkpoint(args.checkpoint)
    else:
        ranks.share(lambda: load_zoo_model(args.model, args.cache_dir, root=args.data_root,
                                           progress=not args.quiet).sha256)
        checkpoint = load_zoo_model(args.model, args.cache_dir, train_if_missing=False)
    checkpoint.model.to(device)  # the run's own copy, loaded here (buffers outside the state dict follow too)
    return checkpoint


def model_record(args: argparse.Namespace, checkpoint: Checkpoint) -> Dict[str, Any]:
    """What names the run's model in its manifest: the zoo model or the checkpoint's absolute path, with both of the
    checkpoint's hashes (``captum-text-ext evaluate`` loads it from there and checks it)."""
    source: Dict[str, Any] = {"zoo": args.model} if args.model is not None else {
        "checkpoint": str(Path(args.checkpoint).resolve())}
    return {**source, "sha256": checkpoint.sha256, "weights_sha256": checkpoint.weights_sha256}


def run(args: argparse.Namespace, argv: Sequence[str]) -> List[str]:
    """Run ``captum-text-ext attribute``; returns the lines rank 0 prints (none on the other ranks)."""
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    target = int(args.target) if args.target.isdigit() else args.target
    device = _device(args.device, launched_ranks())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    with process_group(device) as ranks:
        checkpoint = _checkpoint(args, ranks, device)
        dataset = checkpoint.metadata.get("dataset")
        corpus: Corpus = zoo_dataset(args.dataset, args.data_root) if args.dataset else FileCorpus(args.texts)
        result = attribute_corpus(
            checkpoint.model, checkpoint.vocabulary, corpus, methods, args.out,
            class_names=checkpoint.metadata.get("class_names"), target=target, batch_size=args.batch_size,
            window=args.window, seed=args.seed, storage_dtype=args.storage_dtype, unit=args.unit,
            tokenize=tokenize_for(dataset), resume=args.resume, progress=not args.quiet,
            model_sha256=checkpoint.sha256, command=shlex.join(["captum-text-ext", *argv]),
            model_record=model_record(args, checkpoint),
        )
    if ranks.rank != 0:
        return []
    kept = result.shards - result.shards_computed
    lines = [
        f"attributed {result.examples} examples of {corpus.description} with {', '.join(methods)} in "
        f"{result.seconds:.1f} s on {result.world_size} process(es) (attempt {result.attempt}: computed "
        f"{result.shards_computed} of {result.shards} shards{f', kept {kept} from earlier attempts' if kept else ''})",
    ]
    if result.skipped:
        shown = ", ".join(f"{key} ({why})" for key, why in list(result.skipped.items())[:5])
        lines.append(f"skipped {len(result.skipped)}: {shown}{' ...' if len(result.skipped) > 5 else ''} (all in "
                     "manifest.json)")
    unknown = result.unknown_words
    if unknown["count"]:
        lines.append(f"warning: {unknown['count']} of {unknown['of_words']} words "
                     f"({100 * unknown['count'] / unknown['of_words']:.1f}%) are not in the model's vocabulary and are "
                     f"explained as its unknown token; {len(unknown['only_unknown'])} example(s) have no known word")
    if result.truncated:
        lines.append(f"warning: {len(result.truncated)} example(s) are longer than the model reads and were cut to "
                     "fit (their ids and the words cut are in manifest.json)")
    lines.append(f"wrote {args.out} (read it with captum_text_ext.corpus.load_attributions)")
    return lines
