"""Compensation of the gammatone filterbank's inter-channel group delay (Kates 2013)."""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor

from clarity_se.ear_model.envelope import shift_rows

logger = logging.getLogger(__name__)

__all__ = ["gammatone_group_delay", "group_delay_compensate", "group_delay_correction"]


def gammatone_group_delay(
    bandwidths: Tensor,
    center_freq_hz: Tensor,
    sample_rate: float,
    *,
    ear_q: float = 9.26449,
    min_bandwidth_hz: float = 24.7,
) -> Tensor:
    """DC group delay in samples of the 4th-order gammatone filter of each band.

    The filter is ``B(z)/A(z)`` with ``B = [1, a1, a5]``, ``A = [1, -a1, -a2, -a3, -a4]`` (the
    recursion of ``gammatone_basilar_membrane``); the delay is evaluated at 0 rad/sample with the
    same polynomial formula as ``scipy.signal.group_delay((b, a), w=1)``.

    Parameters
    ----------
    bandwidths : Tensor [shape=(batch, chan)], float
        Filter bandwidths relative to a normal ear.
    center_freq_hz : Tensor [shape=(chan,)] or [batch, chan], float, Hz
        Centre frequencies.
    sample_rate : float
        Sampling rate in Hz.
    ear_q, min_bandwidth_hz : float
        Glasberg and Moore ERB parameters (9.26449, 24.7 Hz).

    Returns
    -------
    Tensor [shape=(batch, chan)], float, samples (not rounded)

    References
    ----------
    Moore and Glasberg (1983) ERB; pyclarity 0.9.0 ``eb.group_delay_compensate``.
    """
    erb = min_bandwidth_hz + center_freq_hz / ear_q
    tpt = 2 * math.pi / sample_rate
    a = torch.exp(-(tpt * 1.019 * bandwidths * erb))
    a_1 = 4.0 * a
    a_2 = -6.0 * a * a
    a_3 = 4.0 * a * a * a
    a_4 = -a * a * a * a
    a_5 = 4.0 * a * a
    one = torch.ones_like(a)
    b = torch.stack((one, a_1, a_5), dim=-1)  # [..., 3]
    den = torch.stack((one, -a_1, -a_2, -a_3, -a_4), dim=-1)  # [..., 5]
    # c = convolve(b, a[::-1]) (real coefficients), length 7
    den_rev = den.flip(-1)
    c = torch.zeros((*a.shape, 7), dtype=a.dtype, device=a.device)
    for i in range(3):
        c[..., i : i + 5] = c[..., i : i + 5] + b[..., i : i + 1] * den_rev
    cr = c * torch.arange(7, dtype=a.dtype, device=a.device)
    # polyval at z = 1 with Horner's scheme, highest power first (same order as numpy)
    num = torch.zeros_like(a)
    dsum = torch.zeros_like(a)
    for k in range(6, -1, -1):
        num = num + cr[..., k]
        dsum = dsum + c[..., k]
    return num / dsum - 5 + 1


def group_delay_compensate(
    signals: Tensor,
    bandwidths: Tensor,
    center_freq_hz: Tensor,
    sample_rate: float,
    *,
    ear_q: float = 9.26449,
    min_bandwidth_hz: float = 24.7,
) -> Tensor:
    """Delay each band so that all bands share the group delay of the slowest filter.

    Each band is delayed by ``max(d) - d[band]`` samples (zero fill, same length) where ``d`` is
    the rounded DC group delay of its gammatone filter (:func:`gammatone_group_delay`).

    Parameters
    ----------
    signals : Tensor [shape=(batch, chan, time)], float
        Envelopes or BM motion.
    bandwidths : Tensor [shape=(batch, chan)], float
        Bandwidths relative to normal used to compute the delays.  Reproduces pyclarity quirk:
        the ear model passes the *reference* bandwidths for the processed signal too.
    center_freq_hz : Tensor [shape=(chan,)], float, Hz
        Centre frequencies.
    sample_rate : float
        Sampling rate in Hz.
    ear_q, min_bandwidth_hz : float
        ERB parameters (9.26449, 24.7 Hz).

    Returns
    -------
    Tensor [shape=(batch, chan, time)]
        Delay-compensated signals.  With zero-padded batches the valid region of each item is
        unaffected by the padding (the shift only moves samples later).

    Raises
    ------
    ValueError
        If the shapes are inconsistent.

    References
    ----------
    Kates (2013) POMA 19, 050184; pyclarity 0.9.0 ``eb.group_delay_compensate``.
    """
    if signals.ndim != 3 or bandwidths.shape != signals.shape[:2]:
        raise ValueError(
            f"signals must be [batch, chan, time] and bandwidths [batch, chan], got "
            f"{tuple(signals.shape)} and {tuple(bandwidths.shape)}"
        )
    correct = group_delay_correction(
        bandwidths, center_freq_hz, sample_rate, ear_q=ear_q, min_bandwidth_hz=min_bandwidth_hz
    ).to(signals.device)
    # shift right by `correct` samples with zero fill (one slice copy per row)
    return shift_rows(signals, -correct)


def group_delay_correction(
    bandwidths: Tensor,
    center_freq_hz: Tensor,
    sample_rate: float,
    *,
    ear_q: float = 9.26449,
    min_bandwidth_hz: float = 24.7,
) -> Tensor:
    """Samples by which :func:`group_delay_compensate` delays each band.

    ``max(d) - d`` with ``d = rint(gammatone_group_delay(...))`` (the minimum removed first).

    Parameters
    ----------
    bandwidths : Tensor [shape=(batch, chan)], float
        Relative bandwidths (the reference's, see :func:`group_delay_compensate`).
    center_freq_hz : Tensor [shape=(chan,)], Hz
        Centre frequencies.
    sample_rate : float
        Sampling rate in Hz.
    ear_q, min_bandwidth_hz : float
        ERB parameters (9.26449, 24.7 Hz).

    Returns
    -------
    Tensor [shape=(batch, chan)], int64, samples >= 0

    References
    ----------
    pyclarity 0.9.0 ``eb.group_delay_compensate``.
    """
    cf = torch.as_tensor(center_freq_hz, dtype=torch.float64, device=bandwidths.device)
    delay = gammatone_group_delay(
        bandwidths.to(dtype=torch.float64), cf, sample_rate,
        ear_q=ear_q, min_bandwidth_hz=min_bandwidth_hz,
    )
    delay = torch.round(delay).to(torch.long)  # np.rint: half to even, as torch.round
    delay = delay - delay.min(dim=-1, keepdim=True).values
    return delay.max(dim=-1, keepdim=True).values - delay  # [batch, chan]
