r"""DTLN: the dual-signal transformation LSTM network, published and hearing-aid variants.

Two separation cores, each ``n_layers`` LSTM layers of ``units`` cells, a dense layer and a
sigmoid mask, are stacked (Westhausen & Meyer 2020, Sec. 2):

1. **core 1** masks the STFT magnitude of a frame; the masked magnitude with the mixture's
   phase is inverted to a time frame;
2. **core 2** encodes that frame with a learned 1x1 convolution (``encoder_size`` filters, no
   bias), normalises the encoding with instant layer normalisation, masks the (unnormalised)
   encoding and decodes it with a 1x1 convolution back to time samples, which are
   overlap-added.

Both classes here run whole signals (training, offline) and, through :class:`DTLNStreamer`,
frame by frame with the LSTM states and the framing / overlap-add buffers carried; the two
paths give the same output (tested within 1e-5). The 1x1 convolutions over the frame axis are
:class:`torch.nn.Linear` layers on the last axis (same weights, same arithmetic). The input
checks, whole-signal path, latency and streamer are shared with CR-CED
(:mod:`clarity_se.models.framewise`).

:class:`DTLN` is the published model (16 kHz, one channel in, one out). :class:`DTLNHearingAid`
is the same two-core design on the low-delay STFT of :mod:`clarity_se.dsp.lowdelay_stft` for the
Clarity hearing-aid task: six microphones at 44.1 kHz in, left and right ear out, 4.33 ms
algorithmic latency.

References
----------
N. L. Westhausen and B. T. Meyer, "Dual-signal transformation LSTM network for real-time noise
suppression", Proc. Interspeech 2020, pp. 2477-2481 (arXiv:2005.07551); the MIT-licensed
TensorFlow reference implementation breizhn/DTLN (``DTLN_model.py``), read for the layer shapes,
the instant layer norm (epsilon 1e-7) and the negative-SNR loss; no code is taken from it.
Y. Luo and N. Mesgarani, "Conv-TasNet", IEEE/ACM TASLP 27(8), 2019 (channel-wise layer norm,
there called cLN, here "instant layer normalisation" as in DTLN).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from clarity_se.dsp.lowdelay_stft import FrameBuffer, LowDelaySTFT, OverlapAddBuffer
from clarity_se.models.framewise import FramewiseModel, HearingAidInput, MonoInput

#: LSTM state of one core: ``(h, c)``, each ``[n_layers, batch, units]``.
CoreState = tuple[Tensor, Tensor]
#: streaming state of a DTLN model: ``{"core1": CoreState, "core2": CoreState}``
State = dict[str, CoreState]

#: epsilon of the instant layer norm and of the log magnitude (reference: 1e-7)
EPS = 1e-7


def magnitude(spec: Tensor) -> Tensor:
    """``|spec|`` with a finite gradient at 0 (``sqrt(max(re^2 + im^2, 1e-20))``).

    Parameters
    ----------
    spec : Tensor [shape=(...)], complex

    Returns
    -------
    Tensor [shape=(...)], real; differentiable everywhere.
    """
    return (spec.real.square() + spec.imag.square()).clamp_min(1e-20).sqrt()


class InstantLayerNorm(nn.Module):
    """Instant (channel-wise) layer normalisation over the last axis, per frame.

    ``y = gamma * (x - mean(x)) / sqrt(var(x) + eps) + beta`` with mean and variance over the
    ``n_features`` of one frame, so it is causal and streams without state.

    Parameters
    ----------
    n_features : int
        Size of the last axis.
    eps : float
        Added to the variance (1e-7, as the reference).

    Notes
    -----
    Input ``[..., n_features]`` float; output the same shape. Differentiable, any device.
    ``2 n_features`` parameters.
    """

    def __init__(self, n_features: int, eps: float = EPS) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(n_features))
        self.beta = nn.Parameter(torch.zeros(n_features))

    def forward(self, x: Tensor) -> Tensor:
        """Normalise each frame ``x [..., n_features]``."""
        mean = x.mean(dim=-1, keepdim=True)
        var = (x - mean).square().mean(dim=-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.gamma + self.beta


class SeparationCore(nn.Module):
    """``n_layers`` LSTM layers, a dense layer and a sigmoid: one DTLN separation core.

    Parameters
    ----------
    in_size : int
        Features per frame.
    mask_size : int
        Mask values per frame.
    units : int
        LSTM cells per layer (128 in DTLN).
    n_layers : int
        LSTM layers (2 in DTLN).
    dropout : float
        Dropout between LSTM layers during training (0.25 in DTLN).

    Notes
    -----
    ``forward(x [batch, frames, in_size], state)`` returns ``mask [batch, frames, mask_size]``
    in (0, 1) and the final state ``(h, c)``, each ``[n_layers, batch, units]``. Causal;
    differentiable. Parameters: per LSTM layer ``4 units (in + units) + 8 units`` (PyTorch keeps
    two bias vectors), dense ``units * mask_size + mask_size``.
    """

    def __init__(
        self, in_size: int, mask_size: int, units: int = 128, n_layers: int = 2,
        dropout: float = 0.25,
    ) -> None:  # fmt: skip
        super().__init__()
        self.units, self.n_layers = units, n_layers
        self.lstm = nn.LSTM(
            in_size, units, n_layers, batch_first=True, dropout=dropout if n_layers > 1 else 0.0
        )
        self.dense = nn.Linear(units, mask_size)

    def forward(self, x: Tensor, state: CoreState | None = None) -> tuple[Tensor, CoreState]:
        """Mask of ``x [batch, frames, in_size]`` and the LSTM state after the last frame."""
        y, state = self.lstm(x, state)
        return torch.sigmoid(self.dense(y)), state


class _DTLNBase(FramewiseModel, nn.Module):
    """Shared pieces: core 2 (encoder, instant layer norm, core, decoder); the frame pipeline,
    latency and streamer are :class:`~clarity_se.models.framewise.FramewiseModel`'s."""

    #: least gain of both cores' masks (0: the published sigmoid masks, unchanged)
    mask_floor: float = 0.0

    def _floored(self, mask: Tensor) -> Tensor:
        """``floor + (1 - floor) mask`` (the mask itself when the floor is 0)."""
        if self.mask_floor == 0.0:
            return mask
        return self.mask_floor + (1.0 - self.mask_floor) * mask

    def _build_core2(
        self, units: int, n_layers: int, encoder_size: int, dropout: float, segment: int
    ) -> None:
        self.encoder = nn.Linear(self.win_length, encoder_size, bias=False)
        self.encoder_norm = InstantLayerNorm(encoder_size)
        self.core2 = SeparationCore(encoder_size, encoder_size, units, n_layers, dropout)
        self.decoder = nn.Linear(encoder_size, segment, bias=False)

    @property
    def latency_s(self) -> float:
        """Algorithmic look-ahead in seconds."""
        return self.latency_samples / self.sample_rate

    def core2_segments(self, frames: Tensor, state: CoreState | None = None):
        """Core 2 on time frames: ``[batch, n_frames, K] -> [batch, n_frames, S]`` segments.

        Encoder (1x1 conv, no bias) -> instant layer norm -> LSTM core -> mask times the
        unnormalised encoding -> decoder (1x1 conv, no bias), times the synthesis window if the
        model has one. Returns the segments and the core's LSTM state.
        """
        encoded = self.encoder(frames)
        mask, state = self.core2(self.encoder_norm(encoded), state)
        segments = self.decoder(encoded * self._floored(mask))
        window = getattr(self, "segment_window", None)
        if window is not None:
            segments = segments * window.to(segments.dtype)
        return segments, state


