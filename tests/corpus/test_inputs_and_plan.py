"""Files of texts, corpora, the batch plan and the per-example seeds, and the storage's small parts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_text_ext.corpus import Text, as_corpus, read_texts, zoo_dataset
from captum_text_ext.corpus.plan import deal, example_seed, plan_batches, window_count
from captum_text_ext.corpus.storage import (
    FLOAT16_ABSOLUTE_ERROR,
    FLOAT16_MAX,
    FLOAT16_RELATIVE_ERROR,
    FORMAT,
    FORMAT_VERSION,
    CorruptShardError,
    ShardContent,
    ShardFile,
    encode_shard,
    to_storage,
    write_atomically,
)
from captum_text_ext.corpus.texts import iter_texts


def test_plain_files_number_their_lines_and_skip_blank_ones(tmp_path: Path) -> None:
    path = tmp_path / "texts.txt"
    path.write_bytes(b"\xef\xbb\xbfa good film\r\n\n  \ncaf\xc3\xa9 noir\n")
    read = read_texts(path)
    assert [(t.id, t.text) for t in read.texts] == [("1", "a good film"), ("4", "café noir")]
    assert read.skipped == {"2": "blank line", "3": "blank line"}
    line = [item for item in iter_texts(path) if item.text is not None][1]
    assert list(iter_texts(path, (line.offset, line.number)))[0].text == Text("4", "café noir")


@pytest.mark.parametrize(("content", "message"), [
    (b'{"text": "ok"}\n[1, 2]\n', "line 2: expected a JSON object with a string `text` field"),
    (b'{"text": "ok"}\n{"text": "x", "id": 1.5}\n', "line 2: expected `id` to be a string or an integer"),
    (b'{"text": "ok", "id": "a"}\n{"text": "x", "id": "a"}\n', "the id 'a' is given twice (lines 1 and 2)"),
    (b'{"text": "ok"\n', "line 1: not a JSON object"),
    (b"\n\n", "holds no text"),
    (b'{"text": "ok"}\n{"text": "caf\xe9"}\n', "is not UTF-8: byte 28 (line 2)"),
])
def test_bad_files_are_refused_naming_the_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "texts.jsonl"
    path.write_bytes(content)
    with pytest.raises(ValueError) as error:
        read_texts(path)
    assert message in str(error.value)


def test_jsonl_ids_and_corpora_from_files_and_lists(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "one", "id": 7}\n\n{"text": "two"}\n', encoding="utf-8")
    corpus = as_corpus(path)
    assert [i.id for i in corpus.items(0, 2)] == ["7", "3"] and corpus.skipped() == {"line 2": "blank line"}
    assert [(i.id, i.words, i.label) for i in as_corpus([(["a", "b"], 1)]).items(0, 1)] == [("0", ("a", "b"), 1)]
    scan = corpus.scan(1)
    assert scan.count == 2 and len(scan.window_hashes) == 2 and scan.unlabelled == 2
    assert as_corpus(["x", "y"]).scan(5).fingerprint != as_corpus(["x", "z"]).scan(5).fingerprint
    with pytest.raises(ValueError, match="gives the id 'a' more than once"):
        as_corpus([Text("a", "x"), Text("b", "y"), Text("a", "z")]).scan(2)
    with pytest.raises(TypeError, match="item 0 is int"):
        as_corpus([3])


def test_zoo_splits_are_named_as_the_zoo_names_them(shared_data_dir: Path) -> None:
    corpus = zoo_dataset("sst2:train", shared_data_dir)
    first = corpus.items(0, 1)[0]
    assert len(corpus) == 6920 and first.label in (0, 1) and first.words == tuple(w.lower() for w in first.words)
    for spec, message in (("sst2", "NAME:SPLIT"), ("sst9:train", "dataset"), ("sst2:valid", "split")):
        with pytest.raises(ValueError, match=message):
            zoo_dataset(spec, shared_data_dir)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=60), st.integers(1, 9), st.integers(1, 120))
def test_every_example_is_in_one_batch_within_the_limits(lengths, batch_size, budget) -> None:
    batches = plan_batches(lengths, batch_size, budget)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) <= batch_size and (len(batch) == 1 or len(batch) * longest <= budget)
    order = [i for batch in batches for i in batch]
    assert [lengths[i] for i in order] == sorted(lengths)


@given(st.integers(1, 50), st.integers(1, 6))
def test_dealing_gives_every_window_to_one_rank(windows, world_size) -> None:
    dealt = [deal(list(range(windows)), rank, world_size) for rank in range(world_size)]
    assert sorted(w for mine in dealt for w in mine) == list(range(windows))
    assert window_count(windows * 3 - 1, 3) == windows


def test_example_seeds_depend_on_the_run_seed_and_the_id_only() -> None:
    seeds = {example_seed(seed, identifier) for seed in range(3) for identifier in ("a", "b", "17")}
    assert len(seeds) == 9 and all(0 <= s < 2**63 for s in seeds)
    assert example_seed(0, "a") == example_seed(0, "a")


def test_float16_storage_keeps_its_stated_error_and_refuses_what_it_cannot_hold() -> None:
    exact = torch.cat([torch.logspace(-9, 4.8, 2000, dtype=torch.float64), -torch.logspace(-9, 4.8, 50,
                                                                                            dtype=torch.float64)])
    stored = to_storage(exact, "float16", "m").double()
    bound = torch.maximum(FLOAT16_RELATIVE_ERROR * exact.abs(), torch.full_like(exact, FLOAT16_ABSOLUTE_ERROR))
    assert bool(((stored - exact).abs() <= bound).all())
    with pytest.raises(ValueError, match="beyond float16's largest 65504"):
        to_storage(torch.tensor([FLOAT16_MAX * 1.01]), "float16", "m")
    with pytest.raises(ValueError, match="non-finite"):
        to_storage(torch.tensor([float("nan")]), "float32", "m")


def test_atomic_writes_leave_no_partial_file_and_torn_shards_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "shards" / "shard-000000.safetensors"
    write_atomically(path, b"not a shard")
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    with pytest.raises(CorruptShardError, match="cannot be read"):
        ShardFile(path).metadata
    with pytest.raises(CorruptShardError, match="SHA-256 differs"):
        ShardFile(path, sha256="0" * 64).metadata


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/self/maps (Linux)")
def test_a_tensor_read_from_a_shard_does_not_keep_the_file_mapped(tmp_path: Path) -> None:
    """A tensor viewing safetensors' memory map keeps the file's pages resident while it lives: a run's index, built
    from every shard, grew rank 0's memory with the corpus that way."""
    content = ShardContent(["a", "b"], [["x"], ["y", "z"]], ["h1", "h2"], [0, 1], [0, 1], [1, 0], [0.9, 0.8],
                           {"lrp": [torch.ones(1), torch.ones(2)]}, {}, {}, {})
    path = tmp_path / "shard.safetensors"
    write_atomically(path, encode_shard(content, "float32", {"format": FORMAT, "format_version": str(FORMAT_VERSION)}))
    tensors = [ShardFile(path).tensor(name) for name in ("predicted", "probability")]
    assert tensors[0].tolist() == [0, 1]
    assert str(path) not in Path("/proc/self/maps").read_text()
