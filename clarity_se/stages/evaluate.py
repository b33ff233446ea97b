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
and computes in float32 (within 5e-4 of float64; tests/metrics/test_fast_mode.py).

Outputs: ``<exp>/scores.csv`` with the official header ``scene,listener,combined,haspi,hasqi``
(official pair order), ``<exp>/scores_detail.csv`` with per-ear and diagnostic columns, and the
journal ``<exp>/scores.jsonl`` (one record per finished pair, fsynced) from which both CSVs are
rewritten atomically (at most every ``CSV_INTERVAL_S`` seconds while scoring, and at the end).
A rerun skips pairs already in the journal; failures go to ``errors.csv``.
With ``evaluate.shard=k/n`` every file name gets a ``.shard-k-of-n`` suffix.

Batching and workers: the pairs of one scene (same length) are scored together as one job,
at most ``evaluate.batch_size`` at a time (they share the threshold noise and HASPI's
reference path: :mod:`clarity_se.metrics.scene`); jobs run on the executor of
:mod:`clarity_se.execution` (``evaluate.workers = N > 1``: N spawned worker processes taking
jobs from one queue while this process collects; ``0``, the default: one per usable CPU core,
at most one per 2 GiB of memory, and 1 on CUDA). Scores do not depend on the number of
workers, and with ``compat`` they do not depend on the batch composition either (beyond float
rounding, ~1e-15): each pair has its own random stream.

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
import time
from dataclasses import dataclass

import numpy as np

from clarity_se.config import add_config_arguments, load_config
from clarity_se.data.experiment import Experiment

logger = logging.getLogger(__name__)

#: Seconds between rewrites of the CSVs from the journal while scoring (and once at the end).
CSV_INTERVAL_S = 10.0
SCHEMA = "clarity_se.score/1"
JOURNAL = "scores"

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
class SceneJob:
    """One scene's pairs to score together, with everything a worker needs (picklable).

    Attributes
    ----------
    scene : str
    listeners : list of str
        Listener ids of the scene to score in this job.
    config : dict
        The resolved recipe config (plain container).
    """

    scene: str
    listeners: list[str]
    config: dict


def _failure(scene: str, listener: str, exc: BaseException | str) -> dict:
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return {"scene": scene, "listener": listener, "error": text}


def warm_worker() -> None:
    """Once per long-lived worker (``evaluate.scheduler=dask``): import the scoring code and
    load its compiled kernels from numba's cache, so that the first job does not pay for it."""
    import clarity_se.metrics.scene  # noqa: F401
    import clarity_se.stages.amplify  # noqa: F401


