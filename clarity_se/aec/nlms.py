"""``nlms``: time-domain normalised LMS echo canceller (classical baseline).

A ``taps``-tap FIR model of the echo path (default 1024 taps, 64 ms at 16 kHz) adapted sample by
sample with the NLMS rule (Nagumo & Noda 1967; Haykin, *Adaptive Filter Theory*, ch. 6)::

    y(t) = w^T x(t)          x(t) = [x(t - d0), ..., x(t - d0 - L + 1)]   aligned far end
    e(t) = d(t) - y(t)
    w   += mu(t) e(t) x(t) / (x(t)^T x(t) + delta)

Both signals are pre-emphasised by ``1 - 0.9 z^-1`` before the filter (filtering both sides
leaves the echo path unchanged and makes speech whiter, so NLMS converges faster, as in Speex)
and the error is de-emphasised back. Control, shared with ``pbfdaf``
(:mod:`clarity_se.aec.adaptive`), is decided every ``hop`` samples from the samples before:
adaptation only while the far end is active, ``delta`` scaled by the long-term far-end power, a
double-talk-robust broadband step (:func:`~clarity_se.aec.adaptive.step_size` over the spectra
of the last 256 samples, ``mu_init`` until the filter has adapted), foreground/background
filters (the foreground's error is the output; exactly the microphone signal while the
foreground is cleared), and the bulk delay ``d0`` tracked by GCC-PHAT (the filter moves, with
its weights, when the estimated direct path leaves its first quarter). The sample loop is
compiled with numba.

Latency: the samples are processed in hops of ``hop``; a hop's output is known once the hop and
``lookahead`` far-end samples beyond it have arrived: ``hop - 1 + lookahead`` samples (default
63 + 64 = 127 samples, 7.9 ms). No learned parameters.

References
----------
J. Nagumo and A. Noda, "A learning method for system identification", IEEE Trans. Autom.
Control 12(3), 1967. J.-M. Valin, IEEE Trans. ASLP 15(3), 2007 (step control).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from clarity_se.aec import register_aec
from clarity_se.aec.adaptive import LeakEstimator, regularisation, step_size
from clarity_se.aec.two_path import (
    GCC_HOP,
    TwoPathCanceller,
    TwoPathCore,
    check_common,
    config_from_options,
    shift_taps,
)

#: Spectra of the step-size control: the last 256 samples (16 ms), Hann-windowed.
CONTROL_WINDOW = 256


@dataclass(frozen=True)
class NLMSConfig:
    """Parameters of :class:`NLMS` (defaults: 1024 taps, 7.9 ms latency).

    Attributes
    ----------
    taps : int
        ``L``: filter length, samples.
    hop : int
        Processing block and control interval, samples (step size, gate and filter selection
        are updated every ``hop`` samples).
    lookahead : int
        Far-end samples used ahead of the microphone.
    pre_delay : int
        Taps kept before the estimated direct path.
    mu_max, mu_init : float
        Largest step, and the fixed step before the filter has adapted.
    estimate_delay : bool
        Track the bulk delay by GCC-PHAT.
    max_delay : int
        Largest bulk delay searched, samples.
    """

    taps: int = 1024
    hop: int = 64
    lookahead: int = 64
    pre_delay: int = 64
    mu_max: float = 0.5
    mu_init: float = 0.25
    estimate_delay: bool = True
    max_delay: int = 960

    def __post_init__(self) -> None:
        if self.taps < 8 or self.hop < 8:
            raise ValueError(f"nlms: taps and hop must be >= 8, got {self.taps}, {self.hop}")
        if GCC_HOP % self.hop or self.hop > CONTROL_WINDOW:
            raise ValueError(f"nlms: hop must divide {GCC_HOP} and be <= {CONTROL_WINDOW}, "
                             f"got {self.hop}")
        check_common("nlms", self)

    @property
    def latency_samples(self) -> int:
        """``hop - 1 + lookahead``: a hop is computed once it and ``lookahead`` far-end
        samples beyond it have arrived."""
        return self.hop - 1 + self.lookahead

    @property
    def step(self) -> int:
        """Samples per processing step (``hop``)."""
        return self.hop


@numba.njit(cache=True)
def _nlms_run(seg, d, wb, wf, mu, delta, adapt, eb, ef):  # pragma: no cover - numba
    """Filter with both weight vectors (and adapt ``wb``) over ``d.size`` samples;
    ``seg`` = aligned far end ``[t - L + 1, t + n)``; writes both errors."""
    n_taps = wb.size
    energy = 0.0
    for j in range(n_taps):
        energy += seg[j] * seg[j]
    for k in range(d.size):
        if k > 0:
            energy += seg[k + n_taps - 1] ** 2 - seg[k - 1] ** 2
        acc_b = 0.0
        acc_f = 0.0
        base = k + n_taps - 1
        for j in range(n_taps):
            v = seg[base - j]
            acc_b += wb[j] * v
            acc_f += wf[j] * v
        eb[k] = d[k] - acc_b
        ef[k] = d[k] - acc_f
        if adapt:
            g = mu * eb[k] / (energy + delta)
            for j in range(n_taps):
                wb[j] += g * seg[base - j]


class NLMSCore(TwoPathCore):
    """State of one clip (:class:`~clarity_se.aec.two_path.TwoPathCore` with a time-domain
    filter); driven by :class:`~clarity_se.aec.framing.FramedStreamer`."""

    def __init__(self, config: NLMSConfig) -> None:
        c = config
        super().__init__(c, c.hop, c.taps + c.hop + c.max_delay + 2 * c.lookahead, c.taps)
        self.wb = np.zeros(c.taps)
        self.wf = np.zeros(c.taps)
        self.leak = LeakEstimator(CONTROL_WINDOW // 2 + 1, c.hop)
        self._eb_hist = np.zeros(CONTROL_WINDOW)
        self._yb_hist = np.zeros(CONTROL_WINDOW)
        self.far_long_term = 0.0
        self.mu = c.mu_init
        self.adapt = False
        self._window = np.hanning(CONTROL_WINDOW + 2)[1:-1]

    def _realign(self, d0: int) -> None:
        """Move the filters' time origin to ``d0``, shifting the weights to keep the model."""
        shift = d0 - self.d0
        self.wb, self.wf = shift_taps(self.wb, shift), shift_taps(self.wf, shift)
        self.d0 = d0

    def _step(self, mic: np.ndarray, far_new: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        c, t, h = self.config, self.t, self.config.hop
        d = self._input(mic, far_new)
        seg = self.far.get(t - c.taps + 1 - self.d0, t + h - self.d0)
        eb, ef = np.empty(h), np.empty(h)
        delta = regularisation(self.far_long_term, c.taps)
        _nlms_run(seg, d, self.wb, self.wf, self.mu, delta, self.adapt, eb, ef)
        # control for the next hop, from the last CONTROL_WINDOW samples
        self._eb_hist = np.concatenate([self._eb_hist[h:], eb])
        self._yb_hist = np.concatenate([self._yb_hist[h:], d - eb])
        p_x = float(np.mean(seg[-h:] ** 2))
        active = self.gate.update(p_x)
        if active:
            self.far_long_term += 0.02 * (p_x - self.far_long_term)
            ew, yw = self._window * self._eb_hist, self._window * self._yb_hist
            e2 = np.abs(np.fft.rfft(ew)) ** 2
            y2 = np.abs(np.fft.rfft(yw)) ** 2
            leak = self.leak.update(e2, y2)
            if self.adapted:
                sey = float(np.dot(ew, yw)) * CONTROL_WINDOW / 2
                self.mu = float(np.mean(step_size(leak, e2, y2, sey, c.mu_max)))
            else:
                self.mu = c.mu_init
                self.adapted_sum += c.mu_init * h / c.taps
                self.adapted = self.adapted_sum > 4 and leak > 0.03
        self.adapt = active
        return eb, ef, active


class NLMS(TwoPathCanceller):
    """The ``nlms`` echo canceller: ``(mic, farend) @ 16 kHz -> output, echo estimate``.

    Parameters
    ----------
    config : NLMSConfig, optional

    Attributes
    ----------
    name : str
        ``"nlms"``.
    latency_samples : int
        ``hop - 1 + lookahead`` (127 samples = 7.9 ms by default).
    n_params : int
        0 (no learned parameters).
    """

    name = "nlms"
    config_class = NLMSConfig
    core_class = NLMSCore


@register_aec("nlms")
def build(options: Any) -> NLMS:
    """``aec.nlms.*`` -> :class:`NLMS` (``aec.estimate_delay`` switches GCC-PHAT)."""
    return NLMS(config_from_options(options, "nlms", NLMSConfig))
