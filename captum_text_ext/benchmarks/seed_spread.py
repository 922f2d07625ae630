r"""The spread over training seeds of the zoo models the reproductions rest on, and of their headline numbers.

``captum-text-ext benchmark seed-spread [--models A,B] [--seeds 0,1,2]`` trains each model's zoo recipe once per
seed (the seed replaces the recipe's: initialization, dropout and batch order;
:func:`~captum_text_ext.models.zoo.train_zoo_model`) into ``CACHE/seeds/seed-S/`` (the recipe's own seed reuses the
cached model when there is one), and computes on each:

- ``lstm-sst2``: its test accuracy and the headline of :mod:`~captum_text_ext.benchmarks.murdoch2018` (Table 4):
  Pearson's :math:`r` between each method's word scores and the logistic-regression coefficients, over all words and
  over words seen at least 10 times;
- ``textcnn-agnews`` and ``textcnn-mr``: test accuracy, matching rate and random-words matching rate of
  :mod:`~captum_text_ext.benchmarks.yuan2019` (Table 4);
- any other zoo model: its test accuracy (and the binary accuracy on non-neutral sentences for SST-5).

Each number is reported per seed, with the mean, the sample standard deviation and the range, so that a target or a
paper comparison can be read against the variation a seed alone causes. The checkpoints' weights hashes are in
the results. Training dominates the wall time (``textcnn-agnews`` about 24 minutes per seed with one thread).
"""

from __future__ import annotations

import shlex
import statistics
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from captum_text_ext.benchmarks import murdoch2018, yuan2019
from captum_text_ext.benchmarks.markdown import markdown_cell
from captum_text_ext.datasets._paths import PathLike
from captum_text_ext.models.checkpoints import default_cache_dir, load_checkpoint, record_checkpoint
from captum_text_ext.models.zoo import ZOO, checkpoint_path, train_zoo_model
from captum_text_ext.provenance import Provenance, RunRecorder, write_json, write_markdown

__all__ = ["DEFAULT_MODELS", "DEFAULT_SEEDS", "HEADLINES", "run_seed_spread", "spread"]

DEFAULT_MODELS = ("lstm-sst2", "textcnn-agnews", "bilstm-sst5")
"""The models of a full run: those of murdoch2018, yuan2019 (AG News) and arras2017 (whose target is thin)."""
DEFAULT_SEEDS = (0, 1, 2)
"""The seeds of a full run."""

Headline = Callable[[RunRecorder, Optional[PathLike], Path], Dict[str, float]]


def _murdoch2018(run: RunRecorder, data_root: Optional[PathLike], cache: Path) -> Dict[str, float]:
    result = murdoch2018.compute_results(run, data_root, cache)
    numbers = {"test accuracy": result["lstm_accuracy"]}
    for method, scores in result["methods"].items():
        numbers[f"r {method}, all words"] = scores["word_correlation"]["r"]
        numbers[f"r {method}, ≥ 10 occurrences"] = scores["word_correlation_frequent"]["r"]
    return numbers


def _yuan2019(name: str) -> Headline:
    def headline(run: RunRecorder, data_root: Optional[PathLike], cache: Path) -> Dict[str, float]:
        row = yuan2019.table_row(name, run, data_root, cache, yuan2019.TABLE4_SENTENCES)[0]
        return {"test accuracy": row["test_accuracy"], "matching rate": row["matching_rate"],
                "random-words matching rate": row["random_words_matching_rate"]}
    return headline


HEADLINES: Dict[str, Headline] = {
    "lstm-sst2": _murdoch2018,
    "textcnn-agnews": _yuan2019("textcnn-agnews"),
    "textcnn-mr": _yuan2019("textcnn-mr"),
}
"""The headline numbers computed per seed, by model (the others report their test accuracy)."""


def _accuracy(name: str) -> Headline:
    def headline(run: RunRecorder, data_root: Optional[PathLike], cache: Path) -> Dict[str, float]:
        metadata = load_checkpoint(checkpoint_path(name, cache)).metadata
        extra = {"binary accuracy, non-neutral": metadata["binary_accuracy_non_neutral"]} \
            if "binary_accuracy_non_neutral" in metadata else {}
        return {"test accuracy": metadata["test_accuracy"], **extra}
    return headline


def spread(values: Sequence[float]) -> Dict[str, float]:
    """Mean, sample standard deviation (0 for one value), minimum and maximum.

    Example:
        >>> {key: round(value, 6) for key, value in spread([0.5, 0.7, 0.6]).items()}
        {'mean': 0.6, 'sd': 0.1, 'min': 0.5, 'max': 0.7}
    """
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def _seed_cache(cache_dir: Optional[PathLike], name: str, seed: int) -> Path:
    """Where the model of ``seed`` lives: the regular cache for the recipe's own seed, else ``seeds/seed-S/``."""
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base if seed == ZOO[name].seed else base / "seeds" / f"seed-{seed}"


