"""The enhancer protocol: what ``clarity-se enhance`` runs, whatever the model inside.

Every enhancer takes the six hearing-aid microphones of a CEC2 scene and returns the left and
right ear signals, at 44.1 kHz, time-aligned with the input:

``mixture [6, time] float32 -> [2, time] float32``

with rows ``CH1-L, CH1-R, CH2-L, CH2-R, CH3-L, CH3-R`` in (the loader's
:data:`clarity_se.data.cec2.CHANNEL_ORDER`) and ``left, right`` out. Sample-rate conversion,
channel selection and framing live inside the enhancer; the stage never learns model details.

Latency follows the Clarity rule: output sample ``t`` may depend on input samples up to
``t + latency_samples`` (at most 5 ms = 220 samples at 44.1 kHz for a hearing-aid system).
:meth:`Enhancer.streamer` returns an object with explicit state that produces the same output
block by block (``process`` returns the output samples that are final, ``flush`` the rest).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

#: Hz: the CEC2 sample rate of the microphones and of the enhanced output.
SAMPLE_RATE = 44100
#: number of hearing-aid microphone signals an enhancer receives.
N_MICS = 6
#: the challenge's look-ahead limit, seconds (5 ms).
MAX_LATENCY_S = 0.005


@runtime_checkable
class BlockStreamer(Protocol):
    """Stateful block-by-block processing of one signal.

    Concatenating the outputs of :meth:`process` over consecutive blocks and of :meth:`flush`
    gives the whole-signal output of the enhancer (same length as the input).
    """

    def reset(self) -> None:
        """Forget all state (start a new signal)."""

    def process(self, block: np.ndarray) -> np.ndarray:
        """Feed ``block [6, n]`` float32; return the output samples that are final, ``[2, m]``."""

    def flush(self) -> np.ndarray:
        """End of signal: return the remaining output samples ``[2, k]`` and reset."""


@runtime_checkable
class Enhancer(Protocol):
    """A causal hearing-aid enhancer: ``mixture [6, time] -> [2, time]`` at 44.1 kHz.

    Attributes
    ----------
    name : str
        Registry name (``enhancer.name``).
    latency_samples : int
        Algorithmic latency at 44.1 kHz, samples: output sample ``t`` depends on input samples
        up to ``t + latency_samples`` and on nothing later.
    """

    name: str
    latency_samples: int

    def __call__(self, mixture: np.ndarray) -> np.ndarray:
        """Enhance a whole scene: ``mixture [6, time]`` float32 -> ``[2, time]`` float32."""

    def streamer(self) -> BlockStreamer:
        """A fresh :class:`BlockStreamer` giving the same output block by block."""

    def diagnostics(self) -> dict:
        """What the enhancer reports about the last signal it processed, for the journal.

        Returns
        -------
        dict
            JSON-serialisable fields that ``clarity-se enhance`` adds to each record of that
            signal; empty when the enhancer has nothing to report (e.g. ``convtasnet`` gives
            ``{"guard_fired": {...}}``, the do-no-harm rule's share of fallback blocks).
        """


def check_mixture(mixture: np.ndarray, where: str = "mixture") -> np.ndarray:
    """Return ``mixture`` as C-contiguous float32 ``[6, time]``.

    Raises
    ------
    ValueError
        If the array is not two-dimensional with six rows, naming ``where``.
    """
    mixture = np.asarray(mixture)
    if mixture.ndim != 2 or mixture.shape[0] != N_MICS:
        raise ValueError(f"{where}: expected shape [{N_MICS}, time], got {tuple(mixture.shape)}")
    return np.ascontiguousarray(mixture, dtype=np.float32)


class WholeSignalStreamer:
    """A :class:`BlockStreamer` for an enhancer with no state: each block is processed alone.

    Only valid for memoryless enhancers (e.g. ``passthrough``), where block-wise and
    whole-signal processing coincide.

    Parameters
    ----------
    enhancer : Enhancer
        Memoryless enhancer with zero latency.
    """

    def __init__(self, enhancer: Enhancer) -> None:
        self.enhancer = enhancer

    def reset(self) -> None:
        """Nothing to forget."""

    def process(self, block: np.ndarray) -> np.ndarray:
        """``block [6, n]`` -> ``[2, n]``."""
        return self.enhancer(block)

    def flush(self) -> np.ndarray:
        """No pending output: ``[2, 0]``."""
        return np.zeros((2, 0), dtype=np.float32)


def run_streamer(streamer: BlockStreamer, mixture: np.ndarray, block_size: int) -> np.ndarray:
    """Run ``streamer`` over ``mixture [6, time]`` in blocks of ``block_size`` samples.

    Returns
    -------
    np.ndarray [shape=(2, time)], float32
        Concatenated block outputs and the flushed tail.

    Raises
    ------
    ValueError
        If ``block_size < 1``.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    streamer.reset()
    pieces = [
        streamer.process(mixture[:, i : i + block_size])
        for i in range(0, mixture.shape[1], block_size)
    ]
    pieces.append(streamer.flush())
    return np.concatenate(pieces, axis=1)
