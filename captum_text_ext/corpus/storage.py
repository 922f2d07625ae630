r"""The on-disk format of a corpus run: ``safetensors`` shards and a JSON manifest, every file written atomically.

A run's directory holds:

- ``manifest.json``: the run's settings (the corpus fingerprint, the methods and their settings, the seed, the
  storage dtype, the model's checksum, the batch plan's parameters), its provenance (package version, git commit,
  machine), every attempt (world size, when), and, once complete, every shard's SHA-256 and example count;
- ``shards/shard-NNNNNN.safetensors``: one per window of the corpus (:mod:`~captum_text_ext.corpus.plan`), its
  examples in corpus order. Tensors: ``offsets`` (:math:`n + 1`, int64: example :math:`i`'s scores are entries
  ``offsets[i]`` … ``offsets[i+1] - 1``), ``predicted``, ``target``, ``label`` (:math:`n`, int64; -1 for no gold
  label), ``probability`` (:math:`n`, float32: the predicted class's), and ``scores.METHOD`` (the per-token scores of
  every example, concatenated, in the storage dtype). The header's metadata (strings) holds the ids, the tokens, the
  per-example content hashes, the examples skipped with their reasons, the words cut at the model's limit, and which
  attempt, rank and world size wrote the shard;
- ``ids.json`` and ``index.safetensors`` (once complete): every example's id, and its ``predicted``, ``target``,
  ``label``, ``probability``, ``shard`` and ``row``, in corpus order, so that loading opens only the shards it reads.

A file is written to a temporary name in its directory and renamed, so a file under its final name is complete; a
killed run leaves at most a temporary file, which is never read (and is removed when its shard is written again).
``safetensors`` refuses a truncated file when it opens it, and loading checks a shard's SHA-256 against the manifest.

**float16 storage** keeps 2 bytes per score: a score :math:`s` is stored as :math:`\tilde s` with
:math:`|\tilde s - s| \le 2^{-11} |s|` (:data:`FLOAT16_RELATIVE_ERROR`, half a unit in the last place of float16's
11-bit significand) for :math:`2^{-14} \le |s| \le 65504`, and :math:`|\tilde s - s| \le 2^{-25}` below
:math:`2^{-14}` (subnormal numbers); a score beyond 65504 cannot be stored and the run refuses it (use float32).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import Tensor

__all__ = [
    "FLOAT16_ABSOLUTE_ERROR",
    "FLOAT16_MAX",
    "FLOAT16_RELATIVE_ERROR",
    "FORMAT",
    "FORMAT_VERSION",
    "IDS",
    "INDEX",
    "MANIFEST",
    "STORAGE_DTYPES",
    "CorruptShardError",
    "ShardContent",
    "ShardFile",
    "encode_shard",
    "encode_tensors",
    "read_json",
    "read_tensors",
    "shard_path",
    "to_storage",
    "write_atomically",
    "write_json",
]

FORMAT = "captum_text_ext.corpus"
"""The ``format`` of a run's manifest and shards."""
FORMAT_VERSION = 1
"""The version of the layout; loading refuses any other."""
MANIFEST = "manifest.json"
"""The run's settings, attempts, shards and provenance."""
IDS = "ids.json"
"""Every example's id in corpus order (written when the run completes)."""
INDEX = "index.safetensors"
"""Every example's classes, probability, shard and row in corpus order (written when the run completes)."""
SHARDS = "shards"
STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16}
"""The dtypes scores can be stored in."""
FLOAT16_RELATIVE_ERROR = 2.0**-11
"""The largest relative error of float16 storage for :math:`2^{-14} \\le |s| \\le 65504`."""
FLOAT16_ABSOLUTE_ERROR = 2.0**-25
"""The largest absolute error of float16 storage for :math:`|s| < 2^{-14}`."""
FLOAT16_MAX = 65504.0
"""The largest finite float16."""


class CorruptShardError(ValueError):
    """A shard that cannot be read as written: truncated, altered, or of another run."""


def shard_path(out: Path, index: int) -> Path:
    """Where shard ``index`` of the run in ``out`` lives."""
    return out / SHARDS / f"shard-{index:06d}.safetensors"


