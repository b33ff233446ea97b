"""Frame-by-frame onnxruntime runners of the exported enhancers: the shared framing.

:class:`OnnxFrameStreamer` holds what :class:`~clarity_se.models.dtln_onnx.OnnxDTLNStreamer`
and :class:`~clarity_se.models.crced_onnx.OnnxCRCEDStreamer` share: the hearing-aid variants'
five derived signals, the input frames of ``K`` samples advanced by ``R`` per frame, the
overlap-add of ``S``-sample synthesis segments, the first ``S / R - 1`` hops dropped (they
precede sample 0, the framing convention of :mod:`clarity_se.dsp.lowdelay_stft`), and
``flush`` with zeros beyond the end. A subclass sets ``K``, ``R``, ``S``, ``hearing_aid`` and
implements :meth:`OnnxFrameStreamer._init_state` and :meth:`OnnxFrameStreamer._segment` (the
model's work on one frame). :func:`rfft` and :func:`irfft` are scipy's FFTs without their
per-call dispatch, which at 512 points costs as much as the transform. The exports share
their record (:func:`write_export_meta`, :func:`read_export_meta`) and command line
(:func:`export_main`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft

from clarity_se.dsp.lowdelay_stft import num_frames

try:  # scipy.fft's pocketfft, called without the dispatch layers of scipy.fft
    from scipy.fft._pocketfft.pypocketfft import c2r as _c2r
    from scipy.fft._pocketfft.pypocketfft import r2c as _r2c
except ImportError:  # pragma: no cover - a scipy without it: the public functions
    _c2r = _r2c = None


def _private_fft_works() -> bool:
    """Whether the private pocketfft calls give :mod:`scipy.fft`'s numbers here (a private
    API: another scipy may change its signature; then the public functions are used)."""
    if _r2c is None or _c2r is None:
        return False
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    try:
        spec = _r2c(x, (1,), True, 0, None, 1)
        back = _c2r(spec, (1,), 16, False, 2, None, 1)
    except Exception:  # noqa: BLE001 - any failure of a private API means: do not use it
        return False
    ref = scipy.fft.rfft(x, axis=1)
    return (spec.shape == ref.shape and back.shape == x.shape
            and bool(np.allclose(spec, ref, atol=1e-4) and np.allclose(back, x, atol=1e-5)))


if not _private_fft_works():  # pragma: no cover - depends on the installed scipy
    _c2r = _r2c = None

__all__ = ["DERIVED", "OnnxFrameStreamer", "derived_signals", "export_main", "irfft",
           "irfft_plan", "ort_session", "ort_session_options", "quantize_int8",
           "read_export_meta", "rfft", "rfft_plan", "write_export_meta"]  # fmt: skip


def rfft(x: np.ndarray, axis: int = -1, out: np.ndarray | None = None) -> np.ndarray:
    """``scipy.fft.rfft(x, axis=axis)`` of a float32 array, written into ``out`` if given.

    Parameters
    ----------
    x : np.ndarray, float32
        Real signals, transformed along ``axis`` (length ``n``; any strides).
    axis : int
    out : np.ndarray, complex64, optional
        ``x``'s shape with ``n // 2 + 1`` along ``axis`` (any strides).

    Returns
    -------
    np.ndarray, complex64
        ``out`` if given. The numbers of :func:`scipy.fft.rfft` (its pocketfft, called directly
        where scipy ships it).
    """
    if _r2c is not None:
        return _r2c(x, (axis % x.ndim,), True, 0, out, 1)
    spec = scipy.fft.rfft(x, axis=axis)
    if out is None:
        return spec
    out[...] = spec
    return out


def irfft(spec: np.ndarray, n: int, axis: int = -1, out: np.ndarray | None = None) -> np.ndarray:
    """``scipy.fft.irfft(spec, n, axis=axis)`` of a complex64 array, into ``out`` if given.

    Parameters
    ----------
    spec : np.ndarray, complex64
        One-sided spectra along ``axis`` (``n // 2 + 1`` bins; any strides).
    n : int
        Output length along ``axis``, samples.
    axis : int
    out : np.ndarray, float32, optional
        ``spec``'s shape with ``n`` along ``axis`` (any strides).

    Returns
    -------
    np.ndarray, float32
        ``out`` if given; the numbers of :func:`scipy.fft.irfft` (see :func:`rfft`).
    """
    if _c2r is not None:
        return _c2r(spec, (axis % spec.ndim,), n, False, 2, out, 1)
    frame = scipy.fft.irfft(spec, n=n, axis=axis)
    if out is None:
        return frame
    out[...] = frame
    return out


def rfft_plan(x: np.ndarray, out: np.ndarray, axis: int = -1) -> Callable[[], np.ndarray]:
    """A call without arguments that writes :func:`rfft` of the array ``x`` (as it is at the
    call) into ``out``: the arguments checked and bound once, for a transform run per frame.

    Parameters
    ----------
    x : np.ndarray, float32
        The input array (its contents change between calls; not the array).
    out : np.ndarray, complex64
        ``x``'s shape with ``n // 2 + 1`` along ``axis``.
    axis : int

    Returns
    -------
    callable
        ``plan() -> out``.
    """
    if _r2c is not None:
        return partial(_r2c, x, (axis % x.ndim,), True, 0, out, 1)
    return partial(rfft, x, axis, out)


def irfft_plan(
    spec: np.ndarray, n: int, out: np.ndarray, axis: int = -1
) -> Callable[[], np.ndarray]:
    """A call without arguments that writes :func:`irfft` of ``spec`` (as it is at the call)
    into ``out`` (see :func:`rfft_plan`); ``n`` output samples along ``axis``."""
    if _c2r is not None:
        return partial(_c2r, spec, (axis % spec.ndim,), n, False, 2, out, 1)
    return partial(irfft, spec, n, axis, out)


#: the five derived signals as rows of weights on the six microphones (one matrix product;
#: the weights are 0 and +-1, so each output is exactly the one subtraction it stands for)
DERIVED = np.array(
    [[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [1, -1, 0, 0, 0, 0], [1, 0, 0, 0, -1, 0],
     [0, 1, 0, 0, 0, -1]], dtype=np.float32,
)  # fmt: skip
_DERIVED_T = np.ascontiguousarray(DERIVED.T)  # [6, 5]


def derived_signals(x: np.ndarray, hearing_aid: bool) -> np.ndarray:
    """The model's input signals of a block.

    Parameters
    ----------
    x : np.ndarray [shape=(6, n)] (hearing aid) or [shape=(channels, n)], float
        Microphones in the Clarity order (front L, front R, mid L, mid R, rear L, rear R).
    hearing_aid : bool
        Return the five derived signals (front L, front R, front L - front R, front L - rear L,
        front R - rear R) instead of ``x``.

    Returns
    -------
    np.ndarray [shape=(5, n)] or [shape=(channels, n)], float32

    Raises
    ------
    ValueError
        Input of the wrong shape.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or (hearing_aid and x.shape[0] != 6):
        want = "[6, n]" if hearing_aid else "[channels, n]"
        raise ValueError(f"x: expected shape {want}, got {tuple(x.shape)}")
    return np.matmul(DERIVED, x) if hearing_aid else x


def torchscript_export(module: Any, args: tuple, path: Path, **kwargs: Any) -> None:
    """``torch.onnx.export(..., dynamo=False)`` with the exporter's own warnings silenced.

    The TorchScript-based exporter is used on purpose: the ``torch.export``-based one needs
    ``onnxscript``, which is not a dependency, and the graphs this exporter writes (LSTM and
    context states as explicit inputs and outputs) are checked against PyTorch by the
    onnxruntime parity tests. Its deprecation notice, tracer notices and the LSTM batch-size
    notice (the states are graph inputs here, which is what it recommends) are filtered for the
    call only.

    Parameters
    ----------
    module : torch.nn.Module
        The step module to export (eval mode).
    args : tuple of Tensor
        Example inputs.
    path : Path
        Output ``.onnx`` file.
    **kwargs
        ``input_names``, ``output_names``, ``dynamic_axes``, ``opset_version``: passed on.
    """
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", category=DeprecationWarning,
                                message=r".*legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        torch.onnx.export(module, args, path, dynamo=False, **kwargs)


def write_export_meta(path: Path, model: Any, opset: int) -> Path:
    """Write the JSON that records an exported model: ``model_name`` (registry name),
    ``model_args`` (``model.hparams``) and ``opset``; returns ``path``."""
    from clarity_se.models import model_name

    meta = {"model_name": model_name(model), "model_args": dict(model.hparams), "opset": opset}
    path.write_text(json.dumps(meta, indent=1))
    return path


def quantize_int8(paths: dict[str, Path]) -> dict[str, Path]:
    """Replace the exported ONNX models in ``paths`` by their int8 forms, in place.

    onnxruntime's dynamic quantisation (``onnxruntime.quantization.quantize_dynamic``, its
    defaults: signed 8-bit weights, one scale per tensor; activations quantised per call from
    their range): ``LSTM`` nodes become ``DynamicQuantizeLSTM`` and ``MatMul`` nodes
    ``MatMulInteger`` with their quantisers, which only onnxruntime runs (contrib operators).
    The weights take a quarter of the bytes. The outputs change (the quantisation error): the
    DTLN recipe README ("Tried, not adopted as the variant's figure: the int8 export") gives
    its cost and its effect on held-out scores. The breizhn/DTLN reference offers the same for
    its TF-lite models (``convert_weights_to_tf_lite.py --quantization``: dynamic-range
    quantisation).

    Parameters
    ----------
    paths : dict
        ``{name: path}`` of an export: entries whose name starts with ``model`` are quantised;
        ``"weights": "int8"`` is added to the record ``paths["meta"]``
        (:func:`write_export_meta`).

    Returns
    -------
    dict
        ``paths`` (the same files, now quantised).
    """
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic's advice to pre-process (for static use)
    try:
        for name, path in paths.items():
            if name.startswith("model"):
                tmp = path.with_suffix(".f32.onnx")
                path.replace(tmp)
                quantize_dynamic(str(tmp), str(path), weight_type=QuantType.QInt8)
                tmp.unlink()
    finally:
        root.setLevel(level)
    record = json.loads(paths["meta"].read_text())
    record["weights"] = "int8"
    paths["meta"].write_text(json.dumps(record, indent=1))
    return paths


def read_export_meta(folder: Path, meta_file: str) -> tuple[str, dict]:
    """``(model_name, model_args)`` of the export in ``folder`` (:func:`write_export_meta`).

    Raises
    ------
    ValueError
        ``folder`` has no ``meta_file``, or it is not such a JSON (names the file).
    """
    path = Path(folder) / meta_file
    if not path.is_file():
        raise ValueError(f"{folder}: no {meta_file} (write one with export_onnx)")
    try:
        meta = json.loads(path.read_text())
        return str(meta["model_name"]), dict(meta["model_args"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not an export record ({exc})") from None


def export_main(
    argv: list[str] | None,
    export: Callable[[Any, str], dict[str, Path]],
    description: str,
    checkpoint_help: str,
    out_help: str,
    int8: bool = False,
) -> int:
    """The command line of an ONNX export: ``CHECKPOINT OUT_DIR`` -> ``export(model, out_dir)``.

    Loads the checkpoint (:func:`clarity_se.models.checkpoint.load_model`), exports it and
    prints the written paths, one a line. With ``int8``, the command takes ``--int8``, which
    quantises the written models (:func:`quantize_int8`).

    Parameters
    ----------
    argv : list of str, optional
        Arguments (``None``: ``sys.argv[1:]``).
    export : callable
        ``(model, out_dir) -> {name: path}``, e.g. :func:`clarity_se.models.dtln_onnx.export_onnx`;
        raises ValueError for a model it does not export.
    description, checkpoint_help, out_help : str
        The parser's description and the two arguments' help.
    int8 : bool
        Offer ``--int8`` (for the exports whose quantised form is tested).

    Returns
    -------
    int
        0, or 2 (with ``error: <reason>`` on stderr) when loading or exporting raised
        ValueError (a missing checkpoint, a model of another kind).
    """
    import argparse
    import sys

    from clarity_se.models.checkpoint import load_model

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("checkpoint", help=checkpoint_help)
    parser.add_argument("out_dir", help=out_help)
    if int8:
        parser.add_argument("--int8", action="store_true",
                            help="quantise the weights to int8 (onnxruntime's dynamic "
                                 "quantisation; the outputs change)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        model, _ = load_model(args.checkpoint)
        paths = export(model, args.out_dir)
        if int8 and args.int8:
            quantize_int8(paths)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(str(p) for p in paths.values()))
    return 0


def ort_session(path: Path, threads: int):
    """An ``onnxruntime.InferenceSession`` of ``path`` on the CPU with
    :func:`ort_session_options`."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), ort_session_options(threads),
                                providers=["CPUExecutionProvider"])  # fmt: skip


def ort_session_options(threads: int):
    """``onnxruntime.SessionOptions`` for one frame per call: ``threads`` intra-op threads, one
    inter-op thread, sequential execution."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


class OnnxFrameStreamer:
    """Block streaming around a per-frame model (see the module docstring).

    ``process(x)`` takes ``[6, n]`` float32 (hearing-aid variant; output ``[2, m]``, left and
    right) or ``[channels, n]`` (published; ``[channels, m]``) and returns the output samples
    that are final; ``flush()`` the rest (the total equals the input length) and resets.

    Notes
    -----
    Time runs along the first axis inside (``[time, signals]``: a frame of all signals is one
    contiguous block, so numpy makes one pass over it). The input signals go into a ring of
    ``K - R + RING_HOPS R`` samples, written where they arrive (the hearing-aid variants'
    derived signals computed into it); a frame is the view of its ``K`` samples, so no sample
    is shifted per hop; when the ring is full, its unprocessed tail (fewer than ``K`` samples)
    moves to the front, once per ``RING_HOPS`` hops. The overlap-add keeps the partial sums of
    the next ``S - R`` output samples: a hop's output is the first ``R`` samples of the new
    segment plus the oldest ``R`` partial sums. The output is returned as the transpose of
    the ``[time, signals]`` array. A block of exactly one hop that completes a frame (streaming
    hop by hop) takes a path without the block loop. Memory: the ring, the model state,
    ``S - R`` output samples per output signal.
    """

    K: int
    R: int
    S: int
    hearing_aid: bool
    #: hops the input ring holds beyond the first frame's ``K - R`` samples
    RING_HOPS = 32

    def reset(self) -> None:
        """Forget all state (start a new signal)."""
        self.ring: np.ndarray | None = None
        self.acc: np.ndarray | None = None
        self.start = self.end = 0  # the next frame is ring[start : start + K]; written: :end
        self.n_in = self.n_out = self.n_frames = 0

    def _init_state(self, n_signals: int, n_outputs: int) -> None:
        """Allocate the model state for a new signal (called at its first block)."""
        raise NotImplementedError

    def _segment(self, buf: np.ndarray) -> np.ndarray:
        """The synthesis segments ``[S, n_outputs]`` of the frame ``buf [K, n_signals]`` (a
        view of the input ring: not to be modified), as a new array (the overlap-add keeps
        and modifies it)."""
        raise NotImplementedError

    def _begin(self, n_signals: int) -> None:
        n_out = 2 if self.hearing_aid else n_signals
        K, R = self.K, self.R
        self.ring = np.zeros((K - R + self.RING_HOPS * R, n_signals), dtype=np.float32)
        self.start, self.end = 0, K - R  # zeros before sample 0
        self.acc = np.zeros((self.S - R, n_out), dtype=np.float32)
        self._hop_shape = (6 if self.hearing_aid else n_signals, R)  # a block of one hop
        self._init_state(n_signals, n_out)

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        """Write ``x`` (float32, checked) into the ring and run every frame it completes; the
        output hops ``[R, n_outputs]``, in order."""
        K, ring = self.K, self.ring
        size, out = ring.shape[0], []
        n, i = x.shape[1], 0
        while i < n:
            if self.end == size:  # full: move the unprocessed tail to the front
                keep = self.end - self.start
                ring[:keep] = ring[self.start : self.end]
                self.start, self.end = 0, keep
            end = self.end
            m = min(n - i, size - end)
            if self.hearing_aid:
                np.dot(x[:, i : i + m].T, _DERIVED_T, out=ring[end : end + m])
            else:
                ring[end : end + m] = x[:, i : i + m].T
            self.end = end + m
            i += m
            while self.end - self.start >= K:
                piece = self._hop()
                if piece is not None:
                    out.append(piece)
        return out

    def _hop(self) -> np.ndarray | None:
        """Run the next frame and overlap-add its segment: the ``R`` output samples now final
        (``None`` for the first ``S / R - 1`` hops: they precede sample 0)."""
        R, start = self.R, self.start
        segment = self._segment(self.ring[start : start + self.K])
        self.start = start + R
        acc = self.acc
        piece = segment[:R] + acc[:R]  # the oldest R partial sums are complete
        if acc.shape[0] > R:
            segment[R:-R] += acc[R:]
        self.acc = segment[R:]
        self.n_frames += 1
        return piece if self.n_frames * R >= self.S else None

    def _collect(self, pieces: list[np.ndarray]) -> np.ndarray:
        if len(pieces) == 1:
            out = pieces[0].T
        elif pieces:
            out = np.concatenate(pieces, axis=0).T
        else:
            out = np.zeros((self.acc.shape[1], 0), np.float32)
        self.n_out += out.shape[1]
        return out

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)  # (np.dot is faster on it)
        if x.ndim != 2 or (self.hearing_aid and x.shape[0] != 6):
            derived_signals(x, self.hearing_aid)  # raises the shape error
        if self.ring is None:
            self._begin(5 if self.hearing_aid else x.shape[0])
        elif not self.hearing_aid and x.shape[0] != self.ring.shape[1]:
            raise ValueError(f"x: expected {self.ring.shape[1]} channels, got {x.shape[0]}")
        return x

    def process(self, x: np.ndarray) -> np.ndarray:
        """Feed ``x [6, n]`` / ``[channels, n]``; return the final output samples.

        Raises
        ------
        ValueError
            Input of the wrong shape.
        """
        x = np.ascontiguousarray(x, dtype=np.float32)  # (np.dot is faster on it)
        ring, end, R = self.ring, self.end, self.R
        if (
            ring is not None and x.shape == self._hop_shape and end + R <= ring.shape[0]
            and end - self.start == self.K - R
        ):  # fmt: skip
            # one hop that completes a frame (streaming hop by hop): the loop of _run, unrolled
            if self.hearing_aid:
                np.dot(x.T, _DERIVED_T, out=ring[end : end + R])
            else:
                ring[end : end + R] = x.T
            self.end = end + R
            self.n_in += R
            piece = self._hop()
            if piece is None:
                return np.zeros((self.acc.shape[1], 0), np.float32)
            self.n_out += R
            return piece.T
        x = self._check(x)
        self.n_in += x.shape[1]
        return self._collect(self._run(x))

    def flush(self) -> np.ndarray:
        """End of signal: the remaining output (zero input beyond the end), then reset."""
        if self.ring is None:
            self.reset()
            return np.zeros((2 if self.hearing_aid else 0, 0), dtype=np.float32)
        pending = self.end - self.start - (self.K - self.R)
        missing = num_frames(self.n_in, self.R, self.S) - self.n_frames
        n_rows = 6 if self.hearing_aid else self.ring.shape[1]
        zeros = np.zeros((n_rows, max(missing * self.R - pending, 0)), dtype=np.float32)
        n_left = self.n_in - self.n_out
        out = self._collect(self._run(zeros))[:, :n_left]
        self.reset()
        return out
