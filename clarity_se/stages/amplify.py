"""``clarity-se amplify``: the recipe's hearing aid (NAL-R + compressor + soft clip) for every pair.

For each (scene, listener) pair of ``path.scenes_listeners_file`` (official order,
``evaluate.small_test`` keeps every 15th, then ``evaluate.shard``) it reads
``<exp>/enhanced_signals/<scene>_<listener>_enhanced.wav``, amplifies it per ear for the listener's
audiograms (``path.listeners_file``) with ``nalr.*``, ``compressor.*`` and ``soft_clip``, and writes
``<exp>/amplified_signals/<scene>_<listener>_HA-output.wav`` (float32 stereo, ``nfir`` samples
longer than the input) atomically, as pyclarity 0.9.0's ``recipes/icassp_2023/baseline/evaluate.py``
does before scoring.

Each finished pair appends one record to ``<exp>/amplify_manifest.jsonl`` (schema
``clarity_se.amplified/1``; ``amplify_manifest.shard-k-of-n.jsonl`` for a shard) through
:class:`clarity_se.data.manifest.ManifestWriter` (fsynced, torn last line repaired, one line per
id); a rerun skips ids whose record and output file exist. A failed pair (missing, corrupt or
wrongly shaped file, unknown listener) is written to ``<exp>/errors.csv`` and skipped; the exit
status is then 1.

Input scaling: float WAVs are used unscaled (as ``scipy.io.wavfile.read`` gives them). A 16-bit
PCM file is *not* divided by 32768: the official evaluate passes the raw int16 values into NAL-R
(so the output saturates after the soft clip), and we reproduce that output, logging a warning.
Other integer formats are rejected (the official recipe never produces them).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from clarity_se.config import add_config_arguments, load_config

logger = logging.getLogger(__name__)

SCHEMA = "clarity_se.amplified/1"
ENHANCED_DIR = "enhanced_signals"
AMPLIFIED_DIR = "amplified_signals"


def enhanced_path(exp_folder: str | os.PathLike, scene: str, listener_id: str) -> Path:
    """``<exp>/enhanced_signals/<scene>_<listener>_enhanced.wav`` (the official name)."""
    return Path(exp_folder) / ENHANCED_DIR / f"{scene}_{listener_id}_enhanced.wav"


def amplified_path(exp_folder: str | os.PathLike, scene: str, listener_id: str) -> Path:
    """``<exp>/amplified_signals/<scene>_<listener>_HA-output.wav`` (the official name)."""
    return Path(exp_folder) / AMPLIFIED_DIR / f"{scene}_{listener_id}_HA-output.wav"


def read_enhanced(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
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
    cfg,
    scene: str,
    listener,
    *,
    exp_folder: str | os.PathLike | None = None,
    write: bool = True,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Amplify one (scene, listener) pair: read the enhanced WAV, run the hearing aid, write.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        Recipe config (``nalr.*``, ``compressor.*``, ``soft_clip``, ``path.exp_folder``).
    scene : str
        Scene id (``S06001``).
    listener : clarity_se.data.audiogram.Listener
        The listener (its ``name`` is the listener id in the file names).
    exp_folder : path-like, optional
        Experiment folder; ``cfg.path.exp_folder`` by default.
    write : bool
        Write ``<exp>/amplified_signals/<scene>_<listener>_HA-output.wav`` (float32, atomic).

    Returns
    -------
    amplified : np.ndarray float64 [shape=(time + nfir, 2)]
        The hearing-aid output in float64, as the official evaluate scores it (the WAV holds
        its float32 cast).
    record : dict
        Manifest record: ``id`` (``<scene>_<listener>``), ``schema``, ``scene``, ``listener``,
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

    exp = Path(cfg.path.exp_folder if exp_folder is None else exp_folder)
    sample_rate = int(cfg.nalr.sample_rate)
    signal = read_enhanced(enhanced_path(exp, scene, listener.name), sample_rate)
    amplified, n_clipped = amplify(
        signal,
        listener,
        nalr_cfg=dict(cfg.nalr),
        compressor_cfg=dict(cfg.compressor),
        soft_clip=bool(cfg.soft_clip),
    )
    out_path = amplified_path(exp, scene, listener.name)
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
        "path": out_path.relative_to(exp).as_posix(),
        "clipped_left": int(n_clipped[0]),
        "clipped_right": int(n_clipped[1]),
    }
    return amplified, record


def read_manifest_ids(exp_folder: str | os.PathLike) -> set[str]:
    """Ids recorded in every ``<exp>/amplify_manifest*.jsonl`` whose output file still exists.

    A torn last line (killed run) or a line of another schema is ignored.
    """
    exp = Path(exp_folder)
    done: set[str] = set()
    for path in sorted(exp.glob("amplify_manifest*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if (
                    isinstance(record, dict)
                    and record.get("schema") == SCHEMA
                    and isinstance(record.get("path"), str)
                    and (exp / record["path"]).is_file()
                ):
                    done.add(str(record.get("id")))
    return done


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``clarity-se amplify -c config.yaml key=value ...``."""
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run the amplify stage.

    Returns
    -------
    int
        0 if every pair is done, 1 if any pair failed (see ``<exp>/errors.csv``), 2 for a bad
        config or metadata file.
    """
    from tqdm import tqdm

    from clarity_se.data.audiogram import load_listeners
    from clarity_se.data.manifest import ManifestWriter
    from clarity_se.stages.common import ErrorLog, pairs_from_config, shard_suffix

    try:
        cfg = load_config(args.config, args.overrides)
        pairs = pairs_from_config(cfg)
        listeners = load_listeners(cfg.path.listeners_file)
        suffix = shard_suffix(cfg.evaluate.shard)
    except ValueError as exc:
        logger.error("amplify: %s", exc)
        return 2
    exp = Path(cfg.path.exp_folder)
    exp.mkdir(parents=True, exist_ok=True)
    try:
        manifest = ManifestWriter(exp / f"amplify_manifest{suffix}.jsonl", schema=SCHEMA)
    except ValueError as exc:
        logger.error("amplify: %s", exc)
        return 2
    errors = ErrorLog(exp, "amplify", suffix)
    done = read_manifest_ids(exp)
    todo = [(s, lis) for s, lis in pairs if f"{s}_{lis}" not in done]
    logger.info(
        "amplify: %d pairs, %d already done, %d to do",
        len(pairs),
        len(pairs) - len(todo),
        len(todo),
    )
    with manifest:
        for scene, listener_id in tqdm(todo, desc="amplify", unit="pair"):
            try:
                if listener_id not in listeners:
                    raise ValueError(f"{cfg.path.listeners_file}: no listener {listener_id!r}")
                _, record = amplify_pair(cfg, scene, listeners[listener_id], exp_folder=exp)
            except (ValueError, OSError) as exc:
                errors.add(scene, listener_id, exc)
                continue
            manifest.write(record)  # an id already recorded (output file was lost) is not repeated
    if errors.count:
        logger.error("amplify: %d of %d pairs failed, see %s", errors.count, len(todo), errors.path)
        return 1
    return 0
