"""Tests of ``captum_text_ext.datasets.download``, end to end against an HTTP server on 127.0.0.1.

Every test that downloads builds its own files and archives, serves them from a temporary directory (the ``server``
fixture of ``tests/datasets/conftest.py``) and passes a :class:`DownloadSpec` (or ``base_url``) to :func:`download`;
nothing reaches the internet. Archive extraction is tested in ``test_download_archive.py``.
"""

from __future__ import annotations

import gzip
import hashlib
import stat
from pathlib import Path
from typing import Tuple
from urllib.parse import unquote

import pytest
from _download_helpers import (
    DATASET,
    Server,
    checksum,
    download_module,
    tar_directory,
    tar_file,
    tar_gz,
    toy_spec,
    tree,
)

from captum_text_ext.datasets._download_fetch import verify
from captum_text_ext.datasets._paths import DATA_ENV_VAR
from captum_text_ext.datasets.download import (
    DOWNLOADS,
    ArchiveMember,
    Checksum,
    ChecksumMismatchError,
    DownloadSpec,
    RemoteFile,
    Source,
    UnsafeArchiveError,
    UnverifiedDownloadError,
    download,
    file_checksum,
)

# Stored files ---------------------------------------------------------------------------------------------------------


def test_stored_file_is_checked_by_its_git_blob_id(server: Server, tmp_path: Path) -> None:
    content = b"hello\n"
    url = server.publish("hello.txt", content)
    blob = Checksum("git-blob-sha1", "ce013625030ba8dba906f756967f9e9ca394464a", "`git hash-object` of hello\\n", True)

    out = download(toy_spec(RemoteFile(url, "hello.txt", checksums=(blob,))), tmp_path / "data", progress=False)

    assert (out / "hello.txt").read_bytes() == content
    assert tree(out) == {"hello.txt"}


def test_root_defaults_to_the_environment_variable(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "from-env"))
    url = server.publish("x.txt", b"x\n")

    out = download(toy_spec(RemoteFile(url, "x.txt", checksums=(checksum(b"x\n"),))), progress=False)

    assert out == tmp_path / "from-env" / DATASET
    assert (out / "x.txt").read_bytes() == b"x\n"


# Checksum mismatch ----------------------------------------------------------------------------------------------------


def test_checksum_mismatch_is_refused_and_leaves_no_file(server: Server, tmp_path: Path) -> None:
    url = server.publish("data.txt", b"tampered\n")
    expected = checksum(b"original\n")
    got = hashlib.sha256(b"tampered\n").hexdigest()
    out = tmp_path / "data" / DATASET
    out.mkdir(parents=True)
    (out / "data.txt").write_bytes(b"stale copy\n")  # present but not matching: fetched again, and must survive

    with pytest.raises(ChecksumMismatchError) as caught:
        download(toy_spec(RemoteFile(url, "data.txt", checksums=(expected,))), tmp_path / "data", progress=False)

    message = str(caught.value)
    for part in ("data.txt", "sha256", expected.value, got, url, expected.published_at):
        assert part in message
    assert tree(tmp_path / "data") == {DATASET, f"{DATASET}/data.txt"}  # no staging directory left
    assert (out / "data.txt").read_bytes() == b"stale copy\n"


def test_archive_checksum_mismatch_extracts_nothing(server: Server, tmp_path: Path) -> None:
    archive = tar_gz([tar_file("pack/a.txt", b"good\n")])
    url = server.publish("a.tar.gz", archive)
    wrong = checksum(archive + b"\0", "md5")
    spec = toy_spec(RemoteFile(url, "a.tar.gz", "tar.gz", (wrong,), (ArchiveMember("pack/a.txt", "a.txt"),)))

    with pytest.raises(ChecksumMismatchError, match="md5 checksum mismatch"):
        download(spec, tmp_path / "data", progress=False)

    assert tree(tmp_path / "data") == set()


def test_failed_request_leaves_no_file(server: Server, tmp_path: Path) -> None:
    missing = f"{server.url}/{DATASET}/missing.txt"

    with pytest.raises(OSError, match="missing.txt"):
        spec = toy_spec(RemoteFile(missing, "missing.txt", checksums=(checksum(b""),)))
        download(spec, tmp_path / "data", progress=False)

    assert tree(tmp_path / "data") == set()