def write_atomically(path: Path, data: bytes) -> str:
    """Write ``data`` to a temporary file beside ``path`` (flushed to disk) and rename it to ``path``; returns the
    hex SHA-256 of ``data``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return hashlib.sha256(data).hexdigest()


def write_json(path: Path, content: Mapping[str, Any]) -> None:
    """Write ``content`` as indented UTF-8 JSON, atomically."""
    write_atomically(path, (json.dumps(content, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def read_json(path: Path) -> Any:
    """The JSON content of ``path``."""
    return json.loads(path.read_text(encoding="utf-8"))


def to_storage(scores: Tensor, dtype: str, method: str) -> Tensor:
    """``scores`` in the storage dtype (on the CPU).

    Raises:
        ValueError: for a score that float16 cannot hold (beyond :data:`FLOAT16_MAX`), or a non-finite score.
    """
    scores = scores.detach().cpu()
    if not bool(torch.isfinite(scores).all()):
        raise ValueError(f"{method} gave a non-finite score (nan or inf); nothing of it is stored")
    if dtype == "float16" and scores.numel() and float(scores.abs().max()) > FLOAT16_MAX:
        raise ValueError(f"{method} gave a score of {float(scores.abs().max()):.4g}, beyond float16's largest "
                         f"{FLOAT16_MAX:g}; store the run as float32 (--storage-dtype float32)")
    return scores.to(STORAGE_DTYPES[dtype]).contiguous()


@dataclasses.dataclass(frozen=True)
class ShardContent:
    """What one shard holds (module docstring), before it is encoded."""

    ids: List[str]
    tokens: List[List[str]]
    hashes: List[str]
    predicted: List[int]
    target: List[int]
    label: List[int]
    probability: List[float]
    scores: Dict[str, List[Tensor]]
    skipped: Dict[str, str]
    truncated: Dict[str, int]
    unknown: Dict[str, List[str]]


def encode_tensors(tensors: Mapping[str, Tensor], metadata: Optional[Mapping[str, str]] = None) -> bytes:
    """The ``safetensors`` bytes of ``tensors`` with ``metadata``."""
    return bytes(save(dict(tensors), metadata=dict(metadata) if metadata is not None else None))


def read_tensors(path: Path) -> Dict[str, Tensor]:
    """Every tensor of a ``safetensors`` file.

    Raises:
        CorruptShardError: for a file ``safetensors`` cannot open.
    """
    try:
        with safe_open(str(path), framework="pt") as opened:
            return {key: opened.get_tensor(key).clone() for key in opened.keys()}  # not views of the file
    except (SafetensorError, OSError) as err:
        raise CorruptShardError(f"{path} cannot be read ({err})") from err


def encode_shard(content: ShardContent, dtype: str, header: Mapping[str, str]) -> bytes:
    """The ``safetensors`` bytes of a shard; ``header`` adds metadata (the window, its hash, the attempt …)."""
    lengths = [len(t) for t in content.tokens]
    offsets = torch.tensor([0, *lengths], dtype=torch.long).cumsum(0)
    tensors = {
        "offsets": offsets,
        "predicted": torch.tensor(content.predicted, dtype=torch.long),
        "target": torch.tensor(content.target, dtype=torch.long),
        "label": torch.tensor(content.label, dtype=torch.long),
        "probability": torch.tensor(content.probability, dtype=torch.float32),
    }
    for key, per_example in content.scores.items():
        flat = torch.cat([s.reshape(-1) for s in per_example]) if per_example else torch.zeros(0)
        tensors[f"scores.{key}"] = to_storage(flat, dtype, key)
    metadata = {
        **header,
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "ids": json.dumps(content.ids, ensure_ascii=False),
        "tokens": json.dumps(content.tokens, ensure_ascii=False),
        "hashes": json.dumps(content.hashes),
        "skipped": json.dumps(content.skipped, ensure_ascii=False),
        "truncated": json.dumps(content.truncated, ensure_ascii=False),
        "unknown": json.dumps(content.unknown, ensure_ascii=False),
    }
    return encode_tensors(tensors, metadata)


class ShardFile:
    """One shard, opened lazily: its header is read on first use, tensors one by one (through a memory map,
    copied out).

    Raises:
        CorruptShardError: (on first use) for a file ``safetensors`` cannot open (truncated, torn), of another
            format, or whose SHA-256 is not ``sha256`` when one is given.
    """

    def __init__(self, path: Path, sha256: Optional[str] = None) -> None:
        self.path = path
        self._sha256 = sha256
        self._metadata: Optional[Dict[str, str]] = None
        self._decoded: Dict[str, Any] = {}

    def _open(self) -> Any:
        try:
            return safe_open(str(self.path), framework="pt")
        except (SafetensorError, OSError) as err:
            raise CorruptShardError(f"Shard {self.path} cannot be read ({err}); resume the run (--resume) to "
                                    "compute it again") from err

    @property
    def metadata(self) -> Dict[str, str]:
        """The header's metadata (checked to be of this format)."""
        return self.check()

    def check(self) -> Dict[str, str]:
        """Read and check the header once (and the file's SHA-256 when one was given); returns the metadata."""
        if self._metadata is None:
            if self._sha256 is not None and hashlib.sha256(self.path.read_bytes()).hexdigest() != self._sha256:
                raise CorruptShardError(f"Shard {self.path} is not the file the run wrote (its SHA-256 differs from "
                                        "the manifest's); resume the run (--resume) to compute it again")
            with self._open() as opened:
                metadata = opened.metadata() or {}
            if metadata.get("format") != FORMAT or metadata.get("format_version") != str(FORMAT_VERSION):
                raise CorruptShardError(f"{self.path} is not a shard of a {FORMAT} run of version {FORMAT_VERSION}")
            self._metadata = dict(metadata)
        return self._metadata

    def field(self, name: str) -> Any:
        """A JSON field of the header (``ids``, ``tokens``, ``hashes``, ``skipped``, ``truncated``, ``unknown``)."""
        if name not in self._decoded:
            self._decoded[name] = json.loads(self.metadata[name])
        return self._decoded[name]

    def tensor(self, name: str) -> Tensor:
        """One tensor of the shard, copied out of the file: a tensor viewing the memory map would keep the file's
        pages resident for as long as it lives (a run's index, built from every shard, grew rank 0's memory by
        about 1 KB per example that way)."""
        self.check()
        with self._open() as opened:
            tensor: Tensor = opened.get_tensor(name).clone()
        return tensor

    def tensor_names(self) -> List[str]:
        """The shard's tensors."""
        self.check()
        with self._open() as opened:
            return list(opened.keys())
