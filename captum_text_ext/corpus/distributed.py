"""The processes of a corpus run: ``torch.distributed``, as ``torchrun`` launches it.

Run as is, a run is one process (rank 0 of 1). Under ``torchrun --nproc-per-node K`` (or across nodes), each process
reads its rank from the environment ``torchrun`` sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``) and :func:`process_group` joins the group: ``gloo`` on the CPU, ``nccl`` on CUDA (one GPU per
process, ``cuda:LOCAL_RANK``). The ranks exchange nothing but a few small messages (:meth:`Ranks.share`) and
barriers; each writes its own shards. A group the caller initialized already is used as it is (and left open).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
from typing import Any, Callable, Iterator, List, Optional, TypeVar, cast

import torch
import torch.distributed as dist

__all__ = ["BARRIER_TIMEOUT", "Ranks", "launched_ranks", "process_group"]

BARRIER_TIMEOUT = datetime.timedelta(hours=4)
"""How long a rank waits at a barrier (e.g. while rank 0 trains a zoo model that is not cached yet)."""

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Ranks:
    """This process's place in the run.

    Attributes:
        rank: its rank, 0 … ``world_size - 1``.
        world_size: the number of processes.
        local_rank: its rank on this machine (its GPU under ``--device cuda``).
        device: the device the group's messages go through (``nccl`` needs the process's GPU).
    """

    rank: int
    world_size: int
    local_rank: int
    device: Optional[torch.device] = None

    @property
    def distributed(self) -> bool:
        """Whether there are other processes."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait until every rank is here."""
        if self.distributed:
            if self.device is not None and self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index or 0])
            else:
                dist.barrier()

    def gather(self, value: T) -> List[T]:
        """Every rank's ``value`` (a picklable object), in rank order, on every rank."""
        if not self.distributed:
            return [value]
        values: List[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def share(self, make: Callable[[], T]) -> T:
        """Rank 0 computes ``make()`` and every rank gets the result (a picklable object). An exception raised on
        rank 0 is raised on every rank, with its message, so that no rank waits for the others forever."""
        result: Any = None
        failure: Optional[BaseException] = None
        if self.rank == 0:
            try:
                result = make()
            except Exception as err:  # sent to the other ranks, then raised here too
                failure = err
        if self.distributed:
            message = [result, None if failure is None else (type(failure), str(failure))]
            dist.broadcast_object_list(message, src=0, device=self.device if self.device is not None and
                                       self.device.type == "cuda" else None)
            result, error = message
            if failure is None and error is not None:
                raise _rebuilt(*error)
        if failure is not None:
            raise failure
        return cast(T, result)  # whatever `make` returned, sent through pickle


def _rebuilt(kind: Any, text: str) -> Exception:
    """Rank 0's exception, raised again on another rank: its class with its message where that class takes a message
    alone, else a ``RuntimeError`` with the message."""
    try:
        error = kind(text)
    except Exception:  # a class whose constructor wants more than a message
        return RuntimeError(text)
    return error if isinstance(error, Exception) else RuntimeError(text)


def launched_ranks() -> Ranks:
    """The ranks ``torchrun`` set in the environment (rank 0 of 1 without it); no group is joined."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return Ranks(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                 int(os.environ.get("LOCAL_RANK", 0)))


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[Ranks]:
    """Join the group ``torchrun`` launched (``gloo`` for the CPU, ``nccl`` for CUDA) for the block, and leave it after;
    a group already initialized is used and left open; a single process joins none.

    Raises:
        ValueError: when the processes were launched for CUDA but ``device`` is not this process's GPU.
    """
    launched = launched_ranks()
    if dist.is_available() and dist.is_initialized():
        yield dataclasses.replace(launched, device=device)
        return
    if launched.world_size == 1:
        yield launched
        return
    if device.type == "cuda" and device.index not in (None, launched.local_rank):
        raise ValueError(f"Expected this process's GPU cuda:{launched.local_rank} (LOCAL_RANK), but got {device}")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, timeout=BARRIER_TIMEOUT)
    try:
        yield dataclasses.replace(launched, device=device)
    finally:
        dist.destroy_process_group()