def run_seed_spread(
    out: PathLike,
    data_root: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
    command: Optional[str] = None,
    models: Sequence[str] = DEFAULT_MODELS,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    progress: bool = True,
) -> List[str]:
    """Train every model with every seed (when not cached), compute its headline numbers, and write
    ``seed_spread.md`` and ``seed_spread.json`` to ``out``.

    Args:
        out: the results directory.
        data_root: the data directory.
        cache_dir: the model cache; other seeds than the recipe's go to ``seeds/seed-S/`` inside it.
        command: the command line to record.
        models: zoo model names.
        seeds: at least two distinct seeds.
        progress: show training progress.

    Returns:
        The lines the command prints: the table and the files written.

    Raises:
        ValueError: for an unknown model, or fewer than two distinct seeds.
    """
    unknown = [m for m in models if m not in ZOO]
    if unknown or not models:
        raise ValueError(f"Expected --models among {list(ZOO)}, but got {list(models)}")
    if len(set(seeds)) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"Expected at least two distinct --seeds, but got {list(seeds)}")
    out = Path(out)
    command = command or shlex.join(["captum-text-ext", "benchmark", "seed-spread", "--out", str(out)])
    results: Dict[str, Any] = {"seeds": list(seeds), "models": {}}
    with RunRecorder(command=command, seeds={f"training {i + 1}": seed for i, seed in enumerate(seeds)}) as run:
        for name in models:
            per_seed: Dict[str, Dict[str, Any]] = {}
            for seed in seeds:
                cache = _seed_cache(cache_dir, name, seed)
                if not checkpoint_path(name, cache).is_file():
                    train_zoo_model(name, data_root, cache, progress, seed=seed)
                with run.labelled(f"{name} seed {seed}: "):  # the reproductions record their files too
                    file_hash, weights = record_checkpoint(run, "checkpoint", checkpoint_path(name, cache))
                    checkpoint_seed = load_checkpoint(checkpoint_path(name, cache)).metadata.get("seed")
                    if checkpoint_seed != seed:
                        raise ValueError(f"Expected the cached {checkpoint_path(name, cache)} to be trained with "
                                         f"seed {seed}, but its metadata says {checkpoint_seed}")
                    numbers = HEADLINES.get(name, _accuracy(name))(run, data_root, cache)
                per_seed[str(seed)] = {"checkpoint_sha256": file_hash, "weights_sha256": weights,
                                       "numbers": numbers}
            keys = list(per_seed[str(seeds[0])]["numbers"])
            results["models"][name] = {
                "target_accuracy": ZOO[name].target_accuracy,
                "seeds": per_seed,
                "spread": {key: spread([per_seed[str(s)]["numbers"][key] for s in seeds]) for key in keys},
            }
    return _write(out, run.provenance, results)


def _markdown(results: Mapping[str, Any]) -> List[str]:
    seeds = results["seeds"]
    lines = ["# Spread over training seeds", "",
             f"Each zoo model trained with seeds {', '.join(map(str, seeds))} (the seed replaces the recipe's: "
             "initialization, dropout and batch order); per seed, the headline numbers of the reproduction that "
             "uses the model; then the mean, the sample standard deviation and the range."]
    for name, model in results["models"].items():
        lines += ["", f"## {name}", "", f"Target test accuracy: ≥ {model['target_accuracy']:.2f}; seeds meeting it: "
                  f"{sum(model['seeds'][str(s)]['numbers']['test accuracy'] >= model['target_accuracy'] for s in seeds)}"
                  f" of {len(seeds)}.", "",
                  "| number | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | sd | range |",
                  "|---" * (len(seeds) + 4) + "|"]
        for key, stats in model["spread"].items():
            cells = " | ".join(f"{model['seeds'][str(s)]['numbers'][key]:.4f}" for s in seeds)
            lines.append(f"| {markdown_cell(key)} | {cells} | {stats['mean']:.4f} | {stats['sd']:.4f} | "
                         f"{stats['min']:.4f}–{stats['max']:.4f} |")
    return lines


def _write(out: Path, provenance: Provenance, results: Mapping[str, Any]) -> List[str]:
    lines = _markdown(results)
    write_markdown(out / "seed_spread.md", provenance, "\n".join([*lines, ""]))
    write_json(out / "seed_spread.json", provenance, results)
    return [*lines, "", f"wrote {out / 'seed_spread.md'}", f"wrote {out / 'seed_spread.json'}"]
