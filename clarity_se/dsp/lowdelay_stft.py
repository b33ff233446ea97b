r"""Low-delay analysis/synthesis STFT with asymmetric windows (Mauler & Martin 2007).

A long analysis window gives the spectral resolution of a long frame; a short synthesis window,
non-zero only over the last ``S`` samples of the frame, makes the algorithmic latency depend on
``S`` alone.

Framing convention (shared by every function and class here)
------------------------------------------------------------
With window length ``K`` (``win_length``), hop ``R`` (``hop_length``) and synthesis length
``S`` (``synth_length``, a multiple of ``R``, ``j = S / R >= 2``), frame ``k = 0, 1, ...`` holds
the input samples ``[(k + 1) R - K, (k + 1) R - 1]`` (zeros before sample 0), i.e. it is
complete as soon as input sample ``(k + 1) R - 1`` has arrived. Its synthesis segment (the last
``S`` samples of the frame, times the synthesis window) is overlap-added onto output samples
``[(k + 1) R - S, (k + 1) R - 1]``, time-aligned with the input (no output delay is inserted:
the latency is a look-ahead, as in the Clarity rule). A signal of ``T`` samples needs
``ceil(T / R) + j - 1`` frames (:func:`num_frames`); the last ``j - 1`` read zeros beyond the end.

Latency derivation
------------------
Output sample ``t`` receives the segments of the frames with ``(k + 1) R - S <= t <=
(k + 1) R - 1``. The latest of them ends at input sample ``(k + 1) R - 1 <= t + S - 1``, so output
``t`` depends on input samples up to ``t + S - 1`` and on nothing later: the algorithmic latency
is ``S - 1`` samples, independent of ``K`` (attained for ``t`` a multiple of ``R`` when the
segments are written directly, e.g. by a learned decoder; the windowed STFT pair itself reads
one sample less, because the Hann product window is zero at a segment's first sample). For
``K = 512, R = 96, S = 192`` at 44.1 kHz: 191 samples = 4.33 ms. A frame-synchronous real-time
implementation emits ``R`` final output samples per frame, the output block starting ``S - R``
samples before the newest input block.

Perfect reconstruction
----------------------
Analysis window ``h_a`` (Mauler & Martin 2007, Sec. 3, with ``M = S / 2`` and ``d`` leading
zeros)::

    h_a(n) = 0                                   0 <= n < d
           = sqrt(H_{2(K-M-d)}(n - d))           d <= n < K - M
           = sqrt(H_{2M}(n - (K - 2M)))          K - M <= n < K

and synthesis window ``h_s(n) = c H_{2M}(n - (K - 2M)) / h_a(n)`` on ``K - 2M <= n < K`` (0
before), where ``H_L`` is the periodic Hann window of length ``L`` and ``c = 2R / S``. Then
``h_a h_s = c H_S`` on the last ``S`` samples, and shifted copies of ``c H_S`` with hop ``R`` sum
to exactly 1 (``S / R >= 2`` an integer), so ``synthesis(analysis(x)) == x`` for every sample,
edges included. With ``S = K`` both windows become the square-root Hann window (a symmetric
STFT). Tested in ``tests/dsp/test_dsp_lowdelay.py``.

References
----------
D. Mauler and R. Martin, "A low delay, variable resolution, perfect reconstruction spectral
analysis-synthesis system for speech enhancement", Proc. EUSIPCO 2007, pp. 222-226 (window
design, Sec. 3). Z.-Q. Wang, G. Wichern, S. Watanabe and J. Le Roux, "STFT-domain neural speech
enhancement with very low algorithmic latency", IEEE/ACM TASLP 31, 2023 (the same windows with a
DNN in between).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F


def periodic_hann(length: int) -> np.ndarray:
    """Periodic Hann window ``0.5 - 0.5 cos(2 pi n / L)``, ``n = 0 .. L-1``.

    Parameters
    ----------
    length : int
        ``L >= 1`` samples.

    Returns
    -------
    np.ndarray [shape=(length,)], float64

    Raises
    ------
    ValueError
        If ``length < 1``.
    """
    if length < 1:
        raise ValueError(f"window length must be >= 1, got {length}")
    n = np.arange(length, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / length)


def _check_geometry(win_length: int, hop_length: int, synth_length: int, zero_pad: int = 0) -> None:
    if hop_length < 1:
        raise ValueError(f"hop_length must be >= 1, got {hop_length}")
    if synth_length % hop_length or synth_length < 2 * hop_length:
        raise ValueError(
            f"synth_length must be a multiple of hop_length and >= 2 * hop_length, got "
            f"synth_length={synth_length}, hop_length={hop_length}"
        )
    if synth_length % 2:
        raise ValueError(f"synth_length must be even, got {synth_length}")
    if zero_pad < 0 or win_length < synth_length + zero_pad:
        raise ValueError(
            f"need win_length >= synth_length + zero_pad, got win_length={win_length}, "
            f"synth_length={synth_length}, zero_pad={zero_pad}"
        )


def asymmetric_windows(
    win_length: int, hop_length: int, synth_length: int | None = None, zero_pad: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Analysis and synthesis windows of Mauler & Martin (2007, Sec. 3), see the module notes.

    Parameters
    ----------
    win_length : int
        ``K``, analysis window (frame) length, samples.
    hop_length : int
        ``R``, frame shift, samples.
    synth_length : int, optional
        ``S = 2M``, length of the non-zero part of the synthesis window, samples; a multiple of
        ``R`` with ``S >= 2R`` (default ``2R``). Sets the latency, ``S - 1`` samples.
    zero_pad : int
        ``d``, leading zeros of the analysis window (default 0).

    Returns
    -------
    analysis : np.ndarray [shape=(K,)], float64
    synthesis : np.ndarray [shape=(K,)], float64
        Zero on the first ``K - S`` samples. ``analysis * synthesis`` overlap-added with hop
        ``R`` is 1 everywhere.

    Raises
    ------
    ValueError
        If the lengths are inconsistent (``S`` not a multiple of ``R``, ``S < 2R``, odd ``S``,
        ``K < S + d``).
    """
    synth_length = 2 * hop_length if synth_length is None else synth_length
    _check_geometry(win_length, hop_length, synth_length, zero_pad)
    K, M, d = win_length, synth_length // 2, zero_pad
    rise = K - M - d
    analysis = np.zeros(K)
    analysis[d : K - M] = np.sqrt(periodic_hann(2 * rise)[:rise])
    analysis[K - M :] = np.sqrt(periodic_hann(2 * M)[M:])
    product = np.zeros(K)
    product[K - 2 * M :] = periodic_hann(2 * M) * (2.0 * hop_length / synth_length)
    synthesis = np.divide(product, analysis, out=np.zeros(K), where=analysis > 0)
    return analysis, synthesis


