"""Causal multi-channel Conv-TasNet for binaural hearing-aid enhancement.

The model reads the six CEC2 hearing-aid microphones and writes, for each of ``n_src`` sources,
a left and a right ear signal at the input sample rate (44.1 kHz for CEC2). There is no internal
resampling: the encoder frame alone sets the algorithmic latency.

Architecture (Luo & Mesgarani 2019, Fig. 1, with the multi-channel encoder of Gu et al. 2019):

* **Spectral encoder** (shared weights): ``Conv1d(1, N, L, stride=L/2)`` + ReLU applied to the
  front-microphone pair ``CH1-L`` and ``CH1-R`` separately -> ``[batch, 2, N, frames]``.
* **Spatial encoder**: ``Conv1d(6, N, L, stride=L/2)`` + ReLU over all six microphones, so the
  separator sees inter-microphone time and level differences.
* **Separator** (TCN): layer norm of the ``3N`` concatenated features, ``1x1`` bottleneck to
  ``B``, ``R`` repeats of ``X`` dilated depthwise-separable blocks (dilation ``2**x``), skip
  connections, PReLU, ``1x1`` to ``n_src * 2 * N`` sigmoid masks.
* **Decoder** (shared): ``ConvTranspose1d(N, 1, L, stride=L/2)`` of each masked front-mic
  representation -> ``[batch, n_src, 2, time]``.

Causality and latency
---------------------
With ``causal=True`` every normalisation is cumulative layer norm (cLN, Luo & Mesgarani 2019,
Sec. III-B-4, Eq. 8-10) and every dilated convolution is left-padded only. The input is
left-padded by ``L - S`` samples (``S = L/2``), so output sample ``t`` depends on input samples
``<= t + L - 1``: the algorithmic latency is ``L - 1`` samples, i.e. ``(L - 1) / sample_rate``
seconds (the default ``L = 128`` at 44.1 kHz gives 2.88 ms, inside the 5 ms hearing-aid budget
of CEC2; no resampling, so nothing else is added). ``causal=False`` uses global layer norm (gLN)
and centred ("same") dilated convolutions, the non-causal comparison system of the paper.

Streaming: :meth:`MultichannelConvTasNet.init_state` / :meth:`separate_frames` carry the causal
state (depthwise-convolution buffers and cLN running sums) between chunks; see
:mod:`clarity_se.models.streaming`. The whole-utterance :meth:`forward` runs the same code with
an empty initial state, so chunked output equals whole output up to float rounding.

References
----------
Y. Luo and N. Mesgarani, "Conv-TasNet: Surpassing ideal time-frequency magnitude masking for
speech separation", IEEE/ACM TASLP 27(8), 1256-1266, 2019.
R. Gu et al., "End-to-end multi-channel speech separation", arXiv:1905.06286, 2019 (spectral +
spatial encoder).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

#: CEC2 microphone order of the six input channels.
CHANNEL_LAYOUT: tuple[str, ...] = ("CH1-L", "CH1-R", "CH2-L", "CH2-R", "CH3-L", "CH3-R")
#: Indices of the front-microphone pair (the ears the output is referenced to).
FRONT_MICS: tuple[int, int] = (0, 1)

State = dict[str, Any]


class CumulativeLayerNorm(nn.Module):
    """Cumulative layer norm (cLN): statistics over channels and all frames up to the current one.

    ``cLN(f_k) = (f_k - E[f_{<=k}]) / sqrt(Var[f_{<=k}] + eps) * gamma + beta`` (Luo & Mesgarani
    2019, Eq. 8-10). Running sums are accumulated in float64 so that long inputs and chunked
    streaming agree to float32 rounding.

    Parameters
    ----------
    n_channels : int
        Feature channels.
    eps : float
        Variance floor (1e-8, as asteroid).

    Notes
    -----
    Differentiable; any device. ``forward(x, state)`` takes ``x [batch, channels, frames]`` and
    the running ``(sum, sum_sq, count)`` state (``None`` = start of the signal) and returns the
    normalised features and the updated state.
    """

    def __init__(self, n_channels: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, n_channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, n_channels, 1))
        self.eps = eps

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor, float] | None = None):
        """Normalise ``x [batch, channels, frames]`` with cumulative statistics up to each frame.

        ``state`` carries the running sums (and frame count) from the previous chunk for
        streaming; returns ``(y, new_state)`` with ``y`` of the shape of ``x``.
        """
        batch, n_chan, n_frames = x.shape
        x64 = x.to(torch.float64)
        step_sum = x64.sum(dim=1)  # [batch, frames]
        step_sq = (x64 * x64).sum(dim=1)
        cum_sum = torch.cumsum(step_sum, dim=1)
        cum_sq = torch.cumsum(step_sq, dim=1)
        count0 = 0.0
        if state is not None:
            prev_sum, prev_sq, count0 = state
            cum_sum = cum_sum + prev_sum[:, None]
            cum_sq = cum_sq + prev_sq[:, None]
        count = (
            count0 + torch.arange(1, n_frames + 1, device=x.device, dtype=torch.float64)
        ) * n_chan
        mean = cum_sum / count
        var = (cum_sq / count - mean * mean).clamp_min(0.0)
        mean = mean.to(x.dtype)[:, None, :]
        inv_std = torch.rsqrt(var + self.eps).to(x.dtype)[:, None, :]
        out = (x - mean) * inv_std * self.gamma + self.beta
        new_state = (cum_sum[:, -1], cum_sq[:, -1], count0 + n_frames) if n_frames else state
        if new_state is None:
            zeros = torch.zeros(batch, dtype=torch.float64, device=x.device)
            new_state = (zeros, zeros.clone(), 0.0)
        return out, new_state


class GlobalLayerNorm(nn.Module):
    """Global layer norm (gLN): statistics over channels and the whole signal (non-causal).

    Luo & Mesgarani 2019, Eq. 6-7. Differentiable; any device. Stateless (``state`` is ignored).
    """

    def __init__(self, n_channels: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, n_channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, n_channels, 1))
        self.eps = eps

    def forward(self, x: Tensor, state: Any = None):
        """Normalise ``x [batch, channels, frames]`` over channels and all frames (non-causal).

        ``state`` is accepted for interface parity and ignored; returns ``(y, None)``.
        """
        mean = x.mean(dim=(1, 2), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(1, 2), keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.gamma + self.beta, None


def _make_norm(norm_type: str, n_channels: int) -> nn.Module:
    if norm_type == "cLN":
        return CumulativeLayerNorm(n_channels)
    if norm_type == "gLN":
        return GlobalLayerNorm(n_channels)
    raise ValueError(f"norm_type: expected 'cLN' or 'gLN', got {norm_type!r}")


class TemporalBlock(nn.Module):
    """One 1-D convolutional block of the TCN (Luo & Mesgarani 2019, Fig. 1C).

    ``1x1 conv (B->H) -> PReLU -> norm -> depthwise conv (kernel P, dilation d) -> PReLU -> norm``
    then a ``1x1`` residual output (H->B; omitted if ``residual=False``) and, if ``skip_chan > 0``,
    a ``1x1`` skip output (H->Sc).

    Parameters
    ----------
    bn_chan, hid_chan, skip_chan : int
        B, H and Sc of the paper (``skip_chan=0`` disables the skip path).
    conv_kernel_size : int
        P.
    dilation : int
        Dilation of the depthwise convolution (frames).
    norm_type : {"cLN", "gLN"}
    causal : bool
        Left-pad by ``(P-1) * d`` (causal) or pad both sides (non-causal).

    Notes
    -----
    ``forward(x, state)``: ``x [batch, B, frames]``; ``state`` holds the last ``(P-1) * d`` frames
    of the depthwise-conv input and the two cLN states (causal mode only).
    """

    def __init__(
        self,
        bn_chan: int,
        hid_chan: int,
        skip_chan: int,
        conv_kernel_size: int,
        dilation: int,
        norm_type: str,
        causal: bool,
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.causal = causal
        self.context = (conv_kernel_size - 1) * dilation
        self.in_conv = nn.Conv1d(bn_chan, hid_chan, 1)
        self.act1 = nn.PReLU()
        self.norm1 = _make_norm(norm_type, hid_chan)
        self.dconv = nn.Conv1d(
            hid_chan, hid_chan, conv_kernel_size, dilation=dilation, groups=hid_chan
        )
        self.act2 = nn.PReLU()
        self.norm2 = _make_norm(norm_type, hid_chan)
        self.res_conv = nn.Conv1d(hid_chan, bn_chan, 1) if residual else None
        self.skip_conv = nn.Conv1d(hid_chan, skip_chan, 1) if skip_chan > 0 else None

    def forward(self, x: Tensor, state: State | None = None):
        """One residual TCN block on ``x [batch, bn_chan, frames]``.

        Returns ``(residual_out, skip_out, new_state)``; ``state`` holds the causal
        convolution buffer and norm statistics of the previous chunk (streaming).
        """
        state = state or {}
        y, n1 = self.norm1(self.act1(self.in_conv(x)), state.get("norm1"))
        if self.causal:
            buf = state.get("buf")
            if buf is None:
                buf = y.new_zeros(y.shape[0], y.shape[1], self.context)
            padded = torch.cat([buf, y], dim=2)
            new_buf = padded[:, :, padded.shape[2] - self.context :] if self.context else buf
        else:
            left = self.context // 2
            padded = F.pad(y, (left, self.context - left))
            new_buf = None
        y = self.dconv(padded)
        y, n2 = self.norm2(self.act2(y), state.get("norm2"))
        res = self.res_conv(y) if self.res_conv is not None else None
        skip = self.skip_conv(y) if self.skip_conv is not None else None
        return res, skip, {"norm1": n1, "norm2": n2, "buf": new_buf}


class TCNSeparator(nn.Module):
    """Temporal convolutional network mask estimator (Luo & Mesgarani 2019, Sec. III-C).

    Parameters
    ----------
    in_chan : int
        Encoder feature channels fed to the separator.
    out_chan : int
        Channels of one mask (N).
    n_masks : int
        Masks produced (``n_src * 2`` ears).
    bn_chan, hid_chan, skip_chan, conv_kernel_size, n_blocks, n_repeats : int
        B, H, Sc, P, X, R.
    norm_type : {"cLN", "gLN"}
    causal : bool
    mask_act : {"sigmoid", "relu"}

    Notes
    -----
    ``forward(features [batch, in_chan, frames], state)`` returns masks
    ``[batch, n_masks, out_chan, frames]`` in [0, 1] (sigmoid) and the new state.
    """

    def __init__(
        self,
        in_chan: int,
        out_chan: int,
        n_masks: int,
        bn_chan: int,
        hid_chan: int,
        skip_chan: int,
        conv_kernel_size: int,
        n_blocks: int,
        n_repeats: int,
        norm_type: str,
        causal: bool,
        mask_act: str,
    ) -> None:
        super().__init__()
        self.n_masks, self.out_chan = n_masks, out_chan
        self.in_norm = _make_norm(norm_type, in_chan)
        self.bottleneck = nn.Conv1d(in_chan, bn_chan, 1)
        self.use_skip = skip_chan > 0
        n_total = n_repeats * n_blocks
        # With skip connections the last block's residual output is never used: leave it out
        # (unused parameters would break DistributedDataParallel).
        self.blocks = nn.ModuleList(
            TemporalBlock(
                bn_chan,
                hid_chan,
                skip_chan,
                conv_kernel_size,
                2 ** (i % n_blocks),
                norm_type,
                causal,
                residual=not (self.use_skip and i == n_total - 1),
            )
            for i in range(n_total)
        )
        head_in = skip_chan if self.use_skip else bn_chan
        self.head_act = nn.PReLU()
        self.mask_conv = nn.Conv1d(head_in, n_masks * out_chan, 1)
        if mask_act == "sigmoid":
            self.mask_act: nn.Module = nn.Sigmoid()
        elif mask_act == "relu":
            self.mask_act = nn.ReLU()
        else:
            raise ValueError(f"mask_act: expected 'sigmoid' or 'relu', got {mask_act!r}")

    def forward(self, features: Tensor, state: State | None = None):
        """Masks from encoder ``features [batch, n_in, frames]``.

        Returns ``(masks [batch, n_masks, out_chan, frames], new_state)``; ``state`` carries every
        block's causal buffers between chunks (streaming).
        """
        state = state or {}
        x, in_state = self.in_norm(features, state.get("in_norm"))
        x = self.bottleneck(x)
        skip_sum = 0.0
        block_states = []
        old_blocks = state.get("blocks") or [None] * len(self.blocks)
        for block, block_state in zip(self.blocks, old_blocks, strict=False):
            res, skip, new_state = block(x, block_state)
            if res is not None:
                x = x + res
            if skip is not None:
                skip_sum = skip_sum + skip
            block_states.append(new_state)
        head = skip_sum if self.use_skip else x
        masks = self.mask_act(self.mask_conv(self.head_act(head)))
        masks = masks.view(masks.shape[0], self.n_masks, self.out_chan, masks.shape[-1])
        return masks, {"in_norm": in_state, "blocks": block_states}


class MultichannelConvTasNet(nn.Module):
    """Causal six-microphone, binaural-output Conv-TasNet.

    Parameters
    ----------
    n_src : int
        Output sources (1: target only; 2: target + residual, see
        :func:`clarity_se.models.target_selection.select_target`).
    n_filters : int
        N, encoder/decoder basis functions (default 128).
    kernel_size : int
        L, encoder frame in samples at ``sample_rate`` (even; stride L/2). Default 128 samples
        = 2.90 ms at 44.1 kHz; algorithmic latency ``L - 1`` samples (2.88 ms).
    bn_chan : int
        B, bottleneck channels (default 128).
    hid_chan : int
        H, channels inside each convolutional block (default 256).
    skip_chan : int
        Sc, skip-connection channels (default = ``bn_chan``; 0 disables the skip path).
    conv_kernel_size : int
        P, depthwise kernel (default 3).
    n_blocks : int
        X, blocks per repeat, dilations ``1, 2, ..., 2**(X-1)`` (default 6).
    n_repeats : int
        R, repeats (default 2).
    n_mics : int
        Input channels (6 for CEC2, order :data:`CHANNEL_LAYOUT`).
    norm_type : {"cLN", "gLN"}, optional
        Default ``"cLN"`` if ``causal`` else ``"gLN"``.
    causal : bool
        Causal model (default ``True``).
    mask_act : {"sigmoid", "relu"}
        Mask non-linearity (sigmoid as in the TASLP paper).
    sample_rate : int
        Hz, recorded in checkpoints; the model itself runs at this rate (44100 for CEC2).
    output_gain_db : float
        Gain on every estimate, dB (default 0): the decoder output times
        ``10^(output_gain_db / 20)``, in :meth:`forward` and the streaming step alike. Set after
        training with :func:`clarity_se.models.checkpoint.set_model_args` (a make-up gain: a
        model trained with the scale-invariant SI-SDR chooses its own output level, and the
        hearing-aid scores are not scale-invariant). Not in the paper.

    Notes
    -----
    Differentiable, runs on CPU and CUDA. ``forward(mixture [batch, n_mics, time])`` returns
    ``est_sources [batch, n_src, 2, time]`` (ears ordered left, right), same length as the input,
    any length >= 1 sample.

    Raises
    ------
    ValueError
        If an argument is out of range (odd ``kernel_size``, ``n_src < 1`` ...), or (in forward)
        the input does not have shape ``[batch, n_mics, time]``.

    References
    ----------
    Luo & Mesgarani 2019, IEEE/ACM TASLP 27(8) (letters N, L, B, H, Sc, P, X, R of Table I);
    Gu et al. 2019 (multi-channel spectral + spatial encoder).
    """

    def __init__(
        self,
        n_src: int = 1,
        n_filters: int = 128,
        kernel_size: int = 128,
        bn_chan: int = 128,
        hid_chan: int = 256,
        skip_chan: int | None = None,
        conv_kernel_size: int = 3,
        n_blocks: int = 6,
        n_repeats: int = 2,
        n_mics: int = 6,
        norm_type: str | None = None,
        causal: bool = True,
        mask_act: str = "sigmoid",
        sample_rate: int = 44100,
        output_gain_db: float = 0.0,
    ) -> None:
        super().__init__()
        if n_src < 1:
            raise ValueError(f"n_src must be >= 1, got {n_src}")
        if kernel_size < 2 or kernel_size % 2:
            raise ValueError(f"kernel_size (L) must be an even number >= 2, got {kernel_size}")
        if n_mics < 2:
            raise ValueError(f"n_mics must be >= 2 (front pair first), got {n_mics}")
        for name, value in (
            ("n_filters", n_filters),
            ("bn_chan", bn_chan),
            ("hid_chan", hid_chan),
            ("conv_kernel_size", conv_kernel_size),
            ("n_blocks", n_blocks),
            ("n_repeats", n_repeats),
            ("sample_rate", sample_rate),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if norm_type is None:
            norm_type = "cLN" if causal else "gLN"
        if causal and norm_type != "cLN":
            raise ValueError(f"a causal model needs norm_type='cLN', got {norm_type!r}")
        skip_chan = bn_chan if skip_chan is None else skip_chan
        self.hparams = dict(
            n_src=n_src,
            n_filters=n_filters,
            kernel_size=kernel_size,
            bn_chan=bn_chan,
            hid_chan=hid_chan,
            skip_chan=skip_chan,
            conv_kernel_size=conv_kernel_size,
            n_blocks=n_blocks,
            n_repeats=n_repeats,
            n_mics=n_mics,
            norm_type=norm_type,
            causal=causal,
            mask_act=mask_act,
            sample_rate=sample_rate,
            output_gain_db=float(output_gain_db),
        )
        self.output_gain = 10.0 ** (float(output_gain_db) / 20.0)
        self.n_src, self.n_mics, self.causal = n_src, n_mics, causal
        self.kernel_size, self.stride = kernel_size, kernel_size // 2
        self.sample_rate = sample_rate
        self.spectral_encoder = nn.Conv1d(1, n_filters, kernel_size, self.stride, bias=False)
        self.spatial_encoder = nn.Conv1d(n_mics, n_filters, kernel_size, self.stride, bias=False)
        self.separator = TCNSeparator(
            in_chan=3 * n_filters,
            out_chan=n_filters,
            n_masks=n_src * 2,
            bn_chan=bn_chan,
            hid_chan=hid_chan,
            skip_chan=skip_chan,
            conv_kernel_size=conv_kernel_size,
            n_blocks=n_blocks,
            n_repeats=n_repeats,
            norm_type=norm_type,
            causal=causal,
            mask_act=mask_act,
        )
        self.decoder = nn.ConvTranspose1d(n_filters, 1, kernel_size, self.stride, bias=False)

    # ------------------------------------------------------------------ properties
    @property
    def latency_samples(self) -> int:
        """Algorithmic latency in samples at ``sample_rate``: ``L - 1`` (causal mode)."""
        return self.kernel_size - 1

    @property
    def latency_s(self) -> float:
        """Algorithmic latency in seconds: ``(L - 1) / sample_rate``."""
        return self.latency_samples / self.sample_rate

    @property
    def receptive_field_frames(self) -> int:
        """Frames of past context seen by the TCN: ``1 + R (P-1)(2**X - 1)``."""
        hp = self.hparams
        return 1 + hp["n_repeats"] * (hp["conv_kernel_size"] - 1) * (2 ** hp["n_blocks"] - 1)

    # ------------------------------------------------------------------ pieces
    def _check_input(self, mixture: Tensor) -> None:
        if mixture.dim() != 3 or mixture.shape[1] != self.n_mics:
            raise ValueError(
                f"mixture: expected shape [batch, {self.n_mics}, time], got {tuple(mixture.shape)}"
            )

    def encode_frames(self, padded: Tensor) -> tuple[Tensor, Tensor]:
        """Encode a framed stretch of input (no padding applied here).

        Parameters
        ----------
        padded : Tensor [shape=(batch, n_mics, (frames - 1) * S + L)]

        Returns
        -------
        front : Tensor [shape=(batch, 2, N, frames)]
            Spectral-encoder output of the front pair (left, right), >= 0.
        features : Tensor [shape=(batch, 3N, frames)]
            Separator input (front left, front right, spatial).
        """
        batch = padded.shape[0]
        front_in = padded[:, list(FRONT_MICS)].reshape(batch * 2, 1, padded.shape[-1])
        front = F.relu(self.spectral_encoder(front_in))
        front = front.view(batch, 2, front.shape[1], front.shape[2])
        spatial = F.relu(self.spatial_encoder(padded))
        features = torch.cat([front[:, 0], front[:, 1], spatial], dim=1)
        return front, features

    def separate_frames(self, padded: Tensor, state: State | None = None):
        """Encode, mask and decode a stretch of frames (the streaming step).

        Parameters
        ----------
        padded : Tensor [shape=(batch, n_mics, (frames - 1) * S + L)]
            Input samples covering whole frames.
        state : dict, optional
            Separator state from :meth:`init_state` or a previous call (causal mode only).

        Returns
        -------
        decoded : Tensor [shape=(batch, n_src, 2, (frames - 1) * S + L)]
            Decoder output (times the output gain) before overlap-add with neighbouring calls.
        state : dict
            Updated separator state.
        """
        front, features = self.encode_frames(padded)
        masks, state = self.separator(features, state)
        batch, _, n_filt, n_frames = masks.shape
        masks = masks.view(batch, self.n_src, 2, n_filt, n_frames)
        masked = masks * front[:, None]
        decoded = self.decoder(masked.reshape(batch * self.n_src * 2, n_filt, n_frames))
        if self.output_gain != 1.0:
            decoded = decoded * self.output_gain
        return decoded.view(batch, self.n_src, 2, decoded.shape[-1]), state

    def init_state(self) -> State:
        """Empty streaming state (start of a signal). Raises ValueError for a non-causal model."""
        if not self.causal:
            raise ValueError("streaming needs a causal model (causal=True, norm_type='cLN')")
        return {}

    # ------------------------------------------------------------------ forward
    def forward(self, mixture: Tensor) -> Tensor:
        """Enhance a whole signal.

        Parameters
        ----------
        mixture : Tensor [shape=(batch, n_mics, time)], float, microphone signals (CEC2 scale)

        Returns
        -------
        est_sources : Tensor [shape=(batch, n_src, 2, time)]
            Per source, left and right ear estimates, same length as the input.

        Raises
        ------
        ValueError
            If ``mixture`` does not have shape ``[batch, n_mics, time]``.
        """
        self._check_input(mixture)
        n_time = mixture.shape[-1]
        lead = self.kernel_size - self.stride
        tail = (-n_time) % self.stride
        padded = F.pad(mixture, (lead, tail))
        decoded, _ = self.separate_frames(padded, None)
        return decoded[..., lead : lead + n_time]

    #: Model arguments whose change :meth:`adapt_state_dict` turns into weights (the trainer's
    #: ``train.init_from`` does not warn about them).
    adapted_args = ("n_src",)

    def adapt_state_dict(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weights of a ``n_src = 1`` checkpoint as the start of this ``n_src = 2`` model.

        Source 0 (the target) keeps the checkpoint's masks; source 1 (the residual) gets the
        negated mask logits, so that with sigmoid masks it starts as the complement
        ``1 - m``: the two outputs then add up to the front-microphone signals through the
        shared linear decoder, the state a uPIT fine-tune (target + residual) starts from.
        Other weights are unchanged; a ``state_dict`` that already matches is returned as is.

        Parameters
        ----------
        state_dict : dict of str to Tensor
            ``state_dict()`` of a model with the same arguments except ``n_src``.

        Returns
        -------
        dict of str to Tensor
            A new dict (the input is not modified).

        Raises
        ------
        ValueError
            The checkpoint is not ``n_src = 1`` while this model is ``n_src = 2`` with
            sigmoid masks (nothing else has a complement).
        """
        key_w, key_b = "separator.mask_conv.weight", "separator.mask_conv.bias"
        own = self.state_dict()[key_w].shape[0]
        theirs = state_dict[key_w].shape[0] if key_w in state_dict else own
        if theirs == own:
            return state_dict
        if not (self.n_src == 2 and theirs * 2 == own and self.hparams["mask_act"] == "sigmoid"):
            raise ValueError(
                f"mask layer of {theirs // (2 * self.hparams['n_filters'])} source(s) cannot "
                f"start a model of n_src={self.n_src} (only 1 -> 2 with sigmoid masks)"
            )
        out = dict(state_dict)
        out[key_w] = torch.cat([state_dict[key_w], -state_dict[key_w]])
        out[key_b] = torch.cat([state_dict[key_b], -state_dict[key_b]])
        return out

    def extra_repr(self) -> str:
        """Summary of the paper letters (N, L, B, H, P, X, R) for ``print(model)``."""
        return ", ".join(f"{k}={v}" for k, v in self.hparams.items())


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def latency_ms(kernel_size: int, sample_rate: int) -> float:
    """Algorithmic latency in ms of a causal model with encoder kernel ``kernel_size`` samples."""
    return 1000.0 * (kernel_size - 1) / sample_rate if sample_rate > 0 else math.inf
