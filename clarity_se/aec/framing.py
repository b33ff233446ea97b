"""Frame-by-frame streaming shared by the echo cancellers: queues, far-end lookahead, flush.

An echo canceller written as a *core* (an object with explicit state) sees the microphone in
blocks of ``block`` samples and the far end ``lookahead`` samples ahead of it: before the first
block the core is primed with ``farend[:lookahead]``, then block ``k`` is
``(mic[kB:(k+1)B], farend[kB+M:(k+1)B+M])``. :class:`FramedStreamer` turns arbitrary input
blocks into such calls (several blocks at a time) and back into output samples, so the
algorithmic latency of a core is ``block - 1 + lookahead`` samples: output sample ``t`` is
produced once ``mic[..t']`` and ``farend[..t' + lookahead]`` with ``t' = t - t mod B + B - 1``
have arrived. The whole-clip output of an echo canceller is the streamer run over the whole
clip (:func:`process_whole`), so streaming == whole by construction. :class:`QueuedStreamer`
holds the input queues every streamer here keeps (``FramedStreamer``, and those of
``deep_adaptive`` and ``webrtc_aec3``).

Memory is bounded: the queues hold less than ``block + lookahead`` samples between calls, and
cores keep fixed-size histories (:class:`SlidingBuffer`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from clarity_se.aec.base import EchoCancellerOutput, check_clip


class EchoCore(Protocol):
    """What :class:`FramedStreamer` drives."""

    def prime(self, farend: np.ndarray) -> None:
        """Receive ``farend[:lookahead]`` (float64) before the first block."""

    def process(self, mic: np.ndarray, farend: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``mic [n]``, ``farend [n]`` (``n`` a multiple of the block; the far end advanced by
        the lookahead) -> (output [n], echo estimate [n]), float64."""


