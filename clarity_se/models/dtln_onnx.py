"""ONNX export of DTLN as the reference deploys it, and a frame-by-frame onnxruntime runner.

As in the reference's ``real_time_processing_onnx.py`` (breizhn/DTLN), the network is split in
two sub-models with the LSTM states as explicit inputs and outputs, and the FFTs, framing and
overlap-add stay outside (numpy):

* ``model_1.onnx``: ``mags [batch, 1, n_feats]``, ``states_in [batch, n_layers, units, 2]``
  -> ``mask [batch, 1, n_bins]``, ``states_out`` (core 1; the log and instant layer norm of
  the hearing-aid variant are inside);
* ``model_2.onnx``: ``frame [batch, 1, K]``, ``states_in`` -> ``segment [batch, 1, S]``,
  ``states_out`` (core 2 with encoder, norm and decoder; the synthesis window of the hearing-aid
  variant is inside).

``states[..., 0]`` is the LSTM ``h``, ``states[..., 1]`` the ``c`` (the reference's layout).
``batch`` is dynamic: one row per processed signal (the two ears of :class:`DTLNHearingAid`, or
the channels given to :class:`DTLN`). ``dtln_onnx.json`` next to them records the model name and
constructor arguments, from which :class:`OnnxDTLNStreamer` rebuilds the framing.

The runner produces the same output as the PyTorch model (tested within 1e-4 in
``tests/models/test_dtln.py``) and is what ``benchmarks/bench_enhancer.py`` times block by block.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from clarity_se.dsp.lowdelay_stft import asymmetric_windows
from clarity_se.models.dtln import DTLN, DTLNHearingAid
from clarity_se.models.onnx_stream import (
    OnnxFrameStreamer,
    export_main,
    irfft,
    ort_session,
    quantize_int8,
    read_export_meta,
    rfft,
    torchscript_export,
    write_export_meta,
)

META_FILE = "dtln_onnx.json"
OPSET = 17


def _split(states: Tensor) -> tuple[Tensor, Tensor]:
    """``[batch, n_layers, units, 2]`` -> ``(h, c)`` each ``[n_layers, batch, units]``."""
    return (
        states[..., 0].permute(1, 0, 2).contiguous(),
        states[..., 1].permute(1, 0, 2).contiguous(),
    )


def _join(state: tuple[Tensor, Tensor]) -> Tensor:
    """``(h, c)`` each ``[n_layers, batch, units]`` -> ``[batch, n_layers, units, 2]``."""
    return torch.stack(state, dim=-1).permute(1, 0, 2, 3)


class Core1Step(nn.Module):
    """Sub-model 1 of a DTLN model: ``(mags, states_in) -> (mask, states_out)``."""

    def __init__(self, model: DTLN | DTLNHearingAid) -> None:
        super().__init__()
        self.model = model

    def forward(self, mags: Tensor, states: Tensor) -> tuple[Tensor, Tensor]:
        """``mags [batch, frames, n_feats]``, ``states [batch, n_layers, units, 2]``."""
        mask, state = self.model.core1_mask(mags, _split(states))
        return mask, _join(state)


class Core2Step(nn.Module):
    """Sub-model 2 of a DTLN model: ``(frame, states_in) -> (segment, states_out)``."""

    def __init__(self, model: DTLN | DTLNHearingAid) -> None:
        super().__init__()
        self.model = model

    def forward(self, frame: Tensor, states: Tensor) -> tuple[Tensor, Tensor]:
        """``frame [batch, frames, K]``, ``states [batch, n_layers, units, 2]``."""
        segment, state = self.model.core2_segments(frame, _split(states))
        return segment, _join(state)


def _n_feats(model: DTLN | DTLNHearingAid) -> int:
    return 3 * model.n_bins if isinstance(model, DTLNHearingAid) else model.n_bins


def export_onnx(
    model: DTLN | DTLNHearingAid, out_dir: str | Path, int8: bool = False
) -> dict[str, Path]:
    """Write ``model_1.onnx``, ``model_2.onnx`` and ``dtln_onnx.json`` to ``out_dir``.

    Parameters
    ----------
    model : DTLN or DTLNHearingAid
        Trained model; left in eval mode, on CPU, float32 (its float64 STFT windows too).
    out_dir : path-like
        Created if missing.
    int8 : bool
        Quantise both sub-models' weights to int8
        (:func:`~clarity_se.models.onnx_stream.quantize_int8`: the LSTMs and dense layers run
        on 8-bit weights in onnxruntime; the outputs differ from the float model's by the
        quantisation error, tested to stay 20 dB below the output in
        ``tests/models/test_dtln.py``).

    Returns
    -------
    dict
        ``{"model_1": path, "model_2": path, "meta": path}``.

    Raises
    ------
    ValueError
        If ``model`` is not a DTLN model.
    """
    if not isinstance(model, (DTLN, DTLNHearingAid)):
        raise ValueError(f"export_onnx: expected a DTLN model, got {type(model).__name__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu().float()
    batch = 2
    hp = model.hparams
    states = torch.zeros(batch, hp["n_layers"], hp["units"], 2)
    paths = {"model_1": out / "model_1.onnx", "model_2": out / "model_2.onnx"}
    dynamic = {"states_in": {0: "batch"}, "states_out": {0: "batch"}}
    with torch.no_grad():
        torchscript_export(
            Core1Step(model).eval(), (torch.rand(batch, 1, _n_feats(model)), states),
            paths["model_1"],
            input_names=["mags", "states_in"], output_names=["mask", "states_out"],
            dynamic_axes={"mags": {0: "batch"}, "mask": {0: "batch"}, **dynamic},
            opset_version=OPSET,
        )  # fmt: skip
        torchscript_export(
            Core2Step(model).eval(), (torch.randn(batch, 1, model.win_length), states),
            paths["model_2"],
            input_names=["frame", "states_in"], output_names=["segment", "states_out"],
            dynamic_axes={"frame": {0: "batch"}, "segment": {0: "batch"}, **dynamic},
            opset_version=OPSET,
        )  # fmt: skip
    paths["meta"] = write_export_meta(out / META_FILE, model, OPSET)
    return quantize_int8(paths) if int8 else paths


class OnnxDTLNStreamer(OnnxFrameStreamer):
    """Frame-by-frame DTLN with onnxruntime (pocketfft FFTs, two sessions, explicit states).

    Parameters
    ----------
    export_dir : path-like
        Folder written by :func:`export_onnx`.
    threads : int
        ``intra_op_num_threads`` of both sessions (1: one CPU core).

    Notes
    -----
    Same input and output layout and framing as :class:`~clarity_se.models.dtln.DTLNStreamer`
    but numpy in and out, one signal at a time: ``process(x)`` takes ``[6, n]`` (hearing-aid
    variant) or ``[channels, n]`` (published) float32 and returns the final output samples
    ``[2, m]`` / ``[channels, m]``; ``flush()`` the rest. Each complete hop of ``R`` samples runs
    one frame: FFT(s), sub-model 1, inverse FFT, sub-model 2, overlap-add.

    Raises
    ------
    ValueError
        Missing or unreadable export folder, or input of the wrong shape.
    """

    def __init__(self, export_dir: str | Path, threads: int = 1) -> None:
        folder = Path(export_dir)
        self.model_name, hp = read_export_meta(folder, META_FILE)
        self.hearing_aid = self.model_name == "dtln_ha"
        if self.hearing_aid:
            K, R, S = hp["win_length"], hp["hop_length"], hp["synth_length"]
            self.window: np.ndarray | None = asymmetric_windows(K, R, S)[0].astype(np.float32)
        else:
            K, R, S = hp["block_len"], hp["block_shift"], hp["block_len"]
            self.window = None
        self.K, self.R, self.S = K, R, S
        self.n_layers, self.units = hp["n_layers"], hp["units"]
        self.sessions = [ort_session(folder / f"model_{i}.onnx", threads) for i in (1, 2)]
        self.reset()

    def reset(self) -> None:
        """Forget all state (start a new signal)."""
        super().reset()
        self.states: list[np.ndarray] = []

    def _init_state(self, n_signals: int, n_outputs: int) -> None:
        zeros = np.zeros((n_outputs, self.n_layers, self.units, 2), dtype=np.float32)
        self.states = [zeros, zeros.copy()]
        self.feats = np.zeros((n_outputs, 1, 3 * (self.K // 2 + 1)), dtype=np.float32)

    def _segment(self, buf: np.ndarray) -> np.ndarray:
        frames = buf if self.window is None else buf * self.window[:, None]
        spec = rfft(frames.T)
        mags = np.abs(spec)
        if self.hearing_aid:
            n_bins = mags.shape[1]
            feats = self.feats
            feats[:, 0, :n_bins] = mags[:2]
            feats[:, 0, n_bins : 2 * n_bins] = mags[2]
            feats[:, 0, 2 * n_bins :] = mags[3:5]
            own = spec[:2]
        else:
            feats, own = mags[:, None], spec
        mask, self.states[0] = self.sessions[0].run(
            None, {"mags": feats, "states_in": self.states[0]}
        )
        est = irfft(own * mask[:, 0], self.K)
        segment, self.states[1] = self.sessions[1].run(
            None, {"frame": est[:, None], "states_in": self.states[1]}
        )
        return segment[:, 0].T


def main(argv: list[str] | None = None) -> int:
    """``python -m clarity_se.models.dtln_onnx CHECKPOINT OUT_DIR [--int8]``: export a DTLN
    checkpoint (``--int8``: :func:`export_onnx` with ``int8=True``).

    Returns 0, or 2 (with the reason on stderr) for a missing or non-DTLN checkpoint.
    """
    return export_main(argv, export_onnx, "export a DTLN checkpoint to two ONNX models",
                       "a dtln or dtln_ha checkpoint (.pt)",
                       "folder for model_1.onnx, model_2.onnx, dtln_onnx.json",
                       int8=True)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
