"""Fetching a file over HTTP(S) and checking its bytes against checksums.

Checksum algorithms: ``sha256``, ``md5`` and ``git-blob-sha1``, the SHA-1 of ``b"blob <size>\\0" + content``, which is
the id git gives the file's content (``git hash-object FILE``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any, Dict, Iterator, Sequence, get_args

from tqdm.auto import tqdm

from captum_text_ext._version import __version__
from captum_text_ext.datasets._checks import check_choice
from captum_text_ext.datasets._download_spec import Algorithm, Checksum, ChecksumMismatchError, RemoteFile
from captum_text_ext.datasets._paths import PathLike

__all__ = ["fetch", "file_checksum", "matches", "verify"]

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


def file_checksum(path: PathLike, algorithm: Algorithm, *, gunzip: bool = False) -> str:
    """The hex digest of a file's bytes (of its decompressed bytes with ``gunzip=True``).

    Args:
        path: the file.
        algorithm: ``"sha256"``, ``"md5"`` or ``"git-blob-sha1"``.
        gunzip: read the file through gzip (for the ``.gz`` copies in a data directory).

    Returns:
        The lowercase hex digest.
    """
    check_choice("algorithm", algorithm, get_args(Algorithm))
    return _checksums(Path(path), [algorithm], gunzip=gunzip)[algorithm]


def _checksums(path: Path, algorithms: Sequence[str], *, gunzip: bool) -> Dict[str, str]:
    """Every digest in ``algorithms`` of one file, reading it once (twice for a blob id of a gzip file)."""

    def chunks() -> Iterator[bytes]:
        with gzip.open(path, "rb") if gunzip else open(path, "rb") as stream:
            yield from iter(lambda: stream.read(_CHUNK), b"")

    hashers: Dict[str, Any] = {}  # hashlib's hash objects have no public type
    for algorithm in algorithms:
        if algorithm == "git-blob-sha1":
            size = sum(len(chunk) for chunk in chunks()) if gunzip else path.stat().st_size
            hashers[algorithm] = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
        else:
            hashers[algorithm] = hashlib.new(algorithm, usedforsecurity=False)
    for chunk in chunks():
        for hasher in hashers.values():
            hasher.update(chunk)
    return {algorithm: hasher.hexdigest() for algorithm, hasher in hashers.items()}


def matches(path: Path, checksums: Sequence[Checksum], *, gunzip: bool) -> bool:
    """Whether the file matches every checksum; an unreadable gzip file matches nothing."""
    try:
        measured = _checksums(path, [c.algorithm for c in checksums], gunzip=gunzip)
    except (OSError, EOFError, zlib.error):  # gzip.BadGzipFile is an OSError
        return False
    return all(measured[c.algorithm] == c.value for c in checksums)


def fetch(url: str, directory: Path, filename: str, progress: bool) -> Path:
    """Download ``url`` to a new temporary file in ``directory``; on any failure no file is left behind.

    Raises:
        OSError: when the request fails; the message names the file and the URL.
    """
    request = urllib.request.Request(url, headers={"User-Agent": f"captum_text_ext/{__version__}"})
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.URLError as err:  # HTTPError is a URLError
        raise OSError(f"downloading {filename} from {url} failed: {err}") from err
    with response:
        length = response.headers.get("Content-Length")
        handle, name = tempfile.mkstemp(dir=directory, prefix=f".{filename}.", suffix=".part")
        path = Path(name)
        try:
            with os.fdopen(handle, "wb") as out, tqdm(
                total=int(length) if length else None,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=filename,
                disable=not progress,
            ) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    return path


def verify(path: Path, file: RemoteFile, url: str) -> None:
    """Raise :class:`ChecksumMismatchError` unless the download matches every checksum of ``file``."""
    measured = _checksums(path, [c.algorithm for c in file.checksums], gunzip=False)
    for checksum in file.checksums:
        got = measured[checksum.algorithm]
        if got != checksum.value:
            raise ChecksumMismatchError(
                f"{file.filename} downloaded from {url}: {checksum.algorithm} checksum mismatch: expected "
                f"{checksum.value} (published at {checksum.published_at}), got {got}. Nothing was installed."
            )
