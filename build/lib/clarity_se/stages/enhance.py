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

Resume: outputs are written atomically and each written pair appends one record to the journal
``<exp>/enhance_manifest.jsonl`` (schema ``clarity_se.enhanced/1``,
:class:`clarity_se.data.journal.Journal`); a rerun skips pairs whose record and file exist. A
failing scene (missing or bad file) is written to ``<exp>/errors.csv`` (one row per listener)
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


def run_enhance(cfg, enhancer=None) -> tuple[int, int]:
    """Enhance every pair of the config (resuming); return ``(n_done, n_failed)``.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        Recipe config (``path.*``, ``evaluate.small_test``/``shard``, ``enhancer.*``).
    enhancer : clarity_se.enhancers.Enhancer, optional
        Already built enhancer (default: built from ``enhancer.*``).

    Raises
    ------
    ValueError
        Bad config or metadata, unknown enhancer, missing checkpoint.
    """
    import torch
    from tqdm import tqdm

    from clarity_se.data.audio_io import write_audio
    from clarity_se.data.journal import Journal
    from clarity_se.data.pairs import group_by_scene
    from clarity_se.enhancers import SAMPLE_RATE, build_enhancer
    from clarity_se.stages.common import stage_inputs

    dataset, exp, pairs = stage_inputs(cfg)
    if enhancer is None:
        enhancer = build_enhancer(cfg.enhancer)
    exp.folder.mkdir(parents=True, exist_ok=True)
    errors = exp.errors("enhance")
    with Journal(exp.journal_path(JOURNAL), SCHEMA, exp.folder) as journal:
        todo = group_by_scene(p for p in pairs if journal.done(p.id) is None)
        logger.info("enhance (%s): %d pairs, %d scenes to do",
                    cfg.enhancer.name, len(pairs), len(todo))  # fmt: skip
        for scene, listeners in tqdm(todo.items(), desc="enhance", unit="scene"):
            try:
                mixture = dataset.load_mixture(scene, dtype=torch.float32).numpy()
                signal = np.ascontiguousarray(enhancer(mixture).T)
                if not np.all(np.isfinite(signal)):
                    raise ValueError(f"scene {scene}: enhancer produced NaN/Inf")
            except (ValueError, OSError, RuntimeError) as exc:
                for listener in listeners:
                    errors.add(scene, listener, exc)
                continue
            for listener in listeners:
                path = write_audio(exp.enhanced_path(scene, listener), signal, SAMPLE_RATE)
                journal.write({
                    "id": f"{scene}_{listener}",
                    "schema": SCHEMA,
                    "scene": scene,
                    "listener": listener,
                    "enhancer": cfg.enhancer.name,
                    "sample_rate": SAMPLE_RATE,
                    "num_samples": int(signal.shape[0]),
                    "duration_s": signal.shape[0] / SAMPLE_RATE,
                    "path": exp.relative(path),
                })  # fmt: skip
        n_done = sum(1 for p in pairs if journal.done(p.id) is not None)
    if errors.count:
        logger.error("enhance: %d pairs failed, see %s", errors.count, errors.path)
    return n_done, errors.count


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``clarity-se enhance -c config.yaml key=value ...``."""
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run the enhance stage.

    Returns
    -------
    int
        0 if every pair is written, 1 if any failed (see ``<exp>/errors.csv``), 2 for a bad
        config, metadata file or checkpoint.
    """
    try:
        cfg = load_config(args.config, args.overrides)
        _, n_failed = run_enhance(cfg)
    except ValueError as exc:
        logger.error("enhance: %s", exc)
        return 2
    return 1 if n_failed else 0
