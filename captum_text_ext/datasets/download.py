"""Download the datasets into the layout the loaders read, checking every checksum before anything is kept.

:data:`DOWNLOADS` maps each dataset name (``sst``, ``mr``, ``ag_news``, ``imdb``, ``arras_lrp``) to a
:class:`DownloadSpec`: where each file comes from, how it becomes the files the loaders read, the checksums it
must match, where each checksum was published, and the dataset's licence or terms. :func:`download` fetches one
dataset into ``<data dir>/<name>/``, with the data directory resolved as the loaders resolve it (see
:mod:`captum_text_ext.datasets._paths`).

A :class:`Checksum` is ``verified`` when its value was checked against a known-good copy of the file, not just
copied from where it was published: the git blob ids and the AG News test MD5 of the registry match the copies in
``shared/data`` (``tests/datasets/test_download.py`` checks this). :func:`download` refuses a file whose
checksums are not all verified, or that has none, unless ``allow_unverified=True``; a checksum that is present is
enforced either way.

Checksum algorithms: ``sha256``, ``md5`` and ``git-blob-sha1``, the SHA-1 of ``b"blob <size>\\0" + content``,
which is the id git gives the file's content (``git hash-object FILE``). A blob id can be checked by anyone
against the cited repository and commit (``git ls-tree <commit> -- <path>``).

This module installs; the parts it is built from each do one job: the spec types and errors
(``_download_spec``), fetching and checksums (``_download_fetch``), safe archive extraction
(``_download_archive``) and the registry (``_download_registry``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from captum_text_ext.datasets._download_archive import extract
from captum_text_ext.datasets._download_fetch import fetch, file_checksum, matches, verify
from captum_text_ext.datasets._download_registry import REGISTERED
from captum_text_ext.datasets._download_spec import (
    ArchiveMember,
    Checksum,
    ChecksumMismatchError,
    DownloadSpec,
    RemoteFile,
    Source,
    UnsafeArchiveError,
    UnverifiedDownloadError,
    path_parts,
)
from captum_text_ext.datasets._paths import PathLike, candidate_data_dirs

__all__ = [
    "DOWNLOADS",
    "MAX_EXTRACTION_RATIO",
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

DOWNLOADS: Dict[str, DownloadSpec] = {spec.name: spec for spec in REGISTERED}
"""Every downloadable dataset by name."""

MAX_EXTRACTION_RATIO = 100
"""The most bytes extracted from an archive per byte of the archive: the entries extracted may declare at most 100
times the archive's size in total. Text compresses far less (the datasets' files in ``shared/data`` gzip 2.5 to 3.8
times), so only an archive built to expand (a "zip bomb") comes near it."""


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
            if path.is_file() and (not file.checksums or matches(path, file.checksums, gunzip=gunzip)):
                return True
        return False
    marker = _marker(dataset_dir, file)
    return (
        marker.is_file()
        and marker.read_text(encoding="utf-8") == _fingerprint(file)
        and all((dataset_dir / target).exists() for target in file.targets)
    )


def _stage(file: RemoteFile, url: str, staging: Path, progress: bool) -> None:
    """Fetch one file into ``staging``, verify it, and store it or extract its members (with its marker) there."""
    temporary = fetch(url, staging, file.filename, progress)
    try:
        verify(temporary, file, url)
        if file.action == "store":
            os.replace(temporary, staging / file.filename)
        else:
            extract(temporary, file, url, staging, MAX_EXTRACTION_RATIO)
            _marker(staging, file).write_text(_fingerprint(file), encoding="utf-8")
    finally:
        temporary.unlink(missing_ok=True)


def _install(staging: Path, dataset_dir: Path, files: Sequence[RemoteFile]) -> None:
    """Move everything staged for ``files`` into ``dataset_dir``.

    A dataset directory that does not exist yet (or is empty) is replaced by the staging directory in one rename.
    Otherwise each target replaces its counterpart (a file in one ``os.replace``; a directory is first moved into
    the staging directory, which is deleted afterwards), and the completion markers come last.
    """
    try:
        staging.rename(dataset_dir)
        return
    except OSError:
        if not dataset_dir.is_dir():
            raise
    for file in files:
        for target in file.targets:
            destination = dataset_dir.joinpath(*path_parts(target))
            destination.parent.mkdir(parents=True, exist_ok=True)
            if destination.is_dir() and not destination.is_symlink():
                destination.rename(Path(tempfile.mkdtemp(dir=staging, prefix=".replaced.")) / destination.name)
            os.replace(staging.joinpath(*path_parts(target)), destination)
    for file in files:
        if file.action != "store":
            os.replace(_marker(staging, file), _marker(dataset_dir, file))


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
    """Download a dataset into ``<data dir>/<name>/`` in the layout the loaders read, all files or none.

    Every missing file is downloaded into one staging directory beside the dataset directory
    (``<data dir>/.<name>.*.staging``) and checked against all its checksums before it is stored or extracted
    there. Only when every file of the source is staged does anything reach the dataset directory: a dataset
    directory that does not exist yet is the staging directory renamed into place in one step; an existing one
    gets each staged file or directory moved in. Any failure (a checksum mismatch on the third file, a refused
    archive, an interrupted download) deletes the staging directory and leaves the dataset directory as it was.

    Archives are checked entry by entry first and nothing is extracted when one entry is refused: absolute paths,
    ``..`` components, backslashes, links and special files (devices, FIFOs) are refused; a zip entry without
    file-type bits in its mode (as ``zipfile.ZipFile.writestr`` writes them) is a regular file. The entries
    extracted may declare at most :data:`MAX_EXTRACTION_RATIO` (100) times the archive's size in bytes, so a
    "zip bomb" is refused before it is extracted. ``.tar.gz`` archives are extracted with the ``"data"`` extraction
    filter where Python has it. Files already in place with matching checksums (or their ``.gz`` twins), and
    archives whose extraction completed, are not downloaded again.

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
        ValueError: for an unknown dataset or source name, an unreadable archive, an archive without a member of
            the spec, or a member that is not text in its ``recode_from`` encoding.
        UnverifiedDownloadError: when a file is unverified and ``allow_unverified`` is false; nothing is fetched.
        ChecksumMismatchError: when a download does not match a checksum.
        UnsafeArchiveError: when an archive holds an entry that is refused, or would extract more than
            :data:`MAX_EXTRACTION_RATIO` times its size.
        OSError: when a download fails.
    """
    spec = _resolve_spec(name)
    chosen = spec.source(source)
    unverified = [file for file in chosen.files if not file.verified]
    if unverified and not allow_unverified:
        raise UnverifiedDownloadError(_unverified_message(spec, chosen, unverified))
    data_dir = candidate_data_dirs(root)[0]
    dataset_dir = data_dir / spec.name
    missing: List[RemoteFile] = [file for file in chosen.files if not _is_present(dataset_dir, file)]
    if not missing:
        return dataset_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkdtemp: its mode 0o700 would become the dataset directory's; mkdir honours the umask.
    staging = data_dir / f".{spec.name}.{uuid.uuid4().hex}.staging"
    staging.mkdir()
    try:
        for file in missing:
            url = file.url if base_url is None else f"{base_url.rstrip('/')}/{spec.name}/{file.filename}"
            _stage(file, url, staging, progress)
        _install(staging, dataset_dir, missing)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dataset_dir
