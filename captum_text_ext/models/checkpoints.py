"""Saving and loading trained reference models as single, safely loadable files.

A checkpoint is one file written by :func:`torch.save` holding only plain data: a dict with the format marker, the
architecture name and constructor ``config`` (see :mod:`captum_text_ext.models.registry`), the ``state_dict``, the
vocabulary as :meth:`~captum_text_ext.datasets.vocab.Vocabulary.to_dict` (a transformer's WordPiece tokenizer as
:meth:`~captum_text_ext.datasets.wordpiece.WordPieceTokenizer.to_dict`: its JSON) and JSON-like metadata. It is read
back with ``torch.load(..., weights_only=True)`` only, so a file cannot run code when loaded.

The stored ``config`` is not trusted either: :func:`load_checkpoint` builds the model under a budget of the
``state_dict``'s tensors and elements. Each tensor the constructor asks torch's factories for (``torch.empty``, which
every layer uses, ``zeros``, ``ones``, …) is first sized on the ``meta`` device, where that costs no memory, and the
build stops before the allocation that would exceed the budget; the shapes built must then equal the stored ones.
So loading never allocates beyond the size of the weights in the file: a config claiming a vocabulary of
:math:`10^9` words, or a million layers, over a few stored weights is refused at once.

A checkpoint's file hash (``sha256``) covers its metadata too (the training wall time among them), so two runs that
trained identical weights write files of different hashes. :func:`weights_sha256` hashes the weights alone, in a
canonical order; results cite both (:func:`record_checkpoint`).

Trained checkpoints are cached in :func:`default_cache_dir`: ``$CAPTUM_TEXT_EXT_CACHE`` when set, else
``~/.cache/captum_text_ext/models``. This is separate from the data directory (``$CAPTUM_TEXT_EXT_DATA``), which holds
only datasets.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from captum_text_ext.datasets.vocab import Vocabulary
from captum_text_ext.datasets.wordpiece import FORMAT as WORDPIECE_FORMAT
from captum_text_ext.datasets.wordpiece import WordPieceTokenizer
from captum_text_ext.models.registry import architecture_name, build_model
from captum_text_ext.provenance import RunRecorder

__all__ = [
    "CACHE_ENV_VAR",
    "BUILD_SLACK",
    "DEFAULT_CACHE_DIR",
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "default_cache_dir",
    "checkpoint_weights_sha256",
    "load_checkpoint",
    "record_checkpoint",
    "save_checkpoint",
    "weights_sha256",
]

FORMAT = "captum_text_ext.checkpoint"
"""The format marker every checkpoint holds under ``"format"``."""
FORMAT_VERSION = 1
"""The version of the checkpoint layout; :func:`load_checkpoint` refuses any other."""
CACHE_ENV_VAR = "CAPTUM_TEXT_EXT_CACHE"
"""The environment variable naming the model cache directory."""
DEFAULT_CACHE_DIR = Path("~/.cache/captum_text_ext/models")
"""The model cache directory when ``$CAPTUM_TEXT_EXT_CACHE`` is unset."""

PathLike = Union[str, "os.PathLike[str]"]
TokenVocabulary = Union[Vocabulary, WordPieceTokenizer]
"""What maps a model's token ids to text: a word vocabulary, or a transformer's WordPiece tokenizer."""
_KEYS = ("format", "format_version", "architecture", "config", "state_dict", "vocabulary", "metadata")
_SCALARS = (type(None), bool, int, float, str)


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        model: the rebuilt model with the stored weights, in eval mode.
        vocabulary: the vocabulary the model was trained with (a
            :class:`~captum_text_ext.datasets.wordpiece.WordPieceTokenizer` for a transformer).
        architecture: the model's :data:`~captum_text_ext.models.registry.ARCHITECTURES` name.
        config: the model's constructor arguments.
        metadata: what the writer stored (JSON-like plain values).
        sha256: the hex SHA-256 of the file's bytes.
        weights_sha256: the hex SHA-256 of the stored weights alone (:func:`weights_sha256` of the ``state_dict``).
    """

    model: nn.Module
    vocabulary: TokenVocabulary
    architecture: str
    config: Dict[str, Any]
    metadata: Dict[str, Any]
    sha256: str
    weights_sha256: str

    @property
    def word_vocabulary(self) -> Vocabulary:
        """The word-level vocabulary.

        Raises:
            TypeError: for a checkpoint whose model reads WordPiece subwords (a transformer).
        """
        if not isinstance(self.vocabulary, Vocabulary):
            raise TypeError(
                f"Expected a checkpoint with a word vocabulary, but this {self.architecture} model reads "
                f"{type(self.vocabulary).__name__} subwords"
            )
        return self.vocabulary


