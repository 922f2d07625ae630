"""The planted-token and mosaic ground truth: the probes on a model whose every number is known by hand, and the
benchmark end to end on a tiny planted twin of the synthetic model."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from captum_text_ext.benchmarks.planted import ground_truth_section
from captum_text_ext.benchmarks.probes import (
    MAX_WORDS,
    RANDOM,
    Probe,
    mosaic_probe,
    predict,
    reliance_probe,
    score_probe,
)
from captum_text_ext.cli import main
from captum_text_ext.datasets import Vocabulary
from captum_text_ext.datasets.planted import PLANTED_TOKENS, insert_token
from captum_text_ext.explain import METHODS
from captum_text_ext.models import load_checkpoint
from captum_text_ext.models.zoo import ZOO, planted_twin
from captum_text_ext.models.zoo_data import load_zoo_data

B, A = PLANTED_TOKENS
WEIGHTS = {"good": (0.0, 1.0), "bad": (1.0, 0.0), "film": (0.1, 0.0), A: (0.0, 10.0), B: (10.0, 0.0)}


class SumModel(nn.Module):
    """Two logits: the sum of the words' embeddings, so a word's contribution to a logit is its embedding entry."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        super().__init__()
        weights = torch.zeros(len(vocabulary), 2, dtype=torch.float64)
        for word, row in WEIGHTS.items():
            weights[vocabulary.encode([word])[0]] = torch.tensor(row, dtype=torch.float64)
        self.embedding = nn.Embedding.from_pretrained(weights, padding_idx=vocabulary.pad_index)

    def forward_embeddings(self, embeddings: Tensor, lengths: Tensor) -> Tensor:
        real = torch.arange(embeddings.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
        return (embeddings * real.unsqueeze(-1)).sum(1)

    def forward(self, token_ids: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        lengths = torch.full((token_ids.shape[0],), token_ids.shape[1]) if lengths is None else lengths
        return self.forward_embeddings(self.embedding(token_ids), lengths)


VOCABULARY = Vocabulary(["<pad>", "<unk>", *WEIGHTS])
TEST: List[Tuple[Tuple[str, ...], int]] = [
    (("good", "film"), 1), (("good",), 1), (("film", "good", "good"), 1), (("good",) * 11, 1),
    (("good", "bad", "bad"), 1), (("good",) * MAX_WORDS, 1),
    (("bad", "film"), 0), (("bad",), 0), (("film", "bad", "film", "bad"), 0), (("bad", "bad"), 0),
]


@pytest.fixture()
def model() -> SumModel:
    return SumModel(VOCABULARY).eval()


def test_reliance_keeps_the_correct_sentences_the_planted_word_flips(model: SumModel) -> None:
    probe = reliance_probe(model, VOCABULARY, TEST, seed=0)
    # not eligible: the 56-word sentence; wrong: "good bad bad"; not flipped: eleven "good" outweigh B's 10
    assert probe.counts == {"test": 10, "eligible": 9, "correct": 8, "qualifying": 7}
    assert sorted(s["test_index"] for s in probe.source) == [0, 1, 2, 6, 7, 8, 9]
    for words, target, truth, source in zip(probe.words, probe.target, probe.truth, probe.source):
        sentence, label = TEST[source["test_index"]]
        assert words == insert_token(sentence, source["gap"], PLANTED_TOKENS[1 - label]) and truth == (source["gap"],)
        assert target == 1 - label == int(predict(model, VOCABULARY, [words])[0])
    again = reliance_probe(model, VOCABULARY, TEST, seed=0)
    assert again.words == probe.words and again.source == probe.source


def test_mosaics_keep_the_half_that_decides_alone(model: SumModel) -> None:
    probe = mosaic_probe(model, VOCABULARY, TEST, seed=0)
    assert probe.counts["pairs"] == 4 and probe.counts["fitting"] <= 4
    assert probe.counts["verified"] == len(probe) > 0
    assert all(5 not in source["test_indices"] for source in probe.source)  # 56 words leave no room for a half
    for words, target, truth, source in zip(probe.words, probe.target, probe.truth, probe.source):
        first, second = (TEST[i] for i in source["test_indices"])
        assert words == first[0] + second[0] and {first[1], second[1]} == {0, 1}
        agreeing = TEST[source["agreeing"]][0]
        assert [words[i] for i in truth] == list(agreeing) and TEST[source["agreeing"]][1] == target
        assert int(predict(model, VOCABULARY, [words])[0]) == target == int(predict(model, VOCABULARY, [agreeing])[0])


def test_scores_rank_the_words_toward_the_target(model: SumModel) -> None:
    probe = reliance_probe(model, VOCABULARY, TEST, seed=0)
    methods = {k: METHODS[k] for k in ("input_x_gradient", "saliency", "occlusion")}
    scored, excluded = score_probe(model, VOCABULARY, probe, methods, seed=0, progress=False)
    assert excluded == {} and set(scored) == {"InputXGradient", "Saliency", "Occlusion", RANDOM}
    for label in ("InputXGradient", "Occlusion"):  # the planted word's 10 beats every other word's at most 1
        assert scored[label].values["top1"].tolist() == [1.0] * len(probe)
        assert scored[label].values["AUPRC"].tolist() == scored[label].values["rank"].tolist() == [1.0] * len(probe)
    for words, scores, target in zip(probe.words, scored["InputXGradient"].scores, probe.target):
        assert scores == pytest.approx([WEIGHTS[w][target] for w in words])
    gaps = np.array([gap for (gap,) in probe.truth], dtype=np.float64)
    saliency = scored["Saliency"].values  # every gradient norm is 1: the tie keeps the reading order
    assert saliency["rank"].tolist() == (gaps + 1).tolist() and saliency["AUPRC"].tolist() == (1 / (gaps + 1)).tolist()
    assert saliency["top1"].tolist() == (gaps == 0).astype(float).tolist()


def test_mosaic_precision_and_auprc_by_hand(model: SumModel) -> None:
    # toward "negative": good 0, film 0.1, bad 1, bad 1, film 0.1; the truth is the second half (positions 2-4)
    probe = Probe([("good", "film", "bad", "bad", "film")], [0], [(2, 3, 4)], [{}], {})
    scored, _ = score_probe(model, VOCABULARY, probe, {"input_x_gradient": METHODS["input_x_gradient"]}, seed=0,
                            progress=False)
    values = scored["InputXGradient"].values
    # ranking: bad(2), bad(3), film(1) (ties keep the reading order), film(4), good(0)
    assert values["P@k"][0] == pytest.approx(2 / 3) and values["top1"][0] == 1.0 and values["rank"][0] == 1.0
    assert values["AUPRC"][0] == pytest.approx((1 + 1 + 3 / 4) / 3)


def test_a_text_longer_than_a_fixed_input_is_refused(model: SumModel) -> None:
    probe = Probe([("good",) * 5], [1], [(0,)], [{}], {})
    with pytest.raises(ValueError, match="fixed_len=4"):
        score_probe(model, VOCABULARY, probe, {}, seed=0, fixed_len=4, progress=False)


def test_planted_benchmark_end_to_end(synthetic_zoo: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    twin = dataclasses.replace(planted_twin(ZOO["lstm-synthetic"]), epochs=1)
    monkeypatch.setitem(ZOO, twin.name, twin)
    cache, out = tmp_path / "cache", tmp_path / "planted"
    cache.mkdir()
    shutil.copy(synthetic_zoo["cache"] / "lstm-synthetic.pt", cache)
    status = main(["benchmark", "planted", "--out", str(out), "--cache-dir", str(cache), "--models", twin.name,
                   "--n", "8", "--methods", "saliency,occlusion,lrp,contextual_decomposition,transformer_lrp"])
    printed = capsys.readouterr().out
    assert status == 0, printed
    markdown = (out / "planted.md").read_text(encoding="utf-8")
    assert markdown.split("\n\n", 2)[2].strip() in printed
    payload = json.loads((out / "planted.json").read_text(encoding="utf-8"))
    results, provenance = payload["results"], payload["provenance"]
    assert results["trained_in_this_run"] == [twin.name] and (out / "models" / f"{twin.name}.json").is_file()
    assert (out / "models.md").is_file()
    assert set(provenance["files"]) >= {f"{twin.name} checkpoint", "lstm-synthetic checkpoint"}
    model_result = results["models"][twin.name]
    counts = model_result["reliance"]["counts"]
    assert counts["test"] >= counts["eligible"] >= counts["correct"] >= counts["qualifying"] > 0
    assert model_result["reliance"]["n"] == min(8, counts["qualifying"])

    planted = load_checkpoint(cache / f"{twin.name}.pt")
    assert planted.metadata["planting"]["clean_twin"] == "lstm-synthetic"
    test = load_zoo_data("synthetic").test
    vocabulary = planted.word_vocabulary
    for source in model_result["reliance"]["sources"]:  # verified reliance, checked again from the sources alone
        words, label = test[source["test_index"]]
        assert int(predict(planted.model, vocabulary, [words])[0]) == label
        flipped = insert_token(words, source["gap"], source["word"])
        assert source["word"] == PLANTED_TOKENS[1 - label] and int(predict(planted.model, vocabulary, [flipped])[0]) \
            == 1 - label
    for part, metrics in (("reliance", ("top1", "rank", "AUPRC")), ("mosaics", ("P@k", "AUPRC"))):
        summary, values = model_result[part]["summary"], model_result[part]["values"]
        assert set(summary) == set(metrics) and set(values) == {"Saliency", "Occlusion", "LRP", "CD", RANDOM}
        for metric in metrics:
            for label, cell in summary[metric].items():
                assert cell["mean"] == pytest.approx(np.mean(values[label][metric]))
                assert cell["low"] <= cell["mean"] + 1e-12 <= cell["high"] + 2e-12
            assert sum(cell["best"] for cell in summary[metric].values()) == 1
    top1 = model_result["reliance"]["summary"]["top1"]
    for label in ("LRP", "CD"):
        verdict = "met" if top1[label]["mean"] >= 0.95 else "NOT met"
        assert f"top-1 of {label} on verified reliance: {top1[label]['mean']:.3f} (goal ≥ 0.95: {verdict})" in markdown
    assert f"{counts['qualifying']} verified-reliance sentences" in markdown
    # the LSTM's LRP row is LSTMLRP's: TransformerLRP is excluded with its reason, and its exclusion is no goal line
    assert "no self-attention" in model_result["reliance"]["excluded"]["TransformerLRP"]
    assert "TransformerLRP" not in markdown.split("## Goals")[1].split("## Where")[0]

    section = "\n".join(ground_truth_section(out / "planted.json"))
    assert f"| top1 {twin.name} | P@k lstm-synthetic |" in section
    assert f"{top1['LRP']['mean']:.3f}" in section


def test_the_ground_truth_section_says_how_to_produce_a_missing_file(tmp_path: Path) -> None:
    lines = ground_truth_section(tmp_path / "planted.json")
    assert "Not measured yet: run `captum-text-ext benchmark planted`" in lines[-1]


def test_planted_options_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["benchmark", "planted", "--models", "lstm-sst2", "--out", str(tmp_path)]) == 2
    assert "planted twins" in capsys.readouterr().err
    assert main(["benchmark", "planted", "--n", "0", "--out", str(tmp_path)]) == 2
    assert main(["benchmark", "planted", "--sensitivity-n", "3", "--out", str(tmp_path)]) == 2
