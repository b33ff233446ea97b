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

from clarity_se.dsp.lowdelay_stft import frame_signal
from clarity_se.models.framewise import HearingAidInput, MonoInput

#: epsilon of the log magnitude
EPS = 1e-7


def _conv(c_in: int, c_out: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, width, padding=width // 2), nn.BatchNorm1d(c_out), nn.ReLU()
    )


class CRCED(MonoInput, nn.Module):
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

    def initial_state(self, n: int, dtype=torch.float32, device=None) -> Tensor:
        """Context state of silence ``[n, context - 1, n_bins]`` (log of the epsilon)."""
        return torch.full((n, self.context - 1, self.n_bins), math.log(EPS), dtype=dtype,
                          device=device)  # fmt: skip

    def mask_step(self, mags: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One frame: magnitudes ``[batch, n_bins]`` and the context state ``[batch,
        context - 1, n_bins]`` -> mask ``[batch, n_bins]`` and the next state (the function of
        the ONNX graph, :class:`~clarity_se.models.crced_onnx.FrameStep`)."""
        history = torch.cat([state, torch.log(mags + EPS)[:, None]], dim=1)
        return self.mask(history), history[:, 1:]

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


# ---------------------------------------------------------------------------------------------
# hearing-aid variant


def erb_band_matrix(n_bins: int, n_bands: int, sample_rate: float) -> torch.Tensor:
    """Triangular band weights ``[n_bands, n_bins]`` on an ERB-number scale, a partition of unity.

    Band centres ``c_b`` (in FFT bins) are equally spaced in ERB number (Glasberg & Moore 1990,
    ``E(f) = 21.4 log10(1 + 0.00437 f)``) from 0 Hz to the Nyquist frequency, and at least one
    bin apart (``c_b = max(c_b^ERB, b)``: at 44.1 kHz / 512 points the lowest ERB bands are
    narrower than a bin). Row ``b`` is the linear-interpolation basis function of knot ``c_b``
    (a triangle from ``c_{b-1}`` to ``c_{b+1}``), so every column sums to 1: interpolating band
    values with the transpose gives per-bin values, and constant band values give a constant.

    Parameters
    ----------
    n_bins : int
        FFT bins ``K / 2 + 1``.
    n_bands : int
        Bands, ``2 <= n_bands <= n_bins``.
    sample_rate : float
        Hz.

    Returns
    -------
    Tensor [shape=(n_bands, n_bins)], float64, non-negative.

    Raises
    ------
    ValueError
        ``n_bands`` outside ``[2, n_bins]``.

    References
    ----------
    B. R. Glasberg and B. C. J. Moore, "Derivation of auditory filter shapes from notched-noise
    data", Hearing Research 47, 1990 (ERB number). J.-M. Valin, "A hybrid DSP/deep learning
    approach to real-time full-band speech enhancement", MMSP 2018 (band gains interpolated with
    triangular bands, as here).
    """
    if not 2 <= n_bands <= n_bins:
        raise ValueError(f"n_bands must be in [2, {n_bins}], got {n_bands}")
    nyquist = sample_rate / 2
    e_max = 21.4 * math.log10(1 + 0.00437 * nyquist)
    erb = torch.linspace(0, e_max, n_bands, dtype=torch.float64)
    hz = (10 ** (erb / 21.4) - 1) / 0.00437
    centres = torch.maximum(hz / nyquist * (n_bins - 1), torch.arange(n_bands, dtype=torch.float64))
    centres[-1] = n_bins - 1
    k = torch.arange(n_bins, dtype=torch.float64)
    weights = torch.zeros(n_bands, n_bins, dtype=torch.float64)
    for b in range(n_bands):
        if b > 0:
            lo, c = centres[b - 1], centres[b]
            rise = (k >= lo) & (k <= c)
            weights[b, rise] = (k[rise] - lo) / (c - lo)
        if b < n_bands - 1:
            c, hi = centres[b], centres[b + 1]
            fall = (k >= c) & (k <= hi)
            weights[b, fall] = (hi - k[fall]) / (hi - c)
    return weights


class CRCEDHearingAid(HearingAidInput, nn.Module):
    r"""CR-CED for the Clarity hearing aid: six microphones at 44.1 kHz, two ears, 4.33 ms.

    The cascaded redundant convolutional encoder-decoder of :class:`CRCED` (convolution + batch
    norm + ReLU along the frequency axis, no pooling, four 3-layer units with skips, a
    two-layer tail and a full-band output layer: 16 layers) on the low-delay STFT of
    :class:`~clarity_se.dsp.lowdelay_stft.LowDelaySTFT`, with the six microphones as input
    channels and both ears' masks computed at once.

    Parameters
    ----------
    win_length, hop_length, synth_length : int
        ``K`` (512 = 11.6 ms), ``R`` (96 = 2.18 ms), ``S`` (192) samples of the low-delay STFT.
    n_bands : int
        ERB-spaced triangular bands the network works on (32; :func:`erb_band_matrix`).
    context : int
        Frames in (current + past), 8 as the paper.
    width_first : int
        Width of the first layer (5 bands; ``filters_outer`` filters).
    filters_outer, filters_mid, filters_inner : int
        A unit's layers (12, 16, 8: the paper's 18-30-8 shape, thinner).
    width_outer, width_mid, width_inner : int
        Their widths over bands (9, 5, 9 as the paper).
    n_units : int
        Full units (4 as the paper: 1 + 12 + 2 + 1 = 16 layers).
    mask_floor : float
        Least gain of the mask (0.1 = -20 dB): ``m = floor + (1 - floor) sigmoid(.)``.
    frame_norm : bool
        Subtract from each frame's log band powers their mean over the 5 signals and the
        bands (``True``): the features, hence the masks, do not depend on the input level
        (a gain ``g`` adds ``log g^2`` to every log power).
    n_mics : int
        6, the CEC2 order ``CH1-L, CH1-R, CH2-L, CH2-R, CH3-L, CH3-R``.
    sample_rate : int
        Hz (44100, no resampling).
    identity_init : bool
        Start near the front-microphone pass-through (output bias 3, output weights / 10: all
        masks ~0.96), so that short trainings start from the baseline.
    output_gain_db : float
        Gain on the output, dB (0): the masks times ``g = 10^(output_gain_db / 20)``. A model
        trained with a scale-invariant loss (SI-SDR) has no reason to keep the target's
        level, and the hearing-aid scores are not scale-invariant (the amplifier and the
        audibility of the ear model follow the level); this sets the scale after training,
        e.g. to give the target the unit gain it has in the mixture (see the recipe's README).

    Notes
    -----
    **Signal path** (frame ``k``): the five linear signals of
    :meth:`~clarity_se.models.framewise.HearingAidInput.derived_signals` (``CH1-L``, ``CH1-R``, the
    binaural difference ``CH1-L - CH1-R``, and each ear's front-minus-rear ``CH1 - CH3``) are
    analysed with the low-delay STFT; their power spectra are pooled into ``n_bands`` ERB bands
    and logged (``log(P_b + 1e-10)``), minus the frame's mean (``frame_norm``); the features
    of frames ``k - 7 .. k`` (oldest first) form the ``8 x 5 = 40`` input channels of the
    first convolution, the band axis being the convolution axis. The last layer (2 filters of
    width ``2 n_bands - 1``, full band, no batch norm) gives a sigmoid mask per ear and band,
    interpolated to the FFT bins with the partition-of-unity triangles, floored, and applied
    to that ear's ``CH1`` spectrum (noisy phase); synthesis window and overlap-add as the
    low-delay STFT.

    **Deviations from the paper** (Park & Lee 2017 work on 129 bins at 16 kHz, 1 GMAC/s): the
    network runs on 32 ERB bands and thinner units (filters 12-16-8 instead of 18-30-8; first
    layer width 5) to stay within 0.3 GMAC per second of 44.1 kHz audio at 459 frames per
    second (:meth:`macs_per_second`); input is the five derived signals' log band power
    (binaural and front-back cues) and output a floored mask per ear.

    **Latency**: every operation is within a frame, except the 8-frame context, which reads
    past frames only; so the latency is that of the framing (:mod:`clarity_se.dsp.lowdelay_stft`):
    output sample ``t`` receives segments of frames ending at input sample
    ``floor(t / R) R + S - 1 <= t + S - 1``: **191 samples = 4.33 ms** at 44.1 kHz, within the
    Clarity 5 ms (220 samples). Tested by perturbing the input after ``t + 191``.

    **Parameters** (defaults; weights + biases, + batch-norm scale and shift):

    =====  ==========================  ====================  ===========================
    layer  filters x width (bands)     input channels        weights + biases (+ BN)
    =====  ==========================  ====================  ===========================
    1      12 x 5                      40 (8 frames x 5)     2,400 + 12 (+ 24)
    2-13   4 units of (16x5, 8x9, 12x9), skip around each    4 x 2,976 + 4 x 36 (+ 4 x 72)
    14-15  16 x 5, 8 x 9               12, 16                2,112 + 24 (+ 48)
    16     2 x 63 (no BN, sigmoid)     8                     1,008 + 2
    =====  ==========================  ====================  ===========================

    **17,966** trainable parameters (pinned in ``tests/models/test_crced.py``); 17,606 after
    :func:`fold_batch_norms` (the batch norms' shift goes into the biases).

    ``forward(mixture [batch, 6, time])`` returns ``[batch, 2, time]`` (left, right),
    time-aligned with the input. Differentiable; CPU or CUDA. Streams with
    :class:`~clarity_se.models.dtln.DTLNStreamer` (state: the last 7 frames' features).

    Raises
    ------
    ValueError
        Inconsistent STFT geometry, ``n_mics != 6``, ``n_bands`` out of range, or (forward) an
        input not shaped ``[batch, 6, time]``.

    References
    ----------
    S. R. Park and J. W. Lee, Interspeech 2017 (arXiv:1609.07132), Sec. 3, Table 1 (CR-CED).
    D. Mauler and R. Martin, EUSIPCO 2007 (low-delay windows).
    """

    #: number of derived input signals per frame
    N_SIGNALS = 5
    #: log-power floor of the band features
    POWER_EPS = 1e-10

    def __init__(
        self,
        win_length: int = 512,
        hop_length: int = 96,
        synth_length: int = 192,
        n_bands: int = 32,
        context: int = 8,
        width_first: int = 5,
        filters_outer: int = 12,
        filters_mid: int = 16,
        filters_inner: int = 8,
        width_outer: int = 9,
        width_mid: int = 5,
        width_inner: int = 9,
        n_units: int = 4,
        mask_floor: float = 0.1,
        frame_norm: bool = True,
        n_mics: int = 6,
        sample_rate: int = 44100,
        identity_init: bool = True,
        output_gain_db: float = 0.0,
    ) -> None:
        from clarity_se.dsp.lowdelay_stft import LowDelaySTFT

        super().__init__()
        self._check_n_mics(n_mics)
        self.hparams = dict(
            win_length=win_length, hop_length=hop_length, synth_length=synth_length,
            n_bands=n_bands, context=context, width_first=width_first,
            filters_outer=filters_outer, filters_mid=filters_mid,
            filters_inner=filters_inner, width_outer=width_outer, width_mid=width_mid,
            width_inner=width_inner, n_units=n_units, mask_floor=mask_floor,
            frame_norm=frame_norm, n_mics=n_mics, output_gain_db=output_gain_db,
            sample_rate=sample_rate, identity_init=identity_init,
        )  # fmt: skip
        self.stft = LowDelaySTFT(win_length, hop_length, synth_length)
        self.sample_rate, self.n_mics = sample_rate, n_mics
        self.win_length, self.hop_length, self.synth_length = win_length, hop_length, synth_length
        self.n_bins, self.n_bands, self.context = self.stft.n_bins, n_bands, context
        self.mask_floor, self.frame_norm = float(mask_floor), bool(frame_norm)
        self.output_gain_db = float(output_gain_db)
        self.output_gain = 10.0 ** (self.output_gain_db / 20.0)
        bands = erb_band_matrix(self.n_bins, n_bands, sample_rate)
        self.register_buffer("interp", bands.float(), persistent=False)  # [bands, bins]
        pool = bands / bands.sum(dim=1, keepdim=True)
        self.register_buffer("pool", pool.float(), persistent=False)  # rows sum to 1
        f_a, f_b, f_c = filters_outer, filters_mid, filters_inner
        w_a, w_b, w_c = width_outer, width_mid, width_inner
        self.first = _conv(context * self.N_SIGNALS, f_a, width_first)
        self.units = nn.ModuleList(
            nn.Sequential(_conv(f_a, f_b, w_b), _conv(f_b, f_c, w_c), _conv(f_c, f_a, w_a))
            for _ in range(n_units)
        )
        self.tail = nn.Sequential(_conv(f_a, f_b, w_b), _conv(f_b, f_c, w_c))
        self.out = nn.Conv1d(f_c, 2, 2 * n_bands - 1, padding=n_bands - 1)
        if identity_init:
            with torch.no_grad():
                self.out.weight.mul_(0.1)
                self.out.bias.fill_(3.0)

    # ------------------------------------------------------------------ pieces
    def band_features(self, power: Tensor, signal_dim: int) -> Tensor:
        """Power spectra ``[..., n_bins]`` of the 5 signals (axis ``signal_dim``) -> log band
        power ``[..., n_bands]``, minus its mean over signals and bands per frame if
        ``frame_norm`` (then a gain on the input changes no feature)."""
        feats = torch.log(power @ self.pool.t().to(power.dtype) + self.POWER_EPS)
        if self.frame_norm:
            feats = feats - feats.mean(dim=(signal_dim, -1), keepdim=True)
        return feats

    def masks(self, windows: Tensor) -> Tensor:
        """Features ``[M, context * 5, n_bands]`` (frame-major, oldest first) -> per-bin masks
        ``[M, 2, n_bins]`` (left, right) in ``[g mask_floor, g]``, ``g`` the output gain."""
        h = self.first(windows)
        for unit in self.units:
            h = h + unit(h)
        band_mask = torch.sigmoid(self.out(self.tail(h)))
        band_mask = self.mask_floor + (1.0 - self.mask_floor) * band_mask
        return (self.output_gain * band_mask) @ self.interp.to(band_mask.dtype)

    def initial_state(self, n: int, dtype=torch.float32, device=None) -> Tensor:
        """Context state of silence ``[n, context - 1, 5, n_bands]`` (the features of zeros)."""
        value = 0.0 if self.frame_norm else math.log(self.POWER_EPS)
        return torch.full((n, self.context - 1, self.N_SIGNALS, self.n_bands), value,
                          dtype=dtype, device=device)  # fmt: skip

    def mask_step(self, mags: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One frame: magnitudes ``[batch, 5, n_bins]`` of the derived signals and the context
        state ``[batch, context - 1, 5, n_bands]`` -> masks ``[batch, 2, n_bins]`` and the next
        state (the function of the ONNX graph, :class:`~clarity_se.models.crced_onnx.FrameStep`;
        the same arithmetic as :meth:`_process_frames`)."""
        feats = self.band_features(mags.square(), 1)
        history = torch.cat([state, feats[:, None]], dim=1)
        batch = history.shape[0]
        return self.masks(history.reshape(batch, -1, self.n_bands)), history[:, 1:]

    def _process_frames(self, frames: Tensor, state: Tensor | None):
        """Frames ``[N, 5, n, K]`` -> segments ``[N, 2, n, S]`` and the last ``context - 1``
        frames' features ``[N, context - 1, 5, n_bands]`` (the streaming state)."""
        batch, _, n, _ = frames.shape
        if state is None:
            state = self.initial_state(batch, frames.dtype, frames.device)
        if n == 0:
            return frames.new_zeros(batch, 2, 0, self.synth_length), state
        spec = self.stft.analysis_frames(frames)  # [N, 5, n, bins]
        power = spec.real.square() + spec.imag.square()
        feats = self.band_features(power, 1).transpose(1, 2)  # [N, n, 5, bands]
        history = torch.cat([state, feats], dim=1)
        windows = history.unfold(1, self.context, 1)  # [N, n, 5, bands, context]
        windows = windows.permute(0, 1, 4, 2, 3).reshape(batch * n, -1, self.n_bands)
        mask = self.masks(windows).reshape(batch, n, 2, self.n_bins).transpose(1, 2)
        segments = self.stft.synthesis_segments(spec[:, :2] * mask)
        return segments, history[:, n:]

    def derived_frames(self, mixture: Tensor) -> Tensor:
        """Unwindowed frames ``[batch, 5, n_frames, K]`` of the derived signals of ``mixture
        [batch, 6, time]`` (the framing of :mod:`clarity_se.dsp.lowdelay_stft`)."""
        return self.stft.frames(self._signals(mixture)[0])

    def macs_per_second(self) -> dict[str, float]:
        """Multiply-accumulates per second of audio, counted analytically (both ears).

        Per frame (``sample_rate / R`` frames per second):

        * ``network``: every convolution as a dense implementation computes it,
          ``c_in c_out width n_bands`` (zero padding included, batch norms folded);
        * ``bands``: power spectra (2 per bin and signal), band pooling and mask
          interpolation (the non-zeros of the triangle matrix), mask floor;
        * ``stft``: analysis windows (``5 K``), mask times spectrum (``2 x 2 n_bins``),
          synthesis windows (``2 S``), and 5 real FFTs + 2 inverse of ``K`` points counted
          as ``K log2 K`` each (a radix-2 complex FFT of ``K / 2`` points, ``K log2(K / 2)``
          real multiplies, plus the real-signal post-processing, ``K``);
        * ``total``.

        Returns
        -------
        dict of float, MAC per second.
        """
        per_frame = {"network": 0.0, "bands": 0.0, "stft": 0.0}
        for conv in (m for m in self.modules() if isinstance(m, nn.Conv1d)):
            per_frame["network"] += (
                conv.in_channels * conv.out_channels * conv.kernel_size[0] * self.n_bands
            )
        nnz = float((self.interp != 0).sum())
        per_frame["bands"] = self.N_SIGNALS * (2 * self.n_bins + nnz) + 2 * (nnz + self.n_bands)
        K, S = self.win_length, self.synth_length
        per_frame["stft"] = self.N_SIGNALS * K + 4 * self.n_bins + 2 * S + 7 * K * math.log2(K)
        frames_per_s = self.sample_rate / self.hop_length
        out = {k: v * frames_per_s for k, v in per_frame.items()}
        out["total"] = sum(out.values())
        return out


@torch.no_grad()
def fold_batch_norms(model: nn.Module) -> nn.Module:
    """A copy of a CR-CED model with each batch norm folded into the convolution before it.

    For ``y = gamma (conv(x) - mu) / sqrt(var + eps) + beta`` (eval mode, running statistics)
    the folded convolution has weights ``w gamma / sqrt(var + eps)`` and bias
    ``(b - mu) gamma / sqrt(var + eps) + beta``; the batch norm becomes the identity. The
    result computes the same function as ``model.eval()`` (tested within float32 rounding) with
    one multiply-add per weight: the form to quantise and deploy (ONNX export uses it).

    Parameters
    ----------
    model : CRCED or CRCEDHearingAid
        Any module whose batch norms follow a :class:`~torch.nn.Conv1d` in an
        :class:`~torch.nn.Sequential` (``conv, BatchNorm1d, ReLU``).

    Returns
    -------
    nn.Module
        A deep copy in eval mode, without :class:`~torch.nn.BatchNorm1d`.

    Raises
    ------
    ValueError
        A batch norm that does not follow a convolution.
    """
    import copy

    folded = copy.deepcopy(model).eval()
    for seq in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        for i, layer in enumerate(list(seq)):
            if not isinstance(layer, nn.BatchNorm1d):
                continue
            conv = seq[i - 1] if i > 0 else None
            if not isinstance(conv, nn.Conv1d):
                raise ValueError("fold_batch_norms: a BatchNorm1d that does not follow a Conv1d")
            scale = layer.weight / torch.sqrt(layer.running_var + layer.eps)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(layer.running_mean)
            conv.weight.mul_(scale[:, None, None])
            conv.bias = nn.Parameter((bias - layer.running_mean) * scale + layer.bias)
            seq[i] = nn.Identity()
    return folded
