r"""CR-CED: the cascaded redundant convolutional encoder-decoder of Park & Lee (2017).

A fully convolutional denoiser for hearing aids: the noisy STFT magnitudes of the current frame
and the 7 before it (256-point window, 64-sample hop at 16 kHz) go in as 8 input channels of
1-D convolutions along the frequency axis; the current frame's clean magnitude comes out and is
resynthesised with the noisy phase. "Redundant": no pooling, the frequency axis keeps its 129
bins through every layer; "cascaded": the (18, 30, 8)-filter encoder-decoder unit is repeated
with skip connections.

Layer table (filters x width over frequency; every layer but the last is convolution + batch
norm + ReLU, "same" padding; skips add a unit's input to its output):

=====  ==========================  ====================  =========================
layer  filters x width             input channels        weights + biases (+ BN)
=====  ==========================  ====================  =========================
1      18 x 9                      8 (frames)            1,296 + 18 (+ 36)
2-13   4 units of (30x5, 8x9, 18x9), skip around each    4 x 6,156 + 4 x 56 (+ 4 x 112)
14-15  30 x 5, 8 x 9               18, 30                4,860 + 38 (+ 76)
16     1 x 129 (no BN, sigmoid)    8                     1,032 + 1
=====  ==========================  ====================  =========================

32,653 trainable parameters (pinned in ``tests/models/test_crced.py``; the paper: "33 K").

Deviations from the paper, for a short training on CPU and level-independent behaviour: the
input is the log magnitude (``log(|X| + 1e-7)``) and the last layer's sigmoid output is a mask on
the current noisy magnitude (the paper regresses the magnitude directly); the loss is still the
MSE between magnitudes. Analysis and synthesis use square-root periodic-Hann windows (75 %
overlap, unit overall gain).

**Latency** (frames and overlap-add of :mod:`clarity_se.dsp.lowdelay_stft` with ``S = K``):
output sample ``t`` depends on input up to ``t + K - 1`` = 255 samples = 15.9 ms at 16 kHz,
over the Clarity 5 ms rule (a reference point, as the published DTLN). The 7 past frames are
context, not look-ahead.

References
----------
S. R. Park and J. W. Lee, "A fully convolutional neural network for speech enhancement",
Proc. Interspeech 2017, pp. 1993-1997 (arXiv:1609.07132), Sec. 3 (R-CED, CR-CED), Table 1.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from clarity_se.dsp.lowdelay_stft import frame_signal, overlap_add

#: epsilon of the log magnitude
EPS = 1e-7


def _conv(c_in: int, c_out: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, width, padding=width // 2), nn.BatchNorm1d(c_out), nn.ReLU()
    )


class CRCED(nn.Module):
    """The published CR-CED (16 kHz, one channel in, one out).

    Parameters
    ----------
    n_fft : int
        Window and FFT length ``K``, samples (256 = 16 ms).
    hop_length : int
        Frame shift, samples (64 = 4 ms; ``K`` must be 4 times it: the synthesis-window gain
        assumes 75 % overlap).
    context : int
        Frames in (current + past), 8.
    filters_outer, filters_mid, filters_inner : int
        Filters of one encoder-decoder unit's layers, 18, 30, 8 (the paper's 18-30-8).
    width_outer, width_mid, width_inner : int
        Their widths over frequency, 9, 5, 9.
    n_units : int
        Full units after the first layer (4); a last unit cut before its 18-filter layer
        follows them.
    sample_rate : int
        Hz, recorded in checkpoints.

    Notes
    -----
    ``forward(x)`` takes ``[batch, time]`` or ``[batch, channels, time]`` float (channels run
    independently) and returns the same shape; differentiable, CPU or CUDA.
    :class:`clarity_se.models.dtln.DTLNStreamer` runs it frame by frame (the state is the
    7 previous frames' features).

    Raises
    ------
    ValueError
        ``n_fft != 4 * hop_length``, or (forward) an input that is not 2-D or 3-D.
    """

    def __init__(
        self,
        n_fft: int = 256,
        hop_length: int = 64,
        context: int = 8,
        filters_outer: int = 18,
        filters_mid: int = 30,
        filters_inner: int = 8,
        width_outer: int = 9,
        width_mid: int = 5,
        width_inner: int = 9,
        n_units: int = 4,
        sample_rate: int = 16000,
    ) -> None:
        super().__init__()
        if n_fft != 4 * hop_length:
            raise ValueError(f"n_fft must be 4 * hop_length, got {n_fft} and {hop_length}")
        self.hparams = dict(n_fft=n_fft, hop_length=hop_length, context=context,
                            filters_outer=filters_outer, filters_mid=filters_mid,
                            filters_inner=filters_inner, width_outer=width_outer,
                            width_mid=width_mid, width_inner=width_inner, n_units=n_units,
                            sample_rate=sample_rate)  # fmt: skip
        self.sample_rate = sample_rate
        self.win_length, self.hop_length, self.synth_length = n_fft, hop_length, n_fft
        self.n_bins = n_fft // 2 + 1
        self.context = context
        self.channel_layout = ["mono"]
        f_a, f_b, f_c = filters_outer, filters_mid, filters_inner
        w_a, w_b, w_c = width_outer, width_mid, width_inner
        self.first = _conv(context, f_a, w_a)
        self.units = nn.ModuleList(
            nn.Sequential(_conv(f_a, f_b, w_b), _conv(f_b, f_c, w_c), _conv(f_c, f_a, w_a))
            for _ in range(n_units)
        )
        self.tail = nn.Sequential(_conv(f_a, f_b, w_b), _conv(f_b, f_c, w_c))
        self.out = nn.Conv1d(f_c, 1, self.n_bins, padding=self.n_bins // 2)
        window = torch.sqrt(0.5 - 0.5 * torch.cos(2 * math.pi * torch.arange(n_fft) / n_fft))
        self.register_buffer("window", window, persistent=False)

    def mask(self, features: Tensor) -> Tensor:
        """Log magnitudes ``[batch, context, n_bins]`` (oldest first) -> mask ``[batch, bins]``."""
        h = self.first(features)
        for unit in self.units:
            h = h + unit(h)
        return torch.sigmoid(self.out(self.tail(h)))[:, 0]

    def _signals(self, x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        if x.dim() not in (2, 3):
            raise ValueError(
                f"x: expected shape [batch, time] or [batch, channels, time], got {tuple(x.shape)}"
            )
        return x.reshape(-1, x.shape[-1]), tuple(x.shape[:-1])

    def _process_frames(self, frames: Tensor, state: Tensor | None):
        """Frames ``[B, n, K]`` -> segments ``[B, n, K]`` and the last ``context - 1`` frames'
        features (the streaming state)."""
        spec = torch.fft.rfft(frames * self.window)
        mag = spec.abs()
        feats = torch.log(mag + EPS)
        if state is None:
            state = torch.full((feats.shape[0], self.context - 1, self.n_bins), math.log(EPS),
                               dtype=feats.dtype, device=feats.device)  # fmt: skip
        history = torch.cat([state, feats], dim=1)
        n = feats.shape[1]
        windows = history.unfold(1, self.context, 1).transpose(-1, -2)  # [B, n, context, bins]
        mask = self.mask(windows.reshape(-1, self.context, self.n_bins)).reshape(mag.shape)
        segments = torch.fft.irfft(spec * mask, n=self.win_length) * self.window / 2.0
        return segments, history[:, n:]

    def enhanced_magnitude(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(estimate, noisy)`` magnitudes ``[signals, n_frames, n_bins]`` of ``x`` (training)."""
        signals, _ = self._signals(x)
        frames = frame_signal(signals, self.win_length, self.hop_length, self.synth_length)
        spec = torch.fft.rfft(frames * self.window)
        feats = torch.log(spec.abs() + EPS)
        pad = torch.full((feats.shape[0], self.context - 1, self.n_bins), math.log(EPS),
                         dtype=feats.dtype, device=feats.device)  # fmt: skip
        windows = torch.cat([pad, feats], 1).unfold(1, self.context, 1).transpose(-1, -2)
        mask = self.mask(windows.reshape(-1, self.context, self.n_bins)).reshape(spec.shape)
        return mask * spec.abs(), spec.abs()

    def forward(self, x: Tensor) -> Tensor:
        """Enhance ``x [batch, time]`` or ``[batch, channels, time]`` (same shape out)."""
        signals, lead = self._signals(x)
        n_time = signals.shape[-1]
        frames = frame_signal(signals, self.win_length, self.hop_length, self.synth_length)
        segments, _ = self._process_frames(frames, None)
        return overlap_add(segments, self.hop_length, n_time).reshape(*lead, n_time)

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency: ``K - 1`` samples."""
        return self.win_length - 1
