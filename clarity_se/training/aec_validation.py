r"""Held-out validation of the Deep Adaptive AEC while ``clarity-se aec-train`` runs.

With ``train.val_root`` set, every ``train.val_every`` steps (and after the last step) the
model is run as ``clarity-se aec`` runs it (:class:`~clarity_se.aec.deep_adaptive.DeepAdaptive`:
float64, frame by frame, post-filter on, the filter from zero in each clip) over every clip of
that folder and scored as ``clarity-se aec-evaluate`` scores it: ERLE and AECMOS echo MOS in
far-end single talk, PESQ-WB and AECMOS echo and degradation MOS in double talk
(:mod:`clarity_se.metrics.aec`). The selection score is

    score = mean PESQ-WB (dt) + mean AECMOS echo MOS (dt)

the two double-talk measures of the AEC Challenge that trade against each other (removing more
echo during double talk removes near-end speech too); far-end single talk is left out of the
score because the post-filter all but mutes it at any checkpoint worth keeping (ERLE above
40 dB). The weights of the best score so far go to ``EXP/deep_adaptive_best.pt`` and every
validation to a row of ``EXP/validation.csv`` (:data:`VAL_COLUMNS`).

Validation steps are fixed step numbers and training is deterministic for a seed, so a rerun on
the same machine keeps the same step; on another CPU, float differences in training may change
which snapshot wins.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: columns of ``EXP/validation.csv``
VAL_COLUMNS = ("step", "minutes", "erle_st_db", "aecmos_echo_st", "pesq_wb_dt",
               "aecmos_echo_dt", "aecmos_deg_dt", "score")


def load_validation_clips(root: Path) -> list:
    """The clips of a synthetic AEC folder that validation can score.

    Parameters
    ----------
    root : Path
        AEC Challenge synthetic folder (``meta.csv``, near-end and echo references).

    Returns
    -------
    list of clarity_se.data.aec_challenge.AECClip
        Far-end single-talk and double-talk clips (near-end single talk has no echo to score).

    Raises
    ------
    ValueError
        If the folder has no double-talk clip with its ``nearend_speech`` file (the score needs
        PESQ-WB in double talk); the message names ``train.val_root``.
    """
    from clarity_se.data.aec_challenge import load_aec_dataset

    clips = [c for c in load_aec_dataset(root) if c.talk_type in ("st", "dt")]
    if not any(c.talk_type == "dt" and c.nearend is not None for c in clips):
        raise ValueError(f"train.val_root: {root} has no double-talk clip with "
                         "nearend_speech (validation scores PESQ-WB in double talk)")
    return clips


def validate(model, clips: list, progress: bool = True) -> dict[str, float]:
    """Score a model on validation clips as ``clarity-se aec`` / ``aec-evaluate`` would.

    Parameters
    ----------
    model : clarity_se.models.deep_adaptive.DeepAdaptiveAEC
        Copied and cast to float64 for inference; not modified.
    clips : list of clarity_se.data.aec_challenge.AECClip
        From :func:`load_validation_clips`.
    progress : bool
        Show a ``tqdm`` bar over the clips.

    Returns
    -------
    dict
        :data:`VAL_COLUMNS` except ``step`` and ``minutes``: means of the finite values over
        the clips of each talk type (an all-but-silent output has infinite ERLE and is left out
        of the ERLE mean; ``nan`` where no clip gives a finite value).
    """
    from tqdm import tqdm

    from clarity_se.aec.deep_adaptive import DeepAdaptive
    from clarity_se.data.aec_challenge import read_clip
    from clarity_se.metrics.aec import aecmos, erle, pesq_wb

    canceller = DeepAdaptive(model)
    values: dict[str, list[float]] = {k: [] for k in VAL_COLUMNS[2:-1]}
    for clip in tqdm(clips, desc="validation", unit="clip", leave=False, disable=not progress):
        audio = read_clip(clip)
        out = canceller(audio.mic, audio.farend).output.astype(np.float64)
        echo, deg = aecmos(loopback=np.clip(audio.farend, -1, 1), mic=np.clip(audio.mic, -1, 1),
                           enhanced=np.clip(out, -1, 1), talk_type=clip.talk_type)
        if clip.talk_type == "st":
            values["erle_st_db"].append(erle(mic=audio.mic, output=out))
            values["aecmos_echo_st"].append(echo)
        else:
            values["aecmos_echo_dt"].append(echo)
            values["aecmos_deg_dt"].append(deg)
            if audio.nearend is not None and audio.nearend.any():
                values["pesq_wb_dt"].append(pesq_wb(reference=audio.nearend, processed=out))

    def mean(xs: list[float]) -> float:
        finite = [x for x in xs if np.isfinite(x)]
        return float(np.mean(finite)) if finite else math.nan

    scores = {k: mean(v) for k, v in values.items()}
    scores["score"] = scores["pesq_wb_dt"] + scores["aecmos_echo_dt"]
    return scores


def write_validation_csv(path: Path, rows: list[dict]) -> Path:
    """Write the validation history (:data:`VAL_COLUMNS`, one row per validation) atomically."""
    from clarity_se.data.audio_io import atomic_write_text

    lines = [",".join(VAL_COLUMNS)]
    for row in rows:
        lines.append(",".join(str(row[k]) if k == "step" else f"{row[k]:.4f}"
                              for k in VAL_COLUMNS))
    return atomic_write_text(path, "\n".join(lines) + "\n")
