"""``clarity-se aec``: run an echo canceller over every clip of an AEC Challenge folder.

``clarity-se aec -c recipes/aec/<system>/config.yaml path.root=ROOT path.exp_folder=EXP
aec.name=...`` reads ROOT in either AEC Challenge layout
(:mod:`clarity_se.data.aec_challenge`) and writes, per clip,
``EXP/enhanced_signals/nearend_mic_fileid_<N>_enhanced.wav`` (synthetic) or
``EXP/enhanced_signals/[sub/]<stem>_enhanced.wav`` (real; ``<stem>`` the mic name without
``_mic``): 16 kHz float32 mono, the microphone's length.

Resume and trust, as the enhancement stages: outputs are written atomically; each written clip
appends a record to the journal ``EXP/aec_manifest.jsonl`` (schema ``clarity_se.aec_enhanced/1``,
:class:`clarity_se.data.journal.Journal`) with a fingerprint of the ``aec.*`` options (and the
system's checkpoint, if any) and of the input files; a rerun reuses the clips whose fingerprint
is unchanged and recomputes the others (``--force``: all). One run at a time writes ``EXP``
(a second exits 2 naming the holder, or waits with ``--wait``). A clip that fails (missing or bad
file, non-finite output) goes to ``EXP/errors.csv`` (``stage,clip,error``; rows of an earlier
``aec`` run are dropped when it restarts) and the run continues. Exit status
(:func:`clarity_se.stages.common.stage_main`): 0 all done, 1 some clips failed, 2 bad config,
data folder or environment. The resolved config goes to ``EXP/aec_config.yaml``.
"""

from __future__ import annotations

import argparse
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
    """The echo canceller of ``cfg.aec`` (``aec.name``), followed by the residual-echo
    suppressor ``aec.res`` at ``aec.res_alpha`` when one is named
    (:func:`clarity_se.aec.res.build_chain`).

    Raises
    ------
    ValueError
        Unknown ``aec.name`` or ``aec.res``, bad options or checkpoint.
    """
    from clarity_se.aec import build_aec
    from clarity_se.aec.res import build_chain

    return build_chain(build_aec(cfg.aec), cfg.aec)


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


def aec_config_hash(cfg, system) -> str:
    """Fingerprint of what makes an output: the ``aec.*`` values (but ``device``) and the
    content of the system's checkpoint, if it has one."""
    from omegaconf import OmegaConf

    from clarity_se.data.fingerprint import config_hash, file_hash

    values = OmegaConf.to_container(cfg.aec, resolve=True)
    values.pop("device", None)
    checkpoint = getattr(system, "checkpoint_path", None)
    values["checkpoint_hash"] = file_hash(checkpoint) if checkpoint else ""
    res_checkpoint = getattr(system, "res_checkpoint_path", None)
    if res_checkpoint:
        values["res_checkpoint_hash"] = file_hash(res_checkpoint)
    return config_hash(values)


def clip_inputs(clip) -> dict:
    """``{role: path}`` of the files the canceller reads for ``clip``."""
    inputs = {"mic": clip.mic}
    if clip.farend is not None:
        inputs["farend"] = clip.farend
    return inputs


def run_aec(cfg, system=None, *, force: bool = False, wait: bool = False) -> tuple:
    """Cancel the echo of every clip (resuming); return ``(n_done, n_failed, summary)``.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        AEC config (``path.root``, ``path.exp_folder``, ``path.split``, ``aec.*``).
    system : callable, optional
        Already built canceller (default: built from ``aec.*``).
    force : bool
        Recompute every clip.
    wait : bool
        Wait for another run holding the experiment folder instead of failing.

    Raises
    ------
    ValueError
        Bad config, data folder or system; folder in use.
    """
    from omegaconf import OmegaConf
    from tqdm import tqdm

    from clarity_se.aec.config import system_label
    from clarity_se.data.aec_challenge import load_aec_dataset
    from clarity_se.data.audio_io import atomic_write_text, write_audio
    from clarity_se.data.experiment import Experiment
    from clarity_se.data.fingerprint import FileFingerprints
    from clarity_se.data.journal import Journal

    clips = load_aec_dataset(cfg.path.root, cfg.path.split or None)
    if system is None:
        system = build_system(cfg)
    exp = Experiment(cfg.path.exp_folder)
    config = aec_config_hash(cfg, system)
    files = FileFingerprints()
    by_id = {c.id: c for c in clips}
    with exp.lock(wait=wait), Journal(exp.journal_path("aec_manifest"), SCHEMA,
                                      exp.folder) as journal:  # fmt: skip
        atomic_write_text(exp.folder / "aec_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        errors = AECErrorLog(exp.folder, "aec")
        plan = journal.plan(list(by_id), config, lambda i: clip_inputs(by_id[i]), files,
                            force=force)  # fmt: skip
        label = system_label(cfg.aec)
        logger.info("aec (%s): %d clips: %s", label, len(clips), plan.summary())
        for clip_id in tqdm(plan.todo, desc=f"aec {label}", unit="clip", disable=None):
            clip = by_id[clip_id]
            try:
                read = files.of(clip_inputs(clip))
                out = run_clip(system, clip)
            except (ValueError, OSError, RuntimeError) as exc:
                errors.add(clip.id, exc)
                continue
            path = write_audio(enhanced_path(exp.folder, clip), out, SAMPLE_RATE)
            journal.write({
                "id": clip.id,
                "schema": SCHEMA,
                "talk_type": clip.talk_type,
                "system": label,
                "sample_rate": SAMPLE_RATE,
                "num_samples": int(out.size),
                "duration_s": out.size / SAMPLE_RATE,
                "path": exp.relative(path),
                "fingerprint": {"config": config, "inputs": read},
            })  # fmt: skip
        n_done = sum(1 for c in clips if journal.done(c.id) is not None)
    summary = f"{n_done} of {len(clips)} clips done ({plan.summary()}), {errors.count} failed"
    if errors.count:
        summary += f" (see {errors.path})"
    return n_done, errors.count, summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``clarity-se aec -c config.yaml key=value ... [--force] [--wait]``."""
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run the aec stage (exit status: :func:`clarity_se.stages.common.stage_main`)."""
    from clarity_se.aec.config import load_aec_config
    from clarity_se.stages.common import stage_main

    return stage_main("aec", lambda: run_aec(
        load_aec_config(args.config, args.overrides), force=args.force, wait=args.wait))
