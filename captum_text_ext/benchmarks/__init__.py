"""Support for the reproduction and speed benchmarks whose results live in ``benchmarks/results/``.

:data:`BENCHMARKS` names every benchmark ``captum-text-ext benchmark NAME`` runs, with its default results directory.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from captum_text_ext.benchmarks.provenance import (
    Provenance,
    RunRecorder,
    png_metadata,
    sha256_file,
    write_json,
    write_markdown,
)
from captum_text_ext.datasets._paths import PathLike

RunFn = Callable[..., List[str]]
"""``run(out, data_root, cache_dir, command, **options) -> lines printed``; ``options`` are the benchmark's
:attr:`Benchmark.options`."""


def _arras2017(
    out: PathLike, data_root: Optional[PathLike], cache_dir: Optional[PathLike], command: Optional[str]
) -> List[str]:
    from captum_text_ext.benchmarks.arras2017 import run_arras2017

    return run_arras2017(out, data_root, cache_dir, command)


def _lrp_speed(
    out: PathLike, data_root: Optional[PathLike], cache_dir: Optional[PathLike], command: Optional[str]
) -> List[str]:
    from captum_text_ext.benchmarks.lrp_speed import run_lrp_speed

    return run_lrp_speed(out, data_root, cache_dir, command)


def _hechtlinger2016(
    out: PathLike, data_root: Optional[PathLike], cache_dir: Optional[PathLike], command: Optional[str],
    **options: Any,
) -> List[str]:
    from captum_text_ext.benchmarks.hechtlinger2016 import run_hechtlinger2016

    return run_hechtlinger2016(out, data_root, cache_dir, command, **options)


def _leaderboard(
    out: PathLike, data_root: Optional[PathLike], cache_dir: Optional[PathLike], command: Optional[str],
    **options: Any,
) -> List[str]:
    from captum_text_ext.benchmarks.leaderboard import run_leaderboard

    return run_leaderboard(out, data_root, cache_dir, command, **options)


def _yuan2019(
    out: PathLike, data_root: Optional[PathLike], cache_dir: Optional[PathLike], command: Optional[str]
) -> List[str]:
    from captum_text_ext.benchmarks.yuan2019 import run_yuan2019

    return run_yuan2019(out, data_root, cache_dir, command)


def _hiddenunit_speed(
    out: PathLike, data_root: Optional[PathLike], cache_dir: Optional[PathLike], command: Optional[str]
) -> List[str]:
    from captum_text_ext.benchmarks.hiddenunit_speed import run_hiddenunit_speed

    return run_hiddenunit_speed(out, data_root, cache_dir, command)


def _cd_speed(
    out: PathLike, data_root: Optional[PathLike], cache_dir: Optional[PathLike], command: Optional[str]
) -> List[str]:
    from captum_text_ext.benchmarks.cd_speed import run_cd_speed

    return run_cd_speed(out, data_root, cache_dir, command)


def _murdoch2018(
    out: PathLike, data_root: Optional[PathLike], cache_dir: Optional[PathLike], command: Optional[str]
) -> List[str]:
    from captum_text_ext.benchmarks.murdoch2018 import run_murdoch2018

    return run_murdoch2018(out, data_root, cache_dir, command)


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A benchmark of ``captum-text-ext benchmark``.

    Attributes:
        name: its name on the command line.
        description: one line for ``--help``.
        run: runs it and writes its results files; returns the lines to print.
        default_out: where its results go by default (relative to the working directory).
        options: the keyword options ``run`` takes besides the common ones, each a command-line option
            (``imdb_dir``: ``--imdb-dir``; ``models``, ``n``, ...).
    """

    name: str
    description: str
    run: RunFn
    default_out: Path
    options: Tuple[str, ...] = ()


BENCHMARKS: Dict[str, Benchmark] = {
    benchmark.name: benchmark
    for benchmark in (
        Benchmark("arras2017", "Arras et al. (2017): word deletion, Table 1 and the example heatmaps with bilstm-sst5",
                  _arras2017, Path("benchmarks/results/arras2017")),
        Benchmark("lrp-speed", "LSTMLRP's sentences/s against a NumPy loop, Saliency and IG on the SST test set",
                  _lrp_speed, Path("benchmarks/results")),
        Benchmark("hechtlinger2016", "Hechtlinger (2016): Tables 1-2, surrogate agreement and why, fit vs Saliency "
                  "speed, with bow-mlp-sst2, bow-mlp-mr and embcnn-sst2 (optionally IMDB)",
                  _hechtlinger2016, Path("benchmarks/results/hechtlinger2016"), ("imdb_dir",)),
        Benchmark("leaderboard", "every method on every zoo model: faithfulness and ground-truth metrics with "
                  "bootstrap intervals and Holm-corrected paired tests", _leaderboard,
                  Path("benchmarks/results/leaderboard"), ("models", "n", "sensitivity_n", "methods")),
        Benchmark("yuan2019", "Yuan et al. (2019): Tables 3 and 4 (matching rates, random-words baseline) and Figures "
                  "2-5 with textcnn-mr and textcnn-agnews", _yuan2019, Path("benchmarks/results/yuan2019")),
        Benchmark("hiddenunit-speed", "HiddenUnitOptimization batched against one location at a time on 256 MR test "
                  "sentences", _hiddenunit_speed, Path("benchmarks/results")),
        Benchmark("murdoch2018", "Murdoch et al. (2018): word scores vs LR, dissenting subphrases, compositionality "
                  "and negation with lstm-sst2", _murdoch2018, Path("benchmarks/results/murdoch2018")),
        Benchmark("cd-speed", "ContextualDecomposition's word scores/s against a per-phrase NumPy loop on the SST "
                  "test set", _cd_speed, Path("benchmarks/results")),
    )
}
"""The benchmarks by name (the modules are imported when one runs)."""

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "Provenance",
    "RunRecorder",
    "png_metadata",
    "sha256_file",
    "write_json",
    "write_markdown",
]
