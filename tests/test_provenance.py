import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import scipy
import sklearn
import torch

from captum_text_ext import __version__
from captum_text_ext.provenance import RunRecorder, git_state, peak_rss_mb, sha256_file, write_json, write_markdown


def test_recorder_collects_every_field(tmp_path) -> None:
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"weights")
    with RunRecorder(command="captum-text-ext benchmark x --n 5", seeds={"data": 1, "model": 2}) as run:
        run.record_file("checkpoint", checkpoint)
    prov = run.provenance
    assert prov.package_version == __version__
    assert prov.torch == torch.__version__
    assert prov.seeds == {"data": 1, "model": 2}
    assert prov.files["checkpoint"] == {"path": str(checkpoint), "sha256": hashlib.sha256(b"weights").hexdigest()}
    assert (prov.scikit_learn, prov.scipy) == (sklearn.__version__, scipy.__version__)
    assert f"scikit-learn {sklearn.__version__}, scipy {scipy.__version__}" in "\n".join(prov.lines())
    assert prov.command == "captum-text-ext benchmark x --n 5"
    assert prov.wall_seconds >= 0 and prov.torch_threads >= 1 and prov.cpu


def test_recorder_runs_the_block_with_the_threads_asked_for_and_restores_them() -> None:
    before = torch.get_num_threads()
    target = 2 if before == 1 else 1
    with RunRecorder(command="x", torch_threads=target) as run:
        assert torch.get_num_threads() == target
    assert run.provenance.torch_threads == target and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="boom"):
        with RunRecorder(command="x", torch_threads=target):
            raise ValueError("boom")
    assert torch.get_num_threads() == before


def test_a_checkpoint_is_cited_by_its_weights_hash_too(tmp_path) -> None:
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"weights")
    with RunRecorder(command="x") as run:
        digest = run.record_file("model", checkpoint, weights_sha256="ab" * 32)
    assert run.provenance.files["model"] == {"path": str(checkpoint), "sha256": digest, "weights_sha256": "ab" * 32}
    assert f"file model: {checkpoint} sha256={digest} weights_sha256={'ab' * 32}" in run.provenance.lines()


def test_a_label_names_one_file_and_a_labelled_block_prefixes_its_labels(tmp_path) -> None:
    first, second = tmp_path / "seed-0.pt", tmp_path / "seed-1.pt"
    first.write_bytes(b"seed 0")
    second.write_bytes(b"seed 1")
    with RunRecorder(command="x") as run:
        run.record_file("checkpoint", first)
        run.record_file("checkpoint", first)  # the same file again: one entry
        with pytest.raises(ValueError, match="'checkpoint' to name one file in the run"):
            run.record_file("checkpoint", second)
        with run.labelled("seed 1: "):
            run.record_file("checkpoint", second)
            with run.labelled("part: "):
                run.record_file("data", second)
        run.record_file("after", first)
    assert run.provenance.files["checkpoint"]["path"] == str(first)
    assert run.provenance.files["seed 1: checkpoint"]["path"] == str(second)
    assert set(run.provenance.files) == {"checkpoint", "seed 1: checkpoint", "seed 1: part: data", "after"}


def test_provenance_is_unavailable_before_the_run_ends() -> None:
    run = RunRecorder(command="x")
    with pytest.raises(RuntimeError, match="only after"):
        _ = run.provenance


def test_markdown_and_json_files_open_with_the_provenance(tmp_path) -> None:
    with RunRecorder(command="cmd", seeds={"s": 0}) as run:
        pass
    md = tmp_path / "r" / "table.md"
    write_markdown(md, run.provenance, "| a |\n|---|\n| 1 |")
    text = md.read_text()
    assert text.startswith("<!-- provenance\ncommand: cmd\n")
    assert "seeds: s=0" in text and text.rstrip().endswith("| 1 |")
    js = tmp_path / "r" / "table.json"
    write_json(js, run.provenance, {"a": 1})
    payload = json.loads(js.read_text())
    assert list(payload) == ["provenance", "results"]
    assert payload["provenance"]["command"] == "cmd" and payload["results"] == {"a": 1}


def test_git_state_reports_sha_and_dirty_flag(tmp_path) -> None:
    assert git_state(tmp_path) == {"sha": "unknown", "dirty": None}
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "f").write_text("1")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["add", "f"], cwd=tmp_path, check=True)
    subprocess.run(git + ["commit", "-qm", "c"], cwd=tmp_path, check=True)
    clean = git_state(tmp_path)
    assert len(clean["sha"]) == 40 and clean["dirty"] is False
    (tmp_path / "f").write_text("2")
    assert git_state(tmp_path)["dirty"] is True


def test_sha256_file(tmp_path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"abc" * 1000000)
    assert sha256_file(path) == hashlib.sha256(b"abc" * 1000000).hexdigest()


def test_peak_rss_mb_reads_this_process_peak() -> None:
    clear_refs = Path("/proc/self/clear_refs")
    if not clear_refs.exists():
        pytest.skip("a process's peak memory can be reset only on Linux (/proc/self/clear_refs)")
    clear_refs.write_text("5")  # the peak falls to the resident memory of now
    before = peak_rss_mb()
    block = torch.ones(64 * 1024 * 1024 // 4)  # 64 MB, written
    assert before > 0 and peak_rss_mb() >= before + 48 and float(block[-1]) == 1.0
