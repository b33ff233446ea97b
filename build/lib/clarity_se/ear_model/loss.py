"""Auditory filter centre frequencies and the hearing-loss parameters of the cochlear model.

API
---
``center_frequency(nchan=32, shift=None, low_freq=80, high_freq=8000, ear_q=9.26449,
min_bw=24.7, *, dtype=torch.float64, device=None) -> Tensor [nchan]``

``loss_parameters(hearing_loss, center_freq, audiometric_freq=None) -> LossParameters``
with fields ``attenuated_ohc, bandwidth, low_knee, compression_ratio, attenuated_ihc``,
each ``[batch, nchan]`` (a NamedTuple, so it unpacks like the reference's 5-tuple).

``AUDIOMETRIC_FREQUENCIES_HZ = (250, 500, 1000, 2000, 4000, 6000)``
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from clarity_se.data.audiogram import AUDIOMETRIC_FREQUENCIES_HZ

logger = logging.getLogger(__name__)

__all__ = [
    "AUDIOMETRIC_FREQUENCIES_HZ",
    "LossParameters",
    "center_frequency",
    "loss_parameters",
]


def center_frequency(
    nchan: int = 32,
    shift: float | None = None,
    low_freq: float = 80,
    high_freq: float = 8000,
    ear_q: float = 9.26449,
    min_bw: float = 24.7,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """Gammatone centre frequencies equally spaced on the ERB scale, low to high.

    Parameters
    ----------
    nchan : int
        Number of auditory bands (32 in HASPI / HASQI v2).
    shift : float or None
        Optional basal (+) / apical (-) shift of the filter bank as a fraction of the
        basilar-membrane length (Greenwood map, length normalised to 1).
    low_freq, high_freq : float
        Lowest and highest centre frequencies in Hz (80 and 8000 Hz in the model).
    ear_q, min_bw : float
        Glasberg & Moore ERB parameters: ``ERB = min_bw + f / ear_q`` (Hz).
    dtype, device
        Of the returned tensor.

    Returns
    -------
    Tensor [shape=(nchan,)]
        Centre frequencies in Hz, increasing; the first is ``low_freq`` (up to rounding) and
        the last is exactly ``high_freq``.

    Raises
    ------
    ValueError
        If ``nchan < 2`` or the frequency range is not positive and increasing.

    Notes
    -----
    Computed on the host in float64 with the reference's exact operation order (bit-identical),
    then moved to ``device``.

    References
    ----------
    Slaney (1993) Apple TR #35; Moore & Glasberg (1983); Greenwood (1990).
    Reproduces pyclarity 0.9.0 ``eb.center_frequency``.
    """
    if int(nchan) != nchan or nchan < 2:
        raise ValueError(f"center_frequency: nchan must be an integer >= 2, got {nchan!r}")
    if not (0 < low_freq < high_freq):
        raise ValueError(
            f"center_frequency: need 0 < low_freq < high_freq, got {low_freq!r}, {high_freq!r}"
        )
    if shift is not None:
        k = 1
        big_a = 165.4
        small_a = 2.1
        x_low = (1 / small_a) * np.log10(k + (low_freq / big_a))
        x_high = (1 / small_a) * np.log10(k + (high_freq / big_a))
        x_low = x_low * (1 + shift)
        x_high = x_high * (1 + shift)
        low_freq = big_a * (10 ** (small_a * x_low) - k)
        high_freq = big_a * (10 ** (small_a * x_high) - k)
    cf = -(ear_q * min_bw) + np.exp(
        np.arange(1, nchan)
        * (-np.log(high_freq + ear_q * min_bw) + np.log(low_freq + ear_q * min_bw))
        / (nchan - 1)
    ) * (high_freq + ear_q * min_bw)
    cf = np.insert(cf, 0, high_freq)
    cf = np.flip(cf).copy()
    return torch.as_tensor(cf, dtype=torch.float64).to(dtype=dtype, device=device)


class LossParameters(NamedTuple):
    """Cochlear-model parameters for one hearing loss, each ``[batch, nchan]``."""

    attenuated_ohc: Tensor
    """OHC attenuation in dB at the compressor input."""
    bandwidth: Tensor
    """Gammatone bandwidth relative to a normal ear (>= 1)."""
    low_knee: Tensor
    """Lower compression kneepoint in dB SPL."""
    compression_ratio: Tensor
    """OHC compression ratio (1.25:1 at 80 Hz to 3.5:1 at 8 kHz for normal hearing)."""
    attenuated_ihc: Tensor
    """IHC attenuation in dB at the synapse input."""


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Batched ``np.interp`` with numpy's formula ``slope * (x - xp[j]) + fp[j]``.

    x [nchan] or [batch, nchan]; xp [batch, m] increasing; fp [batch, m].
    """
    batch, m = xp.shape
    x = x.expand(batch, x.shape[-1]).contiguous()
    j = torch.searchsorted(xp.contiguous(), x, right=True) - 1
    j_lo = j.clamp(0, m - 2)
    x_lo = torch.gather(xp, 1, j_lo)
    x_hi = torch.gather(xp, 1, j_lo + 1)
    f_lo = torch.gather(fp, 1, j_lo)
    f_hi = torch.gather(fp, 1, j_lo + 1)
    slope = (f_hi - f_lo) / (x_hi - x_lo)
    out = slope * (x - x_lo) + f_lo
    out = torch.where(x == x_lo, f_lo, out)
    out = torch.where(j >= m - 1, fp[:, -1:].expand_as(out), out)
    out = torch.where(j < 0, fp[:, :1].expand_as(out), out)
    return out


