"""``clarity-se submit``: package enhanced signals of an evaluation split for submission.

Every expected ``<scene>_<listener>_enhanced.wav`` (the official naming, pairs from
``path.scenes_listeners_file``) is checked: present, WAV float32 (the challenge format),
44 100 Hz, stereo, finite samples, length equal to the scene's ``<scene>_mix_CH1.wav``. Only if
every file passes is a zip written, holding the signals, ``manifest.json`` (one record per file
with sample rate, length, SHA-256) and ``SHA256SUMS``; otherwise the problems are listed and the
exit status is 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from clarity_se.config import add_config_arguments, load_config
from clarity_se.data.audio_io import AudioFileError, atomic_path, audio_info
from clarity_se.data.cec2 import CEC2Dataset
from clarity_se.data.experiment import Experiment

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 44100


def check_enhanced_file(path: Path, expected_frames: int | None) -> list[str]:
    """Problems of one enhanced signal (empty list if it is fit for submission).

    Parameters
    ----------
    path : pathlib.Path
        The ``<scene>_<listener>_enhanced.wav`` file.
    expected_frames : int or None
        Length of the scene's mixture in samples (None: not checked).
    """
    try:
        info = audio_info(path)
    except AudioFileError as exc:
        return [str(exc)]
    problems = []
    if info.format != "WAV" or info.subtype != "FLOAT":
        problems.append(
            f"{path}: format is {info.format}/{info.subtype}, expected WAV/FLOAT (float32)"
        )
    if info.samplerate != SAMPLE_RATE_HZ:
        problems.append(f"{path}: sample_rate is {info.samplerate} Hz, expected {SAMPLE_RATE_HZ}")
    if info.channels != 2:
        problems.append(f"{path}: channels is {info.channels}, expected 2 (left, right)")
    if expected_frames is not None and info.frames != expected_frames:
        problems.append(f"{path}: length is {info.frames} samples, mixture has {expected_frames}")
    try:
        data, _ = sf.read(str(path), dtype="float32")
        if data.shape[0] != info.frames:
            problems.append(f"{path}: truncated ({data.shape[0]} of {info.frames} frames readable)")
        elif not np.all(np.isfinite(data)):
            problems.append(f"{path}: contains NaN or Inf samples")
    except (RuntimeError, sf.LibsndfileError) as exc:
        problems.append(f"{path}: unreadable ({exc})")
    return problems


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_submission(
    dataset: CEC2Dataset, experiment: Experiment, out_zip: Path
) -> tuple[Path | None, list[str]]:
    """Validate and zip the enhanced signals of every pair of the dataset.

    Parameters
    ----------
    dataset : CEC2Dataset
        Its ``scenes_listeners`` file gives the pairs; its CH1 mixtures the expected lengths.
    experiment : Experiment
        Holds ``enhanced_signals/``.
    out_zip : Path
        The archive to write (atomically).

    Returns
    -------
    (zip path or None, problems) : tuple
        ``None`` and the list of problems if any file failed; nothing is written then.
    """
    pairs = dataset.scene_listener_pairs()
    problems: list[str] = []
    records = []
    mixture_frames: dict[str, int | None] = {}
    for scene, listener in tqdm(pairs, desc="submit: checking", unit="pair"):
        if scene not in mixture_frames:
            mix = dataset.mix_path(scene, 1)
            try:
                mixture_frames[scene] = audio_info(mix).frames
            except AudioFileError as exc:
                problems.append(f"{exc} (needed for the expected length)")
                mixture_frames[scene] = None
        path = experiment.enhanced_path(scene, listener)
        found = check_enhanced_file(path, mixture_frames[scene])
        problems += found
        if not found:
            records.append(
                {
                    "id": f"{scene}_{listener}",
                    "scene": scene,
                    "listener": listener,
                    "path": path.name,
                    "sample_rate": SAMPLE_RATE_HZ,
                    "num_samples": mixture_frames[scene],
                    "duration_s": (mixture_frames[scene] or 0) / SAMPLE_RATE_HZ,
                    "sha256": _sha256(path),
                }
            )
    if problems:
        return None, problems
    out_zip = Path(out_zip)
    with atomic_path(out_zip) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for record in tqdm(records, desc="submit: zipping", unit="file"):
                archive.write(
                    experiment.enhanced_path(record["scene"], record["listener"]),
                    arcname=record["path"],
                )
            archive.writestr(
                "manifest.json",
                json.dumps(
                    {"schema": "clarity_se.submission/1", "pairs": len(records), "files": records},
                    indent=2,
                ),
            )
            archive.writestr(
                "SHA256SUMS", "".join(f"{r['sha256']}  {r['path']}\n" for r in records)
            )
    return out_zip, []


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clarity-se submit``: the recipe config plus ``--out``."""
    add_config_arguments(parser, resumable=False)
    parser.add_argument(
        "--out", type=Path, default=None, help="zip to write (default: <exp_folder>/submission.zip)"
    )


def main(args: argparse.Namespace) -> int:
    """Run ``clarity-se submit``: exit 1 (listing every problem) if any file is unfit, 2 for a
    bad config, metadata or unwritable output (:func:`clarity_se.stages.common.stage_main`)."""
    from clarity_se.stages.common import stage_main

    def run():
        cfg = load_config(args.config, args.overrides)
        exp = Experiment(cfg.path.exp_folder)
        out = args.out or exp.folder / "submission.zip"
        archive, problems = make_submission(CEC2Dataset.from_recipe(cfg.path), exp, out)
        if problems:
            listing = "".join(f"\n  {problem}" for problem in problems)
            return 0, len(problems), f"submission refused: {len(problems)} problem(s):{listing}"
        return 1, 0, f"submission written: {archive}"

    return stage_main("submit", run)
