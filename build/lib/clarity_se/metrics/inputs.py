"""Input checks shared by HASPI and HASQI: signals, hearing loss, random streams.

One place for what both metrics accept, so that they accept the same things and fail the same
way: a clear :class:`ValueError` naming the argument, never a traceback from deep inside the
ear model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from clarity_se.data.audiogram import AUDIOMETRIC_FREQUENCIES_HZ, Audiogram, Listener
from clarity_se.random import PairRandom

logger = logging.getLogger(__name__)

__all__ = [
    "as_signal",
    "audiogram_to_hearing_loss",
    "check_not_silent",
    "check_rng",
    "hearing_loss",
    "listener_audiograms",
]


def as_signal(x, name: str, *, dtype: torch.dtype | None = None, device=None) -> Tensor:
    """Validate one signal argument and return it as a float ``[batch, time]`` tensor.

    Parameters
    ----------
    x : Tensor or np.ndarray [shape=(time,) or (batch, time)], real
        A 1-D signal becomes a batch of one; int16/int32 tensors are converted to float64.
    name : str
        Argument name used in error messages.
    dtype, device : optional
        Convert to this dtype / device (default: keep).

    Returns
    -------
    Tensor [shape=(batch, time)], floating point

    Raises
    ------
    ValueError
        Not real numbers, not 1-D or 2-D, a ``[time, 2]`` stereo layout, empty, or NaN/Inf
        (the message lists the bad batch items).
    """
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
            raise ValueError(f"{name}: must be real numbers, got dtype {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    elif not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError):
            raise ValueError(f"{name}: must be a tensor or array of numbers, got "
                             f"{type(x).__name__}") from None
    if x.is_complex() or not (x.is_floating_point() or x.dtype in (torch.int16, torch.int32)):
        raise ValueError(f"{name}: must be a real float tensor, got {x.dtype}")
    if x.ndim == 1:
        x = x.unsqueeze(0)
    elif x.ndim == 2:
        if x.shape[1] == 2 and x.shape[0] > 2:
            raise ValueError(
                f"{name}: shape {tuple(x.shape)} looks like a [time, 2] stereo signal; the "
                "metrics take mono [batch, time] (use the *_better_ear functions, one tensor "
                "per ear)"
            )
    else:
        raise ValueError(
            f"{name}: must be mono [time] or [batch, time], got shape {tuple(x.shape)}"
            + (" (stereo? pass each ear to the *_better_ear functions)" if x.ndim == 3 else "")
        )
    if x.shape[1] == 0 or x.shape[0] == 0:
        raise ValueError(f"{name}: empty signal (shape {tuple(x.shape)})")
    if not x.is_floating_point():
        x = x.to(torch.float64)
    if dtype is not None or device is not None:
        x = x.to(dtype=dtype or x.dtype, device=device or x.device)
    # fast path: a finite sum implies finite samples (10x cheaper than isfinite on long signals)
    finite = torch.isfinite(x.sum(dim=1))
    if not bool(finite.all()):
        finite = torch.isfinite(x).all(dim=1)
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten().tolist()
        raise ValueError(f"{name}: contains NaN or Inf (batch items {bad})")
    return x


def check_not_silent(name: str, x: Tensor, metric: str = "the metric") -> None:
    """Reject all-zero items (pyclarity raises ``IndexError`` or returns NaN on them).

    Raises
    ------
    ValueError
        Naming ``name`` and the silent batch items.
    """
    silent = torch.nonzero(~(x != 0).any(dim=-1)).flatten().tolist()
    if silent:
        raise ValueError(
            f"{name}: item(s) {silent} are all zeros (silent); {metric} is undefined for a silent "
            "signal (pyclarity raises IndexError for a silent reference and returns NaN for a "
            "silent processed signal)"
        )


def audiogram_to_hearing_loss(audiogram: Audiogram) -> np.ndarray:
    """Hearing loss at the six audiometric frequencies, resampled like pyclarity.

    Parameters
    ----------
    audiogram : Audiogram
        Any centre frequencies (Hz) and levels (dB HL).

    Returns
    -------
    np.ndarray [shape=(6,)], float64, dB HL
        At 250, 500, 1000, 2000, 4000, 6000 Hz: linear interpolation on a log-frequency axis,
        held constant beyond the measured range (``Audiogram.resample``). A warning is logged
        when frequencies are missing, as the reference does.

    Raises
    ------
    ValueError
        If ``audiogram`` is not an :class:`~clarity_se.data.audiogram.Audiogram`.

    References
    ----------
    pyclarity 0.9.0 ``haspi.haspi_v2`` and ``hasqi.hasqi_v2``
    (``audiogram.resample(...)`` at the six frequencies).
    """
    if not isinstance(audiogram, Audiogram):
        raise ValueError(f"audiogram: expected an Audiogram, got {type(audiogram).__name__}")
    freqs = np.asarray(AUDIOMETRIC_FREQUENCIES_HZ, dtype=np.float64)
    if not audiogram.has_frequencies(freqs):
        logger.warning(
            "Audiogram%s does not have all six audiometric frequencies; levels are interpolated",
            f" {audiogram.name!r}" if audiogram.name else "",
        )
    return np.array(audiogram.resample(freqs).levels_db_hl, dtype=np.float64, copy=True)


def hearing_loss(audiogram, hearing_loss_db_hl, batch: int, name: str) -> np.ndarray:
    """``[batch, 6]`` float64 hearing loss (dB HL) from exactly one of the two arguments.

    Parameters
    ----------
    audiogram : Audiogram or sequence of Audiogram or None
        One for all items, or one per item.
    hearing_loss_db_hl : array-like [shape=(6,) or (batch, 6)] or None
        dB HL at :data:`~clarity_se.data.audiogram.AUDIOMETRIC_FREQUENCIES_HZ`.
    batch : int
        Number of items.
    name : str
        Caller name for error messages.

    Raises
    ------
    ValueError
        Both or neither given, wrong count or shape, not numbers, or NaN/Inf.
    """
    if (audiogram is None) == (hearing_loss_db_hl is None):
        raise ValueError(f"{name}: give exactly one of audiogram / hearing_loss_db_hl")
    if audiogram is not None:
        ags = [audiogram] if isinstance(audiogram, Audiogram) else list(audiogram)
        if len(ags) == 1:
            ags = ags * batch
        if len(ags) != batch:
            raise ValueError(f"{name}: {len(ags)} audiograms for {batch} batch items")
        return np.stack([audiogram_to_hearing_loss(a) for a in ags])
    hl = hearing_loss_db_hl
    if isinstance(hl, Tensor):
        hl = hl.detach().cpu().numpy()
    try:
        hl = np.asarray(hl, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: hearing_loss_db_hl must be numbers") from None
    if hl.ndim == 1:
        hl = np.broadcast_to(hl, (batch, hl.shape[0]))
    if hl.ndim != 2 or hl.shape != (batch, 6):
        raise ValueError(
            f"{name}: hearing_loss_db_hl must be [6] or [batch={batch}, 6] dB HL at "
            f"{AUDIOMETRIC_FREQUENCIES_HZ} Hz, got shape {hl.shape}"
        )
    if not np.all(np.isfinite(hl)):
        raise ValueError(f"{name}: hearing_loss_db_hl contains NaN or Inf")
    return np.array(hl, dtype=np.float64, copy=True)


def check_rng(rng: PairRandom | None, batch: int, name: str) -> PairRandom:
    """The per-item random streams, or the default ``PairRandom.compat([0] * batch)``.

    The default reproduces pyclarity after ``np.random.seed(0)``: deterministic, and the same
    for HASPI and HASQI.

    Raises
    ------
    ValueError
        Not a :class:`~clarity_se.random.PairRandom`, or not one stream per item.
    """
    if rng is None:
        return PairRandom.compat([0] * batch)
    if not isinstance(rng, PairRandom):
        raise ValueError(f"{name}: rng must be a PairRandom, got {type(rng).__name__}")
    if len(rng) != batch:
        raise ValueError(f"{name}: rng has {len(rng)} streams for {batch} batch items")
    return rng


def listener_audiograms(
    listener: Listener | Sequence[Listener], batch: int, name: str
) -> tuple[list[Audiogram], list[Audiogram]]:
    """Left and right audiograms of one listener per item (one listener may serve all).

    Raises
    ------
    ValueError
        Not listeners, or not one per item.
    """
    items = [listener] if isinstance(listener, Listener) else list(listener)
    if len(items) == 1:
        items = items * batch
    if len(items) != batch or not all(isinstance(li, Listener) for li in items):
        raise ValueError(f"{name}: listener must be a Listener or one per batch item ({batch})")
    return [li.audiogram_left for li in items], [li.audiogram_right for li in items]
