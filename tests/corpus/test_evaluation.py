"""``captum-text-ext evaluate``: the metrics of a saved run, recomputed from the model the run names, and its
refusals (an incomplete run, another model, a metric the corpus or the stored scores cannot give)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import List, Tuple

import pytest
import torch
from _corpus_helpers import command, tiny_checkpoint, write_texts

from captum_text_ext.cli import main
from captum_text_ext.corpus import attribute_corpus, load_attributions
from captum_text_ext.corpus.evaluation import GROUND_TRUTH_METRICS, NOT_FROM_SAVED_SCORES, REMOVAL_METRICS
from captum_text_ext.corpus.source import CorpusItem, ListCorpus
from captum_text_ext.corpus.storage import MANIFEST
from captum_text_ext.datasets import load_synthetic
from captum_text_ext.datasets.synthetic import annotate
from captum_text_ext.metrics import comprehensiveness, ground_truth, insertion_curve, naopc, top1_precision
from captum_text_ext.models import LSTMClassifier, embedding_forward, load_checkpoint, save_checkpoint

METHODS_RUN = "lrp,integrated_gradients,saliency"


def _cli(arguments: List[str]) -> Tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(arguments)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def file_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A run of ``attribute --checkpoint`` over 10 texts of a file."""
    base = tmp_path_factory.mktemp("evaluate")
    checkpoint = tiny_checkpoint(base / "tiny.pt")
    texts = write_texts(base / "t.txt", 10)
    status, printed, error = _cli(command(checkpoint, texts, base / "run", methods=METHODS_RUN))
    assert status == 0, error
    return {"base": base, "checkpoint": checkpoint, "run": base / "run"}


