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
dsml_db        desired-speech maintained level, dB (the         dt (synthetic)
               canceller as a gain on the mic; Ivry et al.
               2021, :mod:`clarity_se.metrics.dsml_resl`;
               ``evaluate.dsml_double_talk=true``: over the
               frames where near end and residual are both
               active, the authors' protocol)
resl_db        residual-echo suppression level, dB              dt (synthetic)
aecmos_echo    AECMOS echo MOS (speechmos 16 kHz model)         all
aecmos_deg     AECMOS other-degradation MOS                     all
=============  ===============================================  =================

``EXP/aec_scores.csv`` has one row per clip (``id``, ``talk_type``, ``system``, clip metadata;
``system`` is :func:`clarity_se.aec.config.system_label`, e.g. ``pbfdaf+res_unet@0.5``)
with the system's metrics, the reference's as ``<reference>_<metric>`` and the unprocessed
microphone's as ``input_<metric>`` side by side (empty where a metric does not apply); with
``evaluate.oracle=true`` also the oracle canceller's, the microphone minus the true echo
(synthetic clips), as ``oracle_<metric>``: the scores of perfect echo removal; and, where the
near-end speech is known, that speech alone, as ``oracle_clean_<metric>``: echo and near-end
noise both removed, nothing distorted (the bound for a system that also denoises). For clips
with an echo-path change, ERLE over time (100 ms frames, 50 ms hop; the echo and residual
measured without the near-end speech when it is known) goes to ``EXP/aec_erle_time.csv``
(``id, system, time_s, erle_db``). Each finished clip is appended to the journal
``EXP/aec_scores.jsonl`` first, with a fingerprint of the scoring options and of the files it
read (the output, the mic, far-end and near-end signals): a rerun reuses the clips whose
fingerprint is unchanged and rescores the others (``--force``: all); one run at a time writes
``EXP`` (``--wait`` to queue). Clips without an output go to ``EXP/errors.csv`` (stage
``aec-evaluate``). Exit status (:func:`clarity_se.stages.common.stage_main`): 0 all scored,
1 some clips failed, 2 bad config, data folder or environment.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
from pathlib import Path

import numpy as np

from clarity_se.config import add_config_arguments
from clarity_se.metrics.aec_scores import METRICS, score_output

logger = logging.getLogger(__name__)

SCHEMA = "clarity_se.aec_score/1"
META_COLUMNS = ("id", "talk_type", "system", "layout", "split", "ser_db", "is_farend_nonlinear",
                "echo_path", "is_echo_path_change", "echo_path_change_s")
INPUT = "input"
ORACLE = "oracle"
ORACLE_CLEAN = "oracle_clean"
ORACLES = (ORACLE, ORACLE_CLEAN)


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
    prefixes += [(f"{key}_", key) for key in ORACLES
                 if any(key in rec["scores"] for rec in records)]
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
    keys += [key for key in ORACLES if any(key in rec["scores"] for rec in records)]
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


def evaluate_config_hash(cfg) -> str:
    """Fingerprint of what changes a clip's scores: the system's name, the reference system and
    the scoring options."""
    from omegaconf import OmegaConf

    from clarity_se.aec.config import system_label
    from clarity_se.data.fingerprint import config_hash

    values = OmegaConf.to_container(cfg.evaluate, resolve=True)
    values.pop("max_clips", None)
    values["system"] = system_label(cfg.aec)
    return config_hash(values)


def run_aec_evaluate(cfg, *, force: bool = False, wait: bool = False) -> tuple:
    """Score every clip's output (resuming); return ``(n_done, n_failed, summary)``.

    Raises
    ------
    ValueError
        Bad config, data folder or reference system; folder in use.
    """
    from omegaconf import OmegaConf
    from tqdm import tqdm

    from clarity_se.aec import build_aec
    from clarity_se.aec.config import system_label
    from clarity_se.data.aec_challenge import load_aec_dataset, read_clip, read_signal
    from clarity_se.data.audio_io import AudioFileError, write_audio
    from clarity_se.data.experiment import Experiment
    from clarity_se.data.fingerprint import FileFingerprints
    from clarity_se.data.journal import Journal
    from clarity_se.stages.aec import AECErrorLog, enhanced_path

    clips = load_aec_dataset(cfg.path.root, cfg.path.split or None)
    reference_name = cfg.evaluate.reference_system
    # the reference gets the recipe's aec.* options (its own sub-node), its own name
    reference = (build_aec(OmegaConf.merge(cfg.aec, {"name": reference_name}))
                 if reference_name else None)  # fmt: skip
    if cfg.evaluate.max_clips > 0:
        clips = clips[: cfg.evaluate.max_clips]
    exp = Experiment(cfg.path.exp_folder)
    config = evaluate_config_hash(cfg)
    files = FileFingerprints()
    by_id = {c.id: c for c in clips}

    def inputs(clip_id: str) -> dict:
        clip = by_id[clip_id]
        roles = {"output": enhanced_path(exp.folder, clip), "mic": clip.mic,
                 "farend": clip.farend, "nearend": clip.nearend, "echo": clip.echo}
        return {k: v for k, v in roles.items() if v is not None and Path(v).is_file()}

    with exp.lock(wait=wait), Journal(exp.journal_path("aec_scores"), SCHEMA,
                                      exp.folder) as journal:  # fmt: skip
        errors = AECErrorLog(exp.folder, "aec-evaluate")
        plan = journal.plan(list(by_id), config, inputs, files, force=force)
        logger.info("aec-evaluate (%s vs %s): %d clips: %s", system_label(cfg.aec),
                    reference_name or "-", len(clips), plan.summary())  # fmt: skip
        opts = {"pesq": cfg.evaluate.pesq, "aecmos_on": cfg.evaluate.aecmos,
                "erle_skip_s": cfg.evaluate.erle_skip_s,
                "dsml_double_talk": cfg.evaluate.dsml_double_talk}  # fmt: skip
        for clip_id in tqdm(plan.todo, desc="aec-evaluate", unit="clip", disable=None):
            clip = by_id[clip_id]
            try:
                read = files.of(inputs(clip_id))
                audio = read_clip(clip)
                system_out = read_signal(enhanced_path(exp.folder, clip), "enhanced")
                if system_out.shape != audio.mic.shape:
                    raise ValueError(f"{enhanced_path(exp.folder, clip)}: num_samples is "
                                     f"{system_out.size}, mic has {audio.mic.size}")
                outputs = {"system": system_out, INPUT: audio.mic}
                if cfg.evaluate.oracle and audio.echo is not None:
                    outputs[ORACLE] = audio.mic - audio.echo
                if cfg.evaluate.oracle and audio.nearend is not None:
                    outputs[ORACLE_CLEAN] = audio.nearend
                if reference is not None:
                    cached = exp.folder / "reference_signals" / reference_name / clip.enhanced_name
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
                "system": system_label(cfg.aec), "layout": clip.layout, "split": clip.split,
                "ser_db": clip.ser_db,
                "is_farend_nonlinear": (None if clip.is_farend_nonlinear is None
                                        else int(clip.is_farend_nonlinear)),
                "echo_path": clip.meta.get("echo_path", ""),
                "is_echo_path_change": int(clip.echo_path_change_s is not None),
                "echo_path_change_s": clip.echo_path_change_s,
                "scores": {k: {m: (None if not math.isfinite(v) else v) for m, v in s.items()}
                           for k, s in scores.items()},
                "fingerprint": {"config": config, "inputs": read},
            }  # fmt: skip
            if clip.echo_path_change_s is not None:
                values = {}
                times: list[float] = []
                for key, out in outputs.items():
                    if key != ORACLE_CLEAN:  # no echo and no residual: nothing to follow
                        times, values[key] = erle_time_course(audio, out)
                record["erle_time"] = {"times": times, "values": values}
            journal.write(record)
        records = [journal.done(c.id) for c in clips if journal.done(c.id) is not None]
        scores_path, _ = write_tables(exp.folder, records, reference_name)
    print(summary(records, reference_name))
    text = (f"{len(records)} of {len(clips)} clips scored ({plan.summary()}) -> {scores_path}, "
            f"{errors.count} failed")  # fmt: skip
    if errors.count:
        text += f" (see {errors.path})"
    return len(records), errors.count, text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``clarity-se aec-evaluate -c config.yaml key=value ... [--force] [--wait]``."""
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run the aec-evaluate stage (exit status: :func:`clarity_se.stages.common.stage_main`)."""
    from clarity_se.aec.config import load_aec_config
    from clarity_se.stages.common import stage_main

    return stage_main("aec-evaluate", lambda: run_aec_evaluate(
        load_aec_config(args.config, args.overrides), force=args.force, wait=args.wait))
