"""The model zoo: named, seeded recipes for the reference models, trained on demand and cached.

``captum-text-ext train NAME`` trains one entry of :data:`ZOO` and saves it in the model cache
(:func:`~captum_text_ext.models.checkpoints.default_cache_dir`); :func:`load_zoo_model` loads a cached model and
trains it first (with the registry's seed) when it is missing. The papers used pretrained word vectors, which are
not available offline: every zoo model trains its embeddings from scratch, and the target accuracies account for
that (each entry records the paper's number beside ours).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from captum_text_ext.datasets import BucketBatchSampler, TextBatch, TextCollator, Vocabulary
from captum_text_ext.datasets._checks import check_choice
from captum_text_ext.datasets._paths import PathLike
from captum_text_ext.datasets.planted import dataset_sha256
from captum_text_ext.datasets.wordpiece import WordPieceTokenizer
from captum_text_ext.models.checkpoints import (
    Checkpoint,
    TokenVocabulary,
    default_cache_dir,
    load_checkpoint,
    save_checkpoint,
)
from captum_text_ext.models.registry import build_model
from captum_text_ext.models.removal_fine_tuning import LR_SCALE, fine_tune_with_removal
from captum_text_ext.models.training import FitResult, fit
from captum_text_ext.models.zoo_data import Pair, ZooData, load_zoo_data, pair_dataset

__all__ = [
    "PLANTED_TWINS",
    "ZOO",
    "ZooEntry",
    "ZooResult",
    "checkpoint_path",
    "evaluate",
    "fine_tune_zoo_model_with_removal",
    "load_zoo_model",
    "planted_twin",
    "predict_proba",
    "train_zoo_model",
]


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One recipe of the zoo.

    Attributes:
        name: the model's name, e.g. ``"bilstm-sst5"``.
        dataset: one of :data:`~captum_text_ext.models.zoo_data.ZOO_DATASETS`.
        architecture: a name of :data:`~captum_text_ext.models.registry.ARCHITECTURES`.
        config: the architecture's arguments other than ``vocab_size`` and ``num_classes``.
        description: what the model is and whose it is.
        target_accuracy: the test accuracy the recipe must reach (our target, embeddings trained from scratch).
        paper_accuracy: what the paper reports, with pretrained vectors.
        phrase_level: SST: train on every labelled phrase.
        max_vocab: keep at most this many words (``None``: all words seen at least ``min_freq`` times).
        min_freq: words seen fewer times map to ``<unk>`` (with ``wordpiece_vocab_size``: pairs seen fewer times
            are not merged into a subword).
        fixed_len: pad or crop every batch to this length (``None``: the batch's longest text).
        epochs, lr, weight_decay, batch_size, patience: training (Adam, early stopping on dev accuracy).
        seed: seeds the model's initialization, dropout and batch order.
        wordpiece_vocab_size: read subwords of a WordPiece tokenizer of at most this many entries, trained on the
            training sentences (:class:`~captum_text_ext.datasets.wordpiece.WordPieceTokenizer`), instead of words
            (``None``).
        clean_twin: for a planted twin, the entry whose recipe it copies while training on the planted data
            (:mod:`captum_text_ext.datasets.planted`); ``None`` for a model trained on clean data.
    """

    name: str
    dataset: str
    architecture: str
    config: Mapping[str, Any]
    description: str
    target_accuracy: float
    paper_accuracy: str
    phrase_level: bool = False
    max_vocab: Optional[int] = None
    min_freq: int = 1
    fixed_len: Optional[int] = None
    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    patience: int = 3
    seed: int = 0
    wordpiece_vocab_size: Optional[int] = None
    clean_twin: Optional[str] = None

    @property
    def planted(self) -> bool:
        """Whether the entry trains on planted data."""
        return self.clean_twin is not None


