"""Fixtures for the dataset tests."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from _download_helpers import Server, serve

from captum_text_ext.datasets._paths import DATA_ENV_VAR


@pytest.fixture
def empty_data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``$CAPTUM_TEXT_EXT_DATA`` at an empty directory and ``$HOME`` at another, so no dataset is found.

    Returns:
        The empty data directory.
    """
    data_dir = tmp_path / "empty_data"
    data_dir.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv(DATA_ENV_VAR, str(data_dir))
    monkeypatch.setenv("HOME", str(home))
    return data_dir


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """An HTTP server on 127.0.0.1 serving ``tmp_path/served`` (see ``_download_helpers.serve``)."""
    for variable in ("no_proxy", "NO_PROXY"):  # a proxy configured in the environment must not see these requests
        monkeypatch.setenv(variable, "127.0.0.1,localhost")
    directory = tmp_path / "served"
    directory.mkdir()
    with serve(directory) as running:
        yield running
