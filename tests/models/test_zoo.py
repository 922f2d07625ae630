import json

import pytest

from captum_text_ext.models.checkpoints import load_checkpoint
from captum_text_ext.models.registry import ARCHITECTURES, build_model
from captum_text_ext.models.zoo import ZOO, load_zoo_model
from captum_text_ext.models.zoo_data import ZOO_DATASETS


@pytest.mark.parametrize("name", list(ZOO))
def test_every_recipe_builds_its_model(name: str) -> None:
    entry = ZOO[name]
    assert entry.dataset in ZOO_DATASETS and entry.architecture in ARCHITECTURES
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
    table = (synthetic_zoo["record"].parent / "models.md").read_text(encoding="utf-8")
    assert table.startswith("<!-- provenance") and f"| {name} | synthetic | {results['test_accuracy']:.4f}" in table
    loaded = load_zoo_model(name, cache_dir=synthetic_zoo["cache"], train_if_missing=False)
    assert loaded.sha256 == results["checkpoint_sha256"]
    assert loaded.metadata["test_accuracy"] == results["test_accuracy"]
    assert load_checkpoint(synthetic_zoo["cache"] / f"{name}.pt").vocabulary == loaded.vocabulary