# All files or none ----------------------------------------------------------------------------------------------------

FAILURES = ["checksum", "missing", "refused-archive", "interrupted"]


def _second_file_fails(server: Server, failure: str) -> DownloadSpec:
    """Three files of which the second fails: its checksum does not match, the server has none, it is an archive
    with a ``..`` entry, or the download is interrupted (the test makes its checksum check raise KeyboardInterrupt)."""
    first = RemoteFile(server.publish("first.txt", b"first\n"), "first.txt", checksums=(checksum(b"first\n"),))
    third = RemoteFile(server.publish("third.txt", b"third\n"), "third.txt", checksums=(checksum(b"third\n"),))
    if failure == "refused-archive":
        archive = tar_gz([tar_file("pack/a.txt", b"a\n"), tar_file("../evil.txt", b"evil\n")])
        url = server.publish("second.tar.gz", archive)
        second = RemoteFile(url, "second.tar.gz", "tar.gz", (checksum(archive),), (ArchiveMember("pack/", "pack/"),))
    else:
        url = f"{server.url}/{DATASET}/second.txt"
        if failure != "missing":
            server.publish("second.txt", b"tampered\n" if failure == "checksum" else b"second\n")
        second = RemoteFile(url, "second.txt", checksums=(checksum(b"second\n"),))
    return toy_spec(first, second, third)


