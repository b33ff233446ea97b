"""Middle-ear filter: 1-pole low-pass at 5 kHz then 2-pole high-pass at 350 Hz.

API
---
``middle_ear(reference, freq_sample, *, backend=None) -> Tensor`` (same shape as ``reference``)
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np
from torch import Tensor

from clarity_se.dsp.designs import scipy_design
from clarity_se.dsp.iir import lfilter

logger = logging.getLogger(__name__)

__all__ = ["middle_ear"]


@lru_cache(maxsize=8)
def _middle_ear_filters(freq_sample: float) -> tuple[np.ndarray, ...]:
    b_lp, a_lp = scipy_design("butter", 1, 5000 / (0.5 * freq_sample))
    b_hp, a_hp = scipy_design("butter", 2, 350 / (0.5 * freq_sample), "high")
    return b_lp, a_lp, b_hp, a_hp


def middle_ear(reference: Tensor, freq_sample: float, *, backend: str | None = None) -> Tensor:
    """Filter signals through the middle-ear model.

    A 1-pole Butterworth low-pass at 5 kHz in series with a 2-pole Butterworth high-pass at
    350 Hz (bilinear designs); a rough approximation to the equal-loudness contour at threshold.

    Parameters
    ----------
    reference : Tensor [shape=(..., time)], float
        Input signals (any leading batch dims), sampled at ``freq_sample``.
    freq_sample : float
        Sampling rate in Hz (24 000 in the ear model; must exceed 10 kHz).
    backend : str or None
        IIR backend, see :func:`clarity_se.dsp.iir.lfilter`.

    Returns
    -------
    Tensor [shape=reference.shape], dtype/device of ``reference``
        Filtered signals (zero initial state).  Not differentiable; any device.

    Raises
    ------
    ValueError
        If ``freq_sample <= 10000`` Hz (5 kHz must lie below Nyquist).

    References
    ----------
    Kates (2013), Sec. II.B.  Reproduces pyclarity 0.9.0 ``eb.middle_ear``.
    """
    if not freq_sample > 10000:
        raise ValueError(f"middle_ear: freq_sample must exceed 10 kHz, got {freq_sample!r} Hz")
    b_lp, a_lp, b_hp, a_hp = _middle_ear_filters(float(freq_sample))
    y = lfilter(b_lp, a_lp, reference, backend=backend)
    return lfilter(b_hp, a_hp, y, backend=backend)
