"""Extracting a downloaded ``.zip`` or ``.tar.gz`` archive safely.

Every entry is checked before anything is written, and one refused entry refuses the whole archive:

- names: absolute paths (``/x``, ``C:x``), ``..`` components and backslashes are refused;
- kinds: only regular files and directories are extracted; symlinks, hardlinks, devices, FIFOs and other special
  files are refused. A zip entry's kind is the file-type bits of its Unix mode (the high 16 bits of
  ``external_attr``); an entry without file-type bits (as ``zipfile.ZipFile.writestr`` and Windows tools write
  them) is a regular file, or a directory when its name ends in ``/``;
- zip compression: only stored and deflated entries (``zipfile`` decompresses bzip2 and LZMA without an output
  limit per read, so a small entry could fill the memory before its declared size stops it);
- size: the entries extracted may declare at most ``max_ratio`` times the archive's own size in bytes
  (:data:`captum_text_ext.datasets.download.MAX_EXTRACTION_RATIO`). The declared sizes bound what is written:
  ``tarfile`` copies exactly an entry's size and ``zipfile`` stops at it.

``.tar.gz`` archives are extracted with the ``"data"`` extraction filter where Python has it.
"""

from __future__ import annotations

import gzip
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, TypeVar

from captum_text_ext.datasets._download_spec import RemoteFile, UnsafeArchiveError, escapes, path_parts

__all__ = ["extract"]

_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_Entry = TypeVar("_Entry", tarfile.TarInfo, zipfile.ZipInfo)


def _unsafe(file: RemoteFile, url: str, name: str, reason: str) -> UnsafeArchiveError:
    """The error refusing the archive because of one entry."""
    return UnsafeArchiveError(
        f"{file.filename} from {url}: refusing to extract the archive because of member {name!r}: {reason}. "
        f"Nothing was extracted."
    )


def _select(entries: Sequence[Tuple[_Entry, Tuple[str, ...]]], file: RemoteFile, url: str) -> List[_Entry]:
    """The archive entries that some member of ``file`` takes; every member must take at least one.

    Args:
        entries: each entry and its path components.
        file: the archive's spec.
        url: where the archive came from, for the message.

    Raises:
        ValueError: when a member of the spec matches no entry.
    """
    selected = [entry for entry, parts in entries if any(m.selects(parts) for m in file.members)]
    for member in file.members:
        if not any(member.selects(parts) for _, parts in entries):
            raise ValueError(f"{file.filename} from {url}: expected a member {member.member!r}; the archive has none")
    return selected


def _check_size(declared: int, max_ratio: int, archive: Path, file: RemoteFile, url: str) -> None:
    """Raise :class:`UnsafeArchiveError` when the entries to extract declare more than ``max_ratio`` times the
    archive's size."""
    size = archive.stat().st_size
    limit = max_ratio * size
    if declared > limit:
        raise UnsafeArchiveError(
            f"{file.filename} from {url}: refusing to extract the archive: the entries to extract declare "
            f"{declared} bytes, more than {max_ratio} times the archive's {size} bytes ({limit} bytes; "
            f"MAX_EXTRACTION_RATIO in captum_text_ext.datasets.download). Nothing was extracted."
        )


def _checked_parts(
    name: str, refusal: Callable[[Tuple[str, ...]], Optional[str]], file: RemoteFile, url: str
) -> Tuple[str, ...]:
    """An entry's path components, once its name and its kind (``refusal`` of the components: why the entry is
    refused, or ``None``) passed the checks.

    Raises:
        UnsafeArchiveError: naming the entry and the reason.
    """
    try:
        parts = path_parts(name)
    except UnsafeArchiveError as err:
        raise _unsafe(file, url, name, str(err)) from err
    reason = refusal(parts)
    if reason is not None:
        raise _unsafe(file, url, name, reason)
    return parts


def _tar_refusal(entry: tarfile.TarInfo, parts: Tuple[str, ...]) -> Optional[str]:
    """Why a tar entry is refused, or ``None`` for a regular file or directory."""
    if entry.issym() or entry.islnk():
        kind = "symlink" if entry.issym() else "hardlink"
        # A symlink resolves against its own directory, a hardlink against the archive root.
        escaping = escapes(parts[:-1] if entry.issym() else (), entry.linkname)
        where = "pointing outside the extraction directory" if escaping else "(links are not extracted)"
        return f"{kind} to {entry.linkname!r} {where}"
    if not (entry.isfile() or entry.isdir()):
        return "device file, FIFO or other special file"
    return None