def score_scene_job(job: SceneJob) -> list[dict]:
    """Amplify and score the listed listeners of one scene (runs in a worker process).

    Returns
    -------
    list of dict
        One record per listener: the journal record, or ``{"scene", "listener", "error"}``
        for a pair that failed (the reason names the file).
    """
    import torch
    from omegaconf import OmegaConf

    from clarity_se.data.cec2 import CEC2Dataset
    from clarity_se.metrics.scene import make_reference
    from clarity_se.stages.amplify import amplify_pair

    cfg = OmegaConf.create(job.config)
    sample_rate = int(cfg.nalr.sample_rate)
    exp = Experiment(cfg.path.exp_folder, cfg.evaluate.shard)
    dataset = CEC2Dataset.from_recipe(cfg.path)
    try:
        anechoic = dataset.load_target_anechoic(job.scene, dtype=torch.float64).numpy().T
        target = dataset.load_target(job.scene, dtype=torch.float64).numpy().T
        reference = make_reference(anechoic, target)
    except Exception as exc:  # noqa: BLE001 - reported per pair, run continues
        return [_failure(job.scene, lis, exc) for lis in job.listeners]

    records: list[dict] = []
    ok: list[tuple[str, np.ndarray, dict]] = []
    for listener_id in job.listeners:
        enhanced = exp.enhanced_path(job.scene, listener_id)
        try:
            listener = dataset.listener(listener_id)
            try:
                amplified, amp = amplify_pair(cfg, exp, job.scene, listener)
            except ValueError as exc:  # name the file in every reason (amplify's may not)
                if str(enhanced) in str(exc):
                    raise
                raise ValueError(f"{enhanced}: {exc}") from exc
            _check_amplified(amplified, reference, int(cfg.nalr.nfir), enhanced, job.scene)
            ok.append((listener, amplified, amp))
        except Exception as exc:  # noqa: BLE001
            records.append(_failure(job.scene, listener_id, exc))
    if not ok:
        return records
    for (listener, _, amp), scores in zip(ok, _score(cfg, job.scene, reference, ok), strict=True):
        listener_id = listener.name
        if isinstance(scores, (BaseException, str)):
            records.append(_failure(job.scene, listener_id, scores))
            continue
        if not all(np.isfinite(v) for v in scores):
            records.append(_failure(job.scene, listener_id, "ValueError: non-finite score "
                                    f"(HASPI {scores[0]}, {scores[1]}; HASQI {scores[2]}, "
                                    f"{scores[3]})"))
            continue
        records.append({
            "id": f"{job.scene}_{listener_id}",
            "schema": SCHEMA,
            "scene": job.scene,
            "listener": listener_id,
            "combined": scores.combined,
            "haspi": scores.haspi,
            "hasqi": scores.hasqi,
            "haspi_left": scores.haspi_left,
            "haspi_right": scores.haspi_right,
            "hasqi_left": scores.hasqi_left,
            "hasqi_right": scores.hasqi_right,
            "clipped_left": amp["clipped_left"],
            "clipped_right": amp["clipped_right"],
            "rng": str(cfg.evaluate.rng),
            "sample_rate": sample_rate,
            "num_samples": int(reference.shape[0]),
            "duration_s": reference.shape[0] / sample_rate,
        })  # fmt: skip
    return records


def _check_amplified(amplified, reference, nfir: int, enhanced, scene: str) -> None:
    """The hearing-aid output must match the reference's length, be finite and not silent."""
    if amplified.shape[0] - nfir != reference.shape[0]:
        raise ValueError(
            f"{enhanced}: length {amplified.shape[0] - nfir} samples, "
            f"the reference {scene}_target_CH1.wav has {reference.shape[0]}"
        )
    if not np.all(np.isfinite(amplified)):
        raise ValueError(f"{enhanced}: the hearing-aid output contains NaN or Inf "
                         "(NaN/Inf in the enhanced signal)")  # fmt: skip
    silent = [ear for ear, c in (("left", 0), ("right", 1)) if not np.any(amplified[:, c])]
    if silent:
        raise ValueError(
            f"{enhanced}: the hearing-aid output is silent (all zeros) in the "
            f"{' and '.join(silent)} ear; HASPI/HASQI are undefined (pyclarity writes NaN)"
        )


def _score(cfg, scene: str, reference, ok) -> list:
    """Scores of the ``ok`` pairs as one batch; if the batch fails, one pair at a time, so
    that only the culprit fails (its entry is then the exception)."""
    from clarity_se.metrics.scene import score_scene_pairs
    from clarity_se.random import scene_seed

    def score(items):
        return score_scene_pairs(
            scene_seed=scene_seed(scene),
            reference=reference,
            amplified=[a for _, a, _ in items],
            listeners=[listener for listener, _, _ in items],
            sample_rate=int(cfg.nalr.sample_rate),
            level_db_spl=float(cfg.evaluate.level_db_spl),
            rng=str(cfg.evaluate.rng),
            device=str(cfg.evaluate.device),
        )

    try:
        return score(ok)
    except Exception as batch_exc:  # noqa: BLE001 - retried one pair at a time below
        if len(ok) == 1:
            return [batch_exc]
        logger.warning("evaluate: scene %s: batch of %d failed (%s); scoring its pairs one at "
                       "a time", scene, len(ok), batch_exc)  # fmt: skip
    results = []
    for item in ok:
        try:
            results.append(score([item])[0])
        except Exception as exc:  # noqa: BLE001
            results.append(exc)
    return results


