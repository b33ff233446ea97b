"""Where jobs run: in this process, or in N local worker processes (spawn context).

The stages hand a picklable function and a list of picklable jobs to an :class:`Executor` and
receive the results as they finish; they never touch processes themselves. Two executors:

* :class:`InProcessExecutor` -- one job after the other in this process;
* :class:`DaskExecutor` -- futures on a ``dask.distributed`` cluster (a ``LocalCluster``, a
  SLURM/PBS cluster through ``dask-jobqueue``, or a running scheduler): jobs stream back as they
  finish, a job whose worker dies is rescheduled by Dask, long-lived workers pay the start-up
  (imports, compiled kernels) once;
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
    "DaskExecutor",
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


SCHEDULERS = ("local", "dask")
#: Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` in its workers; that fixes glibc's mmap
#: threshold at 128 KiB, so every large array of the ear model is mmapped and unmapped again:
#: a scene job took 3.0x as long (11.9 s instead of 4.0 s, `benchmarks/bench_scale.py` tree).
#: The workers started here run without it (this value unsets it; see docs/cluster.md for
#: workers started by hand).
NO_MALLOC_TRIM = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
NO_MALLOC_TRIM_ENV = "DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__MALLOC_TRIM_THRESHOLD_=None"
CLUSTERS = ("local", "slurm", "pbs")


def _dask_worker_setup(warm: Callable[[], None] | None = None) -> None:
    """Run once on each Dask worker: one torch thread, then the stage's ``warm()`` (imports,
    compiled kernels, filter designs) so that jobs do not pay for them."""
    import torch

    torch.set_num_threads(1)
    if warm is not None:
        warm()


def jobqueue_cluster(options):
    """A ``dask-jobqueue`` SLURM or PBS cluster: one worker process per batch job, running
    ``cores`` jobs at a time (one torch thread each).

    Parameters
    ----------
    options : mapping
        ``cluster`` (``slurm`` | ``pbs``), ``queue``, ``cores``, ``memory``, ``walltime``,
        ``job_extra_directives`` (the ``dask.*`` config).

    Returns
    -------
    dask_jobqueue.JobQueueCluster
        Not yet scaled (no job submitted); ``job_script()`` shows what each job runs.
    """
    import dask_jobqueue

    kind = str(options.get("cluster"))
    make = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind]
    return make(
        queue=options.get("queue") or None,
        cores=int(options.get("cores", 1)),
        processes=1,
        memory=str(options.get("memory", "4GB")),
        walltime=str(options.get("walltime", "01:00:00")),
        job_extra_directives=list(options.get("job_extra_directives") or []),
        job_script_prologue=[f"export {NO_MALLOC_TRIM_ENV}"],
    )


class DaskExecutor:
    """Run the jobs as futures on a ``dask.distributed`` cluster.

    Parameters
    ----------
    options : mapping
        The ``dask.*`` config (:class:`clarity_se.config.DaskConfig`): ``address``, or
        ``cluster`` (``local`` | ``slurm`` | ``pbs``) with ``n_workers``, ``queue``, ``cores``,
        ``memory``, ``walltime``, ``job_extra_directives``; ``retries``.
    warm : callable, optional
        Run once on every worker before its first job (must be importable by the workers).

    Notes
    -----
    Results stream back in completion order; the caller (the stage) writes them to its
    journal, so one process writes the experiment folder whatever the number of workers. A job
    whose function raises is resubmitted ``retries`` times, then the exception propagates; a
    job whose worker process dies is rescheduled by the Dask scheduler on another worker (up to
    ``distributed.scheduler.allowed-failures`` times, then ``KilledWorker``). A cluster this
    executor started is closed when the iteration ends.

    Raises
    ------
    ValueError
        Unknown ``cluster`` or bad ``n_workers``.
    """

    def __init__(self, options, warm: Callable[[], None] | None = None) -> None:
        self.options = dict(options)
        cluster = str(self.options.get("cluster", "local"))
        if not self.options.get("address") and cluster not in CLUSTERS:
            raise ValueError(f"dask.cluster must be one of {CLUSTERS}, got {cluster!r}")
        self.workers = int(self.options.get("n_workers", 1))
        if self.workers < 1:
            raise ValueError(f"dask.n_workers must be >= 1, got {self.workers}")
        self.warm = warm

    def _start(self):
        """``(client, cluster or None)``: connect, or start the configured cluster."""
        import dask
        from dask.distributed import Client, LocalCluster

        opts = self.options
        if opts.get("address"):
            return Client(str(opts["address"])), None
        kind = str(opts.get("cluster", "local"))
        if kind == "local":
            with dask.config.set(NO_MALLOC_TRIM):
                cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                       processes=True, dashboard_address=":0")  # fmt: skip
        else:
            cluster = jobqueue_cluster(opts)
            cluster.scale(jobs=self.workers)
        return Client(cluster), cluster

    def map_unordered(self, fn: Callable[[Any], Any], jobs: Iterable[Any]) -> Iterator[tuple]:
        """Yield ``(job, fn(job))`` in completion order."""
        from dask.distributed import as_completed as dask_as_completed

        jobs = list(jobs)
        client, cluster = self._start()
        try:
            logger.info("dask: %s, dashboard %s", client.scheduler.address,
                        client.dashboard_link)  # fmt: skip
            client.run(_dask_worker_setup, self.warm)
            futures = {}
            for job in jobs:
                future = client.submit(fn, job, pure=False, retries=int(self.options.get(
                    "retries", 0)))  # fmt: skip
                futures[future.key] = (future, job)
            for future in dask_as_completed([f for f, _ in futures.values()]):
                yield futures[future.key][1], future.result()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


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


def make_executor(
    workers: int,
    n_jobs: int | None = None,
    *,
    scheduler: str = "local",
    dask_options=None,
    warm: Callable[[], None] | None = None,
) -> Executor:
    """The executor of a stage.

    ``scheduler="dask"``: a :class:`DaskExecutor` on ``dask_options``. Otherwise an
    :class:`InProcessExecutor` for one worker (or at most one job), else a
    :class:`LocalProcessExecutor` of ``min(workers, n_jobs)`` processes.

    Raises
    ------
    ValueError
        Unknown ``scheduler`` or bad Dask options.
    """
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
    if scheduler == "dask":
        return DaskExecutor(dask_options or {}, warm=warm)
    if n_jobs is not None:
        workers = min(workers, n_jobs)
    return InProcessExecutor() if workers <= 1 else LocalProcessExecutor(workers)
