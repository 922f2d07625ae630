r"""Speed of :class:`~captum_text_ext.ContextualDecomposition`: ``captum-text-ext benchmark cd-speed``.

The work: every single-word CD score (:math:`\beta_{pos} - \beta_{neg}`, ``bias_product="reference"``, the authors'
setting) of the 2210 SST test sentences, with a one-layer LSTM classifier of ``lstm-sst2``'s shape (embedding 300,
hidden 168, 2 classes, the last state read by the output layer), float32, one intra-op thread. The weights are a
seeded random initialisation: the speed depends on the shapes, not on the values, and no checkpoint is needed. The
vocabulary is built from the test sentences (lowercased). Two methods in one run:

- ``ContextualDecomposition``: one call per batch of at most 64 sentences of similar length, all their words at once
  (``attribute`` with the default ``feature_mask``: each word its own phrase);
- ``NumPy loop``: :func:`numpy_lstm_cd`, the authors' per-phrase computation written in NumPy: for every word of every
  sentence, the recurrence over the whole sentence, step by step, carrying β and γ.

The loop is too slow to run on the whole set in a few minutes, so it runs on every :data:`LOOP_EVERY`-th sentence
(in file order, so their lengths follow the set's); throughputs are compared in *word scores per second* (one score
is one word of one sentence), the unit of work of both methods. Fairness on a loaded machine as in ``lrp-speed``: one
untimed warm-up, the timed work interleaved batch by batch (each batch runs both methods, the order alternating), the
whole set timed ``repeats`` times; each throughput is the median over the repetitions, the ratio the median of the
per-repetition ratios.

Before timing, a sanity check compares the loop with ``ContextualDecomposition`` in float64 on a few sentences: the
word scores must agree to :data:`SANITY_TOLERANCE`.

**The transformer row.** Every single-token score (:math:`\\beta_{pos} - \\beta_{neg}`, every WordPiece token,
``[CLS]`` and ``[SEP]`` included) of the first :data:`TRANSFORMER_SENTENCES` SST test sentences through the zoo's
``transformer-sst2`` (its checkpoint, float32, one thread), the decomposition starting at the embeddings' output:

- ``LayerContextualDecomposition``: one call per batch of at most :data:`TRANSFORMER_BATCH_SIZE` sentences of similar
  length, all their tokens at once (small batches keep the parts, phrases × sentences × tokens × 512 features, small:
  batches of 64 were several times slower per score);
- ``CD_Circuit loop``: :func:`~captum_text_ext.benchmarks.cdt_loop.comp_cd_scores`, the authors' per-encoding loop
  (each sentence padded to the model's ``max_length``, its unit phrases 64 at a time), on every sentence.

It is timed like the LSTM row (interleaved batch by batch, the same repeats) after its own float64 sanity check.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import shlex
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from captum_text_ext.attr import ContextualDecomposition, LayerContextualDecomposition
from captum_text_ext.benchmarks import long_documents
from captum_text_ext.benchmarks.cdt_loop import comp_cd_scores
from captum_text_ext.benchmarks.op_profile import op_profile, op_profile_lines
from captum_text_ext.benchmarks.sentences import SentenceBatch, Sentences, embed_sentences
from captum_text_ext.datasets import Vocabulary, load_sst, pad_sequences
from captum_text_ext.datasets._paths import PathLike, find_dataset_file
from captum_text_ext.datasets.wordpiece import WordPieceTokenizer
from captum_text_ext.models import LSTMClassifier, TransformerClassifier
from captum_text_ext.models.checkpoints import record_checkpoint
from captum_text_ext.models.zoo import checkpoint_path, load_zoo_model
from captum_text_ext.provenance import Provenance, RunRecorder, write_json, write_markdown

__all__ = [
    "EXPECTED_SENTENCES",
    "LSTMWeights",
    "SANITY_TOLERANCE",
    "TARGET_RATIO",
    "TRANSFORMER_BATCH_SIZE",
    "TRANSFORMER_MODEL",
    "TRANSFORMER_SENTENCES",
    "TRANSFORMER_TARGET_RATIO",
    "TokenBatch",
    "build_speed_model",
    "load_transformer",
    "numpy_lstm_cd",
    "run_cd_speed",
    "sanity_check",
    "token_batches",
    "transformer_sanity_check",
]

EXPECTED_SENTENCES = 2210
"""Sentences of the SST test split."""
EMBEDDING_DIM = 300
"""``lstm-sst2``'s embedding size."""
HIDDEN_SIZE = 168
"""``lstm-sst2``'s hidden size."""
TARGET_RATIO = 50.0
"""ContextualDecomposition must score at least this many times as many words per second as the NumPy loop."""
SANITY_TOLERANCE = 1e-8
"""Largest float64 difference between the NumPy loop and ContextualDecomposition, relative to the largest score."""
SANITY_SENTENCES = 4
"""Sentences of the float64 sanity check."""
LOOP_EVERY = 5
"""The NumPy loop runs on every this-many-th sentence."""
REPEATS = 3
"""Timed passes over the test set."""
SEED = 0
"""Seed of the random initialisation."""
METHODS = ("ContextualDecomposition", "NumPy loop")
"""The timed methods."""
POSITIVE, NEGATIVE = 1, 0
"""The classes of the score :math:`\\beta_{pos} - \\beta_{neg}`."""
TRANSFORMER_MODEL = "transformer-sst2"
"""The zoo model of the transformer row."""
TRANSFORMER_SENTENCES = 200
"""The transformer row scores the first this-many SST test sentences."""
TRANSFORMER_BATCH_SIZE = 8
"""The most sentences per LayerContextualDecomposition call in the transformer row."""
TRANSFORMER_TARGET_RATIO = 10.0
"""LayerContextualDecomposition must score at least this many times as many tokens per second as CD_Circuit's loop."""
TRANSFORMER_METHODS = ("LayerContextualDecomposition", "CD_Circuit loop")
"""The timed methods of the transformer row."""


