"""The speed benchmark: its NumPy baseline is exact, and the command writes its files with the provenance first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_arras2017 import make_tiny_setup

from captum_text_ext import LSTMLRP
from captum_text_ext.benchmarks import lrp_forms, lrp_memory, lrp_speed
from captum_text_ext.benchmarks.lrp_speed import BiLSTMWeights, numpy_lstm_lrp, sanity_check
from captum_text_ext.benchmarks.sentences import embed_sentences
from captum_text_ext.cli import main
from captum_text_ext.datasets import load_sst
from captum_text_ext.datasets.wordpiece import WordPieceTokenizer
from captum_text_ext.models import LSTMClassifier
from captum_text_ext.models.checkpoints import save_checkpoint
from captum_text_ext.models.transformer_classifier import TransformerClassifier


def write_tiny_transformer(data: Path, cache: Path) -> None:
    """``cache/transformer-sst2.pt``: an untrained width-8 BERT with a WordPiece vocabulary of the tiny test set."""
    pytest.importorskip("transformers")
    texts = [tree.tokens for tree in load_sst("test", data)]
    tokenizer = WordPieceTokenizer.train(texts, vocab_size=60, min_frequency=1)
    torch.manual_seed(0)
    model = TransformerClassifier(len(tokenizer), 2, hidden_size=8, num_layers=1, num_heads=2, max_length=40,
                                  pad_index=tokenizer.pad_index).eval()
    save_checkpoint(cache / "transformer-sst2.pt", model, tokenizer, {"zoo_name": "transformer-sst2"})


@pytest.mark.parametrize("output_bias", [False, True])
@pytest.mark.parametrize("bias_factor", [0.0, 1.0])
def test_numpy_loop_equals_lstmlrp_in_float64(output_bias: bool, bias_factor: float) -> None:
    torch.manual_seed(3)
    model = LSTMClassifier(25, embedding_dim=5, hidden_size=4, num_classes=3, output_bias=output_bias)
    model = model.double().eval()
    with torch.no_grad():  # non-zero biases, so that the bias share matters for bias_factor = 1
        for name, parameter in model.named_parameters():
            if "bias" in name:
                parameter.uniform_(-0.5, 0.5)
    weights = BiLSTMWeights.from_model(model)
    ids = torch.tensor([[2, 3, 4, 5, 6, 7, 8], [9, 10, 11, 12, 0, 0, 0], [13, 0, 0, 0, 0, 0, 0]])
    lengths = torch.tensor([7, 4, 1])
    embeddings = model.embedding(ids).detach()
    lrp = LSTMLRP(model.forward_embeddings, bias_factor=bias_factor)
    for target in range(3):
        ours = lrp.attribute(embeddings, target=target, additional_forward_args=(lengths,))
        for n, length in enumerate(lengths.tolist()):
            loop = numpy_lstm_lrp(weights, embeddings[n, :length].numpy(), target, bias_factor=bias_factor)
            assert np.abs(loop - ours[n, :length].numpy()).max() <= 1e-10


def test_weights_refuse_other_architectures() -> None:
    with pytest.raises(ValueError, match="one-layer bidirectional nn.LSTM"):
        BiLSTMWeights.from_model(LSTMClassifier(10, 3, 2, 2, pooling="max"))
    with pytest.raises(ValueError, match="one-layer bidirectional nn.LSTM"):
        BiLSTMWeights.from_model(LSTMClassifier(10, 3, 2, 2, bidirectional=False))


def test_sanity_check_compares_in_float64_and_leaves_the_model_alone() -> None:
    torch.manual_seed(5)
    model = LSTMClassifier(12, embedding_dim=3, hidden_size=2, num_classes=5).eval()
    sentences = embed_sentences(model.embedding, [[2, 3, 4], [5, 6]], [1, 4], 0)
    errors = sanity_check(model, sentences.batches[0], sentences.labels[sentences.batches[0].index])
    assert set(errors) == {"bias_factor=0", "bias_factor=1"} and max(errors.values()) < 1e-12
    assert next(model.parameters()).dtype == torch.float32


def test_command_writes_its_results_with_the_provenance_first(tmp_path: Path, monkeypatch, capsys) -> None:
    data, cache, count, _ = make_tiny_setup(tmp_path)
    write_tiny_transformer(data, cache)
    monkeypatch.setattr(lrp_speed, "EXPECTED_SENTENCES", count)
    for name, value in (("LARGE_BATCHES", (3,)), ("SMALL_BATCHES", (1,)), ("STEPS", (2, 4)), ("THREADS", (1,)),
                        ("TIMINGS", 1), ("PROFILE_CALLS", 2)):
        monkeypatch.setattr(lrp_forms, name, value)
    monkeypatch.setattr(lrp_speed, "MEMORY_FORMS", ("h_n head",))
    monkeypatch.setattr(lrp_memory, "MEMORY_STEPS", (3,))
    argv = ["benchmark", "lrp-speed", "--out", str(tmp_path / "r"), "--data-root", str(data), "--cache-dir",
            str(cache)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    command = "captum-text-ext " + " ".join(argv)
    markdown = (tmp_path / "r" / "lrp_speed.md").read_text(encoding="utf-8")
    assert markdown.startswith(f"<!-- provenance\ncommand: {command}\n")
    payload = json.loads((tmp_path / "r" / "lrp_speed.json").read_text(encoding="utf-8"))
    assert list(payload) == ["provenance", "results"]
    results = payload["results"]
    assert results["sentences"] == count and results["dtype"] == "float32" and results["repeats"] == 5
    assert set(results["sentences_per_second"]) == {"LSTMLRP", "NumPy loop", "Saliency", "IG"}
    rows = results["whole_set"]
    assert [row["threads"] for row in rows] == [1, 2] and set(rows[1]["sentences_per_second"]) == {"LSTMLRP",
                                                                                                   "Saliency"}
    assert results["ratio_lstmlrp_to_saliency"] == min(row["ratio_lstmlrp_to_saliency"] for row in rows)
    for row in rows:
        ratio = f"{row['ratio_lstmlrp_to_saliency']:.3f}"
        assert f"{row['threads']} thread(s): LSTMLRP / Saliency = {ratio}" in printed
        assert f"{row['threads']} thread(s) **{ratio}**" in markdown
    assert max(results["sanity_relative_difference"].values()) < 1e-8
    forms = results["forms"]
    names = {*lrp_forms.FORMS, "bilstm-sst5"}
    assert {(c["form"], c["batch"], c["steps"]) for c in forms["throughput"]} == {(n, 3, t) for n in names
                                                                                   for t in (2, 4)}
    assert {(c["form"], c["batch"]) for c in forms["latency"]} == {(n, 1) for n in names}
    for cell in forms["throughput"] + forms["latency"]:
        assert cell["ratio"] == cell["seconds"]["Saliency"] / cell["seconds"]["LSTMLRP"] > 0
    worst = lrp_forms.worst(forms["throughput"])
    assert forms["throughput_met"] == (worst["ratio"] >= 0.9) and f"**{worst['ratio']:.2f}**" in markdown
    assert forms["profile"]["rows"] and "### Where the time goes" in markdown
    profiled = forms["worst_throughput_profile"]
    assert {key: profiled[key] for key in ("form", "batch", "steps", "threads")} == {
        key: worst[key] for key in ("form", "batch", "steps", "threads")}
    assert set(profiled["methods"]) == {"LSTMLRP", "Saliency"} and all(m["rows"] for m in profiled["methods"].values())
    assert f"the worst throughput cell: form {worst['form']}, batch 3, T = {worst['steps']}" in markdown
    [memory] = results["memory"]
    assert memory["form"] == "h_n head" and memory["steps"] == 3 and min(memory["increase_mb"].values()) >= 0
    assert "## Memory" in markdown and "| h_n head | 3 |" in markdown
    transformer = results["transformer"]
    binary = len(load_sst("test", data, granularity="binary"))
    assert transformer["sentences"] == binary and [row["threads"] for row in transformer["rows"]] == [1, 2]
    for row in transformer["rows"]:
        assert set(row["sentences_per_second"]) == {'TransformerLRP(rule="attnlrp")', 'TransformerLRP(rule="cp")',
                                                     "Saliency"}
        ratio = f"{row['ratio_attnlrp_to_saliency']:.3f}"
        assert f"{row['threads']} thread(s): TransformerLRP / Saliency = {ratio} (attnlrp)" in printed
    assert "## TransformerLRP" in markdown and "| 2 | Saliency |" in markdown
    assert set(transformer["profile"]["methods"]) == set(transformer["rows"][0]["sentences_per_second"])
    assert transformer["profile"]["threads"] in (1, 2) and "the batch with the most subwords" in markdown


def test_wrong_test_set_size_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    data, cache, _, _ = make_tiny_setup(tmp_path)
    argv = ["benchmark", "lrp-speed", "--out", str(tmp_path / "r"), "--data-root", str(data), "--cache-dir",
            str(cache)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "2210 sentences" in err
