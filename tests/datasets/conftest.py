"""Fixtures for the dataset tests."""

from __future__ import annotations

from pathlib import Path

import pytest

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