@dataclasses.dataclass(frozen=True)
class LSTMWeights:
    r"""The weights of a one-layer unidirectional LSTM classifier reading its last state, as NumPy arrays.

    Attributes:
        w_ih: :math:`(4H, E)`, gate rows in PyTorch's order i, f, g, o.
        w_hh: :math:`(4H, H)`.
        bias: :math:`(4H,)` (``b_ih + b_hh``).
        w_out: :math:`(C, H)` the output layer.
    """

    w_ih: np.ndarray
    w_hh: np.ndarray
    bias: np.ndarray
    w_out: np.ndarray

    @classmethod
    def from_model(cls, model: nn.Module) -> "LSTMWeights":
        """Read an :class:`~captum_text_ext.models.LSTMClassifier` with a one-layer unidirectional ``nn.LSTM`` (with
        biases) and ``pooling="last"``, in the model's dtype.

        Raises:
            ValueError: for any other model.
        """
        rnn = model.rnn if isinstance(model, LSTMClassifier) else None
        if (
            not isinstance(model, LSTMClassifier) or not isinstance(rnn, nn.LSTM) or rnn.num_layers != 1
            or rnn.bidirectional or rnn.proj_size or not rnn.bias or model.pooling != "last"
        ):
            raise ValueError(
                "Expected an LSTMClassifier with a one-layer unidirectional nn.LSTM (with biases) and pooling='last', "
                f"but got {type(model).__name__}"
            )

        def array(module: nn.Module, name: str) -> np.ndarray:
            values: np.ndarray = module.get_parameter(name).detach().cpu().numpy().copy()
            return values

        return cls(
            array(rnn, "weight_ih_l0"),
            array(rnn, "weight_hh_l0"),
            array(rnn, "bias_ih_l0") + array(rnn, "bias_hh_l0"),
            array(model.output, "weight"),
        )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1 / (1 + np.exp(-z))
    return out


