"""Reading a corpus run back: :func:`load_attributions`.

Loading reads the manifest only. Every other file is opened when something of it is asked for: ``ids`` reads
``ids.json``; ``predictions``, ``targets``, ``labels`` and ``probabilities`` read ``index.safetensors``; ``tokens(i)``
and ``scores(method)[i]`` open the one shard that holds example ``i`` (found from the manifest's shard sizes), check
its SHA-256 against the manifest and read the tensor it needs (through ``safetensors``' memory map, copied out so that
no file stays mapped). A few shards' tensors are kept, so that reading in corpus order opens each shard once.
"""

from __future__ import annotations

import bisect
import collections
import itertools
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union, overload

import torch
from torch import Tensor

from captum_text_ext.corpus import storage
from captum_text_ext.datasets._paths import PathLike

__all__ = ["Attributions", "MethodScores", "load_attributions"]

_KEPT = 8
"""How many shards' tensors an :class:`Attributions` keeps at once."""


class Attributions:
    """The scores of a corpus run (:func:`load_attributions`), read lazily.

    Attributes:
        directory: the run's directory.
        manifest: the run's manifest (settings, attempts, shards, skipped examples, provenance).
    """

    def __init__(self, directory: Path, manifest: Dict[str, Any]) -> None:
        self.directory = directory
        self.manifest = manifest
        self._starts = [0, *itertools.accumulate(shard["examples"] for shard in manifest["shards"])]
        self._shards: Dict[int, storage.ShardFile] = {}
        self._tensors: "collections.OrderedDict[Tuple[int, str], Tensor]" = collections.OrderedDict()
        self._ids: Optional[List[str]] = None
        self._index: Dict[str, Tensor] = {}

    def __len__(self) -> int:
        return int(self.manifest["examples"])

    def __repr__(self) -> str:
        return (f"Attributions({len(self)} examples, methods {self.methods}, {len(self._starts) - 1} shards in "
                f"{self.directory})")

    @property
    def methods(self) -> List[str]:
        """The methods' keys."""
        return list(self.manifest["settings"]["methods"])

    @property
    def settings(self) -> Dict[str, Any]:
        """The run's settings (corpus, model, methods and their settings, seed, storage dtype, batch plan)."""
        settings: Dict[str, Any] = self.manifest["settings"]
        return settings

    @property
    def provenance(self) -> Dict[str, Any]:
        """How the run was produced: the last attempt's provenance (package version, git, machine, command), every
        attempt's world size, and the settings."""
        return {**self.manifest["provenance"], "attempts": self.manifest["attempts"], "settings": self.settings}

    @property
    def skipped(self) -> Dict[str, str]:
        """Example id (or ``line N`` of a file) to why it has no scores."""
        skipped: Dict[str, str] = self.manifest["skipped"]
        return skipped

    @property
    def class_names(self) -> Optional[List[str]]:
        """The model's class names, when the run was given them."""
        names: Optional[List[str]] = self.manifest.get("class_names")
        return names

    @property
    def ids(self) -> List[str]:
        """Every example's id, in corpus order."""
        if self._ids is None:
            self._ids = list(storage.read_json(self.directory / storage.IDS)["ids"])
        return self._ids

    def _column(self, name: str) -> Tensor:
        if not self._index:
            self._index = storage.read_tensors(self.directory / storage.INDEX)
        return self._index[name]

    @property
    def predictions(self) -> Tensor:
        """:math:`(N,)` the predicted class of every example."""
        return self._column("predicted")

    @property
    def targets(self) -> Tensor:
        """:math:`(N,)` the class every example's scores explain."""
        return self._column("target")

    @property
    def labels(self) -> Tensor:
        """:math:`(N,)` the gold labels (-1 where none was given)."""
        return self._column("label")

    @property
    def probabilities(self) -> Tensor:
        """:math:`(N,)` the probability of the predicted class."""
        return self._column("probability")

    @property
    def opened_shards(self) -> List[str]:
        """The shard files read so far, in the order they were opened."""
        return [self.manifest["shards"][k]["file"] for k in self._shards]

    def locate(self, index: int) -> Tuple[int, int]:
        """``(shard, row)`` of example ``index`` (negative counts from the end).

        Raises:
            IndexError: for an index out of range.
        """
        if not -len(self) <= index < len(self):
            raise IndexError(f"Example {index} is out of range for {len(self)} examples")
        index %= len(self)
        shard = bisect.bisect_right(self._starts, index) - 1
        return shard, index - self._starts[shard]

    def _shard(self, shard: int) -> storage.ShardFile:
        if shard not in self._shards:
            entry = self.manifest["shards"][shard]
            self._shards[shard] = storage.ShardFile(self.directory / entry["file"], entry["sha256"])
        return self._shards[shard]

    def _tensor(self, shard: int, name: str) -> Tensor:
        key = (shard, name)
        if key not in self._tensors:
            self._tensors[key] = self._shard(shard).tensor(name)
            while len(self._tensors) > _KEPT:
                self._tensors.popitem(last=False)
        self._tensors.move_to_end(key)
        return self._tensors[key]

    def tokens(self, index: int) -> List[str]:
        """The tokens of example ``index`` (words, or subwords for a run per subword)."""
        shard, row = self.locate(index)
        return list(self._shard(shard).field("tokens")[row])

    def example_hash(self, index: int) -> str:
        """The content hash of example ``index`` (its id, text or words, and label; see
        :meth:`~captum_text_ext.corpus.source.CorpusItem.content_hash`)."""
        shard, row = self.locate(index)
        return str(self._shard(shard).field("hashes")[row])

    def scores(self, method: str) -> "MethodScores":
        """The per-token scores of ``method``: a sequence of 1-D float32 tensors, one per example, read lazily.

        Raises:
            KeyError: for a method the run did not compute.
        """
        if method not in self.methods:
            raise KeyError(f"The run computed {self.methods}, not {method!r}")
        return MethodScores(self, method)

    def _scores(self, method: str, index: int) -> Tensor:
        shard, row = self.locate(index)
        offsets = self._tensor(shard, "offsets")
        flat = self._tensor(shard, f"scores.{method}")
        # a copy: the shard's tensor maps the file, which a later run may replace
        return flat[int(offsets[row]) : int(offsets[row + 1])].to(torch.float32, copy=True)


