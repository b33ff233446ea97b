"""``pbfdaf``: partitioned-block frequency-domain adaptive filter (classical baseline).

The echo path is an FIR filter of ``partitions x block`` taps (default 16 x 128 = 2048 taps,
128 ms at 16 kHz) split into ``P`` partitions of ``N`` taps, each adapted in the frequency domain
with overlap-save blocks of ``N`` samples and FFTs of ``2N`` (Soo & Pang 1990; Borrallo & Otero
1992; the multidelay filter of Speex / Valin 2007)::

    X_k      = FFT(x[kN - N .. kN + N))                    far end, aligned by the bulk delay
    Y_k      = sum_p W_p X_{k-p}        y_k = last N of IFFT(Y_k)      echo estimate
    e_k      = d_k - y_k                E_k = FFT([0_N, e_k])
    W_p     += constrain(mu_f conj(X_{k-p}) E_k / (sum_p |X_{k-p}|^2 + delta))

``constrain`` zeroes the second half of the impulse response of each update (the gradient
constraint that makes every partition a linear, not circular, convolution).

Both signals are pre-emphasised by ``1 - 0.9 z^-1`` before the filter and the error is
de-emphasised back (as in Speex MDF: the broadband step statistics are less dominated by low
frequencies). Control (:mod:`clarity_se.aec.adaptive`): adaptation only while the far end is
active (:class:`~clarity_se.aec.adaptive.FarEndGate`), ``delta`` scaled by the long-term
far-end power, a per-bin step from Valin's leakage
(:func:`~clarity_se.aec.adaptive.step_size`, double-talk robust; ``mu_init`` until the filter
has adapted), a foreground/background pair (the foreground's error is the output; exactly the
microphone signal while the foreground is cleared), and the bulk delay estimated by GCC-PHAT:
when the estimated direct path leaves the first quarter of the filter, the filter (and its
weights) move so that its first tap sits ``pre_delay`` samples before it, at most
``lookahead`` samples ahead of the microphone.

Latency: the output of a block is known when the block and ``lookahead`` far-end samples
beyond it have arrived: ``block - 1 + lookahead`` samples (default 127 + 64 = 191 samples,
11.9 ms; the AEC Challenge allows 20 ms). No learned parameters.

References
----------
J.-S. Soo and K. K. Pang, "Multidelay block frequency domain adaptive filter", IEEE Trans. ASSP
38(2), 1990. J. M. P. Borrallo and M. G. Otero, "On the implementation of a partitioned block
frequency domain adaptive filter (PBFDAF) for long acoustic echo cancellation", Signal
Processing 27(3), 1992. J.-M. Valin, IEEE Trans. ASLP 15(3), 2007 (step control).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from clarity_se.aec import register_aec
from clarity_se.aec.adaptive import LeakEstimator, regularisation, step_size
from clarity_se.aec.two_path import (
    TwoPathCanceller,
    TwoPathCore,
    check_common,
    config_from_options,
    shift_taps,
)


@dataclass(frozen=True)
class PBFDAFConfig:
    """Parameters of :class:`PBFDAF` (defaults: 2048 taps, 11.9 ms latency).

    Attributes
    ----------
    block : int
        ``N``: block length and partition length, samples (FFT size ``2N``).
    partitions : int
        ``P``: number of partitions; filter length ``P * N`` taps.
    lookahead : int
        Far-end samples used ahead of the microphone (lets the filter model a loopback that
        lags the echo by up to this many samples).
    pre_delay : int
        Taps kept before the estimated direct path.
    mu_max, mu_init : float
        Largest step, and the fixed step before the filter has adapted.
    estimate_delay : bool
        Track the bulk delay by GCC-PHAT (otherwise the filter spans lags
        ``[-lookahead, P N - lookahead)``).
    max_delay : int
        Largest bulk delay searched, samples.
    """

    block: int = 128
    partitions: int = 16
    lookahead: int = 64
    pre_delay: int = 64
    mu_max: float = 0.5
    mu_init: float = 0.25
    estimate_delay: bool = True
    max_delay: int = 960

    def __post_init__(self) -> None:
        if self.block < 8 or self.partitions < 1:
            raise ValueError(f"pbfdaf: block must be >= 8 and partitions >= 1, got "
                             f"{self.block}, {self.partitions}")
        check_common("pbfdaf", self)

    @property
    def latency_samples(self) -> int:
        """``block - 1 + lookahead``."""
        return self.block - 1 + self.lookahead

    @property
    def step(self) -> int:
        """Samples per processing step (``block``)."""
        return self.block


class PBFDAFCore(TwoPathCore):
    """State of one clip (see the module docstring; :class:`~clarity_se.aec.two_path.
    TwoPathCore` with a partitioned frequency-domain filter); driven by
    :class:`~clarity_se.aec.framing.FramedStreamer`."""

    def __init__(self, config: PBFDAFConfig) -> None:
        c = config
        n, p = c.block, c.partitions
        super().__init__(c, n, (p + 2) * n + c.max_delay + c.lookahead + n, p * n)
        self.n_bins = n + 1
        self.wb = np.zeros((p, n + 1), dtype=np.complex128)
        self.wf = np.zeros_like(self.wb)
        self.x = np.zeros_like(self.wb)
        self.leak = LeakEstimator(n + 1, n)
        self.norm_long_term = 0.0

    def _aligned(self, start: int, stop: int) -> np.ndarray:
        return self.far.get(start - self.d0, stop - self.d0)

    def _realign(self, d0: int) -> None:
        """Move the filter's time origin to ``d0``, shifting the weights to keep the model."""
        c, n, p = self.config, self.config.block, self.config.partitions
        shift = d0 - self.d0
        for name in ("wb", "wf"):
            w = np.fft.irfft(getattr(self, name), 2 * n)[:, :n].reshape(-1)
            moved = shift_taps(w, shift)
            padded = np.concatenate([moved.reshape(p, n), np.zeros((p, n))], axis=1)
            setattr(self, name, np.fft.rfft(padded, axis=1))
        self.d0 = d0
        t = self.t  # next block starts at t; x[q] covers [t - N - qN - N, t - qN)
        for q in range(c.partitions):
            self.x[q] = np.fft.rfft(self._aligned(t - 2 * n - q * n, t - q * n))

    def _step(self, mic: np.ndarray, far_new: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        c, n = self.config, self.config.block
        t = self.t
        d = self._input(mic, far_new)
        seg = self._aligned(t - n, t + n)
        self.x = np.roll(self.x, 1, axis=0)
        self.x[0] = np.fft.rfft(seg)
        yb = np.fft.irfft(np.sum(self.wb * self.x, axis=0), 2 * n)[n:]
        yf = np.fft.irfft(np.sum(self.wf * self.x, axis=0), 2 * n)[n:]
        eb, ef = d - yb, d - yf
        active = self.gate.update(float(np.mean(seg[n:] ** 2)))
        if active:
            zeros = np.zeros(n)
            e_spec = np.fft.rfft(np.concatenate([zeros, eb]))
            e2 = np.abs(e_spec) ** 2
            y2 = np.abs(np.fft.rfft(np.concatenate([zeros, yb]))) ** 2
            leak = self.leak.update(e2, y2)
            if self.adapted:
                # Parseval: sum_f over the rfft half-spectrum ~ n_fft/2 * time-domain sum
                sey = float(np.dot(eb, yb)) * n
                mu = step_size(leak, e2, y2, sey, c.mu_max)
            else:
                mu = np.full(self.n_bins, c.mu_init)
                self.adapted_sum += c.mu_init
                self.adapted = self.adapted_sum > c.partitions and leak > 0.03
            norm = np.sum(np.abs(self.x) ** 2, axis=0)
            self.norm_long_term += 0.05 * (float(np.mean(norm)) - self.norm_long_term)
            delta = regularisation(self.norm_long_term, 1)
            grad = np.conj(self.x) * (mu * e_spec / (norm + delta))
            g = np.fft.irfft(grad, 2 * n, axis=1)
            g[:, n:] = 0.0
            self.wb += np.fft.rfft(g, axis=1)
        return eb, ef, active


class PBFDAF(TwoPathCanceller):
    """The ``pbfdaf`` echo canceller: ``(mic, farend) @ 16 kHz -> output, echo estimate``.

    Parameters
    ----------
    config : PBFDAFConfig, optional

    Attributes
    ----------
    name : str
        ``"pbfdaf"``.
    latency_samples : int
        ``block - 1 + lookahead`` (191 samples = 11.9 ms by default).
    n_params : int
        0 (no learned parameters).
    """

    name = "pbfdaf"
    config_class = PBFDAFConfig
    core_class = PBFDAFCore


@register_aec("pbfdaf")
def build(options: Any) -> PBFDAF:
    """``aec.pbfdaf.*`` -> :class:`PBFDAF` (``aec.estimate_delay`` switches GCC-PHAT)."""
    return PBFDAF(config_from_options(options, "pbfdaf", PBFDAFConfig))