def scene_jobs(pairs, batch_size: int, config: dict) -> list[SceneJob]:
    """Pairs grouped by scene (equal lengths) in first-seen order, at most ``batch_size`` each."""
    from clarity_se.data.pairs import group_by_scene

    size = max(1, int(batch_size))
    return [
        SceneJob(scene, listeners[start : start + size], config)
        for scene, listeners in group_by_scene(pairs).items()
        for start in range(0, len(listeners), size)
    ]


def _format(value) -> str:
    return repr(float(value)) if isinstance(value, (float, np.floating)) else str(value)


def write_score_csvs(exp: Experiment, pairs, done: dict[str, dict]) -> int:
    """Rewrite ``scores.csv`` and ``scores_detail.csv`` atomically, in the official pair order.

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
    atomic_write_text(exp.csv_path("scores"), official.getvalue())
    atomic_write_text(exp.csv_path("scores_detail"), detail.getvalue())
    return rows


def check_evaluate_config(cfg) -> None:
    """Fail early on a bad ``evaluate.*`` setting.

    Raises
    ------
    ValueError
        Unknown ``evaluate.rng`` or ``evaluate.device``, CUDA requested but absent, or
        ``evaluate.set_random_seed`` false (see below).

    Notes
    -----
    ``evaluate.set_random_seed: false`` makes the official recipe draw from numpy's global
    generator unseeded, i.e. irreproducible scores; clarity_se always seeds each pair from its
    scene and refuses the setting rather than silently ignoring it.
    """
    from clarity_se.metrics.scene import RNG_MODES

    if cfg.evaluate.rng not in RNG_MODES:
        raise ValueError(f"evaluate.rng must be one of {RNG_MODES}, got {cfg.evaluate.rng!r}")
    device = str(cfg.evaluate.device)
    if not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"evaluate.device must be 'cpu' or 'cuda[:N]', got {device!r}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"evaluate.device={device} but CUDA is not available")
    from clarity_se.stages.common import check_scheduler

    check_scheduler(cfg)
    if not bool(cfg.evaluate.set_random_seed):
        raise ValueError(
            "evaluate.set_random_seed=false is not supported: clarity_se seeds every pair from "
            "its scene (the official default, true), so that scores are reproducible"
        )


def evaluate_config_hash(cfg, listener) -> str:
    """Fingerprint of what makes a pair's scores besides its files: the hearing aid
    (``nalr.*``, ``compressor.*``, ``soft_clip``), ``evaluate.rng``, ``evaluate.level_db_spl``
    and the listener's audiograms (not ``workers``, ``batch_size`` or ``device``)."""
    from clarity_se.data.fingerprint import config_hash
    from clarity_se.stages.amplify import amplify_config_hash

    return config_hash({
        "hearing_aid": amplify_config_hash(cfg, listener),
        "rng": str(cfg.evaluate.rng),
        "level_db_spl": float(cfg.evaluate.level_db_spl),
    })  # fmt: skip


