"""HASPI v2 (Hearing-Aid Speech Perception Index, version 2), batched PyTorch.

``haspi_v2`` = cochlear ear model (:func:`clarity_se.ear_model.model.ear_model`, reference at
normal hearing, processed with the listener's loss) -> envelope lowpass and subsampling ->
cepstral coefficients of the above-threshold segments -> 10-band modulation filterbank ->
cepstral cross-correlations averaged over basis functions 2-6 (``raw``, 10 values) ->
ensemble of 10 neural networks.  ``haspi_v2_better_ear`` takes the better of the two ears.

Reproduces pyclarity 0.9.0 ``clarity/evaluator/haspi/haspi.py`` (``haspi_v2``, ``haspi_v2_be``),
including its quirks (``shift=None`` for the control filterbank, envelope subsampling step 9 with
modulation filters designed for 2560 Hz, see :func:`clarity_se.metrics.modulation.env_filter`).
pyclarity is never imported here.

References
----------
J. M. Kates and K. H. Arehart, "The Hearing-Aid Speech Perception Index (HASPI) Version 2",
Speech Communication 131:35-46, 2021.
J. M. Kates, "An auditory model for intelligibility and quality predictions", Proc. Meetings on
Acoustics 19, 050184, 2013 (the ear model).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from clarity_se.data.audiogram import Audiogram, Listener
from clarity_se.ear_model.shared import ProcessedPathCache
from clarity_se.metrics.haspi_network import nn_feed_forward_ensemble
from clarity_se.metrics.inputs import (
    as_signal,
    audiogram_to_hearing_loss,
    check_rng,
    hearing_loss,
    listener_audiograms,
)
from clarity_se.metrics.modulation import (
    cepstral_correlation_coef,
    env_filter,
    fir_modulation_filter,
    modulation_cross_correlation,
)
from clarity_se.random import PairRandom

logger = logging.getLogger(__name__)

__all__ = [
    "HaspiResult",
    "audiogram_to_hearing_loss",
    "haspi_v2",
    "haspi_v2_better_ear",
]

#: The six audiometric frequencies (Hz) HASPI's ear model takes.


class HaspiResult(NamedTuple):
    """Result of :func:`haspi_v2`.

    Attributes
    ----------
    score : Tensor [shape=(batch,)]
        HASPI v2 intelligibility, nominally in [0, 1] (pyclarity's ``Intel``).
    raw : Tensor [shape=(batch, 10)]
        Modulation-band cepstral correlations averaged over basis functions 2-6, the network
        input (pyclarity's ``raw``).
    valid : Tensor [shape=(batch,)], bool
        False for items whose reference stayed below the silence threshold (score and raw are
        NaN there; only with ``below_threshold="nan"``).
    """

    score: Tensor
    raw: Tensor
    valid: Tensor


class HaspiBetterEarResult(NamedTuple):
    """Result of :func:`haspi_v2_better_ear`.

    Attributes
    ----------
    score : Tensor [shape=(batch,)]
        ``max(left.score, right.score)`` (pyclarity ``haspi_v2_be``).
    left, right : HaspiResult
        Per-ear results.
    """

    score: Tensor
    left: HaspiResult
    right: HaspiResult


# ------------------------------------------------------------------------------------------------
# Input handling
# ------------------------------------------------------------------------------------------------
def _ear_model(**kwargs):
    # Imported lazily: the ear model pulls in numba-compiled kernels.
    from clarity_se.ear_model.model import ear_model

    return ear_model(**kwargs)


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------
def haspi_v2(
    *,
    reference,
    processed,
    sample_rate: float,
    processed_sample_rate: float | None = None,
    audiogram: Audiogram | Sequence[Audiogram] | None = None,
    hearing_loss_db_hl=None,
    level_db_spl: float = 65.0,
    f_lp: float = 320.0,
    itype: int = 0,
    rng: PairRandom | None = None,
    below_threshold: str = "raise",
    processed_cache: ProcessedPathCache | None = None,
) -> HaspiResult:
    """HASPI v2 intelligibility of processed speech against a clean reference, batched.

    Parameters
    ----------
    reference : Tensor or ndarray [shape=(batch, time) or (time,)], float
        Clean reference speech; RMS 1 corresponds to ``level_db_spl``.  No hearing-aid gain
        (the reference ear is normal-hearing for ``itype=0``).
    processed : Tensor or ndarray [shape=(batch, time') or (time',)], float
        Processed / degraded signal, same batch size.  If ``time' != time`` the ear model keeps
        the first ``min`` samples of both after resampling to 24 kHz, as the reference does.
    sample_rate : float
        Sampling rate of ``reference`` in Hz (also of ``processed`` unless
        ``processed_sample_rate`` is given).  44100 Hz is treated as the reference does
        (resampled as 44 kHz, see :mod:`clarity_se.dsp.resample`).
    processed_sample_rate : float, optional
        Sampling rate of ``processed`` in Hz (default ``sample_rate``).
    audiogram : Audiogram or sequence of Audiogram, optional
        The listener's audiogram (one for all items or one per item); resampled to
        250-6000 Hz by :func:`audiogram_to_hearing_loss`.
    hearing_loss_db_hl : array-like [shape=(6,) or (batch, 6)], optional
        Alternative to ``audiogram``: dB HL at 250, 500, 1000, 2000, 4000, 6000 Hz.
    level_db_spl : float
        Level in dB SPL of a signal with RMS 1 (65 dB SPL, the HASPI convention; the Clarity
        recipes use 100 through :func:`haspi_v2_better_ear`).
    f_lp : float
        Envelope lowpass cutoff in Hz (320 Hz); subsampling at ``8 * f_lp``.
    itype : int
        Ear-model mode: 0 = intelligibility (reference at normal hearing), 1 = quality.
    rng : PairRandom, optional
        One random stream per item.  ``PairRandom.compat(seeds)`` replays the official recipe's
        ``np.random.seed(seed)`` draws exactly: per item, the ear model's two basilar-membrane
        noise draws, then the envelope jitter of the reference and of the processed signal.
        Default: ``PairRandom.compat([0] * batch)``.
    below_threshold : {"raise", "nan"}
        Items whose reference is all zero or whose reference envelope keeps at most one
        above-threshold segment (silence): ``"raise"`` -> ``ValueError`` (pyclarity raises
        ``ValueError("Signal below threshold")``, or ``IndexError`` for an all-zero reference),
        ``"nan"`` -> NaN score and ``valid=False`` for those items only (no random draws for
        all-zero items; the others are unaffected).
    processed_cache : ProcessedPathCache, optional
        Share the processed signal's ear-model path with a following HASQI call on the same
        signals (:mod:`clarity_se.ear_model.shared`); scores are bit-identical with or without.

    Returns
    -------
    HaspiResult
        ``score [batch]``, ``raw [batch, 10]``, ``valid [batch]``; dtype of the inputs (float64
        for numpy input), on their device.

    Raises
    ------
    ValueError
        Naming the argument: non-finite samples, wrong dimensions or a [time, 2] stereo array,
        batch sizes that differ, bad audiogram / hearing loss, rng of the wrong size, silent
        reference (``below_threshold="raise"``).

    Notes
    -----
    Deliberate deviation: an all-zero ``processed`` signal gives a finite (near 0) score here;
    pyclarity returns NaN when it resamples (0/0 in its RMS matching).
    Runs on CPU and CUDA; float64 with ``PairRandom.compat`` gives ``compat`` results (pyclarity
    within ~1e-8); float32 with the same streams is within ~1e-3.  ``PairRandom.fast`` draws
    other noise, which moves scores as much as another seed does in pyclarity (up to ~1e-2 for
    signals near the listener's threshold).  Not differentiable end to end (silence selection, numba
    recursions in the ear model).  Reproduced quirks: ``shift=None`` (the control filterbank's
    0.02 shift is not applied, pyclarity issue #105); envelope subsampling by 9 at 24 kHz with
    modulation filters designed for 2560 Hz.

    References
    ----------
    Kates & Arehart (2021), Secs. 2-4.  pyclarity 0.9.0 ``clarity.evaluator.haspi.haspi_v2``.

    Examples
    --------
    >>> import torch
    >>> from clarity_se.random import PairRandom
    >>> g = torch.Generator().manual_seed(0)
    >>> ref = 0.1 * torch.randn(2, 8000, generator=g, dtype=torch.float64)
    >>> res = haspi_v2(reference=ref, processed=ref + 0.05 * torch.randn(2, 8000, generator=g,
    ...                dtype=torch.float64), sample_rate=16000, hearing_loss_db_hl=[20.0] * 6,
    ...                rng=PairRandom.compat([1, 2]))
    >>> res.score.shape, res.raw.shape
    (torch.Size([2]), torch.Size([2, 10]))
    """
    if below_threshold not in ("raise", "nan"):
        raise ValueError(
            f"haspi_v2: below_threshold must be 'raise' or 'nan', got {below_threshold!r}"
        )
    ref = as_signal(reference, "reference")
    dtype, device = ref.dtype, ref.device
    proc = as_signal(processed, "processed", dtype=dtype, device=device)
    if ref.shape[0] != proc.shape[0]:
        raise ValueError(
            f"haspi_v2: reference has {ref.shape[0]} batch items but processed has {proc.shape[0]}"
        )
    batch = ref.shape[0]
    for nm, sr in (("sample_rate", sample_rate), ("processed_sample_rate", processed_sample_rate)):
        if sr is not None and (not np.isscalar(sr) or not np.isfinite(sr) or sr <= 0):
            raise ValueError(f"haspi_v2: {nm} must be a positive number of Hz, got {sr!r}")
    hl = hearing_loss(audiogram, hearing_loss_db_hl, batch, "haspi_v2")
    rng = check_rng(rng, batch, "haspi_v2")
    hl_t = torch.as_tensor(hl, dtype=dtype, device=device)

    silent = (ref == 0).all(dim=1)
    if bool(silent.any()):
        bad = silent.nonzero().flatten().tolist()
        if below_threshold == "raise":
            raise ValueError(
                f"reference: batch items {bad} are all zero (silent); HASPI is undefined there "
                "(pyclarity raises IndexError); pass below_threshold='nan' to get NaN instead"
            )
        keep = (~silent).nonzero().flatten()
        nan = torch.full((batch,), float("nan"), dtype=dtype, device=device)
        out = HaspiResult(nan, nan[:, None].repeat(1, 10), torch.zeros_like(silent))
        if keep.numel() == 0:
            return out
        sub = _haspi_v2_items(
            ref[keep],
            proc[keep],
            hl_t[keep],
            sample_rate,
            processed_sample_rate,
            level_db_spl,
            f_lp,
            itype,
            rng.subset(keep.tolist()),
            below_threshold,
            processed_cache,
        )
        return HaspiResult(
            out.score.index_copy(0, keep, sub.score),
            out.raw.index_copy(0, keep, sub.raw),
            out.valid.index_copy(0, keep, sub.valid),
        )
    return _haspi_v2_items(
        ref,
        proc,
        hl_t,
        sample_rate,
        processed_sample_rate,
        level_db_spl,
        f_lp,
        itype,
        rng,
        below_threshold,
        processed_cache,
    )


def _haspi_v2_items(
    ref,
    proc,
    hl_t,
    sample_rate,
    processed_sample_rate,
    level_db_spl,
    f_lp,
    itype,
    rng,
    below_threshold,
    processed_cache=None,
) -> HaspiResult:
    """Ear model + back end on validated [batch, time] tensors."""
    em = _ear_model(
        reference=ref,
        reference_sample_rate=float(sample_rate),
        processed=proc,
        processed_sample_rate=float(processed_sample_rate or sample_rate),
        hearing_loss_db_hl=hl_t,
        itype=itype,
        level_db_spl=float(level_db_spl),
        rng=rng,
        shift=None,  # pyclarity quirk, see Notes
        # HASPI reads only the envelopes: skip the BM half of the model (its noise draws are
        # still skipped over in the random stream, so compat replays stay exact).
        basilar_membrane=False,
        processed_cache=processed_cache,
    )
    return _haspi_back_end(
        em.reference_db,
        em.processed_db,
        float(em.freq_sample),
        f_lp=f_lp,
        rng=rng,
        below_threshold=below_threshold,
        lengths=getattr(em, "lengths", None),
    )


def _haspi_back_end(
    reference_db: Tensor,
    processed_db: Tensor,
    freq_sample: float,
    *,
    f_lp: float,
    rng: PairRandom,
    below_threshold: str,
    lengths: Tensor | None = None,
) -> HaspiResult:
    """HASPI v2 from ear-model envelopes ``[batch, nchan, time]`` (dB SL) at ``freq_sample`` Hz."""
    fsub = 8.0 * f_lp  # subsample to span 2 octaves above the cutoff frequency
    ref_lp, proc_lp = env_filter(
        reference_db,
        processed_db,
        filter_cutoff_hz=f_lp,
        subsample_rate_hz=fsub,
        sample_rate_hz=freq_sample,
    )
    sub_lengths = None
    if lengths is not None:  # valid subsampled segments: indices 0, step, 2 step, ... < length
        step = int(np.floor(freq_sample / fsub))
        sub_lengths = torch.div(lengths.to(ref_lp.device) + step - 1, step, rounding_mode="floor")
    cep = cepstral_correlation_coef(
        ref_lp,
        proc_lp,
        thresh_cep=2.5,
        thresh_nerve=0.1,
        nbasis=6,
        rng=rng,
        lengths=sub_lengths,
        below_threshold="raise" if below_threshold == "raise" else "keep",
    )
    # Only basis functions 2-6 enter the average: filter those alone (same numbers, 5/6 the work).
    mod = fir_modulation_filter(
        cep.reference[:, 1:6], cep.processed[:, 1:6], subsample_rate_hz=fsub, lengths=cep.lengths
    )
    raw = modulation_cross_correlation(
        mod.reference, mod.processed, lengths=cep.lengths, basis_slice=slice(None)
    )
    score = nn_feed_forward_ensemble(raw)
    valid = cep.lengths > 1
    if not bool(valid.all()):
        nan = torch.full_like(score, float("nan"))
        score = torch.where(valid, score, nan)
        raw = torch.where(valid[:, None], raw, nan[:, None].expand_as(raw))
    return HaspiResult(score, raw, valid)


def _same_layout(tensors) -> bool:
    """True when the signals can be concatenated along the batch axis (same length, dtype,
    device)."""
    ts = list(tensors)
    return all(
        t.shape[1:] == ts[0].shape[1:] and t.dtype == ts[0].dtype and t.device == ts[0].device
        for t in ts
    )


def haspi_v2_better_ear(
    *,
    reference_left,
    reference_right,
    processed_left,
    processed_right,
    sample_rate: float,
    listener: Listener | Sequence[Listener] | None = None,
    audiogram_left: Audiogram | Sequence[Audiogram] | None = None,
    audiogram_right: Audiogram | Sequence[Audiogram] | None = None,
    hearing_loss_left_db_hl=None,
    hearing_loss_right_db_hl=None,
    level_db_spl: float = 100.0,
    rng: PairRandom | None = None,
    below_threshold: str = "raise",
    processed_cache: ProcessedPathCache | None = None,
) -> HaspiBetterEarResult:
    """Better-ear HASPI v2: the larger of the left-ear and right-ear scores.

    Parameters
    ----------
    reference_left, reference_right, processed_left, processed_right : Tensor or ndarray
        [shape=(batch, time) or (time,)], float.  One mono signal per ear; RMS 1 ==
        ``level_db_spl``.
    sample_rate : float
        Sampling rate of all four signals in Hz.
    listener : Listener or sequence of Listener, optional
        Gives both audiograms (one listener for all items or one per item).
    audiogram_left, audiogram_right : Audiogram or sequence of Audiogram, optional
        Alternative to ``listener``.
    hearing_loss_left_db_hl, hearing_loss_right_db_hl : array-like [shape=(6,) or (batch, 6)]
        Alternative to audiograms: dB HL at 250-6000 Hz.
    level_db_spl : float
        dB SPL of RMS 1; 100 dB SPL as pyclarity ``haspi_v2_be`` and the ICASSP 2023 recipe.
    rng : PairRandom, optional
        One stream per item, drawn left ear first, then right ear (the reference's order), so
        ``PairRandom.compat([scene_seed(scene)])`` replays the recipe.  Default
        ``PairRandom.compat([0] * batch)``.  With ``PairRandom.fast`` streams (no draw order
        to replay) and equal-length signals, both ears are scored as one batch of
        ``2 * batch`` items (each item's stream serves its left then its right ear).
    below_threshold : {"raise", "nan"}
        As :func:`haspi_v2`; with ``"nan"`` an ear below threshold is ignored by the max (both
        NaN -> NaN).
    processed_cache : ProcessedPathCache, optional
        As :func:`haspi_v2` (``clarity-se evaluate`` passes one to HASPI and then to HASQI).

    Returns
    -------
    HaspiBetterEarResult
        ``score [batch]`` and the per-ear :class:`HaspiResult`.

    Raises
    ------
    ValueError
        As :func:`haspi_v2`, naming the ``_left`` / ``_right`` argument; no or conflicting
        audiogram sources.

    References
    ----------
    pyclarity 0.9.0 ``clarity.evaluator.haspi.haspi_v2_be``; Kates & Arehart (2021).
    """
    refs = {}
    for nm, x in (
        ("reference_left", reference_left),
        ("reference_right", reference_right),
        ("processed_left", processed_left),
        ("processed_right", processed_right),
    ):
        refs[nm] = as_signal(x, nm)
    batch = refs["reference_left"].shape[0]
    for nm, x in refs.items():
        if x.shape[0] != batch:
            raise ValueError(
                f"haspi_v2_better_ear: {nm} has {x.shape[0]} batch items, reference_left {batch}"
            )
    sources = [
        listener is not None,
        audiogram_left is not None or audiogram_right is not None,
        hearing_loss_left_db_hl is not None or hearing_loss_right_db_hl is not None,
    ]
    if sum(sources) != 1:
        raise ValueError(
            "haspi_v2_better_ear: give exactly one of listener, audiogram_left/right, "
            "hearing_loss_left/right_db_hl"
        )
    if listener is not None:
        audiogram_left, audiogram_right = listener_audiograms(
            listener, batch, "haspi_v2_better_ear"
        )
    hl_left = hearing_loss(
        audiogram_left, hearing_loss_left_db_hl, batch, "haspi_v2_better_ear (left)"
    )
    hl_right = hearing_loss(
        audiogram_right, hearing_loss_right_db_hl, batch, "haspi_v2_better_ear (right)"
    )
    rng = check_rng(rng, batch, "haspi_v2_better_ear")
    if rng.mode == "fast" and _same_layout(refs.values()):
        # fast streams need not replay pyclarity's draw order (left ear, then right ear): both
        # ears run as one batch of 2 * batch items (fewer calls; on CUDA, fewer launches)
        try:
            both = haspi_v2(
                reference=torch.cat([refs["reference_left"], refs["reference_right"]]),
                processed=torch.cat([refs["processed_left"], refs["processed_right"]]),
                hearing_loss_db_hl=np.concatenate([hl_left, hl_right]),
                sample_rate=sample_rate,
                level_db_spl=level_db_spl,
                rng=rng.subset(list(range(batch)) * 2),
                below_threshold=below_threshold,
                processed_cache=processed_cache,
            )
        except ValueError:
            pass  # redone ear by ear below, for an error message that names the ear
        else:
            left = HaspiResult(*(t[:batch] for t in both))
            right = HaspiResult(*(t[batch:] for t in both))
            return HaspiBetterEarResult(torch.fmax(left.score, right.score), left, right)
    common = dict(
        sample_rate=sample_rate, level_db_spl=level_db_spl, rng=rng,
        below_threshold=below_threshold, processed_cache=processed_cache,
    )
    left = haspi_v2(
        reference=refs["reference_left"],
        processed=refs["processed_left"],
        hearing_loss_db_hl=hl_left,
        **common,
    )
    right = haspi_v2(
        reference=refs["reference_right"],
        processed=refs["processed_right"],
        hearing_loss_db_hl=hl_right,
        **common,
    )
    score = torch.fmax(left.score, right.score)
    return HaspiBetterEarResult(score, left, right)
