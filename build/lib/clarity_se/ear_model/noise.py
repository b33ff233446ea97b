"""Threshold noise of the basilar-membrane motion (the ear model's only random draw).

The random streams themselves (:class:`clarity_se.random.PairRandom`) live in
:mod:`clarity_se.random`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from clarity_se.random import PairRandom

__all__ = ["basilar_membrane_add_noise"]


def basilar_membrane_add_noise(
    basilar_membrane: Tensor,
    threshold_db: float,
    level_db_spl: float,
    rng: PairRandom,
    *,
    lengths: Tensor | Sequence[int] | None = None,
) -> Tensor:
    """Add the low-level Gaussian noise that sets the auditory threshold to the BM motion.

    ``bm + 10 ** ((threshold_db - level_db_spl) / 20) * N(0, 1)``, one draw of shape
    ``(chan, length)`` per item from that item's stream.

    Parameters
    ----------
    basilar_membrane : Tensor [shape=(batch, chan, time)], float
        BM motion (dB SL envelope, after IHC adaptation).
    threshold_db : float
        Noise level in dB re: auditory threshold (-10 in the ear model).
    level_db_spl : float
        Level in dB SPL of a signal with RMS 1.
    rng : PairRandom
        One stream per item (``len(rng) == batch``).  In compat mode the draws equal the
        reference's ``np.random.standard_normal(reference.shape)``.  Fast streams draw in
        float32 (then cast), whatever the dtype of ``basilar_membrane``.
    lengths : Tensor or sequence of int [shape=(batch,)], optional
        Valid samples per item of a zero-padded batch: each item then draws ``(chan, length)``
        values exactly as an unpadded call would, and the padding receives no noise.

    Returns
    -------
    Tensor [shape=(batch, chan, time)], same dtype and device.

    Raises
    ------
    ValueError
        If ``basilar_membrane`` is not 3-D, or ``rng``/``lengths`` do not match the batch.

    References
    ----------
    pyclarity 0.9.0 ``eb.basilar_membrane_add_noise``; Kates (2013).
    """
    if basilar_membrane.ndim != 3:
        raise ValueError(
            f"basilar_membrane must be [batch, chan, time], got {tuple(basilar_membrane.shape)}"
        )
    batch, chan, n_time = basilar_membrane.shape
    if len(rng) != batch:
        raise ValueError(f"rng has {len(rng)} streams for a batch of {batch}")
    gain = 10 ** ((threshold_db - level_db_spl) / 20)
    dtype = basilar_membrane.dtype
    # fast streams draw float32 (torch's float64 CPU normal sampler is ~5x slower); the noise is
    # ~1e-4 of the unit level, so its float32 rounding is far below any metric's resolution
    draw_dtype = torch.float32 if rng.mode == "fast" and dtype == torch.float64 else dtype
    kwargs = {"dtype": draw_dtype, "device": basilar_membrane.device}
    if lengths is None:
        noise = rng.standard_normal((chan, n_time), **kwargs).to(dtype)
        # gain * noise + bm, in place on the fresh draw (same value as bm + gain * noise)
        return noise.mul_(gain).add_(basilar_membrane)
    lens = [int(v) for v in lengths]
    if len(lens) != batch or any(not 1 <= v <= n_time for v in lens):
        raise ValueError(f"lengths must be {batch} values in [1, {n_time}], got {lens}")
    draws = rng.standard_normal([(chan, v) for v in lens], **kwargs)
    noise = torch.zeros_like(basilar_membrane)
    for i, d in enumerate(draws):
        noise[i, :, : lens[i]] = d
    return basilar_membrane + gain * noise
