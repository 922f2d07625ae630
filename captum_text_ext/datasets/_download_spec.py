"""What a download is: the checksums, files, sources and datasets of the registry, the errors a download raises,
and the checks of the paths they name.

Used by :mod:`captum_text_ext.datasets.download`, which re-exports the public names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Literal, Optional, Tuple, get_args

from captum_text_ext.datasets._checks import check_choice

__all__ = [
    "Action",
    "Algorithm",
    "ArchiveMember",
    "Checksum",
    "ChecksumMismatchError",
    "DownloadSpec",
    "RemoteFile",
    "Source",
    "UnsafeArchiveError",
    "UnverifiedDownloadError",
    "escapes",
    "path_parts",
]

Algorithm = Literal["sha256", "md5", "git-blob-sha1"]
Action = Literal["store", "zip", "tar.gz"]

_HEX_LENGTH: Dict[str, int] = {"sha256": 64, "md5": 32, "git-blob-sha1": 40}
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
        own = path_parts(self.member)
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

    def __post_init__(self) -> None:
        # The files are staged side by side before they are installed: no two may share a name or a target.
        for what, names in (
            ("file name", [file.filename for file in self.files]),
            ("target", [target for file in self.files for target in file.targets]),
        ):
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise ValueError(
                    f"Source.files: expected each {what} once in source {self.name!r}; got {repeated} more than once"
                )


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
        parts = path_parts(path)
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


def path_parts(name: str) -> Tuple[str, ...]:
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


def escapes(link_from: Tuple[str, ...], link_target: str) -> bool:
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