def _split_three(p: np.ndarray, q: np.ndarray, b: np.ndarray, act: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bias-first two-player Shapley split of ``act(p + q + b)``: ``(L(p), L(q), act(b))``."""
    a_b, a_p, a_q, a_all = act(b), act(p + b), act(q + b), act(p + q + b)
    return 0.5 * (a_p - a_b + a_all - a_q), 0.5 * (a_q - a_b + a_all - a_p), a_b


def numpy_lstm_cd(weights: LSTMWeights, x: np.ndarray, start: int, stop: int) -> Tuple[np.ndarray, np.ndarray]:
    r"""CD of the phrase ``x[start : stop + 1]`` through a one-layer LSTM classifier, one step at a time (the
    benchmark's baseline, computed as in the authors' released code).

    Per step the gate pre-activations split into the phrase part :math:`P` and the rest :math:`Q`, each gate is
    linearized bias first, the cell and hidden states are split by the rules of
    :class:`~captum_text_ext.ContextualDecomposition`, and the bias-only product :math:`L(i_b) L(g_b)` goes to β at
    phrase positions before ``stop`` (``bias_product="reference"``). The output gate is the actual one.

    Args:
        weights: the classifier's weights.
        x: :math:`(T, E)` the sentence's embeddings (their dtype is the computation's).
        start, stop: the phrase's first and last position (inclusive).

    Returns:
        ``(relevant, irrelevant)``, each :math:`(C,)`: :math:`W_{out}\beta_T` and :math:`W_{out}\gamma_T`.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> model = LSTMClassifier(20, embedding_dim=4, hidden_size=3, num_classes=2, bidirectional=False).double()
        >>> x = model.embedding(torch.tensor([[2, 3, 4]])).detach()
        >>> cd = ContextualDecomposition(model.forward_embeddings, bias_product="reference")
        >>> ours = cd.decompose(x, torch.tensor([[False, True, False]]))[0][0].numpy()
        >>> loop = numpy_lstm_cd(LSTMWeights.from_model(model), x[0].numpy(), 1, 1)[0]
        >>> bool(np.abs(loop - ours).max() < 1e-12)
        True
    """
    hidden = weights.w_hh.shape[1]
    w_i, w_f, w_g, w_o = np.split(weights.w_ih, 4)
    u_i, u_f, u_g, u_o = np.split(weights.w_hh, 4)
    b_i, b_f, b_g, b_o = np.split(weights.bias, 4)
    rel_h, irrel_h, rel_c, irrel_c = (np.zeros(hidden, x.dtype) for _ in range(4))
    for t in range(x.shape[0]):
        rel_i, rel_f, rel_g = u_i @ rel_h, u_f @ rel_h, u_g @ rel_h
        irrel_i, irrel_f, irrel_g = u_i @ irrel_h, u_f @ irrel_h, u_g @ irrel_h
        if start <= t <= stop:
            rel_i, rel_f, rel_g = rel_i + w_i @ x[t], rel_f + w_f @ x[t], rel_g + w_g @ x[t]
        else:
            irrel_i, irrel_f, irrel_g = irrel_i + w_i @ x[t], irrel_f + w_f @ x[t], irrel_g + w_g @ x[t]
        i_p, i_q, i_b = _split_three(rel_i, irrel_i, b_i, _sigmoid)
        g_p, g_q, g_b = _split_three(rel_g, irrel_g, b_g, np.tanh)
        f_p, f_q, f_b = _split_three(rel_f, irrel_f, b_f, _sigmoid)
        new_rel_c = i_p * (g_p + g_b) + i_b * g_p + (f_p + f_b) * rel_c
        new_irrel_c = i_q * (g_p + g_q + g_b) + (i_p + i_b) * g_q + (f_p + f_q + f_b) * irrel_c + f_q * rel_c
        if start <= t < stop:
            new_rel_c = new_rel_c + i_b * g_b
        else:
            new_irrel_c = new_irrel_c + i_b * g_b
        o = _sigmoid(w_o @ x[t] + u_o @ (rel_h + irrel_h) + b_o)
        tanh_rel, tanh_irrel, tanh_all = np.tanh(new_rel_c), np.tanh(new_irrel_c), np.tanh(new_rel_c + new_irrel_c)
        rel_h = o * 0.5 * (tanh_rel + (tanh_all - tanh_irrel))
        irrel_h = o * 0.5 * (tanh_irrel + (tanh_all - tanh_rel))
        rel_c, irrel_c = new_rel_c, new_irrel_c
    return weights.w_out @ rel_h, weights.w_out @ irrel_h


def numpy_word_scores(weights: LSTMWeights, x: np.ndarray) -> np.ndarray:
    """:math:`(T,)` every word's score :math:`\\beta_{pos} - \\beta_{neg}` by :func:`numpy_lstm_cd`, word by word."""
    scores = np.empty(x.shape[0], x.dtype)
    for t in range(x.shape[0]):
        relevant = numpy_lstm_cd(weights, x, t, t)[0]
        scores[t] = relevant[POSITIVE] - relevant[NEGATIVE]
    return scores


def build_speed_model(vocabulary_size: int, embedding_dim: int = EMBEDDING_DIM, hidden_size: int = HIDDEN_SIZE,
                      seed: int = SEED) -> LSTMClassifier:
    """The benchmark's randomly initialised classifier (float32, evaluation mode)."""
    torch.manual_seed(seed)
    model = LSTMClassifier(vocabulary_size, embedding_dim=embedding_dim, hidden_size=hidden_size, num_classes=2,
                           bidirectional=False, pooling="last")
    return model.eval()