def loss_parameters(
    hearing_loss: Tensor,
    center_freq: Tensor,
    audiometric_freq: Tensor | None = None,
) -> LossParameters:
    """Split the hearing loss between outer and inner hair cells and derive the OHC parameters.

    The loss (dB HL at the audiometric frequencies) is interpolated linearly in dB at the
    gammatone centre frequencies (held constant outside 250-6000 Hz), clipped at 0 dB, and
    apportioned 80 % to the OHC and 20 % to the IHC up to 1.25 x the OHC loss that gives 1:1
    compression; any loss above that goes to the IHC.  The OHC loss widens the filters
    (``1 + L/50 + 2 (L/50)^6``), raises the lower kneepoint (``30 + L`` dB SPL) and reduces the
    compression ratio towards 1:1.

    Parameters
    ----------
    hearing_loss : Tensor [shape=(batch, 6) or (6,)], float, dB HL
        Loss at 250, 500, 1000, 2000, 4000, 6000 Hz (``AUDIOMETRIC_FREQUENCIES_HZ``).
    center_freq : Tensor [shape=(nchan,) or (batch, nchan)], float, Hz
        Gammatone centre frequencies, increasing, with ``center_freq[0] < 250`` and
        ``center_freq[-1] > 6000`` Hz (as from :func:`center_frequency`).
    audiometric_freq : Tensor [shape=(6,)] or None, Hz
        Frequencies of ``hearing_loss``; default ``AUDIOMETRIC_FREQUENCIES_HZ``.

    Returns
    -------
    LossParameters
        ``attenuated_ohc`` (dB), ``bandwidth`` (relative), ``low_knee`` (dB SPL),
        ``compression_ratio``, ``attenuated_ihc`` (dB); each ``[batch, nchan]`` (``batch = 1``
        for a 1-D loss), dtype/device of ``center_freq``.  Differentiable in ``hearing_loss``
        almost everywhere; any device.

    Raises
    ------
    ValueError
        If ``hearing_loss`` does not have 6 values per item, or shapes do not match.

    References
    ----------
    Kates (2013) "An auditory model for intelligibility and quality predictions", Sec. II.C;
    Moore et al. (1999) JASA 106:2761-2778 (OHC/IHC split).  Reproduces pyclarity 0.9.0
    ``eb.loss_parameters`` (same interpolation formula as ``np.interp``).
    """
    center_freq = torch.as_tensor(center_freq)
    if not center_freq.is_floating_point():
        center_freq = center_freq.to(torch.float64)
    dtype, device = center_freq.dtype, center_freq.device
    hl = torch.as_tensor(hearing_loss, dtype=dtype, device=device)
    if hl.ndim == 1:
        hl = hl.unsqueeze(0)
    if audiometric_freq is None:
        audiometric_freq = torch.tensor(AUDIOMETRIC_FREQUENCIES_HZ, dtype=dtype, device=device)
    aud = torch.as_tensor(audiometric_freq, dtype=dtype, device=device).reshape(-1)
    if hl.ndim != 2 or hl.shape[-1] != aud.numel():
        raise ValueError(
            f"loss_parameters: hearing_loss must be [batch, {aud.numel()}] dB HL, "
            f"got shape {tuple(hl.shape)}"
        )
    batch = hl.shape[0]
    if center_freq.ndim == 1:
        cf = center_freq.unsqueeze(0).expand(batch, -1)
    elif center_freq.ndim == 2 and center_freq.shape[0] in (1, batch):
        cf = center_freq.expand(batch, -1)
    else:
        raise ValueError(
            f"loss_parameters: center_freq must be [nchan] or [batch, nchan], got "
            f"{tuple(center_freq.shape)} for batch {batch}"
        )
    nfilt = cf.shape[-1]
    f_v = torch.cat([cf[:, :1], aud.expand(batch, -1), cf[:, -1:]], dim=1)
    l_v = torch.cat([hl[:, :1], hl, hl[:, -1:]], dim=1)
    loss = _interp(cf, f_v, l_v)
    loss = torch.clamp(loss, min=0)

    compression_ratio = 1.25 + 2.25 * torch.arange(nfilt, dtype=dtype, device=device) / (nfilt - 1)
    max_ohc = 70 * (1 - (1 / compression_ratio))
    theoretical_ohc = 1.25 * max_ohc
    above = loss >= theoretical_ohc
    attenuated_ohc = torch.where(above, 0.8 * theoretical_ohc, 0.8 * loss)
    attenuated_ihc = torch.where(
        above, 0.2 * theoretical_ohc + (loss - theoretical_ohc), 0.2 * loss
    )

    bandwidth = 1.0 + (attenuated_ohc / 50.0) + 2.0 * (attenuated_ohc / 50.0) ** 6
    low_knee = attenuated_ohc + 30
    upamp = 30 + (70 / compression_ratio)
    compression_ratio = (100 - low_knee) / (upamp + attenuated_ohc - low_knee)
    return LossParameters(attenuated_ohc, bandwidth, low_knee, compression_ratio, attenuated_ihc)