def default_cache_dir() -> Path:
    """Where trained checkpoints are cached: ``$CAPTUM_TEXT_EXT_CACHE`` when set, else
    ``~/.cache/captum_text_ext/models``. The directory is not created.

    Examples:
        >>> from unittest import mock
        >>> with mock.patch.dict("os.environ", {"CAPTUM_TEXT_EXT_CACHE": "/srv/models"}):
        ...     str(default_cache_dir())
        '/srv/models'
    """
    value = os.environ.get(CACHE_ENV_VAR)
    return Path(value).expanduser() if value else DEFAULT_CACHE_DIR.expanduser()


def save_checkpoint(
    path: PathLike, model: nn.Module, vocabulary: TokenVocabulary, metadata: Mapping[str, Any]
) -> str:
    """Write ``model``, its vocabulary and metadata to one file (parent directories are created; the file is
    replaced atomically).

    Args:
        path: the file to write.
        model: a model of a registered architecture (:func:`~captum_text_ext.models.registry.architecture_name`).
        vocabulary: the vocabulary (or WordPiece tokenizer) its token ids come from.
        metadata: JSON-like plain values (``dict`` with ``str`` keys, ``list``, ``str``, ``int``, ``float``,
            ``bool``, ``None``), e.g. the training data, seed and dev accuracy.

    Returns:
        The hex SHA-256 of the written file.

    Raises:
        TypeError: when the model's class is not registered.
        ValueError: when ``metadata`` holds anything but plain values; the message names the entry.

    Examples:
        >>> import tempfile
        >>> from captum_text_ext.models import EmbeddingCNN
        >>> model = EmbeddingCNN(vocab_size=4, num_classes=2, embedding_dim=3, num_filters=2)
        >>> vocab = Vocabulary(["<pad>", "<unk>", "good", "bad"])
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     sha256 = save_checkpoint(f"{tmp}/model.pt", model, vocab, {"dev_accuracy": 0.5})
        ...     loaded = load_checkpoint(f"{tmp}/model.pt")
        >>> loaded.architecture, loaded.metadata, loaded.sha256 == sha256, loaded.vocabulary == vocab
        ('embedding_cnn', {'dev_accuracy': 0.5}, True, True)
    """
    if not isinstance(metadata, Mapping):
        raise ValueError(f"Expected `metadata` to be a mapping, but got {type(metadata).__name__}")
    metadata = dict(metadata)
    _check_plain(metadata, "metadata")
    architecture = architecture_name(model)
    config = model.config
    _check_plain(config, "model.config")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": architecture,
        "config": config,
        "state_dict": model.state_dict(),
        "vocabulary": vocabulary.to_dict(),
        "metadata": metadata,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as handle:
        try:
            handle.write(data)
        except BaseException:
            os.unlink(handle.name)
            raise
    os.replace(handle.name, target)
    return hashlib.sha256(data).hexdigest()


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device, None] = "cpu") -> Checkpoint:
    """Read a file written by :func:`save_checkpoint` with ``torch.load(..., weights_only=True)`` and rebuild the
    model (eval mode; the stored dtype is kept and the tensors go to ``map_location``).

    The bytes are read once: they are hashed and then unpickled from memory, so ``sha256`` is the hash of exactly what
    was loaded. The stored config is checked against the stored weights before anything is allocated: the model is
    built only as far as it has no more tensors and elements than the ``state_dict`` (each tensor is sized on the
    ``meta`` device before it is allocated), its shapes must equal the stored ones, and it then takes the stored
    tensors.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: ``"<path> is not a captum_text_ext checkpoint: …"`` when ``weights_only`` loading refuses the file
            (for example a pickle that would run code: it is never run), when it holds no format marker, when its
            config describes a model bigger than its weights (``"its config describes a model with more than the
            …"``), or when its contents do not rebuild a model (a shape or name differs); chained from the original
            error.
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        payload = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as err:
        raise _not_a_checkpoint(path, f"torch.load refused it ({type(err).__name__})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise _not_a_checkpoint(path, f"it holds no {FORMAT!r} format marker")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: expected a captum_text_ext checkpoint of format_version {FORMAT_VERSION}, but got "
            f"{payload.get('format_version')!r}; it was written by another version of captum_text_ext"
        )
    missing = [key for key in _KEYS if key not in payload]
    if missing:
        raise _not_a_checkpoint(path, f"it lacks the entries {missing}")
    state_dict = payload["state_dict"]
    if not isinstance(state_dict, dict) or not all(isinstance(t, Tensor) for t in state_dict.values()):
        raise _not_a_checkpoint(path, "its state_dict is not a dict of tensors")
    try:
        model = _build_within(payload["architecture"], payload["config"], state_dict)
        model.load_state_dict(state_dict, assign=True)
        vocabulary = _vocabulary_from_dict(payload["vocabulary"])
    except _BeyondTheWeights as err:
        raise _not_a_checkpoint(path, str(err)) from err
    except (AttributeError, KeyError, OverflowError, RuntimeError, TypeError, ValueError) as err:
        raise _not_a_checkpoint(path, f"its contents do not rebuild a model ({err})") from err
    model.eval()
    return Checkpoint(
        model=model,
        vocabulary=vocabulary,
        architecture=payload["architecture"],
        config=payload["config"],
        metadata=payload["metadata"],
        sha256=hashlib.sha256(data).hexdigest(),
        weights_sha256=weights_sha256(state_dict),
    )


def weights_sha256(state_dict: Mapping[str, Tensor]) -> str:
    """The hex SHA-256 of a model's weights alone, independent of how they were saved.

    The tensors are hashed in the order of their sorted names; each contributes a header (its name, dtype and shape,
    as JSON) and then its bytes (row-major, the machine's byte order: little-endian on every platform torch ships
    for). Two state_dicts hash alike exactly when they hold the same names, dtypes, shapes and bit patterns,
    whatever their insertion order, device, strides or the metadata stored beside them.

    Examples:
        >>> a = {"weight": torch.ones(2, 2), "bias": torch.zeros(2)}
        >>> b = {"bias": torch.zeros(2), "weight": torch.ones(2, 2).t()}  # another order and stride, same weights
        >>> weights_sha256(a) == weights_sha256(b), weights_sha256(a) == weights_sha256({**a, "bias": torch.ones(2)})
        (True, False)
    """
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        header = json.dumps([name, str(tensor.dtype), list(tensor.shape)], ensure_ascii=True)
        digest.update(header.encode("ascii") + b"\n")
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def checkpoint_weights_sha256(path: PathLike) -> str:
    """:func:`weights_sha256` of the checkpoint file ``path`` (loaded as :func:`load_checkpoint` does, with its
    checks)."""
    return load_checkpoint(path).weights_sha256


def record_checkpoint(run: RunRecorder, label: str, path: PathLike) -> Tuple[str, str]:
    """Record the checkpoint ``path`` in ``run``'s provenance under ``label`` with both its file hash and the hash of
    its weights (:meth:`~captum_text_ext.provenance.RunRecorder.record_file`).

    Returns:
        ``(file sha256, weights sha256)``.

    Raises:
        ValueError: when ``path`` is not a checkpoint (:func:`load_checkpoint`), or when the file changed between
            loading it and hashing it.
    """
    checkpoint = load_checkpoint(path)
    digest = run.record_file(label, path, weights_sha256=checkpoint.weights_sha256)
    if digest != checkpoint.sha256:
        raise ValueError(f"{path} changed while it was being recorded (sha256 {checkpoint.sha256} then {digest})")
    return digest, checkpoint.weights_sha256


class _BeyondTheWeights(ValueError):
    """A checkpoint's config describes a model with more tensors or elements than its state_dict stores."""