def run_evaluate(cfg, *, force: bool = False, wait: bool = False) -> tuple:
    """Evaluate every pair of the config (resuming); return ``(n_scored, n_failed, summary)``.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        Recipe config: ``path.*`` (enhanced signals under ``path.exp_folder``), ``nalr.*``,
        ``compressor.*``, ``soft_clip``, ``evaluate.*``.
    force : bool
        Rescore every pair (default: only pairs that are new or whose enhanced signal,
        references, listener or scoring config changed).
    wait : bool
        Wait for another run holding the experiment folder instead of failing.

    Returns
    -------
    n_scored : int
        Pairs of this run's pair list (after ``small_test`` and ``shard``) now in the journal,
        including those reused from earlier runs.
    n_failed : int
        Pairs that failed in this run (rows added to ``errors.csv``).
    summary : str
        One line: scored, reused, recomputed, new, failed.

    Raises
    ------
    ValueError
        On a bad config (missing metadata, unknown ``evaluate.rng``/``device``) or a folder
        in use by another run.

    References
    ----------
    pyclarity 0.9.0 ``recipes/icassp_2023/baseline/evaluate.py::run_calculate_si``.
    """
    from omegaconf import OmegaConf
    from tqdm import tqdm

    from clarity_se.data.fingerprint import FileFingerprints
    from clarity_se.data.journal import Journal
    from clarity_se.execution import resolve_workers
    from clarity_se.stages.common import stage_executor, stage_inputs

    check_evaluate_config(cfg)
    dataset, exp, pairs = stage_inputs(cfg)
    by_id = {p.id: p for p in pairs}
    files = FileFingerprints()

    def config(pair_id: str) -> str:
        return evaluate_config_hash(cfg, dataset.listeners.get(by_id[pair_id].listener))

    def inputs(pair_id: str) -> dict:
        scene, listener = by_id[pair_id]
        return {
            "enhanced": exp.enhanced_path(scene, listener),
            "target_CH1": dataset.target_path(scene),
            "target_anechoic_CH1": dataset.target_anechoic_path(scene),
        }

    with exp.lock(wait=wait):
        journal = Journal(exp.journal_path(JOURNAL), SCHEMA, exp.folder)
        errors = exp.errors("evaluate")
        plan = journal.plan(list(by_id), config, inputs, files, force=force)
        todo = set(plan.todo)
        done = {i: r for i in by_id if i not in todo and (r := journal.done(i)) is not None}
        logger.info("evaluate: %d pairs: %s", len(pairs), plan.summary())
        jobs = scene_jobs([by_id[i] for i in plan.todo], int(cfg.evaluate.batch_size),
                          OmegaConf.to_container(cfg, resolve=True))  # fmt: skip
        workers = resolve_workers(cfg.evaluate.workers, str(cfg.evaluate.device))
        executor = stage_executor(cfg, workers, len(jobs), warm=warm_worker)
        last_write = time.monotonic()
        try:
            with tqdm(total=len(plan.todo), desc="evaluate", unit="pair") as progress:
                for _, records in executor.map_unordered(score_scene_job, jobs):
                    for record in records:
                        if "error" in record:
                            errors.add(record["scene"], record["listener"], record["error"])
                            done.pop(f"{record['scene']}_{record['listener']}", None)
                        else:
                            record["fingerprint"] = {"config": config(record["id"]),
                                                     "inputs": files.of(inputs(record["id"]))}
                            journal.write(record)
                            done[record["id"]] = record
                        progress.update(1)
                    # the journal is the resumable record; the CSVs are rewritten from it at
                    # most every CSV_INTERVAL_S seconds (a rewrite per job is quadratic)
                    if time.monotonic() - last_write >= CSV_INTERVAL_S:
                        write_score_csvs(exp, pairs, done)
                        last_write = time.monotonic()
        finally:
            journal.close()
            write_score_csvs(exp, pairs, done)
    n_scored = sum(1 for p in pairs if p.id in done)
    summary = f"{n_scored} of {len(pairs)} pairs scored ({plan.summary()}), {errors.count} failed"
    if errors.count:
        summary += f" (see {errors.path})"
    return n_scored, errors.count, summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``clarity-se evaluate -c config.yaml key=value ... [--force] [--wait]``."""
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run ``clarity-se evaluate`` (exit status: :func:`clarity_se.stages.common.stage_main`)."""
    from clarity_se.stages.common import stage_main

    return stage_main("evaluate", lambda: run_evaluate(
        load_config(args.config, args.overrides), force=args.force, wait=args.wait))
