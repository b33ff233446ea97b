"""The clip state and per-step bookkeeping shared by ``nlms`` and ``pbfdaf``.

Both classical cancellers process the microphone in steps of ``step`` samples (``nlms``: its
``hop``; ``pbfdaf``: its ``block``) and share everything around the filter itself
(:mod:`clarity_se.aec.adaptive` has the control rules):

* pre-emphasis ``1 - 0.9 z^-1`` of microphone and far end before the filter, de-emphasis of
  the errors after it (Speex MDF's whitening);
* the far-end and microphone history (:class:`~clarity_se.aec.framing.SlidingBuffer`) and the
  bulk delay ``d0`` of the filter's time origin, re-estimated by GCC-PHAT every
  :data:`GCC_HOP` samples while the far end is active (the filter moves, with its weights,
  when the estimated direct path leaves its first quarter);
* the foreground/background pair (:class:`~clarity_se.aec.adaptive.TwoPathSelector`): the
  foreground's error is the output, exactly the microphone signal while it is cleared.

:class:`TwoPathCore` holds that state; a subclass implements :meth:`TwoPathCore._step` (one
step of its filter: background and foreground errors from the emphasised signals) and
``_realign`` (move both filters' weights to a new ``d0``, with :func:`shift_taps`).
:class:`TwoPathCanceller` is the public wrapper (``(mic, farend) @ 16 kHz -> output, echo
estimate``, frame-by-frame streamer).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
from scipy.signal import lfilter

from clarity_se.aec.adaptive import (
    FarEndGate,
    GccPhatDelayEstimator,
    TwoPathSelector,
    needs_no_realign,
)
from clarity_se.aec.base import SAMPLE_RATE, EchoCancellerOutput
from clarity_se.aec.framing import FramedStreamer, SlidingBuffer, process_whole

__all__ = ["GCC_HOP", "GCC_WINDOW", "PREEMPHASIS", "TwoPathCanceller", "TwoPathCore",
           "check_common", "config_from_options", "shift_taps"]  # fmt: skip

#: Pre-emphasis of far end and microphone before adaptation (whitens speech; Speex MDF's 0.9).
PREEMPHASIS = 0.9
#: GCC-PHAT microphone frame and update interval, samples.
GCC_WINDOW = 1024
GCC_HOP = 512


def check_common(name: str, config: Any) -> None:
    """The range checks both configs share (``lookahead``, ``pre_delay``, ``mu_init``,
    ``mu_max``, ``max_delay``).

    Raises
    ------
    ValueError
        A value out of range, named with the system ``name``.
    """
    c = config
    if not 0 <= c.lookahead <= 1024 or c.pre_delay < 0:
        raise ValueError(f"{name}: need 0 <= lookahead <= 1024 and pre_delay >= 0, got "
                         f"{c.lookahead}, {c.pre_delay}")  # fmt: skip
    if not 0 < c.mu_init <= 1 or not 0 < c.mu_max <= 1:
        raise ValueError(f"{name}: steps must be in (0, 1], got {c.mu_init}, {c.mu_max}")
    if not 0 <= c.max_delay <= 16000:
        raise ValueError(f"{name}: max_delay must be in [0, 16000], got {c.max_delay}")


def shift_taps(w: np.ndarray, shift: int) -> np.ndarray:
    """The impulse response ``w`` re-expressed for a filter whose time origin (bulk delay)
    moved ``shift`` samples later: tap ``j`` of the result is tap ``j + shift`` of ``w``.

    Used by both cancellers' ``_realign`` (``shift = d0_new - d0_old``); taps that leave the
    span are dropped, those that enter it are zero.

    Parameters
    ----------
    w : np.ndarray [shape=(n_taps,)]
        Time-domain taps (any dtype; not modified).
    shift : int
        Samples, positive (later origin: taps move towards the start) or negative.

    Returns
    -------
    np.ndarray [shape=(n_taps,)]
        A new array of ``w``'s dtype; all zeros if ``|shift| >= n_taps``.

    Examples
    --------
    >>> shift_taps(np.array([1.0, 2.0, 3.0, 4.0]), 1)
    array([2., 3., 4., 0.])
    >>> shift_taps(np.array([1.0, 2.0, 3.0, 4.0]), -2)
    array([0., 0., 1., 2.])
    """
    moved = np.zeros_like(w)
    if abs(shift) < w.size:
        if shift >= 0:
            moved[: w.size - shift] = w[shift:]
        else:
            moved[-shift:] = w[: w.size + shift]
    return moved


class TwoPathCore:
    """State of one clip of a two-path adaptive filter; driven by
    :class:`~clarity_se.aec.framing.FramedStreamer` (``prime``, then ``process``).

    Parameters
    ----------
    config : NLMSConfig or PBFDAFConfig
        Needs ``lookahead``, ``pre_delay``, ``max_delay``, ``estimate_delay``.
    step : int
        Samples per step (``hop`` / ``block``); divides :data:`GCC_HOP`.
    far_history : int
        Far-end samples the filter itself reads back (the GCC-PHAT frame is added).
    n_taps : int
        Filter length, samples (whether a new delay estimate needs a move:
        :func:`~clarity_se.aec.adaptive.needs_no_realign`).
    """

    def __init__(self, config: Any, step: int, far_history: int, n_taps: int) -> None:
        c = self.config = config
        self.step, self.n_taps = step, n_taps
        self.gcc = GccPhatDelayEstimator(GCC_WINDOW, -c.lookahead, c.max_delay + c.pre_delay)
        self.far = SlidingBuffer(far_history + self.gcc.far_length)
        self.mic = SlidingBuffer(GCC_WINDOW + step)
        self.t = 0
        self.d0 = -c.lookahead
        self.gate = FarEndGate(step)
        self.selector = TwoPathSelector(step)
        self.adapted_sum = 0.0
        self.adapted = False
        self._mic_last = self._far_last = self._out_b = self._out_f = 0.0
        self.fg_zero = True
        self.wb: np.ndarray
        self.wf: np.ndarray

    def prime(self, farend: np.ndarray) -> None:
        """Receive the first ``lookahead`` far-end samples (before the first step)."""
        self.far.append(farend)

    def _realign(self, d0: int) -> None:
        """Move the filters' time origin to ``d0``, shifting the weights to keep the model."""
        raise NotImplementedError

    def _step(self, mic: np.ndarray, far_new: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """One step: background and foreground errors (emphasised) and whether the far end
        was active; reads the emphasised signals through :meth:`_input`."""
        raise NotImplementedError

    def _deemphasis(self, x: np.ndarray, which: str) -> np.ndarray:
        out = lfilter([1.0], [1.0, -PREEMPHASIS], x, zi=[PREEMPHASIS * getattr(self, which)])[0]
        setattr(self, which, float(out[-1]))
        return out

    def _preemphasis(self, x: np.ndarray, which: str) -> np.ndarray:
        prev = getattr(self, which)
        out = x - PREEMPHASIS * np.concatenate([[prev], x[:-1]])
        setattr(self, which, float(x[-1]))
        return out

    def _input(self, mic: np.ndarray, far_new: np.ndarray) -> np.ndarray:
        """Emphasise a step's microphone samples and the new far-end samples, append both to
        the history; returns the emphasised microphone samples."""
        d = self._preemphasis(mic, "_mic_last")
        self.far.append(self._preemphasis(far_new, "_far_last"))
        self.mic.append(d)
        return d

    def _output(self, mic: np.ndarray, eb: np.ndarray, ef: np.ndarray,
                active: bool) -> tuple[np.ndarray, np.ndarray]:
        """De-emphasis, the foreground/background decision, the delay update; ``(output,
        echo estimate)`` of the step."""
        out_b = self._deemphasis(eb, "_out_b")
        out = self._deemphasis(ef, "_out_f")
        if self.fg_zero:  # exactly the microphone (no rounding through the emphasis filters)
            out = mic.copy()
        decision = self.selector.update(float(np.mean(mic**2)), float(np.mean(out_b**2)),
                                        float(np.mean(out**2)))  # fmt: skip
        if decision == "copy":
            self.fg_zero = False
            self.wf = self.wb.copy()
            self._out_f = self._out_b
        elif decision == "clear":
            self.fg_zero = True
            self.wf[:] = 0.0
            self._out_f = float(mic[-1])
        elif decision == "restore":
            self.wb = self.wf.copy()
            self._out_b = self._out_f
        self.t += self.step
        c = self.config
        if c.estimate_delay and active and self.t % GCC_HOP == 0 and self.t >= GCC_WINDOW:
            g = self.gcc
            lag = g.update(self.far.get(self.t - g.window - g.max_lag, self.t - g.min_lag),
                           self.mic.get(self.t - g.window, self.t))
            if lag is not None and not needs_no_realign(lag, self.d0, c.pre_delay, self.n_taps):
                d0 = int(np.clip(lag - c.pre_delay, -c.lookahead, c.max_delay))
                if d0 != self.d0:
                    self._realign(d0)
        return out, mic - out

    def process(self, mic: np.ndarray, farend: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Whole steps of ``mic`` and of the far end ``lookahead`` samples ahead ->
        (output, echo estimate = mic - output), float64 ``[n]``."""
        h = self.step
        out, echo = np.empty(mic.size), np.empty(mic.size)
        for i in range(0, mic.size, h):
            eb, ef, active = self._step(mic[i : i + h], farend[i : i + h])
            out[i : i + h], echo[i : i + h] = self._output(mic[i : i + h], eb, ef, active)
        return out, echo


class TwoPathCanceller:
    """Public wrapper of a :class:`TwoPathCore`: ``(mic, farend) @ 16 kHz -> output, echo
    estimate``, whole clips or frame by frame.

    Subclasses set ``name``, ``config_class`` and ``core_class``.

    Parameters
    ----------
    config : dataclass, optional
        An instance of ``config_class`` (default: its defaults).

    Attributes
    ----------
    latency_samples : int
        ``step - 1 + lookahead`` (:attr:`config.latency_samples`).
    n_params : int
        0 (no learned parameters).
    """

    name: str
    config_class: type
    core_class: type
    n_params = 0

    def __init__(self, config: Any = None) -> None:
        self.config = config or self.config_class()
        self.latency_samples = self.config.latency_samples
        self.sample_rate = SAMPLE_RATE

    def streamer(self) -> FramedStreamer:
        """A fresh frame-by-frame streamer (state of one clip)."""
        core = self.core_class
        return FramedStreamer(lambda: core(self.config), self.config.step, self.config.lookahead)

    def __call__(self, mic: np.ndarray, farend: np.ndarray) -> EchoCancellerOutput:
        """Cancel the echo of a whole clip (``[time]`` float, 16 kHz) -> float32 ``[time]``."""
        return process_whole(self.streamer(), mic, farend)


def config_from_options(options: Any, name: str, config_class: type) -> Any:
    """``aec.<name>.*`` and ``aec.estimate_delay`` -> a ``config_class`` instance (the fields
    present in ``options.<name>``, the dataclass defaults for the others).

    Raises
    ------
    ValueError
        From the config's own checks (``__post_init__``).
    """
    sub = getattr(options, name, None)
    kwargs = {f.name: getattr(sub, f.name) for f in fields(config_class)
              if f.name != "estimate_delay" and sub is not None and hasattr(sub, f.name)}
    return config_class(estimate_delay=bool(getattr(options, "estimate_delay", True)), **kwargs)