def num_frames(n_time: int, hop_length: int, synth_length: int) -> int:
    """Frames covering ``n_time`` output samples: ``ceil(T / R) + S / R - 1`` (0 if ``T = 0``)."""
    if n_time <= 0:
        return 0
    return math.ceil(n_time / hop_length) + synth_length // hop_length - 1


def frame_signal(x: Tensor, win_length: int, hop_length: int, synth_length: int) -> Tensor:
    """Cut ``x`` into the frames of the module's convention (no window applied).

    Parameters
    ----------
    x : Tensor [shape=(..., time)], float
        Any leading dimensions (e.g. ``[batch, channels, time]``).
    win_length, hop_length, synth_length : int
        ``K``, ``R``, ``S`` samples.

    Returns
    -------
    Tensor [shape=(..., n_frames, win_length)]
        Frame ``k`` is input samples ``[(k + 1) R - K, (k + 1) R - 1]``, zeros outside
        ``[0, time)``; ``n_frames = num_frames(time, R, S)``. A strided view of a padded copy;
        differentiable.
    """
    n_time = x.shape[-1]
    n_fr = num_frames(n_time, hop_length, synth_length)
    left = win_length - hop_length
    total = (n_fr - 1) * hop_length + win_length if n_fr else left
    padded = F.pad(x, (left, total - left - n_time))
    if n_fr == 0:
        return padded.new_zeros(*x.shape[:-1], 0, win_length)
    return padded.unfold(-1, win_length, hop_length)