def _cd_word_scores(cd: ContextualDecomposition, batch: SentenceBatch) -> Tensor:
    scores: Tensor = cd.attribute(batch.embeddings, target=POSITIVE, contrast=NEGATIVE,
                                  additional_forward_args=(batch.lengths,))
    return scores


def sanity_check(model: LSTMClassifier, batch: SentenceBatch, sentences: int = SANITY_SENTENCES) -> float:
    """The largest difference between :func:`numpy_word_scores` and ``ContextualDecomposition`` in float64 on the first
    ``sentences`` of ``batch``, relative to the largest score (the model is copied; the original is untouched).

    Raises:
        RuntimeError: when it exceeds :data:`SANITY_TOLERANCE`.
    """
    double = copy.deepcopy(model).double().eval()
    weights = LSTMWeights.from_model(double)
    count = min(sentences, int(batch.lengths.numel()))
    embeddings = batch.embeddings[:count].double()
    head = SentenceBatch(batch.index[:count], embeddings, batch.lengths[:count])
    ours = _cd_word_scores(ContextualDecomposition(double.forward_embeddings, "reference"), head)
    loop = [numpy_word_scores(weights, embeddings[n, :length].numpy()) for n, length in enumerate(head.lengths.tolist())]
    return _agreement(loop, ours, head.lengths, METHODS)


def _agreement(loop: List[np.ndarray], ours: Tensor, lengths: Tensor, methods: Tuple[str, str]) -> float:
    """The largest difference between each sentence's loop scores and ours, relative to the largest score.

    Raises:
        RuntimeError: when it exceeds :data:`SANITY_TOLERANCE`.
    """
    worst, scale = 0.0, 0.0
    for n, (scores, length) in enumerate(zip(loop, lengths.tolist())):
        worst = max(worst, float(np.abs(scores - ours[n, :length].numpy()).max()))
        scale = max(scale, float(np.abs(scores).max()))
    error = worst / scale if scale > 0 else worst
    if error > SANITY_TOLERANCE:
        raise RuntimeError(f"The {methods[1]} and {methods[0]} disagree (relative difference {error:.1e}); the timing "
                           "would compare different computations")
    return error


@dataclasses.dataclass(frozen=True)
class TokenBatch:
    """Sentences of similar length as token ids.

    Attributes:
        index: :math:`(n,)` the sentences' positions in the set.
        token_ids: :math:`(n, T)` right-padded token ids.
        lengths: :math:`(n,)` their numbers of tokens.
    """

    index: Tensor
    token_ids: Tensor
    lengths: Tensor


def token_batches(token_ids: Sequence[Sequence[int]], pad_index: int,
                  batch_size: int = TRANSFORMER_BATCH_SIZE) -> List[TokenBatch]:
    """The sentences sorted by length (ties in the set's order), in batches of at most ``batch_size``."""
    lengths = torch.tensor([len(ids) for ids in token_ids], dtype=torch.long)
    order = torch.argsort(lengths, stable=True)
    batches = []
    for start in range(0, len(token_ids), batch_size):
        index = order[start : start + batch_size]
        ids, batch_lengths = pad_sequences([token_ids[i] for i in index.tolist()], pad_index)
        batches.append(TokenBatch(index, ids, batch_lengths))
    return batches


def load_transformer(
    run: RunRecorder, cache_dir: Optional[PathLike] = None
) -> Tuple[TransformerClassifier, WordPieceTokenizer]:
    """``transformer-sst2`` (evaluation mode) and its tokenizer from the cache, its checkpoint recorded in ``run``.

    Raises:
        FileNotFoundError: when it is not in the cache (the message gives the command that trains it).
        ValueError: when the checkpoint holds another model.
    """
    checkpoint = load_zoo_model(TRANSFORMER_MODEL, cache_dir, train_if_missing=False)
    record_checkpoint(run, f"{TRANSFORMER_MODEL} checkpoint", checkpoint_path(TRANSFORMER_MODEL, cache_dir))
    model, tokenizer = checkpoint.model, checkpoint.vocabulary
    if not isinstance(model, TransformerClassifier) or not isinstance(tokenizer, WordPieceTokenizer):
        raise ValueError(f"Expected {TRANSFORMER_MODEL} to hold a TransformerClassifier and its WordPiece tokenizer, "
                         f"but its checkpoint holds {type(model).__name__}")
    return model.eval(), tokenizer


def _token_scores(cd: LayerContextualDecomposition, batch: TokenBatch) -> Tensor:
    scores: Tensor = cd.attribute(batch.token_ids, target=POSITIVE, contrast=NEGATIVE,
                                  additional_forward_args=(batch.lengths,))
    return scores


