"""Quality back-end of HASQI v2 (and HAAQI): envelope smoothing, cepstral correlation, spectral and
temporal-fine-structure features, batched in PyTorch.

Every function works on a batch of ear-model outputs (``[batch, nchan, time]`` band signals,
``[batch, nchan]`` long-term spectra) with no Python loop over time segments or samples; the
segment-wise statistics of the reference are computed with strided views (``unfold``), masks
and FFTs.  Items are independent: the result for one item does not depend on the others in the
batch.  The functions run on CPU and CUDA and take device/dtype from their inputs (float64 gives
the ``compat`` numbers; float32 is allowed).  They are differentiable almost everywhere except
through the data-dependent segment selection and ``max``.

Each function reproduces one of pyclarity 0.9.0's ``clarity/evaluator/haspi/eb.py`` functions
(Kates' MATLAB translated to Python), including its quirks, which are listed in the docstrings.

References
----------
.. [1] Kates JM, Arehart KH (2014) The Hearing-Aid Speech Quality Index (HASQI) Version 2.
       J Audio Eng Soc 62(3):99-117.
.. [2] Kates JM, Arehart KH (2010) The Hearing-Aid Speech Quality Index (HASQI).
       J Audio Eng Soc 58(5):363-381.
.. [3] Kates JM, Arehart KH, Anderson MC, Muralimanohar RK, Harvey LO (2018) Using objective
       metrics to measure hearing aid performance. Ear Hear 39(6):1165-1175 (HAAQI).
.. [4] pyclarity 0.9.0, ``clarity/evaluator/haspi/eb.py``.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import scipy.fft
import torch
from torch import Tensor

from clarity_se.dsp.designs import scipy_design
from clarity_se.ear_model.loss import center_frequency
from clarity_se.random import PairRandom

logger = logging.getLogger(__name__)

__all__ = [
    "env_smooth",
    "mel_cepstrum_correlation",
    "melcor9",
    "melcor9_crosscovmatrix",
    "modulation_filters",
    "segment_counts",
    "spectrum_diff",
    "bm_covary",
    "ave_covary2",
    "MelCepstrumCorrelation",
    "Melcor9Result",
    "SpectrumDiff",
    "BmCovariance",
    "AveCovariance",
]

_SMALL = 1.0e-30  # pyclarity's ``small``: cross-covariance set to 0 below this energy


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _check_bands(name: str, x: Tensor, ndim: int = 3) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        shape = "[batch, nchan, time]" if ndim == 3 else "[batch, nchan]"
        raise ValueError(f"{name} must have shape {shape}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")


def _check_pair(name_a: str, a: Tensor, name_b: str, b: Tensor, ndim: int = 3) -> None:
    _check_bands(name_a, a, ndim)
    _check_bands(name_b, b, ndim)
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} {tuple(a.shape)} and {name_b} {tuple(b.shape)} must have the same shape"
        )


def _segment_length(segment_ms: float, sample_rate: float) -> int:
    """Even segment length in samples, ``np.around`` (half to even) then forced even."""
    n = int(np.around(segment_ms * (0.001 * sample_rate)))
    return n + n % 2


def segment_counts(
    lengths: Tensor | None, n_time: int, segment_size: float, sample_rate: float,
    *, name: str = "envelopes", device: torch.device | None = None, batch: int | None = None,
) -> Tensor:
    """Number of 50%-overlap segments per item, as ``env_smooth``/``bm_covary`` make them.

    Parameters
    ----------
    lengths : Tensor [shape=(batch,)], int, optional
        Valid samples per item (None: all ``n_time``; ``batch`` must then be given).
    n_time : int
        Width of the padded time axis in samples.
    segment_size : float
        Segment length in ms.
    sample_rate : float
        Sampling rate in Hz.
    name : str
        Argument name for error messages.
    device : torch.device, optional
        Device of the result.
    batch : int, optional
        Batch size when ``lengths`` is None.

    Returns
    -------
    Tensor [shape=(batch,)], int64
        ``1 + floor(L/N) + floor((L - N/2)/N)`` with ``N`` the even segment length in samples.

    Raises
    ------
    ValueError
        If a length is outside ``[N, n_time]`` (shorter than one segment: pyclarity fails with a
        broadcasting error there).
    """
    n = _segment_length(segment_size, sample_rate)
    if lengths is None:
        lengths = torch.full((batch or 1,), n_time, dtype=torch.long, device=device)
    lengths = torch.as_tensor(lengths, device=device).to(torch.long).reshape(-1)
    if bool((lengths < n).any()) or bool((lengths > n_time).any()):
        raise ValueError(
            f"{name}: lengths {lengths.tolist()} must lie in [{n}, {n_time}] samples (one "
            f"{segment_size} ms segment is {n} samples)"
        )
    nhalf = n // 2
    return 1 + torch.div(lengths, n, rounding_mode="floor") + torch.div(
        lengths - nhalf, n, rounding_mode="floor")


def _assemble_segments(first: Tensor, middle: Tensor, last: Tensor, nseg: Tensor) -> Tensor:
    """``[first, middle[0..nseg-3], last]`` per item, zero-padded to ``max(nseg)``.

    first, last: ``[B, C]``; middle: ``[B, C, Smax - 2]`` (candidates k = 1..Smax-2).
    """
    smax = middle.shape[-1] + 2
    k = torch.arange(smax, device=first.device)
    body = torch.cat([first[..., None], middle, torch.zeros_like(first)[..., None]], dim=-1)
    is_last = (k[None, :] == (nseg - 1)[:, None])[:, None, :]
    valid = (k[None, :] < nseg[:, None])[:, None, :]
    out = torch.where(is_last, last[..., None], body)
    return torch.where(valid, out, torch.zeros((), dtype=out.dtype, device=out.device))


def _gather_blocks(x: Tensor, starts: Tensor, size: int) -> Tensor:
    """``x[b, c, starts[b] : starts[b] + size]`` for every item: ``[B, C, size]``."""
    idx = starts[:, None] + torch.arange(size, device=x.device)[None, :]  # [B, size]
    return torch.gather(x, -1, idx[:, None, :].expand(x.shape[0], x.shape[1], size))


def _const(a: np.ndarray, like: Tensor) -> Tensor:
    return torch.as_tensor(np.ascontiguousarray(a), dtype=like.dtype, device=like.device)


# --------------------------------------------------------------------------------------------
# env_smooth
# --------------------------------------------------------------------------------------------


def env_smooth(
    envelopes: Tensor, segment_size: float, sample_rate: float, lengths: Tensor | None = None
) -> Tensor:
    """Smooth and sub-sample the cochlear envelopes with 50%-overlapping von Hann windows.

    Parameters
    ----------
    envelopes : Tensor [shape=(batch, nchan, time)], float, dB SL
        Envelopes of the ear model (``reference_db`` / ``processed_db``).
    segment_size : float
        Averaging segment length in ms (16 ms in HASQI, 8 ms in HAAQI).
    sample_rate : float
        Envelope sampling rate in Hz (24000 from the ear model).
    lengths : Tensor [shape=(batch,)], int, optional
        Valid samples per item of zero-padded envelopes (``EarModelOutput.lengths``); default
        the full width.  Each item is smoothed as if it had exactly its own length.

    Returns
    -------
    Tensor [shape=(batch, nchan, max nseg)], float
        Window-weighted averages, sub-sampled at ``2000 / segment_size`` Hz (125 Hz for 16 ms);
        item ``b`` has ``nseg_b = 1 + floor(L/N) + floor((L - N/2)/N)`` segments
        (:func:`segment_counts`, ``N`` the even segment length), zeros after them.

    Raises
    ------
    ValueError
        If ``envelopes`` is not ``[batch, nchan, time]`` or an item is shorter than one segment
        (pyclarity raises a broadcasting error there).

    Notes
    -----
    Reproduces pyclarity quirks: the first segment is ``envelopes[:N/2]`` weighted by the second
    half of the window and divided by the half-window sum; the middle segments start every
    ``N/2`` samples; the last segment is the *first* half of the window on
    ``envelopes[(nseg-1)N/2 : nseg N/2]`` (samples after ``nseg N/2`` are ignored).
    ``np.hanning(N)`` (symmetric) is the window.

    References
    ----------
    pyclarity 0.9.0 ``eb.env_smooth``; Kates & Arehart (2014) Sec. 2.2.
    """
    _check_bands("envelopes", envelopes)
    n = _segment_length(segment_size, sample_rate)
    nhalf = n // 2
    batch, _, npts = envelopes.shape
    nseg = segment_counts(lengths, npts, segment_size, sample_rate, name="envelopes",
                          device=envelopes.device, batch=batch)
    smax = int(nseg.max())
    window_np = np.hanning(n)
    window = _const(window_np, envelopes)
    wsum = float(np.sum(window_np))
    halfsum = float(np.sum(window_np[nhalf:n]))

    first = envelopes[..., :nhalf] @ window[nhalf:] / halfsum  # [B, C]
    # middle-segment candidates k = 1..smax-2 start at k*nhalf
    if smax > 2:
        # segment k = blocks k and k + 1 of nhalf samples (from nhalf on): one matmul of the
        # block view with the two window halves, no [.., smax, n] frame copy
        blocks = envelopes[..., nhalf : nhalf * smax].reshape(
            *envelopes.shape[:-1], smax - 1, nhalf)
        halves = torch.stack([window[:nhalf], window[nhalf:]], dim=1)  # [nhalf, 2]
        z = blocks @ halves  # [B, C, smax-1, 2]
        middle = (z[..., :-1, 0] + z[..., 1:, 1]) / wsum  # [B, C, smax-2]
    else:
        middle = envelopes.new_zeros((*envelopes.shape[:-1], 0))
    last = _gather_blocks(envelopes, (nseg - 1) * nhalf, nhalf) @ window[:nhalf] / halfsum
    return _assemble_segments(first, middle, last, nseg)


# --------------------------------------------------------------------------------------------
# cepstral correlation (HASQI) and modulation-filtered cepstral correlation (HAAQI)
# --------------------------------------------------------------------------------------------


class MelCepstrumCorrelation(NamedTuple):
    """Output of :func:`mel_cepstrum_correlation`.

    Attributes
    ----------
    average : Tensor [shape=(batch,)]
        Average of the cepstral correlations 2..6 (``average_cepstral_correlation``).
    individual : Tensor [shape=(batch, 6)]
        Absolute normalised cross-covariance of each cepstral coefficient.
    """

    average: Tensor
    individual: Tensor


def _cepstral_basis(nbands: int, nbasis: int, like: Tensor) -> Tensor:
    """Half-cosine (mel cepstrum) basis ``[nbands, nbasis]``, unit-norm columns, as numpy."""
    basis = np.cos(np.outer(np.arange(nbands), np.arange(nbasis)) * np.pi / float(nbands - 1))
    return _const(basis / np.linalg.norm(basis, axis=0, keepdims=True), like)


def _valid_segments(lengths: Tensor | None, batch: int, nseg: int, device) -> Tensor | None:
    """``[B, S]`` bool mask of the valid (non-padding) segments, None when all are valid."""
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths, device=device).to(torch.long).reshape(-1)
    if lengths.numel() != batch or bool((lengths < 0).any()) or bool((lengths > nseg).any()):
        raise ValueError(f"lengths must be {batch} segment counts in [0, {nseg}], got "
                         f"{lengths.tolist()}")
    return torch.arange(nseg, device=device)[None, :] < lengths[:, None]


def _loudness_mask(reference: Tensor, threshold: float, lengths: Tensor | None = None) -> Tensor:
    """Valid segments whose band-averaged specific loudness exceeds ``threshold`` dB: ``[B, S]``."""
    nbands = reference.shape[1]
    level = 20 * torch.log10(torch.sum(10 ** (reference / 20), dim=1) / nbands)
    mask = level > threshold
    valid = _valid_segments(lengths, reference.shape[0], reference.shape[2], reference.device)
    return mask if valid is None else mask & valid


def _draw_segment_noise(
    rng: PairRandom, active: Tensor, mask: Tensor, nbands: int, like: Tensor
) -> Tensor:
    """Draw ``[nbands, n_b]`` noise per active item (reference order) and scatter it.

    Returns a ``[B, nbands, S]`` tensor, zero where no noise was drawn.  Items that the
    reference leaves early (``n_b <= 1``) draw nothing, so their streams do not advance.
    """
    batch, nseg = mask.shape
    out = torch.zeros((batch, nbands, nseg), dtype=like.dtype, device=like.device)
    items = [int(i) for i in torch.nonzero(active).flatten().tolist()]
    if not items:
        return out
    counts = mask.sum(dim=1).tolist()
    shapes = [(nbands, int(counts[i])) for i in items]
    draws = rng.subset(items).standard_normal(shapes, dtype=like.dtype, device=like.device)
    for j, i in enumerate(items):  # per batch item, not per segment
        out[i][:, mask[i]] = draws[j]
    return out


def mel_cepstrum_correlation(
    reference: Tensor,
    distorted: Tensor,
    threshold: float,
    addnoise: float,
    rng: PairRandom,
    lengths: Tensor | None = None,
) -> MelCepstrumCorrelation:
    """Cepstral correlation between reference and processed smoothed envelopes (HASQI v2).

    Parameters
    ----------
    reference, distorted : Tensor [shape=(batch, nchan, nseg)], float, dB SL
        Smoothed envelopes from :func:`env_smooth`.
    threshold : float
        Silence threshold in dB: a segment is kept when the band-averaged linear envelope of
        the *reference*, converted back to dB, exceeds it (2.5 dB in HASQI).
    addnoise : float
        Standard deviation (dB) of the Gaussian noise added to both envelopes of the kept
        segments (0 in HASQI).
    rng : PairRandom
        One stream per item; every item with at least 2 kept segments draws
        ``(nchan, n_kept)`` for the reference then ``(nchan, n_kept)`` for the processed signal,
        *even when* ``addnoise == 0`` (the reference always draws), so the streams stay in step
        with pyclarity's global numpy generator.
    lengths : Tensor [shape=(batch,)], int, optional
        Valid segments per item (:func:`segment_counts`); padding segments are ignored.

    Returns
    -------
    MelCepstrumCorrelation
        ``average [batch]`` and ``individual [batch, 6]``.  Items with at most one segment above
        threshold get 0 and zeros (and a logged warning), as pyclarity.

    Raises
    ------
    ValueError
        On shape mismatch or if ``rng`` has a different number of items.

    Notes
    -----
    Reproduces pyclarity quirks: six half-cosine basis functions over the bands; the mean over the
    kept segments is removed from each cepstral sequence; the correlation is
    ``|sum(x y)| / sqrt(sum(x^2) sum(y^2))`` (absolute value), set to 0 if either energy is
    below 1e-30; the average ignores the first (level) coefficient.

    References
    ----------
    pyclarity 0.9.0 ``eb.mel_cepstrum_correlation``; Kates & Arehart (2014) Sec. 2.3, Eq. (1)-(3).
    """
    _check_pair("reference", reference, "distorted", distorted)
    if len(rng) != reference.shape[0]:
        raise ValueError(f"rng has {len(rng)} items, reference has {reference.shape[0]}")
    nbasis = 6
    batch, nbands, _ = reference.shape
    basis = _cepstral_basis(nbands, nbasis, reference)

    mask = _loudness_mask(reference, threshold, lengths)  # [B, S]
    count = mask.sum(dim=1)
    active = count > 1
    if not bool(active.all()):
        logger.warning(
            "mel_cepstrum_correlation: %d item(s) below threshold, outputs set to 0",
            int((~active).sum()),
        )
    noise_ref = _draw_segment_noise(rng, active, mask, nbands, reference)
    noise_proc = _draw_segment_noise(rng, active, mask, nbands, reference)
    # pyclarity draws the reference noise then the processed noise *per call*; with one
    # stream per item the order within an item is what matters, and it is preserved.
    ref = reference + addnoise * noise_ref
    proc = distorted + addnoise * noise_proc

    w = mask.to(reference.dtype)[:, None, :]  # [B, 1, S]
    n = count.clamp(min=1).to(reference.dtype)[:, None, None]
    ref_cep = torch.einsum("ck,bcs->bks", basis, ref)
    proc_cep = torch.einsum("ck,bcs->bks", basis, proc)
    ref_cep = (ref_cep - (ref_cep * w).sum(-1, keepdim=True) / n) * w
    proc_cep = (proc_cep - (proc_cep * w).sum(-1, keepdim=True) / n) * w

    xsum = (ref_cep**2).sum(-1)
    ysum = (proc_cep**2).sum(-1)
    ok = (xsum >= _SMALL) & (ysum >= _SMALL)
    xy = (ref_cep * proc_cep).sum(-1)
    denom = torch.where(ok, torch.sqrt(xsum * ysum), torch.ones_like(xsum))
    individual = torch.where(ok, torch.abs(xy / denom), torch.zeros_like(xsum))
    individual = individual * active[:, None].to(individual.dtype)
    average = individual[:, 1:nbasis].sum(-1) / (nbasis - 1)
    return MelCepstrumCorrelation(average, individual)


def modulation_filters(segment_size: float) -> tuple[np.ndarray, int]:
    """The 8 linear-phase envelope modulation filters of ``melcor9``.

    Parameters
    ----------
    segment_size : float
        Envelope segment size in ms (8 ms in HAAQI, i.e. a 250 Hz envelope sampling rate).

    Returns
    -------
    b : numpy.ndarray [shape=(8, n_fir + 1)]
        Hann-windowed FIRs (``scipy.signal.firwin``): low-pass 0-4 Hz, band-passes with edges
        4, 8, 12.5, 20, 32, 50, 80 Hz, high-pass 80 Hz.
    n_fir : int
        Even filter order, ``2 floor(round(128 (fs/2) / 125) / 2)``.

    References
    ----------
    pyclarity 0.9.0 ``eb.melcor9`` (filter design part).
    """
    edge = [4.0, 8.0, 12.5, 20.0, 32.0, 50.0, 80.0]
    nmod = 1 + len(edge)
    sampling_freq = 1000.0 / (0.5 * segment_size)
    nyquist = 0.5 * sampling_freq
    n_fir = np.around(128 * (nyquist / 125))
    n_fir = int(2 * np.floor(n_fir / 2))
    b = np.zeros((nmod, n_fir + 1))
    b[0] = scipy_design(
        "firwin", n_fir + 1, edge[0] / nyquist, window="hann", pass_zero="lowpass"
    )
    b[nmod - 1] = scipy_design(
        "firwin", n_fir + 1, edge[nmod - 2] / nyquist, window="hann", pass_zero="highpass"
    )
    for m in range(1, nmod - 1):
        b[m] = scipy_design(
            "firwin", n_fir + 1, (edge[m - 1] / nyquist, edge[m] / nyquist), window="hann",
            pass_zero="bandpass",
        )
    return b, n_fir


def melcor9_crosscovmatrix(
    b: Tensor | np.ndarray,
    reference_cep: Tensor,
    processed_cep: Tensor,
    lengths: Tensor | None = None,
) -> Tensor:
    """Cross-covariance of modulation-filtered cepstral sequences.

    Parameters
    ----------
    b : Tensor or numpy.ndarray [shape=(nmod, n_fir + 1)]
        Modulation filters (:func:`modulation_filters`), ``n_fir`` even.
    reference_cep, processed_cep : Tensor [shape=(batch, nbasis, nseg)], float
        Mean-removed cepstral sequences of the kept segments, left-aligned; columns at or after
        ``lengths[b]`` are ignored.
    lengths : Tensor [shape=(batch,)], int, optional
        Number of valid segments per item (``nsamp`` in pyclarity); default all.

    Returns
    -------
    Tensor [shape=(batch, nmod, nbasis)]
        ``|sum(x y)| / sqrt(sum x^2 sum y^2)`` of the filtered, mean-removed sequences; 0 where
        either energy is below 1e-30.

    Notes
    -----
    Reproduces pyclarity quirks: each sequence is convolved (full convolution, zero outside) and the
    ``n_fir/2``-sample group delay removed by keeping ``c[n_fir/2 : n_fir/2 + nsamp]``; the mean
    is removed again after filtering.  Vectorised as one grouped ``conv1d``.

    References
    ----------
    pyclarity 0.9.0 ``eb.melcor9_crosscovmatrix``.
    """
    _check_pair("reference_cep", reference_cep, "processed_cep", processed_cep)
    like = reference_cep
    b_t = b.to(like) if isinstance(b, Tensor) else _const(np.asarray(b, dtype=np.float64), like)
    nmod, ntaps = b_t.shape
    nfir = ntaps - 1
    if nfir % 2:
        raise ValueError(f"b: filter order must be even, got {nfir}")
    batch, nbasis, nseg = like.shape
    if lengths is None:
        lengths = torch.full((batch,), nseg, dtype=torch.long, device=like.device)
    valid = torch.arange(nseg, device=like.device)[None, :] < lengths.to(like.device)[:, None]
    w = valid.to(like.dtype)[:, None, None, :]  # [B,1,1,S]
    n = lengths.clamp(min=1).to(like.dtype).to(like.device)[:, None, None]

    def filt(x: Tensor) -> Tensor:
        x = x * valid.to(x.dtype)[:, None, :]  # zeros after nsamp == numpy's finite signal
        flat = x.reshape(batch * nbasis, 1, nseg)
        kernel = torch.flip(b_t, dims=[-1])[:, None, :]  # conv1d is a correlation
        y = torch.nn.functional.conv1d(flat, kernel, padding=nfir // 2)  # [B*K, nmod, S]
        return y.reshape(batch, nbasis, nmod, nseg).transpose(1, 2)  # [B, nmod, K, S]

    x = filt(reference_cep)
    y = filt(processed_cep)
    x = (x - (x * w).sum(-1, keepdim=True) / n[..., None]) * w
    y = (y - (y * w).sum(-1, keepdim=True) / n[..., None]) * w
    xs = (x**2).sum(-1)
    ys = (y**2).sum(-1)
    ok = (xs >= _SMALL) & (ys >= _SMALL)
    xy = (x * y).sum(-1)
    denom = torch.where(ok, torch.sqrt(xs * ys), torch.ones_like(xs))
    return torch.where(ok, torch.abs(xy) / denom, torch.zeros_like(xs))


class Melcor9Result(NamedTuple):
    """Output of :func:`melcor9` (all zero for items with <= 1 segment above threshold).

    Attributes
    ----------
    average : Tensor [shape=(batch,)]
        Mean over the 8 modulation bands and cepstral coefficients 2..6.
    low : Tensor [shape=(batch,)]
        Mean over the 4 lower modulation bands (0-20 Hz).
    high : Tensor [shape=(batch,)]
        Mean over the 4 upper modulation bands (20-125 Hz).
    modulation : Tensor [shape=(batch, 8)]
        Mean over coefficients 2..6 per modulation band.
    """

    average: Tensor
    low: Tensor
    high: Tensor
    modulation: Tensor


def melcor9(
    reference: Tensor,
    distorted: Tensor,
    threshold: float,
    add_noise: float,
    segment_size: float,
    rng: PairRandom,
    n_cepstral_coef: int = 6,
    lengths: Tensor | None = None,
) -> Melcor9Result:
    """Modulation-filtered cepstral correlation (HAAQI's ``melcor9``).

    Parameters
    ----------
    reference, distorted : Tensor [shape=(batch, nchan, nseg)], float, dB SL
        Smoothed envelopes (:func:`env_smooth`).
    threshold : float
        Silence threshold in dB on the band-averaged reference loudness.
    add_noise : float
        Standard deviation of the Gaussian noise added to the kept segments.
    segment_size : float
        Envelope segment size in ms (sets the envelope sampling rate ``2000/segment_size`` Hz).
    rng : PairRandom
        Items with at least 2 kept segments draw ``(nchan, n_kept)`` for the reference then for
        the processed signal (always, whatever ``add_noise``).
    n_cepstral_coef : int
        Number of cepstral basis functions (6).
    lengths : Tensor [shape=(batch,)], int, optional
        Valid segments per item (:func:`segment_counts`); padding segments are ignored.

    Returns
    -------
    Melcor9Result

    Raises
    ------
    ValueError
        On shape mismatch or if ``rng`` has a different number of items.

    Notes
    -----
    Reproduces pyclarity quirks: the kept segments are *concatenated* (silent gaps removed) before
    the modulation filtering, so filters run across the joins; ``low``/``high`` divide by
    ``4 * (n_cepstral_coef - 1)``.

    References
    ----------
    pyclarity 0.9.0 ``eb.melcor9``; Kates et al. (2016) HAAQI, J Audio Eng Soc 64(7/8).
    """
    _check_pair("reference", reference, "distorted", distorted)
    if len(rng) != reference.shape[0]:
        raise ValueError(f"rng has {len(rng)} items, reference has {reference.shape[0]}")
    batch, nbands, nseg = reference.shape
    cepm = _cepstral_basis(nbands, n_cepstral_coef, reference)
    mask = _loudness_mask(reference, threshold, lengths)
    count = mask.sum(dim=1)
    active = count > 1
    if not bool(active.all()):
        logger.warning("melcor9: %d item(s) below threshold, outputs set to 0",
                       int((~active).sum()))
    noise_ref = _draw_segment_noise(rng, active, mask, nbands, reference)
    noise_proc = _draw_segment_noise(rng, active, mask, nbands, reference)
    ref = reference + add_noise * noise_ref
    proc = distorted + add_noise * noise_proc

    # compact the kept segments to the left, keeping their order (stable sort of ~mask)
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices  # [B, S]
    gather = order[:, None, :].expand(batch, nbands, nseg)
    ref = torch.gather(ref, 2, gather)
    proc = torch.gather(proc, 2, gather)
    valid = torch.arange(nseg, device=reference.device)[None, :] < count[:, None]
    w = valid.to(reference.dtype)[:, None, :]
    n = count.clamp(min=1).to(reference.dtype)[:, None, None]
    ref_cep = torch.einsum("ck,bcs->bks", cepm, ref)
    dis_cep = torch.einsum("ck,bcs->bks", cepm, proc)
    ref_cep = (ref_cep - (ref_cep * w).sum(-1, keepdim=True) / n) * w
    dis_cep = (dis_cep - (dis_cep * w).sum(-1, keepdim=True) / n) * w

    b, _ = modulation_filters(segment_size)
    nmod = b.shape[0]
    ccm = melcor9_crosscovmatrix(b, ref_cep, dis_cep, count)  # [B, nmod, K]
    ccm = ccm * active.to(ccm.dtype)[:, None, None]
    k1 = n_cepstral_coef - 1
    average = ccm[:, :, 1:].sum((1, 2)) / (nmod * k1)
    low = ccm[:, :4, 1:].sum((1, 2)) / (4 * k1)
    high = ccm[:, 4:8, 1:].sum((1, 2)) / (4 * k1)
    modulation = ccm[:, :, 1:].mean(-1)
    return Melcor9Result(average, low, high, modulation)


# --------------------------------------------------------------------------------------------
# long-term spectrum
# --------------------------------------------------------------------------------------------


class SpectrumDiff(NamedTuple):
    """Output of :func:`spectrum_diff`; each ``[batch, 3]`` = [sum |d|, nchan*std(d), max |d|].

    Attributes
    ----------
    dloud : Tensor [shape=(batch, 3)]
        Difference of the loudness-normalised specific-loudness spectra.
    dnorm : Tensor [shape=(batch, 3)]
        Relative difference ``(x - y) / (x + y)``.
    dslope : Tensor [shape=(batch, 3)]
        Difference of the spectral slopes (first differences across bands).
    """

    dloud: Tensor
    dnorm: Tensor
    dslope: Tensor


def spectrum_diff(reference_sl: Tensor, processed_sl: Tensor) -> SpectrumDiff:
    """Changes in the long-term spectrum and spectral slope (Moore & Tan 2004 style).

    Parameters
    ----------
    reference_sl, processed_sl : Tensor [shape=(batch, nchan)], float, dB SL
        Long-term band levels from the ear model.

    Returns
    -------
    SpectrumDiff
        Each statistic uses the biased (``ddof=0``) standard deviation multiplied by ``nchan``
        -- also for the slope, which has ``nchan - 1`` values (pyclarity quirk).

    Raises
    ------
    ValueError
        On shape mismatch.

    References
    ----------
    pyclarity 0.9.0 ``eb.spectrum_diff``; Kates & Arehart (2014) Sec. 2.5; Moore BCJ, Tan CT
    (2004) J Audio Eng Soc 52(9):900-914.
    """
    _check_pair("reference_sl", reference_sl, "processed_sl", processed_sl, ndim=2)
    nbands = reference_sl.shape[1]
    x = 10 ** (reference_sl / 20)
    y = 10 ** (processed_sl / 20)
    x = x / x.sum(-1, keepdim=True)
    y = y / y.sum(-1, keepdim=True)

    def stats(d: Tensor) -> Tensor:
        return torch.stack(
            [d.abs().sum(-1), nbands * d.std(-1, correction=0), d.abs().amax(-1)], dim=-1
        )

    dloud = stats(x - y)
    dnorm = stats((x - y) / (x + y))
    dslope = stats((x[:, 1:] - x[:, :-1]) - (y[:, 1:] - y[:, :-1]))
    return SpectrumDiff(dloud, dnorm, dslope)


# --------------------------------------------------------------------------------------------
# basilar-membrane (temporal fine structure) covariance
# --------------------------------------------------------------------------------------------


class BmCovariance(NamedTuple):
    """Output of :func:`bm_covary`, each ``[batch, nchan, nseg]``.

    Attributes
    ----------
    signal_cross_covariance : Tensor
        Max over lags of |normalised cross-covariance|, clipped to [0, 1].
    reference_mean_square : Tensor
        2 x windowed mean square of the reference BM signal per segment.
    processed_mean_square : Tensor
        Same for the processed BM signal.
    """

    signal_cross_covariance: Tensor
    reference_mean_square: Tensor
    processed_mean_square: Tensor


def _window_corr_inv(window: np.ndarray, maxlag: int) -> np.ndarray:
    # the reference's scipy.signal.correlate picks its direct method for these window lengths,
    # which equals np.correlate bit for bit (tests/dsp/test_designs.py)
    corr = np.correlate(window, window, "full")
    start = len(window) - 1 - maxlag
    if start < 0:
        raise ValueError("segment size too small for the +/-1 ms lag range")
    return 1.0 / corr[start : maxlag + len(window)]


def _segment_covariance(
    xs: Tensor, ys: Tensor, window: Tensor, corr_inv: Tensor, sum2_inv: float, maxlag: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Covariance statistics of windowed segments ``[..., L]`` (last dim = samples)."""
    # one zero-padded buffer for reference and processed, filled and centred in place (no
    # extra passes; the FFT then needs no internal padding copy)
    seg_len = xs.shape[-1]
    nfft = scipy.fft.next_fast_len(seg_len + maxlag, real=True)
    buf = torch.empty((2,) + tuple(xs.shape[:-1]) + (nfft,), dtype=xs.dtype, device=xs.device)
    buf[..., seg_len:] = 0.0
    both = buf[..., :seg_len]
    torch.mul(xs, window, out=both[0])
    torch.mul(ys, window, out=both[1])
    both -= both.mean(-1, keepdim=True)
    ms = torch.linalg.vector_norm(both, dim=-1).square_() * sum2_inv
    msx, msy = ms[0], ms[1]
    spec = torch.fft.rfft(buf)
    del both, buf
    circ = torch.fft.irfft(spec[0].mul_(spec[1].conj()), n=nfft)  # sum_n x[n + k] y[n]
    lags = torch.arange(-maxlag, maxlag + 1, device=circ.device) % nfft
    peak = (circ.index_select(-1, lags) * corr_inv).abs_().amax(-1)
    ok = (msx > _SMALL) & (msy > _SMALL)
    denom = torch.where(ok, torch.sqrt(msx * msy), torch.ones_like(msx))
    cov = torch.where(ok, peak / denom, torch.zeros_like(msx))
    return cov, msx, msy


def bm_covary(
    reference_basilar_membrane: Tensor,
    processed_basilar_membrane: Tensor,
    segment_size: float,
    sample_rate: float,
    lengths: Tensor | None = None,
    *,
    max_chunk_elements: int | None = None,
) -> BmCovariance:
    """Segment-wise normalised cross-covariance of the BM vibration in each band.

    Parameters
    ----------
    reference_basilar_membrane, processed_basilar_membrane : Tensor [shape=(batch, nchan, time)]
        BM vibration from the ear model (in dB SL-scaled units), float.
    segment_size : float
        Segment length in ms (16 ms in HASQI), 50% overlap.
    sample_rate : float
        Sampling rate in Hz (24000).
    lengths : Tensor [shape=(batch,)], int, optional
        Valid samples per item of zero-padded signals (``EarModelOutput.lengths``).
    max_chunk_elements : int, optional
        Cache blocking: the ``batch * nchan`` band signals are processed in chunks of about
        this many samples (default 2**18 on CPU, where it is ~2x faster than one big block for
        5 s signals, and 2**25 on CUDA).  No effect on the result.

    Returns
    -------
    BmCovariance
        ``[batch, nchan, max nseg]`` tensors, zero after each item's :func:`segment_counts`.

    Raises
    ------
    ValueError
        On shape mismatch, or if the signal is shorter than one segment.

    Notes
    -----
    Reproduces pyclarity quirks: symmetric ``np.hanning`` window; each windowed segment is made
    zero-mean *after* windowing; the cross-correlation over lags of +/- round(1 ms) samples is
    divided lag by lag by the window autocorrelation ("unbiased"), and its largest magnitude is
    divided by ``sqrt(msx msy)`` where ``ms = sum(seg^2) / sum(window^2)``; 0 when either mean
    square is <= 1e-30; clipped to [0, 1].  First and last segments are half windows
    (second / first half, both normalised with the second-half autocorrelation, which is the
    same by symmetry); mean squares are finally doubled "to correspond to the envelope in dB
    SL".  Correlations are computed by FFT (``scipy.signal.correlate`` may choose direct or FFT
    too); differences are at rounding level.

    References
    ----------
    pyclarity 0.9.0 ``eb.bm_covary``; Kates & Arehart (2014) Sec. 2.4.
    """
    _check_pair("reference_basilar_membrane", reference_basilar_membrane,
                "processed_basilar_membrane", processed_basilar_membrane)
    x_all, y_all = reference_basilar_membrane, processed_basilar_membrane
    maxlag = int(np.around(1.0 * (0.001 * sample_rate)))
    nwin = int(np.around(segment_size * (0.001 * sample_rate)))
    nwin += nwin % 2
    nhalf = nwin // 2
    batch, nchan, npts = x_all.shape
    nseg = segment_counts(lengths, npts, segment_size, sample_rate,
                          name="reference_basilar_membrane", device=x_all.device, batch=batch)
    smax = int(nseg.max())
    window_np = np.hanning(nwin)
    half_np = window_np[nhalf:nwin]
    win = _const(window_np, x_all)
    win_corr = _const(_window_corr_inv(window_np, maxlag), x_all)
    half_corr = _const(_window_corr_inv(half_np, maxlag), x_all)
    win_sum2 = 1.0 / float(np.sum(window_np**2))
    half_sum2 = 1.0 / float(np.sum(half_np**2))
    win_ends = torch.stack([win[nhalf:], win[:nhalf]])  # [2, nhalf]: first, last segment

    if max_chunk_elements is None:
        max_chunk_elements = 2**25 if x_all.device.type == "cuda" else 2**18
    rows = max(1, max_chunk_elements // max(npts, 1))
    # the last (half) segment of item b starts at (nseg_b - 1) * nhalf
    last_x = _gather_blocks(x_all, (nseg - 1) * nhalf, nhalf).reshape(batch * nchan, nhalf)
    last_y = _gather_blocks(y_all, (nseg - 1) * nhalf, nhalf).reshape(batch * nchan, nhalf)
    x2 = x_all.reshape(batch * nchan, npts)
    y2 = y_all.reshape(batch * nchan, npts)
    ends_out: list[tuple[Tensor, Tensor, Tensor]] = []
    mids_out: list[tuple[Tensor, Tensor, Tensor]] = []
    for r0 in range(0, batch * nchan, rows):  # cache blocks of band signals, not segments
        x = x2[r0 : r0 + rows]
        y = y2[r0 : r0 + rows]
        ends = torch.stack([x[:, :nhalf], last_x[r0 : r0 + rows]], dim=1)
        ends_y = torch.stack([y[:, :nhalf], last_y[r0 : r0 + rows]], dim=1)
        ends_out.append(_segment_covariance(ends, ends_y, win_ends, half_corr, half_sum2,
                                            maxlag))
        if smax > 2:
            xm = x[:, nhalf : nhalf * smax].unfold(-1, nwin, nhalf)[:, : smax - 2]
            ym = y[:, nhalf : nhalf * smax].unfold(-1, nwin, nhalf)[:, : smax - 2]
            mids_out.append(_segment_covariance(xm, ym, win, win_corr, win_sum2, maxlag))
        else:
            empty = x.new_zeros((x.shape[0], 0))
            mids_out.append((empty, empty, empty))

    def assemble(i: int) -> Tensor:
        e = torch.cat([t[i] for t in ends_out]).reshape(batch, nchan, 2)
        m = torch.cat([t[i] for t in mids_out]).reshape(batch, nchan, smax - 2)
        return _assemble_segments(e[..., 0], m, e[..., 1], nseg)

    cov = assemble(0).clamp(0.0, 1.0)
    msx = 2.0 * assemble(1)
    msy = 2.0 * assemble(2)
    return BmCovariance(cov, msx, msy)


class AveCovariance(NamedTuple):
    """Output of :func:`ave_covary2`.

    Attributes
    ----------
    average_covariance : Tensor [shape=(batch,)]
        Mean covariance over the time-frequency tiles above threshold.
    ihc_sync_covariance : Tensor [shape=(batch, 6)]
        Same with the 6 IHC-synchronisation low-pass weightings (index 4 = 5th-order,
        3.5 kHz: HASQI's ``BMsync5``).
    """

    average_covariance: Tensor
    ihc_sync_covariance: Tensor


def ave_covary2(
    signal_cross_covariance: Tensor,
    reference_signal_mean_square: Tensor,
    threshold_db: float,
    lp_filter_order: np.ndarray | None = None,
    freq_cutoff: np.ndarray | None = None,
    lengths: Tensor | None = None,
) -> AveCovariance:
    """Average BM cross-covariance over the time-frequency tiles above threshold.

    Parameters
    ----------
    signal_cross_covariance : Tensor [shape=(batch, nchan, nseg)], float
        From :func:`bm_covary`.
    reference_signal_mean_square : Tensor [shape=(batch, nchan, nseg)], float
        Reference mean squares from :func:`bm_covary` (dB SL squared, doubled).
    threshold_db : float
        Threshold in dB SL (2.5 in HASQI).
    lp_filter_order : array-like [shape=(6,)], optional
        Orders of the IHC-synchrony low-pass weightings (default ``[1, 3, 5, 5, 5, 5]``).
    freq_cutoff : array-like [shape=(6,)], optional
        Their cut-off frequencies in Hz (default ``[1500, 2000, 2500, 3000, 3500, 4000]``).
    lengths : Tensor [shape=(batch,)], int, optional
        Valid segments per item (:func:`segment_counts`); padding segments are ignored.

    Returns
    -------
    AveCovariance
        Zeros for items with at most one segment above threshold (warning logged).

    Raises
    ------
    ValueError
        On shape mismatch.

    Notes
    -----
    Reproduces pyclarity quirks: ``sqrt(mean square)`` is treated as a dB value (the BM signal is in
    dB SL units); a *segment* is kept when ``20 log10(mean_k 10^(rms/20)) > threshold``; within
    kept segments a *tile* counts when its own ``rms > threshold``.  The synchrony weight of band
    ``k`` is ``sqrt(fc^2p / (fc^2p + f_k^2p))`` with ``f_k`` the unshifted ERB centre frequencies
    (80-8000 Hz); the weighted average divides by the sum of weights (NaN if that sum is 0,
    which cannot happen when a segment is kept).

    References
    ----------
    pyclarity 0.9.0 ``eb.ave_covary2``; Kates & Arehart (2014) Sec. 2.4, Eq. (6)-(7);
    Johnson DH (1980) J Acoust Soc Am 68:1115; Tan CT et al. (2004) J Audio Eng Soc 52(9).
    """
    _check_pair("signal_cross_covariance", signal_cross_covariance,
                "reference_signal_mean_square", reference_signal_mean_square)
    cov = signal_cross_covariance
    batch, nchan, _ = cov.shape
    order = np.array([1, 3, 5, 5, 5, 5]) if lp_filter_order is None else np.asarray(
        lp_filter_order)
    cutoff = 1000 * np.array([1.5, 2.0, 2.5, 3.0, 3.5, 4.0]) if freq_cutoff is None else (
        np.asarray(freq_cutoff, dtype=np.float64))
    cf = center_frequency(nchan).numpy()  # unshifted, 80-8000 Hz, ascending
    fc2p = (cutoff ** (2 * order))[:, None]  # [6, 1]
    freq2p = cf[None, :] ** (2 * order[:, None])  # [6, nchan]
    fsync = _const(np.sqrt(fc2p / (fc2p + freq2p)), cov)  # [6, nchan]

    rms = torch.sqrt(reference_signal_mean_square)
    seg_level = 20 * torch.log10(torch.sum(10 ** (rms / 20), dim=1) / nchan)  # [B, S]
    seg_mask = seg_level > threshold_db
    valid = _valid_segments(lengths, batch, cov.shape[2], cov.device)
    if valid is not None:
        seg_mask = seg_mask & valid
    nseg = seg_mask.sum(-1)
    active = nseg > 1
    if not bool(active.all()):
        logger.warning("ave_covary2: %d item(s) below threshold, outputs set to 0",
                       int((~active).sum()))
    tile = (seg_mask[:, None, :] & (rms > threshold_db)).to(cov.dtype)  # [B, C, S]
    csum_band = (tile * cov).sum(-1)  # [B, C]
    wsum_band = tile.sum(-1)
    csum = csum_band.sum(-1)
    wsum = wsum_band.sum(-1)
    average = torch.where(wsum >= 1, csum / wsum.clamp(min=1), torch.zeros_like(csum))
    sync = (csum_band @ fsync.T) / (wsum_band @ fsync.T)  # [B, 6]
    zero = torch.zeros((), dtype=cov.dtype, device=cov.device)
    average = torch.where(active, average, zero)
    sync = torch.where(active[:, None], sync, zero)
    return AveCovariance(average, sync)
