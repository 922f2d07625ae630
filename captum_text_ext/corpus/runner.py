"""Attribute a whole corpus with several methods, on one process or many, resumably: :func:`attribute_corpus`.

The corpus is cut into windows (:mod:`~captum_text_ext.corpus.plan`), one shard each; every rank probes the methods
on the first example (a method that does not apply fails there), then rank 0 checks the settings, writes the manifest
and finds the shards still missing, which are dealt out to the ranks; each rank attributes its windows batch by batch
and writes each shard atomically; rank 0 then checks every shard, writes the index and marks the run complete (:mod:`~captum_text_ext.corpus.storage`). A run killed at any moment is resumed with
``resume=True`` at the same or another world size: the shards already written are kept, never recomputed.

What a run does with odd examples (the manifest lists each): an empty text, or one that tokenizes to nothing, is
skipped; a text longer than the model reads is cut to fit; words the model does not know are explained as its
unknown token (a text of only unknown words too).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_text_ext.corpus import storage
from captum_text_ext.corpus.distributed import process_group
from captum_text_ext.corpus.plan import DEFAULT_WINDOW, TOKENS_PER_EXAMPLE, deal, example_seed, plan_batches
from captum_text_ext.corpus.source import CorpusItem, CorpusLike, CorpusScan, as_corpus
from captum_text_ext.datasets._checks import check_choice
from captum_text_ext.datasets._paths import PathLike
from captum_text_ext.datasets.subwords import aggregate_subword_scores
from captum_text_ext.decomposition import UnsupportedOperationError
from captum_text_ext.explain import METHODS, UNITS, LayerBatch, embedding_layer, embedding_layer_name, tokenize_for
from captum_text_ext.explain.explanation import check_evaluation_mode, check_methods, model_device
from captum_text_ext.explain.texts import EncodedTexts, encode_texts, token_limit
from captum_text_ext.models.checkpoints import TokenVocabulary
from captum_text_ext.provenance import RunRecorder, peak_rss_mb, sha256_file

__all__ = ["TARGETS", "CorpusRun", "attribute_corpus", "model_fingerprint"]

TARGETS = ("predicted", "label")
"""What each example's scores explain, besides a fixed class index: the predicted class, or the gold label."""


@dataclasses.dataclass(frozen=True)
class CorpusRun:
    """What a call of :func:`attribute_corpus` did.

    Attributes:
        out: the run's directory.
        examples: the examples attributed (the whole corpus less the skipped ones).
        skipped: example id to why it was skipped.
        attempt: this attempt's number (1 for a fresh run).
        world_size: the processes of this attempt.
        shards: the corpus's shards.
        shards_computed: the shards this attempt computed (all ranks); the others were kept from earlier attempts.
        seconds: this attempt's wall time.
        unknown_words: ``count`` (words the model reads as its unknown token), ``of_words`` (all words) and
            ``only_unknown`` (the ids of examples with no known word).
        truncated: example id to how many trailing words were cut to fit the model's limit.
    """

    out: Path
    examples: int
    skipped: Dict[str, str]
    attempt: int
    world_size: int
    shards: int
    shards_computed: int
    seconds: float
    unknown_words: Dict[str, Any]
    truncated: Dict[str, int]


