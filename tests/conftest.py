"""Shared fixtures: the shared data directory, seeds and float64 defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from captum_text_ext.datasets._paths import DATA_ENV_VAR


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The directory named by ``CAPTUM_TEXT_EXT_DATA`` (``../shared/data`` in CI).

    Outside CI a test that needs the real datasets is skipped when the variable is unset; under ``CI=true`` it
    fails instead, so CI can never pass by skipping.
    """
    value = os.environ.get(DATA_ENV_VAR)
    if value and Path(value).is_dir():
        return Path(value)
    message = f"{DATA_ENV_VAR} does not name a directory (got {value!r}); the real-data tests need it"
    if _in_ci():
        pytest.fail(message)
    pytest.skip(message)


def pytest_configure(config: pytest.Config) -> None:
    """Deprecated APIs are errors: the suite runs with ``-W error::DeprecationWarning`` hygiene."""
    config.addinivalue_line("filterwarnings", "error::DeprecationWarning")
