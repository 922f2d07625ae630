import hashlib
import math
import os
import pathlib
import pickle
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from _transformer_models import require_extra

from captum_text_ext.datasets.vocab import Vocabulary
from captum_text_ext.datasets.wordpiece import WordPieceTokenizer
from captum_text_ext.models import (
    ARCHITECTURES,
    Checkpoint,
    LSTMClassifier,
    build_model,
    default_cache_dir,
    load_checkpoint,
    record_checkpoint,
    save_checkpoint,
    weights_sha256,
)
from captum_text_ext.models.checkpoints import BUILD_SLACK
from captum_text_ext.provenance import RunRecorder

VOCAB = Vocabulary(["<pad>", "<unk>", *(f"w{i}" for i in range(10))])
CONFIGS: Dict[str, Dict[str, Any]] = {
    "lstm": dict(vocab_size=12, embedding_dim=4, hidden_size=3, num_classes=2, pooling="attention", num_layers=2),
    "textcnn": dict(vocab_size=12, embedding_dim=4, num_classes=2, channels=[3, 2], kernel_sizes=[2, 2]),
    "kimcnn": dict(vocab_size=12, embedding_dim=4, num_classes=2, num_filters=3, filter_sizes=[2, 3]),
    "bow_mlp": dict(vocab_size=12, num_classes=2, hidden_sizes=[4, 3]),
    "embedding_cnn": dict(vocab_size=12, num_classes=2, embedding_dim=4, num_filters=3),
    "transformer": dict(vocab_size=12, num_classes=2, hidden_size=8, num_heads=2, max_length=8),
}
METADATA = {"dataset": "sst2", "seed": 0, "dev_accuracy": 0.8125, "epochs": [1, 2], "extra": {"note": None}}
IDS, LENGTHS = torch.tensor([[2, 3, 4, 5], [6, 7, 0, 0]]), torch.tensor([4, 2])
REFUSED = "is not a captum_text_ext checkpoint"


def test_every_architecture_has_a_round_trip_config() -> None:
    assert set(CONFIGS) == set(ARCHITECTURES)


@pytest.mark.parametrize("architecture", sorted(CONFIGS))
def test_round_trip_gives_the_same_logits(architecture: str, tmp_path: Path) -> None:
    if architecture == "transformer":
        require_extra()
    torch.manual_seed(0)
    model = build_model(architecture, CONFIGS[architecture]).eval()
    path = tmp_path / "nested" / "model.pt"
    sha256 = save_checkpoint(path, model, VOCAB, METADATA)
    assert sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary file left behind
    loaded = load_checkpoint(path)
    assert isinstance(loaded, Checkpoint) and type(loaded.model) is type(model)
    assert not loaded.model.training
    assert torch.equal(loaded.model(IDS, LENGTHS), model(IDS, LENGTHS))
    assert (loaded.architecture, loaded.config, loaded.metadata) == (architecture, model.config, METADATA)
    assert loaded.vocabulary == VOCAB and loaded.sha256 == sha256