class DTLN(MonoInput, _DTLNBase):
    r"""The published DTLN (Westhausen & Meyer 2020): 16 kHz, one channel in, one out.

    Paper letters and names -> arguments: block length ``block_len`` (512 samples = 32 ms),
    block shift ``block_shift`` (128 = 8 ms), LSTM units ``units`` (128), LSTM layers per core
    ``n_layers`` (2), learned-basis size ``encoder_size`` (256), dropout ``dropout`` (0.25).

    Parameters
    ----------
    block_len : int
        ``K``, frame (block) length, samples; FFT size (``K / 2 + 1`` bins).
    block_shift : int
        ``R``, frame shift, samples (``K`` a multiple of it, ``K >= 2R``).
    units, n_layers, encoder_size : int
        As above.
    dropout : float
        Between the LSTM layers of each core, training only.
    norm_input : bool
        ``False`` (the paper): core 1 reads the STFT magnitude. ``True``: it reads the instant-
        layer-normalised log magnitude (the reference repository's ``norm_stft`` models, more
        robust to input level), adding ``2 (K/2 + 1)`` parameters.
    sample_rate : int
        Hz (16000 as published), recorded in checkpoints.

    Notes
    -----
    **Signal path** (per frame ``k``, rectangular analysis and no synthesis window, as the
    reference): ``X = rfft(x_k)``; ``m1 = core1(|X|)``; ``y_k = irfft(m1 |X| e^{j angle X})``;
    ``e = encoder(y_k)``; ``m2 = core2(iLN(e))``; ``d_k = decoder(m2 e)``; overlap-add of the
    ``d_k`` with hop ``R``.

    **Latency**: frames and overlap-add follow :mod:`clarity_se.dsp.lowdelay_stft` with
    ``S = K``: output sample ``t`` depends on input up to ``t + K - 1``, i.e. 511 samples =
    31.9 ms at 16 kHz (the reference's 32 ms block delay).

    **Parameters** (reference layer shapes, Keras counts with one bias vector per LSTM):

    ======================  ==========================================  ========
    core 1 LSTM 1           4 * 128 * (257 + 128 + 1)                    197,632
    core 1 LSTM 2           4 * 128 * (128 + 128 + 1)                    131,584
    core 1 dense            128 * 257 + 257                               33,153
    encoder (1x1 conv)      512 * 256                                    131,072
    instant layer norm      2 * 256                                          512
    core 2 LSTM 1           4 * 128 * (256 + 128 + 1)                    197,120
    core 2 LSTM 2           4 * 128 * (128 + 128 + 1)                    131,584
    core 2 dense            128 * 256 + 256                               33,024
    decoder (1x1 conv)      256 * 512                                    131,072
    total (reference)                                                    986,753
    ======================  ==========================================  ========

    PyTorch's :class:`~torch.nn.LSTM` keeps two bias vectors (``b_ih + b_hh``, whose sum is the
    reference's one bias): ``4 * 128`` more per LSTM layer, ``+2,048``, so this model has
    **988,801** trainable parameters (the paper: "less than one million"); pinned in
    ``tests/models/test_dtln.py``.

    ``forward(x)`` takes ``[batch, time]`` or ``[batch, channels, time]`` float (channels are
    processed independently, e.g. the two ears) and returns the same shape. Differentiable;
    CPU or CUDA.

    Raises
    ------
    ValueError
        Inconsistent block geometry, or (forward) an input that is not 2-D or 3-D.
    """

    def __init__(
        self,
        block_len: int = 512,
        block_shift: int = 128,
        units: int = 128,
        n_layers: int = 2,
        encoder_size: int = 256,
        dropout: float = 0.25,
        norm_input: bool = False,
        sample_rate: int = 16000,
    ) -> None:
        super().__init__()
        if block_shift < 1 or block_len % block_shift or block_len < 2 * block_shift:
            raise ValueError(
                f"block_len must be a multiple of block_shift and >= 2 * block_shift, got "
                f"block_len={block_len}, block_shift={block_shift}"
            )
        self.hparams = dict(
            block_len=block_len, block_shift=block_shift, units=units, n_layers=n_layers,
            encoder_size=encoder_size, dropout=dropout, norm_input=norm_input,
            sample_rate=sample_rate,
        )  # fmt: skip
        self.sample_rate = sample_rate
        self.win_length, self.hop_length, self.synth_length = block_len, block_shift, block_len
        self.n_bins = block_len // 2 + 1
        self.channel_layout = ["mono"]
        self.input_norm = InstantLayerNorm(self.n_bins) if norm_input else None
        self.core1 = SeparationCore(self.n_bins, self.n_bins, units, n_layers, dropout)
        self._build_core2(units, n_layers, encoder_size, dropout, block_len)

    # ------------------------------------------------------------------ sub-models
    def core1_mask(self, mags: Tensor, state: CoreState | None = None):
        """Core 1: magnitudes ``[batch, n_frames, n_bins]`` -> mask (same shape) and state."""
        feats = mags
        if self.input_norm is not None:
            feats = self.input_norm(torch.log(mags + EPS))
        return self.core1(feats, state)

    def _process_frames(self, frames: Tensor, state: State | None):
        """Frames ``[B, n_frames, K]`` -> segments ``[B, n_frames, K]`` and the new state."""
        state = state or {}
        spec = torch.fft.rfft(frames)
        mask, s1 = self.core1_mask(magnitude(spec), state.get("core1"))
        est = torch.fft.irfft(spec * mask, n=self.win_length)
        segments, s2 = self.core2_segments(est, state.get("core2"))
        return segments, {"core1": s1, "core2": s2}


