"""ONNX export of CR-CED with its context as an explicit state, and an onnxruntime runner.

One graph per model, ``crced.onnx``, one frame per call (:class:`FrameStep`); the batch norms
are folded into the convolutions first (:func:`~clarity_se.models.crced.fold_batch_norms`),
every convolution is exported as a height-1 2-D convolution (which onnxruntime runs in its
blocked NCHWc layout, faster at this size than its 1-D ``im2col`` path) and, in the hearing-aid
variant, the full-band output layer becomes one matrix product (:class:`DenseConv1d`), so the
graph is convolutions, ReLUs, a sigmoid and (hearing-aid variant) three small matrix products:

* hearing-aid variant (:class:`~clarity_se.models.crced.CRCEDHearingAid`):
  ``mags [batch, 5, 1, n_bins]`` (STFT magnitudes of the five derived signals),
  ``context_in [batch, 35, 1, n_bands]`` -> ``mask [2 batch, n_bins]`` (rows left, right of
  each batch item), ``context_out``;
* published (:class:`~clarity_se.models.crced.CRCED`): ``mags [batch, 1, 1, n_bins]``,
  ``context_in [batch, 7, 1, n_bins]`` -> ``mask [batch, n_bins]``, ``context_out``.

The context is the log features of the 7 previous frames (oldest first; per frame the 5
signals' bands in the hearing-aid variant); a new signal starts from :meth:`initial_state`
values (the log of the epsilon: silence). ``batch`` is dynamic. Framing, FFTs and overlap-add
stay outside, in numpy (:class:`OnnxCRCEDStreamer`, on the framing of
:class:`~clarity_se.models.onnx_stream.OnnxFrameStreamer` shared with
:mod:`clarity_se.models.dtln_onnx`); ``crced_onnx.json`` records the model name and
constructor arguments. The runner equals the PyTorch model within 1e-4
(``tests/models/test_crced.py``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from clarity_se.dsp.lowdelay_stft import asymmetric_windows
from clarity_se.models.crced import CRCED, EPS, CRCEDHearingAid, fold_batch_norms
from clarity_se.models.onnx_stream import (
    OnnxFrameStreamer,
    export_main,
    irfft_plan,
    ort_session,
    read_export_meta,
    rfft_plan,
    torchscript_export,
    write_export_meta,
)

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


def _height1(conv: nn.Conv1d) -> nn.Conv2d:
    """The :class:`~torch.nn.Conv1d` ``conv`` as a :class:`~torch.nn.Conv2d` over ``[N, C, 1,
    n]`` with kernel ``(1, width)`` (same weights, bias and padding along ``n``)."""
    (width,), (pad,) = conv.kernel_size, conv.padding
    out = nn.Conv2d(conv.in_channels, conv.out_channels, (1, width), padding=(0, pad),
                    bias=conv.bias is not None)  # fmt: skip
    with torch.no_grad():
        out.weight.copy_(conv.weight[:, :, None])
        if conv.bias is not None:
            out.bias.copy_(conv.bias)
    return out


class FrameStep(nn.Module):
    """``(mags, context_in) -> (mask, context_out)`` of a folded CR-CED model: the exported graph.

    The function of the model's ``mask_step`` (one frame; equal within float32 rounding) with
    the tensors laid out for onnxruntime:

    * every :class:`~torch.nn.Conv1d` of the network as a height-1 :class:`~torch.nn.Conv2d`
      (``[N, C, 1, n]``, kernel ``(1, width)``), which onnxruntime's blocked-layout (NCHWc)
      convolutions take;
    * the context kept with the signals and frames in one channel axis, so that the new
      frame's features are concatenated to it without reshapes: ``[batch, (context - 1) c, 1,
      n]`` (frames oldest first, ``c`` signals per frame, ``n`` bands or bins; the order of
      ``mask_step``'s ``[batch, context - 1, c, n]``);
    * hearing-aid variant: the output layer as :class:`DenseConv1d`, and the floored band
      mask interpolated to the bins, ``g (f + (1 - f) s) I`` (floor ``f``, sigmoid ``s``,
      triangles ``I``, output gain ``g``), as one matrix product plus bias,
      ``s (g (1 - f) I) + g f 1^T I``, on the rows ``[batch 2, n_bands]`` (left and right of
      each batch item).

    Parameters
    ----------
    model : CRCED or CRCEDHearingAid
        A model after :func:`~clarity_se.models.crced.fold_batch_norms` (eval mode). The
        published model's output layer stays a (height-1) convolution.
    """

    def __init__(self, model: CRCED | CRCEDHearingAid) -> None:
        super().__init__()
        self.hearing_aid = isinstance(model, CRCEDHearingAid)
        self.first = _height1(model.first[0])
        self.units = nn.ModuleList(
            nn.ModuleList(_height1(layer[0]) for layer in unit) for unit in model.units
        )
        self.tail = nn.ModuleList(_height1(layer[0]) for layer in model.tail)
        if self.hearing_aid:
            self.out: nn.Module = DenseConv1d(model.out, model.n_bands)
            self.register_buffer("pool", model.pool.t().contiguous())  # [bins, bands]
            # the floored mask interpolated to the bins, g (f + (1 - f) s) @ I, as one matrix
            # product and bias: s @ (g (1 - f) I) + g f (column sums of I)
            floor, interp, gain = model.mask_floor, model.interp, model.output_gain
            self.register_buffer("interp", gain * (1.0 - floor) * interp)  # [bands, bins]
            self.register_buffer("floor", gain * floor * interp.sum(dim=0))  # [bins]
            self.n_signals, self.n_bands = model.N_SIGNALS, model.n_bands
            self.power_eps, self.frame_norm = model.POWER_EPS, model.frame_norm
        else:
            self.out = _height1(model.out)
            self.n_signals = 1

    def forward(self, mags: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """``mags [batch, c, 1, n_bins]``, ``context [batch, (context - 1) c, 1, n]`` -> ``mask``
        (``[batch 2, n_bins]``, rows left and right per batch item, hearing-aid variant;
        ``[batch, n_bins]`` published) and the next context."""
        if self.hearing_aid:
            feats = torch.log(mags.square() @ self.pool + self.power_eps)
            if self.frame_norm:
                feats = feats - feats.mean(dim=(1, 3), keepdim=True)
        else:
            feats = torch.log(mags + EPS)
        history = torch.cat([context, feats], dim=1)
        h = torch.relu(self.first(history))
        for unit in self.units:
            g = h
            for conv in unit:
                g = torch.relu(conv(g))
            h = h + g
        for conv in self.tail:
            h = torch.relu(conv(h))
        if self.hearing_aid:
            out = h.flatten(1) @ self.out.matrix + self.out.bias  # DenseConv1d, [batch, 2 bands]
            band_mask = torch.sigmoid(out.reshape(-1, self.n_bands))  # [batch 2, bands]
            mask = torch.addmm(self.floor, band_mask, self.interp)
        else:
            mask = torch.sigmoid(self.out(h)).flatten(1)
        return mask, history[:, self.n_signals :]


def export_onnx(model: CRCED | CRCEDHearingAid, out_dir: str | Path) -> dict[str, Path]:
    """Fold the batch norms and write ``crced.onnx`` and ``crced_onnx.json`` to ``out_dir``.

    The graph is :class:`FrameStep` of the folded model (same function as the model's
    ``mask_step`` within float32 rounding).

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
    step = FrameStep(folded).eval()
    batch, c = 2, step.n_signals
    n_feat = model.n_bands if isinstance(model, CRCEDHearingAid) else model.n_bins
    mags = torch.rand(batch, c, 1, model.n_bins)
    state = folded.initial_state(batch).reshape(batch, -1, 1, n_feat)
    paths = {"model": out / MODEL_FILE, "meta": out / META_FILE}
    dyn = {name: {0: "batch"} for name in ("mags", "context_in", "mask", "context_out")}
    with torch.no_grad():
        torchscript_export(
            step, (mags, state), paths["model"],
            input_names=["mags", "context_in"], output_names=["mask", "context_out"],
            dynamic_axes=dyn, opset_version=OPSET,
        )  # fmt: skip
    write_export_meta(paths["meta"], model, OPSET)
    return paths


class OnnxCRCEDStreamer(OnnxFrameStreamer):
    """Frame-by-frame CR-CED with onnxruntime (pocketfft FFTs, one session, explicit context).

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
    ``CH1`` spectra, synthesis window, overlap-add. The graph runs with an
    ``onnxruntime.IOBinding`` on preallocated arrays: the magnitudes are written into the bound
    input, the mask comes back in a bound output, and the context alternates between two bound
    arrays (two bindings, one reading the first and writing the second, one the reverse), so
    no array is allocated or copied around the call; the FFTs run as
    :func:`~clarity_se.models.onnx_stream.rfft_plan` / ``irfft_plan`` on preallocated arrays,
    ``[time, signals]`` as the framing. Memory: the input ring of
    :class:`~clarity_se.models.onnx_stream.OnnxFrameStreamer`, the context, ``S - R`` output
    samples per output signal.

    Raises
    ------
    ValueError
        Missing export folder, or input of the wrong shape.
    """

    def __init__(self, export_dir: str | Path, threads: int = 1) -> None:
        folder = Path(export_dir)
        self.model_name, hp = read_export_meta(folder, META_FILE)
        self.hearing_aid = self.model_name == "crced_ha"
        if self.hearing_aid:
            K, R, S = hp["win_length"], hp["hop_length"], hp["synth_length"]
            analysis, synthesis = asymmetric_windows(K, R, S)
            self.analysis = analysis.astype(np.float32)
            self.synthesis = synthesis[-S:].astype(np.float32)
            n_signals, n_feat = CRCEDHearingAid.N_SIGNALS, hp["n_bands"]
            self.log_eps = 0.0 if hp.get("frame_norm") else math.log(CRCEDHearingAid.POWER_EPS)
        else:
            K, R = hp["n_fft"], hp["hop_length"]
            S = K
            n = np.arange(K)
            self.analysis = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * n / K)).astype(np.float32)
            self.synthesis = self.analysis / 2.0
            n_signals, n_feat = 1, K // 2 + 1
            self.log_eps = math.log(EPS)
        #: the graph's context per batch item, ``((context - 1) c, 1, n)``
        self.context_shape = ((hp["context"] - 1) * n_signals, 1, n_feat)
        self.K, self.R, self.S = K, R, S
        self.n_bins = K // 2 + 1
        self.session = ort_session(folder / MODEL_FILE, threads)
        self.reset()

    def _init_state(self, n_signals: int, n_outputs: int) -> None:
        # hearing aid: one batch item of 5 signals; published: one batch item per channel
        batch, rows = (1, 5) if self.hearing_aid else (n_signals, 1)
        f32, n_bins = np.float32, self.n_bins
        self.frame = np.empty((self.K, n_signals), f32)  # windowed, [time, signals]
        self.spec = np.empty((n_signals, n_bins), np.complex64)
        self.own = self.spec[:2] if self.hearing_aid else self.spec  # the spectra masked
        self.product = np.empty((n_outputs, n_bins), np.complex64)
        self.out_frame = np.empty((self.K, n_outputs), f32)  # inverse FFT, [time, signals]
        # the windows repeated for each signal: one contiguous multiply per frame
        self.analysis_tiled = np.repeat(self.analysis[:, None], n_signals, axis=1)
        self.synthesis_tiled = np.repeat(self.synthesis[:, None], n_outputs, axis=1)
        mags = np.empty((batch, rows, 1, n_bins), f32)
        mask = np.empty((n_outputs, n_bins), f32)  # [batch 2] or [batch] rows
        self.mags_rows = mags.reshape(n_signals, n_bins)  # views of the bound arrays
        self.mask_rows = mask
        contexts = [np.full((batch, *self.context_shape), self.log_eps, f32) for _ in range(2)]
        self.bindings = []
        for i in (0, 1):
            binding = self.session.io_binding()
            binding.bind_cpu_input("mags", mags)
            binding.bind_cpu_input("context_in", contexts[i])
            for name, array in (("mask", mask), ("context_out", contexts[1 - i])):
                binding.bind_output(name, "cpu", 0, f32, array.shape, array.ctypes.data)
            self.bindings.append(binding)
        self.bound = (mags, mask, contexts)  # the bindings point into these arrays
        self.forward_fft = rfft_plan(self.frame, self.spec.T, axis=0)
        self.inverse_fft = irfft_plan(self.product.T, self.K, self.out_frame, axis=0)

    def _segment(self, buf: np.ndarray) -> np.ndarray:
        np.multiply(buf, self.analysis_tiled, out=self.frame)
        self.forward_fft()  # -> spec [signals, bins]
        np.abs(self.spec, out=self.mags_rows)
        self.session.run_with_iobinding(self.bindings[self.n_frames & 1])
        np.multiply(self.own, self.mask_rows, out=self.product)
        return self.inverse_fft()[self.K - self.S :] * self.synthesis_tiled


def main(argv: list[str] | None = None) -> int:
    """``python -m clarity_se.models.crced_onnx CHECKPOINT OUT_DIR``: export a CR-CED checkpoint.

    Returns 0, or 2 (with the reason on stderr) for a missing or non-CR-CED checkpoint.
    """
    return export_main(argv, export_onnx, "export a CR-CED checkpoint to ONNX",
                       "a crced or crced_ha checkpoint (.pt)",
                       "folder for crced.onnx and crced_onnx.json")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
