"""One intra-op thread for these small float64 tests: on a loaded 2-core machine, OpenMP's spin-waiting makes a tiny
matmul take ~15 ms with 2 threads and ~10 us with 1."""

from __future__ import annotations

from typing import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
