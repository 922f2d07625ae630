"""Download the datasets into the layout the loaders read, checking every checksum before anything is kept.

:data:`DOWNLOADS` maps each dataset name (``sst``, ``mr``, ``ag_news``, ``imdb``, ``arras_lrp``) to a
:class:`DownloadSpec`: where each file comes from, how it becomes the files the loaders read, the checksums it
must match, where each checksum was published, and the dataset's licence or terms. :func:`download` fetches one
dataset into ``<data dir>/<name>/``, with the data directory resolved as the loaders resolve it (see
:mod:`captum_text_ext.datasets._paths`).

A :class:`Checksum` is ``verified`` when its value was checked against a known-good copy of the file, not just
copied from where it was published: the git blob ids and the AG News test MD5 below match the copies in
``shared/data`` (``tests/datasets/test_download.py`` checks this). :func:`download` refuses a file whose
checksums are not all verified, or that has none, unless ``allow_unverified=True``; a checksum that is present is
enforced either way.

Checksum algorithms: ``sha256``, ``md5`` and ``git-blob-sha1``, the SHA-1 of ``b"blob <size>\\0" + content``,
which is the id git gives the file's content (``git hash-object FILE``). A blob id can be checked by anyone
against the cited repository and commit (``git ls-tree <commit> -- <path>``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List, Literal, Optional, Sequence, Tuple, Union, get_args
from urllib.parse import quote

from tqdm.auto import tqdm

from captum_text_ext._version import __version__
from captum_text_ext.datasets._checks import check_choice
from captum_text_ext.datasets._paths import PathLike, candidate_data_dirs

__all__ = [
    "DOWNLOADS",
    "ArchiveMember",
    "Checksum",
    "ChecksumMismatchError",
    "DownloadSpec",
    "RemoteFile",
    "Source",
    "UnsafeArchiveError",
    "UnverifiedDownloadError",
    "download",
    "file_checksum",
]

Algorithm = Literal["sha256", "md5", "git-blob-sha1"]
Action = Literal["store", "zip", "tar.gz"]

_HEX_LENGTH: Dict[str, int] = {"sha256": 64, "md5": 32, "git-blob-sha1": 40}
_CHUNK = 1 << 20
_TIMEOUT_S = 60.0
_DRIVE = re.compile(r"^[A-Za-z]:")


class ChecksumMismatchError(ValueError):
    """A downloaded file does not match a checksum of its spec; the download was deleted."""


class UnsafeArchiveError(ValueError):
    """An archive holds a member that could write outside its directory, or a link or special file."""


class UnverifiedDownloadError(ValueError):
    """A file's checksum was never checked against a known-good copy, and ``allow_unverified`` was not set."""


@dataclass(frozen=True)
class Checksum:
    """A checksum of a file's bytes, and where its value comes from.

    Attributes:
        algorithm: ``"sha256"``, ``"md5"`` or ``"git-blob-sha1"`` (the file's git blob id).
        value: lowercase hex digest.
        published_at: exactly where the value was published (repository, commit and path, or "measured here").
        verified: whether the value was checked against a known-good copy of the file.
    """

    algorithm: Algorithm
    value: str
    published_at: str
    verified: bool

    def __post_init__(self) -> None:
        check_choice("Checksum.algorithm", self.algorithm, get_args(Algorithm))
        length = _HEX_LENGTH[self.algorithm]
        if not re.fullmatch(f"[0-9a-f]{{{length}}}", self.value):
            raise ValueError(
                f"Checksum.value: expected {length} lowercase hex digits for {self.algorithm}; got {self.value!r}"
            )
        if not self.published_at.strip():
            raise ValueError(
                f"Checksum.published_at: expected where the value was published; got {self.published_at!r}"
            )


