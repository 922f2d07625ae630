"""Subword sentences held word by word: the packing is exact, removing a word removes its subwords and nothing else,
and the leaderboard scores a WordPiece transformer at the word level."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from _transformer_models import require_extra

from captum_text_ext.benchmarks.subword_sentences import (
    SubwordForward,
    SubwordLayout,
    embed_subword_sentences,
    pack,
    unpack,
)
from captum_text_ext.cli import main
from captum_text_ext.datasets import NO_WORD, WordPieceTokenizer
from captum_text_ext.explain import embedding_layer
from captum_text_ext.metrics.perturbation import apply_removal
from captum_text_ext.models import TransformerClassifier
from captum_text_ext.models.zoo import ZOO

TEXTS = [("the", "unforgettable", "film"), ("a", "dull", "and", "overlong", "plot"), ("unforgettable",),
         ("the", "plot", "was", "not", "dull")]


@pytest.fixture(scope="module")
def subword_model() -> tuple:
    require_extra("tokenizers")
    require_extra()
    tokenizer = WordPieceTokenizer.train([*TEXTS, ("the", "film"), ("a", "plot")], vocab_size=40, min_frequency=1)
    torch.manual_seed(0)
    model = TransformerClassifier(vocab_size=len(tokenizer), num_classes=2, hidden_size=8, num_heads=2,
                                  max_length=40).double().eval()
    return model, tokenizer


def test_packed_words_give_the_model_its_own_logits_and_unpack_exactly(subword_model: tuple) -> None:
    model, tokenizer = subword_model
    layer = embedding_layer(model)
    sentences = embed_subword_sentences(model, layer, tokenizer, TEXTS, [0, 1, 0, 1], batch_size=3)
    assert sentences.lengths.tolist() == [3, 5, 1, 5] and sum(len(b.index) for b in sentences.batches) == 4
    for batch in sentences.batches:
        layout = batch.layout
        assert layout is not None and torch.equal(batch.lengths, layout.word_lengths)
        assert torch.equal(unpack(batch.embeddings, layout.slots, layout.base), layout.base)
        with torch.no_grad():
            expected = model(batch.token_ids, layout.token_lengths)
            assert torch.equal(SubwordForward(model, layer)(batch.embeddings, batch.lengths, *batch.forward_args),
                               expected)
    assert max(b.layout.slots.shape[2] for b in sentences.batches) >= 2  # some word is split into subwords


def test_zeroing_a_word_zeroes_every_subword_of_it_and_nothing_else(subword_model: tuple) -> None:
    model, tokenizer = subword_model
    sentences = embed_subword_sentences(model, embedding_layer(model), tokenizer, TEXTS, [0, 1, 0, 1])
    (batch,) = sentences.batches
    layout = batch.layout
    row = int((batch.index == 0).nonzero())  # "the unforgettable film": "unforgettable" is word 1
    keep = torch.ones(batch.embeddings.shape[:2], dtype=torch.bool)
    keep[row, 1] = False
    removed, _ = apply_removal(batch.embeddings, batch.lengths, keep, "zero")
    tokens = unpack(removed, layout.slots, layout.base)
    word = layout.word_ids[row] == 1
    assert int(word.sum()) >= 2 and bool((tokens[row, word] == 0).all())
    others = torch.ones_like(layout.word_ids, dtype=torch.bool)
    others[row] = ~word
    assert torch.equal(tokens[others], layout.base[others])  # special tokens, padding and the other words stay


def test_word_masks_select_every_subword_of_their_words(subword_model: tuple) -> None:
    model, tokenizer = subword_model
    (batch,) = embed_subword_sentences(model, embedding_layer(model), tokenizer, TEXTS[:1], [0]).batches
    layout = batch.layout
    masks = torch.tensor([[[False, True, False]], [[True, False, True]]])
    tokens = layout.word_masks(masks)
    word_ids = layout.word_ids[0]
    assert tokens.shape == (2, 1, word_ids.numel())
    assert tokens[0, 0].tolist() == (word_ids == 1).tolist()
    assert tokens[1, 0].tolist() == ((word_ids == 0) | (word_ids == 2)).tolist()
    assert not bool(tokens[:, :, word_ids == NO_WORD].any())


def test_dropping_words_and_scrambled_word_ids_are_refused(subword_model: tuple) -> None:
    model, tokenizer = subword_model
    layer = embedding_layer(model)
    (batch,) = embed_subword_sentences(model, layer, tokenizer, TEXTS[:2], [0, 1]).batches
    keep = torch.ones(batch.embeddings.shape[:2], dtype=torch.bool)
    keep[:, 0] = False
    dropped, lengths = apply_removal(batch.embeddings, batch.lengths, keep, "drop")
    with pytest.raises(ValueError, match="cannot be dropped"):
        SubwordForward(model, layer)(dropped, lengths, *batch.forward_args)
    base = torch.arange(10.0).reshape(1, 5, 2)
    for word_ids in ([[-1, 0, 2, 1, -1]], [[-1, 0, 1, 0, -1]], [[-1, 1, 1, -1, -1]]):
        with pytest.raises(ValueError, match="reading order"):
            SubwordLayout.from_word_ids(torch.tensor(word_ids), torch.tensor([5]), base)
    layout = SubwordLayout.from_word_ids(torch.tensor([[-1, 0, 0, 1, -1]]), torch.tensor([5]), base)
    assert layout.slots.tolist() == [[[1, 2], [3, 5]]]  # 5: the second word has no second subword
    assert pack(base, layout.slots).tolist() == [[[2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 0.0, 0.0]]]


def test_leaderboard_scores_a_wordpiece_transformer_word_by_word(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    require_extra()
    monkeypatch.setitem(ZOO, "transformer-synthetic", dataclasses.replace(ZOO["transformer-synthetic"], epochs=1))
    cache, out = tmp_path / "cache", tmp_path / "leaderboard"
    assert main(["train", "transformer-synthetic", "--cache-dir", str(cache), "--quiet"]) == 0
    status = main(["benchmark", "leaderboard", "--out", str(out), "--cache-dir", str(cache), "--models",
                   "transformer-synthetic", "--n", "8", "--sensitivity-n", "2", "--methods",
                   "saliency,occlusion,lrp,contextual_decomposition,transformer_lrp"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    result = json.loads((out / "leaderboard.json").read_text(encoding="utf-8"))["results"]["models"][
        "transformer-synthetic"]
    assert set(result["methods"]) == {"Saliency", "Occlusion", "CD", "TransformerLRP", "Random"}
    assert "torch.matmul" in result["excluded"]["LRP"]  # LSTMLRP refuses self-attention by name
    summary = result["summary"]
    assert {"comp", "NAOPC comp", "infid", "sens", "top1", "AUPRC", "neg×word"} <= set(summary)
    assert not any("@" in key for key in summary)  # zeroing only: the other removals are stated, not computed
    assert "not computed" in result["removals"]["unk"] and "not computed" in result["removals"]["ft"]
    assert result["fine_tuning"] is None and "fine-tuning" not in result["seconds"]
    assert {row["column"]["removal"] for row in result["judging"]} == {"zero", None}
    assert summary["sens"]["CD"]["n"] == 2 and summary["comp"]["CD"]["n"] == 8
    markdown = (out / "leaderboard.md").read_text(encoding="utf-8")
    assert f"transformer-synthetic, top-1 ground-truth precision of TransformerLRP: " \
           f"{summary['top1']['TransformerLRP']['mean']:.3f}, AUPRC {summary['AUPRC']['TransformerLRP']['mean']:.3f}" \
           in markdown
    assert set(summary["neg×word"]) == {"CD"}  # the interaction on words: masks of each word's subwords
    assert f"transformer-synthetic {summary['neg×word']['CD']['mean']:.3f}" in markdown
