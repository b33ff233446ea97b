"""The echo-canceller protocol of the echo track (ICASSP AEC Challenge conventions).

An echo canceller receives the near-end microphone signal ``mic`` and the far-end reference
``farend`` (the loopback: what the loudspeaker or hearing-aid receiver was driven with), both
mono float32 at 16 kHz, and returns the near-end estimate, time-aligned with the microphone and
of the same length, together with its estimate of the echo at the microphone (used by a
residual-echo suppressor that follows it):

``(mic [time], farend [time]) -> EchoCancellerOutput(output [time], echo_estimate [time])``

Latency follows the AEC Challenge rule: output sample ``t`` may depend on input samples up to
``t + latency_samples`` (at most 20 ms = 320 samples at 16 kHz). :meth:`EchoCanceller.streamer`
returns an object with explicit state giving the same output frame by frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

#: Hz: the AEC Challenge sample rate.
SAMPLE_RATE = 16000
#: the AEC Challenge's algorithmic-latency limit, seconds (20 ms).
MAX_LATENCY_S = 0.020


@dataclass(frozen=True)
class EchoCancellerOutput:
    """What an echo canceller returns.

    Attributes
    ----------
    output : np.ndarray [shape=(time,)], float32
        Near-end estimate (the error signal of a linear canceller), 16 kHz.
    echo_estimate : np.ndarray [shape=(time,)], float32
        The canceller's estimate of the echo at the microphone (zeros if it has none).
    """

    output: np.ndarray
    echo_estimate: np.ndarray


@runtime_checkable
class EchoStreamer(Protocol):
    """Stateful frame-by-frame processing of one clip.

    Concatenating the outputs of :meth:`process` over consecutive blocks and of :meth:`flush`
    gives the whole-clip output (same length as the microphone signal).
    """

    def reset(self) -> None:
        """Forget all state (start a new clip)."""

    def process(self, mic: np.ndarray, farend: np.ndarray) -> EchoCancellerOutput:
        """Feed equal-length blocks ``mic [n]``, ``farend [n]``; return the final samples."""

    def flush(self) -> EchoCancellerOutput:
        """End of clip: return the remaining output samples and reset."""


@runtime_checkable
class EchoCanceller(Protocol):
    """An echo canceller: ``(mic, farend) -> EchoCancellerOutput`` at 16 kHz.

    Attributes
    ----------
    name : str
        Registry name (``aec.name``).
    latency_samples : int
        Algorithmic latency at 16 kHz, samples.
    """

    name: str
    latency_samples: int

    def __call__(self, mic: np.ndarray, farend: np.ndarray) -> EchoCancellerOutput:
        """Process a whole clip."""

    def streamer(self) -> EchoStreamer:
        """A fresh :class:`EchoStreamer` giving the same output block by block."""


def check_clip(
    mic: np.ndarray, farend: np.ndarray, where: str = "clip"
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``mic`` and ``farend`` as float32 1-D arrays of equal length.

    A far-end signal longer than the microphone is cut; a shorter one is zero-padded (the AEC
    Challenge's real recordings differ by a few samples).

    Raises
    ------
    ValueError
        If either is not one-dimensional, naming ``where``.
    """
    mic = np.asarray(mic, dtype=np.float32)
    farend = np.asarray(farend, dtype=np.float32)
    if mic.ndim != 1 or farend.ndim != 1:
        raise ValueError(
            f"{where}: mic and farend must be mono [time], got "
            f"{tuple(mic.shape)} and {tuple(farend.shape)}"
        )
    if farend.shape[0] >= mic.shape[0]:
        farend = farend[: mic.shape[0]]
    else:
        farend = np.pad(farend, (0, mic.shape[0] - farend.shape[0]))
    return np.ascontiguousarray(mic), np.ascontiguousarray(farend)