_FACTORIES = frozenset(
    {
        torch.empty,
        torch.empty_strided,
        torch.zeros,
        torch.ones,
        torch.full,
        torch.rand,
        torch.randn,
        torch.randint,
        torch.arange,
        torch.eye,
        torch.tensor,
    }
)
"""The torch functions that create a tensor from sizes or data: what a model's constructor allocates with."""


class _WeightBudget(TorchFunctionMode):
    """Sizes every tensor a constructor asks a factory of :data:`_FACTORIES` for on the ``meta`` device first (no
    memory), and raises :class:`_BeyondTheWeights` instead of allocating it when the tensors made so far would
    outnumber, or hold more elements than, the stored weights.

    The count also stops a config whose layer counts alone (``num_layers=10**6``) would take long to build. Torch
    function modes are per thread: other threads are unaffected.
    """

    def __init__(self, tensors: int, elements: int) -> None:
        super().__init__()
        self.budget = (tensors, elements)
        self.created = [0, 0]

    def __torch_function__(
        self, func: Any, types: Any, args: Tuple[Any, ...] = (), kwargs: Optional[Dict[str, Any]] = None
    ) -> Any:
        kwargs = kwargs or {}
        if func in _FACTORIES:
            shape = func(*args, **{**kwargs, "device": "meta"}).shape
            self.created[0] += 1
            self.created[1] += shape.numel()
            if self.created[0] > self.budget[0] or self.created[1] > self.budget[1]:
                raise _BeyondTheWeights(
                    f"its config describes a model bigger than its state_dict's weights allow (at most "
                    f"{self.budget[0]} tensors of {self.budget[1]} elements, BUILD_SLACK included; building it "
                    f"reached {self.created[0]} tensors of {self.created[1]} elements, the last of shape "
                    f"{tuple(shape)}); refused before allocating it"
                )
        return func(*args, **kwargs)


