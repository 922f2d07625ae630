"""Tests of archive extraction in ``captum_text_ext.datasets.download``: good and bad archives served by an HTTP
server on 127.0.0.1 (the ``server`` fixture of ``tests/datasets/conftest.py``).

Every bad archive is refused as a whole, before anything is extracted, and leaves nothing behind: no dataset
directory, no staging directory, no temporary file.
"""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import Callable, List, Literal, Tuple

import pytest
from _download_helpers import (
    DATASET,
    download_module,
    Server,
    checksum,
    tar_directory,
    tar_file,
    tar_gz,
    tar_link,
    tar_special,
    toy_spec,
    tree,
    zip_archive,
    zip_entry,
)

from captum_text_ext.datasets.download import (
    MAX_EXTRACTION_RATIO,
    ArchiveMember,
    DownloadSpec,
    RemoteFile,
    UnsafeArchiveError,
    download,
)



def _serve_one(server: Server, filename: str, archive: bytes) -> DownloadSpec:
    """Serve ``archive`` (a ``.zip`` or ``.tar.gz`` by its name); the spec takes its ``pack/a.txt`` to ``a.txt``."""
    url = server.publish(filename, archive)
    kind: Literal["zip", "tar.gz"] = "zip" if filename.endswith(".zip") else "tar.gz"
    return toy_spec(RemoteFile(url, filename, kind, (checksum(archive),), (ArchiveMember("pack/a.txt", "a.txt"),)))


# Good archives --------------------------------------------------------------------------------------------------------


def test_tar_gz_extracts_members_into_the_layout(server: Server, tmp_path: Path) -> None:
    archive = tar_gz(
        [
            tar_directory("pack"),
            tar_file("pack/a.txt", b"alpha\n"),
            tar_directory("pack/sub"),
            tar_file("pack/sub/b.txt", b"beta\n"),
            tar_file("pack/unmapped.txt", b"not wanted\n"),
        ]
    )
    url = server.publish("pack.tar.gz", archive)
    members = (ArchiveMember("pack/a.txt", "a.txt"), ArchiveMember("pack/sub/", "nested/sub/"))
    spec = toy_spec(RemoteFile(url, "pack.tar.gz", "tar.gz", (checksum(archive, "md5"),), members))

    out = download(spec, tmp_path / "data", progress=False)

    assert out == tmp_path / "data" / DATASET
    assert (out / "a.txt").read_bytes() == b"alpha\n"
    assert (out / "nested" / "sub" / "b.txt").read_bytes() == b"beta\n"
    assert tree(out) == {"a.txt", "nested", "nested/sub", "nested/sub/b.txt", ".pack.tar.gz.complete"}
    assert server.requests == [f"/{DATASET}/pack.tar.gz"]


def test_zip_extracts_members_and_recodes_to_utf8(server: Server, tmp_path: Path) -> None:
    archive = zip_archive(
        [
            zip_entry("trees/", b"", stat.S_IFDIR | 0o755),
            zip_entry("trees/train.txt", b"(3 good)\n"),
            zip_entry("trees/legacy.txt", b"caf\xe9 \x85\n"),  # Windows-1252: e acute, ellipsis
        ]
    )
    url = server.publish("trees.zip", archive)
    members = (
        ArchiveMember("trees/train.txt", "train.txt"),
        ArchiveMember("trees/legacy.txt", "legacy.txt", recode_from="cp1252"),
    )
    checksums = (checksum(archive, "sha256"), checksum(archive, "md5"))
    spec = toy_spec(RemoteFile(url, "trees.zip", "zip", checksums, members))

    out = download(spec, tmp_path / "data", progress=False)

    assert (out / "train.txt").read_bytes() == b"(3 good)\n"
    assert (out / "legacy.txt").read_text(encoding="utf-8") == "caf\u00e9 \u2026\n"
    assert tree(out) == {"train.txt", "legacy.txt", ".trees.zip.complete"}


# Unsafe archives ------------------------------------------------------------------------------------------------------

TarCase = Callable[[Path], Tuple[List[Tuple[tarfile.TarInfo, bytes]], str]]

TAR_CASES = {
    "dotdot": lambda tmp: ([tar_file("../evil.txt", b"evil\n")], "../evil.txt"),
    "absolute": lambda tmp: ([tar_file(str(tmp / "abs-evil"), b"evil\n")], str(tmp / "abs-evil")),
    "symlink-escaping": lambda tmp: ([tar_link("pack/link", "../../../evil", tarfile.SYMTYPE)], "pack/link"),
    "symlink-absolute": lambda tmp: ([tar_link("pack/link", str(tmp / "abs-evil"), tarfile.SYMTYPE)], "pack/link"),
    "hardlink-escaping": lambda tmp: ([tar_link("pack/hard", "../evil", tarfile.LNKTYPE)], "pack/hard"),
    "character-device": lambda tmp: ([tar_special("pack/null", tarfile.CHRTYPE)], "pack/null"),
    "block-device": lambda tmp: ([tar_special("pack/disk", tarfile.BLKTYPE)], "pack/disk"),
    "fifo": lambda tmp: ([tar_special("pack/pipe", tarfile.FIFOTYPE)], "pack/pipe"),
}


