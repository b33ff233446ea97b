"""``enhancer.name=convtasnet``: the causal multi-channel Conv-TasNet of a checkpoint.

The model's outputs go through :class:`~clarity_se.enhancers.guard.FrontalGuard`: block by
block and causally, the output with the largest frontal interaural coherence is the target
(uPIT models with ``n_src >= 2``), and when no output is frontal (a target talking from the
side, or an unsure model) the front-microphone mixture fades back in, so that the speech that
is there is not removed (``enhancer.guard``, default false: on three held-out acoustic models
the rule cost more on front scenes than it saved on side ones; recipe README). Off, a
``n_src >= 2`` model's target is still selected that way. The result is then
``(1 - a) * estimate + a * residual`` with ``a = enhancer.residual_mix``. By default
(``enhancer.residual_source`` empty: ``mvdr``; ``residual_mix`` empty: 1.0) the residual is the
output of the causal binaural MVDR beamformer that the estimate drives
(:class:`clarity_se.dsp.mvdr.EstimateMVDR`: a linear filter of the six microphones, no
separation artefacts), and the output is the beamformer's alone; the latency is then the
beamformer's 191 samples (4.33 ms) instead of the model's 127. With
``enhancer.residual_source=mixture`` the residual is the front-microphone mixture
``mixture_CH1`` and ``a`` defaults to 0.25: keeping a little of it masks the separation
artefacts that HASQI and HASPI penalise. With
``enhancer.mirror_average`` (default true) the estimate is the mean of that of the model and of
the left/right-mirrored microphones (a two-member test-time ensemble, causal, at
twice the compute). The whole-signal path is the streaming path run over the signal.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from clarity_se.enhancers import register_enhancer
from clarity_se.enhancers.base import SAMPLE_RATE, BlockStreamer, check_mixture
from clarity_se.enhancers.checkpoints import resolve_checkpoint

logger = logging.getLogger(__name__)

#: values of ``enhancer.residual_source``
RESIDUAL_SOURCES = ("mixture", "mvdr")
#: ``enhancer.residual_source`` when empty: the beamformer (recipe README, "The MVDR residual")
DEFAULT_RESIDUAL_SOURCE = "mvdr"
#: ``enhancer.residual_mix`` when empty, per residual source
DEFAULT_RESIDUAL_MIX = {"mvdr": 1.0, "mixture": 0.25}


def default_residual_mix(options: Any) -> float:
    """``enhancer.residual_mix``, or when empty the default of the residual source in use
    (:data:`DEFAULT_RESIDUAL_MIX`)."""
    value = options.get("residual_mix")
    if value is not None:
        return float(value)
    source = str(options.get("residual_source") or DEFAULT_RESIDUAL_SOURCE)
    return DEFAULT_RESIDUAL_MIX.get(source, 0.25)


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
    guard : bool
        The do-no-harm fallback of :class:`~clarity_se.enhancers.guard.FrontalGuard`
        (False: the selected output as is; the causal target selection runs either way).
    residual_source : str
        What ``residual_mix`` mixes in: ``mixture`` (the front microphones) or ``mvdr`` (the
        estimate-driven beamformer, :class:`clarity_se.dsp.mvdr.EstimateMVDR`).
    beamformer_options : dict, optional
        Keyword arguments of that beamformer (``enhancer.mvdr.*``,
        :func:`clarity_se.enhancers.beamformed.mvdr_options`).

    Raises
    ------
    ValueError
        Missing/bad checkpoint, a checkpoint for another sample rate, CUDA requested but
        absent, ``residual_mix`` outside ``[0, 1]``, an unknown ``residual_source``, or (with
        the beamformer) a model whose look-ahead exceeds what the beamformer's lag covers.
    """

    name = "convtasnet"

    def __init__(
        self,
        checkpoint: str = "",
        device: str = "cpu",
        chunk_s: float = 0.0,
        residual_mix: float = 0.0,
        mirror_average: bool = False,
        *,
        guard: bool = False,
        residual_source: str = "mixture",
        beamformer_options: dict | None = None,
    ) -> None:
        import torch

        from clarity_se.models.checkpoint import load_model

        if not 0.0 <= float(residual_mix) <= 1.0:
            raise ValueError(f"enhancer.residual_mix must be in [0, 1], got {residual_mix}")
        self.residual_mix = float(residual_mix)
        if residual_source not in RESIDUAL_SOURCES:
            raise ValueError(f"enhancer.residual_source must be one of {RESIDUAL_SOURCES}, "
                             f"got {residual_source!r}")  # fmt: skip
        self.residual_source = residual_source
        self.beamformer_options = dict(beamformer_options or {})
        self.mirror_average = bool(mirror_average)
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"enhancer.device={device} but CUDA is not available")
        self.path = resolve_checkpoint(checkpoint, "convtasnet")
        self.model, payload = load_model(self.path, map_location=device)
        if int(payload.get("sample_rate", SAMPLE_RATE)) != SAMPLE_RATE:
            raise ValueError(f"{self.path}: model is for {payload['sample_rate']} Hz, need 44100")
        self.device = torch.device(device)
        self.chunk = int(round(chunk_s * SAMPLE_RATE)) if chunk_s > 0 else 0
        from clarity_se.enhancers.guard import GuardOptions

        self.guard_options = GuardOptions(enabled=bool(guard))
        self.last_fired: dict = {}
        #: the beamformer runs only where its output is mixed in
        self.uses_mvdr = residual_source == "mvdr" and self.residual_mix > 0
        self._latency = int(self.model.latency_samples)
        if self.uses_mvdr:
            from clarity_se.dsp.mvdr import EstimateMVDR

            beamformer = EstimateMVDR(6, SAMPLE_RATE, **self.beamformer_options)
            self._latency = beamformer.latency_with(self._latency, f"{self.path}: the model")
        logger.info("enhance: %s (%s) on %s", self.path, payload["model_args"], device)

    @property
    def latency_samples(self) -> int:
        """Look-ahead, samples at 44.1 kHz: the encoder frame's ``kernel_size - 1``, or when the
        beamformer runs (``residual_source=mvdr``, ``residual_mix > 0``) the larger of it and
        the beamformer's (191)."""
        return self._latency

    def __call__(self, mixture: np.ndarray) -> np.ndarray:
        """Enhance ``mixture [6, time]`` -> ``[2, time]`` float32 (the streaming path)."""
        from clarity_se.enhancers.base import run_streamer

        mixture = check_mixture(mixture)
        block = self.chunk if self.chunk > 0 else max(mixture.shape[1], 1)
        return run_streamer(self.streamer(), mixture, block)

    def streamer(self) -> BlockStreamer:
        """Block-by-block processing with the model's carried state and the guard's."""
        return _ConvTasNetStreamer(self)

    def diagnostics(self) -> dict:
        """How often the do-no-harm rule fired in the last signal.

        Returns
        -------
        dict
            ``{"guard_fired": {pass: share}}``: per pass (``direct``, ``mirrored``) the share
            of 10 ms blocks whose estimate weight fell below 0.5; ``{}`` with the rule off
            (``enhancer.guard=false``) or before the first signal.
        """
        if not self.guard_options.enabled or not self.last_fired:
            return {}
        return {"guard_fired": dict(self.last_fired)}


