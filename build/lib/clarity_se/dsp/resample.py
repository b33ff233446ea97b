"""Resampling of the ear-model inputs to 24 kHz, with the reference's RMS matching.

API
---
``resample_24khz(reference_signal, reference_freq, freq_sample_hz=24000.0, *, lengths=None)
-> tuple[Tensor [batch, time_out], float]``

``resampled_length(n_samples, reference_freq, freq_sample_hz=24000.0) -> int``
(valid output length of an item of ``n_samples`` input samples; apply to per-item ``lengths``).

``resample_ratio(reference_freq, freq_sample_hz=24000.0) -> tuple[int, int]`` (up, down).
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from clarity_se.dsp.designs import scipy_design
from clarity_se.dsp.iir import lfilter

logger = logging.getLogger(__name__)

__all__ = ["resample_24khz", "resample_ratio", "resampled_length"]


def resample_ratio(reference_freq: float, freq_sample_hz: float = 24000.0) -> tuple[int, int]:
    """Polyphase ratio ``(up, down)`` used by :func:`resample_24khz` (reduced by their gcd).

    Both rates are first rounded to the nearest kHz (numpy's round-half-to-even), so
    44 100 Hz gives 24/44 = 6/11, not 240/441.  ``(1, 1)`` means no resampling.

    Raises
    ------
    ValueError
        If a rate rounds to less than 1 kHz.
    """
    target_khz = int(np.round(freq_sample_hz / 1000))
    input_khz = int(np.round(reference_freq / 1000))
    if target_khz < 1 or input_khz < 1:
        raise ValueError(
            f"resample_24khz: sample rates must round to >= 1 kHz, got reference_freq="
            f"{reference_freq!r} Hz, freq_sample_hz={freq_sample_hz!r} Hz"
        )
    if input_khz == target_khz:
        return 1, 1
    g = math.gcd(target_khz, input_khz)
    return target_khz // g, input_khz // g


def resampled_length(n_samples: int, reference_freq: float, freq_sample_hz: float = 24000.0) -> int:
    """Number of output samples of :func:`resample_24khz` for ``n_samples`` input samples.

    ``ceil(n_samples * up / down)`` with ``(up, down)`` from :func:`resample_ratio`, as
    ``scipy.signal.resample_poly``; ``n_samples`` when no resampling is done.

    Raises
    ------
    ValueError
        If a rate rounds to less than 1 kHz (see :func:`resample_ratio`).
    """
    up, down = resample_ratio(reference_freq, freq_sample_hz)
    if up == down == 1:
        return int(n_samples)
    n_out = n_samples * up
    return n_out // down + bool(n_out % down)


@lru_cache(maxsize=16)
def _polyphase_filter(up: int, down: int) -> tuple[np.ndarray, int]:
    """scipy.signal.resample_poly's default Kaiser(5.0) low-pass, scaled by ``up``."""
    max_rate = max(up, down)
    f_c = 1.0 / max_rate
    half_len = 10 * max_rate
    h = scipy_design("firwin", 2 * half_len + 1, f_c, window=("kaiser", 5.0))
    h = h * up
    h.setflags(write=False)
    return h, half_len


@lru_cache(maxsize=16)
def _cheby2_band_limit(rate_khz: int) -> tuple[np.ndarray, np.ndarray]:
    """7th-order, 30 dB Chebyshev II low-pass at 21 kHz / rate (the reference's RMS band)."""
    b, a = scipy_design("cheby2", 7, 30, 21 / rate_khz)
    return b, a


def _resample_poly(x: Tensor, up: int, down: int) -> Tensor:
    """``scipy.signal.resample_poly(x, up, down, axis=-1)`` (zero padding) for ``[batch, time]``.

    Polyphase: output ``q`` is ``sum_j h[j] xup[q down + half_len - j]`` where ``xup`` is ``x``
    zero-stuffed by ``up``; the outputs ``q = q0 + up l`` all use the same sub-filter
    ``h[r::up]`` on ``x`` read with stride ``down`` (one strided matmul per phase ``q0``).
    """
    batch, n_in = x.shape
    h_np, half_len = _polyphase_filter(up, down)
    h = torch.tensor(np.array(h_np), dtype=x.dtype, device=x.device)
    n_out = n_in * up
    n_out = n_out // down + bool(n_out % down)
    k_max = -(-h.numel() // up)
    pad_left = k_max
    pad_right = k_max + down * (-(-n_out // up) + 1) + half_len // up + 1
    xp = torch.nn.functional.pad(x, (pad_left, max(0, pad_right - 0)))
    y = torch.empty(batch, n_out, dtype=x.dtype, device=x.device)
    for q0 in range(min(up, n_out)):
        t0 = q0 * down + half_len
        r, m0 = t0 % up, t0 // up
        sub = h[r::up]  # taps k: h[r + k up] multiplies x[m - k]
        k = sub.numel()
        n_l = -(-(n_out - q0) // up)
        start = m0 - (k - 1) + pad_left
        windows = xp[:, start:].unfold(-1, k, down)[:, :n_l]  # [batch, n_l, k], x[m - k + 1 .. m]
        y[:, q0::up] = windows @ sub.flip(0)
    return y


def _masked_rms(x: Tensor, lengths: Tensor | None) -> Tensor:
    if lengths is None:
        return torch.sqrt(torch.mean(x**2, dim=-1))
    mask = torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None]
    return torch.sqrt(torch.sum(torch.where(mask, x**2, 0.0), dim=-1) / lengths.to(x.dtype))


def resample_24khz(
    reference_signal: Tensor,
    reference_freq: float,
    freq_sample_hz: float = 24000.0,
    *,
    lengths: Tensor | None = None,
) -> tuple[Tensor, float]:
    """Resample signals to 24 kHz (polyphase) and match their RMS level to the input.

    Parameters
    ----------
    reference_signal : Tensor [shape=(batch, time) or (time,)], float
        Input signals (any scale; RMS 1 == ``level1`` dB SPL in the ear model).
    reference_freq : float
        Input sampling rate in Hz (one rate for the whole batch).
    freq_sample_hz : float
        Output sampling rate in Hz (24 000, the cochlear model rate).
    lengths : Tensor [shape=(batch,)], int, optional
        Valid samples per item (the rest is zero padding).  The RMS matching then uses only
        the valid samples; output item ``i`` is valid for ``resampled_length(lengths[i], ...)``
        samples (beyond that it is the filter tail of the zero padding, the same as a shorter
        call would have dropped).

    Returns
    -------
    resampled : Tensor [shape=(batch, time_out)], dtype/device of the input
        ``time_out = resampled_length(time, reference_freq, freq_sample_hz)``.  When no
        resampling is needed the input itself is returned (not a copy), like the reference.
    freq_sample_hz : float
        The output rate in Hz.

    Raises
    ------
    ValueError
        If the input is not 1-D/2-D floating point, or a rate rounds below 1 kHz.

    Notes
    -----
    Reproduces pyclarity quirks: (1) both rates are rounded to the nearest kHz before the
    polyphase ratio is chosen, so 44.1 kHz input is resampled by 24/44 (and its output is
    labelled 24 kHz although the true rate is 24.055 kHz); rates within +-500 Hz of 24 kHz
    are passed through unchanged. (2) Upsampled output is scaled to the broadband RMS of the
    input; downsampled output is scaled so that its RMS after a 7th-order Chebyshev II
    low-pass at 10.5 kHz equals that of the input after the same low-pass at the input rate
    (the scale factor multiplies the unfiltered resampled signal).
    The Chebyshev band limiting of the RMS match always runs in the host numba kernel (bit-exact
    to scipy; CUDA inputs are copied for it).
    The polyphase filter is scipy's ``firwin`` Kaiser(5.0) design (host, cached); the
    filtering itself is a polyphase strided matmul on the input's device.  Not differentiable
    through the Chebyshev RMS (computed without autograd); any device.

    References
    ----------
    Kates (2013), Sec. II.A.  Reproduces pyclarity 0.9.0 ``eb.resample_24khz`` and
    ``scipy.signal.resample_poly(x, up, down)`` (``padtype='constant'``).
    """
    x = reference_signal
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim not in (1, 2):
        raise ValueError(
            "resample_24khz: reference_signal must be a float tensor [batch, time] or [time], "
            f"got {type(x).__name__} {getattr(x, 'shape', None)}"
        )
    squeeze = x.ndim == 1
    if squeeze:
        x = x.unsqueeze(0)
    up, down = resample_ratio(reference_freq, freq_sample_hz)
    if up == down == 1:
        return reference_signal, freq_sample_hz
    if lengths is not None:
        lengths = torch.as_tensor(lengths, device=x.device).reshape(-1)
        if lengths.numel() != x.shape[0]:
            raise ValueError(
                f"resample_24khz: lengths has {lengths.numel()} items for batch {x.shape[0]}"
            )
        out_lengths = torch.tensor(
            [resampled_length(int(n), reference_freq, freq_sample_hz) for n in lengths.tolist()],
            device=x.device,
        )
    else:
        out_lengths = None
    y = _resample_poly(x, up, down)
    target_khz = int(np.round(freq_sample_hz / 1000))
    input_khz = int(np.round(reference_freq / 1000))
    if input_khz < target_khz:
        ref_rms = _masked_rms(x, lengths)
        res_rms = _masked_rms(y, out_lengths)
    else:
        b_in, a_in = _cheby2_band_limit(input_khz)
        b_out, a_out = _cheby2_band_limit(target_khz)
        # the band-limited copies only feed two RMS values: filter them on the host with the
        # bit-exact numba kernel on every device (a few MB of transfer; far fewer launches
        # than the torch scan on CUDA)
        ref_rms = _masked_rms(lfilter(b_in, a_in, x.detach(), backend="numba"), lengths)
        res_rms = _masked_rms(lfilter(b_out, a_out, y.detach(), backend="numba"), out_lengths)
    y = (ref_rms / res_rms)[:, None] * y
    if squeeze:
        y = y[0]
    return y, freq_sample_hz