def _loop_token_scores(model: TransformerClassifier, batch: TokenBatch, pad_index: int) -> List[np.ndarray]:
    """CD_Circuit's loop on each sentence of ``batch``, padded to the model's ``max_length``."""
    max_seq_len = int(model.hf_model.config.max_position_embeddings)
    return [
        comp_cd_scores(model.hf_model, ids[:length].tolist(), pad_index, max_seq_len, POSITIVE, NEGATIVE)
        for ids, length in zip(batch.token_ids, batch.lengths.tolist())
    ]


def transformer_sanity_check(
    model: TransformerClassifier, batch: TokenBatch, pad_index: int, sentences: int = SANITY_SENTENCES
) -> float:
    """The largest difference between CD_Circuit's loop and ``LayerContextualDecomposition`` in float64 on the first
    ``sentences`` of ``batch``, relative to the largest score (the model is copied; the original is untouched).

    Raises:
        RuntimeError: when it exceeds :data:`SANITY_TOLERANCE`.
    """
    double = copy.deepcopy(model).double().eval()
    count = min(sentences, int(batch.lengths.numel()))
    head = TokenBatch(batch.index[:count], batch.token_ids[:count], batch.lengths[:count])
    ours = _token_scores(LayerContextualDecomposition(double, double.embeddings), head)
    return _agreement(_loop_token_scores(double, head, pad_index), ours, head.lengths, TRANSFORMER_METHODS)


def run_cd_speed(
    out: PathLike,
    data_root: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
    command: Optional[str] = None,
    repeats: int = REPEATS,
    long_document_cases: Optional[Sequence[Sequence[int]]] = None,
) -> List[str]:
    """Time both methods and write ``cd_speed.md`` and ``cd_speed.json`` (with provenance) to ``out``; then every
    word score of a long document against a sentence batch, with contextual decomposition and LRP, each in a fresh
    process (:mod:`~captum_text_ext.benchmarks.long_documents`).

    Args:
        out: the results directory.
        data_root: the data directory holding ``sst/test.txt``.
        cache_dir: where ``transformer-sst2`` is cached (the LSTM row's model is randomly initialised).
        command: the command line to record (default: ``captum-text-ext benchmark cd-speed --out OUT``).
        repeats: timed passes over the test set.
        long_document_cases: ``(tokens, documents)`` of the long-document rows: the long document, and a batch
            (more than one document) as the reference; default :data:`~captum_text_ext.benchmarks.long_documents.CASES`.

    Returns:
        The summary lines the command prints (the same numbers as the files).

    Raises:
        FileNotFoundError: when the data or the ``transformer-sst2`` checkpoint is missing.
        ValueError: when the test set does not hold :data:`EXPECTED_SENTENCES` sentences, or ``repeats`` < 1.
        RuntimeError: when the sanity check fails.
    """
    if repeats < 1:
        raise ValueError(f"Expected `repeats` >= 1, but got {repeats}")
    out = Path(out)
    command = command or shlex.join(["captum-text-ext", "benchmark", "cd-speed", "--out", str(out)])
    with RunRecorder(command=command, torch_threads=1) as run:
        result = _measure(run, data_root, repeats)
        result["transformer"] = _measure_transformer(run, data_root, cache_dir, repeats)
        result["long_documents"] = {
            method: {"cases": cases, "verdict": long_documents.verdict(method, cases)}
            for method, cases in (
                (m, long_documents.measure(m, long_document_cases or long_documents.CASES)) for m in ("cd", "lrp")
            )
        }
    return _write(out, run.provenance, result)


def _load_sentences(run: RunRecorder, data_root: Optional[PathLike]) -> Tuple[LSTMClassifier, Sentences]:
    run.record_file("sst/test.txt", find_dataset_file("sst", "test.txt", data_root))
    trees = load_sst("test", data_root)
    if len(trees) != EXPECTED_SENTENCES:
        raise ValueError(f"Expected the SST test split to hold {EXPECTED_SENTENCES} sentences, but got {len(trees)}")
    tokens = [[token.lower() for token in tree.tokens] for tree in trees]
    vocabulary = Vocabulary.build(tokens)
    model = build_speed_model(len(vocabulary), EMBEDDING_DIM, HIDDEN_SIZE)
    ids = [vocabulary.encode(sentence) for sentence in tokens]
    return model, embed_sentences(model.embedding, ids, [tree.label for tree in trees], vocabulary.pad_index)


