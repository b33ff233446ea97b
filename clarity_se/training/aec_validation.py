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
40 dB). The weights of the best score so far go to ``EXP/deep_adaptive_best.pt``, every
validation to a row of ``EXP/validation.csv`` (:data:`VAL_COLUMNS`) and to the plot
``EXP/validation.png``. WebRTC AEC3 (:data:`REFERENCE_SYSTEM`) is scored once on the same clips
and written beside them: the AEC Challenge's bars are relative to it.

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
VAL_COLUMNS = ("system", "step", "minutes", "erle_st_db", "aecmos_echo_st", "pesq_wb_dt",
               "aecmos_echo_dt", "aecmos_deg_dt", "score")
#: the scores: every column after ``minutes``
SCORE_COLUMNS = VAL_COLUMNS[3:]
#: the validation column of each (talk type, ``aec-evaluate`` metric)
_COLUMN_SOURCE = {"erle_st_db": ("st", "erle_db"), "aecmos_echo_st": ("st", "aecmos_echo"),
                  "pesq_wb_dt": ("dt", "pesq_wb"), "aecmos_echo_dt": ("dt", "aecmos_echo"),
                  "aecmos_deg_dt": ("dt", "aecmos_deg")}
#: the system scored once beside the model (the AEC Challenge's classical reference)
REFERENCE_SYSTEM = "webrtc_aec3"


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


def validate(model, clips: list, progress: bool = True, gains_db: tuple[float, ...] = (0.0,),
             kalman_selection: float | None = None,
             level_target_db: float = 0.0) -> dict[str, float]:
    """:func:`score_system` for a model, run as ``clarity-se aec`` runs it
    (:class:`~clarity_se.aec.deep_adaptive.DeepAdaptive`: a float64 copy, post-filter on, the
    Kalman selection at ``kalman_selection``, default the canceller's
    :data:`~clarity_se.aec.deep_adaptive.KALMAN_SELECTION`, the input-level normalisation at
    ``level_target_db`` (0: off, the canceller's default); the model is not modified)."""
    from clarity_se.aec.deep_adaptive import KALMAN_SELECTION, DeepAdaptive

    select = KALMAN_SELECTION if kalman_selection is None else kalman_selection
    return score_system(DeepAdaptive(model, kalman_selection=select,
                                     level_target_db=level_target_db), clips, progress, gains_db)


def validate_reference(clips: list, progress: bool = True,
                       gains_db: tuple[float, ...] = (0.0,)) -> dict[str, float]:
    """:func:`score_system` for :data:`REFERENCE_SYSTEM` (WebRTC AEC3) on the same clips."""
    from clarity_se.aec import build_aec_named

    return score_system(build_aec_named(REFERENCE_SYSTEM), clips, progress, gains_db)


def score_system(canceller, clips: list, progress: bool = True,
                 gains_db: tuple[float, ...] = (0.0,)) -> dict[str, float]:
    """Score an echo canceller on validation clips as ``clarity-se aec-evaluate`` would.

    Parameters
    ----------
    canceller : clarity_se.aec.base.EchoCanceller
        ``(mic, farend) -> EchoCancellerOutput`` at 16 kHz, whole clips.
    clips : list of clarity_se.data.aec_challenge.AECClip
        From :func:`load_validation_clips`.
    progress : bool
        Show a ``tqdm`` bar over the clips.
    gains_db : tuple of float
        Input gains, dB: each clip is scored once per gain, the whole scene scaled
        (:meth:`~clarity_se.data.aec_challenge.ClipAudio.scaled`), and the means pool them;
        ``(0.0,)``, the clips as recorded, by default.

    Returns
    -------
    dict
        :data:`SCORE_COLUMNS`: means of the finite values over the clips (and gains) of each
        talk type
        (an all-but-silent output has infinite ERLE and is left out of the ERLE mean; ``nan``
        where no clip gives a finite value), and ``score``.
    """
    from tqdm import tqdm

    from clarity_se.data.aec_challenge import read_clip
    from clarity_se.metrics.aec_scores import score_output

    values: dict[str, list[float]] = {k: [] for k in SCORE_COLUMNS[:-1]}
    for clip in tqdm(clips, desc="validation", unit="clip", leave=False, disable=not progress):
        recorded = read_clip(clip)
        for gain in gains_db:
            audio = recorded.scaled(gain) if gain else recorded
            scores = score_output(audio, canceller(audio.mic, audio.farend).output,
                                  clip.talk_type)
            for column, (talk_type, metric) in _COLUMN_SOURCE.items():
                if clip.talk_type == talk_type:
                    values[column].append(scores[metric])

    def mean(xs: list[float]) -> float:
        finite = [x for x in xs if np.isfinite(x)]
        return float(np.mean(finite)) if finite else math.nan

    scores = {k: mean(v) for k, v in values.items()}
    scores["score"] = scores["pesq_wb_dt"] + scores["aecmos_echo_dt"]
    return scores


def write_validation_csv(path: Path, rows: list[dict]) -> Path:
    """Write the validation history atomically: :data:`VAL_COLUMNS`, one row per validation
    (``system`` ``deep_adaptive``) and the reference's row (``system`` ``webrtc_aec3``, empty
    ``step`` and ``minutes``) if ``rows`` holds one."""
    from clarity_se.data.audio_io import atomic_write_text

    def cell(row: dict, key: str) -> str:
        value = row.get(key)
        if value is None or isinstance(value, str):
            return value or ""
        return str(value) if key == "step" else f"{value:.4f}"

    lines = [",".join(VAL_COLUMNS)] + [",".join(cell(r, k) for k in VAL_COLUMNS) for r in rows]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def plot_validation(path: Path, rows: list[dict]) -> Path:
    """Draw the validation history: PESQ-WB and AECMOS echo MOS in double talk against the
    training step, the reference system as dashed lines, and the two against each other (the
    trade-off each checkpoint sits on). Written atomically as PNG.

    Parameters
    ----------
    path : Path
        ``EXP/validation.png``.
    rows : list of dict
        As for :func:`write_validation_csv`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from clarity_se.data.audio_io import atomic_path

    model = [r for r in rows if r["system"] != REFERENCE_SYSTEM]
    ref = next((r for r in rows if r["system"] == REFERENCE_SYSTEM), None)
    steps = [r["step"] for r in model]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, key, label in ((axes[0], "pesq_wb_dt", "PESQ-WB, double talk"),
                           (axes[1], "aecmos_echo_dt", "AECMOS echo MOS, double talk")):
        ax.plot(steps, [r[key] for r in model], "o-", label="deep_adaptive")
        if ref is not None:
            ax.axhline(ref[key], ls="--", color="grey", label=REFERENCE_SYSTEM)
        ax.set_xlabel("training step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[2]
    sc = ax.scatter([r["aecmos_echo_dt"] for r in model], [r["pesq_wb_dt"] for r in model],
                    c=steps, cmap="viridis")
    fig.colorbar(sc, ax=ax, label="step")
    if ref is not None:
        ax.scatter([ref["aecmos_echo_dt"]], [ref["pesq_wb_dt"]], marker="x", color="grey",
                   label=REFERENCE_SYSTEM)
        ax.legend(fontsize=8)
    ax.set_xlabel("AECMOS echo MOS, double talk")
    ax.set_ylabel("PESQ-WB, double talk")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path
