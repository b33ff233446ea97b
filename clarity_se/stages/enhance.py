"""``clarity-se enhance``: write the enhanced signal of every (scene, listener) pair.

For each pair of ``path.scenes_listeners_file`` (official order; ``evaluate.small_test`` keeps
every 15th pair; then ``evaluate.shard``) it writes
``<exp>/enhanced_signals/<scene>_<listener>_enhanced.wav``: float32, stereo (left, right),
44.1 kHz, the same length as the scene's mixture (the official naming and format). Each scene is
enhanced once and written for each of its listeners (the enhancers here do not use the
audiogram).

Enhancers (``enhancer.name``) come from the registry :mod:`clarity_se.enhancers`
(``passthrough``: the official baseline, the front microphones; ``convtasnet``: the causal
multi-channel Conv-TasNet of ``enhancer.checkpoint``, default the packaged one). Each maps the
six microphones ``[6, time]`` to the two ears ``[2, time]``.

Scenes run in this process, or on a Dask cluster with ``evaluate.scheduler=dask``
(``dask.*``; docs/cluster.md): each worker builds the enhancer once, writes the scene's files
atomically and returns the records, which this process journals.

Resume: outputs are written atomically and each written pair appends one record to the journal
``<exp>/enhance_manifest.jsonl`` (schema ``clarity_se.enhanced/1``,
:class:`clarity_se.data.journal.Journal`); a rerun skips pairs whose record and file exist.
Each record also carries what the enhancer reports about the scene
(:meth:`~clarity_se.enhancers.base.Enhancer.diagnostics`): for ``convtasnet`` with
``enhancer.guard``, ``guard_fired``: per pass (``direct``, ``mirrored``), the share of 10 ms
blocks in which the do-no-harm rule fell back towards the front microphones. A failing scene
(missing or bad file) is written to ``<exp>/errors.csv`` (one row per listener)
and the run continues; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from clarity_se.config import add_config_arguments, load_config

logger = logging.getLogger(__name__)

SCHEMA = "clarity_se.enhanced/1"
JOURNAL = "enhance_manifest"


def enhance_config_hash(cfg, enhancer) -> str:
    """Fingerprint of what makes an enhanced signal: the ``enhancer.*`` values that change it
    (not ``device`` or ``chunk_s``, which change nothing beyond float rounding) and the
    content of the enhancer's checkpoint, if it has one."""
    from omegaconf import OmegaConf

    from clarity_se.data.fingerprint import config_hash, file_hash

    values = OmegaConf.to_container(cfg.enhancer, resolve=True)
    for key in ("device", "chunk_s", "checkpoint"):
        values.pop(key, None)
    checkpoint = getattr(enhancer, "checkpoint_path", None) or getattr(enhancer, "path", None)
    values["checkpoint_hash"] = file_hash(checkpoint) if checkpoint else ""
    return config_hash(values)


#: enhancers built in this process, by their ``enhancer.*`` options (a Dask worker builds its
#: enhancer once, for its first scene)
_ENHANCERS: dict[str, object] = {}


def _enhancer_key(config: dict) -> str:
    import json

    return json.dumps(config["enhancer"], sort_keys=True)


def enhance_job(job: tuple[str, list[str], dict]) -> list[dict]:
    """Enhance one scene ``(scene, listeners, config)`` where it runs (this process or a Dask
    worker) and write its output for each listener; return the journal records (without
    fingerprint), or one ``{"scene", "listener", "error"}`` per listener."""
    import torch
    from omegaconf import OmegaConf

    from clarity_se.data.audio_io import write_audio
    from clarity_se.data.cec2 import CEC2Dataset
    from clarity_se.data.experiment import Experiment
    from clarity_se.enhancers import SAMPLE_RATE, build_enhancer

    scene, listeners, config = job
    cfg = OmegaConf.create(config)
    try:
        key = _enhancer_key(config)
        if key not in _ENHANCERS:
            _ENHANCERS[key] = build_enhancer(cfg.enhancer)
        enhancer = _ENHANCERS[key]
        dataset = CEC2Dataset.from_recipe(cfg.path)
        exp = Experiment(cfg.path.exp_folder, cfg.evaluate.shard)
        mixture = dataset.load_mixture(scene, dtype=torch.float32).numpy()
        signal = np.ascontiguousarray(enhancer(mixture).T)
        if not np.all(np.isfinite(signal)):
            raise ValueError(f"scene {scene}: enhancer produced NaN/Inf")
    except (ValueError, OSError, RuntimeError) as exc:
        return [{"scene": scene, "listener": lis, "error": f"{type(exc).__name__}: {exc}"}
                for lis in listeners]  # fmt: skip
    diagnostics = enhancer.diagnostics()
    records = []
    for listener in listeners:
        path = write_audio(exp.enhanced_path(scene, listener), signal, SAMPLE_RATE)
        records.append({
            "id": f"{scene}_{listener}",
            "schema": SCHEMA,
            "scene": scene,
            "listener": listener,
            "enhancer": cfg.enhancer.name,
            "sample_rate": SAMPLE_RATE,
            "num_samples": int(signal.shape[0]),
            "duration_s": signal.shape[0] / SAMPLE_RATE,
            "path": exp.relative(path),
        } | diagnostics)  # fmt: skip
    return records


