"""ONNX export of CR-CED with its context as an explicit state, and an onnxruntime runner.

One graph per model, ``crced.onnx``, one frame per call; the batch norms are folded into the
convolutions first (:func:`~clarity_se.models.crced.fold_batch_norms`) and, in the hearing-aid
variant, the full-band output layer becomes one matrix product (:class:`DenseConv1d`), so the
graph is convolutions, ReLUs, a sigmoid and (hearing-aid variant) three small matrix products:

* hearing-aid variant (:class:`~clarity_se.models.crced.CRCEDHearingAid`):
  ``mags [batch, 5, n_bins]`` (STFT magnitudes of the five derived signals),
  ``context_in [batch, 7, 5, n_bands]`` -> ``mask [batch, 2, n_bins]`` (left, right),
  ``context_out``;
* published (:class:`~clarity_se.models.crced.CRCED`): ``mags [batch, n_bins]``,
  ``context_in [batch, 7, n_bins]`` -> ``mask [batch, n_bins]``, ``context_out``.

The context is the log features of the 7 previous frames (oldest first); a new signal starts
from :meth:`initial_state` values (the log of the epsilon: silence). ``batch`` is dynamic.
Framing, FFTs and overlap-add stay outside, in numpy (:class:`OnnxCRCEDStreamer`), as in
:mod:`clarity_se.models.dtln_onnx`; ``crced_onnx.json`` records the model name and constructor
arguments. The runner equals the PyTorch model within 1e-4 (``tests/models/test_crced.py``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import scipy.fft
import torch
from torch import Tensor, nn

from clarity_se.dsp.lowdelay_stft import asymmetric_windows
from clarity_se.models.crced import CRCED, CRCEDHearingAid, fold_batch_norms
from clarity_se.models.onnx_stream import OnnxFrameStreamer, ort_session_options

META_FILE = "crced_onnx.json"
MODEL_FILE = "crced.onnx"
OPSET = 17


class DenseConv1d(nn.Module):
    """A :class:`~torch.nn.Conv1d` on a fixed length as one matrix product (the export form of
    CR-CED's full-band output layer).

    ``y[m, o, b] = bias[o] + sum_{c, b'} W[o, c, b' - b + p] x[m, c, b']`` (zero outside the
    kernel) for ``x [M, C, n]`` is ``x.flatten(1) @ T + bias`` with the Toeplitz-structured
    ``T [C n, O n]``, then reshaped to ``[M, O, n]``. Same function (float32 rounding); for
    the output layer of :class:`~clarity_se.models.crced.CRCEDHearingAid` (2 filters of width
    63 over 32 bands, 8 channels) it is one ``MatMul`` of 16,384 multiply-adds instead of a
    ``Conv`` of 32,256 (half of them on the zero padding) whose ``im2col`` copy dominates at
    this size in onnxruntime. Not used for the published form (129 x 129 taps: no saving, a
    129-fold larger weight).

    Parameters
    ----------
    conv : torch.nn.Conv1d
        Stride 1, dilation 1, one group, zero padding ``p`` (any ``p``, output length ``n + 2 p
        - width + 1`` must equal ``n``).
    length : int
        ``n``, the fixed input length (bands or bins).

    Raises
    ------
    ValueError
        A convolution of another kind, or one that changes the length.
    """

    def __init__(self, conv: nn.Conv1d, length: int) -> None:
        super().__init__()
        (width,), (pad,) = conv.kernel_size, conv.padding
        if (conv.stride, conv.dilation, conv.groups) != ((1,), (1,), 1) or (
            conv.padding_mode != "zeros" or length + 2 * pad - width + 1 != length
        ):
            raise ValueError("DenseConv1d: needs a stride-1, ungrouped, length-keeping Conv1d")
        w = conv.weight.detach()  # [O, C, width]
        n_out, n_in = w.shape[:2]
        band = torch.arange(length)
        k = band[:, None] - band[None, :] + pad  # [b' (input), b (output)] -> kernel tap
        valid = (k >= 0) & (k < width)
        taps = w[:, :, k.clamp(0, width - 1)] * valid  # [O, C, b', b]
        self.register_buffer("matrix", taps.permute(1, 2, 0, 3).reshape(n_in * length, -1))
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(n_out)
        self.register_buffer("bias", bias.repeat_interleave(length))
        self.n_out, self.length = n_out, length

    def forward(self, x: Tensor) -> Tensor:
        """``x [M, C, n]`` -> ``[M, O, n]``."""
        return (x.flatten(1) @ self.matrix + self.bias).reshape(-1, self.n_out, self.length)


class MaskStep(nn.Module):
    """``(mags, context_in) -> (mask, context_out)`` of a (folded) CR-CED model."""

    def __init__(self, model: CRCED | CRCEDHearingAid) -> None:
        super().__init__()
        self.model = model

    def forward(self, mags: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """One frame; see the module docstring for the shapes."""
        return self.model.mask_step(mags, context)


def export_onnx(model: CRCED | CRCEDHearingAid, out_dir: str | Path) -> dict[str, Path]:
    """Fold the batch norms and write ``crced.onnx`` and ``crced_onnx.json`` to ``out_dir``.

    The hearing-aid variant's output layer is exported as :class:`DenseConv1d` (same function).

    Parameters
    ----------
    model : CRCED or CRCEDHearingAid
        Trained model (not modified; a folded copy in eval mode, CPU, float32 is exported).
    out_dir : path-like
        Created if missing.

    Returns
    -------
    dict
        ``{"model": path, "meta": path}``.

    Raises
    ------
    ValueError
        If ``model`` is not a CR-CED model.
    """
    if not isinstance(model, (CRCED, CRCEDHearingAid)):
        raise ValueError(f"export_onnx: expected a CR-CED model, got {type(model).__name__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    folded = fold_batch_norms(model.cpu().float()).eval()
    if isinstance(model, CRCEDHearingAid):  # published: 129 x 129 taps, no saving
        folded.out = DenseConv1d(folded.out, model.n_bands)
    batch = 2
    mags = torch.rand(batch, *(() if isinstance(model, CRCED) else (5,)), model.n_bins)
    state = folded.initial_state(batch)
    paths = {"model": out / MODEL_FILE, "meta": out / META_FILE}
    dyn = {name: {0: "batch"} for name in ("mags", "context_in", "mask", "context_out")}
    with torch.no_grad():
        torch.onnx.export(
            MaskStep(folded).eval(), (mags, state), paths["model"],
            input_names=["mags", "context_in"], output_names=["mask", "context_out"],
            dynamic_axes=dyn, opset_version=OPSET, dynamo=False,
        )  # fmt: skip
    from clarity_se.models import model_name

    meta = {"model_name": model_name(model), "model_args": dict(model.hparams), "opset": OPSET}
    paths["meta"].write_text(json.dumps(meta, indent=1))
    return paths


class OnnxCRCEDStreamer(OnnxFrameStreamer):
    """Frame-by-frame CR-CED with onnxruntime (numpy FFTs, one session, explicit context).

    Parameters
    ----------
    export_dir : path-like
        Folder written by :func:`export_onnx`.
    threads : int
        ``intra_op_num_threads`` of the session (1: one CPU core).

    Notes
    -----
    ``process(x)`` takes ``[6, n]`` float32 (hearing-aid variant; output ``[2, m]``, left and
    right) or ``[channels, n]`` (published; ``[channels, m]``) and returns the output samples
    that are final; ``flush()`` the rest (the total equals the input length). Each complete hop
    of ``R`` samples runs one frame: windowed FFTs, the ONNX graph, inverse FFTs of the masked
    ``CH1`` spectra, synthesis window, overlap-add. Memory: ``K`` input samples per signal, the
    context, ``S`` output samples per output signal.

    Raises
    ------
    ValueError
        Missing export folder, or input of the wrong shape.
    """

    def __init__(self, export_dir: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        folder = Path(export_dir)
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise ValueError(f"{folder}: no {META_FILE} (write one with export_onnx)")
        meta = json.loads(meta_path.read_text())
        self.model_name, hp = meta["model_name"], meta["model_args"]
        self.hearing_aid = self.model_name == "crced_ha"
        if self.hearing_aid:
            K, R, S = hp["win_length"], hp["hop_length"], hp["synth_length"]
            analysis, synthesis = asymmetric_windows(K, R, S)
            self.analysis = analysis.astype(np.float32)
            self.synthesis = synthesis[-S:].astype(np.float32)
            self.context_shape: tuple[int, ...] = (hp["context"] - 1, 5, hp["n_bands"])
            self.log_eps = 0.0 if hp.get("frame_norm") else math.log(CRCEDHearingAid.POWER_EPS)
        else:
            K, R = hp["n_fft"], hp["hop_length"]
            S = K
            n = np.arange(K)
            self.analysis = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * n / K)).astype(np.float32)
            self.synthesis = self.analysis / 2.0
            self.context_shape = (hp["context"] - 1, K // 2 + 1)
            self.log_eps = math.log(1e-7)
        self.K, self.R, self.S = K, R, S
        self.session = ort.InferenceSession(
            str(folder / MODEL_FILE), ort_session_options(threads),
            providers=["CPUExecutionProvider"])
        self.reset()

    def reset(self) -> None:
        """Forget all state (start a new signal)."""
        super().reset()
        self.context: np.ndarray | None = None

    def _init_state(self, n_signals: int, n_outputs: int) -> None:
        n_ctx = 1 if self.hearing_aid else n_signals
        self.context = np.full((n_ctx, *self.context_shape), self.log_eps, dtype=np.float32)

    def _segment(self, buf: np.ndarray) -> np.ndarray:
        spec = scipy.fft.rfft(buf * self.analysis, axis=-1)
        mags = np.abs(spec)
        if self.hearing_aid:
            mags, own = mags[None], spec[:2]
        else:
            own = spec
        mask, self.context = self.session.run(None, {"mags": mags, "context_in": self.context})
        frame = scipy.fft.irfft(own * (mask[0] if self.hearing_aid else mask), n=self.K, axis=-1)
        return frame[:, self.K - self.S :] * self.synthesis


def main(argv: list[str] | None = None) -> int:
    """``python -m clarity_se.models.crced_onnx CHECKPOINT OUT_DIR``: export a CR-CED checkpoint.

    Returns 0, or 2 (with the reason on stderr) for a missing or non-CR-CED checkpoint.
    """
    import argparse
    import sys

    from clarity_se.models.checkpoint import load_model

    parser = argparse.ArgumentParser(description="export a CR-CED checkpoint to ONNX")
    parser.add_argument("checkpoint", help="a crced or crced_ha checkpoint (.pt)")
    parser.add_argument("out_dir", help="folder for crced.onnx and crced_onnx.json")
    args = parser.parse_args(argv)
    try:
        model, _ = load_model(args.checkpoint)
        paths = export_onnx(model, args.out_dir)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
