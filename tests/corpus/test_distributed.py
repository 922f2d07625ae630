"""The guarantees of ``captum-text-ext attribute`` across processes (``torchrun``, gloo on the CPU): the same numbers
at any world size, and kill -9 then ``--resume`` at the same or another world size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _corpus_helpers import command, kill_after_shards, run, tiny_checkpoint, write_texts

from captum_text_ext.cli import main
from captum_text_ext.corpus import as_corpus, load_attributions

N_TEXTS = 64


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("corpus")
    checkpoint = tiny_checkpoint(base / "tiny.pt")
    texts = write_texts(base / "texts.txt", N_TEXTS, extra=["", "zzz qqq"])
    reference = base / "reference"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun worker (OMP_NUM_THREADS=1)
    try:
        assert main(command(checkpoint, texts, reference)) == 0
    finally:
        torch.set_num_threads(threads)
    return {"checkpoint": checkpoint, "texts": texts, "reference": load_attributions(reference), "base": base}


def assert_same_scores(ours, reference) -> None:
    """Example by example, every method within 1e-6 of the example's largest |score| (float32)."""
    assert ours.ids == reference.ids and len(ours) == N_TEXTS + 1
    assert [ours.example_hash(i) for i in range(len(ours))] == [reference.example_hash(i)
                                                                for i in range(len(reference))]
    assert torch.equal(ours.predictions, reference.predictions) and torch.equal(ours.targets, reference.targets)
    for method in reference.methods:
        for i, (mine, theirs) in enumerate(zip(ours.scores(method), reference.scores(method))):
            scale = float(theirs.abs().max())
            assert float((mine - theirs).abs().max()) <= 1e-6 * scale, (method, i)


def test_two_processes_give_the_single_process_numbers(inputs: dict) -> None:
    out = inputs["base"] / "two"
    printed = run(command(inputs["checkpoint"], inputs["texts"], out), processes=2)
    assert "on 2 process(es)" in printed and printed.count("attributed") == 1  # rank 0 alone prints
    two = load_attributions(out)
    assert_same_scores(two, inputs["reference"])
    assert {shard["rank"] for shard in two.manifest["shards"]} == {0, 1}
    assert two.ids == [item.id for item in as_corpus(inputs["texts"]).items(0, N_TEXTS + 1)]


def _written(out: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in (out / "shards").glob("shard-*.safetensors")}


@pytest.mark.parametrize(("first", "then"), [(None, 2), (2, None)])
def test_a_run_killed_mid_way_resumes_at_another_world_size(inputs: dict, first, then) -> None:
    """kill -9 (every process), then --resume: every example once (by id and content hash), the shards written
    before the kill kept as they were, no partial file left, and the numbers of an uninterrupted run."""
    out = inputs["base"] / f"killed-{first}-{then}"
    arguments = command(inputs["checkpoint"], inputs["texts"], out)
    kill_after_shards(arguments, first, shards=3)
    before = _written(out)
    assert 3 <= len(before) < 9  # mid-way: 9 windows of 8 texts
    with pytest.raises(ValueError, match="not complete"):
        load_attributions(out)
    if then is None:
        assert main([*arguments, "--resume"]) == 0
    else:
        run([*arguments, "--resume"], processes=then)
    resumed = load_attributions(out)
    assert_same_scores(resumed, inputs["reference"])
    after = _written(out)
    assert all(after[name] == stamp for name, stamp in before.items())  # never recomputed
    attempts = {shard["file"].rsplit("/", 1)[-1]: shard["attempt"] for shard in resumed.manifest["shards"]}
    assert {name for name, attempt in attempts.items() if attempt == 1} == set(before)
    assert [a["world_size"] for a in resumed.manifest["attempts"]] == [first or 1, then or 1]
    assert not list((out / "shards").glob(".*"))  # no temporary file left