def run_enhance(cfg, enhancer=None, *, force: bool = False, wait: bool = False) -> tuple:
    """Enhance every pair of the config (resuming); return ``(n_done, n_failed, summary)``.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        Recipe config (``path.*``, ``evaluate.small_test``/``shard``, ``enhancer.*``).
    enhancer : clarity_se.enhancers.Enhancer, optional
        Already built enhancer (default: built from ``enhancer.*``).
    force : bool
        Recompute every pair (default: only pairs that are new or whose mixtures, enhancer
        options or checkpoint changed).
    wait : bool
        Wait for another run holding the experiment folder instead of failing.

    Raises
    ------
    ValueError
        Bad config or metadata, unknown enhancer, missing checkpoint, folder in use.
    """
    from omegaconf import OmegaConf

    from clarity_se.data.fingerprint import FileFingerprints
    from clarity_se.enhancers import build_enhancer
    from clarity_se.stages.common import check_scheduler, stage_inputs

    check_scheduler(cfg)
    dataset, exp, pairs = stage_inputs(cfg)
    if enhancer is None:
        enhancer = build_enhancer(cfg.enhancer)
    config = enhance_config_hash(cfg, enhancer)
    files = FileFingerprints()
    by_id = {p.id: p for p in pairs}
    resolved = OmegaConf.to_container(cfg, resolve=True)
    _ENHANCERS[_enhancer_key(resolved)] = enhancer  # the in-process jobs use this one

    def inputs(pair_id: str) -> dict:
        scene = by_id[pair_id].scene
        return {f"mix_CH{ch}": dataset.mix_path(scene, ch) for ch in (1, 2, 3)}

    try:
        n_done, plan, errors = _enhance_pairs(cfg, exp, pairs, by_id, config, inputs, files,
                                              resolved, force, wait)  # fmt: skip
    finally:
        _ENHANCERS.pop(_enhancer_key(resolved), None)
    summary = f"{n_done} of {len(pairs)} pairs enhanced ({plan.summary()}), {errors.count} failed"
    if errors.count:
        summary += f" (see {errors.path})"
    return n_done, errors.count, summary


def _enhance_pairs(cfg, exp, pairs, by_id, config, inputs, files, resolved, force, wait):
    """The journaled loop of :func:`run_enhance`; returns ``(n_done, plan, errors)``."""
    from tqdm import tqdm

    from clarity_se.data.journal import Journal
    from clarity_se.data.pairs import group_by_scene
    from clarity_se.stages.common import stage_executor

    with exp.lock(wait=wait), Journal(exp.journal_path(JOURNAL), SCHEMA, exp.folder) as journal:
        errors = exp.errors("enhance")
        plan = journal.plan(list(by_id), config, inputs, files, force=force)
        todo = group_by_scene(by_id[i] for i in plan.todo)
        logger.info("enhance (%s): %d pairs: %s", cfg.enhancer.name, len(pairs), plan.summary())
        jobs = [(scene, listeners, resolved) for scene, listeners in todo.items()]
        executor = stage_executor(cfg, 1, len(jobs))
        for _, records in tqdm(executor.map_unordered(enhance_job, jobs), total=len(jobs),
                               desc="enhance", unit="scene"):  # fmt: skip
            for record in records:
                if "error" in record:
                    errors.add(record["scene"], record["listener"], record["error"])
                    continue
                read = files.of(inputs(record["id"]))
                journal.write(record | {"fingerprint": {"config": config, "inputs": read}})
        n_done = sum(1 for p in pairs if journal.done(p.id) is not None)
    return n_done, plan, errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``clarity-se enhance -c config.yaml key=value ... [--force] [--wait]``."""
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run the enhance stage (exit status: :func:`clarity_se.stages.common.stage_main`)."""
    from clarity_se.stages.common import stage_main

    return stage_main("enhance", lambda: run_enhance(
        load_config(args.config, args.overrides), force=args.force, wait=args.wait))