def _copy_run(file_run: dict, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(file_run["run"], copy, ignore=shutil.ignore_patterns("evaluation.json"))
    return copy


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_removal_metrics_are_those_of_the_stored_scores_with_the_runs_model(file_run: dict) -> None:
    status, printed, error = _cli(["evaluate", str(file_run["run"]), "--quiet"])
    assert status == 0, error
    written = _read(file_run["run"] / "evaluation.json")
    provenance, results = written["provenance"], written["results"]
    assert provenance["files"]["checkpoint"]["sha256"] == load_checkpoint(file_run["checkpoint"]).sha256
    assert provenance["files"]["checkpoint"]["weights_sha256"] == load_checkpoint(file_run["checkpoint"]).weights_sha256
    assert "corpus run manifest" in provenance["files"] and results["model"]["checkpoint"] == str(
        file_run["checkpoint"].resolve())
    assert set(results["metrics"]) == set(REMOVAL_METRICS)
    # a file of texts has no ground truth, and the stored scores cannot give infidelity and the like: all stated
    assert set(results["not_computed"]) == {*GROUND_TRUTH_METRICS, *NOT_FROM_SAVED_SCORES}
    assert "not the synthetic corpus" in results["not_computed"]["top1"]
    # the tiny model's pad embedding is trained with padding_idx (zero), its <unk> embedding is not
    assert "the numbers of `zero`" in results["removals"]["pad"]
    assert "comp@pad" not in results["methods"]["lrp"]["values"]
    assert "comp@unk" in results["methods"]["lrp"]["values"]

    attributions = load_attributions(file_run["run"])
    checkpoint = load_checkpoint(file_run["checkpoint"])
    model, vocabulary = checkpoint.model, checkpoint.vocabulary
    unk = model.embedding.weight[vocabulary.unk_index].detach()
    for i in (0, 6):
        ids = torch.tensor([vocabulary.encode(attributions.tokens(i))])
        embeddings, lengths = model.embedding(ids).detach(), torch.tensor([ids.shape[1]])
        target = attributions.targets[i : i + 1]
        for method in ("lrp", "saliency"):
            scores = attributions.scores(method)[i][None]
            values = results["methods"][method]["values"]
            common = dict(forward_func=embedding_forward(model), embeddings=embeddings, lengths=lengths, scores=scores,
                          target=target)
            assert values["comp"][i] == pytest.approx(float(comprehensiveness(**common).aopc[0]), abs=1e-6)
            assert values["ins@unk"][i] == pytest.approx(float(insertion_curve(
                **common, removal="unk", replacement=unk).aopc[0]), abs=1e-6)
            assert values["NAOPC suff@unk"][i] == pytest.approx(float(naopc(
                **common, metric="sufficiency", removal="unk", replacement=unk).naopc[0]), abs=1e-6)
    summary = results["methods"]["lrp"]["summary"]["del"]
    assert summary["n"] == 10 and summary["mean"] == pytest.approx(sum(results["methods"]["lrp"]["values"]["del"]) / 10)
    assert printed.splitlines()[-1] == f"wrote {file_run['run'] / 'evaluation.json'}"


def test_a_metric_the_run_cannot_give_is_refused_by_name(file_run: dict, tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    status, _, error = _cli(["evaluate", str(file_run["run"]), "--metrics", "comp,top1", "--out", str(out)])
    assert status == 2 and "top1 needs the synthetic corpus's ground truth" in error and not out.exists()
    status, _, error = _cli(["evaluate", str(file_run["run"]), "--metrics", "infid", "--out", str(out)])
    assert status == 2 and "infid cannot be computed from a saved run" in error
    status, _, error = _cli(["evaluate", str(file_run["run"]), "--removals", "drop", "--out", str(out)])
    assert status == 2 and "Expected removals among" in error and not out.exists()
    status, _, error = _cli(["evaluate", str(file_run["run"]), "--removals", "", "--out", str(out)])
    assert status == 2 and "Expected at least one removal" in error and not out.exists()


def test_a_pad_removal_asked_alone_is_computed_even_when_it_equals_zeroing(file_run: dict, tmp_path: Path) -> None:
    status, _, error = _cli(["evaluate", str(file_run["run"]), "--removals", "pad", "--metrics", "comp", "--out",
                             str(tmp_path / "pad.json"), "--quiet"])
    assert status == 0, error
    status, _, error = _cli(["evaluate", str(file_run["run"]), "--removals", "zero", "--metrics", "comp", "--out",
                             str(tmp_path / "zero.json"), "--quiet"])
    assert status == 0, error
    pad = _read(tmp_path / "pad.json")["results"]["methods"]["lrp"]["values"]["comp@pad"]
    zero = _read(tmp_path / "zero.json")["results"]["methods"]["lrp"]["values"]["comp"]
    assert pad == pytest.approx(zero, abs=1e-7)  # the pad embedding is the zero vector: replacing by it is zeroing


def test_an_incomplete_run_is_refused(file_run: dict, tmp_path: Path) -> None:
    run = _copy_run(file_run, tmp_path)
    manifest = _read(run / MANIFEST)
    (run / MANIFEST).write_text(json.dumps({**manifest, "complete": False}), encoding="utf-8")
    status, _, error = _cli(["evaluate", str(run)])
    assert status == 2 and "is not complete" in error and not (run / "evaluation.json").exists()
    status, _, error = _cli(["evaluate", str(tmp_path / "nothing")])
    assert status == 2 and "holds no corpus run" in error


def test_another_checkpoint_than_the_runs_is_refused(file_run: dict, tmp_path: Path) -> None:
    run = _copy_run(file_run, tmp_path)
    checkpoint = load_checkpoint(file_run["checkpoint"])
    torch.manual_seed(1)
    other = LSTMClassifier(len(checkpoint.vocabulary), embedding_dim=8, hidden_size=6, num_classes=2,
                           bidirectional=True)
    save_checkpoint(tmp_path / "other.pt", other, checkpoint.vocabulary, checkpoint.metadata)
    status, _, error = _cli(["evaluate", str(run), "--checkpoint", str(tmp_path / "other.pt")])
    assert status == 2 and "weights differ" in error and checkpoint.weights_sha256 in error
    # the run names its checkpoint by path: replaced by other weights there, it is refused too
    manifest = _read(run / MANIFEST)
    manifest["model"]["checkpoint"] = str(tmp_path / "other.pt")
    (run / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    status, _, error = _cli(["evaluate", str(run)])
    assert status == 2 and "weights differ" in error and not (run / "evaluation.json").exists()
    # a run that does not name its model (written before it did) compares the checkpoint file's sha256
    manifest["model"] = None
    (run / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    status, _, error = _cli(["evaluate", str(run)])
    assert status == 2 and "does not name its model" in error
    status, _, error = _cli(["evaluate", str(run), "--checkpoint", str(tmp_path / "other.pt")])
    assert status == 2 and "not the one the run" in error
    status, _, error = _cli(["evaluate", str(run), "--checkpoint", str(file_run["checkpoint"]), "--metrics", "comp",
                             "--quiet"])
    assert status == 0, error


def test_zoo_model_from_the_cache_and_the_synthetic_ground_truth(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    path = tiny_checkpoint(cache / "lstm-synthetic.pt")  # the cache's lstm-synthetic, tiny and untrained
    checkpoint = load_checkpoint(path)
    examples = load_synthetic("test", n=12, seed=3)
    corpus = ListCorpus([CorpusItem(str(i), words=e.tokens, label=e.label) for i, e in enumerate(examples)],
                        "synthetic:test")
    attribute_corpus(checkpoint.model, checkpoint.vocabulary, corpus, ["lrp", "saliency"], tmp_path / "run",
                     window=8, batch_size=4, progress=False, model_sha256=checkpoint.sha256,
                     model_record={"zoo": "lstm-synthetic", "sha256": checkpoint.sha256,
                                   "weights_sha256": checkpoint.weights_sha256})
    status, _, error = _cli(["evaluate", str(tmp_path / "run"), "--cache-dir", str(cache), "--metrics",
                             "top1,sign,comp", "--removals", "zero", "--quiet"])
    assert status == 0, error
    results = _read(tmp_path / "run" / "evaluation.json")["results"]
    assert results["not_computed"] == {} and results["model"]["zoo"] == "lstm-synthetic"
    attributions = load_attributions(tmp_path / "run")
    correct = (attributions.predictions == attributions.labels).tolist()
    lrp = results["methods"]["lrp"]["values"]
    assert 0 < sum(correct) < 12  # both kinds present, so the masking is tested
    for i, example in enumerate(examples):
        if not correct[i]:
            assert lrp["top1"][i] is None and lrp["sign"][i] is None
            continue
        truth = ground_truth([annotate(example.tokens)])
        expected = top1_precision(attributions.scores("lrp")[i][None], torch.tensor([len(example.tokens)]),
                                  truth.decisive, aggregate="none")
        assert lrp["top1"][i] == pytest.approx(float(expected[0]))
    # Saliency's scores are unsigned (l2): their sign says nothing, so no sign accuracy
    assert results["methods"]["saliency"]["summary"]["sign"] == {"mean": None, "n": 0}
    assert results["methods"]["lrp"]["summary"]["top1"]["n"] == sum(correct)
    # the cached model is replaced by other weights: refused
    torch.manual_seed(2)
    other = LSTMClassifier(len(checkpoint.vocabulary), embedding_dim=8, hidden_size=6, num_classes=2,
                           bidirectional=True)
    save_checkpoint(path, other, checkpoint.vocabulary, checkpoint.metadata)
    status, _, error = _cli(["evaluate", str(tmp_path / "run"), "--cache-dir", str(cache)])
    assert status == 2 and "weights differ" in error
