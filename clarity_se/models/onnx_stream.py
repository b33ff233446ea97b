"""Frame-by-frame onnxruntime runners of the exported enhancers: the shared framing.

:class:`OnnxFrameStreamer` holds what :class:`~clarity_se.models.dtln_onnx.OnnxDTLNStreamer`
and :class:`~clarity_se.models.crced_onnx.OnnxCRCEDStreamer` share: the hearing-aid variants'
five derived signals, the input frame buffer of ``K`` samples advanced by ``R`` per frame, the
overlap-add of ``S``-sample synthesis segments in a ring of ``S / R`` hops, the first ``S / R -
1`` hops dropped (they precede sample 0, the framing convention of
:mod:`clarity_se.dsp.lowdelay_stft`), and ``flush`` with zeros beyond the end. A subclass sets
``K``, ``R``, ``S``, ``hearing_aid`` and implements :meth:`OnnxFrameStreamer._init_state` and
:meth:`OnnxFrameStreamer._segment` (the model's work on one frame).
"""

from __future__ import annotations

import numpy as np

from clarity_se.dsp.lowdelay_stft import num_frames

__all__ = ["OnnxFrameStreamer", "derived_signals", "ort_session_options"]


def derived_signals(x: np.ndarray, hearing_aid: bool) -> np.ndarray:
    """The model's input signals of a block.

    Parameters
    ----------
    x : np.ndarray [shape=(6, n)] (hearing aid) or [shape=(channels, n)], float
        Microphones in the Clarity order (front L, front R, mid L, mid R, rear L, rear R).
    hearing_aid : bool
        Return the five derived signals (front L, front R, front L - front R, front L - rear L,
        front R - rear R) instead of ``x``.

    Returns
    -------
    np.ndarray [shape=(5, n)] or [shape=(channels, n)], float32

    Raises
    ------
    ValueError
        Input of the wrong shape.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or (hearing_aid and x.shape[0] != 6):
        want = "[6, n]" if hearing_aid else "[channels, n]"
        raise ValueError(f"x: expected shape {want}, got {tuple(x.shape)}")
    if not hearing_aid:
        return x
    out = np.empty((5, x.shape[1]), dtype=np.float32)
    out[:2] = x[:2]
    np.subtract(x[0], x[1], out=out[2])
    np.subtract(x[:2], x[4:6], out=out[3:5])
    return out


def ort_session_options(threads: int):
    """``onnxruntime.SessionOptions`` for one frame per call: ``threads`` intra-op threads, one
    inter-op thread, sequential execution."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


class OnnxFrameStreamer:
    """Block streaming around a per-frame model (see the module docstring).

    ``process(x)`` takes ``[6, n]`` float32 (hearing-aid variant; output ``[2, m]``, left and
    right) or ``[channels, n]`` (published; ``[channels, m]``) and returns the output samples
    that are final; ``flush()`` the rest (the total equals the input length) and resets. Memory:
    ``K`` input samples per signal, the model state, ``S`` output samples per output signal.
    """

    K: int
    R: int
    S: int
    hearing_aid: bool

    def reset(self) -> None:
        """Forget all state (start a new signal)."""
        self.in_buf: np.ndarray | None = None
        self.pending: np.ndarray | None = None
        self.acc: np.ndarray | None = None
        self.n_in = self.n_out = self.n_frames = 0

    def _init_state(self, n_signals: int, n_outputs: int) -> None:
        """Allocate the model state for a new signal (called at its first block)."""
        raise NotImplementedError

    def _segment(self, buf: np.ndarray) -> np.ndarray:
        """The synthesis segments ``[n_outputs, S]`` of the frame ``buf [n_signals, K]``."""
        raise NotImplementedError

    def _frame(self, block: np.ndarray) -> np.ndarray | None:
        R, S = self.R, self.S
        buf = self.in_buf
        buf[:, :-R] = buf[:, R:]
        buf[:, -R:] = block
        segment = self._segment(buf)
        j = S // R
        acc, slot = self.acc, self.n_frames % j  # ring buffer of j hops per output signal
        seg = segment.reshape(-1, j, R)
        acc[:, slot:] += seg[:, : j - slot]  # hop i of the segment -> slot (slot + i) mod j
        acc[:, :slot] += seg[:, j - slot :]
        self.n_frames += 1
        first = acc[:, slot].copy()  # the oldest hop is now complete
        acc[:, slot] = 0.0
        return first if self.n_frames >= j else None  # the first j - 1 precede sample 0

    def _run(self, signals: np.ndarray) -> list[np.ndarray]:
        if self.in_buf is None:
            n_sig = signals.shape[0]
            n_out = 2 if self.hearing_aid else n_sig
            self.in_buf = np.zeros((n_sig, self.K), dtype=np.float32)
            self.pending = np.zeros((n_sig, 0), dtype=np.float32)
            self.acc = np.zeros((n_out, self.S // self.R, self.R), dtype=np.float32)
            self._init_state(n_sig, n_out)
        self.pending = np.concatenate([self.pending, signals], axis=1)
        out = []
        while self.pending.shape[1] >= self.R:
            block, self.pending = self.pending[:, : self.R], self.pending[:, self.R :]
            piece = self._frame(block)
            if piece is not None:
                out.append(piece)
        return out

    def _collect(self, pieces: list[np.ndarray], n_rows: int) -> np.ndarray:
        out = np.concatenate(pieces, axis=1) if pieces else np.zeros((n_rows, 0), np.float32)
        self.n_out += out.shape[1]
        return out.astype(np.float32, copy=False)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Feed ``x [6, n]`` / ``[channels, n]``; return the final output samples.

        Raises
        ------
        ValueError
            Input of the wrong shape.
        """
        signals = derived_signals(x, self.hearing_aid)
        self.n_in += signals.shape[1]
        rows = 2 if self.hearing_aid else signals.shape[0]
        return self._collect(self._run(signals), rows)

    def flush(self) -> np.ndarray:
        """End of signal: the remaining output (zero input beyond the end), then reset."""
        if self.in_buf is None:
            self.reset()
            return np.zeros((2 if self.hearing_aid else 0, 0), dtype=np.float32)
        rows = 2 if self.hearing_aid else self.in_buf.shape[0]
        missing = num_frames(self.n_in, self.R, self.S) - self.n_frames
        pad = missing * self.R - self.pending.shape[1]
        zeros = np.zeros((self.in_buf.shape[0], max(pad, 0)), dtype=np.float32)
        n_left = self.n_in - self.n_out
        out = self._collect(self._run(zeros), rows)[:, :n_left]
        self.reset()
        return out