def _measure(run: RunRecorder, data_root: Optional[PathLike], repeats: int) -> Dict[str, Any]:
    model, sentences = _load_sentences(run, data_root)
    longest = max(sentences.batches, key=lambda b: int(b.lengths.max()))
    sanity = sanity_check(model, longest)
    cd = ContextualDecomposition(model.forward_embeddings, "reference")
    weights = LSTMWeights.from_model(model)

    def run_cd(batch: SentenceBatch) -> int:
        _cd_word_scores(cd, batch)
        return int(batch.lengths.sum())

    def run_loop(batch: SentenceBatch) -> int:
        embeddings = batch.embeddings.numpy()
        words = 0
        for n, (sentence, length) in enumerate(zip(batch.index.tolist(), batch.lengths.tolist())):
            if sentence % LOOP_EVERY == 0:
                numpy_word_scores(weights, embeddings[n, :length])
                words += length
        return words

    seconds, words = _interleaved({METHODS[0]: run_cd, METHODS[1]: run_loop}, sentences.batches, repeats)
    rates, ratios = _rates(seconds, words, METHODS)
    profile = op_profile({METHODS[0]: functools.partial(run_cd, longest)})
    loop_sentences = sum(1 for n in range(len(sentences)) if n % LOOP_EVERY == 0)
    return {
        "model": f"1-layer LSTM classifier (embedding {EMBEDDING_DIM}, hidden {HIDDEN_SIZE}, 2 classes, random "
                 f"initialisation, seed {SEED})",
        "bias_product": "reference",
        "sentences": len(sentences),
        "words": words[METHODS[0]],
        "loop_sentences": loop_sentences,
        "loop_words": words[METHODS[1]],
        "loop_every": LOOP_EVERY,
        "batches": len(sentences.batches),
        "batch_size_max": max(int(b.lengths.numel()) for b in sentences.batches),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "threads": 1,
        "repeats": repeats,
        "seconds": seconds,
        "words_per_second": {name: statistics.median(values) for name, values in rates.items()},
        "words_per_second_per_repeat": rates,
        "sentences_per_second": {
            METHODS[0]: len(sentences) / statistics.median(seconds[METHODS[0]]),
            METHODS[1]: loop_sentences / statistics.median(seconds[METHODS[1]]),
        },
        "ratio": statistics.median(ratios),
        "ratio_per_repeat": ratios,
        "target_ratio": TARGET_RATIO,
        "target_met": statistics.median(ratios) >= TARGET_RATIO,
        "sanity_relative_difference": sanity,
        "profile": {"sentences": int(longest.lengths.numel()), "steps": int(longest.lengths.max()),
                    "methods": profile},
    }


def _interleaved(
    timers: Dict[str, Callable[[Any], int]], batches: Sequence[Any], repeats: int
) -> Tuple[Dict[str, List[float]], Dict[str, int]]:
    """Each timer on every batch, ``repeats`` times, after an untimed warm-up on the first batch; the order of the
    two timers alternates batch by batch and pass by pass. Returns the seconds of each pass and the scores each timer
    computed in one pass."""
    names = list(timers)
    for timer in timers.values():
        timer(batches[0])
    seconds = {name: [0.0] * repeats for name in names}
    done = {name: 0 for name in names}
    for repeat in range(repeats):
        for number, batch in enumerate(batches):
            for name in names if (number + repeat) % 2 == 0 else names[::-1]:
                started = time.perf_counter()
                scores = timers[name](batch)
                seconds[name][repeat] += time.perf_counter() - started
                if repeat == 0:
                    done[name] += scores
    return seconds, done


def _rates(
    seconds: Dict[str, List[float]], done: Dict[str, int], methods: Tuple[str, str]
) -> Tuple[Dict[str, List[float]], List[float]]:
    """Each method's scores per second in each pass, and the first method's rate over the second's, per pass."""
    rates = {name: [done[name] / s for s in spent] for name, spent in seconds.items()}
    return rates, [first / second for first, second in zip(rates[methods[0]], rates[methods[1]])]


