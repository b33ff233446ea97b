"""``clarity-se aec``: run an echo canceller over every clip of an AEC Challenge folder.

``clarity-se aec -c recipes/aec/<system>/config.yaml path.root=ROOT path.exp_folder=EXP
aec.name=...`` reads ROOT in either AEC Challenge layout
(:mod:`clarity_se.data.aec_challenge`) and writes, per clip,
``EXP/enhanced_signals/nearend_mic_fileid_<N>_enhanced.wav`` (synthetic) or
``EXP/enhanced_signals/[sub/]<stem>_enhanced.wav`` (real; ``<stem>`` the mic name without
``_mic``): 16 kHz float32 mono, the microphone's length.

Resume: outputs are written atomically (temp file + rename) and existing ones are skipped, so a
rerun after a kill continues. A clip that fails (missing or bad file, non-finite output) goes to
``EXP/errors.csv`` (``stage,clip,error``; rows of an earlier ``aec`` run are dropped when it
restarts) and the run continues; the exit status is then 1 (2 for a bad config or system). One
record per written file goes to ``EXP/aec_manifest.jsonl`` (schema ``clarity_se.aec_enhanced/1``)
and the resolved config to ``EXP/aec_config.yaml``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import numpy as np

from clarity_se.config import add_config_arguments
from clarity_se.data.experiment import ErrorLog

logger = logging.getLogger(__name__)

SCHEMA = "clarity_se.aec_enhanced/1"
SAMPLE_RATE = 16000


def AECErrorLog(exp_folder: str | os.PathLike, stage: str) -> ErrorLog:  # noqa: N802
    """``<exp>/errors.csv`` of the echo track (``stage,clip,error``)."""
    return ErrorLog(exp_folder, stage, keys=("clip",))


def enhanced_path(exp_folder: str | os.PathLike, clip) -> Path:
    """``<exp>/enhanced_signals/<clip.enhanced_name>``."""
    return Path(exp_folder) / "enhanced_signals" / clip.enhanced_name


def build_system(cfg):
    """The echo canceller of ``cfg.aec`` (``aec.name``; ``aec.res`` must be empty here).

    Raises
    ------
    ValueError
        Unknown ``aec.name``, bad options, or a residual-echo suppressor this build lacks.
    """
    from clarity_se.aec import build_aec

    if cfg.aec.res:
        raise ValueError(f"aec.res: no residual-echo suppressor {cfg.aec.res!r} is available "
                         "in this build (leave aec.res empty)")
    return build_aec(cfg.aec)


def run_clip(system, clip) -> np.ndarray:
    """Read a clip and return the canceller's output, float32 ``[time]`` (mic length).

    Raises
    ------
    clarity_se.data.audio_io.AudioFileError
        A missing or bad input file.
    ValueError
        Non-finite output or a length mismatch.
    """
    from clarity_se.data.aec_challenge import read_clip

    audio = read_clip(clip, references=False)
    out = np.asarray(system(audio.mic, audio.farend).output, dtype=np.float32)
    if out.shape != audio.mic.shape:
        raise ValueError(f"clip {clip.id}: output has {out.size} samples, mic {audio.mic.size}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"clip {clip.id}: output contains NaN or Inf")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``clarity-se aec -c config.yaml key=value ...``."""
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run the aec stage.

    Returns
    -------
    int
        0 if every clip is written, 1 if any failed (see ``<exp>/errors.csv``), 2 for a bad
        config, data folder or system.
    """
    from omegaconf import OmegaConf
    from tqdm import tqdm

    from clarity_se.aec.config import load_aec_config
    from clarity_se.data.aec_challenge import load_aec_dataset
    from clarity_se.data.audio_io import atomic_write_text, write_audio

    try:
        cfg = load_aec_config(args.config, args.overrides)
        clips = load_aec_dataset(cfg.path.root, cfg.path.split or None)
        system = build_system(cfg)
    except ValueError as exc:
        logger.error("aec: %s", exc)
        return 2
    exp = Path(cfg.path.exp_folder)
    exp.mkdir(parents=True, exist_ok=True)
    atomic_write_text(exp / "aec_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    errors = AECErrorLog(exp, "aec")
    todo = [c for c in clips if not enhanced_path(exp, c).is_file()]
    logger.info("aec (%s): %d clips, %d to do", cfg.aec.name, len(clips), len(todo))
    manifest = exp / "aec_manifest.jsonl"
    for clip in tqdm(todo, desc=f"aec {cfg.aec.name}", unit="clip", disable=None):
        try:
            out = run_clip(system, clip)
        except (ValueError, OSError, RuntimeError) as exc:
            errors.add(clip.id, exc)
            continue
        path = write_audio(enhanced_path(exp, clip), out, SAMPLE_RATE)
        record = {
            "id": clip.id,
            "schema": SCHEMA,
            "talk_type": clip.talk_type,
            "system": cfg.aec.name,
            "sample_rate": SAMPLE_RATE,
            "num_samples": int(out.size),
            "duration_s": out.size / SAMPLE_RATE,
            "path": path.relative_to(exp).as_posix(),
        }
        with open(manifest, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
    if errors.count:
        logger.error("aec: %d clips failed, see %s", errors.count, errors.path)
        return 1
    return 0
