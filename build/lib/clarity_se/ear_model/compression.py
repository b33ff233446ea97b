"""Outer-hair-cell (OHC) dynamic-range compression of the basilar-membrane motion.

API
---
``env_compress_basilar_membrane(envsig, bm, control, attn_ohc, threshold_low,
compression_ratio, fsamp, level1, small=1e-30, threshold_high=100, *, backend=None)
-> tuple[Tensor [batch, nchan, time], Tensor [batch, nchan, time]]``
(compressed envelope, compressed BM motion).
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numba
import numpy as np
import torch
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic
from torch import Tensor

from clarity_se.dsp.designs import scipy_design
from clarity_se.dsp.iir import lfilter, numba_threads
from clarity_se.ear_model import vector_ir as vir

logger = logging.getLogger(__name__)

__all__ = ["env_compress_basilar_membrane"]


@lru_cache(maxsize=8)
def _gain_smoother(fsamp: float) -> tuple[np.ndarray, np.ndarray]:
    return scipy_design("butter", 1, 800 / (0.5 * fsamp))


def _knee_constants(attn, low, cr, level1, high):
    """Per-row gain constants of the compressor, [rows] float64 each.

    ``gain_low``/``gain_high``: the (constant) linear gains below/above the kneepoints;
    ``c_low``/``c_high``: the kneepoints as linear control amplitudes (widened by 1e-12 so
    that the mid-range formula covers the kneepoints themselves); ``k_mid`` and ``slope``:
    ``gain = k_mid * c ** -slope`` in between, which is the reference's
    ``10 ** ((-attn - (level1 + 20 log10 c - low) (1 - 1/CR)) / 20)`` rearranged.
    """
    slope = 1 - (1 / cr)
    top = np.maximum(high, low)
    gain_low = 10 ** ((-attn - (low - low) * slope) / 20)
    gain_high = 10 ** ((-attn - (top - low) * slope) / 20)
    c_low = 10 ** ((low - level1) / 20) * (1 - 1e-12)
    c_high = 10 ** ((top - level1) / 20) * (1 + 1e-12)
    k_mid = 10 ** ((-attn - (level1 - low) * slope) / 20)
    return gain_low, gain_high, c_low, c_high, k_mid, slope


@numba.njit(inline="always")
def _knee_gain(c, mid, c_low, c_high, gain_low, gain_high):  # pragma: no cover - compiled
    if c <= c_low:
        return gain_low
    if c >= c_high:
        return gain_high
    return mid


def _make_lanes_kernel(with_bm: bool):
    """numba intrinsic: :func:`_compress_fused` for ``LANES`` consecutive rows at once.

    Arguments ``(env, bm, control, mid, out_env, out_bm, row_offset, row_stride, npts,
    row_consts, consts)``: rows ``l`` at ``row_offset + l * row_stride`` of the flat arrays;
    ``row_consts`` float64 ``[4, rows]`` (``c_low, c_high, gain_low, gain_high``), read at
    column ``row_offset // row_stride``; ``consts`` float64 ``b0, b1, a1``.  Each lane does the
    scalar kernel's operations in its order (bit-identical).
    """

    @intrinsic
    def kernel(typingctx, env, bm, control, mid, out_env, out_bm, row_offset, row_stride, npts,
               row_consts, consts):
        sig = types.void(env, bm, control, mid, out_env, out_bm, row_offset, row_stride, npts,
                         row_consts, consts)

        def codegen(context, builder, signature, args):
            *arrays, r_off, r_stride, n_pts, rc, ca = args
            tys = signature.args

            def data(ty, value):
                return context.make_array(ty)(context, builder, value).data

            e_ptr, b_ptr, c_ptr, m_ptr, oe_ptr, ob_ptr = (
                data(ty, v) for ty, v in zip(tys[:6], arrays, strict=True)
            )
            rc_ary = context.make_array(tys[9])(context, builder, rc)
            n_rows = builder.extract_value(rc_ary.shape, 1)
            row = builder.sdiv(r_off, r_stride)
            c_low, c_high, gain_low, gain_high = (
                vir.load_vector(builder, rc_ary.data, builder.add(builder.mul(ir.Constant(
                    n_rows.type, k), n_rows), row)) for k in range(4)
            )  # fmt: skip
            k_ptr = data(tys[10], ca)
            i64 = ir.IntType(64)
            b0, b1, a1 = (vir.broadcast(builder, builder.load(builder.gep(k_ptr, [ir.Constant(
                i64, k)]))) for k in range(3))  # fmt: skip
            z_slot = cgutils.alloca_once(builder, vir.VECTOR, name="z")
            builder.store(ir.Constant(vir.VECTOR, [0.0] * vir.LANES), z_slot)

            def step(c, m):
                gain = builder.select(builder.fcmp_ordered(">=", c, c_high), gain_high, m)
                gain = builder.select(builder.fcmp_ordered("<=", c, c_low), gain_low, gain)
                z = builder.load(z_slot)
                y = builder.fadd(z, builder.fmul(b0, gain))
                builder.store(builder.fsub(builder.fmul(gain, b1), builder.fmul(y, a1)), z_slot)
                return y

            def block(start):
                cs = vir.load_columns(builder, c_ptr, r_off, r_stride, start)
                ms = vir.load_columns(builder, m_ptr, r_off, r_stride, start)
                ys = [step(c, m) for c, m in zip(cs, ms, strict=True)]
                for src, dst, on in ((e_ptr, oe_ptr, True), (b_ptr, ob_ptr, with_bm)):
                    if on:
                        xs = vir.load_columns(builder, src, r_off, r_stride, start)
                        prod = [builder.fmul(y, x) for y, x in zip(ys, xs, strict=True)]
                        vir.store_columns(builder, dst, vir.transpose(builder, prod), r_off,
                                          r_stride, start)

            def single(n):
                y = step(vir.load_lanes(builder, c_ptr, r_off, r_stride, n),
                         vir.load_lanes(builder, m_ptr, r_off, r_stride, n))
                for src, dst, on in ((e_ptr, oe_ptr, True), (b_ptr, ob_ptr, with_bm)):
                    if on:
                        x = vir.load_lanes(builder, src, r_off, r_stride, n)
                        vir.store_lanes(builder, dst, builder.fmul(y, x), r_off, r_stride, n)

            vir.block_loops(builder, n_pts, block, single)
            return context.get_dummy_value()

        return sig, codegen

    return kernel


_lanes_env = _make_lanes_kernel(False)
_lanes_env_bm = _make_lanes_kernel(True)


@numba.njit(cache=True, parallel=True)
def _compress_fused(
    env, bm, control, mid, c_low, c_high, gain_low, gain_high, b0, b1, a1, with_bm, out_env,
    out_bm,
):  # pragma: no cover - compiled
    """Select the gain, 1-pole smoothing (scipy TDF-II order) and application.

    ``mid`` [rows, T] holds the mid-range gain ``k_mid c^(-slope)`` (computed beforehand with
    vectorised torch log/exp); the kernel picks it or the constant gain outside the
    kneepoints, runs the smoother and multiplies.  Arrays are float32 or float64 (read and
    written in their dtype, arithmetic in float64); ``bm``/``out_bm`` are not touched when
    ``with_bm`` is False.  Groups of eight rows run as LLVM vector code (:mod:`.vector_ir`:
    eight rows per instruction, the same bits); the rest, latency-bound, four at a time.
    """
    rows, nsamp = env.shape
    # groups of LANES rows: vector code (vector_ir), LANES rows per instruction
    lanes = 8
    n_vector = rows // lanes
    row_consts = np.empty((4, rows))
    row_consts[0] = c_low
    row_consts[1] = c_high
    row_consts[2] = gain_low
    row_consts[3] = gain_high
    consts = np.array([b0, b1, a1])
    flat = (env.ravel(), bm.ravel(), control.ravel(), mid.ravel(), out_env.ravel(),
            out_bm.ravel())  # fmt: skip
    for g in numba.prange(n_vector):
        if with_bm:
            _lanes_env_bm(*flat, lanes * g * nsamp, nsamp, nsamp, row_consts, consts)
        else:
            _lanes_env(*flat, lanes * g * nsamp, nsamp, nsamp, row_consts, consts)
    # the other rows: four at a time in scalar code
    n_groups = (rows - lanes * n_vector + 3) // 4
    for g in numba.prange(n_groups):
        r0 = lanes * n_vector + 4 * g
        if r0 + 4 <= rows:
            za = 0.0
            zb = 0.0
            zc = 0.0
            zd = 0.0
            ra, rb, rc, rd = r0, r0 + 1, r0 + 2, r0 + 3
            for n in range(nsamp):
                ga = _knee_gain(np.float64(control[ra, n]), np.float64(mid[ra, n]), c_low[ra],
                                c_high[ra], gain_low[ra], gain_high[ra])  # fmt: skip
                gb = _knee_gain(np.float64(control[rb, n]), np.float64(mid[rb, n]), c_low[rb],
                                c_high[rb], gain_low[rb], gain_high[rb])  # fmt: skip
                gc = _knee_gain(np.float64(control[rc, n]), np.float64(mid[rc, n]), c_low[rc],
                                c_high[rc], gain_low[rc], gain_high[rc])  # fmt: skip
                gd = _knee_gain(np.float64(control[rd, n]), np.float64(mid[rd, n]), c_low[rd],
                                c_high[rd], gain_low[rd], gain_high[rd])  # fmt: skip
                ya = za + b0 * ga
                za = ga * b1 - ya * a1
                yb = zb + b0 * gb
                zb = gb * b1 - yb * a1
                yc = zc + b0 * gc
                zc = gc * b1 - yc * a1
                yd = zd + b0 * gd
                zd = gd * b1 - yd * a1
                out_env[ra, n] = ya * np.float64(env[ra, n])
                out_env[rb, n] = yb * np.float64(env[rb, n])
                out_env[rc, n] = yc * np.float64(env[rc, n])
                out_env[rd, n] = yd * np.float64(env[rd, n])
                if with_bm:
                    out_bm[ra, n] = ya * np.float64(bm[ra, n])
                    out_bm[rb, n] = yb * np.float64(bm[rb, n])
                    out_bm[rc, n] = yc * np.float64(bm[rc, n])
                    out_bm[rd, n] = yd * np.float64(bm[rd, n])
        else:
            for r in range(r0, rows):
                z = 0.0
                for n in range(nsamp):
                    gain = _knee_gain(np.float64(control[r, n]), np.float64(mid[r, n]), c_low[r],
                                      c_high[r], gain_low[r], gain_high[r])  # fmt: skip
                    y = z + b0 * gain
                    z = gain * b1 - y * a1
                    out_env[r, n] = y * np.float64(env[r, n])
                    if with_bm:
                        out_bm[r, n] = y * np.float64(bm[r, n])


def _compress_numba(envsig, bm, control, attn, low, cr, fsamp, level1, threshold_high):
    batch, nchan, nsamp = envsig.shape
    rows = batch * nchan
    work = envsig.dtype if envsig.dtype in (torch.float32, torch.float64) else torch.float64
    with_bm = bm is not None

    def host(t: Tensor) -> np.ndarray:
        return np.ascontiguousarray(t.detach().cpu().to(work).numpy().reshape(rows, -1))

    def param(t: Tensor) -> np.ndarray:
        full = torch.broadcast_to(t.reshape(*t.shape[:2]) if t.ndim == 3 else t, (batch, nchan))
        return np.ascontiguousarray(full.detach().cpu().to(torch.float64).numpy().reshape(rows))

    gain_low, gain_high, c_low, c_high, k_mid, slope = _knee_constants(
        param(attn), param(low), param(cr), float(level1), float(threshold_high)
    )
    control_np = host(control)
    # mid-range gain k c^(-slope) for every sample, vectorised (SIMD log/exp); the kernel
    # uses it only between the kneepoints (log(0) = -inf elsewhere is never selected)
    mid = torch.from_numpy(control_np).log()
    mid.mul_(torch.from_numpy(-slope).to(work)[:, None]).exp_()
    mid.mul_(torch.from_numpy(k_mid).to(work)[:, None])
    b, a = _gain_smoother(float(fsamp))
    np_dtype = np.float32 if work == torch.float32 else np.float64
    out_env = np.empty((rows, nsamp), dtype=np_dtype)
    out_bm = np.empty((rows, nsamp) if with_bm else (1, 1), dtype=np_dtype)
    bm_in = host(bm) if with_bm else out_bm
    with numba_threads():
        _compress_fused(
            host(envsig), bm_in, control_np, mid.numpy(), c_low, c_high, gain_low, gain_high,
            float(b[0] / a[0]), float(b[1] / a[0]), float(a[1] / a[0]), with_bm, out_env, out_bm,
        )  # fmt: skip
    shape = (batch, nchan, nsamp)
    env_out = torch.from_numpy(out_env.reshape(shape)).to(envsig.device, envsig.dtype)
    if not with_bm:
        return env_out, None
    return env_out, torch.from_numpy(out_bm.reshape(shape)).to(envsig.device, envsig.dtype)


def _per_band(value, like: Tensor, name: str) -> Tensor:
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.ndim == 0:
        return t
    if t.ndim in (1, 2) and t.shape[-1] == like.shape[1]:
        return t.reshape(*((1,) if t.ndim == 1 else (t.shape[0],)), like.shape[1], 1)
    raise ValueError(
        f"env_compress_basilar_membrane: {name} must be a scalar, [nchan] or [batch, nchan], "
        f"got {tuple(t.shape)} for nchan={like.shape[1]}"
    )


def env_compress_basilar_membrane(
    envsig: Tensor,
    bm: Tensor | None,
    control: Tensor,
    attn_ohc: Tensor,
    threshold_low: Tensor,
    compression_ratio: Tensor,
    fsamp: float,
    level1: float,
    small: float = 1e-30,
    threshold_high: float = 100,
    *,
    backend: str | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Apply the OHC compression gain, driven by the control-path envelope, in every band.

    The control envelope in dB SPL, clipped to ``[threshold_low, threshold_high]``, gives the
    gain ``-attn_ohc - (L - threshold_low)(1 - 1/CR)`` dB: linear below the lower kneepoint,
    CR:1 compression between the kneepoints, linear above.  The linear gain is smoothed by a
    1-pole 800 Hz Butterworth low-pass (about 0.2 ms delay) and multiplies both the envelope and
    the BM motion.

    Parameters
    ----------
    envsig, bm : Tensor [shape=(batch, nchan, time)], float
        Gammatone envelope and BM motion (linear, RMS 1 == ``level1`` dB SPL); ``bm`` may be
        None (no BM output: HASPI uses only the envelope).
    control : Tensor [shape=(batch, nchan, time)], float
        Control-path envelope (wide filters).
    attn_ohc : Tensor [shape=(batch, nchan) or (nchan,)], dB
        OHC attenuation (``loss_parameters``).
    threshold_low : Tensor [shape=(batch, nchan) or (nchan,)], dB SPL
        Lower kneepoint (``low_knee``).
    compression_ratio : Tensor [shape=(batch, nchan) or (nchan,)]
        Compression ratio CR.
    fsamp : float
        Sampling rate in Hz (24 000).
    level1 : float
        dB SPL of an RMS of 1.
    small : float
        Floor of the control envelope before the log (linear).
    threshold_high : float
        Upper kneepoint in dB SPL (100).
    backend : {"numba", "scan", None}
        ``"numba"`` (default on CPU): one fused host kernel per (item, band) row (gain,
        smoother, products; scipy's TDF-II operation order).  ``"scan"`` (default on CUDA):
        torch element-wise ops and the torch block-scan 1-pole smoother
        (:func:`clarity_se.dsp.iir.lfilter`), accurate to ~1e-15.

    Returns
    -------
    compressed_signal, compressed_basilar_membrane : Tensor [shape=(batch, nchan, time)]
        dtype/device of ``envsig`` (the second None when ``bm`` is None).  Not
        differentiable (the smoother leaves autograd).

    Raises
    ------
    ValueError
        If the signal shapes differ or a parameter does not match ``nchan``.

    References
    ----------
    Kates (2013) Sec. II.D; Zhang et al. (2001) (gain low-pass).  Reproduces pyclarity 0.9.0
    ``eb.env_compress_basilar_membrane`` (all bands at once).
    """
    bm_shape = envsig.shape if bm is None else bm.shape
    if envsig.ndim != 3 or envsig.shape != bm_shape or envsig.shape != control.shape:
        raise ValueError(
            "env_compress_basilar_membrane: envsig, bm and control must be [batch, nchan, time] "
            f"of equal shape, got {tuple(envsig.shape)}, {tuple(bm_shape)}, "
            f"{tuple(control.shape)}"
        )
    attn = _per_band(attn_ohc, control, "attn_ohc")
    low = _per_band(threshold_low, control, "threshold_low")
    cr = _per_band(compression_ratio, control, "compression_ratio")
    if backend is None:
        backend = "numba" if envsig.device.type == "cpu" else "scan"
    if backend == "numba":
        return _compress_numba(envsig, bm, control, attn, low, cr, fsamp, level1, threshold_high)
    logenv = torch.clamp(control, min=small)
    logenv = level1 + 20 * torch.log10(logenv)
    logenv = torch.clamp(logenv, max=float(threshold_high))
    logenv = torch.maximum(logenv, low)
    gain = -attn - (logenv - low) * (1 - (1 / cr))
    gain = 10 ** (gain / 20)
    b, a = _gain_smoother(float(fsamp))
    gain = lfilter(b, a, gain, backend=backend)
    return gain * envsig, None if bm is None else gain * bm