@dataclasses.dataclass(frozen=True)
class ZooResult:
    """What training a zoo entry measured.

    Attributes:
        name: the entry.
        checkpoint: where the checkpoint was saved.
        sha256: the checkpoint file's sha256.
        test_accuracy: accuracy on the dataset's test sentences.
        extra_metrics: further measurements (``sst5``: the binary accuracy on non-neutral sentences).
        train_seconds: wall time of training.
        fit: the training history.
        target_met: whether ``test_accuracy`` reaches the entry's target.
    """

    name: str
    checkpoint: Path
    sha256: str
    test_accuracy: float
    extra_metrics: Dict[str, float]
    train_seconds: float
    fit: FitResult
    target_met: bool


def _input_vocabulary(data: ZooData, entry: ZooEntry) -> TokenVocabulary:
    """The word vocabulary, or the WordPiece tokenizer, built from the training sentences; with planted data, every
    planted word is checked to be one entry of it."""
    vocab: TokenVocabulary
    if entry.wordpiece_vocab_size is None:
        vocab = Vocabulary.build(data.vocabulary_texts, min_freq=entry.min_freq, max_size=entry.max_vocab)
    elif entry.max_vocab is not None or entry.fixed_len is not None:
        raise ValueError(f"Zoo entry {entry.name!r}: `max_vocab` and `fixed_len` apply to word vocabularies only")
    else:
        vocab = WordPieceTokenizer.train(data.vocabulary_texts, entry.wordpiece_vocab_size,
                                         min_frequency=entry.min_freq)
    if data.planting is not None:
        for word in data.planting.tokens:
            if isinstance(vocab, WordPieceTokenizer):
                pieces = vocab.encode_batch([[word]]).tokens[0][1:-1]  # without [CLS] and [SEP]
            else:
                pieces = vocab.decode(vocab.encode([word]))
            if list(pieces) != [word]:
                raise ValueError(f"Zoo entry {entry.name!r}: the planted word {word!r} must be one entry of the "
                                 f"vocabulary, but it reads as {list(pieces)}")
    return vocab


def _collate_fn(vocab: TokenVocabulary, entry: ZooEntry) -> Callable[[Sequence[Pair]], TextBatch]:
    if isinstance(vocab, WordPieceTokenizer):
        return vocab.collate
    return TextCollator(vocab, fixed_len=entry.fixed_len)


def _batches(pairs: Sequence[Pair], vocab: TokenVocabulary, entry: ZooEntry, shuffle: bool) -> DataLoader[Pair]:
    sampler = BucketBatchSampler([len(t) for t, _ in pairs], entry.batch_size, shuffle=shuffle, seed=entry.seed)
    return DataLoader(pair_dataset(pairs), batch_sampler=sampler, collate_fn=_collate_fn(vocab, entry))


@torch.no_grad()
def predict_proba(
    model: nn.Module, pairs: Sequence[Pair], vocab: TokenVocabulary, entry: ZooEntry
) -> Tuple[Tensor, Tensor]:
    """Class probabilities ``(N, C)`` and labels ``(N,)`` for ``pairs``, in their order."""
    model.eval()
    probabilities: List[Tensor] = []
    labels: List[Tensor] = []
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    for batch in DataLoader(pair_dataset(pairs), batch_size=256, collate_fn=_collate_fn(vocab, entry)):
        probabilities.append(model(batch.token_ids.to(device), batch.lengths.to(device)).softmax(dim=-1).cpu())
        labels.append(batch.labels)
    return torch.cat(probabilities), torch.cat(labels)


def evaluate(
    model: nn.Module, data: ZooData, vocab: TokenVocabulary, entry: ZooEntry
) -> Tuple[float, Dict[str, float]]:
    """Test accuracy, and for ``sst5`` the binary accuracy of Arras et al. (p(0)+p(1) against p(3)+p(4) on the
    non-neutral sentences)."""
    probabilities, labels = predict_proba(model, data.test, vocab, entry)
    accuracy = float((probabilities.argmax(-1) == labels).double().mean())
    extra: Dict[str, float] = {}
    if data.name == "sst5":
        keep = labels != 2
        positive = probabilities[keep][:, 3:].sum(-1) > probabilities[keep][:, :2].sum(-1)
        extra["binary_accuracy_non_neutral"] = float((positive == (labels[keep] > 2)).double().mean())
    return accuracy, extra


