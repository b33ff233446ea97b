r"""RES U-Net: residual-echo suppression with a tunable distortion/suppression trade-off.

After a linear echo canceller, the error signal ``e = s + r`` still holds residual echo and
noise ``r`` besides the near-end speech ``s``. Following Ivry, Cohen and Berdugo (2021), a small
U-Net of depthwise-separable convolutions reads the magnitudes of the canceller's error and of
its echo estimate over the current frame and its recent past and returns the current frame of
the near-end estimate, resynthesised with the error's phase. The trade-off parameter ``alpha``
is an **input** (one model for every ``alpha`` in ``[0, 1]``): it is appended as a constant
plane to the input of every unit, and the training objective weights residual-echo leakage by
it (:func:`res_objective`).

Architecture (``C = (24, 48, 72, 96, 128)``; every unit: depthwise 3x3 convolution, pointwise
1x1 convolution, batch norm, ReLU; the ``alpha`` plane joins each pointwise input):

=========  ==================================  ==========================================
unit       operation                           output ``[channels, frames, bins]``
=========  ==================================  ==========================================
input      log power of ``|E|``, ``|Y^|``      2 x 32 x 160 (bins 0-159)
down 1-5   depthwise 3x3 stride 2 + pointwise,  24x16x80, 48x8x40, 72x4x20, 96x2x10,
           then depthwise 3x3 + pointwise      128x1x5
up 5-1     depthwise transposed conv. x2 in    96x1x10, 72x1x20, 48x1x40, 24x1x80,
           frequency, concatenate the skip's   16x1x160
           last frame, pointwise; then
           depthwise 1x3 + pointwise
head       pointwise to 1, sigmoid             mask on bins 0-159 (bin 160 takes bin 159's)
=========  ==================================  ==========================================

The contracting path sees the whole 32-frame window; the expanding path rebuilds only the last
frame (each expanding unit reads the last frame of its skip connection), which is all the
output uses. 129,801 trainable parameters (pinned in ``tests/models/test_res_unet.py``; the
paper: "136 thousand"); 5.1 M multiply-accumulates per frame (convolutions, counted by
``torch.utils.flop_counter`` on one window; pinned in the same test file), 1.3 GMAC per second
of audio at the 64-sample hop.

Framing: the low-delay STFT of :mod:`clarity_se.dsp.lowdelay_stft` with a 320-sample analysis
window (20 ms at 16 kHz, 161 bins, as the paper), a 64-sample hop and a 128-sample synthesis
window. **Latency**: output sample ``t`` depends on error and echo-estimate samples up to ``t +
127`` (``S - 1``, module docstring of :mod:`~clarity_se.dsp.lowdelay_stft`): 7.9 ms, so that a
canceller with up to 12 ms (``pbfdaf``: 191 samples) plus the suppressor stays within the AEC
Challenge's 20 ms. The 31 frames before the current one are context (124 ms), not look-ahead.

Deviations from the paper (its exact layer sizes and objective are not reproduced here): a 4 ms
hop instead of 10 ms (for the latency budget above, so the context covers 124 ms instead of
300 ms); the expanding path works on the last frame only; the output is a sigmoid mask on the
error magnitude (the paper maps to the magnitude directly); ``alpha`` conditions one network
instead of selecting one of 101 trained ones.

References
----------
A. Ivry, I. Cohen and B. Berdugo, "Deep residual echo suppression with a tunable tradeoff between
signal distortion and echo suppression", Proc. ICASSP 2021, pp. 126-130 (arXiv:2106.13531).
O. Ronneberger, P. Fischer and T. Brox, "U-Net", MICCAI 2015 (contracting/expanding paths with
skips). F. Chollet, "Xception", CVPR 2017 (depthwise-separable convolutions).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from clarity_se.dsp.lowdelay_stft import LowDelaySTFT, OverlapAddBuffer

#: Hz
SAMPLE_RATE = 16000
#: power floor of the log features (full scale 1.0)
POWER_FLOOR = 1e-10


class _Down(nn.Module):
    """Contracting unit: (depthwise 3x3 stride 2, pointwise, BN, ReLU) then (depthwise 3x3,
    pointwise, BN, ReLU); ``alpha`` joins each pointwise input as a constant plane."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.dw1 = nn.Conv2d(c_in, c_in, 3, stride=2, padding=1, groups=c_in)
        self.pw1 = nn.Conv2d(c_in + 1, c_out, 1)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.dw2 = nn.Conv2d(c_out, c_out, 3, padding=1, groups=c_out)
        self.pw2 = nn.Conv2d(c_out + 1, c_out, 1)
        self.bn2 = nn.BatchNorm2d(c_out)

    @staticmethod
    def _with_alpha(x: Tensor, alpha: Tensor) -> Tensor:
        plane = alpha.view(-1, 1, 1, 1).expand(x.shape[0], 1, x.shape[2], x.shape[3])
        return torch.cat([x, plane.to(x.dtype)], dim=1)

    def forward(self, x: Tensor, alpha: Tensor) -> Tensor:
        """``x [batch, c_in, frames, bins]``, ``alpha [batch]`` -> ``[batch, c_out, frames / 2,
        bins / 2]`` (the module docstring's layer table)."""
        x = F.relu(self.bn1(self.pw1(self._with_alpha(self.dw1(x), alpha))))
        return F.relu(self.bn2(self.pw2(self._with_alpha(self.dw2(x), alpha))))