@pytest.mark.parametrize("case", TAR_CASES.values(), ids=TAR_CASES.keys())
def test_unsafe_tar_is_refused_and_nothing_is_extracted(server: Server, tmp_path: Path, case: TarCase) -> None:
    bad_entries, bad_name = case(tmp_path)
    archive = tar_gz([tar_directory("pack"), tar_file("pack/a.txt", b"good\n"), *bad_entries])
    url = server.publish("evil.tar.gz", archive)
    spec = toy_spec(
        RemoteFile(url, "evil.tar.gz", "tar.gz", (checksum(archive),), (ArchiveMember("pack/a.txt", "a.txt"),))
    )
    before = tree(tmp_path)

    with pytest.raises(UnsafeArchiveError, match="Nothing was extracted") as caught:
        download(spec, tmp_path / "data", progress=False)

    assert repr(bad_name) in str(caught.value)
    assert tree(tmp_path) - before == {"data"}  # the data directory, empty: no dataset directory, no staging
    assert not (tmp_path / "abs-evil").exists()


ZIP_CASES = {
    "dotdot": (zip_entry("../evil.txt", b"evil\n"), "../evil.txt"),
    "absolute": (zip_entry("/abs-evil.txt", b"evil\n"), "/abs-evil.txt"),
    "backslash": (zip_entry("..\\evil.txt", b"evil\n"), "..\\evil.txt"),
    "symlink": (zip_entry("pack/link", b"../../../evil", stat.S_IFLNK | 0o777), "pack/link"),
    "character-device": (zip_entry("pack/null", b"", stat.S_IFCHR | 0o666), "pack/null"),
    "block-device": (zip_entry("pack/disk", b"", stat.S_IFBLK | 0o660), "pack/disk"),
    "fifo": (zip_entry("pack/pipe", b"", stat.S_IFIFO | 0o644), "pack/pipe"),
    "socket": (zip_entry("pack/socket", b"", stat.S_IFSOCK | 0o755), "pack/socket"),
}


@pytest.mark.parametrize("bad_entry, bad_name", ZIP_CASES.values(), ids=ZIP_CASES.keys())
def test_unsafe_zip_is_refused_and_nothing_is_extracted(
    server: Server, tmp_path: Path, bad_entry: Tuple[zipfile.ZipInfo, bytes], bad_name: str
) -> None:
    archive = zip_archive([zip_entry("pack/a.txt", b"good\n"), bad_entry])
    with zipfile.ZipFile(io.BytesIO(archive)) as written:
        assert bad_name in written.namelist()  # zipfile kept the name as given
    url = server.publish("evil.zip", archive)
    spec = toy_spec(RemoteFile(url, "evil.zip", "zip", (checksum(archive),), (ArchiveMember("pack/a.txt", "a.txt"),)))
    before = tree(tmp_path)

    with pytest.raises(UnsafeArchiveError, match="Nothing was extracted") as caught:
        download(spec, tmp_path / "data", progress=False)

    assert repr(bad_name) in str(caught.value)
    assert tree(tmp_path) - before == {"data"}


def test_archive_without_a_mapped_member_is_refused(server: Server, tmp_path: Path) -> None:
    spec = _serve_one(server, "a.tar.gz", tar_gz([tar_file("other.txt", b"x\n")]))

    with pytest.raises(ValueError, match="expected a member 'pack/a.txt'"):
        download(spec, tmp_path / "data", progress=False)

    assert tree(tmp_path / "data") == set()




# Zip entries without file-type bits -----------------------------------------------------------------------------------


