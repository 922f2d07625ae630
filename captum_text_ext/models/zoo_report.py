"""``benchmarks/results/models/``: one JSON file per trained zoo model, and the ``models.md`` table built from them.

``captum-text-ext train NAME --record DIR`` writes ``DIR/NAME.json`` (the provenance of the run and what it
measured) and rebuilds ``DIR/../models.md`` from every JSON file in ``DIR``, so each number in the table is one a
train command printed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from captum_text_ext.datasets._paths import PathLike
from captum_text_ext.datasets.planted import PLANT_SEED
from captum_text_ext.models.checkpoints import record_checkpoint
from captum_text_ext.models.zoo import ZOO, ZooResult, train_zoo_model
from captum_text_ext.models.zoo_data import zoo_data_files
from captum_text_ext.provenance import Provenance, RunRecorder, write_json, write_markdown

__all__ = ["record_result", "train_and_record", "write_models_table"]


def train_and_record(
    name: str, data_root: Optional[PathLike], cache_dir: Optional[PathLike], record: Optional[PathLike], command: str,
    progress: bool = True, device: Optional[str] = None, seed: Optional[int] = None,
) -> Tuple[ZooResult, Provenance, Optional[Path]]:
    """Train the zoo entry ``name`` (:func:`~captum_text_ext.models.zoo.train_zoo_model`) under a
    :class:`~captum_text_ext.provenance.RunRecorder` that records its data files, seeds and checkpoint, and with
    ``record`` write ``record/NAME.json`` and rebuild ``models.md`` beside it (:func:`record_result`). ``device``:
    where to train (default: the CPU); ``seed``: replaces the recipe's seed (recorded).

    Returns:
        ``(result, provenance, the JSON file written or None)``.
    """
    entry = ZOO[name]
    seeds = {"model": entry.seed if seed is None else seed, **({"planting": PLANT_SEED} if entry.planted else {})}
    with RunRecorder(command=command, seeds=seeds, device=device or "cpu") as run:
        for label, path in zoo_data_files(entry.dataset, data_root):
            run.record_file(label, path)
        result = train_zoo_model(name, data_root, cache_dir, progress, device=device, seed=seed)
        _, weights = record_checkpoint(run, "checkpoint", result.checkpoint)
    written = record_result(record, result, run.provenance, weights) if record is not None else None
    return result, run.provenance, written


def record_result(directory: PathLike, result: ZooResult, provenance: Provenance, weights_sha256: str) -> Path:
    """Write ``directory/<name>.json`` for one training run and rebuild ``models.md`` beside ``directory``.

    The record cites the checkpoint by its file's sha256 and by ``weights_sha256``, the hash of its weights alone
    (:func:`~captum_text_ext.models.checkpoints.weights_sha256`): the file hash changes with the metadata (the
    training time), the weights hash only with the weights.
    """
    entry = ZOO[result.name]
    path = Path(directory) / f"{result.name}.json"
    write_json(
        path,
        provenance,
        {
            "name": result.name,
            "dataset": entry.dataset,
            "architecture": entry.architecture,
            "config": dict(entry.config),
            "description": entry.description,
            "test_accuracy": result.test_accuracy,
            **result.extra_metrics,
            "target_accuracy": entry.target_accuracy,
            "target_met": result.target_met,
            "paper_accuracy": entry.paper_accuracy,
            "train_seconds": result.train_seconds,
            "best_epoch": result.fit.best_epoch,
            "epochs_run": result.fit.epochs_run,
            "dev_accuracy_per_epoch": result.fit.dev_accuracy,
            "checkpoint_sha256": result.sha256,
            "checkpoint_weights_sha256": weights_sha256,
        },
    )
    write_models_table(directory, provenance)
    return path


def write_models_table(directory: PathLike, provenance: Provenance) -> Path:
    """Rebuild ``models.md`` (next to ``directory``) from the JSON files in ``directory``; its header is the
    provenance of the run that rebuilt it, and each row names the command that measured it."""
    records: List[Dict[str, Any]] = []
    for path in sorted(Path(directory).glob("*.json")):
        records.append(json.loads(path.read_text(encoding="utf-8")))
    order = {name: i for i, name in enumerate(ZOO)}
    records.sort(key=lambda r: order.get(r["results"]["name"], len(order)))
    lines = [
        "Each row was written by the command in its last column, on the machine and commit its JSON file in "
        "`models/` records (with the full provenance). Embeddings are trained from scratch; the papers used "
        "pretrained vectors. A training run is reproducible bit for bit only with the same number of torch threads "
        "on the same kind of CPU (the `threads, CPU` column): another thread count or CPU sums in another order, "
        "which moves the weights and with them every number measured on the model.",
        "",
        "| model | data | test accuracy | target | met | paper | train time | best epoch | seed | threads, CPU "
        "| checkpoint sha256 | weights sha256 | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for record in records:
        r, p = record["results"], record["provenance"]
        accuracy = f"{r['test_accuracy']:.4f}"
        weights = f"`{r['checkpoint_weights_sha256'][:16]}…`" if "checkpoint_weights_sha256" in r else "not recorded"
        if "binary_accuracy_non_neutral" in r:
            accuracy += f" (binary, non-neutral: {r['binary_accuracy_non_neutral']:.4f})"
        lines.append(
            f"| {r['name']} | {r['dataset']} | {accuracy} | ≥ {r['target_accuracy']:.2f} | "
            f"{'yes' if r['target_met'] else '**no**'} | {r['paper_accuracy']} | {r['train_seconds'] / 60:.1f} min | "
            f"{r['best_epoch']} / {r['epochs_run']} | {p['seeds'].get('model', '')} | {p['torch_threads']}, {p['cpu']} "
            f"| `{r['checkpoint_sha256'][:16]}…` "
            f"| {weights} | `{p['command']}` |"
        )
    out = Path(directory).parent / "models.md"
    write_markdown(out, provenance, "# Model zoo: measured test accuracies\n\n" + "\n".join(lines))
    return out
