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

Resume: outputs are written atomically and existing ones are skipped, so a rerun after a kill
continues. A failing scene (missing or bad file) is written to ``<exp>/errors.csv`` (one row per
listener) and the run continues; the exit status is then 1. One record per written file goes to
``<exp>/enhance_manifest.jsonl`` (schema ``clarity_se.enhanced/1``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from clarity_se.config import add_config_arguments, load_config

logger = logging.getLogger(__name__)

SCHEMA = "clarity_se.enhanced/1"
SAMPLE_RATE = 44100


def enhanced_path(exp_folder: str | os.PathLike, scene: str, listener_id: str) -> Path:
    """``<exp>/enhanced_signals/<scene>_<listener>_enhanced.wav`` (the official name)."""
    return Path(exp_folder) / "enhanced_signals" / f"{scene}_{listener_id}_enhanced.wav"


def read_mixtures(scenes_folder: str | os.PathLike, scene: str, channels=(1, 2, 3)) -> np.ndarray:
    """The hearing-aid microphones of a scene as float32 ``[2 * len(channels), time]``.

    Rows ``CH1-L, CH1-R, CH2-L, CH2-R, CH3-L, CH3-R`` for the default channels; 16-bit PCM is
    divided by 32768 (the official scaling).

    Raises
    ------
    clarity_se.data.audio_io.AudioFileError
        A file is missing, unreadable, not 44.1 kHz stereo, or the pairs differ in length.
    """
    from clarity_se.data.audio_io import AudioFileError, read_audio

    rows = []
    for ch in channels:
        path = Path(scenes_folder) / f"{scene}_mix_CH{ch}.wav"
        samples, _ = read_audio(path, expected_sample_rate=SAMPLE_RATE, expected_channels=2)
        if rows and samples.shape[0] != rows[0].shape[1]:
            raise AudioFileError(
                f"{path}: num_samples is {samples.shape[0]}, CH{channels[0]} has {rows[0].shape[1]}"
            )
        rows.append(samples.T)
    return np.concatenate(rows, axis=0)


def make_enhancer(cfg) -> Callable[[str, str], np.ndarray]:
    """``(scenes_folder, scene) -> [time, 2]`` float32 for the enhancer of ``enhancer.*``.

    Raises
    ------
    ValueError
        Unknown ``enhancer.name`` or bad enhancer options (e.g. a missing checkpoint).
    """
    from clarity_se.enhancers import build_enhancer

    enhancer = build_enhancer(cfg.enhancer)

    def run(scenes_folder: str | os.PathLike, scene: str) -> np.ndarray:
        return np.ascontiguousarray(enhancer(read_mixtures(scenes_folder, scene)).T)

    return run


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
    from tqdm import tqdm

    from clarity_se.data.audio_io import write_audio
    from clarity_se.stages.common import ErrorLog, group_by_scene, pairs_from_config, shard_suffix

    try:
        cfg = load_config(args.config, args.overrides)
        pairs = pairs_from_config(cfg)
        suffix = shard_suffix(cfg.evaluate.shard)
        enhancer = make_enhancer(cfg)
    except ValueError as exc:
        logger.error("enhance: %s", exc)
        return 2
    exp = Path(cfg.path.exp_folder)
    exp.mkdir(parents=True, exist_ok=True)
    errors = ErrorLog(exp, "enhance", suffix)
    manifest = exp / f"enhance_manifest{suffix}.jsonl"
    scenes = group_by_scene(pairs)
    todo = {
        s: [lis for lis in listeners if not enhanced_path(exp, s, lis).is_file()]
        for s, listeners in scenes.items()
    }
    todo = {s: lis for s, lis in todo.items() if lis}
    logger.info(
        "enhance (%s): %d pairs in %d scenes, %d scenes to do",
        cfg.enhancer.name,
        len(pairs),
        len(scenes),
        len(todo),
    )
    for scene, listeners in tqdm(todo.items(), desc="enhance", unit="scene"):
        try:
            signal = enhancer(cfg.path.scenes_folder, scene)
            if not np.all(np.isfinite(signal)):
                raise ValueError(f"scene {scene}: enhancer produced NaN/Inf")
        except (ValueError, OSError, RuntimeError) as exc:
            for listener in listeners:
                errors.add(scene, listener, exc)
            continue
        with open(manifest, "a", encoding="utf-8") as handle:
            for listener in listeners:
                path = write_audio(enhanced_path(exp, scene, listener), signal, SAMPLE_RATE)
                record = {
                    "id": f"{scene}_{listener}",
                    "schema": SCHEMA,
                    "scene": scene,
                    "listener": listener,
                    "enhancer": cfg.enhancer.name,
                    "sample_rate": SAMPLE_RATE,
                    "num_samples": int(signal.shape[0]),
                    "duration_s": signal.shape[0] / SAMPLE_RATE,
                    "path": path.relative_to(exp).as_posix(),
                }
                handle.write(json.dumps(record) + "\n")
            handle.flush()
    if errors.count:
        logger.error("enhance: %d pairs failed, see %s", errors.count, errors.path)
        return 1
    return 0
