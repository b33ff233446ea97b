"""``enhancer.name=convtasnet``: the causal multi-channel Conv-TasNet of a checkpoint.

The output is ``(1 - a) * estimate + a * mixture_CH1`` with ``a = enhancer.residual_mix``
(default 0.1): keeping a little of the front-mic mixture masks the separation artefacts that
HASQI and HASPI penalise. With ``enhancer.mirror_average`` (default true) the estimate is the
mean of the model's estimate and that of the left/right-mirrored microphones (a two-member
test-time ensemble, causal, at twice the compute). A 2-source model's target is chosen by
:func:`clarity_se.models.target_selection.pick_target`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from clarity_se.enhancers import register_enhancer
from clarity_se.enhancers.base import SAMPLE_RATE, BlockStreamer, check_mixture
from clarity_se.enhancers.checkpoints import resolve_checkpoint

logger = logging.getLogger(__name__)

#: rows of the left/right-mirrored microphones (CH1-R, CH1-L, CH2-R, CH2-L, CH3-R, CH3-L)
MIRROR_ROWS = [1, 0, 3, 2, 5, 4]


class ConvTasNetEnhancer:
    """Run a trained causal Conv-TasNet checkpoint: ``[6, time] -> [2, time]``.

    Parameters
    ----------
    checkpoint : str
        Checkpoint path; ``""`` is the packaged default (see
        :func:`clarity_se.enhancers.checkpoints.resolve_checkpoint`).
    device : str
        ``cpu`` or ``cuda[:N]``.
    chunk_s : float
        Streaming chunk in seconds (``<= 0``: whole scene at once; same output).
    residual_mix : float
        Fraction ``a`` in ``[0, 1]`` of the front-mic mixture mixed back into the output.
    mirror_average : bool
        Average with ``mirror(model(mirror(mixture)))`` (left and right swapped).

    Raises
    ------
    ValueError
        Missing/bad checkpoint, a checkpoint for another sample rate, CUDA requested but
        absent, or ``residual_mix`` outside ``[0, 1]``.
    """

    name = "convtasnet"

    def __init__(
        self,
        checkpoint: str = "",
        device: str = "cpu",
        chunk_s: float = 0.0,
        residual_mix: float = 0.0,
        mirror_average: bool = False,
    ) -> None:
        import torch

        from clarity_se.models.checkpoint import load_model

        if not 0.0 <= float(residual_mix) <= 1.0:
            raise ValueError(f"enhancer.residual_mix must be in [0, 1], got {residual_mix}")
        self.residual_mix = float(residual_mix)
        self.mirror_average = bool(mirror_average)
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"enhancer.device={device} but CUDA is not available")
        self.path = resolve_checkpoint(checkpoint, "convtasnet")
        self.model, payload = load_model(self.path, map_location=device)
        if int(payload.get("sample_rate", SAMPLE_RATE)) != SAMPLE_RATE:
            raise ValueError(f"{self.path}: model is for {payload['sample_rate']} Hz, need 44100")
        self.device = torch.device(device)
        self.chunk = int(round(chunk_s * SAMPLE_RATE)) if chunk_s > 0 else 0
        logger.info("enhance: %s (%s) on %s", self.path, payload["model_args"], device)

    @property
    def latency_samples(self) -> int:
        """Look-ahead of the encoder frame, samples at 44.1 kHz (``kernel_size - 1``)."""
        return int(self.model.latency_samples)

    def __call__(self, mixture: np.ndarray) -> np.ndarray:
        """Enhance ``mixture [6, time]`` -> ``[2, time]`` float32."""
        import torch

        from clarity_se.models.streaming import enhance_in_chunks
        from clarity_se.models.target_selection import pick_target

        mix = torch.from_numpy(check_mixture(mixture))
        with torch.inference_mode():
            est = enhance_in_chunks(self.model, mix[None].to(self.device), self.chunk)
            out = pick_target(est, SAMPLE_RATE)[0].cpu()
            if self.mirror_average:
                est = enhance_in_chunks(
                    self.model, mix[MIRROR_ROWS][None].to(self.device), self.chunk
                )
                out = 0.5 * (out + pick_target(est, SAMPLE_RATE)[0].cpu()[[1, 0]])
        if self.residual_mix > 0:
            out = (1 - self.residual_mix) * out + self.residual_mix * mix[:2]
        return out.contiguous().numpy().astype(np.float32)

    def streamer(self) -> BlockStreamer:
        """Block-by-block processing with the model's carried state (1-source models)."""
        return _ConvTasNetStreamer(self)


class _ConvTasNetStreamer:
    """:class:`~clarity_se.enhancers.base.BlockStreamer` over :class:`StreamingEnhancer`."""

    def __init__(self, enhancer: ConvTasNetEnhancer) -> None:
        from clarity_se.models.streaming import StreamingEnhancer

        if enhancer.model.n_src != 1:
            raise ValueError("streaming needs a 1-source model (target selection is per signal)")
        self.enhancer = enhancer
        self.streams = [StreamingEnhancer(enhancer.model)]
        if enhancer.mirror_average:
            self.streams.append(StreamingEnhancer(enhancer.model))
        self.reset()

    def reset(self) -> None:
        for s in self.streams:
            s.reset()
        self.mix_buf = np.zeros((2, 0), dtype=np.float32)

    def _combine(self, outs: list, n: int) -> np.ndarray:
        out = outs[0][0, 0]
        if len(outs) > 1:
            out = 0.5 * (out + outs[1][0, 0][[1, 0]])
        out = out.numpy().astype(np.float32)
        a = self.enhancer.residual_mix
        if a > 0:
            out = (1 - a) * out + a * self.mix_buf[:, : out.shape[1]]
        self.mix_buf = self.mix_buf[:, out.shape[1] :]
        return out

    def process(self, block: np.ndarray) -> np.ndarray:
        import torch

        block = check_mixture(block, "block")
        self.mix_buf = np.concatenate([self.mix_buf, block[:2]], axis=1)
        x = torch.from_numpy(block)[None].to(self.enhancer.device)
        with torch.inference_mode():
            outs = [self.streams[0].process(x)]
            if len(self.streams) > 1:
                outs.append(self.streams[1].process(x[:, MIRROR_ROWS]))
        return self._combine([o.cpu() for o in outs], block.shape[1])

    def flush(self) -> np.ndarray:
        import torch

        with torch.inference_mode():
            outs = [s.flush().cpu() for s in self.streams]
        out = self._combine(outs, 0)
        self.reset()
        return out


@register_enhancer("convtasnet")
def _build(options: Any) -> ConvTasNetEnhancer:
    return ConvTasNetEnhancer(
        str(options.checkpoint),
        str(options.device),
        float(options.chunk_s),
        float(options.residual_mix),
        bool(options.mirror_average),
    )
