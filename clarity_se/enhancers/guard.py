"""Causal target selection and the do-no-harm rule of a separating enhancer.

CEC2 listeners face the target talker, so the target reaches both ears almost at once: its
left/right signals are strongly correlated at interaural lags near zero, while interferers and
reverberation are not (larger interaural delays, lower coherence). :class:`FrontalGuard` tracks,
block by block and causally, the peak normalised interaural cross-correlation within
``max_lag_ms`` of zero (the *frontal coherence*) of every output of a model, energy-weighted
over an exponential window of ``window_s``:

* **selection**: the output with the largest frontal coherence is the target (a 2-source uPIT
  model's outputs are a talker and the rest; which one is the target is decided here, per
  block, from the past only);
* **do no harm**: the frontal coherence ``c`` of the selected output is the confidence that a
  talker is in front. The output is ``w * estimate + (1 - w) * mixture_CH1`` with
  ``w = clip((c - c_low) / (c_high - c_low), 0, 1)``, smoothed over blocks and faded linearly
  within a block. When no output is frontal (the target talks from the side; the model is
  unsure), ``w`` falls towards 0 and the front-microphone mixture passes unchanged: the speech
  that is there is not removed. While every output is weak (below ``hold_db`` relative to the
  mixture, e.g. before the target starts) ``w`` holds its value. :meth:`FrontalGuard.select`
  gives the selected output and ``w`` unblended, for a caller whose output is something else
  (the Conv-TasNet enhancer blends its beamformer's output with the mixture by ``w``).

Everything is computed from blocks before the current one, so the guard adds no latency; the
whole-signal path is the block path run over the signal, so streaming gives the same output.

References
----------
The frontal-coherence criterion: interaural cross-correlation as a localisation cue
(Jeffress 1948; Blauert 1997, Sec. 2.4); see also
:func:`clarity_se.models.target_selection.frontal_coherence` (whole-signal version).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["FrontalGuard", "GuardOptions"]


@dataclass
class GuardOptions:
    """Settings of :class:`FrontalGuard` (all causal; defaults chosen on held-out scenes).

    Attributes
    ----------
    block_s : float
        Decision block, seconds (10 ms).
    window_s : float
        Time constant of the exponential window of the coherence statistics, seconds.
    max_lag_ms : float
        Largest interaural lag counted as frontal, ms (0.1 ms: about +-10 degrees).
    c_low, c_high : float
        Frontal coherence at which the estimate's weight is 0 and 1.
    smooth_s : float
        Time constant of the weight's smoothing, seconds.
    hold_db : float
        Below this energy of the selected output relative to the mixture (dB over the window)
        the weight is held.
    enabled : bool
        False: always the selected estimate (``w = 1``).
    """

    block_s: float = 0.010
    window_s: float = 0.5
    max_lag_ms: float = 0.1
    c_low: float = 0.35
    c_high: float = 0.6
    smooth_s: float = 0.1
    hold_db: float = -30.0
    enabled: bool = True


@dataclass
class _State:
    rll: np.ndarray
    rrr: np.ndarray
    rlr: np.ndarray  # [n_src, 2 * max_lag + 1]
    mix_energy: float = 0.0
    tail: np.ndarray | None = None  # last max_lag samples of each output, [n_src, 2, max_lag]
    weight: float = 1.0
    selected: int = 0
    history: list = field(default_factory=list)


class FrontalGuard:
    """Causal, block-wise target selection and do-no-harm blending (see the module docstring).

    Parameters
    ----------
    n_src : int
        Outputs of the model.
    sample_rate : int
        Hz.
    options : GuardOptions, optional

    Notes
    -----
    :meth:`process` takes whole blocks of ``block`` samples (the caller buffers); the output of
    a block depends only on earlier blocks' statistics and on the block itself (no look-ahead).
    ``history`` records ``(weight, selected)`` per block, for reporting how often the rule
    fires.
    """

    def __init__(self, n_src: int, sample_rate: int, options: GuardOptions | None = None) -> None:
        self.options = options or GuardOptions()
        self.n_src = int(n_src)
        self.block = max(1, int(round(self.options.block_s * sample_rate)))
        self.max_lag = int(round(self.options.max_lag_ms * 1e-3 * sample_rate))
        self.decay = math.exp(-self.block / (self.options.window_s * sample_rate))
        self.smooth = 1.0 - math.exp(-self.block / (self.options.smooth_s * sample_rate))
        self.reset()

    def reset(self) -> None:
        """Forget all statistics (a new signal); the weight starts at 1 (trust the model)."""
        n, lags = self.n_src, 2 * self.max_lag + 1
        self.state = _State(np.zeros(n), np.zeros(n), np.zeros((n, lags)))

    def coherence(self) -> np.ndarray:
        """Frontal coherence of each output from the statistics so far, ``[n_src]``."""
        s = self.state
        norm = np.sqrt(s.rll * s.rrr) + 1e-20
        return (s.rlr.max(axis=1) / norm).clip(-1.0, 1.0)

    def _target_weight(self) -> tuple[float, int]:
        s, opt = self.state, self.options
        coh = self.coherence()
        k = int(np.argmax(coh)) if s.rll.any() else s.selected
        if not opt.enabled:
            return 1.0, k
        energy = s.rll[k] + s.rrr[k]
        if energy <= 10 ** (opt.hold_db / 10) * max(s.mix_energy, 1e-30):
            return s.weight, s.selected  # nothing audible from the model: hold
        w = (coh[k] - opt.c_low) / (opt.c_high - opt.c_low)
        return float(np.clip(w, 0.0, 1.0)), k

    def _update(self, est: np.ndarray, mix: np.ndarray) -> None:
        s, lag = self.state, self.max_lag
        tail = np.zeros((self.n_src, 2, lag), dtype=est.dtype) if s.tail is None else s.tail
        x = np.concatenate([tail, est], axis=-1)  # [n_src, 2, lag + block]
        n = est.shape[-1]
        cur_l, cur_r = x[:, 0, lag:], x[:, 1, lag:]
        # each pair (l[t], r[t + d]) is counted once, in the block of its later sample
        rlr = np.stack(
            [(x[:, 0, lag - d : lag - d + n] * cur_r).sum(-1) if d >= 0
             else (cur_l * x[:, 1, lag + d : lag + d + n]).sum(-1)
             for d in range(-lag, lag + 1)],
            axis=1,
        )  # fmt: skip
        s.rll = self.decay * s.rll + (est[:, 0] ** 2).sum(-1)
        s.rrr = self.decay * s.rrr + (est[:, 1] ** 2).sum(-1)
        s.rlr = self.decay * s.rlr + rlr
        s.mix_energy = self.decay * s.mix_energy + float((mix**2).sum())
        s.tail = x[..., -lag:].copy() if lag else tail

    def process(self, est_sources: np.ndarray, mixture: np.ndarray) -> np.ndarray:
        """Blend one block: ``gain * est + (1 - gain) * mixture`` with ``est, gain`` of
        :meth:`select` (see there).

        Parameters
        ----------
        est_sources : np.ndarray [shape=(n_src, 2, n)], float
        mixture : np.ndarray [shape=(2, n)], float

        Returns
        -------
        np.ndarray [shape=(2, n)]
            With the rule off and one output: ``est_sources[0]`` itself.
        """
        est, gain = self.select(est_sources, mixture)
        if gain is None:
            return est
        return gain * est + (1 - gain) * mixture

    def select(self, est_sources: np.ndarray,
               mixture: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
        """The selected output of one block and the estimate's weight, without blending them
        (for a caller that blends something else, e.g. a beamformer's output, with the mixture).

        Parameters
        ----------
        est_sources : np.ndarray [shape=(n_src, 2, n)], float
            The model's outputs for this block (``n <= block``; only the last block of a
            signal may be shorter).
        mixture : np.ndarray [shape=(2, n)], float
            The front-microphone mixture (``CH1-L, CH1-R``) of the block.

        Returns
        -------
        est : np.ndarray [shape=(2, n)]
            ``est_sources[k]``, ``k`` the selected output (cross-faded within the block from
            the previous block's selection when it changes).
        gain : np.ndarray [shape=(n,)] or None
            The estimate's weight ``g`` per sample, faded from the previous block's weight to
            this block's; ``None`` with the rule off and one output (``g = 1``, no statistics
            kept).
        """
        s = self.state
        if not self.options.enabled and self.n_src == 1:  # nothing to select or to blend
            s.history.append((1.0, 0))
            return est_sources[0], None
        target, k = self._target_weight()
        weight = s.weight + self.smooth * (target - s.weight)
        n = est_sources.shape[-1]
        ramp = (np.arange(1, n + 1, dtype=np.float64) / max(n, 1))
        gain = (s.weight + (weight - s.weight) * ramp).astype(est_sources.dtype)
        if k == s.selected:
            est = est_sources[k]
        else:  # cross-fade from the previous target to the new one within the block
            fade = ramp.astype(est_sources.dtype)
            est = (1 - fade) * est_sources[s.selected] + fade * est_sources[k]
        s.history.append((weight, k))
        s.weight, s.selected = weight, k
        self._update(est_sources, mixture)
        return est, gain

    def run(self, est_sources: np.ndarray, mixture: np.ndarray) -> np.ndarray:
        """The whole signal, block by block from a fresh state (same as streaming).

        Parameters
        ----------
        est_sources : np.ndarray [shape=(n_src, 2, time)]
        mixture : np.ndarray [shape=(2, time)]

        Returns
        -------
        np.ndarray [shape=(2, time)]
        """
        self.reset()
        b = self.block
        return np.concatenate(
            [self.process(est_sources[..., i : i + b], mixture[:, i : i + b])
             for i in range(0, est_sources.shape[-1], b)] or [mixture[:, :0]],
            axis=-1,
        )  # fmt: skip

    def fired_fraction(self, threshold: float = 0.5) -> float:
        """Share of the blocks so far whose weight fell below ``threshold`` (the rule fired)."""
        h = self.state.history
        return float(np.mean([w < threshold for w, _ in h])) if h else 0.0
