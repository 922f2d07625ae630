"""attribute_corpus and load_attributions in one process: the scores the registry gives, the odd inputs, the
storage, resuming after damage, and loading that opens only the shards it needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _corpus_helpers import command, tiny_checkpoint, write_texts

from captum_text_ext.cli import main
from captum_text_ext.corpus import Text, attribute_corpus, load_attributions
from captum_text_ext.corpus.plan import example_seed
from captum_text_ext.corpus.storage import FLOAT16_ABSOLUTE_ERROR, FLOAT16_RELATIVE_ERROR, shard_path
from captum_text_ext.explain import METHODS, LayerBatch
from captum_text_ext.models import load_checkpoint

METHODS_RUN = ["lrp", "integrated_gradients", "shapley_value_sampling"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("runner")
    checkpoint = load_checkpoint(tiny_checkpoint(base / "tiny.pt"))
    texts = [" ".join(line.split()) for line in write_texts(base / "t.txt", 30).read_text().splitlines()]
    return {"base": base, "model": checkpoint.model, "vocabulary": checkpoint.vocabulary, "texts": texts}


def _run(tiny: dict, out: Path, texts=None, **options):
    options = {"window": 8, "batch_size": 4, "progress": False, **options}
    return attribute_corpus(tiny["model"], tiny["vocabulary"], texts or tiny["texts"], METHODS_RUN, out, **options)


def test_scores_are_the_registrys_and_sampling_ones_follow_each_examples_seed(tiny: dict, tmp_path: Path) -> None:
    _run(tiny, tmp_path / "run", seed=5)
    result = load_attributions(tmp_path / "run")
    model, vocabulary = tiny["model"], tiny["vocabulary"]
    for i in (0, 7, 29):
        ids = torch.tensor([vocabulary.encode(result.tokens(i))])
        batch = LayerBatch(model.embedding, ids, torch.tensor([ids.shape[1]]), 2)
        target = result.targets[i : i + 1]
        for key in ("lrp", "integrated_gradients"):  # batched in the run: equal up to float32 rounding
            alone = METHODS[key].token_scores(model, batch, target)[0]
            assert torch.allclose(result.scores(key)[i], alone.float(), rtol=1e-5, atol=1e-7), (key, i)
        with torch.random.fork_rng():
            torch.manual_seed(example_seed(5, result.ids[i]))
            alone = METHODS["shapley_value_sampling"].token_scores(model, batch, target)[0]
        assert torch.equal(result.scores("shapley_value_sampling")[i], alone.float())
    assert result.ids == [str(i) for i in range(30)] and torch.equal(result.targets, result.predictions)


def test_batch_composition_changes_no_sampling_score(tiny: dict, tmp_path: Path) -> None:
    _run(tiny, tmp_path / "fours", texts=tiny["texts"][:12])
    _run(tiny, tmp_path / "ones", texts=tiny["texts"][:12], batch_size=1, window=5)
    fours, ones = load_attributions(tmp_path / "fours"), load_attributions(tmp_path / "ones")
    for a, b in zip(fours.scores("shapley_value_sampling"), ones.scores("shapley_value_sampling")):
        assert torch.equal(a, b)


def test_odd_examples_are_handled_and_said(tiny: dict, tmp_path: Path) -> None:
    texts = [Text("a", tiny["texts"][0]), Text("blank", "   "), Text("b", "¿¡ …"), Text("c", "zzz qqq"),
             Text("d", tiny["texts"][1])]
    run = _run(tiny, tmp_path / "run", texts=texts)
    result = load_attributions(tmp_path / "run")
    assert result.ids == ["a", "c", "d"] and run.examples == 3
    assert result.skipped == {"blank": "empty text", "b": "tokenizes to nothing"}
    assert run.unknown_words["only_unknown"] == ["c"] and run.unknown_words["count"] == 2
    assert result.tokens(1) == ["zzz", "qqq"] and result.scores("lrp")[1].shape == (2,)


def test_loading_opens_only_the_shards_it_needs(tiny: dict, tmp_path: Path) -> None:
    _run(tiny, tmp_path / "run")
    result = load_attributions(tmp_path / "run")
    assert result.opened_shards == [] and len(result) == 30 and len(result.manifest["shards"]) == 4
    assert result.scores("lrp")[9].shape == (len(result.tokens(9)),)
    assert result.opened_shards == ["shards/shard-000001.safetensors"]
    list(result.scores("integrated_gradients")[16:18])
    assert len(result.opened_shards) == 2
    assert result.predictions.shape == (30,) and len(result.opened_shards) == 2  # from the index, not the shards


def test_float16_storage_keeps_the_stated_error(tiny: dict, tmp_path: Path) -> None:
    _run(tiny, tmp_path / "f32")
    _run(tiny, tmp_path / "f16", storage_dtype="float16")
    full, half = load_attributions(tmp_path / "f32"), load_attributions(tmp_path / "f16")
    assert shard_path(tmp_path / "f16", 0).stat().st_size < shard_path(tmp_path / "f32", 0).stat().st_size
    for method in METHODS_RUN:
        for exact, stored in zip(full.scores(method), half.scores(method)):
            bound = torch.maximum(FLOAT16_RELATIVE_ERROR * exact.abs(), torch.tensor(FLOAT16_ABSOLUTE_ERROR))
            assert bool(((stored - exact).abs() <= bound).all()), method
    assert half.settings["storage_dtype"] == "float16"


def test_resume_recomputes_exactly_the_missing_and_damaged_shards(tiny: dict, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(tiny, out)
    clean = load_attributions(out)
    reference = {m: list(clean.scores(m)) for m in METHODS_RUN}
    shard_path(out, 1).unlink()  # never written
    damaged = shard_path(out, 2)
    damaged.write_bytes(damaged.read_bytes()[:-50])  # torn
    partial = damaged.parent / f".{damaged.name}.killed.tmp"
    partial.write_bytes(b"half a shard")
    kept = shard_path(out, 3).stat().st_mtime_ns
    with pytest.raises(ValueError, match="holds a run already; pass --resume"):
        _run(tiny, out)
    with pytest.raises(ValueError, match="other settings.*seed: 0 then, 1 now"):
        _run(tiny, out, resume=True, seed=1)
    with pytest.raises(ValueError, match="not the file the run wrote"):
        list(load_attributions(out).scores("lrp")[16:18])
    run = _run(tiny, out, resume=True)
    assert run.shards_computed == 2 and run.attempt == 2
    assert shard_path(out, 3).stat().st_mtime_ns == kept and not partial.exists()
    resumed = load_attributions(out)
    for method in METHODS_RUN:
        assert all(torch.equal(a, b) for a, b in zip(resumed.scores(method), reference[method]))


def test_bad_inputs_fail_before_anything_is_written(tiny: dict, tmp_path: Path, capsys) -> None:
    checkpoint = tmp_path / "tiny.pt"
    tiny_checkpoint(checkpoint)
    texts = write_texts(tmp_path / "t.txt", 4)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("good\ncaf\xe9 film\n".encode("latin-1"))
    cases = [
        (command(tmp_path / "missing.pt", texts, tmp_path / "a"), "No such file"),
        (command(checkpoint, latin, tmp_path / "b"), "is not UTF-8: byte 8 (line 2)"),
        (command(checkpoint, texts, tmp_path / "c", methods="deep_lift"),
         "'deep_lift' does not apply to this model: Captum's DeepLift"),
        ([*command(checkpoint, texts, tmp_path / "d"), "--target", "label"], "gold label"),
    ]
    for arguments, message in cases:
        assert main(arguments) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert not any((tmp_path / name).exists() for name in "abcd")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "notes.txt").write_text("mine")
    assert main(command(checkpoint, texts, tmp_path / "e")) == 2
    assert "is not empty and holds no run" in capsys.readouterr().err
    tiny["model"].train()
    try:
        with pytest.raises(ValueError, match="evaluation mode"):
            _run(tiny, tmp_path / "f")
    finally:
        tiny["model"].eval()


def test_a_transformer_run_per_subword_cuts_long_texts_and_says_so(tmp_path: Path) -> None:
    from _transformer_models import require_extra

    require_extra("tokenizers")
    require_extra("transformers")
    from captum_text_ext.datasets.wordpiece import WordPieceTokenizer
    from captum_text_ext.models import TransformerClassifier

    tokenizer = WordPieceTokenizer.train([["a", "good", "movie"], ["a", "bad", "movie"], ["not", "good"]] * 5, 40)
    torch.manual_seed(0)
    model = TransformerClassifier(len(tokenizer), 2, hidden_size=8, num_heads=2, max_length=6).eval()
    run = attribute_corpus(model, tokenizer, ["a good movie", "not a bad movie at all really", "good"],
                           ["integrated_gradients"], tmp_path / "run", unit="subword", progress=False)
    result = load_attributions(tmp_path / "run")
    assert run.truncated == {"1": 3} and result.tokens(1) == ["[CLS]", "not", "a", "bad", "movie", "[SEP]"]
    assert result.scores("integrated_gradients")[1].shape == (6,)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["truncated"] == {"1": 3} and manifest["settings"]["layer"] == "hf_model.bert.embeddings"
