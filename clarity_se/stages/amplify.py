"""``clarity-se amplify``: the recipe's hearing aid (NAL-R + compressor + soft clip) for every pair.

For each (scene, listener) pair of ``path.scenes_listeners_file`` (official order,
``evaluate.small_test`` keeps every 15th, then ``evaluate.shard``) it reads
``<exp>/enhanced_signals/<scene>_<listener>_enhanced.wav``, amplifies it per ear for the listener's
audiograms (``path.listeners_file``) with ``nalr.*``, ``compressor.*`` and ``soft_clip``, and writes
``<exp>/amplified_signals/<scene>_<listener>_HA-output.wav`` (float32 stereo, ``nfir`` samples
longer than the input) atomically, as pyclarity 0.9.0's ``recipes/icassp_2023/baseline/evaluate.py``
does before scoring.

Pairs run in this process, or on a Dask cluster with ``evaluate.scheduler=dask`` (``dask.*``;
docs/cluster.md); this process journals the records as they return.

Each finished pair appends one record to the journal ``<exp>/amplify_manifest.jsonl`` (schema
``clarity_se.amplified/1``; ``amplify_manifest.shard-k-of-n.jsonl`` for a shard;
:class:`clarity_se.data.journal.Journal`); a rerun skips pairs whose record and output file
exist. A failed pair (missing, corrupt or
wrongly shaped file, unknown listener) is written to ``<exp>/errors.csv`` and skipped; the exit
status is then 1.

Input scaling: float WAVs are used unscaled (as ``scipy.io.wavfile.read`` gives them). A 16-bit
PCM file is *not* divided by 32768: the official evaluate passes the raw int16 values into NAL-R
(so the output saturates after the soft clip), and we reproduce that output, logging a warning.
Other integer formats are rejected (the official recipe never produces them).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import numpy as np

from clarity_se.config import add_config_arguments, load_config
from clarity_se.data.experiment import Experiment

logger = logging.getLogger(__name__)

SCHEMA = "clarity_se.amplified/1"
JOURNAL = "amplify_manifest"


def read_enhanced(path, sample_rate: int) -> np.ndarray:
    """Read an enhanced signal as the official evaluate does (``scipy.io.wavfile.read``).

    Parameters
    ----------
    path : path-like
        Stereo WAV.
    sample_rate : int
        Required sample rate in Hz (``nalr.sample_rate``; the official code asserts it).

    Returns
    -------
    np.ndarray float64 [shape=(time, 2)]
        Float WAVs unscaled; 16-bit PCM as raw integer values (not / 32768, the official
        behaviour; a warning is logged).

    Raises
    ------
    clarity_se.data.audio_io.AudioFileError
        Missing, unreadable or truncated file, wrong sample rate, not two channels, or an
        integer format other than 16-bit PCM.
    """
    from clarity_se.data.audio_io import AudioFileError, audio_info, read_audio

    info = audio_info(path)
    if info.subtype not in ("FLOAT", "DOUBLE", "PCM_16"):
        raise AudioFileError(
            f"{path}: subtype is {info.subtype}; enhanced signals must be float or 16-bit PCM WAV"
        )
    samples, _ = read_audio(path, expected_sample_rate=sample_rate, expected_channels=2)
    if info.subtype == "PCM_16":
        logger.warning(
            "%s is 16-bit PCM: like the official evaluate.py, its raw integer values (not / 32768) "
            "go into NAL-R, so the hearing-aid output saturates; write enhanced signals as float",
            path,
        )
        samples = samples * 32768.0  # exact: undoes read_audio's power-of-two scaling
    return samples


def amplify_pair(
    cfg, experiment: Experiment, scene: str, listener, *, write: bool = True
) -> tuple[np.ndarray, dict[str, Any]]:
    """Amplify one (scene, listener) pair: read the enhanced WAV, run the hearing aid, write.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        Recipe config (``nalr.*``, ``compressor.*``, ``soft_clip``).
    experiment : Experiment
        The experiment folder holding ``enhanced_signals/``.
    scene : str
        Scene id (``S06001``).
    listener : clarity_se.data.audiogram.Listener
        The listener (its ``name`` is the listener id in the file names).
    write : bool
        Write ``<exp>/amplified_signals/<scene>_<listener>_HA-output.wav`` (float32, atomic).

    Returns
    -------
    amplified : np.ndarray float64 [shape=(time + nfir, 2)]
        The hearing-aid output in float64, as the official evaluate scores it (the WAV holds
        its float32 cast).
    record : dict
        Journal record: ``id`` (``<scene>_<listener>``), ``schema``, ``scene``, ``listener``,
        ``sample_rate`` (Hz), ``num_samples``, ``duration_s``, ``path`` (relative to the exp
        folder), ``clipped_left``, ``clipped_right`` (samples with ``|x| > 1`` before the soft
        clip).

    Raises
    ------
    ValueError
        (including ``AudioFileError``) for a missing or bad enhanced file or a bad config.

    References
    ----------
    pyclarity 0.9.0 ``recipes/icassp_2023/baseline/evaluate.py::run_calculate_si`` (read, amplify,
    soft clip, write).
    """
    from clarity_se.amplification.hearing_aid import amplify
    from clarity_se.data.audio_io import write_audio

    sample_rate = int(cfg.nalr.sample_rate)
    enhanced = experiment.enhanced_path(scene, listener.name)
    signal = read_enhanced(enhanced, sample_rate)
    if not np.all(np.isfinite(signal)):
        raise ValueError(f"{enhanced}: samples: contains NaN or Inf")
    amplified, n_clipped = amplify(
        signal,
        listener,
        nalr_cfg=dict(cfg.nalr),
        compressor_cfg=dict(cfg.compressor),
        soft_clip=bool(cfg.soft_clip),
    )
    out_path = experiment.amplified_path(scene, listener.name)
    if write:
        write_audio(out_path, amplified, sample_rate, subtype="FLOAT")
    record = {
        "id": f"{scene}_{listener.name}",
        "schema": SCHEMA,
        "scene": scene,
        "listener": listener.name,
        "sample_rate": sample_rate,
        "num_samples": int(amplified.shape[0]),
        "duration_s": amplified.shape[0] / sample_rate,
        "path": experiment.relative(out_path),
        "clipped_left": int(n_clipped[0]),
        "clipped_right": int(n_clipped[1]),
    }
    return amplified, record


def amplify_job(job: tuple[str, str, dict]) -> dict:
    """Amplify one pair ``(scene, listener, config)`` where it runs (this process or a Dask
    worker) and write its output; return its journal record, or ``{"scene", "listener",
    "error"}``. The caller journals the records, so one process writes the journal."""
    from omegaconf import OmegaConf

    from clarity_se.data.cec2 import CEC2Dataset

    scene, listener_id, config = job
    cfg = OmegaConf.create(config)
    try:
        dataset = CEC2Dataset.from_recipe(cfg.path)
        exp = Experiment(cfg.path.exp_folder, cfg.evaluate.shard)
        return amplify_pair(cfg, exp, scene, dataset.listener(listener_id))[1]
    except (ValueError, OSError) as exc:
        return {"scene": scene, "listener": listener_id, "error": f"{type(exc).__name__}: {exc}"}


def amplify_config_hash(cfg, listener) -> str:
    """Fingerprint of what makes a hearing-aid output besides the enhanced signal: ``nalr.*``,
    ``compressor.*``, ``soft_clip`` and the listener's audiograms."""
    from omegaconf import OmegaConf

    from clarity_se.data.fingerprint import config_hash

    return config_hash({
        "nalr": OmegaConf.to_container(cfg.nalr, resolve=True),
        "compressor": OmegaConf.to_container(cfg.compressor, resolve=True),
        "soft_clip": bool(cfg.soft_clip),
        "listener": None if listener is None else listener.to_dict(),
    })  # fmt: skip