class DTLNHearingAid(HearingAidInput, _DTLNBase):
    r"""DTLN for the Clarity hearing aid: six microphones at 44.1 kHz, two ears, 4.33 ms.

    The two cores of :class:`DTLN` on the asymmetric-window low-delay STFT of
    :class:`~clarity_se.dsp.lowdelay_stft.LowDelaySTFT` (Mauler & Martin 2007), run once per ear
    with shared weights (the two ears form a batch of two, so the second ear costs little).

    Parameters
    ----------
    win_length : int
        ``K``, analysis window and FFT size, samples (512 = 11.6 ms at 44.1 kHz, 86 Hz bins).
    hop_length : int
        ``R``, frame shift, samples (96 = 2.18 ms: 459 frames per second).
    synth_length : int
        ``S``, synthesis window support, samples (192); sets the latency.
    units, n_layers, encoder_size : int
        LSTM cells (128), LSTM layers per core (2), learned-basis size (256), as DTLN.
    dropout : float
        Between LSTM layers, training only (0.25).
    n_mics : int
        Input channels, 6 in the CEC2 order ``CH1-L, CH1-R, CH2-L, CH2-R, CH3-L, CH3-R``.
    sample_rate : int
        Hz; the model runs at the CEC2 rate, no resampling (44100).
    identity_init : bool
        Initialise as the front-microphone pass-through (default ``True``; see
        :meth:`_identity_init`), so that short trainings start from the baseline rather than from
        a random decoder. Needs ``encoder_size >= synth_length``.
    output_gain_db : float
        Gain on the output, dB (0): the synthesis window times ``g = 10^(output_gain_db / 20)``,
        so the PyTorch, streaming and ONNX paths all apply it. A model trained with SI-SDR is
        free to choose its output level, and the hearing-aid scores (HASPI/HASQI after the
        listener's amplification) are not scale-invariant; set after training with
        ``clarity-se set-args`` (a deviation from the paper, which has no such gain).
    mask_floor : float
        Least gain of both cores' masks, in [0, 1) (0, the paper's sigmoid masks):
        ``m = floor + (1 - floor) sigmoid(.)``, applied to a trained model's masks with
        ``clarity-se set-args`` (a deviation from the paper; CR-CED's ``mask_floor`` likewise
        bounds how much a mask may remove). Core 2's mask acts on the learned encoding, so there
        the floor bounds the change per basis coefficient, not the spectral attenuation.

    Notes
    -----
    **Signal path** (ear ``e`` in {left, right}, frame ``k``; ``X_s`` is the asymmetric-window
    STFT of signal ``s``):

    * core 1 reads the instant-layer-normalised log magnitudes of three signals, ``3 (K/2+1)``
      features: the ear's front microphone ``CH1-e``; the binaural difference ``CH1-L - CH1-R``
      (a frontal target arrives nearly equally at both ears and largely cancels there, so it
      is a noise reference); and the ear's front-minus-rear difference ``CH1-e - CH3-e`` (a
      first-order differential beam, most sensitive along the front-back axis). Its sigmoid
      mask scales ``X_{CH1-e}`` (the mixture's phase kept) and the inverse FFT gives a time
      frame of ``K`` samples.
    * core 2 encodes that frame (1x1 conv, ``K -> encoder_size``), normalises, masks and
      decodes directly to the ``S``-sample synthesis segment (1x1 conv, ``encoder_size -> S``:
      the rest of the frame would be multiplied by a zero synthesis window), times the
      synthesis window's support; overlap-add with hop ``R``.

    **Latency**: no resampling and no other buffering, so the latency is that of the framing
    (:mod:`clarity_se.dsp.lowdelay_stft`): output sample ``t`` reads input samples up to
    ``t + S - 1``: **191 samples = 4.33 ms** at 44.1 kHz for the defaults, under the Clarity
    limit of 5 ms (220 samples); tested by perturbing the input after ``t + 191``. (The
    synthesis window is zero at a segment's first sample, so the exact reach is one sample
    less, 190; 191 is the structural bound and the figure stated.)

    **Parameters** (defaults): core 1 LSTMs ``4*128*(771+128) + 8*128 = 461,312`` and
    ``4*128*256 + 1,024 = 132,096``, dense ``128*257 + 257 = 33,153``, input norm ``2*771 =
    1,542``; encoder ``512*256 = 131,072``, norm 512, core 2 LSTMs ``197,632 + 132,096``, dense
    33,024, decoder ``256*192 = 49,152``: **1,171,591** (4.7 MB as float32).

    ``forward(mixture [batch, 6, time])`` returns ``[batch, 2, time]`` (left, right),
    time-aligned with the input. Differentiable; CPU or CUDA.

    Raises
    ------
    ValueError
        Inconsistent STFT geometry (see :class:`~clarity_se.dsp.lowdelay_stft.LowDelaySTFT`),
        ``n_mics != 6``, ``mask_floor`` outside [0, 1), or (forward) an input not shaped
        ``[batch, 6, time]``.
    """

    #: rows of the six-microphone input used per ear: own CH1, other CH1, own CH3
    LEFT, RIGHT, CH3_LEFT, CH3_RIGHT = 0, 1, 4, 5

    def __init__(
        self,
        win_length: int = 512,
        hop_length: int = 96,
        synth_length: int = 192,
        units: int = 128,
        n_layers: int = 2,
        encoder_size: int = 256,
        dropout: float = 0.25,
        n_mics: int = 6,
        sample_rate: int = 44100,
        identity_init: bool = True,
        output_gain_db: float = 0.0,
        mask_floor: float = 0.0,
    ) -> None:
        super().__init__()
        self._check_n_mics(n_mics)
        if not 0.0 <= mask_floor < 1.0:
            raise ValueError(f"mask_floor must be in [0, 1), got {mask_floor}")
        self.hparams = dict(
            win_length=win_length, hop_length=hop_length, synth_length=synth_length, units=units,
            n_layers=n_layers, encoder_size=encoder_size, dropout=dropout, n_mics=n_mics,
            sample_rate=sample_rate, identity_init=identity_init, output_gain_db=output_gain_db,
            mask_floor=mask_floor,
        )  # fmt: skip
        if identity_init and encoder_size < synth_length:
            raise ValueError(
                f"identity_init needs encoder_size >= synth_length, got {encoder_size} < "
                f"{synth_length}"
            )
        self.stft = LowDelaySTFT(win_length, hop_length, synth_length)
        self.sample_rate, self.n_mics = sample_rate, n_mics
        self.win_length, self.hop_length, self.synth_length = win_length, hop_length, synth_length
        self.n_bins = self.stft.n_bins
        self.mask_floor = float(mask_floor)
        self.output_gain_db = float(output_gain_db)
        gain = 10.0 ** (float(output_gain_db) / 20.0)
        self.register_buffer(
            "segment_window", (gain * self.stft.synthesis_window).float().clone(), persistent=False
        )
        self.input_norm = InstantLayerNorm(3 * self.n_bins)
        self.core1 = SeparationCore(3 * self.n_bins, self.n_bins, units, n_layers, dropout)
        self._build_core2(units, n_layers, encoder_size, dropout, synth_length)
        if identity_init:
            self._identity_init()

    @torch.no_grad()
    def _identity_init(self, mask_logit: float = 2.0) -> None:
        """Start as the front-microphone pass-through (a deviation from the reference's random
        initialisation, for short training runs): both masks' dense biases at ``mask_logit``
        (masks ~0.88), the first ``S`` encoder filters pick the last ``S`` frame samples, the
        decoder maps them back (gain ``1 / 0.88^2``); the other weights keep their default
        random initialisation."""
        S, K = self.synth_length, self.win_length
        gain = (1.0 + math.exp(-mask_logit)) ** 2
        self.core1.dense.bias.fill_(mask_logit)
        self.core2.dense.bias.fill_(mask_logit)
        self.encoder.weight[:S].zero_()
        self.encoder.weight[:S, K - S :].copy_(torch.eye(S))
        self.decoder.weight.zero_()
        self.decoder.weight[:, :S].copy_(gain * torch.eye(S))

    # ------------------------------------------------------------------ sub-models
    def core1_mask(self, mags: Tensor, state: CoreState | None = None):
        """Core 1: ``[batch, n_frames, 3 n_bins]`` magnitudes (own CH1, L-R, own CH1-CH3) ->
        mask ``[batch, n_frames, n_bins]`` (floored, see ``mask_floor``) and the LSTM state."""
        mask, state = self.core1(self.input_norm(torch.log(mags + EPS)), state)
        return self._floored(mask), state

    @staticmethod
    def ear_features(mags: Tensor) -> Tensor:
        """Magnitudes ``[batch, 5, n_frames, n_bins]`` of :meth:`derived_signals` ->
        per-ear core-1 input ``[batch, 2, n_frames, 3 n_bins]``."""
        left = torch.cat([mags[:, 0], mags[:, 2], mags[:, 3]], dim=-1)
        right = torch.cat([mags[:, 1], mags[:, 2], mags[:, 4]], dim=-1)
        return torch.stack([left, right], dim=1)

    def _process_frames(self, frames: Tensor, state: State | None):
        """Frames ``[B, 5, n_frames, K]`` -> segments ``[B * 2, n_frames, S]`` and the state."""
        state = state or {}
        batch, _, n_frames, _ = frames.shape
        spec = self.stft.analysis_frames(frames)
        feats = self.ear_features(magnitude(spec)).reshape(batch * 2, n_frames, -1)
        mask, s1 = self.core1_mask(feats, state.get("core1"))
        own = spec[:, :2].reshape(batch * 2, n_frames, self.n_bins)
        est = torch.fft.irfft(own * mask, n=self.win_length)
        segments, s2 = self.core2_segments(est, state.get("core2"))
        return segments, {"core1": s1, "core2": s2}