@dataclass(frozen=True)
class ArchiveMember:
    """Which part of an archive becomes which file or directory of the dataset.

    Attributes:
        member: a file's path inside the archive (``"trees/train.txt"``), or a directory's path ending in ``/``
            (``"aclImdb/"``), which takes everything under it.
        target: the path under ``<data dir>/<dataset>/`` it is moved to; ends in ``/`` exactly when ``member``
            does.
        recode_from: for a file, the text encoding it is stored in; it is re-encoded to UTF-8, which the loaders
            read. ``None`` keeps the bytes.
    """

    member: str
    target: str
    recode_from: Optional[str] = None

    def __post_init__(self) -> None:
        _check_relative("ArchiveMember.member", self.member)
        _check_relative("ArchiveMember.target", self.target)
        if self.member.endswith("/") != self.target.endswith("/"):
            raise ValueError(
                f"ArchiveMember.target: expected a directory path ending in '/' exactly when member "
                f"{self.member!r} is one; got {self.target!r}"
            )
        if self.recode_from is not None and self.member.endswith("/"):
            raise ValueError(
                f"ArchiveMember.recode_from: expected None for the directory member {self.member!r}; "
                f"got {self.recode_from!r}"
            )

    def selects(self, parts: Tuple[str, ...]) -> bool:
        """Whether the archive entry with these path components belongs to this member."""
        own = _path_parts(self.member)
        return parts == own if not self.member.endswith("/") else parts[: len(own)] == own


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch, what to do with it and the checksums it must match.

    Attributes:
        url: where to fetch it.
        filename: a plain file name. For ``action="store"`` the file is kept as ``<dataset dir>/<filename>``; for
            an archive it names the temporary download and the completion marker.
        action: ``"store"`` keeps the file as is; ``"zip"`` and ``"tar.gz"`` extract ``members``.
        checksums: checksums of the downloaded bytes, all enforced; empty when none was published.
        members: for an archive, the parts extracted and where they go; empty for ``"store"``.
    """

    url: str
    filename: str
    action: Action = "store"
    checksums: Tuple[Checksum, ...] = ()
    members: Tuple[ArchiveMember, ...] = ()

    def __post_init__(self) -> None:
        if not re.match(r"^(https?|file)://", self.url):
            raise ValueError(f"RemoteFile.url: expected an http(s):// or file:// URL; got {self.url!r}")
        _check_plain_name("RemoteFile.filename", self.filename)
        check_choice("RemoteFile.action", self.action, get_args(Action))
        algorithms = [checksum.algorithm for checksum in self.checksums]
        if len(set(algorithms)) != len(algorithms):
            raise ValueError(f"RemoteFile.checksums: expected at most one per algorithm; got {algorithms}")
        if (self.action == "store") != (not self.members):
            raise ValueError(
                f"RemoteFile.members: expected none for action 'store' and at least one for an archive; got "
                f"{len(self.members)} for action {self.action!r}"
            )

    @property
    def verified(self) -> bool:
        """Whether the file has checksums and every one of them is verified."""
        return bool(self.checksums) and all(checksum.verified for checksum in self.checksums)

    @property
    def targets(self) -> Tuple[str, ...]:
        """The paths, relative to the dataset directory, that this file produces."""
        return (self.filename,) if self.action == "store" else tuple(m.target for m in self.members)


@dataclass(frozen=True)
class Source:
    """One way to obtain a dataset: a named set of files that together give the loaders' layout.

    Attributes:
        name: e.g. ``"github"`` (pinned copies on GitHub) or ``"official"`` (the authors' archive).
        files: the files to fetch.
    """

    name: str
    files: Tuple[RemoteFile, ...]


@dataclass(frozen=True)
class DownloadSpec:
    """How to download one dataset.

    Attributes:
        name: the dataset, also its sub-directory of the data directory.
        licence: the licence or terms of use, with what to cite.
        sources: the ways to obtain it.
        default_source: the name of the source used when none is asked for.
    """

    name: str
    licence: str
    sources: Tuple[Source, ...]
    default_source: str

    def __post_init__(self) -> None:
        _check_plain_name("DownloadSpec.name", self.name)
        check_choice("DownloadSpec.default_source", self.default_source, [s.name for s in self.sources])

    def source(self, name: Optional[str] = None) -> Source:
        """The source called ``name``, or the default source when ``name`` is ``None``.

        Raises:
            ValueError: when no source has that name; the message lists the names.
        """
        wanted = self.default_source if name is None else name
        names = [s.name for s in self.sources]
        check_choice(f"source (for dataset {self.name!r})", wanted, names)
        return self.sources[names.index(wanted)]


def _check_relative(argument: str, path: str) -> None:
    """Raise unless ``path`` is a non-empty relative ``/``-separated path without ``..`` components."""
    try:
        parts = _path_parts(path)
    except UnsafeArchiveError as err:
        raise ValueError(
            f"{argument}: expected a relative '/'-separated path without '..' or backslashes; got {path!r}"
        ) from err
    if not parts:
        raise ValueError(f"{argument}: expected a non-empty relative path; got {path!r}")


def _check_plain_name(argument: str, name: str) -> None:
    """Raise unless ``name`` is a single path component (no separator, not ``.`` or ``..``)."""
    if "/" in name or "\\" in name or name in ("", ".", ".."):
        raise ValueError(f"{argument}: expected a plain file name; got {name!r}")


def _path_parts(name: str) -> Tuple[str, ...]:
    """The components of an archive member name, without empty and ``.`` components.

    Raises:
        UnsafeArchiveError: when the name is absolute (``/x``, ``C:x``), has a ``..`` component, or has a
            backslash (a separator on Windows, a plain character elsewhere).
    """
    if name.startswith("/") or _DRIVE.match(name):
        raise UnsafeArchiveError(f"absolute path {name!r}")
    if "\\" in name:
        raise UnsafeArchiveError(f"backslash in {name!r}")
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if ".." in parts:
        raise UnsafeArchiveError(f"'..' component in {name!r}")
    return parts


def _escapes(link_from: Tuple[str, ...], link_target: str) -> bool:
    """Whether ``link_target``, resolved against the directory ``link_from``, leaves the extraction directory."""
    if link_target.startswith("/") or _DRIVE.match(link_target):
        return True
    depth = len(link_from)
    for part in link_target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


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

    def open_stream() -> IO[bytes]:
        return gzip.open(path, "rb") if gunzip else open(path, "rb")

    def chunks() -> Iterator[bytes]:
        with open_stream() as stream:
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


def _matches(path: Path, checksums: Sequence[Checksum], *, gunzip: bool) -> bool:
    """Whether the file matches every checksum; an unreadable gzip file matches nothing."""
    try:
        measured = _checksums(path, [c.algorithm for c in checksums], gunzip=gunzip)
    except (OSError, EOFError, zlib.error):  # gzip.BadGzipFile is an OSError
        return False
    return all(measured[c.algorithm] == c.value for c in checksums)


def _marker(dataset_dir: Path, file: RemoteFile) -> Path:
    """The file recording that an archive was extracted completely."""
    return dataset_dir / f".{file.filename}.complete"


def _fingerprint(file: RemoteFile) -> str:
    """What the completion marker of an archive holds: its checksums and member mapping."""
    lines = [file.filename]
    lines += [f"{c.algorithm} {c.value}" for c in file.checksums]
    lines += [f"{m.member} -> {m.target} ({m.recode_from})" for m in file.members]
    return "\n".join(lines) + "\n"


def _is_present(dataset_dir: Path, file: RemoteFile) -> bool:
    """Whether a file, or everything an archive produces, is already in place.

    A stored file counts when it (or its ``.gz`` twin, which the loaders also read) matches every checksum, or
    merely exists when it has none. An archive counts when its completion marker matches and every target exists.
    """
    if file.action == "store":
        for candidate, gunzip in ((file.filename, False), (file.filename + ".gz", True)):
            path = dataset_dir / candidate
            if path.is_file() and (not file.checksums or _matches(path, file.checksums, gunzip=gunzip)):
                return True
        return False
    marker = _marker(dataset_dir, file)
    return (
        marker.is_file()
        and marker.read_text(encoding="utf-8") == _fingerprint(file)
        and all((dataset_dir / target).exists() for target in file.targets)
    )


def _fetch(url: str, dataset_dir: Path, filename: str, progress: bool) -> Path:
    """Download ``url`` to a temporary file in ``dataset_dir``; on any failure no file is left behind."""
    request = urllib.request.Request(url, headers={"User-Agent": f"captum_text_ext/{__version__}"})
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.URLError as err:  # HTTPError is a URLError
        raise OSError(f"downloading {filename} from {url} failed: {err}") from err
    with response:
        length = response.headers.get("Content-Length")
        handle, name = tempfile.mkstemp(dir=dataset_dir, prefix=f".{filename}.", suffix=".part")
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


def _verify(path: Path, file: RemoteFile, url: str) -> None:
    """Raise :class:`ChecksumMismatchError` unless the download matches every checksum of ``file``."""
    measured = _checksums(path, [c.algorithm for c in file.checksums], gunzip=False)
    for checksum in file.checksums:
        got = measured[checksum.algorithm]
        if got != checksum.value:
            raise ChecksumMismatchError(
                f"{file.filename} downloaded from {url}: {checksum.algorithm} checksum mismatch: expected "
                f"{checksum.value} (published at {checksum.published_at}), got {got}. The download was deleted."
            )


def _select(names: Sequence[Tuple[str, Tuple[str, ...]]], file: RemoteFile, url: str) -> List[str]:
    """The archive entry names that some member of ``file`` takes; every member must take at least one.

    Args:
        names: each entry's name and its path components.
        file: the archive's spec.
        url: where the archive came from, for the message.

    Raises:
        ValueError: when a member of the spec matches no entry.
    """
    selected = [name for name, parts in names if any(m.selects(parts) for m in file.members)]
    for member in file.members:
        if not any(member.selects(parts) for _, parts in names):
            raise ValueError(f"{file.filename} from {url}: expected a member {member.member!r}; the archive has none")
    return selected


def _unsafe(file: RemoteFile, url: str, name: str, reason: str) -> UnsafeArchiveError:
    """The error refusing the archive because of one entry."""
    return UnsafeArchiveError(
        f"{file.filename} from {url}: refusing to extract the archive because of member {name!r}: {reason}. "
        f"Nothing was extracted."
    )


def _extract_tar(archive: Path, file: RemoteFile, url: str, staging: Path) -> None:
    """Check every entry of a .tar.gz, then extract the selected ones into ``staging``."""
    with tarfile.open(archive, "r:gz") as tar:
        entries = tar.getmembers()
        names = []
        for entry in entries:
            try:
                parts = _path_parts(entry.name)
            except UnsafeArchiveError as err:
                raise _unsafe(file, url, entry.name, str(err)) from err
            if entry.issym() or entry.islnk():
                kind = "symlink" if entry.issym() else "hardlink"
                # A symlink resolves against its own directory, a hardlink against the archive root.
                escapes = _escapes(parts[:-1] if entry.issym() else (), entry.linkname)
                where = "pointing outside the extraction directory" if escapes else "(links are not extracted)"
                raise _unsafe(file, url, entry.name, f"{kind} to {entry.linkname!r} {where}")
            if not (entry.isfile() or entry.isdir()):
                raise _unsafe(file, url, entry.name, "device file, FIFO or other special file")
            names.append((entry.name, parts))
        wanted = set(_select(names, file, url))
        selected = [entry for entry in entries if entry.name in wanted]
        if hasattr(tarfile, "data_filter"):
            try:
                tar.extractall(staging, members=selected, filter="data")
            except tarfile.FilterError as err:
                raise _unsafe(file, url, err.tarinfo.name, str(err)) from err
        else:  # Python before 3.10.12 / 3.11.4 has no extraction filters; the checks above still hold.
            tar.extractall(staging, members=selected)


def _extract_zip(archive: Path, file: RemoteFile, url: str, staging: Path) -> None:
    """Check every entry of a .zip, then extract the selected ones into ``staging``."""
    with zipfile.ZipFile(archive) as zipped:
        entries = zipped.infolist()
        names = []
        for entry in entries:
            try:
                parts = _path_parts(entry.filename)
            except UnsafeArchiveError as err:
                raise _unsafe(file, url, entry.filename, str(err)) from err
            mode = entry.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise _unsafe(file, url, entry.filename, "symlink (links are not extracted)")
            if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise _unsafe(file, url, entry.filename, "device file, FIFO or other special file")
            names.append((entry.filename, parts))
        for name in _select(names, file, url):
            zipped.extract(name, staging)


def _recode(path: Path, encoding: str, member: str) -> None:
    """Re-encode a text file from ``encoding`` to UTF-8 in place."""
    try:
        text = path.read_bytes().decode(encoding)
    except UnicodeDecodeError as err:
        raise ValueError(f"archive member {member!r}: expected text encoded as {encoding}; {err}") from err
    path.write_bytes(text.encode("utf-8"))


def _extract(archive: Path, file: RemoteFile, url: str, dataset_dir: Path) -> None:
    """Extract a verified archive into a staging directory, then move each member to its target.

    Existing targets are replaced. Nothing reaches ``dataset_dir`` unless every entry passed the checks and every
    member to re-encode was re-encoded, and the staging directory is removed whatever happens.
    """
    staging = Path(tempfile.mkdtemp(dir=dataset_dir, prefix=f".{file.filename}.", suffix=".extract"))
    try:
        if file.action == "zip":
            _extract_zip(archive, file, url, staging)
        else:
            _extract_tar(archive, file, url, staging)
        for member in file.members:
            if member.recode_from is not None:
                _recode(staging.joinpath(*_path_parts(member.member)), member.recode_from, member.member)
        for member in file.members:
            source = staging.joinpath(*_path_parts(member.member))
            target = dataset_dir.joinpath(*_path_parts(member.target))
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _resolve_spec(name: Union[str, DownloadSpec]) -> DownloadSpec:
    """The spec itself, or the registry entry called ``name``."""
    if isinstance(name, DownloadSpec):
        return name
    if name not in DOWNLOADS:
        known = ", ".join(repr(known) for known in DOWNLOADS)
        raise ValueError(f"name must be one of the known datasets {known} (or a DownloadSpec); got {name!r}")
    return DOWNLOADS[name]


def _unverified_message(spec: DownloadSpec, source: Source, files: Sequence[RemoteFile]) -> str:
    """Why :func:`download` refuses: each unverified file and what its checksums are."""
    reasons = []
    for file in files:
        if not file.checksums:
            reasons.append(f"{file.filename} from {file.url} has no published checksum")
        else:
            unchecked = "; ".join(
                f"{c.algorithm} {c.value} published at {c.published_at}" for c in file.checksums if not c.verified
            )
            reasons.append(
                f"{file.filename} from {file.url}: checksum never checked against a known-good copy ({unchecked})"
            )
    return (
        f"download({spec.name!r}, source={source.name!r}) refused: " + " | ".join(reasons) + ". Pass "
        "allow_unverified=True (CLI: --allow-unverified) to download it anyway; published checksums are still "
        "enforced."
    )


def download(
    name: Union[str, DownloadSpec],
    root: Optional[PathLike] = None,
    *,
    source: Optional[str] = None,
    allow_unverified: bool = False,
    base_url: Optional[str] = None,
    progress: bool = True,
) -> Path:
    """Download a dataset into ``<data dir>/<name>/`` in the layout the loaders read.

    Every file is downloaded to a temporary file in the dataset directory and checked against all its checksums
    before it is moved into place or extracted; a mismatch deletes it. Archives are checked entry by entry first
    (absolute paths, ``..`` components, links and special files are refused, and nothing is extracted then), and
    ``.tar.gz`` archives are extracted with the ``"data"`` extraction filter where Python has it. Files already in
    place with matching checksums (or their ``.gz`` twins), and archives whose extraction completed, are not
    downloaded again.

    Args:
        name: a dataset of :data:`DOWNLOADS` (``"sst"``, ``"mr"``, ``"ag_news"``, ``"imdb"``, ``"arras_lrp"``),
            or a :class:`DownloadSpec`.
        root: the data directory; default ``$CAPTUM_TEXT_EXT_DATA``, else ``~/.cache/captum_text_ext``, as for
            the loaders. Created if missing.
        source: which source of the spec to use (e.g. ``"official"``); default: the spec's default source.
        allow_unverified: download files whose checksums were never checked against a known-good copy, or that
            have none.
        base_url: fetch each file from ``<base_url>/<name>/<filename>`` instead of its URL (a mirror, or a test
            server).
        progress: show a progress bar per file.

    Returns:
        The dataset directory ``<data dir>/<name>``.

    Raises:
        ValueError: for an unknown dataset or source name, an archive without a member of the spec, or a member
            that is not text in its ``recode_from`` encoding.
        UnverifiedDownloadError: when a file is unverified and ``allow_unverified`` is false; nothing is fetched.
        ChecksumMismatchError: when a download does not match a checksum.
        UnsafeArchiveError: when an archive holds an entry that is refused.
        OSError: when a download fails.
    """
    spec = _resolve_spec(name)
    chosen = spec.source(source)
    unverified = [file for file in chosen.files if not file.verified]
    if unverified and not allow_unverified:
        raise UnverifiedDownloadError(_unverified_message(spec, chosen, unverified))
    dataset_dir = candidate_data_dirs(root)[0] / spec.name
    dataset_dir.mkdir(parents=True, exist_ok=True)
    for file in chosen.files:
        if _is_present(dataset_dir, file):
            continue
        url = file.url if base_url is None else f"{base_url.rstrip('/')}/{spec.name}/{file.filename}"
        temporary = _fetch(url, dataset_dir, file.filename, progress)
        try:
            _verify(temporary, file, url)
            if file.action == "store":
                os.replace(temporary, dataset_dir / file.filename)
            else:
                _extract(temporary, file, url, dataset_dir)
                _marker(dataset_dir, file).write_text(_fingerprint(file), encoding="utf-8")
        finally:
            temporary.unlink(missing_ok=True)
    return dataset_dir


# ---------------------------------------------------------------------------------------------------------------
# The registry.

_SHARED_README = "shared/data/README.md"


def _blob_checksum(repo: str, commit: str, path: str, blob: str, shared_copy: str) -> Checksum:
    """The git blob id of ``path`` in ``repo`` at ``commit``, verified against its copy in ``shared/data``.

    Args:
        repo: ``owner/name``.
        commit: the full commit id.
        path: the file's path in the repository.
        blob: its full git blob id, as recorded in ``shared/data/README.md``.
        shared_copy: the copy in ``shared/data`` the blob id matches (``tests/datasets/test_download.py`` checks
            it).
    """
    published = (
        f"git blob id of {path} in the tree of https://github.com/{repo} at commit {commit} "
        f"(`git ls-tree {commit} -- {path}`), recorded in {_SHARED_README}; matches the shared copy {shared_copy}"
    )
    return Checksum("git-blob-sha1", blob, published, verified=True)


def _github_file(repo: str, commit: str, path: str, blob: str, filename: str, shared_copy: str) -> RemoteFile:
    """A file stored as is from ``raw.githubusercontent.com`` at a pinned commit, checked by its git blob id.

    Args:
        repo: ``owner/name``.
        commit: the full commit id.
        path: the file's path in the repository.
        blob: its full git blob id.
        filename: the name it is stored under.
        shared_copy: the copy in ``shared/data`` the blob id matches.
    """
    return RemoteFile(
        url=f"https://raw.githubusercontent.com/{repo}/{commit}/{quote(path)}",
        filename=filename,
        checksums=(_blob_checksum(repo, commit, path, blob, shared_copy),),
    )


_RNTN = ("munikarmanish/RNTN", "12bb731ba9fbdcdf2368b8515a241773f2b97547")
_RNTN_ON_SPARK = ("iron-fe/rntn_on_Spark", "c42e0605cdc05ea9526ae4d93ade1d6ced1a562e")
_CNN_TEXT = ("dennybritz/cnn-text-classification-tf", "18762b459e21d9c70e5c242f8d43fc4e6db37a0d")
_CHARCNN = ("mhjabreel/CharCnn_Keras", "555590db4219b1243abb1918effd6a7425a2d75f")
_ARRAS = ("ArrasL/LRP_for_LSTM", "1c3073b6e7ff604df1b0f2843f7cab3824030593")


def _torchtext(path: str, commit: str, variable: str) -> str:
    """Where torchtext publishes a checksum: ``variable`` in ``path`` of pytorch/text at ``commit``."""
    return f"{variable} in {path} of https://github.com/pytorch/text at commit {commit}"


_SST = DownloadSpec(
    name="sst",
    licence=(
        "No licence statement in the source repositories, and no explicit licence found on the official page "
        "https://nlp.stanford.edu/sentiment/; distributed for research. Cite Socher et al. 2013."
    ),
    sources=(
        Source(
            "github",
            (
                _github_file(
                    *_RNTN_ON_SPARK, "trees/train副本.txt", "1c5317f7ccdc638e30091da2605654f0755e7ab5", "train.txt",
                    "shared/data/sst/train.txt.gz",
                ),
                _github_file(
                    *_RNTN, "trees/dev.txt", "bbc5d06608f69bfc42ebb1e06f20012409c36697", "dev.txt",
                    "shared/data/sst/dev.txt.gz",
                ),
                _github_file(
                    *_RNTN, "trees/test.txt", "90684652f42dbd0cb7e2c849baa80eb31f292c5e", "test.txt",
                    "shared/data/sst/test.txt.gz",
                ),
            ),
        ),
        Source(
            "official",
            (
                RemoteFile(
                    url="http://nlp.stanford.edu/sentiment/trainDevTestTrees_PTB.zip",
                    filename="trainDevTestTrees_PTB.zip",
                    action="zip",
                    checksums=(
                        Checksum(
                            "md5",
                            "5c3b23ce88089053fd3efeb4a34f614d",
                            _torchtext("torchtext/datasets/sst.py", "560c86640bf2b8977ac7e8345792afe15cedff3f", "MD5"),
                            verified=False,
                        ),
                    ),
                    members=(
                        ArchiveMember("trees/train.txt", "train.txt"),
                        ArchiveMember("trees/dev.txt", "dev.txt"),
                        ArchiveMember("trees/test.txt", "test.txt"),
                    ),
                ),
            ),
        ),
    ),
    default_source="github",
)

_MR = DownloadSpec(
    name="mr",
    licence=(
        "No explicit licence; distributed by the authors for research. Cite Pang & Lee 2005. (The GitHub source "
        "repository is Apache-2.0, but that covers its code, not this third-party data.)"
    ),
    sources=(
        Source(
            "github",
            (
                _github_file(
                    *_CNN_TEXT, "data/rt-polaritydata/rt-polarity.pos", "16fe13880ebd3241c5e8a485d31588ac2884d6d7",
                    "rt-polarity.pos", "shared/data/mr/rt-polarity.pos.gz",
                ),
                _github_file(
                    *_CNN_TEXT, "data/rt-polaritydata/rt-polarity.neg", "c3a869462ce54dbb10b05f6a32e0869b8102f94c",
                    "rt-polarity.neg", "shared/data/mr/rt-polarity.neg.gz",
                ),
            ),
        ),
        Source(
            "official",
            (
                RemoteFile(
                    url="https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz",
                    filename="rt-polaritydata.tar.gz",
                    action="tar.gz",
                    members=(
                        # The originals are Windows-1252; the loaders read UTF-8 (the GitHub copies are UTF-8).
                        ArchiveMember("rt-polaritydata/rt-polarity.pos", "rt-polarity.pos", recode_from="cp1252"),
                        ArchiveMember("rt-polaritydata/rt-polarity.neg", "rt-polarity.neg", recode_from="cp1252"),
                    ),
                ),
            ),
        ),
    ),
    default_source="github",
)

_AG_NEWS_TEST_MD5 = (
    _torchtext("torchtext/datasets/ag_news.py", "01085ab916ab9397649da3724f4eba0cdc15a480", "MD5['test']")
    + "; matches the shared copy shared/data/ag_news/test.csv.gz (measured)"
)

_AG_NEWS_TRAIN = RemoteFile(
    url=f"https://raw.githubusercontent.com/{_CHARCNN[0]}/{_CHARCNN[1]}/data/ag_news_csv/train.csv",
    filename="train.csv",
    checksums=(
        Checksum(
            "md5",
            "b1a00f826fdfbd249f79597b59e1dc12",
            _torchtext("torchtext/datasets/ag_news.py", "01085ab916ab9397649da3724f4eba0cdc15a480",
                       "MD5['train']"),
            verified=False,
        ),
        Checksum(
            "git-blob-sha1",
            "694aa19971315410e000404523796b76349d3c1d",
            f"git blob id of data/ag_news_csv/train.csv in https://github.com/{_CHARCNN[0]}, recorded "
            f"in {_SHARED_README} (section 'Not included'); no copy here to check it against",
            verified=False,
        ),
    ),
)

_AG_NEWS_TEST = RemoteFile(
    url=f"https://raw.githubusercontent.com/{_CHARCNN[0]}/{_CHARCNN[1]}/data/ag_news_csv/test.csv",
    filename="test.csv",
    checksums=(
        Checksum("md5", "d52ea96a97a2d943681189a97654912d", _AG_NEWS_TEST_MD5, verified=True),
        _blob_checksum(
            *_CHARCNN, "data/ag_news_csv/test.csv", "130b40c3329c993468b8ed8a22c331315e478e0a",
            "shared/data/ag_news/test.csv.gz",
        ),
    ),
)

_AG_NEWS_CLASSES = RemoteFile(
    url=f"https://raw.githubusercontent.com/{_CHARCNN[0]}/{_CHARCNN[1]}/data/ag_news_csv/classes.txt",
    filename="classes.txt",
    checksums=(
        Checksum(
            "git-blob-sha1",
            "e0a3d189cb86add99438018b1e218d3177919dc5",
            f"not published: measured here from the copy shared/data/ag_news/classes.txt.gz, taken "
            f"from https://github.com/{_CHARCNN[0]} at commit {_CHARCNN[1]} like test.csv, whose "
            f"copy matches the published MD5",
            verified=True,
        ),
    ),
)

_AG_NEWS = DownloadSpec(
    name="ag_news",
    licence=(
        "Research and non-commercial use only: the dataset's readme says the AG corpus is provided by the academic "
        "community for research purposes in data mining, information retrieval, xml, data compression, data "
        "streaming, and any other non-commercial activity. Cite Zhang et al. 2015."
    ),
    sources=(
        # What `load_ag_news(source="offline")` reads: the official test split and the class names, all verified.
        Source("offline", (_AG_NEWS_TEST, _AG_NEWS_CLASSES)),
        # What `load_ag_news(source="official")` reads; train.csv has published checksums nobody here could check.
        Source("official", (_AG_NEWS_TRAIN, _AG_NEWS_TEST, _AG_NEWS_CLASSES)),
    ),
    default_source="offline",
)

_IMDB = DownloadSpec(
    name="imdb",
    licence=(
        f"No terms recorded in {_SHARED_README} (IMDB is not stored there); see "
        "http://ai.stanford.edu/~amaas/data/sentiment/ and cite Maas et al. 2011."
    ),
    sources=(
        Source(
            "official",
            (
                RemoteFile(
                    url="http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
                    filename="aclImdb_v1.tar.gz",
                    action="tar.gz",
                    checksums=(
                        Checksum(
                            "md5",
                            "7c2ac02c03563afcf9b574c7e56c153a",
                            _torchtext("torchtext/datasets/imdb.py", "003eae6f1eed2665451c972107b135abd7e731d6", "MD5"),
                            verified=False,
                        ),
                    ),
                    members=(ArchiveMember("aclImdb/", "aclImdb/"),),
                ),
            ),
        ),
    ),
    default_source="official",
)

_ARRAS_LRP = DownloadSpec(
    name="arras_lrp",
    licence=(
        "Academic use only: the LICENSE of ArrasL/LRP_for_LSTM (2-clause-BSD-style) reads \"Copyright (c) 2017, "
        "Leila Arras, Gregoire Montavon, Klaus-Robert Mueller, Wojciech Samek. All rights reserved. Free for "
        "academic use only. Patent pending.\" The weights were trained by Li et al. 2016 (no licence file seen in "
        "their repository). Cite Li et al. 2016, Arras et al. 2017 and Socher et al. 2013."
    ),
    sources=(
        Source(
            "github",
            (
                _github_file(
                    *_ARRAS, "model/model", "2a4afc76bb1645a467e969eb36565bd7d1fb4ec6", "model",
                    "shared/data/arras_lrp/model.gz",
                ),
                _github_file(
                    *_ARRAS, "model/vocab", "94f445f0172420b9f1dad0b8fa11f79692c8b50d", "vocab",
                    "shared/data/arras_lrp/vocab.gz",
                ),
                _github_file(
                    *_ARRAS, "data/sequence_test.txt", "f7da720f6415a0e72cb3d85c2e1444f76973bc2c",
                    "sequence_test.txt", "shared/data/arras_lrp/sequence_test.txt.gz",
                ),
            ),
        ),
    ),
    default_source="github",
)

DOWNLOADS: Dict[str, DownloadSpec] = {spec.name: spec for spec in (_SST, _MR, _AG_NEWS, _IMDB, _ARRAS_LRP)}
"""Every downloadable dataset by name."""