def test_the_weights_hash_ignores_the_metadata_and_sees_every_weight_dtype_and_shape(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = LSTMClassifier(12, 4, 3, 2).eval()
    first = save_checkpoint(tmp_path / "a.pt", model, VOCAB, {"train_seconds": 1.0})
    second = save_checkpoint(tmp_path / "b.pt", model, VOCAB, {"train_seconds": 2.0})
    a, b = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
    assert first != second and a.weights_sha256 == b.weights_sha256 == weights_sha256(model.state_dict())
    state = model.state_dict()
    reordered = {name: state[name] for name in reversed(list(state))}
    assert weights_sha256(reordered) == a.weights_sha256
    name = sorted(state)[0]
    changed = {**state, name: state[name].clone()}
    changed[name].view(-1)[0] = torch.nextafter(changed[name].view(-1)[0], torch.tensor(1.0))  # one bit
    assert weights_sha256(changed) != a.weights_sha256
    assert weights_sha256({**state, name: state[name].double()}) != a.weights_sha256  # dtype
    assert weights_sha256({**state, name: state[name].reshape(1, -1)}) != a.weights_sha256  # shape
    assert weights_sha256({**state, f"{name}.extra": torch.zeros(0)}) != a.weights_sha256  # names
    expected = hashlib.sha256()
    for key in sorted(state):
        expected.update(f'["{key}", "{state[key].dtype}", {list(state[key].shape)}]\n'.encode())
        expected.update(state[key].contiguous().numpy().tobytes())
    assert a.weights_sha256 == expected.hexdigest()


def test_record_checkpoint_cites_the_file_and_its_weights(tmp_path: Path) -> None:
    model = LSTMClassifier(12, 4, 3, 2).eval()
    path = tmp_path / "model.pt"
    digest = save_checkpoint(path, model, VOCAB, {})
    with RunRecorder(command="x") as run:
        recorded = record_checkpoint(run, "model", path)
    weights = weights_sha256(model.state_dict())
    assert recorded == (digest, weights)
    assert run.provenance.files["model"] == {"path": str(path), "sha256": digest, "weights_sha256": weights}
    (tmp_path / "not.pt").write_bytes(b"weights")
    with RunRecorder(command="x") as run, pytest.raises(ValueError, match=REFUSED):
        record_checkpoint(run, "model", tmp_path / "not.pt")


def test_round_trip_keeps_the_dtype(tmp_path: Path) -> None:
    model = LSTMClassifier(12, 4, 3, 2).double().eval()
    save_checkpoint(tmp_path / "model.pt", model, VOCAB, {})
    loaded = load_checkpoint(tmp_path / "model.pt").model
    assert loaded.output.weight.dtype == torch.float64
    assert torch.equal(loaded(IDS, LENGTHS), model(IDS, LENGTHS))


def test_a_transformer_round_trips_with_its_wordpiece_tokenizer(tmp_path: Path) -> None:
    require_extra()
    tokenizer = WordPieceTokenizer.train([["a", "good", "movie"], ["a", "bad", "film"]] * 3, vocab_size=40)
    torch.manual_seed(0)
    model = build_model("transformer", {**CONFIGS["transformer"], "vocab_size": len(tokenizer)}).double().eval()
    save_checkpoint(tmp_path / "model.pt", model, tokenizer, METADATA)
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    assert payload["vocabulary"] == tokenizer.to_dict()  # the tokenizer's JSON, as a plain string
    loaded = load_checkpoint(tmp_path / "model.pt")
    assert isinstance(loaded.vocabulary, WordPieceTokenizer) and loaded.vocabulary == tokenizer
    batch = loaded.vocabulary.encode_batch([["a", "goodish", "film"], ["bad"]])
    assert torch.equal(loaded.model(batch.token_ids, batch.lengths), model(batch.token_ids, batch.lengths))
    assert loaded.model.hf_model.bert.embeddings.word_embeddings.weight.dtype == torch.float64


class _TouchOnLoad:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Tuple[Callable[..., Any], Tuple[Any, ...]]:
        return pathlib.Path.touch, (self.marker,)


class _ShellOnLoad(_TouchOnLoad):
    def __reduce__(self) -> Tuple[Callable[..., Any], Tuple[Any, ...]]:
        return os.system, (f"touch '{self.marker}'",)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("payload", [_TouchOnLoad, _ShellOnLoad])
@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_file_with_a_code_payload_is_refused_and_never_run(
    payload: Callable[[Path], Any], writer: str, tmp_path: Path
) -> None:
    marker, path = tmp_path / "pwned", tmp_path / "model.pt"
    evil = {"format": "captum_text_ext.checkpoint", "format_version": 1, "config": payload(marker)}
    if writer == "pickle":
        path.write_bytes(pickle.dumps(evil))
    else:
        torch.save(evil, path)
    with pytest.raises(ValueError, match=f"{REFUSED}: torch.load refused it") as info:
        load_checkpoint(path)
    assert "weights_only=True" in str(info.value) and str(path) in str(info.value)
    assert info.value.__cause__ is not None
    assert not marker.exists()


@pytest.mark.parametrize(
    "content", [{"state_dict": {"w": torch.ones(2)}}, torch.ones(3), {"format": "other", "format_version": 1}]
)
def test_a_valid_torch_file_of_another_format_is_refused(content: Any, tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(ValueError, match=f"{REFUSED}: it holds no 'captum_text_ext.checkpoint' format marker"):
        load_checkpoint(path)


def test_garbage_and_damaged_checkpoints_are_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=REFUSED):
        load_checkpoint(tmp_path / "junk.pt")
    model = build_model("bow_mlp", CONFIGS["bow_mlp"])
    save_checkpoint(tmp_path / "good.pt", model, VOCAB, {})
    payload = torch.load(tmp_path / "good.pt", weights_only=True)
    torch.save({**payload, "format_version": 2}, tmp_path / "newer.pt")
    with pytest.raises(ValueError, match="format_version 1, but got 2"):
        load_checkpoint(tmp_path / "newer.pt")
    torch.save({**payload, "config": {**payload["config"], "hidden_sizes": [2, 3]}}, tmp_path / "mismatch.pt")
    shape_error = f"(?s){REFUSED}: its contents do not rebuild a model .*size mismatch for hidden_layers.0.weight"
    with pytest.raises(ValueError, match=shape_error) as info:
        load_checkpoint(tmp_path / "mismatch.pt")
    assert isinstance(info.value.__cause__, RuntimeError)
    torch.save({**payload, "state_dict": {"output.weight": "not a tensor"}}, tmp_path / "strings.pt")
    with pytest.raises(ValueError, match=f"{REFUSED}: its state_dict is not a dict of tensors"):
        load_checkpoint(tmp_path / "strings.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize(
    "metadata, where",
    [
        ({"sizes": (1, 2)}, r"`metadata\['sizes'\]` to be a plain value .* but got tuple"),
        ({"acc": np.float64(0.5)}, r"`metadata\['acc'\]` .* but got float64"),
        ({"runs": [{"when": object()}]}, r"`metadata\['runs'\]\[0\]\['when'\]` .* but got object"),
        ({"weights": torch.ones(2)}, r"`metadata\['weights'\]` .* but got Tensor"),
        ({"nested": {1: "a"}}, r"str keys in `metadata\['nested'\]`, but got the key 1 \(int\)"),
        (["not", "a", "mapping"], r"`metadata` to be a mapping, but got list"),
    ],
)
def test_metadata_must_be_plain_values(metadata: Any, where: str, tmp_path: Path) -> None:
    model = build_model("bow_mlp", CONFIGS["bow_mlp"])
    with pytest.raises(ValueError, match=where):
        save_checkpoint(tmp_path / "model.pt", model, VOCAB, metadata)
    assert not (tmp_path / "model.pt").exists()


def test_unregistered_models_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="registered architecture"):
        save_checkpoint(tmp_path / "model.pt", torch.nn.Linear(2, 2), VOCAB, {})


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CAPTUM_TEXT_EXT_CACHE", str(tmp_path / "models"))
    monkeypatch.setenv("CAPTUM_TEXT_EXT_DATA", str(tmp_path / "data"))
    assert default_cache_dir() == tmp_path / "models"
    monkeypatch.delenv("CAPTUM_TEXT_EXT_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "captum_text_ext" / "models"
    assert not (tmp_path / "models").exists()


class _NoLargeRealAllocation(TorchDispatchMode):
    """Fails the test when a tensor factory would allocate more than ``limit`` elements on a real (non-meta) device;
    it raises before the allocation, so a regression fails here instead of exhausting the machine's memory."""

    FACTORIES = (torch.ops.aten.empty, torch.ops.aten.empty_strided, torch.ops.aten.zeros, torch.ops.aten.ones)

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func.overloadpacket in self.FACTORIES and torch.device(kwargs.get("device") or "cpu").type != "meta":
            elements = math.prod(args[0])
            if elements > self.limit:
                raise AssertionError(f"{func} allocated {elements} elements on {kwargs.get('device') or 'cpu'}")
        return func(*args, **kwargs)


HOSTILE_CONFIGS = {
    "vocabulary-1e9": ("embedding_cnn", {"vocab_size": 10**9}),
    "hidden-1e6": ("lstm", {"hidden_size": 10**6}),
    "embedding-1e6": ("textcnn", {"embedding_dim": 10**6}),
    "layers-1e3": ("lstm", {"num_layers": 1000}),
    "hidden-layers-1e3": ("bow_mlp", {"hidden_sizes": [4] * 1000}),
}


@pytest.mark.parametrize("architecture, claim", HOSTILE_CONFIGS.values(), ids=HOSTILE_CONFIGS.keys())
def test_a_config_bigger_than_its_weights_is_refused_before_allocating(
    architecture: str, claim: Dict[str, Any], tmp_path: Path
) -> None:
    """A hostile config over small weights: refused with no real allocation beyond the stored weights' size (and the
    layer counts stopped after as many tensors as the file stores)."""
    save_checkpoint(tmp_path / "small.pt", build_model(architecture, CONFIGS[architecture]), VOCAB, {})
    payload = torch.load(tmp_path / "small.pt", weights_only=True)
    torch.save({**payload, "config": {**payload["config"], **claim}}, tmp_path / "hostile.pt")
    factor, extra_tensors, extra_elements = BUILD_SLACK
    tensors = factor * len(payload["state_dict"]) + extra_tensors
    elements = factor * sum(tensor.numel() for tensor in payload["state_dict"].values()) + extra_elements

    with _NoLargeRealAllocation(limit=elements), pytest.raises(ValueError) as info:
        load_checkpoint(tmp_path / "hostile.pt")

    assert str(info.value).startswith(
        f"{tmp_path / 'hostile.pt'} is not a captum_text_ext checkpoint: its config describes a model bigger than its "
        f"state_dict's weights allow (at most {tensors} tensors of {elements} elements, BUILD_SLACK included"
    )
    assert "refused before allocating it" in str(info.value)


def test_the_budget_leaves_no_state_behind(tmp_path: Path) -> None:
    """The budget is per call: afterwards tensors are created on the default device again, in this thread and in
    another one, also after a refused load."""
    save_checkpoint(tmp_path / "good.pt", build_model("lstm", CONFIGS["lstm"]), VOCAB, {})
    payload = torch.load(tmp_path / "good.pt", weights_only=True)
    torch.save({**payload, "config": {**payload["config"], "vocab_size": 10**9}}, tmp_path / "hostile.pt")
    load_checkpoint(tmp_path / "good.pt")
    with pytest.raises(ValueError):
        load_checkpoint(tmp_path / "hostile.pt")
    created_elsewhere: List[torch.device] = []
    thread = threading.Thread(target=lambda: created_elsewhere.append(torch.empty(1).device))
    thread.start()
    thread.join()
    assert torch.empty(1).device == created_elsewhere[0] == torch.device("cpu")
    assert torch.nn.Linear(2, 2).weight.device == torch.device("cpu")
