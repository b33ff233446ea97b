"""``clarity-se evaluate``: the official ICASSP 2023 ``evaluate.py``, batched and resumable.

Per (scene, listener) pair, exactly as pyclarity's ``recipes/icassp_2023/baseline/evaluate.py``:

1. read ``<exp>/enhanced_signals/<scene>_<listener>_enhanced.wav`` (float, unscaled);
2. amplify each ear with NAL-R and the compressor for the listener's audiogram, soft-clip with
   ``tanh`` (``soft_clip``) and write ``<exp>/amplified_signals/<scene>_<listener>_HA-output.wav``;
3. build the reference: ``<scene>_target_anechoic_CH1.wav`` rescaled per ear to the RMS of
   ``<scene>_target_CH1.wav`` (both int16 / 32768);
4. score HASPI v2 and HASQI v2 better ear at ``level = evaluate.level_db_spl`` (100 dB SPL for
   RMS 1), ``combined`` = their mean.

Random draws: ``evaluate.rng=compat`` replays the official sequence (legacy numpy seed per pair
from the md5 of the scene name; HASPI left, right, then HASQI left, right), so each pair's scores
equal the official ones; ``fast`` draws the same distributions from a torch generator per pair
and computes in float32 (within 5e-4 of float64; tests/test_fast_mode.py).

Outputs: ``<exp>/scores.csv`` with the official header ``scene,listener,combined,haspi,hasqi``
(official pair order), ``<exp>/scores_detail.csv`` with per-ear and diagnostic columns, and the
journal ``<exp>/scores.jsonl`` (one record per finished pair, fsynced) from which both CSVs are
rewritten atomically (at most every ``CSV_INTERVAL_S`` seconds while scoring, and at the end).
A rerun skips pairs already in the journal; failures go to ``errors.csv``.
With ``evaluate.shard=k/n`` every file name gets a ``.shard-k-of-n`` suffix.

Batching and workers: the pairs of one scene (same length) are scored together, at most
``evaluate.batch_size`` at a time (one pair per job when that balances the processes better:
:func:`plan_jobs`); ``evaluate.workers = N > 1`` scores jobs in N
``spawn``-ed worker processes (``fork`` aborts once numba's OpenMP pool has run) taking them
from one queue, while this process collects; ``evaluate.workers = 0`` (the
default) takes one per usable CPU core, at most one per 2 GiB of memory, and 1 on CUDA
(:func:`resolve_workers`). Scores do not depend on the
number of workers, and with ``compat`` they do not depend on the batch composition either
(beyond float rounding, ~1e-15): each pair has its own random stream.

Failures (listed in ``errors.csv`` with the reason, naming the file; the other pairs are still
scored; ``clarity-se evaluate`` then exits 1): a missing, unreadable or truncated enhanced WAV
(a length that differs from the reference), NaN/Inf in the hearing-aid output, a listener
absent from ``listeners.json``, a missing or silent reference, and -- a deliberate deviation --
a hearing-aid output that is all zeros in an ear (pyclarity writes a NaN score there; we refuse
to average NaN into the report). A signal that is merely very quiet is scored like pyclarity
(low scores, HASQI often 0). If the metrics raise for a batch, its pairs are retried one by
one so that only the culprit fails.

References
----------
pyclarity 0.9.0 ``recipes/icassp_2023/baseline/evaluate.py::run_calculate_si``;
Kates & Arehart (2014) HASPI v2; Kates & Arehart (2014) HASQI v2.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from clarity_se.config import add_config_arguments, load_config

logger = logging.getLogger(__name__)

#: Seconds between rewrites of the CSVs from the journal while scoring (and once at the end).
CSV_INTERVAL_S = 10.0

OFFICIAL_HEADER = ("scene", "listener", "combined", "haspi", "hasqi")
DETAIL_HEADER = OFFICIAL_HEADER + (
    "haspi_left",
    "haspi_right",
    "hasqi_left",
    "hasqi_right",
    "clipped_left",
    "clipped_right",
    "rng",
    "num_samples",
    "duration_s",
)


@dataclass
class PairJob:
    """One scene's pairs to score together (equal lengths: the scene's listeners)."""

    scene: str
    listeners: list[str]


def make_reference(anechoic: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The official reference: anechoic target rescaled per ear to the RMS of ``target_CH1``.

    Parameters
    ----------
    anechoic, target : np.ndarray [shape=(time, 2)]
        ``<scene>_target_anechoic_CH1.wav`` and ``<scene>_target_CH1.wav``, int16 / 32768.

    Returns
    -------
    np.ndarray [shape=(time, 2)]
        ``anechoic * rms(target) / rms(anechoic)`` per channel (pyclarity ``evaluate.py``).

    Raises
    ------
    ValueError
        If the anechoic target is silent in an ear (the official code would divide by zero).
    """
    rms_target = np.mean(target**2, axis=0) ** 0.5
    rms_anechoic = np.mean(anechoic**2, axis=0) ** 0.5
    if np.any(rms_anechoic == 0):
        raise ValueError("target_anechoic_CH1 is silent in an ear: cannot rescale the reference")
    return anechoic * rms_target / rms_anechoic