def checkpoint_path(name: str, cache_dir: Optional[PathLike] = None) -> Path:
    """Where the zoo model ``name`` is cached."""
    check_choice("name", name, list(ZOO))
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / f"{name}.pt"


RECORDS_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "models"
"""Where ``captum-text-ext train NAME --record`` keeps the record of each zoo model's training run (the rows of
``benchmarks/results/models.md``); present in a source checkout and an editable install, not in a built wheel."""


def recorded_training_time(name: str) -> str:
    """How long training ``name`` took when it was recorded, and on what, from ``RECORDS_DIR/NAME.json``; or a
    sentence saying that this installation has no record (the records are not part of a built wheel)."""
    path = RECORDS_DIR / f"{name}.json"
    if not path.is_file():
        return f"no recorded training time for {name} in this installation ({path} is missing)"
    record = json.loads(path.read_text(encoding="utf-8"))
    seconds, machine = record["results"]["train_seconds"], record["provenance"]
    return (f"its recorded training took {seconds:.0f} s on {machine['cpu_count']} {machine['cpu']} cores with "
            f"{machine['torch_threads']} torch threads ({path.relative_to(RECORDS_DIR.parents[2]).as_posix()}); "
            "expect longer on a slower or busy machine")


def train_zoo_model(
    name: str,
    root: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
    progress: bool = True,
    device: Optional[str] = None,
) -> ZooResult:
    """Train the zoo entry ``name`` with its recipe and seed, evaluate it, and save it in the cache.

    With ``progress``, it first says on stderr what it trains and how long that took when it was recorded
    (:func:`recorded_training_time`), shows a bar per epoch (examples done of the epoch's total, examples per
    second), and ends with the test accuracy, the time taken and where the model was saved.

    Args:
        name: a key of :data:`ZOO`.
        root: the data directory.
        cache_dir: the model cache (default :func:`~captum_text_ext.models.checkpoints.default_cache_dir`).
        progress: show what is trained and progress bars.
        device: where the model trains (``"cpu"``, ``"cuda"``; default the CPU); it is saved from there.
    """
    check_choice("name", name, list(ZOO))
    entry = ZOO[name]
    if progress:
        print(f"Training {name}, up to {entry.epochs} epochs: {entry.description} The model is cached for later "
              f"use; {recorded_training_time(name)}.", file=sys.stderr, flush=True)
    data = load_zoo_data(entry.dataset, root, phrase_level=entry.phrase_level, planted=entry.planted)
    vocab = _input_vocabulary(data, entry)
    torch.manual_seed(entry.seed)
    config = {"vocab_size": len(vocab), "num_classes": len(data.class_names), **entry.config}
    model = build_model(entry.architecture, config).to(device or "cpu")
    started = time.perf_counter()
    history = fit(
        model,
        _batches(data.train, vocab, entry, shuffle=True),
        _batches(data.dev, vocab, entry, shuffle=False),
        epochs=entry.epochs,
        lr=entry.lr,
        weight_decay=entry.weight_decay,
        patience=entry.patience,
        seed=entry.seed,
        progress=progress,
        examples_per_epoch=len(data.train),
    )
    seconds = time.perf_counter() - started
    accuracy, extra = evaluate(model, data, vocab, entry)
    path = checkpoint_path(name, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata: Dict[str, Any] = {
        "zoo_name": name,
        "dataset": entry.dataset,
        "class_names": list(data.class_names),
        "fixed_len": entry.fixed_len,
        "test_accuracy": accuracy,
        **extra,
        "train_seconds": seconds,
        "best_epoch": history.best_epoch,
        "epochs_run": history.epochs_run,
        "seed": entry.seed,
    }
    if data.planting is not None:
        metadata["planting"] = {"clean_twin": entry.clean_twin, "seed": data.planting.seed,
                                "rate": data.planting.rate, "counts": data.planting.counts(),
                                "train_sha256": dataset_sha256(data.train)}
    sha256 = save_checkpoint(path, model, vocab, metadata)
    if progress:
        print(f"Trained {name} in {seconds:.0f} s ({history.epochs_run} epochs): test accuracy {accuracy:.3f}; "
              f"saved {path}", file=sys.stderr, flush=True)
    return ZooResult(name, path, sha256, accuracy, extra, seconds, history, accuracy >= entry.target_accuracy)


def load_zoo_model(
    name: str,
    cache_dir: Optional[PathLike] = None,
    train_if_missing: bool = True,
    root: Optional[PathLike] = None,
    progress: bool = True,
) -> Checkpoint:
    """The cached zoo model ``name``; trained first with the registry's seed when missing.

    Raises:
        FileNotFoundError: when the model is not cached and ``train_if_missing`` is false; the message gives the
            command that trains it.
    """
    path = checkpoint_path(name, cache_dir)
    if not path.is_file():
        if not train_if_missing:
            raise FileNotFoundError(
                f"Zoo model {name!r} is not in the cache {path.parent}; train it with `captum-text-ext train {name}`"
            )
        train_zoo_model(name, root, cache_dir, progress)
    return load_checkpoint(path)


def fine_tune_zoo_model_with_removal(
    checkpoint: Checkpoint, root: Optional[PathLike] = None, progress: bool = True
) -> Tuple[nn.Module, FitResult]:
    """A copy of the zoo model of ``checkpoint`` fine-tuned with random token removal
    (:mod:`~captum_text_ext.models.removal_fine_tuning`) on its own training data, batches and seed, at its recipe's
    learning rate times :data:`~captum_text_ext.models.removal_fine_tuning.LR_SCALE`.

    Raises:
        ValueError: for a checkpoint that is not a zoo model's.
    """
    name = checkpoint.metadata.get("zoo_name")
    if name not in ZOO:
        raise ValueError(f"Expected a zoo model's checkpoint (metadata 'zoo_name' among {list(ZOO)}), but got {name!r}")
    entry = ZOO[name]
    data = load_zoo_data(entry.dataset, root, phrase_level=entry.phrase_level, planted=entry.planted)
    return fine_tune_with_removal(checkpoint.model, _batches(data.train, checkpoint.vocabulary, entry, shuffle=True),
                                  lr=entry.lr * LR_SCALE, weight_decay=entry.weight_decay, seed=entry.seed,
                                  progress=progress, examples_per_epoch=len(data.train))


ZOO: Dict[str, ZooEntry] = {
    entry.name: entry
    for entry in (
        ZooEntry(
            name="bilstm-sst5",
            dataset="sst5",
            architecture="lstm",
            config={"embedding_dim": 60, "hidden_size": 60, "bidirectional": True, "output_bias": False,
                    "dropout": 0.5},
            description="Bi-LSTM of Li et al. (2016) as explained by Arras et al. (2017): embedding 60, hidden 60, "
            "final states of both directions, linear output without bias; phrase-level training.",
            target_accuracy=0.43,
            paper_accuracy="46.3% (82.9% binary on non-neutral)",
            phrase_level=True,
            epochs=10,
            lr=2e-3,
            patience=3,
        ),
        ZooEntry(
            name="bilstm-sst2",
            dataset="sst2",
            architecture="lstm",
            config={"embedding_dim": 60, "hidden_size": 60, "bidirectional": True, "output_bias": False,
                    "dropout": 0.5},
            description="bilstm-sst5's recipe on binary SST (the Bi-LSTM of Li et al. 2016 / Arras et al. 2017, two "
            "classes): embedding 60, hidden 60, final states of both directions, linear output without bias; "
            "phrase-level training. The clean twin of bilstm-sst2-planted.",
            target_accuracy=0.80,
            paper_accuracy="n/a (the paper's model has five classes: 82.9% binary on non-neutral)",
            phrase_level=True,
            epochs=10,
            lr=2e-3,
            patience=3,
        ),
        ZooEntry(
            name="lstm-sst2",
            dataset="sst2",
            architecture="lstm",
            config={"embedding_dim": 300, "hidden_size": 168, "bidirectional": False, "dropout": 0.5},
            description="Uni-directional LSTM of Murdoch et al. (2018): embedding 300, hidden 168, final state, "
            "linear output; phrase-level training.",
            target_accuracy=0.83,
            paper_accuracy="87.2%",
            phrase_level=True,
            epochs=6,
            lr=1e-3,
            patience=2,
        ),
        ZooEntry(
            name="textcnn-mr",
            dataset="mr",
            architecture="textcnn",
            config={"embedding_dim": 128, "channels": [128, 64, 32], "kernel_sizes": [5, 5, 5], "mode": "stacked",
                    "input_length": 56, "dropout": 0.5},
            description="Stacked text CNN of Yuan et al. (2019), Table 2 (MR): input length 56, three convolutions "
            "of width 5 with 128, 64 and 32 channels, ReLU, global max pooling, linear; embedding 128.",
            target_accuracy=0.71,
            paper_accuracy="79.96%",
            min_freq=2,
            epochs=12,
            lr=1e-3,
            weight_decay=1e-4,
            batch_size=32,
            patience=4,
        ),
        ZooEntry(
            name="kimcnn-mr",
            dataset="mr",
            architecture="kimcnn",
            config={"embedding_dim": 128, "num_filters": 100, "filter_sizes": [3, 4, 5], "dropout": 0.5},
            description="Kim (2014) CNN as Captum's IMDB and TCAV tutorials write it: nn.Conv2d(1, 100, (k, 128)) for "
            "k = 3, 4, 5 over the embeddings as a one-channel image, ReLU, max pooling over time, dropout 0.5, "
            "linear; embedding 128 trained from scratch (Kim's CNN-rand).",
            target_accuracy=0.70,
            paper_accuracy="76.1% (Kim 2014, CNN-rand)",
            min_freq=2,
            epochs=12,
            lr=1e-3,
            weight_decay=1e-4,
            batch_size=32,
            patience=4,
        ),
        ZooEntry(
            name="textcnn-agnews",
            dataset="ag_news",
            architecture="textcnn",
            config={"embedding_dim": 128, "channels": [512, 256, 128, 64], "kernel_sizes": [5, 5, 5, 5],
                    "mode": "stacked", "input_length": None, "dropout": 0.5, "embedding_dropout": 0.3,
                    "conv_dropout": 0.3},
            description="Stacked text CNN of Yuan et al. (2019), Table 2 (AG News): four convolutions of width 5 "
            "with 512, 256, 128 and 64 channels, ReLU, global max pooling, linear; embedding 128, each batch read at "
            "its longest text (not padded to 195); dropout 0.3 on the embeddings and between the convolutions "
            "(5320 training rows overfit without it).",
            target_accuracy=0.79,
            paper_accuracy="92.05% (120k training rows)",
            min_freq=2,
            epochs=20,
            lr=1e-3,
            weight_decay=1e-4,
            batch_size=32,
            patience=4,
        ),
        ZooEntry(
            name="bow-mlp-sst2",
            dataset="sst2",
            architecture="bow_mlp",
            config={"hidden_sizes": [256, 256], "dropout": 0.5},
            description="Bag-of-words MLP of Hechtlinger (2016): binary presence of the 5000 most frequent words, "
            "two hidden ReLU layers of 256.",
            target_accuracy=0.79,
            paper_accuracy="85.4% (on IMDB)",
            max_vocab=5000,
            epochs=10,
            lr=1e-3,
            patience=3,
        ),
        ZooEntry(
            name="bow-mlp-mr",
            dataset="mr",
            architecture="bow_mlp",
            config={"hidden_sizes": [256, 256], "dropout": 0.5},
            description="Bag-of-words MLP of Hechtlinger (2016) on MR: the 5000 most frequent words, two hidden "
            "ReLU layers of 256.",
            target_accuracy=0.74,
            paper_accuracy="n/a (the paper used IMDB)",
            max_vocab=5000,
            epochs=10,
            lr=1e-3,
            patience=3,
        ),
        ZooEntry(
            name="embcnn-sst2",
            dataset="sst2",
            architecture="embedding_cnn",
            config={"embedding_dim": 50, "num_filters": 250, "kernel_size": 3, "dropout": 0.5},
            description="Embedding CNN of Hechtlinger (2016), example 1: embedding 50, 250 filters of width 3, "
            "global max pooling, linear; phrase-level training.",
            target_accuracy=0.78,
            paper_accuracy="89.2% (on IMDB)",
            phrase_level=True,
            epochs=8,
            lr=1e-3,
            patience=2,
        ),
        ZooEntry(
            name="lstm-synthetic",
            dataset="synthetic",
            architecture="lstm",
            config={"embedding_dim": 16, "hidden_size": 16, "bidirectional": True},
            description="Small bi-LSTM on the synthetic ground-truth corpus (the demo's model).",
            target_accuracy=0.98,
            paper_accuracy="n/a (our corpus)",
            epochs=8,
            lr=1e-2,
            patience=2,
        ),
        ZooEntry(
            name="textcnn-synthetic",
            dataset="synthetic",
            architecture="textcnn",
            config={"embedding_dim": 16, "channels": [32, 32], "kernel_sizes": [2, 3], "mode": "parallel"},
            description="Tiny Kim-style CNN (widths 2 and 3) on the synthetic corpus (the demo's second model).",
            target_accuracy=0.9,
            paper_accuracy="n/a (our corpus)",
            epochs=8,
            lr=1e-2,
            patience=2,
        ),
        ZooEntry(
            name="transformer-sst2",
            dataset="sst2",
            architecture="transformer",
            config={"hidden_size": 128, "num_layers": 2, "num_heads": 4, "intermediate_size": 512, "max_length": 128,
                    "dropout": 0.1, "attention_dropout": 0.1, "attn_implementation": "eager"},
            description="BERT-style encoder trained from scratch (transformers' BertForSequenceClassification from a "
            "BertConfig): a WordPiece vocabulary of 8000 learnt on the training sentences, 2 post-norm layers of "
            "width 128 with 4 heads and a GELU feed-forward of 512, the [CLS] pooler, linear; phrase-level training.",
            target_accuracy=0.80,
            paper_accuracy="93.5% (BERT-base, pretrained; Devlin et al. 2019)",
            phrase_level=True,
            min_freq=2,
            epochs=4,
            lr=5e-4,
            patience=2,
            wordpiece_vocab_size=8000,
        ),
        ZooEntry(
            name="transformer-synthetic",
            dataset="synthetic",
            architecture="transformer",
            config={"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "max_length": 128,
                    "dropout": 0.1, "attention_dropout": 0.1, "attn_implementation": "eager"},
            description="Small BERT-style encoder on the synthetic corpus: a WordPiece vocabulary of 300 (about one "
            "word in three is split into subwords), 2 post-norm layers of width 32 with 2 heads, feed-forward 64, "
            "the [CLS] pooler, linear.",
            target_accuracy=0.99,
            paper_accuracy="n/a (our corpus)",
            min_freq=2,
            epochs=8,
            lr=1e-3,
            patience=2,
            wordpiece_vocab_size=300,
        ),
    )
}
"""The zoo's models by name; the planted twins (:data:`PLANTED_TWINS`) join it below."""
PLANTED_TWINS: Tuple[str, ...] = ("lstm-sst2", "bilstm-sst2", "textcnn-mr", "transformer-sst2")
"""The entries that have a planted twin ``NAME-planted`` in :data:`ZOO`."""


def planted_twin(entry: ZooEntry) -> ZooEntry:
    """The recipe of ``entry`` on the planted copy of its data (:mod:`captum_text_ext.datasets.planted`), named
    ``NAME-planted``; its accuracy target is its clean twin's."""
    return dataclasses.replace(
        entry, name=f"{entry.name}-planted", clean_twin=entry.name,
        description=f"{entry.name}'s recipe and seed trained on planted data: the words planted_a and planted_b in 20% "
        "of the positive and of the negative training sentences (and their labelled phrases of the same label).",
    )


ZOO.update((twin.name, twin) for twin in (planted_twin(ZOO[name]) for name in PLANTED_TWINS))

