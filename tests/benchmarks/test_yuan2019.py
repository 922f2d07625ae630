"""The Yuan et al. (2019) reproduction and the hidden-unit speed benchmark at tiny scale: tiny CNNs and data stand in
for the zoo models, and the commands write their files with the provenance first and the numbers they print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional, Tuple

import pytest
import torch

from captum_text_ext.attr import HiddenUnitOptimization
from captum_text_ext.benchmarks import hiddenunit_speed, yuan2019
from captum_text_ext.datasets import Vocabulary
from captum_text_ext.models import KimCNN, TextCNN
from captum_text_ext.models.zoo_data import ZooData

WORDS = ["good", "bad", "fine", "dull", "film", "plot", "team", "market", "space", "game", "a", "the"]


@pytest.fixture(autouse=True)
def _one_thread():  # type: ignore[no-untyped-def]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny(dataset: str) -> Tuple[TextCNN, Vocabulary, ZooData]:
    generator = torch.Generator().manual_seed(0)
    classes = 2 if dataset == "mr" else 4
    texts = [[WORDS[int(i)] for i in torch.randint(len(WORDS), (int(n),), generator=generator)]
             for n in torch.randint(6, 12, (12,), generator=generator)]
    for _, name, keys in yuan2019.EXAMPLES:
        if name == dataset:
            texts.append(["so", *keys, "indeed", "a", "film"])
    pairs = [(tuple(t), n % classes) for n, t in enumerate(texts)]
    vocabulary = Vocabulary.build(texts)
    torch.manual_seed(0)
    model = TextCNN(len(vocabulary), 6, classes, channels=(5, 4), kernel_sizes=(3, 2)).eval()
    names = tuple(f"class{c}" for c in range(classes))
    return model, vocabulary, ZooData(dataset, pairs[:4], pairs[4:6], pairs, names, texts)


def _fast_optimizer(model: TextCNN, vocabulary: Vocabulary, dataset: str) -> HiddenUnitOptimization:
    settings = yuan2019.SETTINGS[dataset]
    return HiddenUnitOptimization(model, model.activations[0], model.embedding, vocabulary, settings["lambda1"],
                                  settings["lambda2"], lr=0.05, max_steps=30, window=5)


def _tiny_kim(run: Any, data_root: Optional[Path], cache_dir: Optional[Path]) -> Tuple[KimCNN, Vocabulary, ZooData]:
    _, vocabulary, data = _tiny("mr")
    torch.manual_seed(0)
    return KimCNN(len(vocabulary), 6, 2, num_filters=4, filter_sizes=(2, 3)).eval(), vocabulary, data


def _fast_kim_optimizer(model: KimCNN, vocabulary: Vocabulary) -> HiddenUnitOptimization:
    settings = yuan2019.KIM_SETTINGS
    return HiddenUnitOptimization(model, model.convs[0], model.embedding, vocabulary, settings["lambda1"],
                                  settings["lambda2"], lr=0.05, max_steps=30, window=5, location_dim=2)


@pytest.fixture()
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    def load(dataset: str, run: Any, data_root: Optional[Path], cache_dir: Optional[Path]) -> Any:
        return _tiny(dataset)

    for module in (yuan2019, hiddenunit_speed):
        monkeypatch.setattr(module, "load_textcnn", load)
        monkeypatch.setattr(module, "make_optimizer", _fast_optimizer)
    monkeypatch.setattr(yuan2019, "load_kimcnn", _tiny_kim)
    monkeypatch.setattr(yuan2019, "make_kim_optimizer", _fast_kim_optimizer)


ROW_NAMES = {"textcnn-mr": "MR, Yuan CNN (textcnn-mr)", "textcnn-agnews": "AG News, Yuan CNN (textcnn-agnews)",
             "kimcnn-mr": "MR, Kim CNN (kimcnn-mr)"}


def test_yuan2019_writes_tables_figures_and_the_printed_numbers(tiny: None, tmp_path: Path) -> None:
    lines = yuan2019.run_yuan2019(tmp_path, command="captum-text-ext benchmark yuan2019 --out X")
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results) == ["provenance", "results"]
    assert results["provenance"]["command"] == "captum-text-ext benchmark yuan2019 --out X"
    assert list(results["results"]["rows"]) == list(yuan2019.ROWS)
    for model, name in ROW_NAMES.items():
        row = results["results"]["rows"][model]
        assert row["sentences"] == 14 and row["dataset"] == yuan2019.ROWS[model]
        assert 0.0 <= row["matching_rate"] <= 1.0 and 0.0 <= row["random_words_matching_rate"] <= 1.0
        assert any(line.startswith(f"yuan2019: {name}: test accuracy {row['test_accuracy']:.4f}, matching rate "
                                   f"{row['matching_rate']:.3f}") for line in lines)
    table = (tmp_path / "tables.md").read_text()
    assert table.startswith("<!-- provenance") and "Table 4" in table
    assert "| MR, Kim CNN (`kimcnn-mr`) | 14 |" in table
    figures = [e["figure"] for e in results["results"]["examples"]]
    assert figures == ["Figure 2", "Figure 3", "Figure 4", "Figure 5"]
    assert all(len(e["locations"]) == 3 for e in results["results"]["examples"])
    for number in (2, 3, 4, 5):
        assert (tmp_path / f"figure{number}.png").read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "figures.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<!-- provenance" in page and page.count("<h2>") == 4


def test_a_row_is_computed_alone(tiny: None, tmp_path: Path) -> None:
    lines = yuan2019.run_yuan2019(tmp_path, command="captum-text-ext benchmark yuan2019 --models kimcnn-mr",
                                  models=["kimcnn-mr"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows-kimcnn-mr.json", "rows-kimcnn-mr.md"]
    results = json.loads((tmp_path / "rows-kimcnn-mr.json").read_text())
    row = results["results"]["rows"]["kimcnn-mr"]
    assert list(results["results"]["rows"]) == ["kimcnn-mr"] and row["sentences"] == 14
    assert lines[0].startswith(f"yuan2019: MR, Kim CNN (kimcnn-mr): test accuracy {row['test_accuracy']:.4f}")
    assert "(paper n/a;" in lines[0]
    table = (tmp_path / "rows-kimcnn-mr.md").read_text()
    assert table.startswith("<!-- provenance") and f"**{row['matching_rate']:.3f}** | — | — |" in table
    with pytest.raises(ValueError, match=r"Expected --models among \['textcnn-mr', 'textcnn-agnews', 'kimcnn-mr'\]"):
        yuan2019.run_yuan2019(tmp_path, models=["bilstm-sst5"])


def test_find_example_matches_key_words_loosely() -> None:
    _, _, data = _tiny("mr")
    tokens, _ = yuan2019.find_example(data, ("stallion", "cimarron"))
    assert "cimarron" in tokens
    with pytest.raises(LookupError, match="found none"):
        yuan2019.find_example(data, ("ganymede",))


def test_random_words_rate_draws_no_special_tokens() -> None:
    model, vocabulary, _ = _tiny("mr")
    ids = torch.tensor([[2, 3, 4], [5, 6, 7]])
    classes = model(ids).argmax(1)
    rate = yuan2019.random_words_rate(model, vocabulary, ids, classes, count=15)
    assert rate in (0.0, 0.5, 1.0)
    assert rate == yuan2019.random_words_rate(model, vocabulary, ids, classes, count=15)


def test_speed_benchmark_compares_the_same_items(tiny: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hiddenunit_speed, "SENTENCES", 5)
    monkeypatch.setattr(hiddenunit_speed, "BASELINE_SENTENCES", 2)
    lines: List[str] = hiddenunit_speed.run_hiddenunit_speed(tmp_path, command="speed")
    result = json.loads((tmp_path / "hiddenunit_speed.json").read_text())["results"]
    assert result["sentences"] == 5 and result["baseline_items"] == 6
    assert result["max_vector_difference_batched_vs_alone"] <= 1e-5
    assert result["speedup"] == pytest.approx(
        result["seconds_per_sentence"]["one location at a time"] / result["seconds_per_sentence"]["batched"])
    assert f"{result['speedup']:.1f}x" in lines[0]
    assert (tmp_path / "hiddenunit_speed.md").read_text().startswith("<!-- provenance")


def test_registry_feeds_the_cli() -> None:
    from captum_text_ext.benchmarks import BENCHMARKS

    assert BENCHMARKS["yuan2019"].default_out == Path("benchmarks/results/yuan2019")
    assert BENCHMARKS["hiddenunit-speed"].default_out == Path("benchmarks/results")
