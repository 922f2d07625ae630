"""Shared fixtures: the shared data directory, seeds and float64 defaults."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Iterator

import pytest
import torch

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


ONE_THREAD_DIRECTORIES = ("attr", "decomposition", "benchmarks", "corpus")
"""Test directories run with one intra-op thread: their small float64 tests (and the benchmarks, which run on one
thread themselves) are slowed down by OpenMP's spin-waiting on a loaded 2-core machine, where a tiny matmul takes
~15 ms with 2 threads and ~10 us with 1."""


@pytest.fixture(autouse=True)
def _one_thread_in_small_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    if Path(str(request.node.path)).parent.name not in ONE_THREAD_DIRECTORIES:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def pytest_configure(config: pytest.Config) -> None:
    """Deprecated APIs are errors: the suite runs with ``-W error::DeprecationWarning`` hygiene."""
    config.addinivalue_line("filterwarnings", "error::DeprecationWarning")


@pytest.fixture(scope="session")
def synthetic_zoo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The two synthetic zoo models, trained once per session by the real ``captum-text-ext train`` command.

    Returns a dict with the model ``cache`` directory, the ``record`` directory the runs were recorded in, and
    what each command ``printed`` (by model name).
    """
    from captum_text_ext.cli import main

    base = tmp_path_factory.mktemp("synthetic_zoo")
    cache, record = base / "cache", base / "results" / "models"
    printed = {}
    for name in ("lstm-synthetic", "textcnn-synthetic"):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            status = main(["train", name, "--cache-dir", str(cache), "--record", str(record), "--quiet"])
        assert status == 0, buffer.getvalue()
        printed[name] = buffer.getvalue()
    return {"cache": cache, "record": record, "printed": printed}
