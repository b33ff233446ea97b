"""Control shared by the classical adaptive filters (``nlms``, ``pbfdaf``).

- :class:`FarEndGate`: adapt only while the far end is active, relative to its own long-term
  level (scale-aware) and above an absolute floor.
- :func:`regularisation`: the NLMS regulariser scaled by the long-term far-end power, so the
  filter behaves the same at any input level and cannot blow up on a near-silent far end.
- :class:`GccPhatDelayEstimator`: bulk delay of the echo behind the loopback by GCC-PHAT
  (Knapp & Carter 1976) on smoothed cross-spectra; confirmed estimates only.
- :class:`LeakEstimator`: the double-talk-robust step size of Valin (2007): the echo leakage
  ``eta`` is regressed from the co-fluctuation of the error and echo-estimate power spectra;
  the step is ``min(mu_max, eta |Y|^2 / |E|^2)`` (residual echo over error), which shrinks by
  itself when near-end speech dominates the error.
- :class:`TwoPathSelector`: foreground / background filters (Ochiai et al. 1977; as in Speex
  MDF): the background adapts, the foreground (whose error is the output) takes the
  background's weights only when the background cancels more, and is cleared when it adds
  energy to the microphone signal, so the output never carries more energy than the
  microphone for long (ERLE >= 0 dB).

All decisions are taken on block boundaries from past samples only, so they neither add
latency nor depend on how a stream is cut into blocks.

References
----------
J.-M. Valin, "On adjusting the learning rate in frequency domain echo cancellation with
double-talk", IEEE Trans. ASLP 15(3), 2007, eqs. (14)-(21).
C. Knapp and G. Carter, "The generalized correlation method for estimation of time delay",
IEEE Trans. ASSP 24(4), 1976.
K. Ochiai, T. Araseki and T. Ogihara, "Echo canceler with two echo path models", IEEE Trans.
Commun. 25(6), 1977.
"""

from __future__ import annotations

import numpy as np

#: Absolute far-end activity floor, power (full scale 1.0): -70 dBFS.
ABS_ACTIVITY_POWER = 1e-7
#: Far-end frames more than this many dB below the long-term active level are inactive.
RELATIVE_ACTIVITY_DB = 30.0


class FarEndGate:
    """Far-end activity from block power, relative to the long-term active level.

    A block is active when its mean power exceeds both :data:`ABS_ACTIVITY_POWER` and the
    long-term active level minus :data:`RELATIVE_ACTIVITY_DB`. The long-term level is a slow
    average (time constant about 2 s) of the power of active blocks.

    Parameters
    ----------
    block : int
        Samples per block.
    sample_rate : int
        Hz.
    """

    def __init__(self, block: int, sample_rate: int = 16000) -> None:
        self.level = 0.0
        self._alpha = min(1.0, block / (2.0 * sample_rate))

    def update(self, power: float) -> bool:
        """Feed a block's mean power (full scale 1.0); return whether it is active."""
        if power <= ABS_ACTIVITY_POWER:
            return False
        active = power > self.level * 10 ** (-RELATIVE_ACTIVITY_DB / 10)
        if active:
            alpha = 0.5 if self.level == 0.0 else self._alpha
            self.level += alpha * (power - self.level)
        return active


def regularisation(long_term_power: float, n_taps: int, relative: float = 1e-2) -> float:
    """NLMS regulariser ``delta`` for an input-energy normaliser over ``n_taps`` samples.

    ``delta = relative * n_taps * P_far + n_taps * 1e-10``: proportional to the long-term
    far-end power ``P_far`` (so the step is level independent) plus a floor at -100 dBFS.
    """
    return relative * n_taps * long_term_power + n_taps * 1e-10