def overlap_add(segments: Tensor, hop_length: int, n_time: int) -> Tensor:
    """Overlap-add synthesis segments of the module's convention into ``n_time`` samples.

    Parameters
    ----------
    segments : Tensor [shape=(..., n_frames, S)], float
        Segment of frame ``k`` lands on output samples ``[(k + 1) R - S, (k + 1) R - 1]``;
        ``n_frames >= num_frames(n_time, R, S)``.
    hop_length : int
        ``R`` samples; ``S`` must be a multiple of it.
    n_time : int
        Output length, samples.

    Returns
    -------
    Tensor [shape=(..., n_time)]
        Differentiable. Sums in the order a streaming accumulator does
        (:class:`OverlapAddBuffer`), so both paths give the same values.

    Raises
    ------
    ValueError
        If ``S`` is not a multiple of ``R`` or there are too few frames.
    """
    n_fr, synth = segments.shape[-2], segments.shape[-1]
    if synth % hop_length:
        raise ValueError(f"segment length {synth} is not a multiple of hop_length {hop_length}")
    j = synth // hop_length
    n_blocks = n_fr - j + 1
    if n_time == 0:
        return segments.new_zeros(*segments.shape[:-2], 0)
    if n_blocks * hop_length < n_time:
        raise ValueError(f"{n_fr} frames cover {max(n_blocks, 0) * hop_length} < {n_time} samples")
    parts = segments.reshape(*segments.shape[:-1], j, hop_length)
    out = torch.zeros_like(parts[..., :n_blocks, 0, :])
    for i in reversed(range(j)):  # frame b + j - 1 - i adds its sub-block i to block b
        out = out + parts[..., j - 1 - i : j - 1 - i + n_blocks, i, :]
    return out.reshape(*out.shape[:-2], n_blocks * hop_length)[..., :n_time]