def _measure_transformer(
    run: RunRecorder, data_root: Optional[PathLike], cache_dir: Optional[PathLike], repeats: int
) -> Dict[str, Any]:
    model, tokenizer = load_transformer(run, cache_dir)
    trees = load_sst("test", data_root)[:TRANSFORMER_SENTENCES]
    encoded = tokenizer.encode_batch([tree.tokens for tree in trees])
    ids = [encoded.token_ids[n, :length].tolist() for n, length in enumerate(encoded.lengths.tolist())]
    batches = token_batches(ids, tokenizer.pad_index)
    sanity = transformer_sanity_check(model, max(batches, key=lambda b: int(b.lengths.max())), tokenizer.pad_index)
    cd = LayerContextualDecomposition(model, model.embeddings)

    def run_cd(batch: TokenBatch) -> int:
        _token_scores(cd, batch)
        return int(batch.lengths.sum())

    def run_loop(batch: TokenBatch) -> int:
        _loop_token_scores(model, batch, tokenizer.pad_index)
        return int(batch.lengths.sum())

    names = TRANSFORMER_METHODS
    seconds, tokens = _interleaved({names[0]: run_cd, names[1]: run_loop}, batches, repeats)
    rates, ratios = _rates(seconds, tokens, names)
    config = model.hf_model.config
    return {
        "model": f"{TRANSFORMER_MODEL} ({config.num_hidden_layers} layers, width {config.hidden_size}, "
                 f"{config.num_attention_heads} heads, feed-forward {config.intermediate_size})",
        "start": "the embeddings' output",
        "sentences": len(ids),
        "tokens": tokens[names[0]],
        "batches": len(batches),
        "batch_size_max": max(int(b.lengths.numel()) for b in batches),
        "max_seq_len": int(config.max_position_embeddings),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "threads": 1,
        "repeats": repeats,
        "seconds": seconds,
        "tokens_per_second": {name: statistics.median(values) for name, values in rates.items()},
        "tokens_per_second_per_repeat": rates,
        "ratio": statistics.median(ratios),
        "ratio_per_repeat": ratios,
        "target_ratio": TRANSFORMER_TARGET_RATIO,
        "target_met": statistics.median(ratios) >= TRANSFORMER_TARGET_RATIO,
        "sanity_relative_difference": sanity,
    }


def _transformer_lines(result: Dict[str, Any]) -> List[str]:
    rates, per_repeat = result["tokens_per_second"], result["tokens_per_second_per_repeat"]
    met = "met" if result["target_met"] else "NOT met"
    names = TRANSFORMER_METHODS
    return [
        "",
        "## Transformers (CD-T)",
        "",
        f"All single-token CD scores (β_pos − β_neg, every WordPiece token) of the first {result['sentences']} SST "
        f"test sentences ({result['tokens']} tokens) with {result['model']}, {result['dtype']}, one torch thread, "
        f"from {result['start']}. {names[0]} runs in {result['batches']} batches of at most "
        f"{result['batch_size_max']} sentences (sorted by length); {names[1]} is CD_Circuit's per-encoding loop "
        f"(Hsu et al., 2025; each sentence padded to {result['max_seq_len']} tokens, its unit phrases 64 at a time) "
        "with this package's rules, on every sentence. Timed as above.",
        "",
        "| method | token scores/s | per pass |",
        "|---|---|---|",
        *[f"| {name} | {rates[name]:.1f} | {' / '.join(f'{v:.1f}' for v in per_repeat[name])} |" for name in names],
        "",
        f"{names[0]} / {names[1]}: **{result['ratio']:.1f}×** (per pass: "
        f"{' / '.join(f'{r:.1f}' for r in result['ratio_per_repeat'])}); target ≥ {result['target_ratio']:g}×: {met}.",
        "",
        f"Sanity check (float64, {SANITY_SENTENCES} sentences of the longest batch): the two agree to a relative "
        f"difference of {result['sanity_relative_difference']:.1e}.",
    ]


def _long_document_verdict(method: str, verdict: Dict[str, Any]) -> str:
    memory = "met" if verdict["memory_met"] else "NOT met"
    text = f"peak RSS {verdict['peak_rss_mb']:.0f} MB (bar {long_documents.MEMORY_BAR_MB:.0f} MB: {memory})"
    if verdict["ratio_met"] is not None:
        ratio = "met" if verdict["ratio_met"] else "NOT met"
        text += (f", {verdict['ratio']:.2f}× the batch's time per (word × step) "
                 f"(bar {long_documents.RATIO_BAR:g}×: {ratio})")
    return text


