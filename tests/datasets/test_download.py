"""Tests of ``captum_text_ext.datasets.download``, end to end against an HTTP server on 127.0.0.1.

Every test that downloads builds its own files and archives, serves them from a temporary directory and passes a
:class:`DownloadSpec` (or ``base_url``) to :func:`download`; nothing reaches the internet.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import stat
import tarfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Sequence, Set, Tuple
from urllib.parse import unquote

import pytest

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

DATASET = "toy"


@dataclass
class Server:
    """A running test server: the directory it serves, its base URL and the paths requested so far."""

    directory: Path
    url: str
    requests: List[str]

    def publish(self, filename: str, content: bytes) -> str:
        """Serve ``content`` at ``<url>/<DATASET>/<filename>`` (the layout ``base_url`` expects); return the URL."""
        path = self.directory / DATASET / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return f"{self.url}/{DATASET}/{filename}"


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A ThreadingHTTPServer on 127.0.0.1 (port 0) serving ``tmp_path/served``, counting GET and HEAD requests."""
    for variable in ("no_proxy", "NO_PROXY"):  # a proxy configured in the environment must not see these requests
        monkeypatch.setenv(variable, "127.0.0.1,localhost")
    directory = tmp_path / "served"
    directory.mkdir()
    requests: List[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)  # type: ignore[arg-type]

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            requests.append(self.path)
            super().do_GET()

        def do_HEAD(self) -> None:  # noqa: N802
            requests.append(self.path)
            super().do_HEAD()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's signature)
            """Keep the test output quiet."""

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll interval: shutdown() waits for one, and every test starts and stops its own server.
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield Server(directory, f"http://127.0.0.1:{httpd.server_address[1]}", requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _checksum(content: bytes, algorithm: str = "sha256", *, verified: bool = True) -> Checksum:
    """A checksum of ``content`` computed here with hashlib, independently of the module under test."""
    if algorithm == "git-blob-sha1":
        value = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
    else:
        value = hashlib.new(algorithm, content).hexdigest()
    return Checksum(algorithm, value, "computed by the test from the served bytes", verified)  # type: ignore[arg-type]


def _spec(*files: RemoteFile) -> DownloadSpec:
    """A one-source spec for the dataset ``toy``."""
    return DownloadSpec(DATASET, "test data, no terms", (Source("test", files),), "test")


def _file(name: str, content: bytes) -> Tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    return info, content


def _directory(name: str) -> Tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info, b""


def _link(name: str, target: str, kind: bytes) -> Tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


def _device(name: str) -> Tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    return info, b""


def _tar_gz(entries: Sequence[Tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, content in entries:
            tar.addfile(info, io.BytesIO(content) if info.isfile() else None)
    return buffer.getvalue()


def _zip(entries: Sequence[Tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for info, content in entries:
            zipped.writestr(info, content)
    return buffer.getvalue()


def _zip_file(name: str, content: bytes, mode: int = stat.S_IFREG | 0o644) -> Tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info, content


def _tree(directory: Path) -> Set[str]:
    """Every path under ``directory``, relative, with ``/`` separators."""
    return {path.relative_to(directory).as_posix() for path in directory.rglob("*")}


# (a) good archives --------------------------------------------------------------------------------------------------


def test_tar_gz_extracts_members_into_the_layout(server: Server, tmp_path: Path) -> None:
    archive = _tar_gz(
        [
            _directory("pack"),
            _file("pack/a.txt", b"alpha\n"),
            _directory("pack/sub"),
            _file("pack/sub/b.txt", b"beta\n"),
            _file("pack/unmapped.txt", b"not wanted\n"),
        ]
    )
    url = server.publish("pack.tar.gz", archive)
    members = (ArchiveMember("pack/a.txt", "a.txt"), ArchiveMember("pack/sub/", "nested/sub/"))
    spec = _spec(RemoteFile(url, "pack.tar.gz", "tar.gz", (_checksum(archive, "md5"),), members))

    out = download(spec, tmp_path / "data", progress=False)

    assert out == tmp_path / "data" / DATASET
    assert (out / "a.txt").read_bytes() == b"alpha\n"
    assert (out / "nested" / "sub" / "b.txt").read_bytes() == b"beta\n"
    assert _tree(out) == {"a.txt", "nested", "nested/sub", "nested/sub/b.txt", ".pack.tar.gz.complete"}
    assert server.requests == [f"/{DATASET}/pack.tar.gz"]


def test_zip_extracts_members_and_recodes_to_utf8(server: Server, tmp_path: Path) -> None:
    archive = _zip(
        [
            _zip_file("trees/", b"", stat.S_IFDIR | 0o755),
            _zip_file("trees/train.txt", b"(3 good)\n"),
            _zip_file("trees/legacy.txt", b"caf\xe9 \x85\n"),  # Windows-1252: e acute, ellipsis
        ]
    )
    url = server.publish("trees.zip", archive)
    members = (
        ArchiveMember("trees/train.txt", "train.txt"),
        ArchiveMember("trees/legacy.txt", "legacy.txt", recode_from="cp1252"),
    )
    checksums = (_checksum(archive, "sha256"), _checksum(archive, "md5"))
    spec = _spec(RemoteFile(url, "trees.zip", "zip", checksums, members))

    out = download(spec, tmp_path / "data", progress=False)

    assert (out / "train.txt").read_bytes() == b"(3 good)\n"
    assert (out / "legacy.txt").read_text(encoding="utf-8") == "caf\u00e9 \u2026\n"
    assert _tree(out) == {"train.txt", "legacy.txt", ".trees.zip.complete"}


def test_stored_file_is_checked_by_its_git_blob_id(server: Server, tmp_path: Path) -> None:
    content = b"hello\n"
    url = server.publish("hello.txt", content)
    blob = Checksum("git-blob-sha1", "ce013625030ba8dba906f756967f9e9ca394464a", "`git hash-object` of hello\\n", True)

    out = download(_spec(RemoteFile(url, "hello.txt", checksums=(blob,))), tmp_path / "data", progress=False)

    assert (out / "hello.txt").read_bytes() == content
    assert _tree(out) == {"hello.txt"}


def test_root_defaults_to_the_environment_variable(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "from-env"))
    url = server.publish("x.txt", b"x\n")

    out = download(_spec(RemoteFile(url, "x.txt", checksums=(_checksum(b"x\n"),))), progress=False)

    assert out == tmp_path / "from-env" / DATASET
    assert (out / "x.txt").read_bytes() == b"x\n"


# (b) unsafe archives ------------------------------------------------------------------------------------------------

TarCase = Callable[[Path], Tuple[List[Tuple[tarfile.TarInfo, bytes]], str]]

TAR_CASES = {
    "dotdot": lambda tmp: ([_file("../evil.txt", b"evil\n")], "../evil.txt"),
    "absolute": lambda tmp: ([_file(str(tmp / "abs-evil"), b"evil\n")], str(tmp / "abs-evil")),
    "symlink-escaping": lambda tmp: ([_link("pack/link", "../../../evil", tarfile.SYMTYPE)], "pack/link"),
    "symlink-absolute": lambda tmp: ([_link("pack/link", str(tmp / "abs-evil"), tarfile.SYMTYPE)], "pack/link"),
    "hardlink-escaping": lambda tmp: ([_link("pack/hard", "../evil", tarfile.LNKTYPE)], "pack/hard"),
    "device": lambda tmp: ([_device("pack/null")], "pack/null"),
}


@pytest.mark.parametrize("case", TAR_CASES.values(), ids=TAR_CASES.keys())
def test_unsafe_tar_is_refused_and_nothing_is_extracted(server: Server, tmp_path: Path, case: TarCase) -> None:
    bad_entries, bad_name = case(tmp_path)
    archive = _tar_gz([_directory("pack"), _file("pack/a.txt", b"good\n"), *bad_entries])
    url = server.publish("evil.tar.gz", archive)
    spec = _spec(
        RemoteFile(url, "evil.tar.gz", "tar.gz", (_checksum(archive),), (ArchiveMember("pack/a.txt", "a.txt"),))
    )
    before = _tree(tmp_path)

    with pytest.raises(UnsafeArchiveError, match="Nothing was extracted") as caught:
        download(spec, tmp_path / "data", progress=False)

    assert repr(bad_name) in str(caught.value)
    assert _tree(tmp_path) - before == {"data", f"data/{DATASET}"}  # only the empty dataset directory
    assert not (tmp_path / "abs-evil").exists()


ZIP_CASES = {
    "dotdot": (_zip_file("../evil.txt", b"evil\n"), "../evil.txt"),
    "absolute": (_zip_file("/abs-evil.txt", b"evil\n"), "/abs-evil.txt"),
    "backslash": (_zip_file("..\\evil.txt", b"evil\n"), "..\\evil.txt"),
    "symlink": (_zip_file("pack/link", b"../../../evil", stat.S_IFLNK | 0o777), "pack/link"),
}


@pytest.mark.parametrize("bad_entry, bad_name", ZIP_CASES.values(), ids=ZIP_CASES.keys())
def test_unsafe_zip_is_refused_and_nothing_is_extracted(
    server: Server, tmp_path: Path, bad_entry: Tuple[zipfile.ZipInfo, bytes], bad_name: str
) -> None:
    archive = _zip([_zip_file("pack/a.txt", b"good\n"), bad_entry])
    with zipfile.ZipFile(io.BytesIO(archive)) as written:
        assert bad_name in written.namelist()  # zipfile kept the name as given
    url = server.publish("evil.zip", archive)
    spec = _spec(RemoteFile(url, "evil.zip", "zip", (_checksum(archive),), (ArchiveMember("pack/a.txt", "a.txt"),)))
    before = _tree(tmp_path)

    with pytest.raises(UnsafeArchiveError, match="Nothing was extracted") as caught:
        download(spec, tmp_path / "data", progress=False)

    assert repr(bad_name) in str(caught.value)
    assert _tree(tmp_path) - before == {"data", f"data/{DATASET}"}


def test_archive_without_a_mapped_member_is_refused(server: Server, tmp_path: Path) -> None:
    archive = _tar_gz([_file("other.txt", b"x\n")])
    url = server.publish("a.tar.gz", archive)
    spec = _spec(RemoteFile(url, "a.tar.gz", "tar.gz", (_checksum(archive),), (ArchiveMember("pack/a.txt", "a.txt"),)))

    with pytest.raises(ValueError, match="expected a member 'pack/a.txt'"):
        download(spec, tmp_path / "data", progress=False)

    assert _tree(tmp_path / "data" / DATASET) == set()


# (c) checksum mismatch ----------------------------------------------------------------------------------------------


def test_checksum_mismatch_is_refused_and_leaves_no_file(server: Server, tmp_path: Path) -> None:
    url = server.publish("data.txt", b"tampered\n")
    expected = _checksum(b"original\n")
    got = hashlib.sha256(b"tampered\n").hexdigest()
    out = tmp_path / "data" / DATASET
    out.mkdir(parents=True)
    (out / "data.txt").write_bytes(b"stale copy\n")  # present but not matching: fetched again, and must survive

    with pytest.raises(ChecksumMismatchError) as caught:
        download(_spec(RemoteFile(url, "data.txt", checksums=(expected,))), tmp_path / "data", progress=False)

    message = str(caught.value)
    for part in ("data.txt", "sha256", expected.value, got, url, expected.published_at):
        assert part in message
    assert _tree(out) == {"data.txt"}
    assert (out / "data.txt").read_bytes() == b"stale copy\n"


def test_archive_checksum_mismatch_extracts_nothing(server: Server, tmp_path: Path) -> None:
    archive = _tar_gz([_file("pack/a.txt", b"good\n")])
    url = server.publish("a.tar.gz", archive)
    wrong = _checksum(archive + b"\0", "md5")
    spec = _spec(RemoteFile(url, "a.tar.gz", "tar.gz", (wrong,), (ArchiveMember("pack/a.txt", "a.txt"),)))

    with pytest.raises(ChecksumMismatchError, match="md5 checksum mismatch"):
        download(spec, tmp_path / "data", progress=False)

    assert _tree(tmp_path / "data" / DATASET) == set()


def test_failed_request_leaves_no_file(server: Server, tmp_path: Path) -> None:
    missing = f"{server.url}/{DATASET}/missing.txt"

    with pytest.raises(OSError, match="missing.txt"):
        download(_spec(RemoteFile(missing, "missing.txt", checksums=(_checksum(b""),))), tmp_path, progress=False)

    assert _tree(tmp_path / DATASET) == set()


# (d) unverified entries ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("checksums", [(), (_checksum(b"payload\n", verified=False),)], ids=["none", "unverified"])
def test_unverified_file_needs_allow_unverified(
    server: Server, tmp_path: Path, checksums: Tuple[Checksum, ...]
) -> None:
    url = server.publish("payload.txt", b"payload\n")
    spec = _spec(RemoteFile(url, "payload.txt", checksums=checksums))

    with pytest.raises(UnverifiedDownloadError, match="allow_unverified=True") as caught:
        download(spec, tmp_path / "data", progress=False)
    assert "payload.txt" in str(caught.value)
    assert server.requests == []
    assert not (tmp_path / "data").exists()

    out = download(spec, tmp_path / "data", allow_unverified=True, progress=False)
    assert (out / "payload.txt").read_bytes() == b"payload\n"


def test_unverified_checksum_is_still_enforced(server: Server, tmp_path: Path) -> None:
    url = server.publish("payload.txt", b"changed\n")
    spec = _spec(RemoteFile(url, "payload.txt", checksums=(_checksum(b"payload\n", verified=False),)))

    with pytest.raises(ChecksumMismatchError):
        download(spec, tmp_path / "data", allow_unverified=True, progress=False)


# (f) idempotence ----------------------------------------------------------------------------------------------------


def test_second_call_makes_no_request(server: Server, tmp_path: Path) -> None:
    archive = _tar_gz([_directory("pack"), _file("pack/a.txt", b"alpha\n")])
    files = (
        RemoteFile(server.publish("plain.txt", b"plain\n"), "plain.txt", checksums=(_checksum(b"plain\n", "md5"),)),
        RemoteFile(
            server.publish("pack.tar.gz", archive),
            "pack.tar.gz",
            "tar.gz",
            (_checksum(archive),),
            (ArchiveMember("pack/", "pack/"),),
        ),
    )
    spec = _spec(*files)
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
    spec = _spec(RemoteFile(f"{server.url}/{DATASET}/plain.txt", "plain.txt", checksums=(_checksum(b"plain\n"),)))

    download(spec, tmp_path / "data", progress=False)

    assert server.requests == []


# Names, sources and spec checks -------------------------------------------------------------------------------------


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


def test_file_checksum_known_values(tmp_path: Path) -> None:
    plain = tmp_path / "hello.txt"
    plain.write_bytes(b"hello\n")
    packed = tmp_path / "hello.txt.gz"
    packed.write_bytes(gzip.compress(b"hello\n"))

    for path, gunzip in ((plain, False), (packed, True)):
        assert file_checksum(path, "git-blob-sha1", gunzip=gunzip) == "ce013625030ba8dba906f756967f9e9ca394464a"
        assert file_checksum(path, "md5", gunzip=gunzip) == hashlib.md5(b"hello\n").hexdigest()
        assert file_checksum(path, "sha256", gunzip=gunzip) == hashlib.sha256(b"hello\n").hexdigest()


# (e) the real registry ----------------------------------------------------------------------------------------------

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
                for checksum in file.checksums:
                    assert checksum.published_at.strip(), file.url
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
                for checksum in file.checksums:
                    if not checksum.verified or (name, checksum.value) in checked:
                        continue
                    assert file.action == "store", f"{name}/{file.filename}: only stored files can be verified here"
                    copy = shared_data_dir / name / f"{file.filename}.gz"
                    assert copy.is_file(), f"{name}/{file.filename}: verified, but there is no shared copy {copy}"
                    measured = file_checksum(copy, checksum.algorithm, gunzip=True)
                    assert measured == checksum.value, (name, file.filename, checksum.algorithm)
                    checked.add((name, checksum.value))
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
    assert _tree(out) == expected
    for filename in expected:
        assert (out / filename).read_bytes() == (server.directory / name / filename).read_bytes()


def test_official_mr_archive_is_recoded_to_the_github_copy(
    shared_data_dir: Path, server: Server, tmp_path: Path
) -> None:
    """The official archive holds Windows-1252 files; after re-encoding they equal the UTF-8 GitHub copies."""
    entries = []
    for polarity in ("pos", "neg"):
        text = gzip.decompress((shared_data_dir / "mr" / f"rt-polarity.{polarity}.gz").read_bytes()).decode("utf-8")
        entries.append(_file(f"rt-polaritydata/rt-polarity.{polarity}", text.encode("cp1252")))
    official = DOWNLOADS["mr"].source("official").files[0]
    served = server.directory / "mr" / official.filename
    served.parent.mkdir(parents=True)
    served.write_bytes(_tar_gz([_directory("rt-polaritydata"), *entries]))

    out = download(
        "mr", tmp_path / "data", source="official", allow_unverified=True, base_url=server.url, progress=False
    )

    for file in DOWNLOADS["mr"].source("github").files:
        (blob,) = file.checksums
        assert file_checksum(out / file.filename, "git-blob-sha1") == blob.value
