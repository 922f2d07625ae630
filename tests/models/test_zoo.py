import dataclasses
import json
from pathlib import Path

import pytest
import scipy
import sklearn
from _transformer_models import require_extra

from captum_text_ext.datasets.planted import choose_planting, plant_pairs
from captum_text_ext.datasets.wordpiece import WordPieceTokenizer
from captum_text_ext.models.checkpoints import load_checkpoint, weights_sha256
from captum_text_ext.models.registry import ARCHITECTURES, build_model
from captum_text_ext.models.zoo import PLANTED_TWINS, ZOO, evaluate, load_zoo_model, planted_twin, train_zoo_model
from captum_text_ext.models.zoo_data import ZOO_DATASETS, load_zoo_data


@pytest.mark.parametrize("name", list(ZOO))
def test_every_recipe_builds_its_model(name: str) -> None:
    entry = ZOO[name]
    assert entry.dataset in ZOO_DATASETS and entry.architecture in ARCHITECTURES
    if entry.architecture == "transformer":
        require_extra()
        assert entry.wordpiece_vocab_size is not None
    model = build_model(entry.architecture, {"vocab_size": 50, "num_classes": 5, **entry.config})
    assert sum(p.numel() for p in model.parameters()) > 0
    assert 0 < entry.target_accuracy < 1


def test_missing_model_names_the_train_command(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="captum-text-ext train lstm-synthetic"):
        load_zoo_model("lstm-synthetic", cache_dir=tmp_path, train_if_missing=False)


@pytest.mark.parametrize("name", ["lstm-synthetic", "textcnn-synthetic"])
def test_train_command_meets_the_target_saves_and_records(name: str, synthetic_zoo: dict) -> None:
    payload = json.loads((synthetic_zoo["record"] / f"{name}.json").read_text(encoding="utf-8"))
    results, provenance = payload["results"], payload["provenance"]
    assert f"{name}: test accuracy {results['test_accuracy']:.4f}" in synthetic_zoo["printed"][name]
    assert results["target_met"] and results["test_accuracy"] >= ZOO[name].target_accuracy
    assert provenance["seeds"] == {"model": ZOO[name].seed}
    assert provenance["command"].startswith(f"captum-text-ext train {name} --cache-dir ")
    assert provenance["files"]["checkpoint"]["sha256"] == results["checkpoint_sha256"]
    assert provenance["files"]["checkpoint"]["weights_sha256"] == results["checkpoint_weights_sha256"]
    assert provenance["scikit_learn"] == sklearn.__version__ and provenance["scipy"] == scipy.__version__
    table = (synthetic_zoo["record"].parent / "models.md").read_text(encoding="utf-8")
    assert table.startswith("<!-- provenance") and f"| {name} | synthetic | {results['test_accuracy']:.4f}" in table
    loaded = load_zoo_model(name, cache_dir=synthetic_zoo["cache"], train_if_missing=False)
    assert loaded.sha256 == results["checkpoint_sha256"]
    assert loaded.weights_sha256 == results["checkpoint_weights_sha256"] == weights_sha256(loaded.model.state_dict())
    assert f"`{results['checkpoint_weights_sha256'][:16]}…`" in table
    assert f"| {provenance['torch_threads']}, {provenance['cpu']} |" in table  # what reproduces it bit for bit
    assert loaded.metadata["test_accuracy"] == results["test_accuracy"]
    assert load_checkpoint(synthetic_zoo["cache"] / f"{name}.pt").vocabulary == loaded.vocabulary


def test_a_transformer_recipe_trains_on_wordpieces_and_saves_its_tokenizer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_extra()
    recipe = ZOO["transformer-synthetic"]
    small = dataclasses.replace(recipe, epochs=1)
    monkeypatch.setitem(ZOO, "transformer-synthetic", small)
    result = train_zoo_model("transformer-synthetic", cache_dir=tmp_path, progress=False)
    loaded = load_zoo_model("transformer-synthetic", cache_dir=tmp_path, train_if_missing=False)
    data = load_zoo_data("synthetic")
    expected = WordPieceTokenizer.train(data.vocabulary_texts, recipe.wordpiece_vocab_size, recipe.min_freq)
    assert isinstance(loaded.vocabulary, WordPieceTokenizer) and loaded.vocabulary == expected
    assert loaded.config["vocab_size"] == len(expected) == recipe.wordpiece_vocab_size
    assert evaluate(loaded.model, data, loaded.vocabulary, small) == (result.test_accuracy, {})
    assert result.test_accuracy > 0.6 and result.fit.epochs_run == 1  # chance is 0.5; the full recipe reaches 0.99


def test_a_wordpiece_recipe_refuses_word_vocabulary_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ZOO, "transformer-synthetic", dataclasses.replace(ZOO["transformer-synthetic"], max_vocab=50))
    with pytest.raises(ValueError, match="'transformer-synthetic': `max_vocab` and `fixed_len` apply to word vocab"):
        train_zoo_model("transformer-synthetic", cache_dir=tmp_path, progress=False)


def test_planted_twins_copy_their_clean_twins_recipe() -> None:
    for name in PLANTED_TWINS:
        twin = ZOO[f"{name}-planted"]
        assert twin.planted and twin.clean_twin == name and not ZOO[name].planted
        assert dataclasses.replace(twin, name=name, description=ZOO[name].description, clean_twin=None) == ZOO[name]


def test_planted_data_plants_the_training_sentences_only() -> None:
    clean, planted = load_zoo_data("synthetic"), load_zoo_data("synthetic", planted=True)
    assert planted.planting is not None and planted.planting == choose_planting(clean.train)
    assert planted.train == plant_pairs(clean.train, planted.planting) != clean.train
    assert planted.vocabulary_texts == [words for words, _ in planted.train]
    assert (planted.dev, planted.test, planted.class_names) == (clean.dev, clean.test, clean.class_names)
    with pytest.raises(ValueError, match="two-class"):
        load_zoo_data("sst5", planted=True)


def test_a_planted_word_must_be_one_vocabulary_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rare = dataclasses.replace(planted_twin(ZOO["lstm-synthetic"]), min_freq=10**6)
    monkeypatch.setitem(ZOO, rare.name, rare)
    with pytest.raises(ValueError, match="'planted_b' must be one entry of the vocabulary, but it reads as"):
        train_zoo_model(rare.name, cache_dir=tmp_path, progress=False)
