"""The echo-track metrics of one canceller output of one clip, as ``clarity-se aec-evaluate``
scores it (the table of :mod:`clarity_se.stages.aec_evaluate`) and ``clarity-se aec-train``
validates (:mod:`clarity_se.training.aec_validation`): ERLE in far-end single talk; PESQ-WB,
SI-SDR, DSML and RESL in double talk against the near-end speech; AECMOS in every talk type
(:mod:`clarity_se.metrics.aec`, :mod:`clarity_se.metrics.dsml_resl`).
"""

from __future__ import annotations

import math

import numpy as np

#: the per-clip metric columns, in table order
METRICS = ("erle_db", "pesq_wb", "si_sdr_db", "dsml_db", "resl_db", "aecmos_echo", "aecmos_deg")


def score_output(audio, output: np.ndarray, talk_type: str, *, pesq: bool = True,
                 aecmos_on: bool = True, erle_skip_s: float = 0.0,
                 dsml_double_talk: bool = False) -> dict[str, float]:
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
    dsml_double_talk : bool
        DSML and RESL over the double-talk frames only
        (:func:`~clarity_se.metrics.dsml_resl.dsml_resl` ``double_talk_only``).

    Returns
    -------
    dict
        ``{metric: value}`` for :data:`METRICS`.
    """
    from clarity_se.metrics.aec import aecmos, erle, pesq_wb, si_sdr
    from clarity_se.metrics.dsml_resl import dsml_resl

    scores = {m: math.nan for m in METRICS}
    output = np.asarray(output, dtype=np.float64)
    if talk_type == "st":
        scores["erle_db"] = erle(mic=audio.mic, output=output, skip_s=erle_skip_s)
    if talk_type == "dt" and audio.nearend is not None and audio.nearend.any():
        scores["si_sdr_db"] = si_sdr(reference=audio.nearend, estimate=output)
        # the whole canceller as a time-varying gain on the microphone (Ivry et al. 2021)
        scores["dsml_db"], scores["resl_db"] = dsml_resl(
            suppressor_input=audio.mic, output=output, speech=audio.nearend,
            double_talk_only=dsml_double_talk)
        if pesq:
            scores["pesq_wb"] = pesq_wb(reference=audio.nearend, processed=output)
    if aecmos_on:
        clip = [np.clip(x, -1.0, 1.0) for x in (audio.farend, audio.mic, output)]
        scores["aecmos_echo"], scores["aecmos_deg"] = aecmos(
            loopback=clip[0], mic=clip[1], enhanced=clip[2], talk_type=talk_type)
    return scores