def _interrupt_the_second_check(monkeypatch: pytest.MonkeyPatch, dataset_dir: Path) -> None:
    """Make the second checksum check raise KeyboardInterrupt, after asserting that nothing is installed yet."""
    checked = []

    def interrupted(path: Path, file: RemoteFile, url: str) -> None:
        checked.append(file.filename)
        if len(checked) == 2:
            assert not dataset_dir.exists() or tree(dataset_dir) == {"old.txt"}  # the first file is only staged
            raise KeyboardInterrupt
        verify(path, file, url)

    monkeypatch.setattr(download_module, "verify", interrupted)


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failing_second_file_installs_nothing(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    spec = _second_file_fails(server, failure)
    if failure == "interrupted":
        _interrupt_the_second_check(monkeypatch, tmp_path / "data" / DATASET)
    expected = {
        "checksum": ChecksumMismatchError,
        "missing": OSError,
        "refused-archive": UnsafeArchiveError,
        "interrupted": KeyboardInterrupt,
    }[failure]

    with pytest.raises(expected):
        download(spec, tmp_path / "data", progress=False)

    assert server.requests[:1] == [f"/{DATASET}/first.txt"]  # the first file was fetched (and verified) ...
    assert tree(tmp_path / "data") == set()  # ... yet no dataset directory, staging directory or temporary file


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failure_leaves_an_existing_dataset_directory_as_it_was(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    out = tmp_path / "data" / DATASET
    out.mkdir(parents=True)
    (out / "old.txt").write_bytes(b"the user's\n")
    spec = _second_file_fails(server, failure)
    if failure == "interrupted":
        _interrupt_the_second_check(monkeypatch, out)

    with pytest.raises((ValueError, OSError, KeyboardInterrupt)):
        download(spec, tmp_path / "data", progress=False)

    assert tree(tmp_path / "data") == {DATASET, f"{DATASET}/old.txt"}
    assert (out / "old.txt").read_bytes() == b"the user's\n"


def test_all_files_are_installed_together(server: Server, tmp_path: Path) -> None:
    spec = _second_file_fails(server, "interrupted")  # served correctly: nothing interrupts it here
    (tmp_path / "mkdir-made").mkdir()

    out = download(spec, tmp_path / "data", progress=False)

    assert tree(tmp_path / "data") == {DATASET, *(f"{DATASET}/{name}.txt" for name in ("first", "second", "third"))}
    assert (out / "second.txt").read_bytes() == b"second\n"
    # The staging directory renamed into place has the mode a plain mkdir gives (the umask's), not mkdtemp's 0o700.
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE((tmp_path / "mkdir-made").stat().st_mode)


def test_files_missing_from_an_existing_directory_are_added_beside_the_others(server: Server, tmp_path: Path) -> None:
    archive = tar_gz([tar_directory("pack"), tar_file("pack/new.txt", b"new\n")])
    url = server.publish("pack.tar.gz", archive)
    files = (
        RemoteFile(server.publish("kept.txt", b"kept\n"), "kept.txt", checksums=(checksum(b"kept\n"),)),
        RemoteFile(server.publish("added.txt", b"added\n"), "added.txt", checksums=(checksum(b"added\n"),)),
        RemoteFile(url, "pack.tar.gz", "tar.gz", (checksum(archive),), (ArchiveMember("pack/", "pack/"),)),
    )
    out = tmp_path / "data" / DATASET
    (out / "pack").mkdir(parents=True)
    (out / "pack" / "old.txt").write_bytes(b"replaced with the whole directory\n")
    (out / "kept.txt").write_bytes(b"kept\n")  # present and matching: not fetched again
    (out / "notes.txt").write_bytes(b"the user's\n")

    download(toy_spec(*files), tmp_path / "data", progress=False)

    assert server.requests == [f"/{DATASET}/added.txt", f"/{DATASET}/pack.tar.gz"]
    expected = {"kept.txt", "added.txt", "notes.txt", "pack", "pack/new.txt", ".pack.tar.gz.complete"}
    assert tree(tmp_path / "data") == {DATASET, *(f"{DATASET}/{path}" for path in expected)}


# Unverified entries ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("checksums", [(), (checksum(b"payload\n", verified=False),)], ids=["none", "unverified"])
def test_unverified_file_needs_allow_unverified(
    server: Server, tmp_path: Path, checksums: Tuple[Checksum, ...]
) -> None:
    url = server.publish("payload.txt", b"payload\n")
    spec = toy_spec(RemoteFile(url, "payload.txt", checksums=checksums))

    with pytest.raises(UnverifiedDownloadError, match="allow_unverified=True") as caught:
        download(spec, tmp_path / "data", progress=False)
    assert "payload.txt" in str(caught.value)
    assert server.requests == []
    assert not (tmp_path / "data").exists()

    out = download(spec, tmp_path / "data", allow_unverified=True, progress=False)
    assert (out / "payload.txt").read_bytes() == b"payload\n"


def test_unverified_checksum_is_still_enforced(server: Server, tmp_path: Path) -> None:
    url = server.publish("payload.txt", b"changed\n")
    spec = toy_spec(RemoteFile(url, "payload.txt", checksums=(checksum(b"payload\n", verified=False),)))

    with pytest.raises(ChecksumMismatchError):
        download(spec, tmp_path / "data", allow_unverified=True, progress=False)


# Idempotence ----------------------------------------------------------------------------------------------------------


def test_second_call_makes_no_request(server: Server, tmp_path: Path) -> None:
    archive = tar_gz([tar_directory("pack"), tar_file("pack/a.txt", b"alpha\n")])
    files = (
        RemoteFile(server.publish("plain.txt", b"plain\n"), "plain.txt", checksums=(checksum(b"plain\n", "md5"),)),
        RemoteFile(
            server.publish("pack.tar.gz", archive),
            "pack.tar.gz",
            "tar.gz",
            (checksum(archive),),
            (ArchiveMember("pack/", "pack/"),),
        ),
    )
    spec = toy_spec(*files)
    root = tmp_path / "data"

    out = download(spec, root, progress=False)
    assert len(server.requests) == 2
    assert download(spec, root, progress=False) == out
    assert len(server.requests) == 2

    (out / "plain.txt").write_bytes(b"damaged\n")  # no longer matches its checksum: fetched again
    download(spec, root, progress=False)
    assert server.requests[2:] == [f"/{DATASET}/plain.txt"]
    assert (out / "plain.txt").read_bytes() == b"plain\n"

    (out / ".pack.tar.gz.complete").unlink()  # extraction not known to be complete: fetched again
    download(spec, root, progress=False)
    assert server.requests[3:] == [f"/{DATASET}/pack.tar.gz"]
    assert (out / "pack" / "a.txt").read_bytes() == b"alpha\n"


def test_gzip_twin_counts_as_present(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "data" / DATASET
    out.mkdir(parents=True)
    (out / "plain.txt.gz").write_bytes(gzip.compress(b"plain\n"))
    spec = toy_spec(RemoteFile(f"{server.url}/{DATASET}/plain.txt", "plain.txt", checksums=(checksum(b"plain\n"),)))

    download(spec, tmp_path / "data", progress=False)

    assert server.requests == []


# Names, sources and spec checks ---------------------------------------------------------------------------------------


def test_unknown_name_lists_the_known_names() -> None:
    with pytest.raises(ValueError, match="got 'nope'") as caught:
        download("nope")
    for name in ("sst", "mr", "ag_news", "imdb", "arras_lrp"):
        assert repr(name) in str(caught.value)


def test_unknown_source_lists_the_sources() -> None:
    with pytest.raises(ValueError, match="'github', 'official'; got 'mirror'"):
        download("mr", source="mirror")


def test_spec_errors_name_argument_expected_and_got() -> None:
    with pytest.raises(ValueError, match=r"Checksum.value: expected 32 lowercase hex digits for md5; got 'abc'"):
        Checksum("md5", "abc", "somewhere", False)
    with pytest.raises(ValueError, match="Checksum.algorithm must be one of"):
        Checksum("crc32", "0" * 8, "somewhere", False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ArchiveMember.member: expected a relative '/'-separated path"):
        ArchiveMember("../x", "x")
    with pytest.raises(ValueError, match=r"DownloadSpec.name: expected a plain file name; got '\.\.'"):
        DownloadSpec("..", "terms", (Source("s", ()),), "s")
    with pytest.raises(ValueError, match="RemoteFile.filename: expected a plain file name; got 'a/b'"):
        RemoteFile("https://example.org/a", "a/b")
    with pytest.raises(ValueError, match="RemoteFile.members: expected none for action 'store'"):
        RemoteFile("https://example.org/a", "a", members=(ArchiveMember("a", "a"),))
    zipped = RemoteFile("https://example.org/a.zip", "a.zip", "zip", members=(ArchiveMember("x", "a"),))
    with pytest.raises(ValueError, match=r"Source.files: expected each target once in source 's'; got \['a'\]"):
        Source("s", (RemoteFile("https://example.org/a", "a"), zipped))
    with pytest.raises(ValueError, match=r"expected each file name once in source 's'; got \['a'\] more than once"):
        Source("s", (RemoteFile("https://example.org/a", "a"), RemoteFile("https://example.org/b", "a")))


def test_file_checksum_known_values(tmp_path: Path) -> None:
    plain = tmp_path / "hello.txt"
    plain.write_bytes(b"hello\n")
    packed = tmp_path / "hello.txt.gz"
    packed.write_bytes(gzip.compress(b"hello\n"))

    for path, gunzip in ((plain, False), (packed, True)):
        assert file_checksum(path, "git-blob-sha1", gunzip=gunzip) == "ce013625030ba8dba906f756967f9e9ca394464a"
        assert file_checksum(path, "md5", gunzip=gunzip) == hashlib.md5(b"hello\n").hexdigest()
        assert file_checksum(path, "sha256", gunzip=gunzip) == hashlib.sha256(b"hello\n").hexdigest()


# The real registry ----------------------------------------------------------------------------------------------------

LAYOUT = {
    "sst": {"train.txt", "dev.txt", "test.txt"},
    "mr": {"rt-polarity.pos", "rt-polarity.neg"},
    "ag_news": {"train.csv", "test.csv", "classes.txt"},
    "imdb": {"aclImdb/"},
    "arras_lrp": {"model", "vocab", "sequence_test.txt"},
}


def test_registry_entries_are_complete() -> None:
    assert set(DOWNLOADS) == set(LAYOUT)
    for name, spec in DOWNLOADS.items():
        assert spec.name == name
        assert spec.licence.strip()
        for source in spec.sources:
            # the offline AG News source is what load_ag_news(source="offline") reads: no train.csv
            expected = LAYOUT[name] - ({"train.csv"} if (name, source.name) == ("ag_news", "offline") else set())
            assert {target for file in source.files for target in file.targets} == expected, (name, source.name)
            for file in source.files:
                assert file.url.startswith(("https://", "http://")), file.url
                if not file.checksums:
                    assert not file.verified, file.url
                for published in file.checksums:
                    assert published.published_at.strip(), file.url
                if file.url.startswith("https://raw.githubusercontent.com/"):
                    commit = file.url.split("/")[5]
                    assert len(commit) == 40 and int(commit, 16) >= 0, file.url  # pinned to a full commit id


def test_default_sources_need_no_allow_unverified_except_imdb() -> None:
    for name, spec in DOWNLOADS.items():
        verified = all(file.verified for file in spec.source().files)
        assert verified == (name != "imdb"), name


def test_registry_urls_are_quoted() -> None:
    train = DOWNLOADS["sst"].source("github").files[0]
    assert train.url.isascii()
    assert unquote(train.url).endswith("/trees/train副本.txt")


def test_verified_checksums_match_the_shared_copies(shared_data_dir: Path) -> None:
    """What makes ``verified=True`` true: each verified value is measured on the copy in ``shared/data``."""
    checked = set()
    for name, spec in DOWNLOADS.items():
        for source in spec.sources:
            for file in source.files:
                for known in file.checksums:
                    if not known.verified or (name, known.value) in checked:
                        continue
                    assert file.action == "store", f"{name}/{file.filename}: only stored files can be verified here"
                    copy = shared_data_dir / name / f"{file.filename}.gz"
                    assert copy.is_file(), f"{name}/{file.filename}: verified, but there is no shared copy {copy}"
                    measured = file_checksum(copy, known.algorithm, gunzip=True)
                    assert measured == known.value, (name, file.filename, known.algorithm)
                    checked.add((name, known.value))
    assert len(checked) == 11  # sst 3, mr 2, ag_news test.csv (md5 + blob) and classes.txt, arras_lrp 3


@pytest.mark.parametrize("name", ["sst", "mr", "arras_lrp"])
def test_real_dataset_in_the_shared_copy_is_not_downloaded_again(
    shared_data_dir: Path, server: Server, name: str
) -> None:
    assert download(name, shared_data_dir, base_url=server.url, progress=False) == shared_data_dir / name
    assert server.requests == []


def _serve_shared_copies(server: Server, shared_data_dir: Path, name: str) -> None:
    """Serve the decompressed shared copies of a dataset at ``<url>/<name>/<filename>``, as ``base_url`` reads."""
    for file in DOWNLOADS[name].source().files:
        path = server.directory / name / file.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.decompress((shared_data_dir / name / f"{file.filename}.gz").read_bytes()))


@pytest.mark.parametrize("name", ["sst", "mr", "arras_lrp"])
def test_real_dataset_downloads_from_a_mirror_of_the_shared_copy(
    shared_data_dir: Path, server: Server, tmp_path: Path, name: str
) -> None:
    _serve_shared_copies(server, shared_data_dir, name)

    out = download(name, tmp_path / "data", base_url=server.url, progress=False)

    expected = {file.filename for file in DOWNLOADS[name].source().files}
    assert tree(out) == expected
    for filename in expected:
        assert (out / filename).read_bytes() == (server.directory / name / filename).read_bytes()


def test_official_mr_archive_is_recoded_to_the_github_copy(
    shared_data_dir: Path, server: Server, tmp_path: Path
) -> None:
    """The official archive holds Windows-1252 files; after re-encoding they equal the UTF-8 GitHub copies."""
    entries = []
    for polarity in ("pos", "neg"):
        text = gzip.decompress((shared_data_dir / "mr" / f"rt-polarity.{polarity}.gz").read_bytes()).decode("utf-8")
        entries.append(tar_file(f"rt-polaritydata/rt-polarity.{polarity}", text.encode("cp1252")))
    official = DOWNLOADS["mr"].source("official").files[0]
    served = server.directory / "mr" / official.filename
    served.parent.mkdir(parents=True)
    served.write_bytes(tar_gz([tar_directory("rt-polaritydata"), *entries]))

    out = download(
        "mr", tmp_path / "data", source="official", allow_unverified=True, base_url=server.url, progress=False
    )

    for file in DOWNLOADS["mr"].source("github").files:
        (blob,) = file.checksums
        assert file_checksum(out / file.filename, "git-blob-sha1") == blob.value