class _Up(nn.Module):
    """Expanding unit on one frame ``[batch, channels, bins]``: depthwise transposed convolution
    doubling the bins, skip concatenated, pointwise, BN, ReLU; then depthwise 1x3, pointwise,
    BN, ReLU; ``alpha`` joins each pointwise input."""

    def __init__(self, c_in: int, c_skip: int, c_out: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose1d(c_in, c_in, 2, stride=2, groups=c_in)
        self.pw1 = nn.Conv1d(c_in + c_skip + 1, c_out, 1)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.dw2 = nn.Conv1d(c_out, c_out, 3, padding=1, groups=c_out)
        self.pw2 = nn.Conv1d(c_out + 1, c_out, 1)
        self.bn2 = nn.BatchNorm1d(c_out)

    @staticmethod
    def _with_alpha(x: Tensor, alpha: Tensor) -> Tensor:
        plane = alpha.view(-1, 1, 1).expand(x.shape[0], 1, x.shape[2])
        return torch.cat([x, plane.to(x.dtype)], dim=1)

    def forward(self, x: Tensor, skip: Tensor, alpha: Tensor) -> Tensor:
        """Last frame only: ``x [batch, c_in, bins]``, ``skip [batch, c_skip, 2 bins]``,
        ``alpha [batch]`` -> ``[batch, c_out, 2 bins]``."""
        x = torch.cat([self.up(x), skip], dim=1)
        x = F.relu(self.bn1(self.pw1(self._with_alpha(x, alpha))))
        return F.relu(self.bn2(self.pw2(self._with_alpha(self.dw2(x), alpha))))


class RESUNet(nn.Module):
    """The RES U-Net: error and echo-estimate magnitudes -> current frame's suppression mask.

    Parameters
    ----------
    context : int
        Frames per input window, the current one included (default 32; a power of two
        ``>= 32``, halved by each of the 5 contracting units).
    channels : tuple of int
        Channels of the 5 contracting units (the expanding units mirror them).
    out_channels : int
        Channels of the last expanding unit.
    win_length, hop_length, synth_length : int
        Low-delay STFT geometry, samples at 16 kHz (320, 64, 128; ``win_length // 2`` bins
        enter the network, a multiple of 32).
    sample_rate : int
        Hz; only 16000.

    Notes
    -----
    Layer table, latency and deviations from the paper: module docstring. :meth:`window_mask`
    maps ``features [batch, 2, context, 161]`` and ``alpha [batch]`` to ``mask [batch, 161]``;
    :meth:`forward` processes whole clips, :meth:`streamer` frame by frame.

    Raises
    ------
    ValueError
        Unsupported geometry or sample rate.
    """

    def __init__(
        self,
        context: int = 32,
        channels: tuple[int, ...] | list[int] = (24, 48, 72, 96, 128),
        out_channels: int = 16,
        win_length: int = 320,
        hop_length: int = 64,
        synth_length: int = 128,
        sample_rate: int = SAMPLE_RATE,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"RESUNet: sample_rate must be {SAMPLE_RATE}, got {sample_rate}")
        if len(channels) != 5:
            raise ValueError(f"RESUNet: channels must list 5 units, got {channels}")
        if context < 32 or context & (context - 1):
            raise ValueError(f"RESUNet: context must be a power of two >= 32, got {context}")
        if (win_length // 2) % 32:
            raise ValueError(f"RESUNet: win_length // 2 must be a multiple of 32, got {win_length}")
        self.hparams = dict(context=context, channels=list(channels), out_channels=out_channels,
                            win_length=win_length, hop_length=hop_length,
                            synth_length=synth_length, sample_rate=sample_rate)  # fmt: skip
        self.channel_layout = ["error", "echo_estimate"]
        self.context = context
        self.stft = LowDelaySTFT(win_length, hop_length, synth_length)
        self.n_net_bins = win_length // 2
        self.input_norm = nn.BatchNorm2d(2)
        ins = (2,) + channels[:-1]
        self.down = nn.ModuleList(_Down(i, o) for i, o in zip(ins, channels, strict=True))
        outs = channels[-2::-1] + (out_channels,)
        skips = channels[-2::-1] + (2,)
        ups_in = channels[::-1]
        self.up = nn.ModuleList(
            _Up(i, s, o) for i, s, o in zip(ups_in, skips, outs, strict=True)
        )
        self.head = nn.Conv1d(out_channels, 1, 1)

    # ------------------------------------------------------------------ features
    @property
    def latency_samples(self) -> int:
        """Algorithmic look-ahead, samples at 16 kHz: ``synth_length - 1`` (127)."""
        return self.stft.latency_samples

    def frame_synchronous(self, n_fft: int, hop: int) -> bool:
        """Whether the model's STFT frames are those of a square-root Hann STFT of ``n_fft``
        samples every ``hop`` (e.g. :class:`clarity_se.models.deep_adaptive.DeepAdaptiveAEC`'s),
        so that it can mask that system's frames directly (no added latency): ``win_length ==
        synth_length == n_fft`` and ``hop_length == hop == n_fft // 2``."""
        st = self.stft
        return (st.win_length == st.synth_length == n_fft and st.hop_length == hop == n_fft // 2)

    @staticmethod
    def features(error_spec: Tensor, echo_spec: Tensor) -> Tensor:
        """Log power features ``[..., 2, frames, bins]`` of complex ``[..., frames, bins]``."""
        feats = [torch.log10(s.real.square() + s.imag.square() + POWER_FLOOR)
                 for s in (error_spec, echo_spec)]  # fmt: skip
        return torch.stack(feats, dim=-3)

    def silence_feature(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """The feature value of an all-zero frame (pads the context before the clip)."""
        return torch.tensor(POWER_FLOOR, dtype=dtype).log10()

    # ------------------------------------------------------------------ network
    def window_mask(self, features: Tensor, alpha: Tensor) -> Tensor:
        """Mask of the last frame of each window.

        Parameters
        ----------
        features : Tensor [shape=(batch, 2, context, n_bins)]
            :meth:`features` of the error and the echo estimate (``n_bins = win_length // 2 +
            1``).
        alpha : Tensor [shape=(batch,)]
            Trade-off parameter in ``[0, 1]``.

        Returns
        -------
        Tensor [shape=(batch, n_bins)]
            Gains in ``[0, 1]`` on the error's current frame.
        """
        x = self.input_norm(features[..., : self.n_net_bins])
        skips = [x]
        for unit in self.down:
            x = unit(x, alpha)
            skips.append(x)
        y = skips.pop()[:, :, -1, :]  # [batch, C5, bins / 32]
        for unit in self.up:
            y = unit(y, skips.pop()[:, :, -1, :], alpha)
        mask = torch.sigmoid(self.head(y)[:, 0, :])
        return torch.cat([mask, mask[:, -1:]], dim=1)

    def _windows(self, feats: Tensor) -> Tensor:
        """``feats [2, frames, bins]`` -> windows ``[frames, 2, context, bins]`` (zero-signal
        context before the first frame)."""
        pad = self.silence_feature(feats.dtype).expand(2, self.context - 1, feats.shape[-1])
        padded = torch.cat([pad, feats], dim=1)
        return padded.unfold(1, self.context, 1).permute(1, 0, 3, 2)

    def forward(self, error: Tensor, echo_estimate: Tensor, alpha: float | Tensor = 0.5,
                batch_frames: int = 256) -> Tensor:
        """Suppress the residual echo of a whole clip.

        Parameters
        ----------
        error, echo_estimate : Tensor [shape=(time,)]
            The canceller's output and echo estimate, 16 kHz.
        alpha : float or Tensor
            Trade-off in ``[0, 1]`` (0: least distortion, 1: most suppression).
        batch_frames : int
            Windows per network call (memory bound; the output does not depend on it).

        Returns
        -------
        Tensor [shape=(time,)]
            Near-end estimate, time-aligned with the input.
        """
        n_time = error.shape[-1]
        e_spec, y_spec = self.stft.analysis(error), self.stft.analysis(echo_estimate)
        windows = self._windows(self.features(e_spec, y_spec))
        alpha_t = torch.as_tensor(alpha, dtype=windows.dtype).reshape(())
        masks = [self.window_mask(w, alpha_t.expand(w.shape[0]))
                 for w in windows.split(batch_frames)]  # fmt: skip
        mask = torch.cat(masks) if masks else windows.new_zeros(0, e_spec.shape[-1])
        return self.stft.synthesis(e_spec * mask, n_time)

    def streamer(self, alpha: float = 0.5) -> RESUNetStreamer:
        """A :class:`RESUNetStreamer` giving :meth:`forward`'s output frame by frame."""
        return RESUNetStreamer(self, alpha)

    def frame_masker(self, alpha: float = 0.5) -> RESUNetFrameMasker:
        """A :class:`RESUNetFrameMasker`: masks for STFT frames supplied by the caller."""
        return RESUNetFrameMasker(self, alpha)


class RESUNetFrameMasker:
    """Masks for successive STFT frames, the last ``context - 1`` frames of features carried.

    The frame-domain core of :class:`RESUNetStreamer`, also used on another system's own STFT
    frames when their framing equals the model's (:meth:`RESUNet.frame_synchronous`): the
    suppressor then adds no latency (:mod:`clarity_se.aec.res`).

    Parameters
    ----------
    model : RESUNet
        In eval mode.
    alpha : float
        Trade-off in ``[0, 1]``.
    """

    def __init__(self, model: RESUNet, alpha: float = 0.5) -> None:
        self.model, self.alpha = model, float(alpha)
        self.reset()

    def reset(self) -> None:
        """Forget the context (start a new clip)."""
        n_bins = self.model.stft.n_bins
        self._ctx = self.model.silence_feature().expand(2, self.model.context - 1, n_bins).clone()

    @torch.no_grad()
    def masks(self, error_spec: Tensor, echo_spec: Tensor) -> Tensor:
        """Gains of the next frames.

        Parameters
        ----------
        error_spec, echo_spec : Tensor [shape=(frames, n_bins)], complex
            The error's (canceller output's) and the echo estimate's spectra of the next
            ``frames`` frames (``n_bins = win_length // 2 + 1``).

        Returns
        -------
        Tensor [shape=(frames, n_bins)], float32
            Gains in ``[0, 1]``.
        """
        feats = self.model.features(error_spec, echo_spec).to(self._ctx.dtype)
        allf = torch.cat([self._ctx, feats], dim=1)
        if feats.shape[1]:
            windows = allf.unfold(1, self.model.context, 1).permute(1, 0, 3, 2)
            alpha = torch.full((windows.shape[0],), self.alpha, dtype=windows.dtype)
            mask = self.model.window_mask(windows, alpha)
        else:
            mask = feats.new_zeros(0, error_spec.shape[-1])
        self._ctx = allf[:, allf.shape[1] - (self.model.context - 1):]
        return mask


class RESUNetStreamer:
    """Frame-by-frame RES U-Net with its state: framing buffers, the last ``context - 1``
    frames of features (:class:`RESUNetFrameMasker`), the overlap-add tail.

    Parameters
    ----------
    model : RESUNet
        In eval mode.
    alpha : float
        Trade-off in ``[0, 1]``.

    Notes
    -----
    Memory is bounded (two frame buffers, ``context`` feature frames, one synthesis segment).
    The output concatenated over :meth:`process` calls and :meth:`flush` equals
    :meth:`RESUNet.forward` within float32 rounding.
    """

    def __init__(self, model: RESUNet, alpha: float = 0.5) -> None:
        from clarity_se.dsp.lowdelay_stft import FrameBuffer

        self.model, self.alpha = model, float(alpha)
        stft = model.stft
        self._fe = FrameBuffer(stft.win_length, stft.hop_length)
        self._fy = FrameBuffer(stft.win_length, stft.hop_length)
        self._ola = OverlapAddBuffer(stft.hop_length, stft.synth_length)
        self._masker = RESUNetFrameMasker(model, alpha)
        self.reset()

    def reset(self) -> None:
        """Forget all state (start a new clip)."""
        self._fe.reset()
        self._fy.reset()
        self._ola.reset()
        self._masker.reset()
        self.n_in = self.n_out = 0

    @torch.no_grad()
    def _frames(self, fe: Tensor, fy: Tensor) -> Tensor:
        stft = self.model.stft
        e_spec, y_spec = stft.analysis_frames(fe), stft.analysis_frames(fy)
        mask = self._masker.masks(e_spec, y_spec)
        out = self._ola.process(stft.synthesis_segments(e_spec * mask))
        self.n_out += out.shape[-1]
        return out

    def process(self, error: Tensor, echo_estimate: Tensor) -> Tensor:
        """Feed equal-length blocks ``[n]``; return the final output samples ``[m]``."""
        self.n_in += error.shape[-1]
        return self._frames(self._fe.process(error), self._fy.process(echo_estimate))

    def flush(self) -> Tensor:
        """Return the remaining output samples and reset."""
        n_in, n_out = self.n_in, self.n_out
        synth = self.model.stft.synth_length
        fe, fy = self._fe.flush(synth), self._fy.flush(synth)
        if fe is None:
            self.reset()
            return torch.zeros(0)
        out = self._frames(fe, fy)
        self.reset()
        return out[..., : n_in - n_out]


def res_objective(
    mask: Tensor,
    error_mag: Tensor,
    speech_mag: Tensor,
    residual_mag: Tensor,
    alpha: Tensor,
    leak_weight: float = 4.0,
    nullification_db: float = 6.0,
    nullification_weight: float = 0.1,
    leak_gate: str = "none",
) -> Tensor:
    r"""Training objective with the distortion/suppression trade-off ``alpha``.

    Parameters
    ----------
    mask : Tensor [shape=(batch, bins)]
        Output of :meth:`RESUNet.window_mask`.
    error_mag, speech_mag, residual_mag : Tensor [shape=(batch, bins)]
        Current-frame magnitudes of the canceller's error ``e``, the near-end speech ``s`` and
        the residual ``r = e - s`` (echo plus noise).
    alpha : Tensor [shape=(batch,)]
        The trade-off parameter fed to the network.
    leak_weight : float
        ``lambda``: at ``alpha = 1`` the residual leakage weighs ``1 + lambda`` times.
    nullification_db, nullification_weight : float
        Anti-nullification: frames whose output energy falls more than ``nullification_db``
        below the near-end speech energy are penalised (weight ``gamma``), in dB.
    leak_gate : {"none", "bin", "frame"}
        Weight the leakage by the residual's share ``w = |R|^2 / (|R|^2 + |S|^2)`` of each bin
        (``"bin"``) or of the whole frame (``"frame"``, energies summed over bins), so that
        ``alpha`` acts where the residual dominates and leaves speech-dominated bins or frames
        to the distortion term (a deviation from the paper, in the spirit of SER-weighted
        echo-aware losses; ``"none"``, the paper's objective, by default).

    Raises
    ------
    ValueError
        An unknown ``leak_gate``.

    Returns
    -------
    Tensor
        Scalar loss::

            L = mean |m |E| - |S||^2 + lambda alpha [w] |m |R||^2
                + gamma mean_speech-frames relu(10 log10(|S|^2 / |m E|^2) - nullification_db)

    Notes
    -----
    The first term is the paper's spectral distance to the near-end speech; the second adds
    ``alpha``-weighted residual leakage (the energy RESL measures), so ``alpha`` moves the
    optimum from least distortion towards most suppression; the third keeps the network from
    removing whole near-end frames when echo dominates (double talk at low SER). The first two
    terms are divided by the batch's mean error power, so the loss does not depend on level.
    """
    if leak_gate not in ("none", "bin", "frame"):
        raise ValueError(f"leak_gate: 'none', 'bin' or 'frame' expected, got {leak_gate!r}")
    scale = error_mag.square().mean().clamp_min(1e-12)
    out = mask * error_mag
    distortion = (out - speech_mag).square().mean(dim=1) / scale
    leak = (mask * residual_mag).square()
    if leak_gate != "none":
        r2, s2 = residual_mag.square(), speech_mag.square()
        if leak_gate == "frame":
            r2, s2 = r2.sum(dim=1, keepdim=True), s2.sum(dim=1, keepdim=True)
        leak = leak * r2 / (r2 + s2).clamp_min(1e-12)
    leak = leak.mean(dim=1) / scale
    loss = distortion + leak_weight * alpha * leak
    s_energy = speech_mag.square().sum(dim=1)
    o_energy = out.square().sum(dim=1)
    active = s_energy > 1e-4 * s_energy.max().clamp_min(1e-12)
    drop_db = 10.0 * torch.log10((s_energy + 1e-12) / (o_energy + 1e-12))
    penalty = F.relu(drop_db - nullification_db) * active
    return (loss + nullification_weight * penalty).mean()