class LowDelaySTFT(nn.Module):
    """Asymmetric-window STFT analysis/synthesis pair with latency ``S - 1`` samples.

    Parameters
    ----------
    win_length : int
        ``K``, analysis frame length, samples (default 512 = 11.6 ms at 44.1 kHz).
    hop_length : int
        ``R``, frame shift, samples (default 96).
    synth_length : int, optional
        ``S``, synthesis window support, samples (default ``2R``).
    zero_pad : int
        ``d``, leading zeros of the analysis window (default 0).
    n_fft : int, optional
        FFT size ``>= K`` (default ``K``; a larger one zero-pads the frame at its end).

    Notes
    -----
    Works on any leading dimensions (``[batch, channels, time]``), float32 or float64, CPU or
    CUDA; differentiable. :meth:`analysis` gives ``spec [..., n_frames, n_fft // 2 + 1]``
    complex (frames before bins, the layout an LSTM reads); :meth:`synthesis` inverts it.
    Latency and perfect reconstruction: see the module docstring.

    Raises
    ------
    ValueError
        Inconsistent lengths (see :func:`asymmetric_windows`), or ``n_fft < K``.

    Examples
    --------
    >>> import torch
    >>> stft = LowDelaySTFT(win_length=64, hop_length=8, synth_length=16)
    >>> x = torch.randn(2, 3, 101, dtype=torch.float64)
    >>> bool(torch.allclose(stft.synthesis(stft.analysis(x), 101), x))
    True
    >>> stft.latency_samples
    15
    """

    def __init__(
        self,
        win_length: int = 512,
        hop_length: int = 96,
        synth_length: int | None = None,
        zero_pad: int = 0,
        n_fft: int | None = None,
    ) -> None:
        super().__init__()
        synth_length = 2 * hop_length if synth_length is None else synth_length
        analysis, synthesis = asymmetric_windows(win_length, hop_length, synth_length, zero_pad)
        n_fft = win_length if n_fft is None else n_fft
        if n_fft < win_length:
            raise ValueError(f"n_fft must be >= win_length, got {n_fft} < {win_length}")
        self.win_length, self.hop_length, self.synth_length = win_length, hop_length, synth_length
        self.n_fft, self.zero_pad = n_fft, zero_pad
        # float64 so that float64 signals reconstruct to float64 precision; cast per call
        self.register_buffer("analysis_window", torch.tensor(analysis, dtype=torch.float64))
        self.register_buffer(
            "synthesis_window", torch.tensor(synthesis[-synth_length:], dtype=torch.float64)
        )

    @property
    def n_bins(self) -> int:
        """Frequency bins of :meth:`analysis`, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    @property
    def latency_samples(self) -> int:
        """Algorithmic look-ahead ``S - 1`` samples (module docstring)."""
        return self.synth_length - 1

    def num_frames(self, n_time: int) -> int:
        """Frames for a signal of ``n_time`` samples (:func:`num_frames`)."""
        return num_frames(n_time, self.hop_length, self.synth_length)

    def frames(self, x: Tensor) -> Tensor:
        """Unwindowed frames ``[..., n_frames, K]`` of ``x [..., time]`` (:func:`frame_signal`)."""
        return frame_signal(x, self.win_length, self.hop_length, self.synth_length)

    def analysis_frames(self, frames: Tensor) -> Tensor:
        """Windowed FFT of frames ``[..., n_frames, K]`` -> complex ``[..., n_frames, n_bins]``."""
        window = self.analysis_window.to(frames.dtype)
        if frames.shape[-2] == 0:  # some FFT backends reject empty batches
            return torch.zeros(*frames.shape[:-1], self.n_bins, dtype=torch.complex64 if
                               frames.dtype == torch.float32 else torch.complex128,
                               device=frames.device)  # fmt: skip
        return torch.fft.rfft(frames * window, n=self.n_fft)

    def synthesis_segments(self, spec: Tensor) -> Tensor:
        """Inverse FFT, last ``S`` samples of the frame, times the synthesis window.

        ``spec [..., n_frames, n_bins]`` complex -> ``[..., n_frames, S]`` real.
        """
        if spec.shape[-2] == 0:
            return torch.zeros(*spec.shape[:-1], self.synth_length, dtype=spec.real.dtype,
                               device=spec.device)  # fmt: skip
        frames = torch.fft.irfft(spec, n=self.n_fft)[..., : self.win_length]
        return frames[..., -self.synth_length :] * self.synthesis_window.to(frames.dtype)

    def analysis(self, x: Tensor) -> Tensor:
        """``x [..., time]`` -> complex ``spec [..., n_frames, n_bins]``."""
        return self.analysis_frames(self.frames(x))

    def synthesis(self, spec: Tensor, n_time: int) -> Tensor:
        """Complex ``spec [..., n_frames, n_bins]`` -> ``[..., n_time]`` (overlap-add)."""
        return overlap_add(self.synthesis_segments(spec), self.hop_length, n_time)

    def forward(self, x: Tensor) -> Tensor:
        """Analysis then synthesis: reconstructs ``x [..., time]`` (perfect reconstruction)."""
        return self.synthesis(self.analysis(x), x.shape[-1])

    def streamer(self, process: Callable[[Tensor], Tensor] | None = None) -> LowDelaySTFTStreamer:
        """A :class:`LowDelaySTFTStreamer` applying ``process`` to each frame's spectrum."""
        return LowDelaySTFTStreamer(self, process)


class FrameBuffer:
    """Streaming framing: turns arbitrary input chunks into the frames of :func:`frame_signal`.

    Carries the last ``K - R`` samples of history plus the samples of the incomplete hop, so
    memory is bounded (``< K`` samples per channel).

    Parameters
    ----------
    win_length, hop_length : int
        ``K`` and ``R`` samples.
    """

    def __init__(self, win_length: int, hop_length: int) -> None:
        self.win_length, self.hop_length = win_length, hop_length
        self.reset()

    def reset(self) -> None:
        """Forget all input (start a new signal)."""
        self.buf: Tensor | None = None
        self.n_in = 0

    def process(self, x: Tensor) -> Tensor:
        """Append ``x [..., n]`` and return the newly completed frames ``[..., f, K]``."""
        if self.buf is None:
            self.buf = x.new_zeros(*x.shape[:-1], self.win_length - self.hop_length)
        self.n_in += x.shape[-1]
        buf = torch.cat([self.buf, x], dim=-1)
        n_new = (buf.shape[-1] - (self.win_length - self.hop_length)) // self.hop_length
        if n_new <= 0:
            self.buf = buf
            return buf.new_zeros(*buf.shape[:-1], 0, self.win_length)
        used = (n_new - 1) * self.hop_length + self.win_length
        frames = buf[..., :used].unfold(-1, self.win_length, self.hop_length)
        self.buf = buf[..., n_new * self.hop_length :]
        return frames

    def flush(self, synth_length: int) -> Tensor | None:
        """End of signal: the remaining frames (zero-padded) so that the total matches
        :func:`num_frames` of all input; then reset. ``None`` if no input was ever given."""
        if self.buf is None:
            return None
        done = self.n_in // self.hop_length
        total = num_frames(self.n_in, self.hop_length, synth_length)
        missing = total - done
        pad = (
            missing * self.hop_length
            - (self.buf.shape[-1] - (self.win_length - self.hop_length))
        )
        frames = self.process(self.buf.new_zeros(*self.buf.shape[:-1], max(pad, 0)))
        self.reset()
        return frames