class SlidingBuffer:
    """The last ``capacity`` samples of a stream, indexed by absolute sample number.

    Parameters
    ----------
    capacity : int
        Samples kept (older ones may be dropped).
    start : int
        Absolute index of the first sample that :meth:`append` will add; samples before it read
        as zeros.
    """

    def __init__(self, capacity: int, start: int = 0) -> None:
        self.capacity = int(capacity)
        self._data = np.zeros(2 * self.capacity)
        self._first = start - self.capacity  # absolute index of _data[0]
        self._len = self.capacity  # zeros before ``start``

    @property
    def end(self) -> int:
        """Absolute index one past the newest sample."""
        return self._first + self._len

    def append(self, x: np.ndarray) -> None:
        """Add samples at :attr:`end`."""
        x = np.asarray(x, dtype=np.float64)
        if self._len + x.size > self._data.size:
            keep = min(self._len, self.capacity)
            self._data[:keep] = self._data[self._len - keep : self._len]
            self._first += self._len - keep
            self._len = keep
            if keep + x.size > self._data.size:
                self._data = np.concatenate([self._data[:keep], np.zeros(x.size + keep)])
        self._data[self._len : self._len + x.size] = x
        self._len += x.size

    def get(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` (absolute); before the kept range they read as zeros.

        Raises
        ------
        ValueError
            If ``stop`` is past :attr:`end`.
        """
        if stop > self.end:
            raise ValueError(f"SlidingBuffer: samples up to {stop} asked, have up to {self.end}")
        out = np.zeros(stop - start)
        lo = max(start, self._first)
        if lo < stop:
            out[lo - start :] = self._data[lo - self._first : stop - self._first]
        return out


class QueuedStreamer:
    """Input queues of an echo streamer: microphone and far-end samples not yet processed.

    A base class, the ``process`` of :class:`~clarity_se.aec.base.EchoStreamer`: it appends
    the blocks to the queues (:meth:`_enqueue`) and runs the subclass's ``_run()`` (what the
    queues allow: the new output and echo-estimate samples, float64, consuming the queued
    input). The subclass's ``reset()`` calls :meth:`_clear_queues`, and its ``flush()``
    returns the ``_n_in - _n_out`` samples still owed (``_n_in``, ``_n_out``: samples received
    and returned since the last reset).
    """

    _mic: np.ndarray
    _far: np.ndarray
    _n_in: int
    _n_out: int

    def _clear_queues(self, history: int = 0) -> None:
        """Empty queues (or ``history`` zeros before the signal) and zero counts."""
        self._mic = np.zeros(history)
        self._far = np.zeros(history)
        self._n_in = 0
        self._n_out = 0

    def _enqueue(self, mic: np.ndarray, farend: np.ndarray) -> None:
        """Append a block pair to the queues (float64) and count it.

        Parameters
        ----------
        mic, farend : np.ndarray [shape=(n,)], float
            Microphone and far-end samples, same length.

        Raises
        ------
        ValueError
            If the blocks are not mono or differ in length.
        """
        mic, farend = np.asarray(mic), np.asarray(farend)
        if mic.ndim != 1 or farend.ndim != 1 or mic.shape != farend.shape:
            raise ValueError(f"streamer: mic and farend blocks must be mono and of equal length, "
                             f"got {tuple(mic.shape)} and {tuple(farend.shape)}")
        self._mic = np.concatenate([self._mic, mic.astype(np.float64)])
        self._far = np.concatenate([self._far, farend.astype(np.float64)])
        self._n_in += mic.size

    def _run(self) -> tuple[np.ndarray, np.ndarray]:
        """Process what the queues allow: ``(output, echo estimate)`` samples now final."""
        raise NotImplementedError

    def process(self, mic: np.ndarray, farend: np.ndarray) -> EchoCancellerOutput:
        """Feed equal-length mono blocks ``mic [n]``, ``farend [n]``; return the finished
        samples (float32; their number depends on the system's framing and latency).

        Raises
        ------
        ValueError
            If the blocks are not mono or differ in length.
        """
        self._enqueue(mic, farend)
        out, echo = self._run()
        self._n_out += out.size
        return EchoCancellerOutput(out.astype(np.float32), echo.astype(np.float32))


class FramedStreamer(QueuedStreamer):
    """:class:`~clarity_se.aec.base.EchoStreamer` over an :class:`EchoCore`.

    Parameters
    ----------
    make_core : callable
        ``() -> EchoCore``: a fresh core (called by :meth:`reset`).
    block : int
        Samples per core block (>= 1).
    lookahead : int
        Far-end samples the core sees ahead of the microphone (>= 0).
    """

    def __init__(self, make_core: Callable[[], EchoCore], block: int, lookahead: int) -> None:
        if block < 1 or lookahead < 0:
            raise ValueError(f"block must be >= 1 and lookahead >= 0, got {block}, {lookahead}")
        self._make_core = make_core
        self.block = int(block)
        self.lookahead = int(lookahead)
        self.reset()

    @property
    def latency_samples(self) -> int:
        """``block - 1 + lookahead``."""
        return self.block - 1 + self.lookahead

    def reset(self) -> None:
        """Forget all state (start a new clip)."""
        self._core = self._make_core()
        self._clear_queues()
        self._primed = False

    def _run(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._primed and self._far.size >= self.lookahead:
            self._core.prime(self._far[: self.lookahead])
            self._far = self._far[self.lookahead :]
            self._primed = True
        if not self._primed:
            return np.zeros(0), np.zeros(0)
        n = min(self._mic.size, self._far.size) // self.block * self.block
        if n == 0:
            return np.zeros(0), np.zeros(0)
        out, echo = self._core.process(self._mic[:n], self._far[:n])
        self._mic, self._far = self._mic[n:], self._far[n:]
        return out, echo

    def flush(self) -> EchoCancellerOutput:
        """End of clip: the remaining output samples (zeros appended to the inputs); resets."""
        remaining = self._n_in - self._n_out
        pad_mic = (-self._mic.size) % self.block
        self._mic = np.concatenate([self._mic, np.zeros(pad_mic)])
        need_far = self._mic.size + (0 if self._primed else self.lookahead)
        self._far = np.concatenate([self._far, np.zeros(max(0, need_far - self._far.size))])
        out, echo = self._run()
        out, echo = out[:remaining], echo[:remaining]
        self.reset()
        return EchoCancellerOutput(out.astype(np.float32), echo.astype(np.float32))


def run_streamer(streamer, mic: np.ndarray, farend: np.ndarray, block: int) -> EchoCancellerOutput:
    """Run an :class:`~clarity_se.aec.base.EchoStreamer` over a clip in blocks of ``block``.

    Returns
    -------
    EchoCancellerOutput
        Concatenated outputs (same length as ``mic``).
    """
    mic, farend = check_clip(mic, farend)
    streamer.reset()
    outs, echoes = [], []
    for i in range(0, mic.shape[0], block):
        r = streamer.process(mic[i : i + block], farend[i : i + block])
        outs.append(r.output)
        echoes.append(r.echo_estimate)
    r = streamer.flush()
    outs.append(r.output)
    echoes.append(r.echo_estimate)
    return EchoCancellerOutput(np.concatenate(outs), np.concatenate(echoes))


def process_whole(streamer, mic: np.ndarray, farend: np.ndarray, where: str = "clip"):
    """The whole-clip output: ``streamer`` fed the clip in one block, then flushed."""
    mic, farend = check_clip(mic, farend, where)
    streamer.reset()
    a = streamer.process(mic, farend)
    b = streamer.flush()
    return EchoCancellerOutput(np.concatenate([a.output, b.output]),
                               np.concatenate([a.echo_estimate, b.echo_estimate]))