BUILD_SLACK = (2, 64, 2**20)
"""A model's constructor may make up to ``2 ×`` the stored tensors ``+ 64`` and ``2 ×`` the stored elements ``+ 2**20``
(4 MiB of float32): room for the initialization temporaries, placeholders and non-persistent buffers a constructor
makes besides its weights (Hugging Face models make a few), and far below what a hostile config could ask for."""


def _build_within(architecture: str, config: Mapping[str, Any], state_dict: Mapping[str, Tensor]) -> nn.Module:
    """The model of ``architecture`` and ``config``, built only if it fits in (:data:`BUILD_SLACK` times) the tensors
    and elements of ``state_dict``.

    Raises:
        _BeyondTheWeights: before the first allocation that would exceed them.
    """
    factor, extra_tensors, extra_elements = BUILD_SLACK
    elements = sum(tensor.numel() for tensor in state_dict.values())
    with _WeightBudget(factor * len(state_dict) + extra_tensors, factor * elements + extra_elements):
        return build_model(architecture, config)


def _vocabulary_from_dict(data: Dict[str, Any]) -> TokenVocabulary:
    if data.get("format") == WORDPIECE_FORMAT:
        return WordPieceTokenizer.from_dict(data)
    return Vocabulary.from_dict(data)


def _not_a_checkpoint(path: Path, reason: str) -> ValueError:
    return ValueError(
        f"{path} is not a captum_text_ext checkpoint: {reason} (loaded with weights_only=True; only files written by "
        "captum_text_ext.models.save_checkpoint load, and nothing stored in a file is ever executed)"
    )


def _check_plain(value: Any, where: str) -> None:
    """Raise unless ``value`` is built from JSON-like plain values only (exact types: no subclasses such as numpy
    scalars, which ``weights_only`` loading refuses)."""
    if type(value) in _SCALARS:
        return
    if type(value) is list:
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]")
        return
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise ValueError(f"Expected str keys in `{where}`, but got the key {key!r} ({type(key).__name__})")
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise ValueError(
        f"Expected `{where}` to be a plain value (dict with str keys, list, str, int, float, bool or None), but got "
        f"{type(value).__name__}: {value!r}"
    )
