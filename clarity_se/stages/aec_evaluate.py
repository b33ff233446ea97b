"""``clarity-se aec-evaluate``: score an echo canceller's outputs beside WebRTC AEC3 and the mic.

Reads the clips of ``path.root`` and the system's outputs ``EXP/enhanced_signals/...`` (written
by ``clarity-se aec``); runs the reference system (``evaluate.reference_system``, default
``webrtc_aec3``; outputs cached in ``EXP/reference_signals/<name>/``) and scores, per clip
(:mod:`clarity_se.metrics.aec`):

=============  ===============================================  =================
column         metric                                           talk types
=============  ===============================================  =================
erle_db        ERLE = 10 log10(sum mic^2 / sum out^2), dB       st
pesq_wb        PESQ-WB against the near-end speech              dt (synthetic)
si_sdr_db      SI-SDR against the near-end speech, dB           dt (synthetic)
aecmos_echo    AECMOS echo MOS (speechmos 16 kHz model)         all
aecmos_deg     AECMOS other-degradation MOS                     all
=============  ===============================================  =================

``EXP/aec_scores.csv`` has one row per clip (``id``, ``talk_type``, ``system``, clip metadata)
with the system's metrics, the reference's as ``<reference>_<metric>`` and the unprocessed
microphone's as ``input_<metric>`` side by side (empty where a metric does not apply). For clips
with an echo-path change, ERLE over time (100 ms frames, 50 ms hop; the echo and residual
measured without the near-end speech when it is known) goes to ``EXP/aec_erle_time.csv``
(``id, system, time_s, erle_db``). Each finished clip is appended to ``EXP/aec_scores.jsonl``
first, so a rerun skips what it scored; clips without an output go to ``EXP/errors.csv``
(stage ``aec-evaluate``) and make the exit status 1.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
from pathlib import Path

import numpy as np

from clarity_se.config import add_config_arguments

logger = logging.getLogger(__name__)

SCHEMA = "clarity_se.aec_score/1"
METRICS = ("erle_db", "pesq_wb", "si_sdr_db", "aecmos_echo", "aecmos_deg")
META_COLUMNS = ("id", "talk_type", "system", "layout", "split", "ser_db", "is_farend_nonlinear",
                "echo_path", "is_echo_path_change", "echo_path_change_s")
INPUT = "input"


def score_output(audio, output: np.ndarray, talk_type: str, *, pesq: bool = True,
                 aecmos_on: bool = True, erle_skip_s: float = 0.0) -> dict[str, float]:
    """The metrics of one output of one clip (``nan`` where a metric does not apply).

    Parameters
    ----------
    audio : clarity_se.data.aec_challenge.ClipAudio
        The clip's signals (``nearend`` may be None: real recordings).
    output : np.ndarray [shape=(time,)], float
        Echo canceller output (or the microphone, for the unprocessed row).
    talk_type : {"st", "dt", "nst"}
    pesq, aecmos_on : bool
        Compute PESQ-WB / AECMOS.
    erle_skip_s : float
        Seconds left out of ERLE, s.

    Returns
    -------
    dict
        ``{metric: value}`` for :data:`METRICS`.
    """
    from clarity_se.metrics.aec import aecmos, erle, pesq_wb, si_sdr

    scores = {m: math.nan for m in METRICS}
    output = np.asarray(output, dtype=np.float64)
    if talk_type == "st":
        scores["erle_db"] = erle(mic=audio.mic, output=output, skip_s=erle_skip_s)
    if talk_type == "dt" and audio.nearend is not None and audio.nearend.any():
        scores["si_sdr_db"] = si_sdr(reference=audio.nearend, estimate=output)
        if pesq:
            scores["pesq_wb"] = pesq_wb(reference=audio.nearend, processed=output)
    if aecmos_on:
        clip = [np.clip(x, -1.0, 1.0) for x in (audio.farend, audio.mic, output)]
        scores["aecmos_echo"], scores["aecmos_deg"] = aecmos(
            loopback=clip[0], mic=clip[1], enhanced=clip[2], talk_type=talk_type)
    return scores


def erle_time_course(audio, output: np.ndarray) -> tuple[list[float], list[float]]:
    """ERLE over time of an output; echo and residual without the near-end speech if known."""
    from clarity_se.metrics.aec import erle_over_time

    mic = audio.mic.astype(np.float64)
    out = np.asarray(output, dtype=np.float64)
    if audio.nearend is not None:
        mic, out = mic - audio.nearend, out - audio.nearend
    times, values = erle_over_time(mic=mic, output=out)
    return [round(float(t), 4) for t in times], [
        None if not np.isfinite(v) else round(float(v), 3) for v in values]


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def write_tables(exp: Path, records: list[dict], reference: str) -> tuple[Path, Path]:
    """``aec_scores.csv`` and ``aec_erle_time.csv`` from the score records (atomic)."""
    from clarity_se.data.audio_io import atomic_write_text

    prefixes = [("", "system")] + ([(f"{reference}_", reference)] if reference else []) + [
        (f"{INPUT}_", INPUT)]
    header = list(META_COLUMNS) + [p + m for p, _ in prefixes for m in METRICS]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for rec in records:
        row = [_fmt(rec.get(k)) for k in META_COLUMNS]
        for _, key in prefixes:
            row += [_fmt(rec["scores"].get(key, {}).get(m)) for m in METRICS]
        writer.writerow(row)
    scores_path = exp / "aec_scores.csv"
    atomic_write_text(scores_path, buffer.getvalue())
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "system", "time_s", "erle_db"])
    for rec in records:
        course = rec.get("erle_time")
        if not course:
            continue
        for key, values in course["values"].items():
            name = rec["system"] if key == "system" else key
            for t, v in zip(course["times"], values, strict=True):
                writer.writerow([rec["id"], name, t, "" if v is None else v])
    time_path = exp / "aec_erle_time.csv"
    atomic_write_text(time_path, buffer.getvalue())
    return scores_path, time_path


def summary(records: list[dict], reference: str) -> str:
    """Mean of each metric per talk type and system, as a text table."""
    keys = ["system"] + ([reference] if reference else []) + [INPUT]
    names = {"system": records[0]["system"] if records else "system"}
    lines = [f"{'talk':4s} {'n':>3s} {'system':14s} " + " ".join(f"{m:>11s}" for m in METRICS)]
    for talk in ("st", "dt", "nst"):
        rows = [r for r in records if r["talk_type"] == talk]
        if not rows:
            continue
        for key in keys:
            means = []
            for m in METRICS:
                vals = [r["scores"][key][m] for r in rows
                        if r["scores"].get(key) and r["scores"][key][m] is not None
                        and math.isfinite(r["scores"][key][m])]
                means.append(f"{np.mean(vals):11.2f}" if vals else f"{'-':>11s}")
            lines.append(f"{talk:4s} {len(rows):3d} {names.get(key, key):14s} " + " ".join(means))
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``clarity-se aec-evaluate -c config.yaml key=value ...``."""
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run the aec-evaluate stage.

    Returns
    -------
    int
        0 if every clip is scored, 1 if any lacked an output or failed, 2 for a bad config.
    """
    from omegaconf import OmegaConf
    from tqdm import tqdm

    from clarity_se.aec import build_aec
    from clarity_se.aec.config import load_aec_config
    from clarity_se.data.aec_challenge import read_clip, read_signal
    from clarity_se.data.audio_io import AudioFileError, write_audio
    from clarity_se.stages.aec import AECErrorLog, enhanced_path

    try:
        cfg = load_aec_config(args.config, args.overrides)
        from clarity_se.data.aec_challenge import load_aec_dataset

        clips = load_aec_dataset(cfg.path.root, cfg.path.split or None)
        reference_name = cfg.evaluate.reference_system
        # the reference gets the recipe's aec.* options (its own sub-node), its own name
        reference = (build_aec(OmegaConf.merge(cfg.aec, {"name": reference_name}))
                     if reference_name else None)
    except ValueError as exc:
        logger.error("aec-evaluate: %s", exc)
        return 2
    if cfg.evaluate.max_clips > 0:
        clips = clips[: cfg.evaluate.max_clips]
    exp = Path(cfg.path.exp_folder)
    exp.mkdir(parents=True, exist_ok=True)
    errors = AECErrorLog(exp, "aec-evaluate")
    jsonl = exp / "aec_scores.jsonl"
    done: dict[str, dict] = {}
    if jsonl.is_file():
        for line in jsonl.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of a killed run
            if rec.get("schema") == SCHEMA and rec.get("system") == cfg.aec.name:
                done[rec["id"]] = rec
    todo = [c for c in clips if c.id not in done]
    logger.info("aec-evaluate (%s vs %s): %d clips, %d to score", cfg.aec.name,
                reference_name or "-", len(clips), len(todo))
    opts = {"pesq": cfg.evaluate.pesq, "aecmos_on": cfg.evaluate.aecmos,
            "erle_skip_s": cfg.evaluate.erle_skip_s}
    for clip in tqdm(todo, desc="aec-evaluate", unit="clip", disable=None):
        try:
            audio = read_clip(clip)
            system_out = read_signal(enhanced_path(exp, clip), "enhanced")
            if system_out.shape != audio.mic.shape:
                raise ValueError(f"{enhanced_path(exp, clip)}: num_samples is "
                                 f"{system_out.size}, mic has {audio.mic.size}")
            outputs = {"system": system_out, INPUT: audio.mic}
            if reference is not None:
                cached = exp / "reference_signals" / reference_name / clip.enhanced_name
                if cached.is_file():
                    outputs[reference_name] = read_signal(cached, "reference output")
                else:
                    outputs[reference_name] = reference(audio.mic, audio.farend).output
                    write_audio(cached, outputs[reference_name], 16000)
            scores = {k: score_output(audio, v, clip.talk_type, **opts)
                      for k, v in outputs.items()}
        except (AudioFileError, ValueError, OSError, RuntimeError) as exc:
            errors.add(clip.id, exc)
            continue
        record = {
            "id": clip.id, "schema": SCHEMA, "talk_type": clip.talk_type,
            "system": cfg.aec.name, "layout": clip.layout, "split": clip.split,
            "ser_db": clip.ser_db,
            "is_farend_nonlinear": (None if clip.is_farend_nonlinear is None
                                    else int(clip.is_farend_nonlinear)),
            "echo_path": clip.meta.get("echo_path", ""),
            "is_echo_path_change": int(clip.echo_path_change_s is not None),
            "echo_path_change_s": clip.echo_path_change_s,
            "scores": {k: {m: (None if not math.isfinite(v) else v) for m, v in s.items()}
                       for k, s in scores.items()},
        }
        if clip.echo_path_change_s is not None:
            values = {}
            times: list[float] = []
            for key, out in outputs.items():
                times, values[key] = erle_time_course(audio, out)
            record["erle_time"] = {"times": times, "values": values}
        with open(jsonl, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        done[clip.id] = record
    records = [done[c.id] for c in clips if c.id in done]
    scores_path, _ = write_tables(exp, records, reference_name)
    print(summary(records, reference_name))
    print(f"{len(records)} of {len(clips)} clips scored -> {scores_path}")
    if errors.count:
        logger.error("aec-evaluate: %d clips failed, see %s", errors.count, errors.path)
        return 1
    return 0