def run_amplify(cfg, *, force: bool = False, wait: bool = False) -> tuple:
    """Amplify every pair of the config (resuming); return ``(n_done, n_failed, summary)``.

    Raises
    ------
    ValueError
        Bad config, metadata or listeners file, or the folder is in use.
    """
    from omegaconf import OmegaConf
    from tqdm import tqdm

    from clarity_se.data.fingerprint import FileFingerprints
    from clarity_se.data.journal import Journal
    from clarity_se.stages.common import check_scheduler, stage_executor, stage_inputs

    check_scheduler(cfg)
    dataset, exp, pairs = stage_inputs(cfg)
    by_id = {p.id: p for p in pairs}
    files = FileFingerprints()

    def listener_or_none(listener_id: str):
        return dataset.listeners.get(listener_id)

    def config(pair_id: str) -> str:
        return amplify_config_hash(cfg, listener_or_none(by_id[pair_id].listener))

    def inputs(pair_id: str) -> dict:
        return {"enhanced": exp.enhanced_path(*by_id[pair_id])}

    with exp.lock(wait=wait), Journal(exp.journal_path(JOURNAL), SCHEMA, exp.folder) as journal:
        errors = exp.errors("amplify")
        plan = journal.plan(list(by_id), config, inputs, files, force=force)
        logger.info("amplify: %d pairs: %s", len(pairs), plan.summary())
        resolved = OmegaConf.to_container(cfg, resolve=True)
        jobs = [(*by_id[i], resolved) for i in plan.todo]
        executor = stage_executor(cfg, 1, len(jobs))
        for _, record in tqdm(executor.map_unordered(amplify_job, jobs), total=len(jobs),
                              desc="amplify", unit="pair"):  # fmt: skip
            if "error" in record:
                errors.add(record["scene"], record["listener"], record["error"])
                continue
            pair_id = record["id"]
            try:
                fingerprint = {"config": config(pair_id), "inputs": files.of(inputs(pair_id))}
            except (ValueError, OSError) as exc:
                errors.add(record["scene"], record["listener"], exc)
                continue
            journal.write(record | {"fingerprint": fingerprint})
        n_done = sum(1 for p in pairs if journal.done(p.id) is not None)
    summary = f"{n_done} of {len(pairs)} pairs amplified ({plan.summary()}), {errors.count} failed"
    if errors.count:
        summary += f" (see {errors.path})"
    return n_done, errors.count, summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``clarity-se amplify -c config.yaml key=value ... [--force] [--wait]``."""
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run the amplify stage (exit status: :func:`clarity_se.stages.common.stage_main`)."""
    from clarity_se.stages.common import stage_main

    return stage_main("amplify", lambda: run_amplify(
        load_config(args.config, args.overrides), force=args.force, wait=args.wait))
