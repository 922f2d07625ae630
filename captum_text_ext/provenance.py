"""The provenance header that opens every file under ``benchmarks/results/``.

A result is only worth citing when it says what produced it. Every results file starts with: the package version
and git commit (with a dirty flag), the Python, torch, captum, numpy, scikit-learn and SciPy versions, the CPU model
and thread count, the seeds, the sha256 of every checkpoint and data file used (for a checkpoint also the hash of its
weights alone, :func:`captum_text_ext.models.checkpoints.weights_sha256`), the exact command, the date and the wall
time.

Examples:
    >>> import tempfile, pathlib
    >>> with RunRecorder(command="captum-text-ext benchmark demo", seeds={"train": 0}) as run:
    ...     accuracy = 0.98  # the work being measured
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "result.md"
    >>> write_markdown(path, run.provenance, "| accuracy |\\n|---|\\n| 0.98 |")
    >>> path.read_text().splitlines()[0]
    '<!-- provenance'
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, Dict, Iterator, List, Mapping, Optional, Type, Union

import captum
import numpy
import torch

from captum_text_ext._version import __version__

__all__ = [
    "Provenance",
    "RunRecorder",
    "cpu_model",
    "git_state",
    "peak_rss_mb",
    "png_metadata",
    "sha256_file",
    "write_html",
    "write_json",
    "write_markdown",
]

PathLike = Union[str, "os.PathLike[str]"]


def sha256_file(path: PathLike) -> str:
    """The sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: ``VmHWM`` of ``/proc/self/status`` on Linux. ``getrusage``'s
    ``ru_maxrss`` is no substitute there: across ``exec`` it keeps the peak of the process that forked (or vforked)
    it, so a process started from a large one (a rank under ``torchrun``, a benchmark's case) would report that
    process's memory. Elsewhere ``ru_maxrss`` (kilobytes on Linux, bytes on macOS)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def git_state(directory: Optional[PathLike] = None) -> Dict[str, Any]:
    """``{"sha": ..., "dirty": ...}`` of the git checkout holding ``directory`` (default: this package's source).

    ``sha`` is ``"unknown"`` (and ``dirty`` ``None``) outside a git checkout, e.g. for an installed wheel.
    """
    where = Path(directory) if directory is not None else Path(__file__).resolve().parent

    def git(*args: str) -> Optional[str]:
        try:
            done = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    if sha is None:
        return {"sha": "unknown", "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha, "dirty": bool(status)}


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo``, else :func:`platform.processor`."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Everything a results file records about how it was produced (see the module docstring)."""

    package_version: str
    git_sha: str
    git_dirty: Optional[bool]
    python: str
    torch: str
    captum: str
    numpy: str
    scikit_learn: str
    scipy: str
    cpu: str
    cpu_count: Optional[int]
    torch_threads: int
    device: str
    seeds: Dict[str, int]
    files: Dict[str, Dict[str, str]]
    command: str
    started_utc: str
    wall_seconds: float

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    def lines(self) -> List[str]:
        """The header as ``key: value`` lines, one per field (files one per line)."""
        dirty = {True: " (dirty: uncommitted changes)", False: "", None: ""}[self.git_dirty]
        out = [
            f"command: {self.command}",
            f"date (UTC): {self.started_utc}",
            f"wall time: {self.wall_seconds:.1f} s",
            f"captum_text_ext: {self.package_version}, git {self.git_sha}{dirty}",
            f"python {self.python}, torch {self.torch}, captum {self.captum}, numpy {self.numpy}, "
            f"scikit-learn {self.scikit_learn}, scipy {self.scipy}",
            f"cpu: {self.cpu} ({self.cpu_count} logical cores), torch threads: {self.torch_threads}, "
            f"device: {self.device}",
            "seeds: " + (", ".join(f"{k}={v}" for k, v in self.seeds.items()) or "none"),
        ]
        out += [
            f"file {label}: {info['path']} sha256={info['sha256']}"
            + (f" weights_sha256={info['weights_sha256']}" if "weights_sha256" in info else "")
            for label, info in self.files.items()
        ]
        return out


class RunRecorder:
    """A context manager that times a benchmark run and collects its provenance.

    Args:
        command: the exact command line; default: ``sys.argv`` joined as a shell command.
        seeds: every seed the run used, by name.
        device: the device the run computed on.
        torch_threads: run the block with this many torch intra-op threads (restored afterwards, also when the
            block raises); ``None``: leave them as they are.

    After the ``with`` block, :attr:`provenance` holds the :class:`Provenance`.
    """

    def __init__(
        self,
        command: Optional[str] = None,
        seeds: Optional[Mapping[str, int]] = None,
        device: str = "cpu",
        torch_threads: Optional[int] = None,
    ) -> None:
        self.command = command if command is not None else shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
        self.seeds = dict(seeds or {})
        self.device = device
        self.torch_threads = torch_threads
        self._threads_before = 0
        self.files: Dict[str, Dict[str, str]] = {}
        self._prefix = ""
        self._start: Optional[float] = None
        self._started_utc = ""
        self._git: Dict[str, Any] = {}
        self._provenance: Optional[Provenance] = None

    def record_file(self, label: str, path: PathLike, weights_sha256: Optional[str] = None) -> str:
        """Record a checkpoint or data file used by the run; returns its sha256.

        Args:
            label: the name the file is cited by.
            path: the file.
            weights_sha256: for a checkpoint, the hash of its weights alone (the file's sha256 also covers its
                metadata, e.g. the training time): recorded beside the file's sha256. A checkpoint of
                :mod:`captum_text_ext.models` is best recorded with
                :func:`~captum_text_ext.models.checkpoints.record_checkpoint`, which computes it.

        Raises:
            ValueError: when ``label`` (with the prefix of :meth:`labelled`) already names another file or other
                contents: a run cites one file per label.
        """
        digest = sha256_file(path)
        label = self._prefix + label
        entry = {"path": str(path), "sha256": digest}
        if weights_sha256 is not None:
            entry["weights_sha256"] = weights_sha256
        recorded = self.files.get(label)
        if recorded is not None and (recorded["path"], recorded["sha256"]) != (entry["path"], entry["sha256"]):
            raise ValueError(f"Expected {label!r} to name one file in the run, but it names {recorded['path']} "
                             f"(sha256 {recorded['sha256']}) and {path} (sha256 {digest}); record the second "
                             "under another label, or inside RunRecorder.labelled(...)")
        self.files[label] = entry
        return digest

    @contextlib.contextmanager
    def labelled(self, prefix: str) -> Iterator[None]:
        """Record the files of the block under ``prefix + label``: for a part of a run that repeats another part's
        labels with other files (e.g. one model per seed)."""
        before = self._prefix
        self._prefix = before + prefix
        try:
            yield
        finally:
            self._prefix = before

    def __enter__(self) -> "RunRecorder":
        self._git = git_state()  # the code that runs is the code at the start
        self._threads_before = torch.get_num_threads()
        if self.torch_threads is not None:
            torch.set_num_threads(self.torch_threads)
        self._start = time.perf_counter()
        self._started_utc = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        if self._start is None:
            raise RuntimeError("RunRecorder.__exit__ called without __enter__")
        try:
            self._provenance = self._collect(self._start)
        finally:
            torch.set_num_threads(self._threads_before)

    def _collect(self, start: float) -> Provenance:
        git = self._git
        return Provenance(
            package_version=__version__,
            git_sha=git["sha"],
            git_dirty=git["dirty"],
            python=platform.python_version(),
            torch=torch.__version__,
            captum=captum.__version__,
            numpy=numpy.__version__,
            scikit_learn=metadata.version("scikit-learn"),
            scipy=metadata.version("scipy"),
            cpu=cpu_model(),
            cpu_count=os.cpu_count(),
            torch_threads=torch.get_num_threads(),
            device=self.device,
            seeds=dict(self.seeds),
            files=dict(self.files),
            command=self.command,
            started_utc=self._started_utc,
            wall_seconds=time.perf_counter() - start,
        )

    @property
    def provenance(self) -> Provenance:
        """The run's provenance, available once the ``with`` block has ended."""
        if self._provenance is None:
            raise RuntimeError("The provenance is known only after the `with RunRecorder(...)` block has ended")
        return self._provenance


def write_markdown(path: PathLike, provenance: Provenance, body: str) -> None:
    """Write a Markdown results file: the provenance as an HTML comment (hidden when rendered) and a visible
    summary line, then ``body``."""
    header = "\n".join(["<!-- provenance", *provenance.lines(), "-->"])
    visible = (
        f"*Produced by `{provenance.command}` on {provenance.started_utc} UTC "
        f"(captum_text_ext {provenance.package_version}, git {provenance.git_sha[:12]}"
        f"{', dirty' if provenance.git_dirty else ''}; {provenance.wall_seconds:.1f} s).*"
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(f"{header}\n\n{visible}\n\n{body.rstrip()}\n", encoding="utf-8")


def write_html(path: PathLike, provenance: Provenance, page: str) -> None:
    """Write an HTML page that opens with the provenance as an HTML comment (before the doctype, as the HTML syntax
    allows).

    Args:
        path: the file to write.
        provenance: the run's provenance.
        page: the HTML document.
    """
    header = "\n".join(["<!-- provenance", *provenance.lines(), "-->"])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(f"{header}\n{page}", encoding="utf-8")


def write_json(path: PathLike, provenance: Provenance, results: Any) -> None:
    """Write a JSON results file ``{"provenance": {...}, "results": ...}`` (the provenance first)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    payload = {"provenance": provenance.as_dict(), "results": results}
    Path(path).write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def png_metadata(provenance: Provenance) -> Dict[str, str]:
    """PNG text chunks for ``matplotlib.figure.Figure.savefig(..., metadata=png_metadata(p))``: a plot carries its
    provenance inside the file."""
    return {"Software": f"captum_text_ext {provenance.package_version}", "Description": "\n".join(provenance.lines())}

