r"""DSML and RESL: desired-speech maintained level and residual-echo suppression level.

Ivry, Cohen and Berdugo measure the two sides of residual-echo suppression separately by
treating the suppressor as a time-varying gain :math:`g(n) = \hat s(n) / e(n)` (output over
input) and applying that gain to the desired speech :math:`s(n)` and to the noisy residual echo
:math:`r(n) = e(n) - s(n)` at the suppressor's input:

.. math::

    \mathrm{DSML} = 10 \log_{10} \frac{\lVert \tilde s \rVert^2}{\lVert \tilde s - g s \rVert^2},
    \qquad \tilde s = \hat g\, s,\quad
    \hat g = \frac{\langle g s, s \rangle}{\lVert s \rVert^2}

    \mathrm{RESL} = 10 \log_{10} \frac{\lVert r \rVert^2}{\lVert g r \rVert^2}

:math:`\tilde s` is the attenuation-compensated target (Carbajal et al. 2018): a constant gain
is no distortion, so DSML is high when the gain does not vary with the speech and falls as the
suppressor carves into it; RESL is the attenuation of the residual echo and noise, in dB.

The gain is estimated per frame (20 ms, 10 ms hop at 16 kHz) as the RMS ratio of output to
input, regularised (:data:`GAIN_EPS` of the input's mean frame energy in the denominator) and
clipped to [0, 1]; frame gains are interpolated linearly between frame centres (held constant
before the first and after the last), so a constant gain stays constant. Both
levels are capped at :data:`CAP_DB`. With ``double_talk_only`` the norms run over the frames
where both the speech and the residual are within :data:`ACTIVE_DB` of their loudest frame (the
authors evaluate during double talk).

Deviations: the authors' gain is a sample ratio during double talk; a frame RMS ratio is used
here because a sample ratio is undefined at zero crossings of :math:`e(n)`; the frame and cap
constants are this package's choices.

References
----------
A. Ivry, I. Cohen, B. Berdugo, "Objective metrics to evaluate residual-echo suppression during
double-talk", Proc. IEEE WASPAA 2021, pp. 101-105 (arXiv:2107.07471).
G. Carbajal, R. Serizel, E. Vincent, E. Humbert, "Multiple-input neural network-based residual
echo suppression", Proc. ICASSP 2018, pp. 231-235.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ACTIVE_DB", "CAP_DB", "GAIN_EPS", "dsml_resl", "suppressor_gain"]

#: frame length and hop at 16 kHz, samples (20 ms, 10 ms)
FRAME = 320
HOP = 160
#: regulariser of the gain's denominator, relative to the input's mean frame energy
GAIN_EPS = 1e-6
#: both levels are capped at this value, dB (a perfect gain would give +inf)
CAP_DB = 100.0
#: a frame is active when its energy is within this of the loudest frame, dB
ACTIVE_DB = 40.0


def _frames(x: np.ndarray) -> np.ndarray:
    n = max(1, int(np.ceil(max(len(x) - FRAME, 0) / HOP)) + 1)
    padded = np.zeros((n - 1) * HOP + FRAME)
    padded[: len(x)] = x
    idx = np.arange(FRAME)[None, :] + HOP * np.arange(n)[:, None]
    return padded[idx]


def suppressor_gain(*, suppressor_input: np.ndarray, output: np.ndarray) -> np.ndarray:
    """The suppressor as a time-varying gain in [0, 1], per sample.

    Parameters
    ----------
    suppressor_input : np.ndarray [shape=(time,)], float
        :math:`e(n)`, the suppressor's input (16 kHz).
    output : np.ndarray [shape=(time,)], float
        :math:`\\hat s(n)`, its output, same length.

    Returns
    -------
    np.ndarray [shape=(time,)], float64
        Frame RMS ratios, regularised, clipped to [0, 1], interpolated between frame centres.

    Raises
    ------
    ValueError
        Shapes differ or are not 1-D.
    """
    e = np.asarray(suppressor_input, dtype=np.float64)
    y = np.asarray(output, dtype=np.float64)
    if e.ndim != 1 or e.shape != y.shape:
        raise ValueError(f"suppressor_input and output: 1-D of equal length expected, got "
                         f"{e.shape} and {y.shape}")  # fmt: skip
    fe, fy = _frames(e), _frames(y)
    energy_e = (fe**2).sum(1)
    eps = GAIN_EPS * max(float(energy_e.mean()), 1e-30)
    gains = np.clip(np.sqrt((fy**2).sum(1) / (energy_e + eps)), 0.0, 1.0)
    centres = HOP * np.arange(len(gains)) + FRAME / 2
    return np.interp(np.arange(len(e)), centres, gains)


def _level_db(num: float, den: float) -> float:
    if num <= 0.0:
        return 0.0 if den <= 0.0 else -CAP_DB
    if den <= num * 10 ** (-CAP_DB / 10):
        return CAP_DB
    return float(min(CAP_DB, 10 * np.log10(num / den)))


def dsml_resl(
    *,
    suppressor_input: np.ndarray,
    output: np.ndarray,
    speech: np.ndarray,
    double_talk_only: bool = False,
    return_speech_gain: bool = False,
) -> tuple[float, float] | tuple[float, float, float]:
    """DSML and RESL of a residual-echo suppressor (or of a whole canceller: input = mic).

    Parameters
    ----------
    suppressor_input : np.ndarray [shape=(time,)], float
        :math:`e(n)`: the suppressor's input (a linear AEC's output, or the microphone).
    output : np.ndarray [shape=(time,)], float
        :math:`\\hat s(n)`: its output.
    speech : np.ndarray [shape=(time,)], float
        :math:`s(n)`: the near-end speech contained in ``suppressor_input`` (known for rendered
        data); the residual is ``suppressor_input - speech``.
    double_talk_only : bool
        Sum the norms over the frames where both speech and residual are active only.
    return_speech_gain : bool
        Also return the attenuation compensation :math:`\\hat g` (the speech's level kept).

    Returns
    -------
    (dsml_db, resl_db) : tuple of float
        dB, each capped at :data:`CAP_DB`; a constant gain c gives DSML = cap and
        RESL = -20 log10(c); g = 1 gives RESL 0 dB; g = 0 gives DSML 0 dB and RESL = cap.
        With ``return_speech_gain`` a third element, :math:`\\hat g` (linear, in [0, 1]);
        ``resl_db + 20 log10(g_hat)`` is the residual's attenuation relative to the speech's,
        which a constant gain leaves unchanged.

    Raises
    ------
    ValueError
        Shapes differ or are not 1-D.
    """
    e = np.asarray(suppressor_input, dtype=np.float64)
    s = np.asarray(speech, dtype=np.float64)
    if s.shape != e.shape:
        raise ValueError(f"speech: shape {s.shape}, suppressor_input {e.shape}")
    g = suppressor_gain(suppressor_input=e, output=output)
    r = e - s
    mask = np.ones_like(e, dtype=bool)
    if double_talk_only:
        fs, fr = (_frames(x) for x in (s, r))
        es, er = (fs**2).sum(1), (fr**2).sum(1)
        floor = 10 ** (-ACTIVE_DB / 10)
        active = (es > es.max() * floor) & (er > er.max() * floor)
        mask = np.zeros(len(active) * HOP + FRAME, dtype=bool)
        for k in np.flatnonzero(active):
            mask[k * HOP : k * HOP + HOP] = True
        mask = mask[: len(e)]
    s, r, g = s[mask], r[mask], g[mask]
    speech_energy = float(s @ s)
    g_hat = float((g * s) @ s) / speech_energy if speech_energy > 0 else 0.0
    target = g_hat * s
    dsml = _level_db(float(target @ target), float(((target - g * s) ** 2).sum()))
    resl = _level_db(float(r @ r), float(((g * r) ** 2).sum()))
    return (dsml, resl, g_hat) if return_speech_gain else (dsml, resl)