def model_fingerprint(model: nn.Module) -> str:
    """The hex SHA-256 of the model's state dict (names, dtypes, shapes and values)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class _Job:
    """Everything a rank needs to attribute a window."""

    model: nn.Module
    vocabulary: TokenVocabulary
    methods: List[str]
    layer: nn.Module
    classes: int
    target: Union[str, int]
    tokenize: Callable[[str], List[str]]
    unit: str
    batch_size: int
    token_budget: int
    seed: int
    limit: Optional[int]
    device: torch.device


def attribute_corpus(
    model: nn.Module,
    vocabulary: TokenVocabulary,
    texts_or_dataset: CorpusLike,
    methods: Sequence[str],
    out: PathLike,
    *,
    class_names: Optional[Sequence[str]] = None,
    target: Union[str, int] = "predicted",
    batch_size: int = 64,
    token_budget: Optional[int] = None,
    window: int = DEFAULT_WINDOW,
    seed: int = 0,
    storage_dtype: str = "float32",
    unit: str = "word",
    layer: Optional[str] = None,
    tokenize: Optional[Callable[[str], List[str]]] = None,
    resume: bool = False,
    progress: bool = True,
    model_sha256: Optional[str] = None,
    command: Optional[str] = None,
    model_record: Optional[Mapping[str, Any]] = None,
) -> CorpusRun:
    """Attribute every example of a corpus with every method and store the per-token scores in ``out``.

    Run in one process, it does all the work; under ``torchrun`` every process calls it with the same arguments and
    the ranks share the windows (:mod:`~captum_text_ext.corpus.distributed`). The model runs on the device of its
    parameters (under ``torchrun`` with CUDA, put each rank's model on ``cuda:LOCAL_RANK``), in evaluation mode; it
    is not changed. Results are read back with :func:`~captum_text_ext.corpus.load_attributions`.

    Args:
        model: a classifier of token ids, ``model(token_ids, lengths)``, with a token embedding layer.
        vocabulary: its word vocabulary or WordPiece tokenizer.
        texts_or_dataset: a file of texts, a list of raw texts, of :class:`~captum_text_ext.corpus.texts.Text`, or
            of ``(words, label)`` pairs (:func:`~captum_text_ext.corpus.source.as_corpus`).
        methods: keys of :data:`~captum_text_ext.explain.METHODS`; each must apply to the model.
        out: the run's directory (created; it must be empty or hold this run to resume).
        class_names: the model's class names (stored in the manifest).
        target: ``"predicted"`` (the model's class), ``"label"`` (the gold label; every example needs one), or a
            class index.
        batch_size: the most examples per batch.
        token_budget: the most padded tokens per batch (default ``batch_size`` × 32).
        window: examples per window (and shard).
        seed: the run's seed; each example's sampling methods use :func:`~captum_text_ext.corpus.plan.example_seed`.
        storage_dtype: ``"float32"`` or ``"float16"`` (error stated in :mod:`~captum_text_ext.corpus.storage`).
        unit: ``"word"`` or ``"subword"`` scores (:func:`~captum_text_ext.explain.explain`).
        layer: the embedding layer's qualified name (default: found as :func:`~captum_text_ext.explain.explain`
            finds it).
        tokenize: splits a raw text into words (default: Kim's tokenizer, lowercased; texts given as words are not
            tokenized).
        resume: continue the run in ``out`` (with the same settings), keeping its shards.
        progress: a progress bar per rank (examples and examples/s).
        model_sha256: the checkpoint's SHA-256 for the provenance (default: :func:`model_fingerprint`).
        command: the command line, for the provenance.
        model_record: what names the model, stored as the manifest's ``model`` (``captum-text-ext attribute``
            records ``{"zoo": NAME}`` or ``{"checkpoint": PATH}`` with the checkpoint's ``sha256`` and
            ``weights_sha256``), so that ``captum-text-ext evaluate`` can load it again and check it is the same.

    Raises:
        ValueError: for an unknown or inapplicable method, bad settings, a model in training mode, a directory that
            holds something else (or another run, or this run without ``resume``), a corpus with repeated ids, or a
            score float16 cannot hold.
    """
    started = time.perf_counter()
    check_methods(methods)
    check_choice("storage_dtype", storage_dtype, tuple(storage.STORAGE_DTYPES))
    check_choice("unit", unit, UNITS)
    if isinstance(target, str):
        check_choice("target", target, TARGETS)
    if window < 1:
        raise ValueError(f"Expected `window` >= 1, but got {window}")
    check_evaluation_mode(model)
    layer_name = layer if layer is not None else embedding_layer_name(model)
    module = embedding_layer(model, layer_name)
    budget = token_budget if token_budget is not None else batch_size * TOKENS_PER_EXAMPLE
    corpus = as_corpus(texts_or_dataset)
    device = model_device(model)
    out = Path(out)
    with process_group(device) as ranks:
        scan = corpus.scan(window)
        if target == "label" and scan.unlabelled:
            raise ValueError(f"Expected a gold label for every example (target='label'), but {scan.unlabelled} of "
                             f"{scan.count} have none (a file of texts has no labels)")
        job = _Job(model, vocabulary, list(methods), module, 0, target, tokenize or tokenize_for(None), unit,
                   batch_size, budget, seed, token_limit(model), device)
        first_tokens = [_words(job, item) for item in corpus.window(0, window)]
        settings = {
            "format": storage.FORMAT,
            "format_version": storage.FORMAT_VERSION,
            "corpus": {"description": corpus.description, "examples": scan.count, "fingerprint": scan.fingerprint},
            "model_sha256": model_sha256 or model_fingerprint(model),
            "vocabulary_sha256": _sha256(vocabulary.to_dict()),
            "first_window_tokens_sha256": _sha256(first_tokens),
            "layer": layer_name,
            "methods": {key: METHODS[key].settings for key in methods},
            "reductions": {key: METHODS[key].reduction for key in methods},
            "seed": seed,
            "storage_dtype": storage_dtype,
            "unit": unit,
            "target": target,
            "window": window,
            "batch_size": batch_size,
            "token_budget": budget,
        }
        digest = _sha256(settings)
        job = dataclasses.replace(job, classes=_probe(job, corpus.window(0, window)))
        plan = ranks.share(lambda: _prepare(out, settings, digest, scan, resume, ranks.world_size, class_names,
                                            command, model_record))
        mine = deal(plan["missing"], ranks.rank, ranks.world_size)
        header = {"config": digest, "attempt": str(plan["attempt"]), "rank": str(ranks.rank),
                  "world_size": str(ranks.world_size)}
        total = sum(min((k + 1) * window, scan.count) - k * window for k in mine)
        bar = tqdm(total=total, desc=f"rank {ranks.rank}/{ranks.world_size}", unit="ex", position=ranks.rank,
                   disable=not progress, dynamic_ncols=True)
        with RunRecorder(command=command, seeds={"run": seed}, device=str(device)) as recorder, bar:
            for index in mine:
                items = corpus.window(index, window)
                content = _attribute_window(job, items)
                _remove_partial(out, index)
                data = storage.encode_shard(content, storage_dtype,
                                            {**header, "window": str(index), "window_hash": scan.window_hashes[index]})
                storage.write_atomically(storage.shard_path(out, index), data)
                bar.update(len(items))
        peaks = ranks.gather(round(peak_rss_mb(), 1))
        summary = ranks.share(lambda: _finish(out, scan, digest, plan["attempt"], recorder.provenance.as_dict(), {
            "seconds": round(time.perf_counter() - started, 3), "peak_memory_mb": peaks}))
        ranks.barrier()
    return CorpusRun(out, summary["examples"], summary["skipped"], plan["attempt"], ranks.world_size,
                     len(scan.window_hashes), len(plan["missing"]), time.perf_counter() - started,
                     summary["unknown_words"], summary["truncated"])


def _sha256(content: Any) -> str:
    """The hex SHA-256 of JSON-like ``content`` (keys sorted)."""
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _settings_differences(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    return [f"{key}: {old.get(key)!r} then, {new.get(key)!r} now" for key in sorted(set(old) | set(new))
            if old.get(key) != new.get(key)]


def _prepare(out: Path, settings: Dict[str, Any], digest: str, scan: CorpusScan, resume: bool, world_size: int,
             class_names: Optional[Sequence[str]], command: Optional[str],
             model_record: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """Rank 0, once every rank has probed the methods: check the directory and the settings, write the manifest;
    returns the attempt's number and the missing windows."""
    manifest_path = out / storage.MANIFEST
    attempts: List[Dict[str, Any]] = []
    if manifest_path.is_file():
        manifest = storage.read_json(manifest_path)
        if not resume:
            raise ValueError(f"{out} holds a run already; pass --resume (resume=True) to continue it, or choose "
                             "another output directory")
        differences = _settings_differences(manifest.get("settings", {}), settings)
        if differences:
            raise ValueError(f"{out} holds a run with other settings, which resuming would mix: "
                             + "; ".join(differences))
        attempts = list(manifest.get("attempts", []))
    elif out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty and holds no run (no {storage.MANIFEST}); choose an empty or new "
                         "output directory")
    missing = [k for k in range(len(scan.window_hashes)) if not _shard_is_valid(out, k, digest, scan)]
    attempts.append({"attempt": len(attempts) + 1, "world_size": world_size, "command": command,
                     "started_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                     "shards_to_compute": len(missing)})
    storage.write_json(manifest_path, {
        "format": storage.FORMAT,
        "format_version": storage.FORMAT_VERSION,
        "complete": False,
        "settings": settings,
        "class_names": list(class_names) if class_names is not None else None,
        "model": dict(model_record) if model_record is not None else None,
        "attempts": attempts,
        "skipped_lines": scan.skipped,
    })
    return {"attempt": len(attempts), "missing": missing}


def _probe(job: _Job, items: List[CorpusItem]) -> int:
    """Run every method on the first example of the first window that has words (nothing is written yet): a method
    that does not apply raises here, naming itself, as does a class ``target`` the model does not have. Every rank
    probes at once (the probe also pays each rank's first-call costs, so no rank waits for another's); all reach the
    same verdict, since they run the same model on the same example. Returns the model's number of classes."""
    words = next((w for w in (_words(job, item) for item in items) if w), [job.vocabulary.unk_token or ""])
    encoded = encode_texts(job.vocabulary, [words], job.limit)
    ids, lengths = encoded.token_ids.to(job.device), encoded.lengths.to(job.device)
    with torch.no_grad():
        classes = int(job.model(ids, lengths).shape[-1])
    batch = LayerBatch(job.layer, ids, lengths, classes)
    for key in job.methods:
        method = METHODS[key]
        reason = method.skip_reason(job.model, job.layer)
        try:
            if reason is None:
                with torch.random.fork_rng(devices=_rng_devices(job.device)):
                    method.token_scores(job.model, batch, torch.zeros(1, dtype=torch.long, device=job.device))
        except UnsupportedOperationError as unsupported:
            reason = str(unsupported)
        if reason is not None:
            raise ValueError(f"The method {key!r} does not apply to this model: {reason}")
    if isinstance(job.target, int) and not 0 <= job.target < classes:
        raise ValueError(f"Expected `target` in [0, {classes}) (the model's classes), but got {job.target}")
    return classes


def _rng_devices(device: torch.device) -> List[torch.device]:
    return [device] if device.type == "cuda" else []


def _shard_is_valid(out: Path, index: int, digest: str, scan: CorpusScan) -> bool:
    path = storage.shard_path(out, index)
    if not path.is_file():
        return False
    try:
        metadata = storage.ShardFile(path).metadata
    except storage.CorruptShardError:
        return False
    return metadata.get("config") == digest and metadata.get("window_hash") == scan.window_hashes[index]


def _remove_partial(out: Path, index: int) -> None:
    """Remove what a killed attempt left of shard ``index``: its temporary files."""
    final = storage.shard_path(out, index)
    for partial in final.parent.glob(f".{final.name}.*.tmp"):
        partial.unlink(missing_ok=True)


def _words(job: _Job, item: CorpusItem) -> List[str]:
    return list(item.words) if item.words is not None else job.tokenize(item.text or "")


def _attribute_window(job: _Job, items: List[CorpusItem]) -> storage.ShardContent:
    """Attribute one window's examples with every method, batch by batch (sampling methods example by example)."""
    kept: List[CorpusItem] = []
    words: List[List[str]] = []
    skipped: Dict[str, str] = {}
    for item in items:
        tokens = _words(job, item)
        if tokens:
            kept.append(item)
            words.append(tokens)
        else:
            skipped[item.id] = "empty text" if not (item.text or "").strip() else "tokenizes to nothing"
    content = storage.ShardContent([i.id for i in kept], [], [i.content_hash() for i in kept], [0] * len(kept),
                                   [0] * len(kept), [-1 if i.label is None else i.label for i in kept],
                                   [0.0] * len(kept), {key: [] for key in job.methods}, skipped, {}, {})
    if not kept:
        return content
    encoded = encode_texts(job.vocabulary, words, job.limit)
    content.tokens.extend(list(t) for t in (encoded.words if job.unit == "word" else encoded.tokens))
    content.truncated.update({kept[i].id: n for i, n in enumerate(encoded.truncated) if n})
    content.unknown.update({kept[i].id: u for i, u in enumerate(encoded.unknown) if u})
    scores: Dict[str, List[Optional[Tensor]]] = {key: [None] * len(kept) for key in job.methods}
    for rows in plan_batches(encoded.lengths.tolist(), job.batch_size, job.token_budget):
        _attribute_batch(job, encoded, kept, rows, content, scores)
    for key in job.methods:
        content.scores[key].extend(s for s in scores[key] if s is not None)
    return content


def _attribute_batch(job: _Job, encoded: EncodedTexts, kept: List[CorpusItem], rows: List[int],
                     content: storage.ShardContent, scores: Dict[str, List[Optional[Tensor]]]) -> None:
    index = torch.tensor(rows)
    lengths = encoded.lengths[index]
    width = int(lengths.max())
    ids = encoded.token_ids[index, :width].to(job.device)
    word_ids = encoded.word_ids[index, :width].to(job.device)
    lengths = lengths.to(job.device)
    with torch.no_grad():
        probability = job.model(ids, lengths).softmax(dim=-1)
    predicted = probability.argmax(dim=-1)
    labels = torch.tensor([content.label[r] for r in rows], device=job.device)
    target = predicted if job.target == "predicted" else labels if job.target == "label" else torch.full_like(
        predicted, int(job.target))
    for j, row in enumerate(rows):
        content.predicted[row], content.target[row] = int(predicted[j]), int(target[j])
        content.probability[row] = float(probability[j, predicted[j]])
    batch = LayerBatch(job.layer, ids, lengths, job.classes)
    for key in job.methods:
        method = METHODS[key]
        if method.sampling:
            per_token = [_one_example(job, key, batch, word_ids, target, j, kept[row].id) for j, row in enumerate(rows)]
        else:
            per_token = list(_per_unit(job, method.token_scores(job.model, batch, target), word_ids))
        for j, row in enumerate(rows):
            scores[key][row] = per_token[j][: len(content.tokens[row])].float().cpu()


def _one_example(job: _Job, key: str, batch: LayerBatch, word_ids: Tensor, target: Tensor, j: int,
                 example_id: str) -> Tensor:
    """A sampling method on one example alone (no padding), seeded with the example's own seed."""
    length = int(batch.lengths[j])
    single = dataclasses.replace(batch, token_ids=batch.token_ids[j : j + 1, :length], lengths=batch.lengths[j : j + 1])
    with torch.random.fork_rng(devices=_rng_devices(job.device)):
        torch.manual_seed(example_seed(job.seed, example_id))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            per_token = METHODS[key].token_scores(job.model, single, target[j : j + 1])
    return _per_unit(job, per_token, word_ids[j : j + 1, :length])[0]


def _per_unit(job: _Job, per_token: Tensor, word_ids: Tensor) -> Tensor:
    return aggregate_subword_scores(per_token, word_ids) if job.unit == "word" else per_token


def _finish(out: Path, scan: CorpusScan, digest: str, attempt: int, provenance: Dict[str, Any],
            measured: Dict[str, Any]) -> Dict[str, Any]:
    """Rank 0, once every rank is done (``measured``: this attempt's seconds until now, every rank's peak memory):
    check every shard, write ``ids.json`` and ``index.safetensors``, then mark the manifest complete (the last
    write: a run is complete exactly when its manifest says so)."""
    manifest = storage.read_json(out / storage.MANIFEST)
    shards: List[Dict[str, Any]] = []
    ids: List[str] = []
    skipped: Dict[str, str] = dict(scan.skipped)
    truncated: Dict[str, int] = {}
    unknown_words = 0
    columns: Dict[str, List[Tensor]] = {name: [] for name in ("predicted", "target", "label", "probability")}
    shard_of: List[Tensor] = []
    row_of: List[Tensor] = []
    words = 0
    only_unknown: List[str] = []
    for index in range(len(scan.window_hashes)):
        path = storage.shard_path(out, index)
        shard = storage.ShardFile(path)
        metadata = shard.metadata
        if metadata.get("config") != digest or metadata.get("window_hash") != scan.window_hashes[index]:
            raise ValueError(f"Shard {path} belongs to another run or another corpus")
        shard_ids = shard.field("ids")
        shards.append({"file": path.relative_to(out).as_posix(), "sha256": sha256_file(path),
                       "examples": len(shard_ids), "attempt": int(metadata["attempt"]), "rank": int(metadata["rank"]),
                       "world_size": int(metadata["world_size"])})
        ids += shard_ids
        skipped.update(shard.field("skipped"))
        truncated.update(shard.field("truncated"))
        unknown = shard.field("unknown")
        tokens = shard.field("tokens")
        unknown_words += sum(len(u) for u in unknown.values())
        words += sum(len(t) for t in tokens)
        only_unknown += [i for i, t in zip(shard_ids, tokens) if len(unknown.get(i, ())) == len(t)]
        for name in columns:
            columns[name].append(shard.tensor(name))
        shard_of.append(torch.full((len(shard_ids),), index, dtype=torch.long))
        row_of.append(torch.arange(len(shard_ids)))
    for partial in (out / storage.SHARDS).glob(".*.tmp"):
        partial.unlink(missing_ok=True)
    storage.write_json(out / storage.IDS, {"ids": ids})
    index_tensors = {name: torch.cat(parts) for name, parts in columns.items()}
    index_tensors["shard"], index_tensors["row"] = torch.cat(shard_of), torch.cat(row_of)
    storage.write_atomically(out / storage.INDEX, storage.encode_tensors(index_tensors))
    measured["peak_memory_mb"][0] = round(peak_rss_mb(), 1)  # rank 0's peak includes gathering the index
    manifest.update({
        "complete": True,
        "examples": len(ids),
        "shards": shards,
        "skipped": skipped,
        "truncated": truncated,
        "unknown_words": {"count": unknown_words, "of_words": words, "only_unknown": only_unknown},
        "provenance": {**provenance, "attempt": attempt},
    })
    manifest["attempts"][-1].update(measured)
    storage.write_json(out / storage.MANIFEST, manifest)
    return {key: manifest[key] for key in ("examples", "skipped", "unknown_words", "truncated")}