class OverlapAddBuffer:
    """Streaming overlap-add of synthesis segments; the same sums as :func:`overlap_add`.

    Parameters
    ----------
    hop_length, synth_length : int
        ``R`` and ``S`` samples (``S`` a multiple of ``R``).
    """

    def __init__(self, hop_length: int, synth_length: int) -> None:
        if synth_length % hop_length:
            raise ValueError(f"synth_length {synth_length} is not a multiple of {hop_length}")
        self.hop_length, self.synth_length = hop_length, synth_length
        self.reset()

    def reset(self) -> None:
        """Forget the accumulator."""
        self.acc: Tensor | None = None
        self.n_frames = 0

    def process(self, segments: Tensor) -> Tensor:
        """Add ``segments [..., f, S]``; return the ``R``-sample blocks that became final."""
        R, j = self.hop_length, self.synth_length // self.hop_length
        if self.acc is None:
            self.acc = segments.new_zeros(*segments.shape[:-2], j, R)
        out = []
        for k in range(segments.shape[-2]):
            self.acc = self.acc + segments[..., k, :].reshape(*segments.shape[:-2], j, R)
            if self.n_frames >= j - 1:
                out.append(self.acc[..., 0, :])
            self.acc = torch.cat([self.acc[..., 1:, :], torch.zeros_like(self.acc[..., :1, :])],
                                 dim=-2)  # fmt: skip
            self.n_frames += 1
        if not out:
            return segments.new_zeros(*segments.shape[:-2], 0)
        return torch.cat(out, dim=-1)


class LowDelaySTFTStreamer:
    """Stateful frame-by-frame analysis -> ``process`` -> synthesis, equal to the whole signal.

    Parameters
    ----------
    stft : LowDelaySTFT
    process : callable, optional
        ``spec [..., f, n_bins] -> spec`` applied to the newly completed frames (identity if
        omitted); a stateful callable (an LSTM mask estimator) sees frames in order.

    Notes
    -----
    :meth:`process` returns the output samples that are final (whole hops), :meth:`flush` the
    rest, trimmed so that the concatenated output has the input's length.
    """

    def __init__(self, stft: LowDelaySTFT, process: Callable[[Tensor], Tensor] | None = None):
        self.stft, self.fn = stft, process
        self.framer = FrameBuffer(stft.win_length, stft.hop_length)
        self.ola = OverlapAddBuffer(stft.hop_length, stft.synth_length)
        self.reset()

    def reset(self) -> None:
        """Forget all state."""
        self.framer.reset()
        self.ola.reset()
        self.n_in = self.n_out = 0

    def _frames(self, frames: Tensor) -> Tensor:
        spec = self.stft.analysis_frames(frames)
        if self.fn is not None:
            spec = self.fn(spec)
        out = self.ola.process(self.stft.synthesis_segments(spec))
        self.n_out += out.shape[-1]
        return out

    def process(self, x: Tensor) -> Tensor:
        """Feed ``x [..., n]``; return the final output samples ``[..., m]``."""
        self.n_in += x.shape[-1]
        return self._frames(self.framer.process(x))

    def flush(self) -> Tensor:
        """Return the remaining output samples and reset (an empty 1-D tensor if no input)."""
        n_in, n_out = self.n_in, self.n_out
        frames = self.framer.flush(self.stft.synth_length)
        if frames is None:
            self.reset()
            return torch.zeros(0)
        out = self._frames(frames)
        self.reset()
        return out[..., : n_in - n_out]
