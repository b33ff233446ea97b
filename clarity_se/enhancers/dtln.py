"""``enhancer.name=dtln``: the DTLN enhancers (Westhausen & Meyer 2020), two variants.

* ``enhancer.variant=""`` (default): the hearing-aid variant
  (:class:`~clarity_se.models.dtln.DTLNHearingAid`): all six microphones at 44.1 kHz on a
  low-delay STFT, left and right ear out, **191 samples = 4.33 ms** look-ahead (within the
  Clarity 5 ms). Shipped checkpoint ``clarity_se/assets/checkpoints/dtln.pt``. By default
  (``enhancer.residual_source`` empty or ``mvdr``) its estimate drives the MVDR beamformer of
  :mod:`clarity_se.enhancers.beamformed`, whose output is the enhancer's (same latency);
  ``residual_source=mixture`` gives the network's own output.
* ``enhancer.variant=published``: the published 16 kHz DTLN
  (:class:`~clarity_se.models.dtln.DTLN`) run once per ear on the front microphone pair
  (``CH1-L``, ``CH1-R``), resampled 44.1 -> 16 -> 44.1 kHz with
  :class:`~clarity_se.dsp.polyphase.PolyphaseResampler`. Its look-ahead is the resamplers'
  plus the 512-sample block's: **1,463 samples = 33.2 ms at 44.1 kHz** (derived by
  :func:`chained_latency`), over the Clarity limit: a reference point, not a valid
  hearing-aid entry. Shipped checkpoint ``dtln_published.pt``.

Both stream block by block with explicit state (:meth:`DTLNEnhancer.streamer`) and give the
whole-signal output (tested within 1e-5 in ``tests/models/test_dtln.py``).

``enhancer.runtime`` chooses what runs the network: ``pytorch`` (default), ``onnxruntime`` (the
two ONNX sub-models of :mod:`clarity_se.models.dtln_onnx`, frame by frame, as deployed; the
PyTorch output within 1e-4) or ``onnxruntime_int8`` (the same with 8-bit weights; its cost
and its effect on held-out scores: the DTLN recipe README, "the int8 export"; its quantisation
error is tested to stay 20 dB below the output). The export is written once per enhancer, on
first use, to a temporary folder. Everything after the network (the beamformer, the
resamplers) is the same.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from clarity_se.enhancers import register_enhancer
from clarity_se.enhancers.base import SAMPLE_RATE, BlockStreamer, check_mixture
from clarity_se.enhancers.checkpoints import resolve_checkpoint

logger = logging.getLogger(__name__)

#: enhancer.variant -> (model registry name, packaged checkpoint name)
VARIANTS = {"": ("dtln_ha", "dtln"), "published": ("dtln", "dtln_published")}
#: ``enhancer.residual_source`` when empty, per variant: the hearing-aid DTLN's estimate drives
#: the MVDR beamformer (recipe README, "The MVDR residual"); the published one cannot (33 ms)
DEFAULT_RESIDUAL_SOURCE = {"": "mvdr", "published": "mixture"}
#: model arguments of ``enhancer.mvdr.raw_estimate``: the network's estimate without the mask
#: floor and output gain that were chosen for its own output (the beamformer's output level
#: follows the microphones, not the estimate)
RAW_ESTIMATE = {"mask_floor": 0.0, "output_gain_db": 0.0}
#: ``enhancer.mvdr.raw_estimate`` when empty
DEFAULT_RAW_ESTIMATE = False
#: ``enhancer.mvdr.*`` when empty: the enhancers' defaults
#: (:data:`clarity_se.enhancers.beamformed.ENHANCER_DEFAULTS`) but a 1 s time constant (the
#: beamformer's 2 s default did not pass the DTLN's rule: recipe README, "The MVDR residual")
DEFAULT_MVDR_OPTIONS = {"tau_s": 1.0}
#: ``enhancer.runtime`` values: PyTorch, the ONNX export, the ONNX export with int8 weights
RUNTIMES = ("pytorch", "onnxruntime", "onnxruntime_int8")


def chained_latency(down: Any, model: Any, up: Any) -> int:
    """Look-ahead in input samples of ``down`` resampler -> ``model`` -> ``up`` resampler.

    Output sample ``t`` of ``up`` reads its input up to ``a = up.last_input(t)``; the model's
    output ``a`` reads its input up to ``b = model.last_input(a)`` (``floor(a / R) R + S - 1``
    for DTLN); that sample of ``down``'s output reads the original input up to
    ``down.last_input(b)``. The look-ahead is the largest ``down.last_input(b) - t`` over
    ``t``; the chain is periodic in ``t`` with a period dividing ``up.up * R``, so one such
    stretch is searched.

    Parameters
    ----------
    down, up : PolyphaseResampler
        ``orig -> model`` and ``model -> orig`` rate converters (``down.new_rate ==
        up.orig_rate``).
    model : DTLN
        Anything with ``last_input(n)`` and ``hop_length``.

    Returns
    -------
    int
        Samples at the original rate.
    """
    t = np.arange(up.up * model.hop_length, dtype=np.int64)
    return int(np.max(down.last_input(model.last_input(up.last_input(t))) - t))


class DTLNEnhancer:
    """Run a DTLN checkpoint: ``mixture [6, time] -> [2, time]`` at 44.1 kHz.

    Parameters
    ----------
    checkpoint : str
        Checkpoint path; ``""`` is the packaged checkpoint of the variant.
    variant : {"", "published"}
        ``""``: hearing-aid variant (``dtln_ha`` model); ``"published"``: the 16 kHz DTLN per ear.
    device : str
        ``cpu`` or ``cuda[:N]``.
    model_args : dict, optional
        Model arguments that replace the checkpoint's (same weights; e.g. :data:`RAW_ESTIMATE`).
    runtime : {"pytorch", "onnxruntime", "onnxruntime_int8"}
        What runs the network (module docstring); the ONNX runtimes run on the CPU with one
        intra-op thread.

    Raises
    ------
    ValueError
        Unknown variant or runtime, missing/bad checkpoint, a checkpoint of another model than
        the variant needs, CUDA requested but absent, or CUDA with an ONNX runtime.
    """

    name = "dtln"
    #: enhancer.variant -> (model registry name, packaged checkpoint name); subclasses for
    #: other models of the same interface (CR-CED) replace it
    variants = VARIANTS

    def __init__(self, checkpoint: str = "", variant: str = "", device: str = "cpu",
                 model_args: dict | None = None, runtime: str = "pytorch") -> None:  # fmt: skip
        import torch

        from clarity_se.dsp.polyphase import PolyphaseResampler
        from clarity_se.models.checkpoint import load_model

        if variant not in self.variants:
            raise ValueError(
                f"enhancer.variant: expected one of {sorted(self.variants)}, got {variant!r}"
            )
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"enhancer.device={device} but CUDA is not available")
        if runtime not in RUNTIMES:
            raise ValueError(f"enhancer.runtime: expected one of {list(RUNTIMES)}, got {runtime!r}")
        if runtime != "pytorch" and str(device) != "cpu":
            raise ValueError(f"enhancer.runtime={runtime} runs on the CPU; got "
                             f"enhancer.device={device}")  # fmt: skip
        self.runtime = runtime
        self._onnx_dir: tempfile.TemporaryDirectory | None = None
        self._runner: Any = None
        want_model, default_ckpt = self.variants[variant]
        self.variant = variant
        self.path = resolve_checkpoint(checkpoint, default_ckpt)
        self.model, payload = load_model(self.path, map_location=device, model_args=model_args)
        if payload["model_name"] != want_model:
            raise ValueError(
                f"{self.path}: a {payload['model_name']!r} checkpoint, but enhancer.variant="
                f"{variant!r} needs a {want_model!r} one"
            )
        self.device = torch.device(device)
        self.published = variant == "published"
        if self.published:
            rate = int(self.model.sample_rate)
            self.down = PolyphaseResampler(SAMPLE_RATE, rate)
            self.up = PolyphaseResampler(rate, SAMPLE_RATE)
            self._latency = chained_latency(self.down, self.model, self.up)
        else:
            if int(self.model.sample_rate) != SAMPLE_RATE:
                raise ValueError(
                    f"{self.path}: model is for {self.model.sample_rate} Hz, need 44100"
                )
            self._latency = int(self.model.latency_samples)
        logger.info("enhance: %s%s %s on %s with %s (latency %d samples)", self.name,
                    f"/{variant}" if variant else "", self.path, device, runtime,
                    self._latency)  # fmt: skip

    @property
    def latency_samples(self) -> int:
        """Algorithmic look-ahead at 44.1 kHz, samples (191 hearing-aid, 1,463 published)."""
        return self._latency

    @property
    def block_samples(self) -> int:
        """The natural streaming block at 44.1 kHz: one hop (96 samples; published: 8 ms, 353)."""
        hop = int(self.model.hop_length)
        return -(-hop * SAMPLE_RATE // int(self.model.sample_rate))

    def onnx_runner(self) -> Any:
        """A new :class:`~clarity_se.models.dtln_onnx.OnnxDTLNStreamer` of this enhancer's
        model (own state), exporting it first if this enhancer has not (``enhancer.runtime``
        ``onnxruntime`` or ``onnxruntime_int8``; numpy in and out, the model's layout)."""
        from clarity_se.models.dtln_onnx import OnnxDTLNStreamer, export_onnx

        if self._onnx_dir is None:
            self._onnx_dir = tempfile.TemporaryDirectory(prefix="clarity_se_dtln_onnx_")
            export_onnx(self.model, self._onnx_dir.name, int8=self.runtime == "onnxruntime_int8")
        return OnnxDTLNStreamer(Path(self._onnx_dir.name), threads=1)

    def _model(self, x: np.ndarray) -> np.ndarray:
        import torch

        if self.runtime != "pytorch":
            if self._runner is None:
                self._runner = self.onnx_runner()
            self._runner.reset()
            x = np.ascontiguousarray(x, dtype=np.float32)
            return np.concatenate([self._runner.process(x), self._runner.flush()], axis=1)
        with torch.inference_mode():
            inp = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
            if self.published:
                return self.model(inp).cpu().numpy()
            return self.model(inp[None])[0].cpu().numpy()

    def __call__(self, mixture: np.ndarray) -> np.ndarray:
        """Enhance ``mixture [6, time]`` -> ``[2, time]`` float32."""
        mixture = check_mixture(mixture)
        if not self.published:
            return self._model(mixture).astype(np.float32)
        ears = self._model(self.down(mixture[:2]))
        return self.up(ears)[:, : mixture.shape[1]].astype(np.float32)

    def streamer(self) -> BlockStreamer:
        """Block-by-block processing with carried LSTM states and buffers."""
        return _DTLNBlockStreamer(self)

    def diagnostics(self) -> dict:
        """Nothing to report: ``{}``."""
        return {}


class _DTLNBlockStreamer:
    """:class:`~clarity_se.enhancers.base.BlockStreamer` of :class:`DTLNEnhancer`."""

    def __init__(self, enhancer: DTLNEnhancer) -> None:
        self.enhancer = enhancer
        self.onnx = enhancer.runtime != "pytorch"
        self.model_stream = enhancer.onnx_runner() if self.onnx else enhancer.model.streamer()
        if enhancer.published:
            self.down, self.up = enhancer.down.streamer(), enhancer.up.streamer()
        self.reset()

    def reset(self) -> None:
        """Forget all state (start a new signal): model, resamplers, sample counts."""
        self.model_stream.reset()
        if self.enhancer.published:
            self.down.reset()
            self.up.reset()
        self.n_in = self.n_out = 0

    def _model(self, x: np.ndarray | None, final: bool) -> np.ndarray:
        import torch

        if self.onnx:
            pieces = []
            if x is not None and x.shape[-1]:
                pieces.append(self.model_stream.process(np.ascontiguousarray(x, np.float32)))
            if final:
                pieces.append(self.model_stream.flush())
            pieces = [p for p in pieces if p.size]
            return np.concatenate(pieces, axis=1) if pieces else np.zeros((2, 0), np.float32)
        with torch.inference_mode():
            out = None
            if x is not None and x.shape[-1]:
                inp = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
                inp = inp.to(self.enhancer.device)
                out = self.model_stream.process(inp if self.enhancer.published else inp[None])
            pieces = [] if out is None else [out]
            if final:
                pieces.append(self.model_stream.flush())
            pieces = [p.reshape(2, -1).cpu().numpy() for p in pieces if p.numel()]
        return np.concatenate(pieces, axis=1) if pieces else np.zeros((2, 0), np.float32)

    def _emit(self, out: np.ndarray) -> np.ndarray:
        out = out[:, : max(0, self.n_in - self.n_out)].astype(np.float32)
        self.n_out += out.shape[1]
        return out

    def process(self, block: np.ndarray) -> np.ndarray:
        """Feed ``block [6, n]`` (44.1 kHz); return the output samples ``[2, m]`` that are final.

        Raises
        ------
        ValueError
            A block that is not ``[6, n]`` finite audio.
        """
        block = check_mixture(block, "block")
        self.n_in += block.shape[1]
        if not self.enhancer.published:
            return self._emit(self._model(block, final=False))
        ears = self._model(self.down.process(block[:2]), final=False)
        return self._emit(self.up.process(ears))

    def flush(self) -> np.ndarray:
        """End of signal: the remaining output ``[2, m]`` (totals equal the input length)."""
        if not self.enhancer.published:
            out = self._emit(self._model(None, final=True))
        else:
            ears = self._model(self.down.flush(), final=True)
            pieces = [self.up.process(ears)] if ears.shape[1] else []
            tail = self.up.flush()
            if tail is not None:
                pieces.append(tail)
            out = self._emit(np.concatenate(pieces, axis=1) if pieces else np.zeros((2, 0)))
        self.reset()
        return out


@register_enhancer("dtln")
def _build(options: Any):
    from clarity_se.enhancers.beamformed import apply_residual_source, mvdr_options, raw_estimate

    variant = str(options.variant or "")
    source = str(options.get("residual_source") or DEFAULT_RESIDUAL_SOURCE.get(variant, ""))
    raw = source == "mvdr" and raw_estimate(options, DEFAULT_RAW_ESTIMATE)
    enhancer = DTLNEnhancer(str(options.checkpoint), variant, str(options.device),
                            RAW_ESTIMATE if raw else None,
                            str(options.get("runtime") or "pytorch"))  # fmt: skip
    return apply_residual_source(enhancer, source, mvdr_options(options, DEFAULT_MVDR_OPTIONS))
