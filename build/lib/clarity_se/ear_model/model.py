"""The Kates (2013) cochlear ear model of HASPI v2 / HASQI v2, batched: :func:`ear_model`.

Stage order (one module per stage): resampling to 24 kHz (:mod:`.resample`), bulk alignment
(:mod:`.align`), optional NAL-R equalisation of the reference (itype 1), middle ear
(:mod:`.middle_ear`), control and main gammatone filterbanks with level-dependent bandwidth
(:mod:`.gammatone`), OHC compression (:mod:`.compression`), envelope alignment and conversion to
dB SL (:mod:`.envelope`), IHC adaptation (:mod:`.ihc`), threshold noise (:mod:`.noise`) and
inter-band group-delay compensation (:mod:`.group_delay`).

Items of a batch may have different lengths: give ``reference_lengths`` / ``processed_lengths``
for zero-padded inputs; after the bulk alignment each item keeps its own valid length
(``EarModelOutput.lengths``) and every stage honours it, so a batched call equals one-at-a-time
calls (outputs are zero beyond each item's length).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from clarity_se.dsp.iir import lfilter
from clarity_se.dsp.resample import resample_24khz, resampled_length
from clarity_se.ear_model.align import input_align
from clarity_se.ear_model.compression import env_compress_basilar_membrane
from clarity_se.ear_model.envelope import (
    convert_rms_to_sl,
    envelope_align,
    envelope_sl,
    shift_rows,
    valid_mask,
)
from clarity_se.ear_model.gammatone import (
    bandwidth_adjust,
    gammatone_basilar_membrane,
    gammatone_filterbank,
)
from clarity_se.ear_model.group_delay import group_delay_correction
from clarity_se.ear_model.ihc import inner_hair_cell_adaptation
from clarity_se.ear_model.loss import center_frequency, loss_parameters
from clarity_se.ear_model.middle_ear import middle_ear
from clarity_se.ear_model.noise import basilar_membrane_add_noise
from clarity_se.ear_model.shared import ProcessedPath, ProcessedPathCache, ReferencePath
from clarity_se.ear_model.vector_ir import LANES
from clarity_se.random import PairRandom

logger = logging.getLogger(__name__)

__all__ = ["EarModelOutput", "ear_model", "NALR_NFIR"]

#: Order of the NAL-R FIR that ``ear_model`` applies to the reference for itype 1 (24 kHz).
NALR_NFIR = 140

_IHC_THRESHOLD_DB = -10.0  # additive noise level, dB re: auditory threshold
_IHC_OVERSHOOT = 2.0  # IHC adaptation overshoot (delta)


class _EarModelFields(NamedTuple):
    reference_db: Tensor
    reference_basilar_membrane: Tensor
    processed_db: Tensor
    processed_basilar_membrane: Tensor
    reference_sl: Tensor
    processed_sl: Tensor
    freq_sample: float


class EarModelOutput(_EarModelFields):
    """Outputs of :func:`ear_model`: the 7 values of ``eb.ear_model``, in its order.

    Unpacks as ``reference_db, reference_basilar_membrane, processed_db,
    processed_basilar_membrane, reference_sl, processed_sl, freq_sample``; the valid length of
    each item is the extra attribute ``lengths`` (not part of the tuple).

    Attributes
    ----------
    reference_db, processed_db : Tensor [shape=(batch, nchan, time)], dB SL
        Envelopes after OHC compression, IHC attenuation and adaptation, group-delay compensated.
    reference_basilar_membrane, processed_basilar_membrane : Tensor [shape=(batch, nchan, time)]
        BM motion with dB SL envelope, adaptation gain and threshold noise, delay compensated
        (None when ``ear_model`` was called with ``basilar_membrane=False``).
    reference_sl, processed_sl : Tensor [shape=(batch, nchan)], dB SL
        Long-term average spectra (compressed RMS of each band).
    freq_sample : float
        Sampling rate of the outputs, Hz (24000).
    lengths : Tensor [shape=(batch,)], int64
        Valid samples of each item; the time axis is zero beyond it.
    """

    lengths: Tensor

    def __new__(cls, *fields, lengths: Tensor):
        self = super().__new__(cls, *fields)
        self.lengths = lengths
        return self

    def __getnewargs_ex__(self):  # pickling keeps the lengths
        return tuple(self), {"lengths": self.lengths}

    def _replace(self, **kwargs):  # noqa: D401 - NamedTuple API
        lengths = kwargs.pop("lengths", self.lengths)
        values = [kwargs.pop(name, getattr(self, name)) for name in self._fields]
        if kwargs:
            raise ValueError(f"EarModelOutput has no fields {sorted(kwargs)}")
        return EarModelOutput(*values, lengths=lengths)


def _check_signal(x, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise ValueError(f"ear_model: {name} must be a float tensor [batch, time]")
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[-1] < 2:
        raise ValueError(f"ear_model: {name} must be [batch, time], got {tuple(x.shape)}")
    if not bool(torch.isfinite(x.sum())):  # one reduction: NaN/Inf anywhere propagate
        raise ValueError(f"ear_model: {name} contains NaN or Inf")
    return x


def _check_lengths(lengths, name: str, batch: int, n_time: int, device) -> Tensor:
    if lengths is None:
        return torch.full((batch,), n_time, dtype=torch.long, device=device)
    lengths = torch.as_tensor(lengths, dtype=torch.long, device=device).reshape(-1)
    if lengths.numel() != batch or bool((lengths < 2).any()) or bool((lengths > n_time).any()):
        raise ValueError(
            f"ear_model: {name} must be {batch} values in [2, {n_time}], got {lengths.tolist()}"
        )
    return lengths


def _masked_rms(x: Tensor, mask: Tensor | None, lengths: Tensor) -> Tensor:
    """RMS ``sqrt(mean(x**2))`` over the valid samples: ``[batch, chan, time]`` -> [batch, chan]."""
    if mask is not None:
        x = x.masked_fill(~mask, 0.0)
    # one fused pass (no x**2 temporary); agrees with np.sqrt(np.mean(x**2)) to rounding
    sumsq = torch.linalg.vector_norm(x, dim=-1).square()
    return torch.sqrt(sumsq / lengths.to(x.dtype)[:, None])


def _band_chunk(band_chunk, batch: int, n_time: int, nchan: int, device,
                itemsize: int = 8) -> int:  # fmt: skip
    if band_chunk is not None:
        if not isinstance(band_chunk, int) or band_chunk < 1:
            raise ValueError(f"ear_model: band_chunk must be a positive int, got {band_chunk!r}")
        return min(band_chunk, nchan)
    if torch.device(device).type != "cpu":
        return nchan
    # ~8 MB arrays, in whole groups of the vector kernels' 8 lanes where that many fit
    # (float32 5 s items: 16 bands, ~6 % faster than 8 in an interleaved A/B; float64: 8)
    chunk = max(1, min(nchan, (8 << 20) // (itemsize * batch * max(n_time, 1))))
    return chunk - chunk % LANES if chunk >= LANES else chunk


def _apply_nalr(reference: Tensor, fir: Tensor, lengths: Tensor) -> Tensor:
    """``np.convolve(x, fir)[nfir : nfir + nsamp]`` per item (zero-padded items stay exact).

    Computed as an FIR ``lfilter`` of each row extended by ``nfir`` zeros, so every item is
    summed in the same order whatever the batch and padding (a grouped ``conv1d`` picks
    batch-dependent algorithms, and the gammatone recursion amplifies 1-ulp differences).
    """
    batch, n_time = reference.shape
    nfir = fir.shape[-1] - 1
    x = torch.nn.functional.pad(reference, (0, nfir))  # future samples up to n + nfir
    one = torch.ones((batch, 1), dtype=fir.dtype, device=fir.device)
    y = lfilter(fir, one, x)[:, nfir : nfir + n_time]
    mask = torch.arange(n_time, device=reference.device)[None, :] < lengths[:, None]
    return y.masked_fill(~mask, 0.0)


def ear_model(
    reference: Tensor,
    reference_sample_rate: float,
    processed: Tensor,
    processed_sample_rate: float,
    hearing_loss_db_hl: Tensor,
    *,
    itype: int,
    level_db_spl: float,
    rng: PairRandom,
    nchan: int = 32,
    m_delay: int = 1,
    shift: float | None = None,
    reference_lengths: Tensor | None = None,
    processed_lengths: Tensor | None = None,
    nalr_fir: Tensor | None = None,
    band_chunk: int | None = None,
    per_item: bool | None = None,
    basilar_membrane: bool = True,
    fast_align: bool | None = None,
    processed_cache: ProcessedPathCache | None = None,
) -> EarModelOutput:
    """Cochlear model: middle ear, gammatone filterbank, OHC compression, IHC attenuation.

    Batched port of pyclarity's ``eb.ear_model``.  The reference is at the reference intensity
    (e.g. 65 dB SPL) with no other processing; the processed signal is the hearing-aid output,
    assumed to have the same or greater group delay.

    Parameters
    ----------
    reference : Tensor [shape=(batch, time)], float, RMS 1 == level_db_spl
        Reference signals (65 dB SPL for itype 0/1; 65 dB SPL plus NAL-R gain for itype 2).
        A numpy array is accepted (converted to float64 CPU).
    reference_sample_rate : float
        Sampling rate of ``reference`` in Hz (one rate for the batch).
    processed : Tensor [shape=(batch, time')], float, same scale
        Processed signals (hearing-aid output, including its gain).
    processed_sample_rate : float
        Sampling rate of ``processed`` in Hz.
    hearing_loss_db_hl : Tensor [shape=(batch, 6)] or [6], dB HL
        Hearing loss at 250, 500, 1000, 2000, 4000, 6000 Hz.
    itype : {0, 1, 2}
        0: intelligibility (reference through a normal ear); 1: quality, NAL-R is applied to the
        reference here; 2: quality, the reference already contains NAL-R.
    level_db_spl : float
        Level in dB SPL of a signal with RMS 1 (65, the HASPI/HASQI convention).
    rng : PairRandom
        One random stream per item for the threshold noise (reference draw, then processed).
    nchan : int
        Number of auditory bands (32).
    m_delay : int
        Compensate the gammatone group delay when > 0 (1).
    shift : float, optional
        Basal shift of the control-path filterbank as a fraction of BM length (None: no shift).
    reference_lengths, processed_lengths : Tensor [shape=(batch,)], int, optional
        Valid samples per item of zero-padded inputs (default: the full width).
    nalr_fir : Tensor [shape=(batch, 141)] or [141], float
        itype 1 only, and then required: the NAL-R FIR the model applies to the reference
        (nfir 140, designed at 24 kHz for each item's loss by the caller, e.g.
        :func:`clarity_se.metrics.hasqi.ear_model_nalr_fir`; the ear model does not depend on
        the hearing-aid code).
    band_chunk : int, optional
        Bands processed together from the gammatone filters to the IHC stage (results do not
        depend on it).  Default: all bands on CUDA; on CPU enough bands for ~8 MB arrays (a
        multiple of 8 where at least 8 fit: the vector kernels' lanes), which keeps the working
        set in cache and below glibc's 32 MB ``mmap`` threshold (larger arrays are page-faulted
        afresh at every allocation, several times slower).
    per_item : bool, optional
        Run the cochlear stages (gammatone to group delay) one item at a time at the item's own
        length (default on CPU: a batched call is then bit-identical to one-at-a-time calls and
        the arrays stay small) instead of on the whole zero-padded batch with masks (default on
        other devices; equal to the per-item path to rounding).
    basilar_membrane : bool
        Compute the BM outputs (True).  False skips the BM half of envelope alignment, dB SL
        conversion, IHC adaptation, threshold noise and group-delay shift, for callers that
        discard it (HASPI uses only the envelopes and spectra), and returns None for
        ``reference_basilar_membrane`` and ``processed_basilar_membrane``.  The threshold noise
        is skipped so that compat streams advance exactly as with True (fast streams are not
        advanced), and every other output is bit-identical.
    fast_align : bool, optional
        Choose the envelope-alignment lags from a float32 cross-correlation alone (about twice
        as fast as float64; a lag may differ where two lags correlate within ~1e-6 of the
        peak).  False: the float32 search only nominates the lags near its peak, which are
        then compared exactly in float64 (``verify_lags`` of
        :func:`~clarity_se.ear_model.envelope.envelope_align`: the reference's lags up to
        rounding-level ties, at about half the cost of a float64 FFT search).  Default: True
        for ``fast`` random streams, False for ``compat`` (which must reproduce the reference).
    processed_cache : ProcessedPathCache, optional
        Share the processed path (middle-ear output to OHC compression) with other calls on
        the same processed signals, audiograms and level, e.g. HASPI then HASQI
        (:mod:`clarity_se.ear_model.shared`): an item found in it skips its processed control
        and main filter banks and compression; an item not found is offered to it.  Without
        the BM path (``basilar_membrane=False``, HASPI) it also keeps each distinct reference
        path for the later items with the same reference (the listeners of a scene).  Outputs
        are bit-identical with or without it.  Used by the per-item (CPU) path only.

    Returns
    -------
    EarModelOutput
        The 7 fields of ``eb.ear_model`` (tensors batch-first, see :class:`EarModelOutput`) and
        the attribute ``lengths`` [batch].  Device and dtype of ``reference``.

    Raises
    ------
    ValueError
        If shapes, lengths, ``itype``, ``nchan``, ``rng`` or ``nalr_fir`` are invalid, or a
        reference item is silent.

    Notes
    -----
    Runs on CPU and CUDA (the recursive filters use numba on CPU and torch scans on CUDA); not
    differentiable.  Memory: the 4 outputs (``batch x nchan x time``) plus, on CPU, a per-item
    working set of about 12 arrays of ``band_chunk x time``; on CUDA about 14 arrays of
    ``batch x nchan x time`` (8 bytes per value in float64).
    Reproduces pyclarity quirks: 44.1 kHz is resampled as 44 kHz (:mod:`.resample`); the
    reference is equalised with NAL-R *after* resampling and alignment and cut to
    ``[140, 140 + nsamp)`` of the full convolution (a 70-sample advance relative to the
    processed signal); group delays of both signals use the *reference* bandwidths; the
    threshold noise is drawn even though it is tiny (so the random stream advances by
    ``2 x nchan x nsamp`` draws per item, reference first).

    References
    ----------
    Kates (2013), "An auditory model for intelligibility and quality predictions", POMA 19,
    050184; Kates & Arehart (2014, 2021) HASQI v2 / HASPI v2.  Reproduces pyclarity 0.9.0
    ``clarity.evaluator.haspi.eb.ear_model``.

    Examples
    --------
    >>> import torch
    >>> from clarity_se.ear_model import ear_model
    >>> from clarity_se.random import PairRandom
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(2, 2400, dtype=torch.float64, generator=g)  # 0.1 s at 24 kHz
    >>> out = ear_model(x, 24000, 0.5 * x, 24000, torch.zeros(2, 6), itype=0,
    ...                 level_db_spl=65.0, rng=PairRandom.compat([1, 2]))
    >>> tuple(out.reference_db.shape), out.freq_sample, out.lengths.tolist()
    ((2, 32, 2400), 24000.0, [2400, 2400])
    """
    ref = _check_signal(reference, "reference")
    proc = _check_signal(processed, "processed")
    device, dtype = ref.device, ref.dtype
    proc = proc.to(device=device, dtype=dtype)
    batch = ref.shape[0]
    if proc.shape[0] != batch:
        raise ValueError(f"ear_model: {batch} reference items but {proc.shape[0]} processed")
    if itype not in (0, 1, 2):
        raise ValueError(f"ear_model: itype must be 0, 1 or 2, got {itype!r}")
    if not isinstance(nchan, int) or nchan < 2:
        raise ValueError(f"ear_model: nchan must be an int >= 2, got {nchan!r}")
    if len(rng) != batch:
        raise ValueError(f"ear_model: rng has {len(rng)} streams for a batch of {batch}")
    hl = torch.as_tensor(hearing_loss_db_hl, dtype=torch.float64, device=device)
    if hl.ndim == 1:
        hl = hl[None].expand(batch, -1)
    if hl.shape != (batch, 6) or not bool(torch.isfinite(hl).all()):
        raise ValueError(
            f"ear_model: hearing_loss_db_hl must be finite [batch={batch}, 6] dB HL, got "
            f"{tuple(hl.shape)}"
        )
    ref_len = _check_lengths(reference_lengths, "reference_lengths", batch, ref.shape[1], device)
    proc_len = _check_lengths(processed_lengths, "processed_lengths", batch, proc.shape[1], device)

    # Hearing-loss parameters: processed path impaired; reference normal for intelligibility
    cf = center_frequency(nchan, dtype=torch.float64, device=device)
    loss_y = loss_parameters(hl, cf)
    loss_x = loss_parameters(torch.zeros_like(hl) if itype == 0 else hl, cf)
    cf_control = center_frequency(nchan, shift, dtype=torch.float64, device=device)
    bandwidth_1 = loss_parameters(torch.full((1, 6), 100.0, dtype=torch.float64, device=device),
                                  cf_control).bandwidth[0]  # [nchan]

    # Resample to 24 kHz, truncate to the shorter signal, bulk alignment
    ref24, freq_sample = _resample_rows(ref, reference_sample_rate, ref_len, processed_cache)
    proc24, freq_sample = _resample_rows(proc, processed_sample_rate, proc_len, processed_cache)
    ref_len24 = torch.tensor(
        [resampled_length(int(n), reference_sample_rate) for n in ref_len.tolist()],
        dtype=torch.long, device=device,
    )
    proc_len24 = torch.tensor(
        [resampled_length(int(n), processed_sample_rate) for n in proc_len.tolist()],
        dtype=torch.long, device=device,
    )
    common = torch.minimum(ref_len24, proc_len24)
    width = int(common.max())
    keep = torch.arange(width, device=device)[None, :] < common[:, None]
    ref24 = ref24[:, :width].masked_fill(~keep, 0.0)
    proc24 = proc24[:, :width].masked_fill(~keep, 0.0)
    aligned = input_align(ref24, proc24, lengths=common)
    ref24, proc24, lengths = aligned.reference, aligned.processed, aligned.lengths
    n_time = ref24.shape[-1]
    mask = None if bool((lengths == n_time).all()) else valid_mask(lengths, n_time, device)

    if itype == 1:
        if nalr_fir is None:
            raise ValueError("ear_model: itype 1 needs nalr_fir (the NAL-R FIR of each item)")
        fir = torch.as_tensor(nalr_fir, dtype=dtype, device=device)
        if fir.ndim == 1:
            fir = fir[None].expand(batch, -1)
        if fir.shape != (batch, NALR_NFIR + 1):
            raise ValueError(
                f"ear_model: nalr_fir must be [batch={batch}, {NALR_NFIR + 1}], got "
                f"{tuple(fir.shape)}"
            )
        ref24 = _apply_nalr(ref24, fir, lengths)

    # Middle ear
    ref_mid = middle_ear(ref24, freq_sample)
    proc_mid = middle_ear(proc24, freq_sample)

    # Cochlea: on CPU one item at a time at its own length (bit-identical to an unbatched call,
    # small cache-friendly arrays); elsewhere the whole zero-padded batch at once.
    params = dict(
        bandwidth_1=bandwidth_1, cf=cf, cf_control=cf_control, level_db_spl=level_db_spl,
        freq_sample=freq_sample, m_delay=m_delay, band_chunk=band_chunk,
        with_bm=bool(basilar_membrane),
        # float32 lag search; unverified when fast, confirmed in float64 otherwise (compat)
        search_dtype=torch.float32,
        verify_lags=not (rng.mode == "fast" if fast_align is None else fast_align),
    )
    if per_item is None:
        per_item = device.type == "cpu"
    if per_item:
        # every item writes its [:n] span in full; only the padding of shorter items must be 0
        alloc = torch.empty if bool((lengths == n_time).all()) else torch.zeros
        outs = [
            alloc((batch, nchan, n_time), dtype=dtype, device=device)
            if basilar_membrane or k in (0, 2) else None
            for k in range(4)
        ]
        sls = [torch.zeros((batch, nchan), dtype=dtype, device=device) for _ in range(2)]
        for i, n in enumerate(lengths.tolist()):
            # everything the processed path up to the OHC compression depends on, besides the
            # middle-ear output itself (compared exactly by the cache)
            key = (tuple(hl[i].tolist()), float(level_db_spl), float(freq_sample), nchan, shift,
                   str(dtype), str(device), n)  # fmt: skip
            # the reference path's settings: its loss (normal hearing for itype 0) and the rest
            ref_key = ("reference", tuple(0.0 for _ in range(6)) if itype == 0 else key[0],
                       *key[1:], m_delay)  # fmt: skip
            item = _cochlea(
                ref_mid[i : i + 1, :n], proc_mid[i : i + 1, :n], None,
                _select(loss_x, i), _select(loss_y, i), rng.subset([i]),
                out=tuple(None if o is None else o[i : i + 1, :, :n] for o in outs),
                processed_cache=processed_cache, cache_key=key, reference_key=ref_key,
                **params,
            )
            for full, part in zip(sls, item[4:], strict=True):
                full[i] = part[0]
        ref_db, ref_bm, proc_db, proc_bm = outs
        ref_sl, proc_sl = sls
    else:
        ref_db, ref_bm, proc_db, proc_bm, ref_sl, proc_sl = _cochlea(
            ref_mid, proc_mid, None if mask is None else lengths, loss_x, loss_y, rng, **params
        )
    return EarModelOutput(
        ref_db, ref_bm, proc_db, proc_bm, ref_sl, proc_sl, float(freq_sample), lengths=lengths
    )


def _resample_rows(x: Tensor, rate: float, lengths: Tensor, cache: ProcessedPathCache | None):
    """:func:`resample_24khz` of ``x [batch, time]``; on CPU row by row, each distinct row once.

    A row equal to one resampled before, in this call or (with ``cache``) in an earlier call
    on the same cache, reuses its output: a scene's reference is resampled once for all its
    listeners and both metrics, each hearing-aid output once for HASPI and HASQI.  Row by row
    on CPU in any case, so that an output does not depend on the batch it came in.
    """
    if x.device.type != "cpu" or x.shape[0] == 0:
        return resample_24khz(x, rate, lengths=lengths)
    local = ProcessedPathCache(max_bytes=0) if cache is None else cache
    rows, freq_sample = [], 24000.0
    for i in range(x.shape[0]):
        row, n = x[i : i + 1], int(lengths[i])
        out = local.find_resampled(row, rate, n)
        if out is None:
            out, freq_sample = resample_24khz(row, rate, lengths=lengths[i : i + 1])
            local.put_resampled(row, rate, n, out)
        rows.append(out)
    return torch.cat(rows), freq_sample


def _select(loss, i: int):
    """Item ``i`` of a ``LossParameters`` (fields ``[batch, nchan]``)."""
    return type(loss)(*(f[i : i + 1] for f in loss))


def _cochlea(
    ref_mid: Tensor,
    proc_mid: Tensor,
    lengths: Tensor | None,
    loss_x,
    loss_y,
    rng: PairRandom,
    *,
    bandwidth_1: Tensor,
    cf: Tensor,
    cf_control: Tensor,
    level_db_spl: float,
    freq_sample: float,
    m_delay: int,
    band_chunk: int | None,
    with_bm: bool = True,
    search_dtype: torch.dtype | None = None,
    verify_lags: bool = False,
    out: tuple | None = None,
    processed_cache: ProcessedPathCache | None = None,
    cache_key: tuple | None = None,
    reference_key: tuple | None = None,
) -> tuple:
    """Gammatone filterbanks to group-delay compensation for middle-ear outputs ``[batch, time]``.

    ``lengths`` (or None when every item fills the width) gives the valid samples per item;
    ``out`` optionally receives ``reference_db, reference_bm, processed_db, processed_bm``.
    ``with_bm=False`` skips the BM path (its two outputs are None) but still draws the noise.
    ``processed_cache`` (one item, no ``lengths``): the processed path up to the OHC compression
    is taken from it when an entry for ``proc_mid`` under ``cache_key`` exists, else computed
    and offered to it (bit-identical either way, see :mod:`.shared`).  Without the BM path
    (HASPI), the whole reference path is likewise shared under ``reference_key`` between items
    with the same reference (the listeners of a scene): it draws no noise then.
    """
    batch, n_time = ref_mid.shape
    nchan = cf.shape[0]
    device, dtype = ref_mid.device, ref_mid.dtype
    if lengths is None:
        mask = None
        lengths = torch.full((batch,), n_time, dtype=torch.long, device=device)
    else:
        mask = valid_mask(lengths, n_time, device)
    # The bands are independent from the gammatone filters to the IHC: process them in chunks
    # of bands (same operations per band, so identical results) to keep CPU arrays small.
    chunk = _band_chunk(band_chunk, batch, n_time, nchan, device, ref_mid.element_size())
    chunks = [slice(lo, min(lo + chunk, nchan)) for lo in range(0, nchan, chunk)]
    align_lengths = None if mask is None else lengths

    def _masked(*tensors):
        if mask is None:
            return tensors
        return tuple(t.masked_fill(~mask, 0.0) for t in tensors)

    # Processed path from the cache (HASPI -> HASQI), or computed and kept for a later call
    cached = produce = None
    if processed_cache is not None:
        if batch != 1 or mask is not None:
            raise ValueError("ear_model: processed_cache needs the per-item path")
        cached = processed_cache.take(cache_key, proc_mid, need_bm=with_bm)
        if cached is None:
            keep_bm = with_bm or processed_cache.basilar_membrane
            size = (1 + keep_bm) * nchan * n_time * proc_mid.element_size()
            if processed_cache.fits(size):
                produce = ProcessedPath(
                    proc_mid.clone(),
                    torch.empty((1, nchan), dtype=dtype, device=device),
                    torch.empty((1, nchan), dtype=dtype, device=device),
                    torch.empty((1, nchan, n_time), dtype=dtype, device=device),
                    torch.empty((1, nchan, n_time), dtype=dtype, device=device) if keep_bm
                    else None,
                )
    proc_bm_wanted = with_bm or (produce is not None and produce.basilar_membrane is not None)

    # Reference path from the cache (no BM: it then depends on the reference signal only), or
    # computed and kept for the next item with the same reference
    ref_cached = ref_produce = None
    if processed_cache is not None and reference_key is not None and not with_bm:
        ref_cached = processed_cache.find_reference(reference_key, ref_mid)
        if ref_cached is None:
            size = (2 * nchan * n_time + n_time + 3 * nchan) * ref_mid.element_size()
            if processed_cache.fits_reference(size):
                ref_produce = ReferencePath(
                    ref_mid.clone(),
                    *(torch.empty((1, nchan), dtype=dtype, device=device) for _ in range(3)),
                    torch.empty((1, nchan, n_time), dtype=dtype, device=device),
                    torch.empty((1, nchan, n_time), dtype=dtype, device=device),
                )

    # Pass 1 -- control path (wide filters) and level-dependent bandwidths
    bw1 = bandwidth_1.to(dtype)[None].expand(batch, -1)
    ref_control = (torch.empty((batch, nchan, n_time), dtype=dtype, device=device)
                   if ref_cached is None else None)  # fmt: skip
    proc_control = (torch.empty((batch, nchan, n_time), dtype=dtype, device=device)
                    if cached is None else None)  # fmt: skip
    ref_bw = torch.empty((batch, nchan), dtype=dtype, device=device)
    proc_bw = torch.empty_like(ref_bw)
    ref_control_rms = torch.empty_like(ref_bw)
    proc_control_rms = torch.empty_like(ref_bw)
    for sl in chunks:
        if cached is None and ref_cached is None:
            rc, _, pc, _ = gammatone_basilar_membrane(
                ref_mid, bw1[:, sl], proc_mid, bw1[:, sl], freq_sample,
                cf_control[sl].to(dtype), with_bm=False,
            )  # fmt: skip
            rc, pc = _masked(rc, pc)
        elif ref_cached is None:
            rc, _ = gammatone_filterbank(ref_mid, bw1[:, sl], freq_sample,
                                         cf_control[sl].to(dtype), with_bm=False)
        elif cached is None:
            pc, _ = gammatone_filterbank(proc_mid, bw1[:, sl], freq_sample,
                                         cf_control[sl].to(dtype), with_bm=False)
            (pc,) = _masked(pc)
        if ref_cached is None:
            ref_control[:, sl] = rc
            ref_control_rms[:, sl] = _masked_rms(rc, None, lengths)
            ref_bw[:, sl] = bandwidth_adjust(rc, loss_x.bandwidth[:, sl], bw1[:, sl],
                                             level_db_spl, lengths=lengths)
        if cached is None:
            proc_control[:, sl] = pc
            proc_control_rms[:, sl] = _masked_rms(pc, None, lengths)
            proc_bw[:, sl] = bandwidth_adjust(pc, loss_y.bandwidth[:, sl], bw1[:, sl],
                                              level_db_spl, lengths=lengths)
    if cached is not None:
        proc_control_rms = cached.control_rms
    if ref_cached is not None:
        ref_bw, ref_control_rms = ref_cached.bandwidth, ref_cached.control_rms

    # Pass 2 -- main path, OHC compression, envelope alignment, dB SL, IHC adaptation
    ref_db = torch.empty((batch, nchan, n_time), dtype=dtype, device=device)
    proc_db = torch.empty_like(ref_db)
    ref_b, proc_b = (torch.empty_like(ref_db) if with_bm else None for _ in range(2))
    ref_average = torch.empty_like(ref_bw) if ref_cached is None else ref_cached.average
    proc_average = torch.empty_like(ref_bw) if cached is None else cached.average
    for sl in chunks:
        if ref_cached is not None:
            if cached is None:
                yenv, ybm = gammatone_filterbank(proc_mid, proc_bw[:, sl], freq_sample,
                                                 cf[sl].to(dtype), with_bm=proc_bm_wanted)
        elif cached is None and proc_bm_wanted == with_bm:
            xenv, xbm, yenv, ybm = gammatone_basilar_membrane(
                ref_mid, ref_bw[:, sl], proc_mid, proc_bw[:, sl], freq_sample, cf[sl].to(dtype),
                with_bm=with_bm,
            )
        else:  # one signal from the cache, or BM for the processed signal only
            xenv, xbm = gammatone_filterbank(ref_mid, ref_bw[:, sl], freq_sample,
                                             cf[sl].to(dtype), with_bm=with_bm)
            if cached is None:
                yenv, ybm = gammatone_filterbank(proc_mid, proc_bw[:, sl], freq_sample,
                                                 cf[sl].to(dtype), with_bm=proc_bm_wanted)
        if ref_cached is not None:
            rcc, rb = ref_cached.envelope[:, sl], None
        else:
            if with_bm:
                xenv, xbm = _masked(xenv, xbm)
            else:
                (xenv,) = _masked(xenv)
            ref_average[:, sl] = _masked_rms(xenv, None, lengths)
            rcc, rb = env_compress_basilar_membrane(
                xenv, xbm, ref_control[:, sl], loss_x.attenuated_ohc[:, sl],
                loss_x.low_knee[:, sl], loss_x.compression_ratio[:, sl], freq_sample,
                level_db_spl,
            )
            del xenv, xbm
            if ref_produce is not None:
                ref_produce.envelope[:, sl] = rcc
        if cached is None:
            yenv, ybm = _masked(yenv, ybm) if ybm is not None else (*_masked(yenv), None)
            proc_average[:, sl] = _masked_rms(yenv, None, lengths)
            pcc, pb = env_compress_basilar_membrane(
                yenv, ybm, proc_control[:, sl], loss_y.attenuated_ohc[:, sl],
                loss_y.low_knee[:, sl], loss_y.compression_ratio[:, sl], freq_sample,
                level_db_spl,
            )
            if produce is not None:
                produce.envelope[:, sl] = pcc
                if produce.basilar_membrane is not None:
                    produce.basilar_membrane[:, sl] = pb
            if not with_bm:
                pb = None
        else:
            pcc = cached.envelope[:, sl]
            pb = cached.basilar_membrane[:, sl] if with_bm else None
        # align the processed envelope and BM motion to the reference, band by band
        pcc = envelope_align(rcc, pcc, sample_rate=freq_sample, lengths=align_lengths,
                             search_dtype=search_dtype, verify_lags=verify_lags)
        if with_bm:
            pb = envelope_align(rb, pb, sample_rate=freq_sample, lengths=align_lengths,
                                search_dtype=search_dtype, verify_lags=verify_lags)
        pcc, pb = envelope_sl(pcc, pb, loss_y.attenuated_ihc[:, sl], level_db_spl)
        pdb, pb = inner_hair_cell_adaptation(pcc, pb, _IHC_OVERSHOOT, freq_sample,
                                             lengths=align_lengths)
        if ref_cached is None:
            rcc, rb = envelope_sl(rcc, rb, loss_x.attenuated_ihc[:, sl], level_db_spl)
            rdb, rb = inner_hair_cell_adaptation(rcc, rb, _IHC_OVERSHOOT, freq_sample,
                                                 lengths=align_lengths)
        if with_bm:
            ref_db[:, sl], ref_b[:, sl], proc_db[:, sl], proc_b[:, sl] = _masked(rdb, rb, pdb, pb)
        elif ref_cached is None:
            ref_db[:, sl], proc_db[:, sl] = _masked(rdb, pdb)
        else:
            (proc_db[:, sl],) = _masked(pdb)
    if produce is not None:
        produce.control_rms.copy_(proc_control_rms)
        produce.average.copy_(proc_average)
        processed_cache.put(cache_key, produce)
    del ref_control, proc_control

    # Threshold noise (reference draw first, then processed, as the reference)
    noise_lengths = None if mask is None else lengths.tolist()
    if with_bm:
        ref_bm = basilar_membrane_add_noise(ref_b, _IHC_THRESHOLD_DB, level_db_spl, rng,
                                            lengths=noise_lengths)
        proc_bm = basilar_membrane_add_noise(proc_b, _IHC_THRESHOLD_DB, level_db_spl, rng,
                                             lengths=noise_lengths)
    else:  # advance the streams exactly as the two draws above would
        shapes = [(nchan, n) for n in (noise_lengths or [n_time] * batch)]
        noise_dtype = torch.float32 if rng.mode == "fast" and dtype == torch.float64 else dtype
        for _ in range(2):
            rng.skip_standard_normal(shapes, dtype=noise_dtype, device=device)
        ref_bm = proc_bm = None
    del ref_b, proc_b

    # Inter-band group delay (reference bandwidths for both signals: pyclarity quirk)
    if ref_cached is not None:
        ref_db = None  # the cached output, already compensated: set below
    if m_delay > 0:
        correct = group_delay_correction(ref_bw, cf, freq_sample).to(device)
        npts = None if mask is None else lengths
        dest = (None,) * 4 if out is None else out
        ref_db, ref_bm, proc_db, proc_bm = (
            None if t is None else shift_rows(t, -correct, npts, out=o)
            for t, o in zip((ref_db, ref_bm, proc_db, proc_bm), dest, strict=True)
        )
    elif out is not None:
        for o, t in zip(out, (ref_db, ref_bm, proc_db, proc_bm), strict=True):
            if t is not None:
                o.copy_(t)
        ref_db, ref_bm, proc_db, proc_bm = out
    if ref_cached is not None:
        ref_db = (ref_cached.output.clone() if out is None
                  else out[0].copy_(ref_cached.output))  # fmt: skip

    if ref_produce is not None:
        for field, value in (("bandwidth", ref_bw), ("control_rms", ref_control_rms),
                             ("average", ref_average), ("output", ref_db)):  # fmt: skip
            getattr(ref_produce, field).copy_(value)
        processed_cache.put_reference(reference_key, ref_produce)

    # Long-term spectra in dB SL
    ref_sl = convert_rms_to_sl(
        ref_average, ref_control_rms, loss_x.attenuated_ohc, loss_x.low_knee,
        loss_x.compression_ratio, loss_x.attenuated_ihc, level_db_spl,
    )
    proc_sl = convert_rms_to_sl(
        proc_average, proc_control_rms, loss_y.attenuated_ohc, loss_y.low_knee,
        loss_y.compression_ratio, loss_y.attenuated_ihc, level_db_spl,
    )
    return ref_db, ref_bm, proc_db, proc_bm, ref_sl, proc_sl
