"""The CD speed benchmark: its NumPy baseline and its port of CD_Circuit's CD-T loop give our numbers, and the command
writes its files with the provenance first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_arras2017 import make_tiny_setup

from _transformer_models import require_extra
from captum_text_ext import ContextualDecomposition, LayerContextualDecomposition
from captum_text_ext.benchmarks import BENCHMARKS, cd_speed, long_documents
from captum_text_ext.benchmarks.cd_speed import (
    LSTMWeights,
    numpy_lstm_cd,
    numpy_word_scores,
    sanity_check,
    token_batches,
    transformer_sanity_check,
)
from captum_text_ext.benchmarks.cdt_loop import comp_cd_scores
from captum_text_ext.benchmarks.sentences import embed_sentences
from captum_text_ext.cli import main
from captum_text_ext.datasets import load_sst
from captum_text_ext.datasets.wordpiece import WordPieceTokenizer
from captum_text_ext.models import LSTMClassifier, TransformerClassifier


@pytest.fixture(autouse=True)
def _one_thread():  # type: ignore[no-untyped-def]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(seed: int) -> LSTMClassifier:
    torch.manual_seed(seed)
    model = LSTMClassifier(25, embedding_dim=5, hidden_size=4, num_classes=2, bidirectional=False).double().eval()
    with torch.no_grad():  # larger biases, so that where the bias-only product goes matters
        for name, parameter in model.named_parameters():
            if "bias" in name:
                parameter.uniform_(-1.0, 1.0)
    return model


def test_numpy_loop_equals_contextual_decomposition_for_every_contiguous_phrase() -> None:
    model = _model(3)
    weights = LSTMWeights.from_model(model)
    ids = torch.tensor([[2, 3, 4, 5, 6, 7], [9, 10, 11, 0, 0, 0]])
    lengths = torch.tensor([6, 3])
    x = model.embedding(ids).detach()
    cd = ContextualDecomposition(model.forward_embeddings, bias_product="reference")
    for n, length in enumerate(lengths.tolist()):
        spans = [(start, stop) for start in range(length) for stop in range(start, length)]
        masks = torch.zeros(len(spans), 1, length, dtype=torch.bool)
        for p, (start, stop) in enumerate(spans):
            masks[p, 0, start : stop + 1] = True
        relevant, irrelevant = cd.decompose(x[n : n + 1, :length], masks, lengths[n : n + 1])
        for p, (start, stop) in enumerate(spans):
            loop = numpy_lstm_cd(weights, x[n, :length].numpy(), start, stop)
            assert np.abs(loop[0] - relevant[p, 0].numpy()).max() < 1e-12
            assert np.abs(loop[1] - irrelevant[p, 0].numpy()).max() < 1e-12


def test_word_scores_are_the_positive_minus_the_negative_beta() -> None:
    model = _model(4)
    x = model.embedding(torch.tensor([[2, 3, 4, 5]])).detach()
    scores = numpy_word_scores(LSTMWeights.from_model(model), x[0].numpy())
    ours = ContextualDecomposition(model.forward_embeddings, "reference").attribute(x, target=1, contrast=0)
    assert np.abs(scores - ours[0].numpy()).max() < 1e-12


def test_weights_refuse_other_architectures() -> None:
    with pytest.raises(ValueError, match="one-layer unidirectional nn.LSTM"):
        LSTMWeights.from_model(LSTMClassifier(10, 3, 2, 2, bidirectional=False, pooling="max"))
    with pytest.raises(ValueError, match="one-layer unidirectional nn.LSTM"):
        LSTMWeights.from_model(LSTMClassifier(10, 3, 2, 2))


def test_sanity_check_compares_in_float64_and_leaves_the_model_alone() -> None:
    model = cd_speed.build_speed_model(12, embedding_dim=3, hidden_size=2)
    sentences = embed_sentences(model.embedding, [[2, 3, 4], [5, 6]], [1, 0], 0)
    assert sanity_check(model, sentences.batches[0]) < 1e-12
    assert next(model.parameters()).dtype == torch.float32


def _transformer(seed: int, vocab_size: int = 30, max_length: int = 16) -> TransformerClassifier:
    require_extra()
    torch.manual_seed(seed)
    model = TransformerClassifier(vocab_size=vocab_size, num_classes=2, hidden_size=8, num_heads=2,
                                  max_length=max_length)
    with torch.no_grad():  # biases as large as the weights, so that where they go matters
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.uniform_(-0.5, 0.5)
    return model.eval()


def test_cd_circuit_loop_equals_layer_contextual_decomposition() -> None:
    model = _transformer(1).double()
    ids = torch.tensor([[2, 7, 8, 9, 10, 3], [2, 11, 12, 3, 0, 0], [2, 13, 3, 0, 0, 0]])
    lengths = torch.tensor([6, 4, 3])
    ours = LayerContextualDecomposition(model, model.embeddings).attribute(
        ids, target=1, contrast=0, additional_forward_args=(lengths,)
    )
    for n, length in enumerate(lengths.tolist()):
        loop = comp_cd_scores(model.hf_model, ids[n, :length].tolist(), 0, 16, 1, 0, num_at_time=4)
        assert loop.shape == (length,)
        assert np.abs(loop - ours[n, :length].numpy()).max() < 1e-12


def test_token_batches_hold_every_sentence_once_sorted_by_length() -> None:
    sentences = [[5, 6, 7], [8], [9, 10, 11, 12], [13, 14]]
    batches = token_batches(sentences, pad_index=0, batch_size=3)
    assert [b.index.tolist() for b in batches] == [[1, 3, 0], [2]]
    assert batches[0].token_ids.tolist() == [[8, 0, 0], [13, 14, 0], [5, 6, 7]]
    assert batches[0].lengths.tolist() == [1, 2, 3]


def test_transformer_sanity_check_compares_in_float64_and_leaves_the_model_alone() -> None:
    model = _transformer(2)
    batch = token_batches([[2, 7, 8, 3], [2, 9, 3]], pad_index=0)[0]
    assert transformer_sanity_check(model, batch, pad_index=0) < 1e-12
    assert next(model.parameters()).dtype == torch.float32


def test_command_writes_its_results_with_the_provenance_first(tmp_path: Path, monkeypatch, capsys) -> None:
    data, _, count, _ = make_tiny_setup(tmp_path)
    tokenizer = WordPieceTokenizer.train([tree.tokens for tree in load_sst("test", data)], vocab_size=80)

    def tiny_transformer(run, cache_dir):  # type: ignore[no-untyped-def]
        return _transformer(3, len(tokenizer), max_length=40), tokenizer

    monkeypatch.setattr(cd_speed, "load_transformer", tiny_transformer)
    monkeypatch.setattr(cd_speed, "TRANSFORMER_SENTENCES", 5)
    monkeypatch.setattr(cd_speed, "EXPECTED_SENTENCES", count)
    monkeypatch.setattr(cd_speed, "EMBEDDING_DIM", 6)
    monkeypatch.setattr(cd_speed, "HIDDEN_SIZE", 5)
    monkeypatch.setattr(long_documents, "CASES", ((12, 1), (4, 3)))
    argv = ["benchmark", "cd-speed", "--out", str(tmp_path / "r"), "--data-root", str(data)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    markdown = (tmp_path / "r" / "cd_speed.md").read_text(encoding="utf-8")
    assert markdown.startswith(f"<!-- provenance\ncommand: captum-text-ext {' '.join(argv)}\n")
    payload = json.loads((tmp_path / "r" / "cd_speed.json").read_text(encoding="utf-8"))
    assert list(payload) == ["provenance", "results"]
    results = payload["results"]
    assert results["sentences"] == count and results["dtype"] == "float32" and results["repeats"] == 3
    assert results["loop_sentences"] == len(range(0, count, cd_speed.LOOP_EVERY))
    assert "embedding 6, hidden 5" in results["model"]
    ratio = f"{results['ratio']:.1f}"
    assert f"NumPy loop = {ratio}" in printed and f"NumPy loop: **{ratio}×**" in markdown
    assert results["sanity_relative_difference"] < 1e-8
    [(name, profiled)] = results["profile"]["methods"].items()
    assert name == "ContextualDecomposition" and profiled["rows"] and profiled["matrix_product_ms_per_call"] > 0
    assert "Profile by op (the batch of the longest sentences" in markdown
    transformer = results["transformer"]
    assert transformer["sentences"] == 5 and transformer["dtype"] == "float32"
    assert transformer["tokens"] == sum(len(tokenizer.encode_batch([t.tokens]).tokens[0])
                                        for t in load_sst("test", data)[:5])
    assert transformer["sanity_relative_difference"] < 1e-8
    assert f"CD_Circuit loop = {transformer['ratio']:.1f}" in printed and "## Transformers (CD-T)" in markdown
    long = results["long_documents"]
    assert set(long) == {"cd", "lrp"} and "## Long documents" in markdown
    for method, measured in long.items():
        cases = {(case["tokens"], case["documents"]): case for case in measured["cases"]}
        assert set(cases) == {(12, 1), (4, 3)} and all(case["peak_rss_mb"] > 0 for case in cases.values())
        unit = long_documents.UNITS[method][1]
        assert measured["verdict"]["ratio"] == pytest.approx(cases[12, 1][unit] / cases[4, 3][unit])
        assert f"long document, {method}: peak RSS {measured['verdict']['peak_rss_mb']:.0f} MB" in printed
    assert long["lrp"]["verdict"]["ratio_met"] is None and isinstance(long["cd"]["verdict"]["ratio_met"], bool)


def test_registered_with_its_results_directory() -> None:
    assert BENCHMARKS["cd-speed"].default_out == Path("benchmarks/results")


def test_wrong_test_set_size_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    data, _, _, _ = make_tiny_setup(tmp_path)
    argv = ["benchmark", "cd-speed", "--out", str(tmp_path / "r"), "--data-root", str(data)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "2210 sentences" in err
