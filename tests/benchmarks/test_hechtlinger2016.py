"""The Hechtlinger (2016) reproduction: its building blocks on hand-made data, and the real command end to end on a tiny
SST, tiny zoo checkpoints and a tiny IMDB directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Tuple

import pytest
import torch
from test_arras2017 import _tree

from captum_text_ext.benchmarks import BENCHMARKS, hechtlinger2016
from captum_text_ext.benchmarks.hechtlinger2016 import (
    BagOfWords,
    agreement_report,
    concatenated_documents,
    encode_bags,
    findings,
)
from captum_text_ext import LayerGradientLinearSurrogate
from captum_text_ext.cli import main
from captum_text_ext.datasets import Vocabulary
from captum_text_ext.models import BagOfWordsMLP, EmbeddingCNN
from captum_text_ext.models.checkpoints import save_checkpoint

_POSITIVE = "good great fun fine moving solid".split()
_NEGATIVE = "bad dull boring mess worst stupid".split()
_NEUTRAL = "the film is a story with plot and acting".split()


def _sentences(count: int, seed: int) -> List[Tuple[List[str], int]]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for n in range(count):
        label = n % 2
        words = [_NEUTRAL[int(i)] for i in torch.randint(len(_NEUTRAL), (int(torch.randint(3, 9, (1,),
                                                                                             generator=generator)),),
                                                                        generator=generator)]
        polar = _POSITIVE if label else _NEGATIVE
        words.insert(int(torch.randint(len(words), (1,), generator=generator)),
                     polar[int(torch.randint(len(polar), (1,), generator=generator))])
        out.append((words, label))
    return out


def make_tiny_setup(base: Path) -> Tuple[Path, Path, Path]:
    """SST files (labels 0/4 so that SST-2 keeps every sentence), untrained tiny ``bow-mlp-sst2`` and ``embcnn-sst2``
    checkpoints, and an ``aclImdb`` directory of 20 + 20 reviews. Returns ``(data, cache, imdb)``."""
    data, cache, imdb = base / "data", base / "cache", base / "imdb" / "aclImdb"
    (data / "sst").mkdir(parents=True)
    splits = {"train": _sentences(40, 0), "dev": _sentences(10, 1), "test": _sentences(16, 2)}
    for split, rows in splits.items():
        lines = [_tree(words, 4 * label) for words, label in rows]
        (data / "sst" / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    vocabulary = Vocabulary.build([words for words, _ in splits["train"]])
    torch.manual_seed(0)
    save_checkpoint(cache / "bow-mlp-sst2.pt", BagOfWordsMLP(len(vocabulary), 2, hidden_sizes=(4,)).eval(),
                    vocabulary, {"zoo_name": "bow-mlp-sst2"})
    save_checkpoint(cache / "embcnn-sst2.pt", EmbeddingCNN(len(vocabulary), 2, embedding_dim=3, num_filters=4).eval(),
                    vocabulary, {"zoo_name": "embcnn-sst2"})
    for split, seed in (("train", 3), ("test", 4)):
        for number, (words, label) in enumerate(_sentences(40, seed)):
            folder = imdb / split / ("pos" if label else "neg")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{number}_{8 if label else 2}.txt").write_text(" ".join(words) + " .<br />", encoding="utf-8")
    return data, cache, imdb


def test_encode_bags_and_joined_documents() -> None:
    vocabulary = Vocabulary.build([["a", "b", "c"]])
    model = BagOfWordsMLP(len(vocabulary), 2, hidden_sizes=(3,)).double()
    bags = encode_bags(model, vocabulary, [(("a", "b"), 1), (("c", "zzz", "c"), 0)])
    assert bags.features.dtype == torch.float64 and bags.lengths.tolist() == [2, 3] and bags.labels.tolist() == [1, 0]
    assert bags.features.tolist() == [[0, 0, 1, 1, 0], [0, 0, 0, 0, 1]]  # pad and unknown never set
    joined = concatenated_documents(bags, parts=3)
    assert joined.features.shape == bags.features.shape and set(joined.features.flatten().tolist()) <= {0.0, 1.0}
    draws = joined.lengths.tolist()
    assert all(value in (6, 7, 8, 9) for value in draws)  # three sentences of 2 or 3 words each


def test_agreement_report_on_a_linear_model_is_exact() -> None:
    torch.manual_seed(0)
    model = BagOfWordsMLP(8, 2, hidden_sizes=()).double().eval()
    features = torch.randint(0, 2, (60, 8), generator=torch.Generator().manual_seed(1)).double()
    features[:, :2] = 0
    bags = BagOfWords(features, features.sum(1).long() + 1, torch.zeros(60, dtype=torch.long))
    report = agreement_report(model, bags)
    assert report["agreement"]["logit_difference_with_intercept"] == 1.0  # f = z1 - z0 is linear: exact surrogate
    assert report["mean_cosine"] == pytest.approx(1.0)  # gradients of p = sigmoid(linear) are all parallel
    assert sum(row["count"] for row in report["by_margin"]) == 60
    surrogate = report["surrogate"]
    with torch.no_grad():
        p = model.forward_features(features).softmax(-1)[:, 1]
    same = surrogate.predict(features) == (p > 0.5).long()
    assert report["agreement"]["probability_with_intercept"] == float(same.double().mean())


def test_table1_ranks_words_as_the_probability_gradient_does(monkeypatch) -> None:
    monkeypatch.setattr(hechtlinger2016, "TABLE1_MIN_WORDS", 3)
    pairs = [(tuple(words), label) for words, label in _sentences(12, 5)]
    vocabulary = Vocabulary.build([words for words, _ in pairs])
    torch.manual_seed(1)
    model = EmbeddingCNN(len(vocabulary), 2, embedding_dim=3, num_filters=4).double().eval()
    rows = hechtlinger2016.top_expression_rows(model, vocabulary, pairs)
    assert rows and all(len(row["expressions"]) == 4 for row in rows)
    for row in rows:
        ids = torch.tensor([vocabulary.encode(row["words"])])
        lengths = torch.tensor([len(row["words"])])
        probability = LayerGradientLinearSurrogate(lambda i, n: model(i, n).softmax(-1), model.embedding)
        top = probability.top_expressions(ids, 4, 3, target=1, additional_forward_args=(lengths,))[0]
        assert [e.position for e in top] == [e["position"] for e in row["expressions"]]


def test_command_writes_every_result_with_the_provenance_first(tmp_path: Path, monkeypatch, capsys) -> None:
    data, cache, imdb = make_tiny_setup(tmp_path)
    monkeypatch.setattr(hechtlinger2016, "BOW_MODELS", ("bow-mlp-sst2",))
    monkeypatch.setattr(hechtlinger2016, "SWEEP_WIDTHS", (0, 3))
    monkeypatch.setattr(hechtlinger2016, "SWEEP_REGULARIZATION", ((0.0, 1e-4),))
    monkeypatch.setattr(hechtlinger2016, "SWEEP_EPOCHS", 1)
    monkeypatch.setattr(hechtlinger2016, "DOCUMENT_PARTS", (1, 2))
    monkeypatch.setattr(hechtlinger2016, "TABLE1_MIN_WORDS", 3)
    assert "hechtlinger2016" in BENCHMARKS and BENCHMARKS["hechtlinger2016"].options == ("imdb_dir",)
    argv = ["benchmark", "hechtlinger2016", "--out", str(tmp_path / "r"), "--data-root", str(data), "--cache-dir",
            str(cache), "--imdb-dir", str(imdb.parent)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    command = "captum-text-ext " + " ".join(argv)
    for name in ("tables.md", "agreement.md", "table1.md", "speed.md"):
        assert (tmp_path / "r" / name).read_text(encoding="utf-8").startswith(f"<!-- provenance\ncommand: {command}\n")
    payload = json.loads((tmp_path / "r" / "results.json").read_text(encoding="utf-8"))
    assert list(payload) == ["provenance", "results"]
    results = payload["results"]
    row = results["models"]["bow-mlp-sst2"]
    assert row["examples"] == 16 and len(row["table2"]["positive"]) == 5 and len(row["documents"]) == 2
    assert [(r["width"], r["dropout"], r["weight_decay"]) for r in results["sweep"]] == [
        (0, 0.0, 0.0), (3, 0.5, 0.0), (256, 0.0, 1e-4)]
    assert results["sweep"][0]["logit_difference_with_intercept"] == 1.0
    assert results["imdb"]["examples"] == 40 and results["speed"]["repeats"] == 7
    assert all(len(r["expressions"]) <= 4 and all(len(e["words"]) <= 3 for e in r["expressions"])
               for r in results["table1"])
    assert f"agreement {100 * row['agreement']['probability_with_intercept']:.1f}% with intercept" in printed
    assert findings(results)[0] in (tmp_path / "r" / "agreement.md").read_text(encoding="utf-8")
    assert "IMDB" in printed and "fit / Saliency" in (tmp_path / "r" / "speed.md").read_text(encoding="utf-8")
    wrong = ["benchmark", "lrp-speed", "--imdb-dir", str(imdb)]
    assert main(wrong) == 2 and "--imdb-dir does not apply to the benchmark lrp-speed; it is accepted only by: hechtlinger2016" in capsys.readouterr().err