class _ConvTasNetStreamer:
    """:class:`~clarity_se.enhancers.base.BlockStreamer`: model streams, then the guard."""

    def __init__(self, enhancer: ConvTasNetEnhancer) -> None:
        from clarity_se.enhancers.guard import FrontalGuard
        from clarity_se.models.streaming import StreamingEnhancer

        self.enhancer = enhancer
        n_pass = 2 if enhancer.mirror_average else 1
        self.streams = [StreamingEnhancer(enhancer.model) for _ in range(n_pass)]
        self.guards = [FrontalGuard(enhancer.model.n_src, SAMPLE_RATE, enhancer.guard_options)
                       for _ in range(n_pass)]  # fmt: skip
        self.guard_off = not enhancer.guard_options.enabled
        self.mvdr = None
        if enhancer.uses_mvdr:
            from clarity_se.dsp.mvdr import EstimateMVDR

            self.mvdr = EstimateMVDR(6, SAMPLE_RATE, **enhancer.beamformer_options)
        self.reset()

    def reset(self) -> None:
        """Forget all state (start a new signal): model streams, guards, beamformer, buffers."""
        for stream, guard in zip(self.streams, self.guards, strict=True):
            stream.reset()
            guard.reset()
        if self.mvdr is not None:
            self.mvdr.reset()
        n_src = self.enhancer.model.n_src
        self.est = [np.zeros((n_src, 2, 0), np.float32) for _ in self.streams]
        self.mix = np.zeros((2, 0), np.float32)
        self.mirrored_mix = np.zeros((2, 0), np.float32)
        self.selected = np.zeros((2, 0), np.float32)  # weighted estimate awaiting its residual
        self.residual = np.zeros((2, 0), np.float32)  # front mics or beamformer output
        # with the rule on: the front mics for its fallback, its weight of the estimate per sample
        self.front = np.zeros((2, 0), np.float32)
        self.gain = np.zeros(0, np.float32)
        self.mix6 = np.zeros((6, 0), np.float32)  # all microphones, for the beamformer

    def _blocks(self, final: bool) -> np.ndarray:
        """Guard every complete block (and, at the end, the rest); combine the passes; mix in
        the residual where it is ready.

        Per pass ``p`` the guard gives the selected estimate ``e_p`` and its weight ``g_p``;
        with ``a = residual_mix`` and ``r`` the residual (front microphones or the beamformer,
        which the unweighted estimate drives) the output is the mean over passes of
        ``g_p ((1 - a) e_p + a r) + (1 - g_p) x``, ``x`` the front microphones: the rule falls
        back to ``x`` from the enhancer's output, beamformer included (with the rule off,
        ``g_p = 1``).
        """
        block = self.guards[0].block
        ready = min(e.shape[-1] for e in self.est)
        n = ready if final else ready - ready % block
        weighted, plain, gains = [], [], []
        for start in range(0, n, block):
            stop = min(start + block, n)
            parts = [guard.select(est[..., start:stop], mix[:, start:stop])
                     for guard, est, mix in zip(self.guards, self.est,
                                                (self.mix, self.mirrored_mix), strict=False)]
            ests = [e if i == 0 else e[[1, 0]] for i, (e, _) in enumerate(parts)]
            mean = (lambda v: v[0]) if len(parts) == 1 else (lambda v: 0.5 * (v[0] + v[1]))
            plain.append(mean(ests))
            if self.guard_off:  # g = 1: nothing to weight or to fall back to
                weighted.append(plain[-1])
                continue
            g = [w for _, w in parts]
            weighted.append(mean([w * e for w, e in zip(g, ests, strict=True)]))
            gains.append(mean(g))
        empty = np.zeros((2, 0), np.float32)
        plain_est = np.concatenate(plain, axis=1) if plain else empty
        if self.mvdr is None:
            self.residual = np.concatenate([self.residual, self.mix[:, :n]], axis=1)
        else:
            self.residual = np.concatenate(
                [self.residual, self.mvdr.process(self.mix6[:, :n], plain_est)], axis=1)
            if final:
                self.residual = np.concatenate([self.residual, self.mvdr.flush()], axis=1)
            self.mix6 = self.mix6[:, n:]
        if not self.guard_off:
            self.front = np.concatenate([self.front, self.mix[:, :n]], axis=1)
            self.gain = np.concatenate([self.gain, *gains], axis=0) if gains else self.gain
        self.est = [e[..., n:] for e in self.est]
        self.mix, self.mirrored_mix = self.mix[:, n:], self.mirrored_mix[:, n:]
        self.selected = np.concatenate([self.selected, *weighted], axis=1) if weighted \
            else self.selected
        m = min(self.selected.shape[1], self.residual.shape[1])
        out, res = self.selected[:, :m], self.residual[:, :m]
        self.selected, self.residual = self.selected[:, m:], self.residual[:, m:]
        a = self.enhancer.residual_mix
        if self.guard_off:
            return ((1 - a) * out + a * res if a > 0 else out).astype(np.float32)
        front, g = self.front[:, :m], self.gain[:m]
        self.front, self.gain = self.front[:, m:], self.gain[m:]
        if a > 0:
            out = (1 - a) * out + a * g * res
        out = out + (1 - g) * front
        return out.astype(np.float32)

    def _append(self, outs) -> None:
        self.est = [np.concatenate([e, o[0].numpy()], axis=-1)
                    for e, o in zip(self.est, outs, strict=True)]  # fmt: skip

    def process(self, block: np.ndarray) -> np.ndarray:
        """Feed ``block [6, n]`` (44.1 kHz); return the output samples ``[2, m]`` that are final.

        Raises
        ------
        ValueError
            A block that is not ``[6, n]`` finite audio.
        """
        import torch

        block = check_mixture(block, "block")
        self.mix = np.concatenate([self.mix, block[:2]], axis=1)
        if self.mvdr is not None:
            self.mix6 = np.concatenate([self.mix6, block], axis=1)
        self.mirrored_mix = np.concatenate([self.mirrored_mix, block[[1, 0]]], axis=1)
        x = torch.from_numpy(block)[None].to(self.enhancer.device)
        with torch.inference_mode():
            outs = [self.streams[0].process(x).cpu()]
            if len(self.streams) > 1:
                outs.append(self.streams[1].process(x[:, MIRROR_ROWS]).cpu())
        self._append(outs)
        return self._blocks(final=False)

    def flush(self) -> np.ndarray:
        """End of signal: the remaining output ``[2, m]`` (totals equal the input length);
        records the guards' fired fractions in ``enhancer.last_fired``; resets."""
        import torch

        with torch.inference_mode():
            self._append([s.flush().cpu() for s in self.streams])
        out = self._blocks(final=True)
        self.enhancer.last_fired = {
            ("mirrored" if i else "direct"): g.fired_fraction() for i, g in enumerate(self.guards)
        }
        self.reset()
        return out


@register_enhancer("convtasnet")
def _build(options: Any) -> ConvTasNetEnhancer:
    from clarity_se.enhancers.beamformed import mvdr_options

    return ConvTasNetEnhancer(
        str(options.checkpoint),
        str(options.device),
        float(options.chunk_s),
        default_residual_mix(options),
        bool(options.mirror_average),
        guard=bool(options.get("guard", False)),
        residual_source=str(options.get("residual_source") or DEFAULT_RESIDUAL_SOURCE),
        beamformer_options=mvdr_options(options),
    )
