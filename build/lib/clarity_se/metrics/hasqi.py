"""HASQI v2 (Hearing-Aid Speech Quality Index, version 2), batched in PyTorch.

:func:`hasqi_v2` runs the Kates (2013) cochlear ear model (:func:`clarity_se.ear_model.ear_model`,
quality mode: the reference sees the same hearing loss as the processed signal) and the quality
back-end of :mod:`clarity_se.metrics.quality`; :func:`hasqi_v2_better_ear` takes the better of
the two ears, as the Clarity CEC2 / ICASSP 2023 evaluation does.  Scores equal pyclarity
0.9.0's ``clarity.evaluator.hasqi`` (``compat``: float64 and ``PairRandom.compat`` streams seeded
as the recipe does).

References
----------
.. [1] Kates JM, Arehart KH (2014) The Hearing-Aid Speech Quality Index (HASQI) Version 2.
       J Audio Eng Soc 62(3):99-117.
.. [2] Kates JM (2013) An auditory model for intelligibility and quality predictions.
       Proc Meetings Acoust 19:050184.
.. [3] pyclarity 0.9.0 ``clarity/evaluator/hasqi/hasqi.py`` (``hasqi_v2``,
       ``hasqi_v2_better_ear``).
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
from clarity_se.metrics.inputs import (
    as_signal,
    check_not_silent,
    check_rng,
    hearing_loss,
    listener_audiograms,
)
from clarity_se.metrics.quality import (
    ave_covary2,
    bm_covary,
    env_smooth,
    mel_cepstrum_correlation,
    segment_counts,
    spectrum_diff,
)
from clarity_se.random import PairRandom

logger = logging.getLogger(__name__)

__all__ = [
    "HasqiResult",
    "HasqiBetterEarResult",
    "hasqi_v2",
    "hasqi_v2_better_ear",
]

#: The 6 audiometric frequencies (Hz) of the HASPI/HASQI ear model.

#: ave_covary2 threshold in dB SL; pyclarity hard-codes it whatever ``silence_threshold`` is.
_TILE_THRESHOLD_DB = 2.5


class HasqiResult(NamedTuple):
    """HASQI v2 for a batch of pairs.

    Attributes
    ----------
    score : Tensor [shape=(batch,)]
        Combined quality, ``nonlinear * linear``, in [0, 1] (1 = no degradation).
    nonlinear : Tensor [shape=(batch,)]
        ``cepstral_correlation**2 * bm_sync5`` (envelope and temporal fine structure).
    linear : Tensor [shape=(batch,)]
        ``0.579 * d_loud + 0.421 * d_slope`` (long-term spectrum and slope).
    raw : Tensor [shape=(batch, 4)]
        ``[cepstral correlation, BM vibration sync (BMsync5), spectral shape (d_loud),
        spectral slope (d_slope)]``, as pyclarity's ``raw`` list.
    """

    score: Tensor
    nonlinear: Tensor
    linear: Tensor
    raw: Tensor


class HasqiBetterEarResult(NamedTuple):
    """Better-ear HASQI v2.

    Attributes
    ----------
    score : Tensor [shape=(batch,)]
        ``max(left.score, right.score)`` (Python ``max`` semantics: a NaN left score wins).
    left, right : HasqiResult
        Per-ear results.
    """

    score: Tensor
    left: HasqiResult
    right: HasqiResult


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------


#: taps of the NAL-R equaliser the ear model applies to the reference for HASQI (itype 1)
EAR_MODEL_NALR_NFIR = 140


def ear_model_nalr_fir(hearing_loss_db_hl: np.ndarray) -> Tensor:
    """NAL-R FIR of each item's loss, as pyclarity's ``eb.ear_model`` builds it for itype 1.

    Parameters
    ----------
    hearing_loss_db_hl : np.ndarray [shape=(batch, 6)], dB HL
        At :data:`~clarity_se.data.audiogram.AUDIOMETRIC_FREQUENCIES_HZ`.

    Returns
    -------
    Tensor [shape=(batch, 141)], float64
        140-tap NAL-R FIR designed at 24 kHz
        (:func:`clarity_se.amplification.nalr.design_nalr_fir`).

    Notes
    -----
    One design per item: a batched design multiplies matrices of batch-dependent shape, whose
    BLAS rounding would make an item's result depend on its batch.
    """
    from clarity_se.amplification.nalr import design_nalr_fir
    from clarity_se.data.audiogram import AUDIOMETRIC_FREQUENCIES_HZ

    freqs = np.asarray(AUDIOMETRIC_FREQUENCIES_HZ, dtype=np.float64)
    firs = [
        design_nalr_fir([[Audiogram(freqs, np.asarray(row, dtype=np.float64))]],
                        nfir=EAR_MODEL_NALR_NFIR, sample_rate=24000.0)[0, 0]
        for row in np.asarray(hearing_loss_db_hl)
    ]
    return torch.stack(firs)


# --------------------------------------------------------------------------------------------
# HASQI v2
# --------------------------------------------------------------------------------------------


def hasqi_v2(
    *,
    reference: Tensor | np.ndarray,
    processed: Tensor | np.ndarray,
    sample_rate: int,
    audiogram: Audiogram | Sequence[Audiogram] | None = None,
    hearing_loss_db_hl: Tensor | np.ndarray | None = None,
    level_db_spl: float = 65.0,
    equalisation: int = 1,
    silence_threshold: float = 2.5,
    add_noise: float = 0.0,
    segment_covariance: int = 16,
    rng: PairRandom | None = None,
    processed_sample_rate: int | None = None,
    nalr_fir: Tensor | None = None,
    processed_cache: ProcessedPathCache | None = None,
) -> HasqiResult:
    """HASQI v2 quality of processed speech relative to a clean reference.

    Parameters
    ----------
    reference : Tensor or ndarray [shape=(batch, time) or (time,)], float, RMS 1 == level_db_spl
        Clean reference speech, without NAL-R when ``equalisation == 1``.
    processed : Tensor or ndarray [shape=(batch, time) or (time,)], float
        Processed signal (noise, distortion, hearing-aid gain), same scale convention.
    sample_rate : int
        Sampling rate of ``reference`` in Hz (and of ``processed`` unless
        ``processed_sample_rate`` is given).
    audiogram : Audiogram or sequence of Audiogram, optional
        One per item; resampled to 250-6000 Hz as pyclarity does.  Exclusive with
        ``hearing_loss_db_hl``.
    hearing_loss_db_hl : Tensor or ndarray [shape=(batch, 6) or (6,)], dB HL, optional
        Loss at 250, 500, 1000, 2000, 4000, 6000 Hz.
    level_db_spl : float
        Level in dB SPL of a signal with RMS 1 (65 dB SPL, the HASQI convention; the Clarity
        recipe's better-ear call uses 100).
    equalisation : int
        1: the ear model applies NAL-R to the reference (140-tap FIR at 24 kHz; itype 1);
        2: the reference already includes NAL-R (itype 2).
    silence_threshold : float
        dB threshold on the band-averaged reference envelope for the cepstral correlation
        (2.5).  The BM-covariance average always uses 2.5 dB (pyclarity quirk).
    add_noise : float
        Gaussian noise (dB) added to the smoothed envelopes before the cepstral correlation (0).
    segment_covariance : int
        Segment length in ms for envelope smoothing and BM covariance (16 ms, 125 Hz).
    rng : PairRandom, optional
        One stream per item (``len(rng) == batch``).  Draw order per item: ear-model threshold
        noise (reference, processed), then cepstral-correlation noise (reference, processed),
        as pyclarity, so ``PairRandom.compat(seeds)`` replays the official global-numpy draws.
        Default: ``PairRandom.compat([0] * batch)`` (pyclarity after ``np.random.seed(0)``).
    processed_sample_rate : int, optional
        Sampling rate of ``processed`` in Hz if it differs from ``sample_rate``.
    nalr_fir : Tensor [shape=(batch, 141)], optional
        ``equalisation == 1`` only: the 140-order NAL-R FIR at 24 kHz for each item, passed to
        the ear model (so that the evaluator need not touch hearing-aid code).  When None the
        ear model designs it from the hearing loss as pyclarity's ``eb.ear_model`` does.
    processed_cache : ProcessedPathCache, optional
        Reuse the processed signal's ear-model path kept by an earlier HASPI call on the same
        signals (:mod:`clarity_se.ear_model.shared`); scores are bit-identical with or without.

    Returns
    -------
    HasqiResult
        ``score, nonlinear, linear`` ``[batch]`` and ``raw`` ``[batch, 4]``.  Items whose
        reference is silent (at most one envelope segment above threshold) get a cepstral
        correlation and BM sync of 0, hence ``score == 0``, as pyclarity (warning logged).

    Raises
    ------
    ValueError
        If a signal or the hearing loss contains NaN/Inf (the message names the argument), if
        shapes disagree, if both or neither of ``audiogram``/``hearing_loss_db_hl`` are given,
        if ``equalisation`` is not 1 or 2, or if the signals are shorter than one segment.

    Notes
    -----
    Runs on CPU and CUDA (device and dtype of ``reference``; ndarray inputs become float64
    CPU tensors); float64 reproduces pyclarity to ~1e-10, float32 is allowed.  Not meant to be
    differentiated (segment selection and alignment are discrete).  Items in a batch must have
    equal lengths.

    Reproduces pyclarity quirks: the tile threshold in ``ave_covary2`` is fixed at 2.5 dB;
    ``d_loud = clip(1 - std_loud / 2.5, 0, 1)`` and ``d_slope = clip(1 - std_slope, 0, 1)``
    with the ``nchan``-scaled biased standard deviations of ``spectrum_diff``; the BM term is
    the IHC-synchrony-weighted covariance with a 5th-order, 3.5 kHz low-pass (index 4); the
    random draws of the cepstral correlation are made even when ``add_noise == 0``.

    References
    ----------
    Kates & Arehart (2014) J Audio Eng Soc 62(3):99-117, Sec. 2-3 (Eq. for Q_nonlin, Q_lin,
    Q = Q_nonlin Q_lin); pyclarity 0.9.0 ``clarity.evaluator.hasqi.hasqi_v2``.

    Examples
    --------
    >>> import torch
    >>> from clarity_se.random import PairRandom
    >>> g = torch.Generator().manual_seed(0)
    >>> x = 0.05 * torch.randn(2, 8000, dtype=torch.float64, generator=g)
    >>> r = hasqi_v2(reference=x, processed=x, sample_rate=16000,
    ...              hearing_loss_db_hl=torch.zeros(2, 6), rng=PairRandom.compat([1, 2]))
    >>> r.score.shape
    torch.Size([2])
    """
    ref = as_signal(reference, "reference")
    proc = as_signal(processed, "processed", dtype=ref.dtype, device=ref.device)
    if ref.shape[0] != proc.shape[0]:
        raise ValueError(
            f"reference has {ref.shape[0]} items but processed has {proc.shape[0]}")
    check_not_silent("reference", ref, "HASQI")
    check_not_silent("processed", proc, "HASQI")
    if equalisation not in (1, 2):
        raise ValueError(f"equalisation must be 1 (add NAL-R) or 2 (already added), got "
                         f"{equalisation!r}")
    for nm, v in (("sample_rate", sample_rate), ("level_db_spl", level_db_spl),
                  ("silence_threshold", silence_threshold), ("add_noise", add_noise),
                  ("segment_covariance", segment_covariance)):
        if not np.isfinite(float(v)):
            raise ValueError(f"{nm} must be finite, got {v!r}")
    if nalr_fir is not None and equalisation != 1:
        raise ValueError("nalr_fir is only used with equalisation=1")
    if sample_rate <= 0 or (processed_sample_rate is not None and processed_sample_rate <= 0):
        raise ValueError("sample_rate must be positive")
    batch = ref.shape[0]
    hl_np = hearing_loss(audiogram, hearing_loss_db_hl, batch, "hasqi_v2")
    hl = torch.as_tensor(hl_np, dtype=ref.dtype, device=ref.device)
    rng = check_rng(rng, batch, "hasqi_v2")
    if equalisation == 1 and nalr_fir is None:
        nalr_fir = ear_model_nalr_fir(hl_np)

    from clarity_se.ear_model import ear_model  # local: the ear model imports are heavy

    ear = ear_model(
        ref, sample_rate, proc, sample_rate if processed_sample_rate is None
        else processed_sample_rate, hl,
        itype=int(equalisation), level_db_spl=float(level_db_spl), rng=rng,
        nalr_fir=nalr_fir, processed_cache=processed_cache,
    )
    fs = float(ear.freq_sample)
    return _hasqi_backend(ear, fs, silence_threshold=silence_threshold, add_noise=add_noise,
                          segment_covariance=segment_covariance, rng=rng)


def _hasqi_backend(ear, fs: float, *, silence_threshold: float, add_noise: float,
                   segment_covariance: float, rng: PairRandom) -> HasqiResult:
    """HASQI v2 from the 7 ear-model outputs (the part after ``eb.ear_model``).

    Honours ``ear.lengths`` (per-item valid samples after the ear model's alignment/pruning).
    """
    lengths = getattr(ear, "lengths", None)
    nseg = None
    if lengths is not None:
        n_time = ear.reference_db.shape[-1]
        nseg = segment_counts(lengths, n_time, segment_covariance, fs, name="ear model output",
                              device=ear.reference_db.device)
    ref_smooth = env_smooth(ear.reference_db, segment_covariance, fs, lengths)
    proc_smooth = env_smooth(ear.processed_db, segment_covariance, fs, lengths)
    cep = mel_cepstrum_correlation(ref_smooth, proc_smooth, silence_threshold, add_noise, rng,
                                   lengths=nseg)
    spec = spectrum_diff(ear.reference_sl, ear.processed_sl)
    bm = bm_covary(ear.reference_basilar_membrane, ear.processed_basilar_membrane,
                   segment_covariance, fs, lengths)
    sync = ave_covary2(bm.signal_cross_covariance, bm.reference_mean_square,
                       _TILE_THRESHOLD_DB, lengths=nseg).ihc_sync_covariance
    bm_sync5 = sync[:, 4]
    d_loud = torch.clamp(1.0 - spec.dloud[:, 1] / 2.5, 0.0, 1.0)
    d_slope = torch.clamp(1.0 - spec.dslope[:, 1], 0.0, 1.0)
    nonlinear = cep.average**2 * bm_sync5
    linear = 0.579 * d_loud + 0.421 * d_slope
    raw = torch.stack([cep.average, bm_sync5, d_loud, d_slope], dim=-1)
    return HasqiResult(nonlinear * linear, nonlinear, linear, raw)


def hasqi_v2_better_ear(
    *,
    reference_left: Tensor | np.ndarray,
    reference_right: Tensor | np.ndarray,
    processed_left: Tensor | np.ndarray,
    processed_right: Tensor | np.ndarray,
    sample_rate: int,
    listener: Listener | Sequence[Listener] | None = None,
    audiogram_left: Audiogram | Sequence[Audiogram] | None = None,
    audiogram_right: Audiogram | Sequence[Audiogram] | None = None,
    hearing_loss_left_db_hl: Tensor | np.ndarray | None = None,
    hearing_loss_right_db_hl: Tensor | np.ndarray | None = None,
    level_db_spl: float = 100.0,
    rng: PairRandom | None = None,
    processed_cache: ProcessedPathCache | None = None,
) -> HasqiBetterEarResult:
    """Better-ear HASQI v2: HASQI of each ear, NAL-R added by the model, the larger score.

    Parameters
    ----------
    reference_left, reference_right : Tensor or ndarray [shape=(batch, time) or (time,)]
        Reference signals per ear, RMS 1 == ``level_db_spl`` dB SPL.
    processed_left, processed_right : Tensor or ndarray [shape=(batch, time) or (time,)]
        Processed (hearing-aid output) signals per ear.
    sample_rate : int
        Sampling rate of all four signals in Hz.
    listener : Listener or sequence of Listener, optional
        One per item; gives both audiograms.
    audiogram_left, audiogram_right : Audiogram or sequence of Audiogram, optional
        Instead of ``listener``.
    hearing_loss_left_db_hl, hearing_loss_right_db_hl : Tensor or ndarray [shape=(batch, 6)]
        Instead of ``listener``: dB HL at 250, 500, 1000, 2000, 4000, 6000 Hz.
    level_db_spl : float
        dB SPL of RMS 1 (100 dB SPL, the Clarity recipe's value).
    rng : PairRandom, optional
        One stream per item; the left ear draws everything before the right ear (pyclarity
        order), so a stream continued after ``haspi_v2_better_ear`` replays the recipe.
        Default ``PairRandom.compat([0] * batch)``.  With ``PairRandom.fast`` streams (no draw
        order to replay), audiograms and equal shapes, both ears are scored as one batch of
        ``2 * batch`` items (each item's stream serves its left then its right ear).
    processed_cache : ProcessedPathCache, optional
        As :func:`hasqi_v2`.

    Returns
    -------
    HasqiBetterEarResult
        ``score [batch]`` plus the per-ear :class:`HasqiResult`.

    Raises
    ------
    ValueError
        As :func:`hasqi_v2`; also if not exactly one way of giving the hearing loss is used.

    Notes
    -----
    ``equalisation=1`` and defaults otherwise, as pyclarity; ``score`` follows Python's
    ``max(left, right)`` (``right`` if ``right > left`` else ``left``).

    References
    ----------
    pyclarity 0.9.0 ``clarity.evaluator.hasqi.hasqi_v2_better_ear``; Kates & Arehart (2014).
    """
    given = [listener is not None,
             audiogram_left is not None or audiogram_right is not None,
             hearing_loss_left_db_hl is not None or hearing_loss_right_db_hl is not None]
    if sum(given) != 1:
        raise ValueError("give exactly one of listener, audiogram_left/right, "
                         "hearing_loss_left/right_db_hl")
    ref_l = as_signal(reference_left, "reference_left")
    ref_r = as_signal(reference_right, "reference_right", dtype=ref_l.dtype, device=ref_l.device)
    proc_l = as_signal(processed_left, "processed_left", dtype=ref_l.dtype, device=ref_l.device)
    proc_r = as_signal(processed_right, "processed_right", dtype=ref_l.dtype, device=ref_l.device)
    batch = ref_l.shape[0]
    if listener is not None:
        audiogram_left, audiogram_right = listener_audiograms(
            listener, batch, "hasqi_v2_better_ear"
        )
    for nm, t in (("reference_right", ref_r), ("processed_left", proc_l),
                  ("processed_right", proc_r)):
        if t.shape[0] != batch:
            raise ValueError(f"{nm} has {t.shape[0]} items but reference_left has {batch}")
    for nm, t in (("reference_left", ref_l), ("reference_right", ref_r),
                  ("processed_left", proc_l), ("processed_right", proc_r)):
        check_not_silent(nm, t, "HASQI")
    rng = check_rng(rng, batch, "hasqi_v2_better_ear")
    if (rng.mode == "fast" and audiogram_left is not None and audiogram_right is not None
            and ref_r.shape == ref_l.shape and proc_r.shape == proc_l.shape == ref_l.shape):
        # fast streams need not replay pyclarity's draw order (left ear, then right ear): both
        # ears run as one batch of 2 * batch items (fewer calls; on CUDA, fewer launches)
        ags = [[a] * batch if isinstance(a, Audiogram) else list(a)
               for a in (audiogram_left, audiogram_right)]
        try:
            both = hasqi_v2(reference=torch.cat([ref_l, ref_r]),
                            processed=torch.cat([proc_l, proc_r]), audiogram=ags[0] + ags[1],
                            sample_rate=sample_rate, level_db_spl=level_db_spl, equalisation=1,
                            rng=rng.subset(list(range(batch)) * 2),
                            processed_cache=processed_cache)
        except ValueError:
            pass  # redone ear by ear below, for an error message that names the ear
        else:
            left = HasqiResult(*(t[:batch] for t in both))
            right = HasqiResult(*(t[batch:] for t in both))
            score = torch.where(right.score > left.score, right.score, left.score)
            return HasqiBetterEarResult(score, left, right)
    common = {"sample_rate": sample_rate, "level_db_spl": level_db_spl, "equalisation": 1,
              "rng": rng, "processed_cache": processed_cache}
    try:
        left = hasqi_v2(reference=ref_l, processed=proc_l, audiogram=audiogram_left,
                        hearing_loss_db_hl=hearing_loss_left_db_hl, **common)
    except ValueError as err:
        raise ValueError(f"left ear: {err}") from None
    try:
        right = hasqi_v2(reference=ref_r, processed=proc_r, audiogram=audiogram_right,
                         hearing_loss_db_hl=hearing_loss_right_db_hl, **common)
    except ValueError as err:
        raise ValueError(f"right ear: {err}") from None
    score = torch.where(right.score > left.score, right.score, left.score)
    return HasqiBetterEarResult(score, left, right)