class DTLNStreamer:
    """Frame-by-frame inference of a :class:`DTLN` / :class:`DTLNHearingAid` with carried state.

    Carries the framing buffer (``< K`` input samples per signal), the overlap-add accumulator
    (``S`` samples per output) and the two cores' LSTM states (``2 n_layers units`` values per
    core and signal): memory independent of the signal length. Concatenating :meth:`process`
    outputs and :meth:`flush` gives ``model(x)`` within float32 rounding (tested 1e-5).

    Parameters
    ----------
    model : DTLN or DTLNHearingAid
        Put in eval mode by the caller (dropout).

    Notes
    -----
    ``process(x)`` takes the model's input layout with ``n`` new samples (``[batch, 6, n]`` or
    ``[batch, n]`` / ``[batch, channels, n]``) and returns the whole hops that became final; the
    output lags the input by ``S - R`` to ``S - 1`` samples (the look-ahead, see the models).
    """

    def __init__(self, model: DTLN | DTLNHearingAid) -> None:
        self.model = model
        self.framer = FrameBuffer(model.win_length, model.hop_length)
        self.ola = OverlapAddBuffer(model.hop_length, model.synth_length)
        self.reset()

    def reset(self) -> None:
        """Forget all state (start a new signal)."""
        self.framer.reset()
        self.ola.reset()
        self.state: State | None = None
        self.lead: tuple[int, ...] | None = None
        self.n_in = self.n_out = 0

    def _run(self, frames: Tensor | None, like: Tensor) -> Tensor:
        if frames is None or frames.shape[-2] == 0:
            return like.new_zeros(*(self.lead or (0,)), 0)
        segments, self.state = self.model._process_frames(frames, self.state)
        out = self.ola.process(segments)
        self.n_out += out.shape[-1]
        return out.reshape(*self.lead, out.shape[-1])

    def process(self, x: Tensor) -> Tensor:
        """Feed ``n`` new input samples; return the final output samples."""
        signals, self.lead = self.model._signals(x)
        self.n_in += signals.shape[-1]
        return self._run(self.framer.process(signals), x)

    def flush(self) -> Tensor:
        """End of signal: the remaining output samples; then reset."""
        n_in, n_out = self.n_in, self.n_out
        frames = self.framer.flush(self.model.synth_length)
        like = frames if frames is not None else torch.zeros(0)
        out = self._run(frames, like)[..., : n_in - n_out]
        self.reset()
        return out


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