def _zip_refusal(entry: zipfile.ZipInfo) -> Optional[str]:
    """Why a zip entry is refused, or ``None`` for a regular file or directory (also one without file-type bits)."""
    file_type = stat.S_IFMT(entry.external_attr >> 16)
    if file_type == stat.S_IFLNK:
        return "symlink (links are not extracted)"
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "device file, FIFO or other special file"
    if entry.compress_type not in _ZIP_METHODS:
        return f"compression method {entry.compress_type} (only stored and deflated entries are extracted)"
    return None


def _extract_tar(archive: Path, file: RemoteFile, url: str, staging: Path, max_ratio: int) -> None:
    """Check every entry of a .tar.gz, then extract the selected ones into ``staging``."""
    with tarfile.open(archive, "r:gz") as tar:
        entries = [
            (entry, _checked_parts(entry.name, lambda parts: _tar_refusal(entry, parts), file, url))
            for entry in tar.getmembers()
        ]
        selected = _select(entries, file, url)
        _check_size(sum(entry.size for entry in selected if entry.isfile()), max_ratio, archive, file, url)
        if hasattr(tarfile, "data_filter"):
            try:
                tar.extractall(staging, members=selected, filter="data")
            except tarfile.FilterError as err:
                raise _unsafe(file, url, err.tarinfo.name, str(err)) from err
        else:  # Python before 3.10.12 / 3.11.4 has no extraction filters; the checks above still hold.
            tar.extractall(staging, members=selected)


def _extract_zip(archive: Path, file: RemoteFile, url: str, staging: Path, max_ratio: int) -> None:
    """Check every entry of a .zip, then extract the selected ones into ``staging``."""
    with zipfile.ZipFile(archive) as zipped:
        entries = [
            (entry, _checked_parts(entry.filename, lambda _: _zip_refusal(entry), file, url))
            for entry in zipped.infolist()
        ]
        selected = _select(entries, file, url)
        _check_size(sum(entry.file_size for entry in selected if not entry.is_dir()), max_ratio, archive, file, url)
        for entry in selected:
            zipped.extract(entry, staging)


def _recode(path: Path, encoding: str, member: str) -> None:
    """Re-encode a text file from ``encoding`` to UTF-8 in place."""
    try:
        text = path.read_bytes().decode(encoding)
    except UnicodeDecodeError as err:
        raise ValueError(f"archive member {member!r}: expected text encoded as {encoding}; {err}") from err
    path.write_bytes(text.encode("utf-8"))


def extract(archive: Path, file: RemoteFile, url: str, directory: Path, max_ratio: int) -> None:
    """Extract a verified archive's members to their targets under ``directory``, if the entries to extract declare
    at most ``max_ratio`` times the archive's size in bytes.

    The archive is extracted into a temporary directory inside ``directory`` (removed whatever happens), and the
    members reach their targets only when every entry passed the checks and every member to re-encode was
    re-encoded. Targets must not exist yet (``directory`` is a fresh staging directory).

    Raises:
        UnsafeArchiveError: when an entry is refused or the entries to extract are too large.
        ValueError: when the archive is unreadable, lacks a member of the spec, or a member is not text in its
            ``recode_from`` encoding.
    """
    staging = Path(tempfile.mkdtemp(dir=directory, prefix=f".{file.filename}.", suffix=".extract"))
    try:
        try:
            if file.action == "zip":
                _extract_zip(archive, file, url, staging, max_ratio)
            else:
                _extract_tar(archive, file, url, staging, max_ratio)
        except (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as err:
            raise ValueError(
                f"{file.filename} from {url}: not a readable {file.action} archive ({err}). Nothing was extracted."
            ) from err
        for member in file.members:
            if member.recode_from is not None:
                _recode(staging.joinpath(*path_parts(member.member)), member.recode_from, member.member)
        for member in file.members:
            target = directory.joinpath(*path_parts(member.target))
            target.parent.mkdir(parents=True, exist_ok=True)
            staging.joinpath(*path_parts(member.member)).rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
