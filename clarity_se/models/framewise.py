r"""The frame pipeline shared by the low-delay enhancers (DTLN and CR-CED, both variants each).

Each of :class:`~clarity_se.models.dtln.DTLN`, :class:`~clarity_se.models.dtln.DTLNHearingAid`,
:class:`~clarity_se.models.crced.CRCED` and :class:`~clarity_se.models.crced.CRCEDHearingAid`
turns its input into signals (``_signals``), cuts them into the frames of
:mod:`clarity_se.dsp.lowdelay_stft` (``K`` samples every ``R``, synthesis segments of ``S``),
maps frames to synthesis segments with its own ``_process_frames(frames, state)`` and
overlap-adds them; :class:`~clarity_se.models.dtln.DTLNStreamer` runs the same two methods frame
by frame. What does not depend on the network lives here:

* :class:`FramewiseModel`: the whole-signal path, the latency and the streamer;
* :class:`MonoInput`: input ``[batch, time]`` or ``[batch, channels, time]``, channels
  processed independently (the published models);
* :class:`HearingAidInput`: input ``[batch, 6, time]`` (the CEC2 microphones), the five derived
  signals in, ``[batch, 2, time]`` (left, right) out (the hearing-aid variants).

A model class lists the input mixin before :class:`torch.nn.Module` (``class M(MonoInput,
nn.Module)``) and sets ``win_length``, ``hop_length``, ``synth_length`` (and ``n_mics``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from clarity_se.dsp.lowdelay_stft import frame_signal, overlap_add

if TYPE_CHECKING:
    from clarity_se.models.dtln import DTLNStreamer

__all__ = ["FramewiseModel", "HearingAidInput", "MonoInput"]


class FramewiseModel:
    """Whole-signal path, latency and streamer of a frame-by-frame enhancer (a mixin).

    A subclass provides ``win_length``, ``hop_length``, ``synth_length`` (``K``, ``R``, ``S``
    samples), ``_signals(x) -> (signals [N, ..., time], lead)`` (the model's signals and the
    leading shape of its output) and ``_process_frames(frames, state) -> (segments, state)``
    (segments ``[..., n_frames, S]`` whose leading dimensions reshape to ``lead``).
    """

    win_length: int
    hop_length: int
    synth_length: int

    def _signals(self, x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        """The model's input signals of ``x`` and the leading shape of its output."""
        raise NotImplementedError

    def _process_frames(self, frames: Tensor, state: Any) -> tuple[Tensor, Any]:
        """Frames ``[..., n_frames, K]`` -> synthesis segments and the next streaming state."""
        raise NotImplementedError

    def _enhance(self, x: Tensor) -> Tensor:
        """Frames of all of ``x``'s signals through :meth:`_process_frames`, overlap-added to
        the input length: ``[*lead, time]``."""
        signals, lead = self._signals(x)
        n_time = signals.shape[-1]
        frames = frame_signal(signals, self.win_length, self.hop_length, self.synth_length)
        segments, _ = self._process_frames(frames, None)
        return overlap_add(segments, self.hop_length, n_time).reshape(*lead, n_time)

    @property
    def latency_samples(self) -> int:
        """Algorithmic look-ahead at ``sample_rate``: ``S - 1`` samples (``K - 1`` for the
        published models, where ``S = K``)."""
        return self.synth_length - 1

    def last_input(self, n):
        """Last input sample that output sample ``n`` (int or integer array) can read.

        The last frame whose segment covers ``n`` ends at ``floor(n / R) R + S - 1`` (see
        :mod:`clarity_se.dsp.lowdelay_stft`); ``latency_samples`` is the largest
        ``last_input(n) - n``.
        """
        return (n // self.hop_length) * self.hop_length + self.synth_length - 1

    def streamer(self) -> DTLNStreamer:
        """A fresh :class:`~clarity_se.models.dtln.DTLNStreamer` (eval mode is the caller's
        business)."""
        from clarity_se.models.dtln import DTLNStreamer

        return DTLNStreamer(self)


class MonoInput(FramewiseModel):
    """Input of the published models: ``[batch, time]`` or ``[batch, channels, time]`` float,
    channels processed independently; the output has the input's shape.

    Raises
    ------
    ValueError
        (``forward``, streaming) An input that is not 2-D or 3-D.
    """

    def _signals(self, x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        """``x`` as rows ``[batch channels, time]`` and its leading shape."""
        if x.dim() not in (2, 3):
            raise ValueError(
                f"x: expected shape [batch, time] or [batch, channels, time], got {tuple(x.shape)}"
            )
        return x.reshape(-1, x.shape[-1]), tuple(x.shape[:-1])

    def forward(self, x: Tensor) -> Tensor:
        """Enhance ``x [batch, time]`` or ``[batch, channels, time]`` (same shape out)."""
        return self._enhance(x)


class HearingAidInput(FramewiseModel):
    """Input of the hearing-aid variants: the six CEC2 microphones ``[batch, 6, time]``
    (``CH1-L, CH1-R, CH2-L, CH2-R, CH3-L, CH3-R``); output ``[batch, 2, time]`` (left, right).

    The model reads the five signals of :meth:`derived_signals`.

    Raises
    ------
    ValueError
        (``forward``, streaming) An input not shaped ``[batch, n_mics, time]``.
    """

    n_mics: int

    @staticmethod
    def _check_n_mics(n_mics: int) -> None:
        """Raise the constructors' ValueError unless ``n_mics`` is 6."""
        if n_mics != 6:
            raise ValueError(f"n_mics must be 6 (the CEC2 hearing-aid layout), got {n_mics}")

    @staticmethod
    def derived_signals(mixture: Tensor) -> Tensor:
        """``mixture [..., 6, time]`` -> ``[..., 5, time]``: CH1-L, CH1-R, CH1-L - CH1-R,
        CH1-L - CH3-L, CH1-R - CH3-R (linear and per sample, so they stream trivially)."""
        left, right = mixture[..., 0, :], mixture[..., 1, :]
        return torch.stack(
            [left, right, left - right, left - mixture[..., 4, :], right - mixture[..., 5, :]],
            dim=-2,
        )

    def _signals(self, mixture: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        """The derived signals ``[batch, 5, time]`` of ``mixture`` and the output's leading
        shape ``(batch, 2)``."""
        if mixture.dim() != 3 or mixture.shape[1] != self.n_mics:
            raise ValueError(
                f"mixture: expected shape [batch, {self.n_mics}, time], got {tuple(mixture.shape)}"
            )
        return self.derived_signals(mixture), (mixture.shape[0], 2)

    def forward(self, mixture: Tensor) -> Tensor:
        """Enhance ``mixture [batch, 6, time]`` -> ``[batch, 2, time]`` (left, right)."""
        return self._enhance(mixture)
