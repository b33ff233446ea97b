"""Where jobs run: in this process, or in N local worker processes (spawn context).

The stages hand a picklable function and a list of picklable jobs to an :class:`Executor` and
receive the results as they finish; they never touch processes themselves. Two executors:

* :class:`InProcessExecutor` -- one job after the other in this process;
* :class:`LocalProcessExecutor` -- ``concurrent.futures.ProcessPoolExecutor`` with the
  ``spawn`` start method (``fork`` aborts once numba's OpenMP pool has run in the parent),
  one thread per worker (BLAS/OpenMP pools of 2+ threads in each of N workers oversubscribe
  the cores), and a watch thread in each worker that ends it when its parent is gone (a
  ``kill -9`` of the command would otherwise leave workers waiting for work, holding memory).

:func:`make_executor` picks one from a worker count (:func:`resolve_workers`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any, Protocol

logger = logging.getLogger(__name__)

__all__ = [
    "Executor",
    "InProcessExecutor",
    "LocalProcessExecutor",
    "make_executor",
    "resolve_workers",
]

#: Thread-pool variables a spawned worker reads at start-up (one thread per worker).
SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class Executor(Protocol):
    """Runs ``fn(job)`` for every job and yields ``(job, result)`` as each finishes.

    Attributes
    ----------
    workers : int
        How many jobs run at once.
    """

    workers: int

    def map_unordered(self, fn: Callable[[Any], Any], jobs: Iterable[Any]) -> Iterator[tuple]:
        """Yield ``(job, fn(job))`` in completion order; an exception in ``fn`` propagates."""


class InProcessExecutor:
    """Run the jobs one after the other in this process."""

    workers = 1

    def map_unordered(self, fn: Callable[[Any], Any], jobs: Iterable[Any]) -> Iterator[tuple]:
        """Yield ``(job, fn(job))`` in job order."""
        for job in jobs:
            yield job, fn(job)


def _worker_init(parent: int) -> None:
    """Start-up of a spawned worker: one torch thread; exit when ``parent`` is gone."""
    import torch

    torch.set_num_threads(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class LocalProcessExecutor:
    """Run the jobs in ``workers`` spawned processes sharing one queue.

    Parameters
    ----------
    workers : int
        Number of worker processes (>= 1).

    Notes
    -----
    The main process only submits and collects. Results stream back in completion order;
    when the caller stops iterating (all results in, or an exception), jobs not yet started
    are cancelled and the pool is shut down.
    """

    def __init__(self, workers: int) -> None:
        if int(workers) < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = int(workers)

    def map_unordered(self, fn: Callable[[Any], Any], jobs: Iterable[Any]) -> Iterator[tuple]:
        """Yield ``(job, fn(job))`` in completion order."""
        jobs = list(jobs)
        saved = {k: os.environ.get(k) for k in SINGLE_THREAD_ENV}
        for key in SINGLE_THREAD_ENV:
            os.environ.setdefault(key, "1")
        try:  # the spawned children read these at start-up, i.e. at the first submit
            pool = ProcessPoolExecutor(
                self.workers,
                mp_context=get_context("spawn"),
                initializer=_worker_init,
                initargs=(os.getpid(),),
            )
            futures = {pool.submit(fn, job): job for job in jobs}
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def resolve_workers(workers: int, device: str = "cpu", key: str = "evaluate.workers") -> int:
    """Number of worker processes for a ``*.workers`` setting (``0``: automatic).

    Parameters
    ----------
    workers : int
        ``>= 1`` is taken as given; ``0`` means one per usable CPU core
        (``os.sched_getaffinity``), at most one per 2 GiB of physical memory (a worker scoring
        batches of four ~10 s pairs peaks near 1.6 GB), and 1 when ``device`` is CUDA (one
        process feeds the GPU).
    device : str
        ``cpu`` or ``cuda[:N]``.
    key : str
        Config key named in the error message.

    Returns
    -------
    int
        At least 1.

    Raises
    ------
    ValueError
        If ``workers`` is negative.
    """
    workers = int(workers)
    if workers < 0:
        raise ValueError(f"{key} must be >= 0 (0: automatic), got {workers}")
    if workers > 0:
        return workers
    if str(device).startswith("cuda"):
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        by_memory = max(1, memory // (2 << 30))
    except (ValueError, OSError, AttributeError):
        by_memory = cores
    return max(1, min(cores, by_memory))


def make_executor(workers: int, n_jobs: int | None = None) -> Executor:
    """An :class:`InProcessExecutor` for one worker (or at most one job), else a
    :class:`LocalProcessExecutor` of ``min(workers, n_jobs)`` processes."""
    if n_jobs is not None:
        workers = min(workers, n_jobs)
    return InProcessExecutor() if workers <= 1 else LocalProcessExecutor(workers)
