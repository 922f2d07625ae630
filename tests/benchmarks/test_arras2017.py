"""The Arras et al. (2017) reproduction: word deletion, Table 1 rankings, example matching, files and CLI wiring.

Everything runs on hand-made or tiny random models; :func:`make_tiny_setup` writes a small SST test file and a tiny
``bilstm-sst5`` checkpoint so that the real command runs end to end in a second.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import List, Sequence, Tuple

import torch
from PIL import Image
from torch import Tensor, nn

from captum_text_ext.benchmarks import BENCHMARKS, arras2017
from captum_text_ext.benchmarks.arras2017 import WORD_RELEVANCE, find_examples
from captum_text_ext.benchmarks.arras2017_paper import PAPER_EXAMPLES
from captum_text_ext.benchmarks.sentences import embed_sentences, word_relevance
from captum_text_ext.benchmarks.word_deletion import deletion_curves
from captum_text_ext.cli import main
from captum_text_ext.datasets import Vocabulary
from captum_text_ext.models import LSTMClassifier
from captum_text_ext.models.checkpoints import save_checkpoint


# ------------------------------------------------------------------------------------------------------------------
# A tiny SST test file and bilstm-sst5 checkpoint (also used by test_lrp_speed.py)
# ------------------------------------------------------------------------------------------------------------------

_WORDS = "the film is a good bad story with no fun dull great plot acting , . but not".split()


def _tree(tokens: Sequence[str], label: int) -> str:
    """A right-branching PTB tree over ``tokens``, every node labelled ``label``."""
    if len(tokens) == 1:
        return f"({label} {tokens[0]})"
    return f"({label} ({label} {tokens[0]}) {_tree(tokens[1:], label)})"


def make_tiny_setup(base: Path, sentences: int = 14) -> Tuple[Path, Path, int, int]:
    """Write ``base/data/sst/test.txt`` and ``base/cache/bilstm-sst5.pt`` (an untrained bi-LSTM, embedding 4, hidden
    3, 5 classes).

    The set holds two of the paper's examples (1 and 19) and random sentences of 6-14 words; labels are chosen so
    that both the correctly classified and the misclassified side of the deletion experiment are non-empty.

    Returns:
        ``(data_root, cache_dir, sentences, of which >= 10 words)``.
    """
    generator = torch.Generator().manual_seed(0)
    texts: List[List[str]] = [PAPER_EXAMPLES[0].text.split(), PAPER_EXAMPLES[18].text.split()]
    while len(texts) < sentences:
        length = int(torch.randint(6, 15, (1,), generator=generator))
        texts.append([_WORDS[int(i)] for i in torch.randint(len(_WORDS), (length,), generator=generator)])
    vocabulary = Vocabulary.build(texts[2:])  # the paper's words are mostly unknown
    torch.manual_seed(0)
    model = LSTMClassifier(len(vocabulary), embedding_dim=4, hidden_size=3, num_classes=5, output_bias=False).eval()
    with torch.no_grad():
        predicted = [int(model(torch.tensor([vocabulary.encode(t)])).argmax()) for t in texts]
    labels = [p if n % 2 == 0 else (p + 1) % 5 for n, p in enumerate(predicted)]
    labels[0], labels[1] = PAPER_EXAMPLES[0].true_class, PAPER_EXAMPLES[18].true_class
    data = base / "data"
    (data / "sst").mkdir(parents=True)
    (data / "sst" / "test.txt").write_text("\n".join(_tree(t, y) for t, y in zip(texts, labels)) + "\n")
    cache = base / "cache"
    save_checkpoint(cache / "bilstm-sst5.pt", model, vocabulary, {"zoo_name": "bilstm-sst5"})
    return data, cache, len(texts), sum(len(t) >= 10 for t in texts)


# ------------------------------------------------------------------------------------------------------------------
# Word relevance and deletion
# ------------------------------------------------------------------------------------------------------------------


class SumOfEmbeddings(nn.Module):
    """logits = the sum of the word embeddings (E = C = 2): deleting a word removes exactly its embedding."""

    def forward(self, embeddings: Tensor, lengths: Tensor) -> Tensor:
        return embeddings.sum(1)


def _hand_made() -> Tuple[nn.Module, nn.Embedding, List[List[int]], List[int]]:
    embedding = nn.Embedding(5, 2, padding_idx=0)
    with torch.no_grad():  # id: 1 strongly class 0, 2 weakly class 0, 3 weakly class 1, 4 strongly class 1
        embedding.weight.copy_(torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 3.0]]))
    sentences = [
        [1, 2, 3, 3],  # class 0, logits (3, 2): correct; deleting the "1" flips it
        [1, 1, 3],  # class 0, logits (4, 1): correct; survives one deletion, not two
        [4, 1, 1],  # class 1, logits (4, 3): wrong; deleting one "1" (relevance 0) fixes it
        [3, 1, 2],  # class 1, logits (3, 1): wrong; one deletion ties (argmax 0), two fix it
    ]
    return SumOfEmbeddings(), embedding, sentences, [0, 0, 1, 1]


def test_deletion_curves_on_a_hand_made_model() -> None:
    model, embedding, ids, labels = _hand_made()
    sentences = embed_sentences(embedding, ids, labels, pad_index=0, batch_size=2)
    relevance = word_relevance(WORD_RELEVANCE["Gradient x Input"](model), sentences, sentences.labels)
    expected = torch.tensor([[2.0, 1.0, 0.0, 0.0], [2.0, 2.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    assert torch.equal(relevance, expected.double())  # x * grad of the true logit = the word's own contribution
    correct, wrong = deletion_curves(model, sentences, relevance, max_deletions=2)
    assert correct.tolist() == [1.0, 0.5, 0.0]
    assert wrong.tolist() == [0.0, 0.5, 1.0]


def test_every_method_gives_one_relevance_per_word_and_zero_past_the_end() -> None:
    torch.manual_seed(0)
    model = LSTMClassifier(12, embedding_dim=3, hidden_size=2, num_classes=5, output_bias=False).eval()
    sentences = embed_sentences(model.embedding, [[2, 3, 4], [5, 6], [7, 8, 9, 10]], [0, 4, 2], 0, batch_size=2)
    for name, build in WORD_RELEVANCE.items():
        relevance = word_relevance(build(model.forward_embeddings), sentences, sentences.labels)
        assert relevance.shape == (3, 4), name
        assert relevance[1, 2:].abs().max() == 0 and relevance[0, 3] == 0, name
        if name == "SA":
            assert (relevance >= 0).all()


# ------------------------------------------------------------------------------------------------------------------
# The examples
# ------------------------------------------------------------------------------------------------------------------


def test_find_examples_exact_loose_and_missing() -> None:
    tokens = [("it", "never", "fails", "to", "engage", "us", "."), ("do", "n't", "waste", "your", "cash", ".")]
    matches = find_examples(PAPER_EXAMPLES, tokens)
    assert len(matches) == 21
    assert matches[20].sentence == 0 and matches[20].similarity == 1.0
    assert matches[0].sentence == 1 and 0.8 <= matches[0].similarity < 1.0  # "money" -> "cash"
    assert all(m.sentence is None for m in matches[1:20])


# ------------------------------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------------------------------


def test_registry_feeds_the_cli() -> None:
    assert {"arras2017", "lrp-speed", "hechtlinger2016", "leaderboard"} <= set(BENCHMARKS)
    assert BENCHMARKS["arras2017"].default_out == Path("benchmarks/results/arras2017")


def test_every_registered_benchmark_names_a_module_with_its_runner() -> None:
    for benchmark in BENCHMARKS.values():
        module = importlib.import_module(f"captum_text_ext.benchmarks.{benchmark.module}")
        assert callable(getattr(module, f"run_{benchmark.module}")), benchmark.name


def test_command_writes_every_file_with_its_provenance_first(tmp_path: Path, monkeypatch, capsys) -> None:
    data, cache, count, long_ones = make_tiny_setup(tmp_path)
    monkeypatch.setattr(arras2017, "EXPECTED_COUNTS", (count, long_ones))
    out = tmp_path / "results"
    argv = ["benchmark", "arras2017", "--out", str(out), "--data-root", str(data), "--cache-dir", str(cache)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    command = "captum-text-ext " + " ".join(argv)
    for name in ("deletion.md", "table1.md", "examples.md", "heatmaps.html"):
        text = (out / name).read_text(encoding="utf-8")
        assert text.startswith(f"<!-- provenance\ncommand: {command}\n"), name
        assert "sha256=" in text.split("-->")[0], name
    payload = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert list(payload) == ["provenance", "results"] and payload["provenance"]["command"] == command
    assert set(payload["provenance"]["files"]) == {"checkpoint", "sst/test.txt"}
    for name in ("deletion.png", "fig1_sa.png", "fig2_lrp.png"):
        assert Image.open(out / name).text["Description"].startswith(f"command: {command}"), name

    results = payload["results"]
    assert results["sentences"] == long_ones and results["correct"] > 0 and results["misclassified"] > 0
    assert set(results["curves"]) == {"LRP", "LRP_cons", "SA", "Gradient x Input", "IG", "random"}
    assert all(len(c["correct"]) == 6 and c["correct"][0] == 1.0 and c["misclassified"][0] == 0.0
               for c in results["curves"].values())
    lrp_row = " ".join(f"{100 * v:.1f}" for v in results["curves"]["LRP"]["correct"])
    assert f"  {'LRP':<17} {lrp_row}\n" in printed  # printed = written
    deletion = (out / "deletion.md").read_text(encoding="utf-8")
    assert "| LRP | " + " | ".join(lrp_row.split()) in deletion
    assert "examples: 2 of 21 found" in printed
    assert [c["agrees"] for c in results["word_signs"]][1:] == ["n/a"] * 10  # only example 1 is in the set
    assert 0 <= results["lrp_amplification"]["sentences_off_by_more_than_score"] <= count
    html = (out / "heatmaps.html").read_text(encoding="utf-8")
    assert html.count('class="heatmap-row"') == 4  # 2 sentences x (LRP, SA)
    table1 = (out / "table1.md").read_text(encoding="utf-8")
    top_lrp = results["occurrence"]["LRP"]["most"][0]["word"]
    assert f"table 1, LRP most relevant: {top_lrp}" in printed and top_lrp in table1


def test_unexpected_test_set_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    data, cache, _, _ = make_tiny_setup(tmp_path)
    argv = ["benchmark", "arras2017", "--out", str(tmp_path / "r"), "--data-root", str(data), "--cache-dir",
            str(cache)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Expected the SST test split to hold 2210 sentences" in err


def test_missing_model_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    data, _, _, _ = make_tiny_setup(tmp_path)
    argv = ["benchmark", "arras2017", "--out", str(tmp_path / "r"), "--data-root", str(data), "--cache-dir",
            str(tmp_path / "empty")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "captum-text-ext train bilstm-sst5" in err