def _long_document_lines(measured: Dict[str, Any]) -> List[str]:
    first = measured["cd"]["cases"]
    longest = max(first, key=lambda r: r["tokens"])
    batch = next(r for r in first if r["documents"] > 1)
    return [
        "",
        "## Long documents",
        "",
        f"Every single-word score of one document of {longest['tokens']} tokens against a batch of "
        f"{batch['documents']} sentences of {batch['tokens']} tokens: an LSTM with embedding "
        f"{long_documents.EMBEDDING_DIM} and hidden {long_documents.HIDDEN_SIZE} (head on the last hidden state, "
        "random weights, seeded random embeddings), float32, one torch thread, default settings (`phrases_per_pass=None`); "
        "each case in a fresh process, whose peak resident memory is reported. Exact CD needs each word's pass over "
        "the steps after it, so its unit of work is the (word score × time step); LRP's is the word score.",
        "",
        *long_documents.markdown_header(),
        *[row for method, result in measured.items() for row in long_documents.markdown_rows(method, result["cases"])],
        "",
        *[f"{method.upper()}, long document: {_long_document_verdict(method, result['verdict'])}."
          for method, result in measured.items()],
    ]


def _write(out: Path, provenance: Provenance, result: Dict[str, Any]) -> List[str]:
    rates, per_repeat = result["words_per_second"], result["words_per_second_per_repeat"]
    per_sentence = result["sentences_per_second"]
    met = "met" if result["target_met"] else "NOT met"
    ratio = result["ratio"]
    lines = [
        "# ContextualDecomposition speed",
        "",
        "All single-word CD scores (β_pos − β_neg, `bias_product=\"reference\"`) of the "
        f"{result['sentences']} SST test sentences ({result['words']} words) with a {result['model']}, "
        f"{result['dtype']}, one torch thread. "
        f"ContextualDecomposition runs on all sentences in {result['batches']} batches of at most "
        f"{result['batch_size_max']} (sorted by length); the per-phrase NumPy loop on every {result['loop_every']}th "
        f"sentence ({result['loop_sentences']} sentences, {result['loop_words']} words). Throughput is in word scores "
        f"per second, the median of {result['repeats']} timed passes interleaved batch by batch; the ratio is the "
        "median of the per-pass ratios.",
        "",
        "| method | word scores/s | per pass | sentences/s |",
        "|---|---|---|---|",
        *[
            f"| {name} | {rates[name]:.1f} | {' / '.join(f'{v:.1f}' for v in per_repeat[name])} | "
            f"{per_sentence[name]:.2f} |"
            for name in METHODS
        ],
        "",
        f"ContextualDecomposition / NumPy loop: **{ratio:.1f}×** (per pass: "
        f"{' / '.join(f'{r:.1f}' for r in result['ratio_per_repeat'])}); target ≥ {result['target_ratio']:g}×: {met}.",
        "",
        f"Sanity check (float64, {SANITY_SENTENCES} sentences of the longest batch): the NumPy loop and "
        f"ContextualDecomposition agree to a relative difference of {result['sanity_relative_difference']:.1e}.",
        "",
        *op_profile_lines(result["profile"]["methods"], f"the batch of the longest sentences, "
                          f"{result['profile']['sentences']} sentences of at most {result['profile']['steps']} words, "
                          "one thread"),
        *_transformer_lines(result["transformer"]),
        *_long_document_lines(result["long_documents"]),
    ]
    write_markdown(out / "cd_speed.md", provenance, "\n".join(lines))
    write_json(out / "cd_speed.json", provenance, result)
    summary = [f"cd-speed: {name}: {rates[name]:.1f} word scores/s ({per_sentence[name]:.2f} sentences/s)"
               for name in METHODS]
    summary.append(f"cd-speed: ContextualDecomposition / NumPy loop = {ratio:.1f} (target >= "
                   f"{result['target_ratio']:g}: {met})")
    summary.append(f"cd-speed: sanity check (float64): relative difference {result['sanity_relative_difference']:.1e}")
    transformer = result["transformer"]
    transformer_met = "met" if transformer["target_met"] else "NOT met"
    summary += [f"cd-speed: {name}: {transformer['tokens_per_second'][name]:.1f} token scores/s ({TRANSFORMER_MODEL})"
                for name in TRANSFORMER_METHODS]
    summary.append(f"cd-speed: {' / '.join(TRANSFORMER_METHODS)} = {transformer['ratio']:.1f} (target >= "
                   f"{transformer['target_ratio']:g}: {transformer_met}); sanity check (float64): relative difference "
                   f"{transformer['sanity_relative_difference']:.1e}")
    for method, measured in result["long_documents"].items():
        summary.append(f"cd-speed: long document, {method}: {_long_document_verdict(method, measured['verdict'])}")
    summary.append(f"wrote {out / 'cd_speed.md'}, {out / 'cd_speed.json'}")
    return summary