def score_scene(job: PairJob, cfg_container: dict) -> list[dict]:
    """Amplify and score every listener of one scene (runs in a worker process).

    Parameters
    ----------
    job : PairJob
        The scene and its listeners to score.
    cfg_container : dict
        The resolved recipe config (plain dict, picklable).

    Returns
    -------
    list of dict
        One record per listener: scores, or ``{"error": ...}`` for a pair that failed.
    """
    from omegaconf import OmegaConf

    from clarity_se.data.audio_io import read_audio
    from clarity_se.data.audiogram import load_listeners
    from clarity_se.stages.amplify import amplify_pair

    cfg = OmegaConf.create(cfg_container)
    sample_rate = int(cfg.nalr.sample_rate)
    exp = Path(cfg.path.exp_folder)
    scenes = Path(cfg.path.scenes_folder)
    records: list[dict] = []
    try:
        listeners = _listeners_cache(cfg.path.listeners_file, load_listeners)
        anechoic, _ = read_audio(
            scenes / f"{job.scene}_target_anechoic_CH1.wav",
            expected_sample_rate=sample_rate,
            expected_channels=2,
        )
        target, _ = read_audio(
            scenes / f"{job.scene}_target_CH1.wav",
            expected_sample_rate=sample_rate,
            expected_channels=2,
        )
        reference = make_reference(anechoic, target)
    except Exception as exc:  # noqa: BLE001 - reported per pair, run continues
        return [
            {"scene": job.scene, "listener": lis, "error": f"{type(exc).__name__}: {exc}"}
            for lis in job.listeners
        ]

    ok_listeners, amplified_list, clipped = [], [], []
    for listener_id in job.listeners:
        try:
            if listener_id not in listeners:
                raise ValueError(f"listener {listener_id!r} not in {cfg.path.listeners_file}")
            enhanced = exp / "enhanced_signals" / f"{job.scene}_{listener_id}_enhanced.wav"
            try:
                amplified, amp_record = amplify_pair(
                    cfg, job.scene, listeners[listener_id], exp_folder=exp
                )
            except ValueError as exc:  # name the file in every reason (amplify's may not)
                if str(enhanced) in str(exc):
                    raise
                raise ValueError(f"{enhanced}: {exc}") from exc
            if amplified.shape[0] - int(cfg.nalr.nfir) != reference.shape[0]:
                raise ValueError(
                    f"{enhanced}: length {amplified.shape[0] - int(cfg.nalr.nfir)} samples, "
                    f"the reference {job.scene}_target_CH1.wav has {reference.shape[0]}"
                )
            if not np.all(np.isfinite(amplified)):
                raise ValueError(
                    f"{enhanced}: the hearing-aid output contains NaN or Inf "
                    "(NaN/Inf in the enhanced signal)"
                )
            silent = [ear for ear, c in (("left", 0), ("right", 1)) if not np.any(amplified[:, c])]
            if silent:
                raise ValueError(
                    f"{enhanced}: the hearing-aid output is silent (all zeros) in the "
                    f"{' and '.join(silent)} ear; HASPI/HASQI are undefined (pyclarity "
                    "writes NaN)"
                )
            ok_listeners.append(listener_id)
            amplified_list.append(amplified)
            clipped.append((amp_record["clipped_left"], amp_record["clipped_right"]))
        except Exception as exc:  # noqa: BLE001
            records.append(
                {
                    "scene": job.scene,
                    "listener": listener_id,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )
    if not ok_listeners:
        return records

    try:
        scores = _metrics(
            cfg, job.scene, reference, amplified_list, [listeners[lis] for lis in ok_listeners]
        )
    except Exception as batch_exc:  # noqa: BLE001 - retried one pair at a time below
        if len(ok_listeners) == 1:
            return records + [
                {
                    "scene": job.scene,
                    "listener": ok_listeners[0],
                    "error": f"{type(batch_exc).__name__}: {batch_exc}",
                }
            ]
        logger.warning(
            "evaluate: scene %s: batch of %d failed (%s); scoring its pairs one at a time",
            job.scene,
            len(ok_listeners),
            batch_exc,
        )
        kept, kept_clipped, rows = [], [], []
        for listener_id, amplified, clip in zip(ok_listeners, amplified_list, clipped, strict=True):
            try:
                rows.append(
                    _metrics(cfg, job.scene, reference, [amplified], [listeners[listener_id]])[0]
                )
            except Exception as exc:  # noqa: BLE001
                records.append(
                    {
                        "scene": job.scene,
                        "listener": listener_id,
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                )
                continue
            kept.append(listener_id)
            kept_clipped.append(clip)
        ok_listeners, clipped, scores = kept, kept_clipped, rows
    for i, listener_id in enumerate(ok_listeners):
        h_l, h_r, q_l, q_r = scores[i]
        if not all(np.isfinite(v) for v in scores[i]):
            records.append(
                {
                    "scene": job.scene,
                    "listener": listener_id,
                    "error": f"ValueError: non-finite score (HASPI {h_l}, {h_r}; "
                    f"HASQI {q_l}, {q_r})",
                }
            )
            continue
        h, q = max(h_l, h_r), max(q_l, q_r)
        records.append(
            {
                "id": f"{job.scene}_{listener_id}",
                "schema": "clarity_se.score/1",
                "scene": job.scene,
                "listener": listener_id,
                "combined": 0.5 * (q + h),
                "haspi": h,
                "hasqi": q,
                "haspi_left": h_l,
                "haspi_right": h_r,
                "hasqi_left": q_l,
                "hasqi_right": q_r,
                "clipped_left": int(clipped[i][0]),
                "clipped_right": int(clipped[i][1]),
                "rng": str(cfg.evaluate.rng),
                "sample_rate": sample_rate,
                "num_samples": int(reference.shape[0]),
                "duration_s": reference.shape[0] / sample_rate,
            }
        )
    return records


def _metrics(
    cfg, scene: str, reference: np.ndarray, amplified: list[np.ndarray], listeners: list
) -> list[tuple[float, float, float, float]]:
    """HASPI v2 and HASQI v2 of each ear for pairs of one scene, scored as one batch.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        Recipe config (``evaluate.rng``, ``evaluate.device``, ``evaluate.level_db_spl``,
        ``nalr.sample_rate``).
    scene : str
        Scene id: every pair's random stream is seeded from it (official ``set_scene_seed``).
    reference : np.ndarray [shape=(time, 2)]
        The scene's reference (:func:`make_reference`).
    amplified : list of np.ndarray [shape=(time + nfir, 2)]
        Hearing-aid outputs, one per pair.
    listeners : list of clarity_se.data.audiogram.Listener
        One per pair.

    Returns
    -------
    list of (haspi_left, haspi_right, hasqi_left, hasqi_right)
        One tuple per pair.

    Raises
    ------
    ValueError
        From the metrics (silent reference, bad audiogram, ...); the caller attributes it.
    """
    import torch

    from clarity_se.random import PairRandom, scene_seed
    from clarity_se.ear_model.shared import ProcessedPathCache
    from clarity_se.metrics.haspi import haspi_v2_better_ear
    from clarity_se.metrics.hasqi import hasqi_v2_better_ear

    device = torch.device(cfg.evaluate.device)
    n = len(amplified)
    seed = scene_seed(scene)
    if cfg.evaluate.rng == "compat":
        rng = PairRandom.compat([seed] * n)
    elif cfg.evaluate.rng == "fast":
        rng = PairRandom.fast([seed] * n, device=device)
    else:
        raise ValueError(f"evaluate.rng must be 'compat' or 'fast', got {cfg.evaluate.rng!r}")
    # compat: float64 throughout (per-pair equality); fast: float32 (accuracy:
    # tests/test_fast_mode.py)
    dtype = torch.float64 if cfg.evaluate.rng == "compat" else torch.float32
    processed = torch.as_tensor(np.stack(amplified), dtype=dtype, device=device)  # [n, T+nfir, 2]
    ref = torch.as_tensor(
        np.broadcast_to(reference, (n,) + reference.shape).copy(), dtype=dtype, device=device
    )
    common = dict(
        reference_left=ref[..., 0],
        reference_right=ref[..., 1],
        processed_left=processed[..., 0],
        processed_right=processed[..., 1],
        sample_rate=int(cfg.nalr.sample_rate),
        listener=list(listeners),
        level_db_spl=float(cfg.evaluate.level_db_spl),
        rng=rng,
    )
    # HASQI reuses the processed half of HASPI's ear model (same signals, audiograms, level:
    # bit-identical, about a tenth of the work; clarity_se/ear_model/shared.py)
    shared = ProcessedPathCache()
    haspi = haspi_v2_better_ear(**common, processed_cache=shared)
    hasqi = hasqi_v2_better_ear(**common, processed_cache=shared)
    return [
        (
            float(haspi.left.score[i]),
            float(haspi.right.score[i]),
            float(hasqi.left.score[i]),
            float(hasqi.right.score[i]),
        )
        for i in range(n)
    ]


_LISTENERS: dict[tuple, dict] = {}


def _listeners_cache(path, loader) -> dict:
    """``loader(path)`` once per process and file version (path, size, mtime)."""
    try:
        stat = os.stat(path)
        key = (str(path), stat.st_size, stat.st_mtime_ns)
    except OSError:
        return loader(path)  # raises the loader's own error naming the file
    if key not in _LISTENERS:
        _LISTENERS[key] = loader(path)
    return _LISTENERS[key]


def resolve_workers(workers: int, device: str) -> int:
    """Number of worker processes for ``evaluate.workers`` (``0``: automatic).

    Parameters
    ----------
    workers : int
        ``evaluate.workers``: ``>= 1`` is taken as given; ``0`` means one per usable CPU core
        (``os.sched_getaffinity``), at most one per 2 GiB of physical memory (``make demo``,
        batches of four ~10 s pairs: 1.6 GB peak resident per worker; 2.1 GB in the main
        process of ``clarity-se run``, which also holds the enhancer), and 1 when ``device``
        is CUDA (one process feeds the GPU).
    device : str
        ``evaluate.device``.

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
        raise ValueError(f"evaluate.workers must be >= 0 (0: automatic), got {workers}")
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


_SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _worker_init(parent: int) -> None:
    """Start-up of a spawned worker: one torch thread, and exit when ``parent`` is gone.

    A worker whose ``clarity-se evaluate`` was killed (``kill -9``, out of memory) would wait
    for work forever, holding its memory; a daemon thread checks every second that its parent
    process is still ``parent`` and ends the worker otherwise.
    """
    import threading

    import torch

    torch.set_num_threads(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def scene_jobs(pairs: list[tuple[str, str]], batch_size: int) -> list[PairJob]:
    """Pairs grouped by scene (equal lengths) in first-seen order, at most ``batch_size`` each."""
    from clarity_se.stages.common import group_by_scene

    jobs = []
    for scene, listeners in group_by_scene(pairs).items():
        for start in range(0, len(listeners), max(1, batch_size)):
            jobs.append(PairJob(scene, listeners[start : start + max(1, batch_size)]))
    return jobs


#: Share of a pair's scoring that the other pairs of its scene job reuse (the threshold noise
#: and HASPI's reference path, computed once per scene; measured on 5 s pairs, 1 thread: compat
#: 3.6 s per pair for 3 pairs together, 4.05 s one at a time (17 %); fast 1.85 s vs 2.0 s
#: (11 %)).  Used only to choose between scene and one-pair jobs.
SCENE_SHARED_FRACTION = 0.15


def _makespan(costs: list[float], workers: int) -> float:
    """Finish time of ``costs`` taken in order from one queue by ``workers`` processes."""
    free = [0.0] * workers
    for cost in costs:
        k = free.index(min(free))
        free[k] += cost
    return max(free, default=0.0)


def plan_jobs(pairs: list[tuple[str, str]], batch_size: int, workers: int) -> list[PairJob]:
    """Scene jobs (:func:`scene_jobs`), or one-pair jobs when those finish sooner on ``workers``.

    A job of ``k`` pairs of one scene costs ``k - (k - 1) * SCENE_SHARED_FRACTION`` pair
    units; with few jobs per process, whole scenes can leave a process idle at the end while
    single pairs balance better (18 pairs of 6 scenes on 2 processes: scenes; 15 pairs of 5
    scenes: single pairs).  Both plans are simulated on one FIFO queue (:func:`_makespan`,
    equal pair durations assumed) and the sooner one is taken.  Scores do not depend on the
    batching.

    Parameters
    ----------
    pairs : list of (str, str)
        ``(scene, listener)`` pairs to score, in the official order.
    batch_size : int
        ``evaluate.batch_size``: most pairs per scene job.
    workers : int
        Worker processes that will take the jobs (:func:`resolve_workers`).

    Returns
    -------
    list of PairJob
        Every pair exactly once, scenes in first-seen order.
    """
    jobs = scene_jobs(pairs, batch_size)
    if workers <= 1 or len(jobs) <= 1:
        return jobs

    def cost(job: PairJob) -> float:
        return len(job.listeners) - (len(job.listeners) - 1) * SCENE_SHARED_FRACTION

    if _makespan([1.0] * len(pairs), workers) < _makespan([cost(j) for j in jobs], workers):
        return scene_jobs(pairs, 1)
    return jobs


def _format(value) -> str:
    return repr(float(value)) if isinstance(value, (float, np.floating)) else str(value)


def write_score_csvs(
    exp: Path, suffix: str, pairs: list[tuple[str, str]], done: dict[str, dict]
) -> int:
    """Rewrite ``scores{suffix}.csv`` and ``scores_detail{suffix}.csv`` atomically, official order.

    Returns
    -------
    int
        Number of rows written.
    """
    from clarity_se.data.audio_io import atomic_write_text

    official, detail = io.StringIO(), io.StringIO()
    w_off, w_det = csv.writer(official), csv.writer(detail)
    w_off.writerow(OFFICIAL_HEADER)
    w_det.writerow(DETAIL_HEADER)
    rows = 0
    for scene, listener in pairs:
        record = done.get(f"{scene}_{listener}")
        if record is None:
            continue
        w_off.writerow([_format(record[k]) for k in OFFICIAL_HEADER])
        w_det.writerow([_format(record[k]) for k in DETAIL_HEADER])
        rows += 1
    atomic_write_text(exp / f"scores{suffix}.csv", official.getvalue())
    atomic_write_text(exp / f"scores_detail{suffix}.csv", detail.getvalue())
    return rows


def run_evaluate(cfg) -> tuple[int, int]:
    """Evaluate every pair of the config (resuming), return ``(n_scored, n_failed)``.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        Recipe config: ``path.*`` (enhanced signals under ``path.exp_folder``), ``nalr.*``,
        ``compressor.*``, ``soft_clip``, ``evaluate.*``.

    Returns
    -------
    n_scored : int
        Pairs of this run's pair list (after ``small_test`` and ``shard``) now in the journal,
        including those scored by earlier runs.
    n_failed : int
        Pairs that failed in this run (rows added to ``errors.csv``).

    Raises
    ------
    ValueError
        On a bad config (missing metadata, unknown ``evaluate.rng``/``device``).

    References
    ----------
    pyclarity 0.9.0 ``recipes/icassp_2023/baseline/evaluate.py::run_calculate_si``.
    """
    from omegaconf import OmegaConf
    from tqdm import tqdm

    from clarity_se.data.manifest import ManifestWriter
    from clarity_se.stages.common import ErrorLog, pairs_from_config, shard_suffix

    if cfg.evaluate.rng not in ("compat", "fast"):
        raise ValueError(f"evaluate.rng must be 'compat' or 'fast', got {cfg.evaluate.rng!r}")
    device = str(cfg.evaluate.device)
    if not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"evaluate.device must be 'cpu' or 'cuda[:N]', got {device!r}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"evaluate.device={device} but CUDA is not available")
    exp = Path(cfg.path.exp_folder)
    exp.mkdir(parents=True, exist_ok=True)
    suffix = shard_suffix(cfg.evaluate.shard)
    pairs = pairs_from_config(cfg)
    journal = ManifestWriter(exp / f"scores{suffix}.jsonl")
    done = {r["id"]: r for r in journal.records()}
    todo = [(s, lis) for s, lis in pairs if f"{s}_{lis}" not in done]
    errors = ErrorLog(exp, "evaluate", suffix)
    logger.info(
        "evaluate: %d pairs, %d already scored, %d to do",
        len(pairs),
        len(pairs) - len(todo),
        len(todo),
    )
    container = OmegaConf.to_container(cfg, resolve=True)
    progress = tqdm(total=len(todo), desc="evaluate", unit="pair")

    def collect(records: list[dict]) -> None:
        for record in records:
            if "error" in record:
                errors.add(record["scene"], record["listener"], record["error"])
            else:
                journal.write(record)
                done[record["id"]] = record
            progress.update(1)

    last_write = [0.0]

    def write_csvs() -> None:
        # the journal is the resumable record; the CSVs are rewritten from it at most every
        # CSV_INTERVAL_S seconds (a rewrite per job is quadratic in the pairs) and at the end
        if time.monotonic() - last_write[0] >= CSV_INTERVAL_S:
            write_score_csvs(exp, suffix, pairs, done)
            last_write[0] = time.monotonic()

    workers = resolve_workers(cfg.evaluate.workers, device)
    jobs = plan_jobs(todo, int(cfg.evaluate.batch_size), workers)
    try:
        if workers == 1 or len(jobs) <= 1:
            for job in jobs:
                collect(score_scene(job, container))
                write_csvs()
        else:
            # spawn, not fork: the metrics use numba/OpenMP thread pools (abort in a forked child).
            # One thread per worker: the spawned children read these at start-up (BLAS and
            # OpenMP pools of 2+ threads in each of N workers oversubscribe the cores).
            saved = {k: os.environ.get(k) for k in _SINGLE_THREAD_ENV}
            for key in _SINGLE_THREAD_ENV:
                os.environ.setdefault(key, "1")
            try:
                # N spawned workers take jobs from one queue; this process only collects (as
                # an N-th worker it would idle at the end: the pool pre-queues jobs it cannot
                # cancel).
                pool = ProcessPoolExecutor(
                    workers,
                    mp_context=get_context("spawn"),
                    initializer=_worker_init,
                    initargs=(os.getpid(),),
                )
                futures = [pool.submit(score_scene, job, container) for job in jobs]
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
            with pool:
                for future in as_completed(futures):
                    collect(future.result())
                    write_csvs()
                # every result is in: end the workers rather than wait while each tears down
                # torch and numba (18 fast pairs on 2 cores: 1.0 s of 21.5 s; nothing is lost)
                for process in list((getattr(pool, "_processes", None) or {}).values()):
                    process.terminate()
    finally:
        progress.close()
        journal.close()
        write_score_csvs(exp, suffix, pairs, done)
    n_scored = sum(1 for s, lis in pairs if f"{s}_{lis}" in done)
    return n_scored, errors.count


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clarity-se evaluate``: the recipe config and dotlist overrides."""
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run ``clarity-se evaluate``; exit 1 if any pair failed (listed in ``errors.csv``)."""
    try:
        cfg = load_config(args.config, args.overrides)
        n_scored, n_failed = run_evaluate(cfg)
    except ValueError as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"evaluate: {n_scored} pairs scored, {n_failed} failed"
        + (f" (see {Path(cfg.path.exp_folder) / 'errors.csv'})" if n_failed else "")
    )
    return 1 if n_failed else 0
