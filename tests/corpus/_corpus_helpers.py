"""A tiny model, a file of texts, and ``captum-text-ext attribute`` run as a user runs it: in one process, or under
``torchrun`` (gloo on the CPU), in the foreground or killed mid-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from captum_text_ext.datasets import Vocabulary, load_synthetic
from captum_text_ext.models import LSTMClassifier, save_checkpoint

ROOT = Path(__file__).resolve().parents[2]
METHODS = "lrp,integrated_gradients,shapley_value_sampling"
"""Two deterministic methods and a sampling one."""


def tiny_checkpoint(path: Path) -> Path:
    """A small bi-LSTM over the synthetic corpus's words (untrained: the scores need not be meaningful)."""
    examples = load_synthetic("train", n=300, seed=0)
    vocabulary = Vocabulary.build(e.tokens for e in examples)
    torch.manual_seed(0)
    model = LSTMClassifier(len(vocabulary), embedding_dim=8, hidden_size=6, num_classes=2, bidirectional=True)
    save_checkpoint(path, model, vocabulary, {"dataset": "synthetic", "class_names": ["negative", "positive"]})
    return path


def write_texts(path: Path, count: int, extra: Sequence[str] = ()) -> Path:
    """``count`` synthetic test sentences, one per line, then the ``extra`` lines."""
    lines = [" ".join(e.tokens) for e in load_synthetic("test", n=count, seed=1)]
    path.write_text("\n".join([*lines, *extra]) + "\n", encoding="utf-8")
    return path


def command(checkpoint: Path, texts: Path, out: Path, *options: str, methods: str = METHODS) -> List[str]:
    """The arguments of ``captum-text-ext attribute`` for the tiny model."""
    return ["attribute", "--checkpoint", str(checkpoint), "--texts", str(texts), "--methods", methods, "--out",
            str(out), "--window", "8", "--batch-size", "4", "--quiet", *options]


def _environment() -> dict:
    environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return environment


def launch(arguments: Sequence[str], processes: Optional[int]) -> subprocess.Popen:
    """Start the command in one process (``processes=None``) or under ``torchrun`` with ``processes`` ranks, in a
    session of its own (so that it can be killed whole)."""
    cli = ["-m", "captum_text_ext.cli", *arguments]
    launcher = [] if processes is None else ["-m", "torch.distributed.run", "--standalone",
                                             f"--nproc-per-node={processes}"]
    return subprocess.Popen([sys.executable, *launcher, *cli], env=_environment(), cwd=ROOT, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run(arguments: Sequence[str], processes: Optional[int] = None, timeout: float = 600) -> str:
    """Run the command to its end; returns what it printed.

    Raises:
        AssertionError: when it fails.
    """
    process = launch(arguments, processes)
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def _process_tree(pid: int) -> List[int]:
    """``pid`` and every process below it (torchrun starts its workers in sessions of their own), from ``/proc``."""
    children: dict = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


def _signal(pid: int, number: int) -> None:
    for member in _process_tree(pid):
        try:
            os.kill(member, number)
        except ProcessLookupError:
            pass


def kill_after_shards(arguments: Sequence[str], processes: Optional[int], shards: int, timeout: float = 600) -> None:
    """Start the command and ``kill -9`` it (every process of it) as soon as ``shards`` shards are written.

    The processes run in slices of 10 ms (SIGCONT … SIGSTOP) and the shards are counted between slices, so that the
    kill lands mid-way however fast the machine is.

    Raises:
        AssertionError: when it ends before that.
    """
    out = Path(arguments[arguments.index("--out") + 1])
    process = launch(arguments, processes)
    deadline = time.monotonic() + timeout
    try:
        while len(list((out / "shards").glob("shard-*.safetensors"))) < shards:
            assert process.poll() is None, f"the run ended before it was killed: {process.communicate()[0]}"
            assert time.monotonic() < deadline, "no shard was written in time"
            _signal(process.pid, signal.SIGCONT)
            time.sleep(0.01)
            _signal(process.pid, signal.SIGSTOP)
    finally:
        _signal(process.pid, signal.SIGKILL)
        process.communicate()
