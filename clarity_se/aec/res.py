"""A residual-echo suppressor after an echo canceller: ``aec.res=unet aec.res_alpha=A``.

:class:`ResidualEchoChain` runs any registered canceller (``aec.name``) and feeds its output and
echo estimate to the RES U-Net (:mod:`clarity_se.models.res_unet`) at the trade-off ``alpha``
(0: least distortion of the near-end speech, 1: most residual-echo suppression). It is itself an
:class:`~clarity_se.aec.base.EchoCanceller`: whole clips, or frame by frame with both systems'
state. Its latency is the sum of the two (the suppressor reads the canceller's output up to 127
samples ahead, each of which reads the microphone up to the canceller's latency ahead); with
``pbfdaf`` (191 samples) or ``nlms`` (127) it stays within the AEC Challenge's 20 ms (320
samples), with a canceller of 20 ms itself it does not, and a warning says so.

:class:`FramewiseResidualEchoChain` is the chain for ``deep_adaptive`` when the suppressor's STFT
is that canceller's own (320-sample square-root Hann frames every 160 samples, the paper's 20 ms
/ 10 ms framing; :meth:`~clarity_se.models.res_unet.RESUNet.frame_synchronous`): the suppressor
masks the canceller's output frames before their synthesis, so the chain adds no latency (319
samples, the canceller's). Its features come from those frames, not from a re-analysis of the
synthesised output (the two differ by the STFT's overlap-add), so such a suppressor is trained
on the same frames (:func:`clarity_se.training.res.canceller_outputs` with ``spectra=True``).

Weights: ``aec.res_checkpoint``, or when empty the packaged
``clarity_se/assets/checkpoints/res_unet_<aec.name>.pt`` if there is one (``deep_adaptive``:
frame-synchronous), else ``res_unet.pt`` (low-delay STFT, any canceller).
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from clarity_se.aec.base import (
    MAX_LATENCY_S,
    SAMPLE_RATE,
    EchoCanceller,
    EchoCancellerOutput,
    check_clip,
)
from clarity_se.aec.deep_adaptive import DeepAdaptive
from clarity_se.aec.framing import process_whole
from clarity_se.models.checkpoint import load_model
from clarity_se.models.res_unet import RESUNet

logger = logging.getLogger(__name__)

#: ``aec.res`` values
SUPPRESSORS = ("unet",)
#: packaged checkpoint name
PACKAGED = "res_unet"


def res_checkpoint(path: str = "", canceller: str = "") -> Path:
    """``path`` if given (it must exist), else the packaged RES U-Net checkpoint for
    ``canceller`` (``res_unet_<canceller>.pt`` if packaged, else ``res_unet.pt``).

    Raises
    ------
    ValueError
        A given path that does not exist, or no packaged checkpoint.
    """
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ValueError(f"aec.res_checkpoint: no checkpoint at {p} (train one with "
                             "`clarity-se res-train`, or leave it empty for the shipped one)")
        return p
    folder = Path(str(resources.files("clarity_se") / "assets" / "checkpoints"))
    own = folder / f"{PACKAGED}_{canceller}.pt"
    if canceller and own.is_file():
        return own
    p = folder / f"{PACKAGED}.pt"
    if not p.is_file():
        raise ValueError(f"aec.res: no packaged checkpoint {PACKAGED!r} (looked for {p})")
    return p


def load_res_unet(path: str = "", device: str = "cpu") -> RESUNet:
    """The RES U-Net of ``path`` ("" = packaged), in eval mode.

    Raises
    ------
    ValueError
        Missing or bad checkpoint, or one that holds another model.
    """
    ckpt = res_checkpoint(path)
    model, payload = load_model(ckpt, map_location=device)
    if not isinstance(model, RESUNet):
        raise ValueError(f"aec.res_checkpoint: {ckpt} holds {payload['model_name']!r}, "
                         "not a res_unet")
    return model


def _n_params(canceller, model: RESUNet) -> int:
    """Learned parameters of the canceller (0 for a classical one) and the suppressor."""
    own = getattr(canceller, "n_params", None) or 0
    return int(own) + sum(p.numel() for p in model.parameters() if p.requires_grad)


class ResidualEchoChain:
    """Echo canceller followed by the RES U-Net.

    Parameters
    ----------
    canceller : EchoCanceller
        Any registered canceller; its ``echo_estimate`` is the suppressor's second input
        (zeros from a canceller without one, e.g. ``webrtc_aec3``).
    model : RESUNet
        Eval mode.
    alpha : float
        Trade-off in ``[0, 1]``.

    Attributes
    ----------
    name : str
        ``<canceller>+res_unet``.
    latency_samples : int
        ``canceller.latency_samples + model.latency_samples``.
    n_params : int
        Learned parameters of both.

    Raises
    ------
    ValueError
        ``alpha`` outside ``[0, 1]``.
    """

    def __init__(self, canceller: EchoCanceller, model: RESUNet, alpha: float = 0.5) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"aec.res_alpha must be in [0, 1], got {alpha}")
        self.canceller, self.model, self.alpha = canceller, model, float(alpha)
        self.name = f"{canceller.name}+res_unet"
        self.latency_samples = int(canceller.latency_samples) + model.latency_samples
        self.n_params = _n_params(canceller, model)
        if self.latency_samples > MAX_LATENCY_S * SAMPLE_RATE:
            logger.warning("%s: latency %d samples (%.1f ms) exceeds the AEC Challenge's 20 ms",
                           self.name, self.latency_samples,
                           1e3 * self.latency_samples / SAMPLE_RATE)  # fmt: skip

    @torch.no_grad()
    def __call__(self, mic: np.ndarray, farend: np.ndarray) -> EchoCancellerOutput:
        """Whole clip: ``mic [time]``, ``farend [time]`` float32 at 16 kHz -> output."""
        mic, farend = check_clip(mic, farend)
        first = self.canceller(mic, farend)
        out = self.model(torch.from_numpy(np.asarray(first.output, dtype=np.float32)),
                         torch.from_numpy(np.asarray(first.echo_estimate, dtype=np.float32)),
                         self.alpha)  # fmt: skip
        return EchoCancellerOutput(out.numpy().astype(np.float32), first.echo_estimate)

    def streamer(self) -> ResidualEchoChainStreamer:
        """Frame-by-frame processing with both systems' state."""
        return ResidualEchoChainStreamer(self)


