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
from scipy.signal import butter
from torch import Tensor

from clarity_se.ear_model.iir import lfilter, numba_threads

logger = logging.getLogger(__name__)

__all__ = ["env_compress_basilar_membrane"]


@lru_cache(maxsize=8)
def _gain_smoother(fsamp: float) -> tuple[np.ndarray, np.ndarray]:
    return butter(1, 800 / (0.5 * fsamp))


@numba.njit(cache=True, parallel=True)
def _compress_fused(
    env, bm, control, attn, low, cr, level1, small, high, b0, b1, a1, with_bm, out_env, out_bm
):  # pragma: no cover - compiled
    """Gain, 1-pole smoothing (scipy TDF-II order) and application, one row per task.

    Arrays are float32 or float64 (read and written in their dtype, arithmetic in float64);
    ``bm``/``out_bm`` are not touched when ``with_bm`` is False.

    Between the kneepoints the gain is evaluated as ``k c^(-slope)`` (one log and one exp
    instead of log10 and pow; equal to the reference's expression to ~1e-14 relative).
    """
    rows, nsamp = env.shape
    for r in numba.prange(rows):
        attn_r = attn[r]
        low_r = low[r]
        slope = 1 - (1 / cr[r])
        # outside the kneepoints the gain is constant: skip log10/pow there (same values)
        gain_low = 10 ** ((-attn_r - (low_r - low_r) * slope) / 20)
        top = max(min(high, high), low_r)
        gain_high = 10 ** ((-attn_r - (top - low_r) * slope) / 20)
        c_low = 10 ** ((low_r - level1) / 20) * (1 - 1e-12)
        c_high = 10 ** ((top - level1) / 20) * (1 + 1e-12)
        k_mid = 10 ** ((-attn_r - (level1 - low_r) * slope) / 20)
        z = 0.0
        for n in range(nsamp):
            c = np.float64(control[r, n])
            if c <= c_low:
                gain = gain_low
            elif c >= c_high:
                gain = gain_high
            else:
                # 10^((-attn - (level1 + 20 log10 c - low) slope) / 20) = k_mid * c^(-slope)
                gain = k_mid * np.exp(-slope * np.log(c))
            y = z + b0 * gain
            z = gain * b1 - y * a1
            out_env[r, n] = y * np.float64(env[r, n])
            if with_bm:
                out_bm[r, n] = y * np.float64(bm[r, n])


def _compress_numba(envsig, bm, control, attn, low, cr, fsamp, level1, small, threshold_high):
    batch, nchan, nsamp = envsig.shape
    rows = batch * nchan
    work = envsig.dtype if envsig.dtype in (torch.float32, torch.float64) else torch.float64
    with_bm = bm is not None

    def host(t: Tensor) -> np.ndarray:
        return np.ascontiguousarray(t.detach().cpu().to(work).numpy().reshape(rows, -1))

    def param(t: Tensor) -> np.ndarray:
        full = torch.broadcast_to(t.reshape(*t.shape[:2]) if t.ndim == 3 else t, (batch, nchan))
        return np.ascontiguousarray(full.detach().cpu().to(torch.float64).numpy().reshape(rows))

    b, a = _gain_smoother(float(fsamp))
    np_dtype = np.float32 if work == torch.float32 else np.float64
    out_env = np.empty((rows, nsamp), dtype=np_dtype)
    out_bm = np.empty((rows, nsamp) if with_bm else (1, 1), dtype=np_dtype)
    bm_in = host(bm) if with_bm else out_bm
    with numba_threads():
        _compress_fused(
            host(envsig), bm_in, host(control), param(attn), param(low), param(cr),
            float(level1), float(small), float(threshold_high),
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
        (:func:`clarity_se.ear_model.iir.lfilter`), accurate to ~1e-15.

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
        return _compress_numba(
            envsig, bm, control, attn, low, cr, fsamp, level1, small, threshold_high
        )
    logenv = torch.clamp(control, min=small)
    logenv = level1 + 20 * torch.log10(logenv)
    logenv = torch.clamp(logenv, max=float(threshold_high))
    logenv = torch.maximum(logenv, low)
    gain = -attn - (logenv - low) * (1 - (1 / cr))
    gain = 10 ** (gain / 20)
    b, a = _gain_smoother(float(fsamp))
    gain = lfilter(b, a, gain, backend=backend)
    return gain * envsig, None if bm is None else gain * bm