def test_zip_written_by_writestr_is_extracted(server: Server, tmp_path: Path) -> None:
    """``ZipFile.writestr(name, data)`` stores a file's mode as 0o600, without file-type bits: a regular file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("trees/", b"")
        zipped.writestr("trees/train.txt", "(3 good)\n")
    archive = buffer.getvalue()
    with zipfile.ZipFile(io.BytesIO(archive)) as written:
        assert stat.S_IFMT(written.getinfo("trees/train.txt").external_attr >> 16) == 0  # no file-type bits
    url = server.publish("trees.zip", archive)
    members = (ArchiveMember("trees/train.txt", "train.txt"),)
    spec = toy_spec(RemoteFile(url, "trees.zip", "zip", (checksum(archive),), members))

    out = download(spec, tmp_path / "data", progress=False)

    assert (out / "train.txt").read_bytes() == b"(3 good)\n"
    assert tree(out) == {"train.txt", ".trees.zip.complete"}


@pytest.mark.parametrize("mode", [0o600, 0, stat.S_IFREG | 0o644], ids=["writestr", "no-unix-mode", "regular"])
def test_zip_file_modes_that_are_regular_files(server: Server, tmp_path: Path, mode: int) -> None:
    archive = zip_archive([zip_entry("pack/", b"", mode), zip_entry("pack/a.txt", b"alpha\n", mode)])
    url = server.publish("pack.zip", archive)
    spec = toy_spec(RemoteFile(url, "pack.zip", "zip", (checksum(archive),), (ArchiveMember("pack/", "pack/"),)))

    out = download(spec, tmp_path / "data", progress=False)

    assert (out / "pack" / "a.txt").read_bytes() == b"alpha\n"


# Size limit, compression, unreadable archives -------------------------------------------------------------------------

ZEROS = b"\0" * (4 << 20)  # 4 MiB of zeros compress about a thousandfold


def _archive(kind: str, name: str, content: bytes) -> bytes:
    """A compressed ``.zip`` or ``.tar.gz`` holding one file."""
    if kind == "zip":
        return zip_archive([zip_entry(name, content, compression=zipfile.ZIP_DEFLATED)])
    return tar_gz([tar_file(name, content)])


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archive_expanding_past_the_limit_is_refused(server: Server, tmp_path: Path, kind: str) -> None:
    archive = _archive(kind, "pack/a.txt", ZEROS)
    assert len(ZEROS) > MAX_EXTRACTION_RATIO * len(archive)
    spec = _serve_one(server, f"bomb.{kind}", archive)

    with pytest.raises(UnsafeArchiveError, match="Nothing was extracted") as caught:
        download(spec, tmp_path / "data", progress=False)

    message = str(caught.value)
    expected = f"declare {len(ZEROS)} bytes, more than {MAX_EXTRACTION_RATIO} times the archive's {len(archive)} bytes"
    assert expected in message and "MAX_EXTRACTION_RATIO" in message
    assert tree(tmp_path / "data") == set()


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_the_limit_is_the_stated_ratio_of_extracted_to_archive_bytes(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """An archive whose entries declare r times its size passes a limit of ceil(r) and is refused by ceil(r) - 1."""
    content = b"".join(b"line %d\n" % (i % 97) for i in range(2000))
    archive = _archive(kind, "pack/a.txt", content)
    ratio = len(content) / len(archive)
    assert 2 < ratio and ratio != int(ratio)
    spec = _serve_one(server, f"pack.{kind}", archive)

    monkeypatch.setattr(download_module, "MAX_EXTRACTION_RATIO", int(ratio))
    with pytest.raises(UnsafeArchiveError, match=f"more than {int(ratio)} times"):
        download(spec, tmp_path / "data", progress=False)
    assert tree(tmp_path / "data") == set()

    monkeypatch.setattr(download_module, "MAX_EXTRACTION_RATIO", int(ratio) + 1)
    assert (download(spec, tmp_path / "data", progress=False) / "a.txt").read_bytes() == content


def test_only_the_extracted_entries_count_toward_the_limit(server: Server, tmp_path: Path) -> None:
    archive = zip_archive(
        [
            zip_entry("pack/a.txt", b"alpha\n"),
            zip_entry("pack/unmapped.bin", ZEROS, compression=zipfile.ZIP_DEFLATED),  # never read
        ]
    )
    spec = _serve_one(server, "pack.zip", archive)

    out = download(spec, tmp_path / "data", progress=False)

    assert tree(out) == {"a.txt", ".pack.zip.complete"}


@pytest.mark.parametrize("compression", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA], ids=["bzip2", "lzma"])
def test_zip_entries_compressed_otherwise_than_deflate_are_refused(
    server: Server, tmp_path: Path, compression: int
) -> None:
    archive = zip_archive([zip_entry("pack/a.txt", b"alpha\n", compression=compression)])
    spec = _serve_one(server, "pack.zip", archive)

    with pytest.raises(UnsafeArchiveError, match=f"compression method {compression} .only stored and deflated"):
        download(spec, tmp_path / "data", progress=False)

    assert tree(tmp_path / "data") == set()


UNREADABLE = {
    "zip-garbage": ("zip", lambda: b"not an archive at all\n" * 8),
    "zip-truncated": ("zip", lambda: zip_archive([zip_entry("pack/a.txt", b"alpha\n" * 100)])[:-30]),
    "tar.gz-garbage": ("tar.gz", lambda: b"not an archive at all\n" * 8),
    "tar.gz-truncated": ("tar.gz", lambda: tar_gz([tar_file("pack/a.txt", bytes(range(256)) * 64)])[:-40]),
}


@pytest.mark.parametrize("kind, content", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_unreadable_archive_is_refused_clearly(
    server: Server, tmp_path: Path, kind: str, content: Callable[[], bytes]
) -> None:
    spec = _serve_one(server, f"pack.{kind}", content())

    url = f"{server.url}/{DATASET}/pack.{kind}"
    with pytest.raises(ValueError, match=rf"pack\.{kind} from {url}: not a readable {kind} archive"):
        download(spec, tmp_path / "data", progress=False)

    assert tree(tmp_path / "data") == set()