class MethodScores(Sequence[Tensor]):
    """One method's scores, example by example (:meth:`Attributions.scores`)."""

    def __init__(self, attributions: Attributions, method: str) -> None:
        self._attributions = attributions
        self.method = method

    def __len__(self) -> int:
        return len(self._attributions)

    @overload
    def __getitem__(self, index: int) -> Tensor: ...

    @overload
    def __getitem__(self, index: slice) -> List[Tensor]: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[Tensor, List[Tensor]]:
        if isinstance(index, slice):
            return [self._attributions._scores(self.method, i) for i in range(len(self))[index]]
        return self._attributions._scores(self.method, index)

    def __iter__(self) -> Iterator[Tensor]:
        return (self._attributions._scores(self.method, i) for i in range(len(self)))


def load_attributions(directory: PathLike) -> Attributions:
    """The run in ``directory``, read lazily (module docstring).

    Raises:
        FileNotFoundError: when ``directory`` holds no manifest.
        ValueError: for a manifest of another format or version, or a run that is not complete (resume it).
    """
    directory = Path(directory)
    path = directory / storage.MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{directory} holds no corpus run ({storage.MANIFEST} is missing)")
    manifest = storage.read_json(path)
    if manifest.get("format") != storage.FORMAT or manifest.get("format_version") != storage.FORMAT_VERSION:
        raise ValueError(f"{path} is not a {storage.FORMAT} manifest of version {storage.FORMAT_VERSION}")
    if not manifest.get("complete"):
        raise ValueError(f"The run in {directory} is not complete; resume it (captum-text-ext attribute ... --resume) "
                         "to finish it")
    return Attributions(directory, manifest)