class GccPhatDelayEstimator:
    """Bulk delay of the microphone behind the far end by GCC-PHAT, on confirmed peaks.

    Each :meth:`update` correlates a ``window``-sample microphone frame ``mic[t-W, t)`` with
    the far-end span that covers every searched lag, ``far[t - W - max_lag, t - min_lag)``
    (so every lag sees the whole frame: no window bias towards short lags), adds the
    cross-spectrum to an exponentially smoothed average (factor ``smoothing``) and searches
    the PHAT-weighted cross-correlation for its peak in ``[min_lag, max_lag]``. A peak counts
    if it stands ``min_peak_ratio`` times above the mean magnitude of the searched lags; a
    new delay is returned once three consecutive peaks agree within 2 samples and differ from
    the current one by ``min_change`` or more.

    Parameters
    ----------
    window : int
        Microphone frame length, samples.
    min_lag, max_lag : int
        Searched lags, samples (negative: the microphone leads the loopback; ``-min_lag`` far-end
        samples beyond ``t`` must be available).
    smoothing : float
        Cross-spectrum averaging factor per update.
    """

    def __init__(self, window: int = 1024, min_lag: int = -64, max_lag: int = 960,
                 smoothing: float = 0.8, min_peak_ratio: float = 6.0,
                 min_change: int = 4) -> None:
        if not min_lag < max_lag or window < 64:
            raise ValueError(f"need min_lag < max_lag and window >= 64, got {min_lag}, "
                             f"{max_lag}, {window}")
        self.window = window
        self.min_lag, self.max_lag = min_lag, max_lag
        self.far_length = window + max_lag - min_lag
        self.n_fft = 1 << int(np.ceil(np.log2(self.far_length + window)))
        self.smoothing = smoothing
        self.min_peak_ratio = min_peak_ratio
        self.min_change = min_change
        self._cross = np.zeros(self.n_fft // 2 + 1, dtype=np.complex128)
        self._candidates: list[int] = []
        self.delay: int | None = None
        self._lags = np.arange(min_lag, max_lag + 1)

    def update(self, farend: np.ndarray, mic: np.ndarray) -> int | None:
        """Add a frame pair; return a newly confirmed delay or None.

        Parameters
        ----------
        farend : np.ndarray [shape=(window + max_lag - min_lag,)]
            ``far[t - W - max_lag, t - min_lag)``.
        mic : np.ndarray [shape=(window,)]
            ``mic[t - W, t)``.
        """
        f = np.fft.rfft(farend, self.n_fft)
        m = np.fft.rfft(mic, self.n_fft)
        self._cross = self.smoothing * self._cross + (1 - self.smoothing) * np.conj(f) * m
        magnitude = np.abs(self._cross)
        if magnitude.max() <= 0:
            return None
        phat = self._cross / np.maximum(magnitude, 1e-12 * magnitude.max())
        # r[k] = sum_n far[n] mic[n + k]; mic index 0 is far index max_lag - min_lag... so
        # the lag tau (mic[t] ~ far[t - tau]) sits at k = tau - max_lag (mod n_fft)
        r = np.fft.irfft(phat, self.n_fft)[(self._lags - self.max_lag) % self.n_fft]
        k = int(np.argmax(r))
        if r[k] < self.min_peak_ratio * np.mean(np.abs(r)):
            self._candidates = []
            return None
        lag = int(self._lags[k])
        self._candidates = [c for c in self._candidates[-2:] if abs(c - lag) <= 2] + [lag]
        if len(self._candidates) == 3 and (self.delay is None
                                           or abs(lag - self.delay) >= self.min_change):
            self.delay = lag
            return lag
        return None


def needs_no_realign(lag: int, d0: int, pre_delay: int, n_taps: int) -> bool:
    """True if a direct path at ``lag`` lies in the comfortable part of a filter spanning
    lags ``[d0, d0 + n_taps)``: at least ``pre_delay / 2`` taps after its start and within
    its first quarter (realigning drops the taps that leave the span)."""
    return d0 + pre_delay // 2 <= lag < d0 + n_taps // 4


class LeakEstimator:
    """Echo leakage ``eta`` of Valin (2007) from error and echo-estimate power spectra.

    ``Pey = sum_f (|E|^2 - <|E|^2>)(|Y|^2 - <|Y|^2>)``, ``Pyy = sum_f (|Y|^2 - <|Y|^2>)^2``
    (``< >``: slow per-bin averages), each smoothed with an adaptive factor
    ``alpha = min(beta0 Syy, beta_max See) / See`` (fast when the echo estimate dominates the
    error, frozen by near-end speech); ``eta = clip(Pey / Pyy, 0.005, 1)``.

    Parameters
    ----------
    n_bins : int
        Spectrum bins per block.
    block : int
        Samples per block.
    sample_rate : int
        Hz.
    """

    def __init__(self, n_bins: int, block: int, sample_rate: int = 16000) -> None:
        self.beta0 = 2.0 * block / sample_rate
        self.beta_max = 0.5 * block / sample_rate
        self.spec_average = block / sample_rate
        self._e_mean = np.zeros(n_bins)
        self._y_mean = np.zeros(n_bins)
        self._pey = 1.0
        self._pyy = 1.0
        self.leak = 1.0

    def update(self, e2: np.ndarray, y2: np.ndarray) -> float:
        """Feed ``|E|^2``, ``|Y|^2`` of a block (``[n_bins]``); return the leakage."""
        see, syy = float(np.sum(e2)), float(np.sum(y2))
        de, dy = e2 - self._e_mean, y2 - self._y_mean
        pey, pyy = float(np.sum(de * dy)), float(np.sum(dy * dy))
        self._e_mean += self.spec_average * de
        self._y_mean += self.spec_average * dy
        if see <= 0:
            return self.leak
        alpha = min(self.beta0 * syy, self.beta_max * see) / see
        self._pey += alpha * (pey - self._pey)
        self._pyy += alpha * (pyy - self._pyy)
        self._pey = min(max(self._pey, 0.005 * self._pyy), self._pyy)
        self.leak = self._pey / self._pyy if self._pyy > 0 else 1.0
        return self.leak


def step_size(leak: float, e2: np.ndarray, y2: np.ndarray, sey: float,
              mu_max: float) -> np.ndarray:
    """Double-talk-robust step per bin (Valin 2007, eq. (21), as refined in Speex MDF).

    The optimal NLMS step is the residual-echo-to-error ratio. Per bin the residual echo is
    ``leak |Y_f|^2``; broadband, the ratio ``RER`` is at least ``3 leak Syy / See`` and at
    least the squared correlation ``Sey^2 / (See Syy)`` of error and echo estimate (large
    while the filter is far from the echo path, small when near-end speech fills the error),
    at most 0.5::

        mu_f = min(mu_max, 0.7 leak |Y_f|^2 / |E_f|^2 + 0.3 RER)

    Parameters
    ----------
    leak : float
        Echo leakage (:class:`LeakEstimator`).
    e2, y2 : np.ndarray [shape=(bins,)]
        Power spectra of the error and the echo estimate of the block.
    sey : float
        Inner product of error and echo estimate over the block (time domain; same scale as
        the sums of ``e2``, ``y2`` by Parseval).
    mu_max : float
        Upper bound.

    Returns
    -------
    np.ndarray [shape=(bins,)]
        Steps in ``[0, mu_max]``.
    """
    see, syy = float(np.sum(e2)), float(np.sum(y2))
    if see <= 0 or syy <= 0:
        return np.zeros_like(e2)
    rer = min(0.5, max(3.0 * leak * syy / see, sey * sey / (see * syy)))
    return np.minimum(mu_max, 0.7 * leak * y2 / np.maximum(e2, 1e-30) + 0.3 * rer)


class TwoPathSelector:
    """Foreground/background decisions from block powers.

    Every block gets the powers of the microphone ``d``, the background error ``e_b`` and the
    foreground error ``e_f`` (output), smoothed over about 40 ms:

    - ``copy`` when, for 20 ms of consecutive blocks, the smoothed background error is at
      least 1 dB below both the foreground's and the microphone's and the current block's is
      below the foreground's (the foreground takes the background weights);
    - ``clear`` when the smoothed foreground error exceeds the microphone's and the current
      block agrees (the foreground is reset to zero: the output is the microphone signal,
      exactly, until the background is better again);
    - ``restore`` when the smoothed background error is 6 dB above both the microphone's and
      the foreground's (diverged: the background restarts from the foreground weights).

    Parameters
    ----------
    block : int
        Samples per block.
    sample_rate : int
        Hz.
    """

    def __init__(self, block: int, sample_rate: int = 16000) -> None:
        self._alpha = min(1.0, block / (0.04 * sample_rate))
        self._needed = max(1, round(0.02 * sample_rate / block))
        self._count = 0
        self._d = self._b = self._f = 0.0

    def update(self, p_d: float, p_b: float, p_f: float) -> str:
        """Return ``"copy"``, ``"clear"``, ``"restore"`` or ``""`` for this block."""
        a = self._alpha
        self._d += a * (p_d - self._d)
        self._b += a * (p_b - self._b)
        self._f += a * (p_f - self._f)
        if self._b < 0.8 * self._f and self._b < 0.8 * self._d and p_b < p_f:
            self._count += 1
        else:
            self._count = 0
        if self._count >= self._needed:
            self._count = 0
            self._f = self._b
            return "copy"
        if self._f > self._d and p_f > p_d:
            self._f = self._d
            return "clear"
        if self._b > 4.0 * self._d and self._b > 4.0 * self._f:
            self._b = self._f
            return "restore"
        return ""
