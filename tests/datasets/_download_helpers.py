"""What the download tests share: an HTTP server on 127.0.0.1, specs, checksums computed independently of the module
under test, and builders of good and bad archives.

Imported as ``from _download_helpers import ...`` (pytest puts ``tests/datasets`` on ``sys.path`` because
``tests/datasets/conftest.py`` lives there); the ``server`` fixture is in that conftest.
"""

from __future__ import annotations

import hashlib
import http.server
import importlib
import io
import stat
import tarfile
import threading
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Sequence, Set, Tuple

from captum_text_ext.datasets.download import Checksum, DownloadSpec, RemoteFile, Source

DATASET = "toy"

download_module = importlib.import_module("captum_text_ext.datasets.download")
"""The module itself, for monkeypatching: ``captum_text_ext.datasets.download`` is the function the package exports."""


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


@contextmanager
def serve(directory: Path) -> Iterator[Server]:
    """A ThreadingHTTPServer on 127.0.0.1 (port 0) serving ``directory``, counting GET and HEAD requests."""
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


def checksum(content: bytes, algorithm: str = "sha256", *, verified: bool = True) -> Checksum:
    """A checksum of ``content`` computed here with hashlib, independently of the module under test."""
    if algorithm == "git-blob-sha1":
        value = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
    else:
        value = hashlib.new(algorithm, content).hexdigest()
    return Checksum(algorithm, value, "computed by the test from the served bytes", verified)  # type: ignore[arg-type]


def toy_spec(*files: RemoteFile) -> DownloadSpec:
    """A one-source spec for the dataset ``toy``."""
    return DownloadSpec(DATASET, "test data, no terms", (Source("test", files),), "test")


def tar_file(name: str, content: bytes) -> Tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    return info, content


def tar_directory(name: str) -> Tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info, b""


def tar_link(name: str, target: str, kind: bytes) -> Tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


def tar_special(name: str, kind: bytes) -> Tuple[tarfile.TarInfo, bytes]:
    """A device (``tarfile.CHRTYPE``, ``BLKTYPE``) or FIFO (``FIFOTYPE``) entry."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.devmajor, info.devminor = 1, 3
    return info, b""


def tar_gz(entries: Sequence[Tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, content in entries:
            tar.addfile(info, io.BytesIO(content) if info.isfile() else None)
    return buffer.getvalue()


def zip_archive(entries: Sequence[Tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for info, content in entries:
            zipped.writestr(info, content)
    return buffer.getvalue()


def zip_entry(
    name: str, content: bytes, mode: int = stat.S_IFREG | 0o644, compression: int = zipfile.ZIP_STORED
) -> Tuple[zipfile.ZipInfo, bytes]:
    """A zip entry with the Unix ``mode`` (file-type and permission bits) in the high 16 bits of ``external_attr``."""
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    info.compress_type = compression
    return info, content


def tree(directory: Path) -> Set[str]:
    """Every path under ``directory``, relative, with ``/`` separators (empty when it does not exist)."""
    return {path.relative_to(directory).as_posix() for path in directory.rglob("*")}