class ResidualEchoChainStreamer:
    """Streams a :class:`ResidualEchoChain`: the canceller's streamer, then the suppressor's.

    The echo estimate returned is the canceller's, delayed to line up with the output blocks
    (both have the microphone's length once flushed).
    """

    def __init__(self, chain: ResidualEchoChain) -> None:
        self.first = chain.canceller.streamer()
        self.second = chain.model.streamer(chain.alpha)
        self._echo = np.zeros(0, dtype=np.float32)

    def reset(self) -> None:
        """Forget all state."""
        self.first.reset()
        self.second.reset()
        self._echo = np.zeros(0, dtype=np.float32)

    def _through(self, block: EchoCancellerOutput) -> EchoCancellerOutput:
        out = self.second.process(torch.from_numpy(np.asarray(block.output, np.float32)),
                                  torch.from_numpy(np.asarray(block.echo_estimate, np.float32)))
        self._echo = np.concatenate([self._echo, np.asarray(block.echo_estimate, np.float32)])
        n = out.shape[-1]
        echo, self._echo = self._echo[:n], self._echo[n:]
        return EchoCancellerOutput(out.numpy().astype(np.float32), echo)

    @torch.no_grad()
    def process(self, mic: np.ndarray, farend: np.ndarray) -> EchoCancellerOutput:
        """Feed equal-length blocks; return the final output samples."""
        return self._through(self.first.process(mic, farend))

    @torch.no_grad()
    def flush(self) -> EchoCancellerOutput:
        """End of clip: the remaining output samples; resets."""
        block = self._through(self.first.flush())
        tail = self.second.flush().numpy().astype(np.float32)
        out = np.concatenate([block.output, tail])
        echo = np.concatenate([block.echo_estimate, self._echo])
        self.reset()
        return EchoCancellerOutput(out, echo)


