"""Support for the reproduction and speed benchmarks whose results live in ``benchmarks/results/``.

:data:`BENCHMARKS` names every benchmark ``captum-text-ext benchmark NAME`` runs, with its default results directory.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from captum_text_ext.datasets._paths import PathLike


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A benchmark of ``captum-text-ext benchmark``.

    Attributes:
        name: its name on the command line.
        description: one line for ``--help``.
        module: the module of :mod:`captum_text_ext.benchmarks` that holds its ``run_<module>`` function, imported
            only when the benchmark runs.
        default_out: where its results go by default (relative to the working directory).
        options: the keyword options ``run`` takes besides the common ones, each a command-line option
            (``imdb_dir``: ``--imdb-dir``; ``models``, ``n``, ...).
    """

    name: str
    description: str
    module: str
    default_out: Path
    options: Tuple[str, ...] = ()

    def run(
        self, out: PathLike, data_root: Optional[PathLike], cache_dir: Optional[PathLike], command: Optional[str],
        **options: Any,
    ) -> List[str]:
        """Run it, write its results files to ``out`` and return the lines to print."""
        module = importlib.import_module(f"captum_text_ext.benchmarks.{self.module}")
        runner: Callable[..., List[str]] = getattr(module, f"run_{self.module}")
        return runner(out, data_root, cache_dir, command, **options)


BENCHMARKS: Dict[str, Benchmark] = {
    benchmark.name: benchmark
    for benchmark in (
        Benchmark("arras2017", "Arras et al. (2017): word deletion, Table 1 and the example heatmaps with bilstm-sst5",
                  "arras2017", Path("benchmarks/results/arras2017")),
        Benchmark("lrp-speed", "LSTMLRP's sentences/s against a NumPy loop, Saliency and IG on the SST test set",
                  "lrp_speed", Path("benchmarks/results")),
        Benchmark("hechtlinger2016", "Hechtlinger (2016): Tables 1-2, surrogate agreement and why, fit vs Saliency "
                  "speed, with bow-mlp-sst2, bow-mlp-mr and embcnn-sst2 (optionally IMDB)",
                  "hechtlinger2016", Path("benchmarks/results/hechtlinger2016"), ("imdb_dir",)),
        Benchmark("leaderboard", "every method on every zoo model: faithfulness and ground-truth metrics with "
                  "bootstrap intervals and Holm-corrected paired tests", "leaderboard",
                  Path("benchmarks/results/leaderboard"),
                  ("models", "n", "sensitivity_n", "methods", "processes")),
        Benchmark("planted", "ground truth the model provably uses: planted tokens (verified reliance) on the planted "
                  "twins and textual mosaics on their clean twins, every method; trains the twins it needs",
                  "planted", Path("benchmarks/results/planted"), ("models", "n", "methods")),
        Benchmark("yuan2019", "Yuan et al. (2019): Tables 3 and 4 (matching rates, random-words baseline) and Figures "
                  "2-5 with textcnn-mr and textcnn-agnews, and a Kim CNN row (kimcnn-mr; --models kimcnn-mr computes "
                  "it alone)", "yuan2019", Path("benchmarks/results/yuan2019"), ("models",)),
        Benchmark("hiddenunit-speed", "HiddenUnitOptimization batched against one location at a time on 256 MR test "
                  "sentences", "hiddenunit_speed", Path("benchmarks/results")),
        Benchmark("murdoch2018", "Murdoch et al. (2018): word scores vs LR, dissenting subphrases, compositionality "
                  "and negation with lstm-sst2", "murdoch2018", Path("benchmarks/results/murdoch2018")),
        Benchmark("corpus", "captum-text-ext attribute's sentences/s over sst2:train with lstm-sst2 (1 × 1, 1 × 2 "
                  "threads, 2 processes × 1) and its peak memory per rank on 10k and 100k sentences", "corpus_speed",
                  Path("benchmarks/results"), ("n", "models", "methods")),
        Benchmark("seed-spread", "each model the reproductions rest on (lstm-sst2, textcnn-agnews, bilstm-sst5) "
                  "trained with several seeds: the spread of its accuracy and of the reproduction's headline numbers",
                  "seed_spread", Path("benchmarks/results/seed_spread"), ("models", "seeds")),
        Benchmark("cd-speed", "ContextualDecomposition's word scores/s against a per-phrase NumPy loop on the SST "
                  "test set", "cd_speed", Path("benchmarks/results")),
    )
}
"""The benchmarks by name (the modules are imported when one runs)."""

__all__ = ["BENCHMARKS", "Benchmark"]