class _MaskFrames:
    """``frame_filter`` of :class:`~clarity_se.aec.deep_adaptive.DeepAdaptiveStreamer`: the
    output frames times the RES U-Net's masks (state: the masker's feature context)."""

    def __init__(self, model: RESUNet, alpha: float) -> None:
        self.masker = model.frame_masker(alpha)

    def reset(self) -> None:
        """Forget the masker's feature context (a new clip)."""
        self.masker.reset()

    def __call__(self, out: torch.Tensor, echo: torch.Tensor) -> torch.Tensor:
        """Masked output frames ``[k, F]`` complex from the output and echo frames ``[k, F]``."""
        return out * self.masker.masks(out, echo).to(out.real.dtype)


class FramewiseResidualEchoChain:
    """``deep_adaptive`` with the RES U-Net on its own STFT frames: no added latency.

    Parameters
    ----------
    canceller : clarity_se.aec.deep_adaptive.DeepAdaptive
    model : RESUNet
        Eval mode, frame-synchronous with the canceller
        (:meth:`~clarity_se.models.res_unet.RESUNet.frame_synchronous`).
    alpha : float
        Trade-off in ``[0, 1]``.

    Attributes
    ----------
    name : str
        ``deep_adaptive+res_unet``.
    latency_samples : int
        The canceller's (319 samples).
    n_params : int
        Learned parameters of both.

    Raises
    ------
    ValueError
        ``alpha`` outside ``[0, 1]`` or a model whose framing is not the canceller's.
    """

    def __init__(self, canceller: DeepAdaptive, model: RESUNet, alpha: float = 0.5) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"aec.res_alpha must be in [0, 1], got {alpha}")
        n_fft, hop = canceller.model.n_fft, canceller.model.hop
        if not model.frame_synchronous(n_fft, hop):
            raise ValueError(f"aec.res_checkpoint: the suppressor's STFT "
                             f"({model.hparams['win_length']}/{model.hparams['hop_length']}/"
                             f"{model.hparams['synth_length']}) is not {canceller.name}'s "
                             f"({n_fft}/{hop}/{n_fft})")  # fmt: skip
        self.canceller, self.model, self.alpha = canceller, model, float(alpha)
        self.name = f"{canceller.name}+res_unet"
        self.latency_samples = int(canceller.latency_samples)
        self.n_params = _n_params(canceller, model)

    def streamer(self):
        """Frame-by-frame processing (the canceller's streamer with the suppressor inside)."""
        return self.canceller.streamer(_MaskFrames(self.model, self.alpha))

    @torch.no_grad()
    def __call__(self, mic: np.ndarray, farend: np.ndarray) -> EchoCancellerOutput:
        """Whole clip: ``mic [time]``, ``farend [time]`` float32 at 16 kHz -> output."""
        return process_whole(self.streamer(), mic, farend)


def build_chain(canceller: EchoCanceller, options) -> EchoCanceller:
    """Wrap ``canceller`` in the suppressor named by ``options.res`` (``""``: unchanged).

    The weights are :func:`res_checkpoint`'s; a model framed as ``deep_adaptive``'s STFT after
    ``deep_adaptive`` gives :class:`FramewiseResidualEchoChain` (no added latency), any other
    pair :class:`ResidualEchoChain`.

    Raises
    ------
    ValueError
        Unknown ``aec.res``, ``aec.res_alpha`` outside ``[0, 1]``, or a bad checkpoint.
    """
    if not options.res:
        return canceller
    if options.res not in SUPPRESSORS:
        raise ValueError(f"aec.res: expected one of {list(SUPPRESSORS)} or empty, got "
                         f"{options.res!r}")
    path = res_checkpoint(options.get("res_checkpoint", ""), str(getattr(canceller, "name", "")))
    model = load_res_unet(str(path), options.get("device", "cpu"))
    if isinstance(canceller, DeepAdaptive) and model.frame_synchronous(canceller.model.n_fft,
                                                                        canceller.model.hop):
        chain = FramewiseResidualEchoChain(canceller, model, options.res_alpha)
    else:
        chain = ResidualEchoChain(canceller, model, options.res_alpha)
    chain.checkpoint_path = getattr(canceller, "checkpoint_path", None)
    chain.res_checkpoint_path = path
    return chain
