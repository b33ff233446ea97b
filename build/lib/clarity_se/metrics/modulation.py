"""Envelope-modulation features of HASPI v2, batched over pairs.

Batched PyTorch port of pyclarity 0.9.0 ``clarity/evaluator/haspi/ebm.py``: the ear-model
envelopes (dB SL, ``[batch, nchan, time]``) are lowpass filtered and subsampled
(:func:`env_filter`), silent segments are removed and the log spectrum at every segment is fitted
with half-cosine (cepstral) basis functions (:func:`cepstral_correlation_coef`), each cepstral
sequence is split by a 10-band modulation filterbank (:func:`fir_modulation_filter`) and the
normalised reference/processed cross-covariance is averaged over basis functions 2-6
(:func:`modulation_cross_correlation`).

Variable lengths.  Silence removal keeps a different number of segments per batch item.  The
kept segments of every item are packed to the front of the time axis (in their original order),
the rest is zero padding, and the number of kept segments is carried as ``lengths [batch]``.
Because every convolution here is zero-padded outside the kept segments, the packed layout gives
exactly the reference's per-item results.

All functions run on CPU and CUDA, take dtype/device from their inputs (float64 for
``compat``), and are differentiable except for the silence selection (a hard threshold).

References
----------
J. M. Kates and K. H. Arehart, "The Hearing-Aid Speech Perception Index (HASPI) Version 2",
Speech Communication 131:35-46, 2021, Sec. 3 (envelope modulation analysis, Fig. 2).
pyclarity 0.9.0, ``clarity.evaluator.haspi.ebm``.
"""

from __future__ import annotations

import logging
import math
from typing import NamedTuple

import numpy as np
import scipy.fft
import torch
from torch import Tensor

from clarity_se.random import PairRandom

logger = logging.getLogger(__name__)

__all__ = [
    "HASPI_MODULATION_CENTER_FREQUENCIES_HZ",
    "CepstralCoefficients",
    "ModulationFilterOutput",
    "env_filter",
    "cepstral_basis",
    "cepstral_correlation_coef",
    "add_noise",
    "modulation_filterbank",
    "fir_modulation_filter",
    "modulation_cross_correlation",
]

#: Modulation filter centre frequencies (Hz), spacing factor 1.6 after Dau et al. (1997).
HASPI_MODULATION_CENTER_FREQUENCIES_HZ = (
    2.0,
    6.0,
    10.0,
    16.0,
    25.0,
    40.0,
    64.0,
    100.0,
    160.0,
    256.0,
)


def _check_pair(reference: Tensor, processed: Tensor, *, ndim: int, what: str) -> None:
    for name, x in (("reference", reference), ("processed", processed)):
        if not isinstance(x, Tensor):
            raise ValueError(f"{what}: {name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != ndim:
            raise ValueError(f"{what}: {name} must have {ndim} dims, got shape {tuple(x.shape)}")
    if reference.shape != processed.shape:
        raise ValueError(
            f"{what}: reference shape {tuple(reference.shape)} != processed shape "
            f"{tuple(processed.shape)}"
        )


def env_filter(
    reference_db: Tensor,
    processed_db: Tensor,
    *,
    filter_cutoff_hz: float,
    subsample_rate_hz: float,
    sample_rate_hz: float,
) -> tuple[Tensor, Tensor]:
    """Lowpass filter and subsample the ear-model envelopes (dB SL).

    A von Hann (raised-cosine) FIR lowpass keeps the filtered envelope non-negative; the output is
    the zero-phase (centred) filter output taken every ``floor(sample_rate / subsample_rate)``
    samples, starting with sample 0.

    Parameters
    ----------
    reference_db, processed_db : Tensor [shape=(batch, nchan, time)], float
        Envelopes in dB SL, one row per auditory band.
    filter_cutoff_hz : float
        Lowpass cutoff in Hz (HASPI: 320 Hz).
    subsample_rate_hz : float
        Nominal subsampling rate in Hz (HASPI: ``8 * 320 = 2560`` Hz).
    sample_rate_hz : float
        Sampling rate of the envelopes in Hz (24000 Hz from the ear model).

    Returns
    -------
    reference_lp, processed_lp : Tensor [shape=(batch, nchan, ceil(time / step))]
        Filtered and subsampled envelopes, ``step = floor(sample_rate_hz / subsample_rate_hz)``.

    Raises
    ------
    ValueError
        If ``subsample_rate_hz > sample_rate_hz`` ("upsampling rate too high"), if
        ``filter_cutoff_hz > subsample_rate_hz / 2`` ("LP cutoff frequency too high"), or the
        inputs are not equal-shaped 3-D tensors.

    Notes
    -----
    Reproduces pyclarity quirks:

    * The filter length is ``2 * floor(round(0.7 * 1000 / filter_cutoff_hz * 0.001 *
      sample_rate_hz) / 2)`` samples (Python's round-half-to-even; 52 taps for HASPI) and the
      window is MATLAB's ``hanning`` (no zero end points).
    * The step is ``floor(24000 / 2560) = 9``, so the envelopes are really sampled at
      2666.7 Hz while every later stage (modulation filters) is designed for the nominal
      2560 Hz.  We keep that mismatch.
    * pyclarity transposes its 2-D input when it has more columns than rows; our layout is
      explicit (``[batch, nchan, time]``), so there is no such guess.

    References
    ----------
    Kates & Arehart (2021), Sec. 3.1.  pyclarity 0.9.0 ``ebm.env_filter``.
    """
    _check_pair(reference_db, processed_db, ndim=3, what="env_filter")
    if subsample_rate_hz > sample_rate_hz:
        raise ValueError(
            "env_filter: upsampling rate too high (subsample_rate_hz > sample_rate_hz)"
        )
    if filter_cutoff_hz > 0.5 * subsample_rate_hz:
        raise ValueError("env_filter: LP cutoff frequency too high (> subsample_rate_hz / 2)")
    batch, nchan, nsamp = reference_db.shape
    tfilt = 0.7 * (1000 * (1 / filter_cutoff_hz))  # ms, empirical adjustment as the reference
    nfilt = round(0.001 * tfilt * sample_rate_hz)
    nhalf = nfilt // 2
    nfilt = 2 * nhalf
    if nhalf < 1:
        raise ValueError("env_filter: lowpass filter shorter than 2 samples")
    half = 0.5 * (1 - np.cos(2 * np.pi * np.arange(1, nhalf + 1) / (nfilt + 1)))
    benv = np.concatenate((half, half[::-1]))
    benv = benv / np.sum(benv)
    step = math.floor(sample_rate_hz / subsample_rate_hz)
    nout = -(-nsamp // step)
    # y[i] = sum_j x[step*i + nhalf - j] * benv[j]  (zero padded), as a strided correlation
    # = sum_j x[step*i + j - left] * k[j] with k = benv reversed, left = nfilt - 1 - nhalf and x
    # zero outside [0, nsamp).  Polyphase form without padding or frame copies: with
    # j - left = step*q + r and X[m, r] = x[step*m + r] (a strided view of x),
    # y[i] = sum_q Z[i + q, q - qmin], Z = X @ K^T, K[q - qmin, r] = k[step*q + r + left].
    kern_np = benv[::-1]
    left = nfilt - 1 - nhalf
    qmin = (-left) // step
    qmax = (nfilt - 1 - left) // step
    nq = qmax - qmin + 1
    kmat_np = np.zeros((step, nq))
    for c in range(nq):
        for r in range(step):
            j = step * (c + qmin) + r + left
            if 0 <= j < nfilt:
                kmat_np[r, c] = kern_np[j]
    kmat = torch.as_tensor(kmat_np, dtype=reference_db.dtype, device=reference_db.device)
    nfull = nsamp // step  # whole blocks; a partial tail block when nsamp % step
    rows = batch * nchan

    def _filter(x: Tensor) -> Tensor:
        x = x.reshape(rows, nsamp).contiguous()
        blocks = x.as_strided((rows, nfull, step), (nsamp, step, 1))
        z = torch.matmul(blocks, kmat)  # [rows, nfull, nq]
        z_tail = None
        if nfull < nout:
            tail = torch.nn.functional.pad(x[:, nfull * step :], (0, step * nout - nsamp))
            z_tail = torch.matmul(tail, kmat)  # [rows, nq]
        y = x.new_zeros((rows, nout))
        for c in range(nq):
            shift = c + qmin  # y[i] += Z[i + shift, c] for 0 <= i + shift < nout blocks
            i0, i1 = max(0, -shift), min(nout, nfull - shift)
            if i1 > i0:
                y[:, i0:i1] += z[:, i0 + shift : i1 + shift, c]
            if z_tail is not None and 0 <= nfull - shift < nout:
                y[:, nfull - shift] += z_tail[:, c]
        return y.reshape(batch, nchan, nout)

    return _filter(reference_db), _filter(processed_db)


def cepstral_basis(nbands: int, nbasis: int, *, dtype=torch.float64, device=None) -> Tensor:
    """Unit-norm half-cosine basis ``cos(n * pi * k / (nbands - 1))``.

    Parameters
    ----------
    nbands : int
        Number of auditory bands (32).
    nbasis : int
        Number of basis functions (6).

    Returns
    -------
    Tensor [shape=(nbands, nbasis)]

    References
    ----------
    pyclarity 0.9.0 ``ebm.cepstral_correlation_coef`` (``cepm``).
    """
    k = np.arange(nbands)[:, None]
    n = np.arange(nbasis)[None, :]
    basis = np.cos(n * np.pi * k / (nbands - 1))
    basis = basis / np.sqrt(np.sum(basis**2, axis=0, keepdims=True))
    return torch.as_tensor(basis, dtype=dtype, device=device)


def add_noise(
    envelope_db: Tensor,
    thresh_db: float,
    *,
    rng: PairRandom,
    lengths: Tensor | None = None,
) -> Tensor:
    """Add independent Gaussian noise (RMS ``thresh_db`` dB) to subsampled envelopes.

    Parameters
    ----------
    envelope_db : Tensor [shape=(batch, nchan, time)], float
        Envelopes in dB re: auditory threshold.
    thresh_db : float
        Noise RMS in dB (HASPI: 0.1 dB of IHC firing jitter).
    rng : PairRandom
        One stream per batch item; item ``b`` draws ``standard_normal((lengths[b], nchan))``
        (time-major, C order, as the reference's ``(nsamp, nbands)`` draw).
    lengths : Tensor [shape=(batch,)], int, optional
        Valid (packed) samples per item; padding gets no noise.  Default: all ``time`` samples.

    Returns
    -------
    Tensor [shape=(batch, nchan, time)]

    Raises
    ------
    ValueError
        If ``rng`` does not hold one stream per batch item.

    References
    ----------
    Kates & Arehart (2021), Sec. 3.2.  pyclarity 0.9.0 ``ebm.add_noise``.
    """
    batch, nchan, nsamp = envelope_db.shape
    if not isinstance(rng, PairRandom) or len(rng) != batch:
        raise ValueError(f"add_noise: rng must be a PairRandom with {batch} streams")
    if lengths is None:
        lens = [nsamp] * batch
    else:
        lens = [int(v) for v in lengths.tolist()]
    draws = rng.standard_normal(
        [(n, nchan) for n in lens], dtype=envelope_db.dtype, device=envelope_db.device
    )
    if isinstance(draws, Tensor) and all(n == nsamp for n in lens):
        noise = draws.transpose(1, 2)
    else:
        noise = envelope_db.new_zeros((batch, nsamp, nchan))
        for b, d in enumerate(draws):  # at most `batch` tensor copies, not a per-sample loop
            noise[b, : lens[b]] = d
        noise = noise.transpose(1, 2)
    return envelope_db + thresh_db * noise


class CepstralCoefficients(NamedTuple):
    """Output of :func:`cepstral_correlation_coef`.

    Attributes
    ----------
    reference, processed : Tensor [shape=(batch, nbasis, time)]
        Mean-removed cepstral coefficients of the kept (above-threshold) segments, packed to the
        front of the time axis; zero beyond ``lengths``.
    lengths : Tensor [shape=(batch,)], int64
        Number of kept segments per item.
    mask : Tensor [shape=(batch, time)], bool
        Which input segments were kept.
    """

    reference: Tensor
    processed: Tensor
    lengths: Tensor
    mask: Tensor


def cepstral_correlation_coef(
    reference_db: Tensor,
    processed_db: Tensor,
    *,
    thresh_cep: float,
    thresh_nerve: float,
    nbasis: int,
    rng: PairRandom,
    lengths: Tensor | None = None,
    below_threshold: str = "raise",
) -> CepstralCoefficients:
    """Cepstral coefficients of the above-threshold segments of the subsampled envelopes.

    Segments whose reference loudness ``20 log10(mean_k 10^(x_k/20))`` does not exceed
    ``thresh_cep`` dB are removed, Gaussian jitter of RMS ``thresh_nerve`` dB is added (reference
    first, then processed, through ``rng``), the log spectrum of each segment is projected on
    :func:`cepstral_basis` and each coefficient's mean over kept segments is removed.

    Parameters
    ----------
    reference_db, processed_db : Tensor [shape=(batch, nbands, time)], float
        Subsampled envelopes in dB SL (output of :func:`env_filter`).
    thresh_cep : float
        Silence threshold in dB SL (HASPI: 2.5).
    thresh_nerve : float
        Additive noise RMS in dB (HASPI: 0.1).
    nbasis : int
        Number of basis functions (HASPI: 6).
    rng : PairRandom
        Random streams, one per batch item.
    lengths : Tensor [shape=(batch,)], int, optional
        Valid input samples per item (zero padding beyond is never kept); default all.
    below_threshold : {"raise", "keep"}
        What to do with items that keep at most one segment.  ``"raise"`` (the reference's
        behaviour) raises ``ValueError`` naming the items; ``"keep"`` returns them with
        ``lengths <= 1`` (no noise is drawn for them) so the caller can mark them invalid.

    Returns
    -------
    CepstralCoefficients

    Raises
    ------
    ValueError
        "Signal below threshold" if an item keeps <= 1 segment and ``below_threshold="raise"``;
        bad shapes.

    References
    ----------
    Kates & Arehart (2021), Sec. 3.2.  pyclarity 0.9.0 ``ebm.cepstral_correlation_coef``.
    """
    _check_pair(reference_db, processed_db, ndim=3, what="cepstral_correlation_coef")
    if below_threshold not in ("raise", "keep"):
        raise ValueError(f"cepstral_correlation_coef: bad below_threshold {below_threshold!r}")
    batch, nbands, nsamp = reference_db.shape
    xsum = 20 * torch.log10(torch.sum(10 ** (reference_db / 20), dim=1) / nbands)
    mask = xsum > thresh_cep  # [batch, time]
    if lengths is not None:
        lengths = torch.as_tensor(lengths, device=mask.device)
        mask = mask & (torch.arange(nsamp, device=mask.device)[None, :] < lengths[:, None])
    lengths = mask.sum(dim=1)
    bad = (lengths <= 1).nonzero().flatten().tolist()
    if bad and below_threshold == "raise":
        raise ValueError(f"cepstral_correlation_coef: Signal below threshold (items {bad})")
    # Pack kept segments to the front, in order (stable sort of ~mask)
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    idx = order.unsqueeze(1).expand(batch, nbands, nsamp)
    valid = torch.arange(nsamp, device=mask.device)[None, :] < lengths[:, None]  # [batch, time]
    ref = torch.gather(reference_db, 2, idx) * valid[:, None, :]
    proc = torch.gather(processed_db, 2, idx) * valid[:, None, :]
    good = [b for b in range(batch) if b not in bad]
    if good:
        sub = rng.subset(good) if bad else rng
        good_t = torch.as_tensor(good, device=mask.device)
        ref_g = add_noise(ref[good_t], thresh_nerve, rng=sub, lengths=lengths[good_t])
        proc_g = add_noise(proc[good_t], thresh_nerve, rng=sub, lengths=lengths[good_t])
        ref = ref.index_copy(0, good_t, ref_g)
        proc = proc.index_copy(0, good_t, proc_g)
    cepm = cepstral_basis(nbands, nbasis, dtype=reference_db.dtype, device=reference_db.device)
    ref_cep = torch.einsum("bkt,kn->bnt", ref, cepm)
    proc_cep = torch.einsum("bkt,kn->bnt", proc, cepm)
    vmask = valid[:, None, :].to(ref_cep.dtype)
    denom = lengths.clamp(min=1).to(ref_cep.dtype)[:, None, None]
    ref_cep = (ref_cep - ref_cep.sum(dim=2, keepdim=True) / denom) * vmask
    proc_cep = (proc_cep - proc_cep.sum(dim=2, keepdim=True) / denom) * vmask
    return CepstralCoefficients(ref_cep, proc_cep, lengths, mask)


class ModulationFilterOutput(NamedTuple):
    """Output of :func:`fir_modulation_filter`.

    Attributes
    ----------
    reference, processed : Tensor [shape=(batch, nchan, nmod, time)]
        Modulation filterbank outputs (zero beyond ``lengths`` when given).
    center_frequencies_hz : Tensor [shape=(nmod,)]
        Centre frequencies of the filters kept (edges below Nyquist).
    """

    reference: Tensor
    processed: Tensor
    center_frequencies_hz: Tensor


def modulation_filterbank(
    subsample_rate_hz: float,
    center_frequencies_hz=HASPI_MODULATION_CENTER_FREQUENCIES_HZ,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Design the modulation filterbank (float64 numpy).

    Parameters
    ----------
    subsample_rate_hz : float
        Envelope sampling rate the filters are designed for (Hz).
    center_frequencies_hz : sequence of float
        Candidate centre frequencies (Hz); filters whose upper band edge is not below Nyquist are
        dropped.

    Returns
    -------
    kernels : ndarray [shape=(nmod, 2 * max_half + 1)]
        Normalised ``np.hanning(nfir_k + 1)`` lowpass windows, zero padded symmetrically so every
        kernel is centred on tap ``max_half`` (the reference truncates ``nfir_k / 2`` transient
        samples per filter; centring does the same in one convolution).
    center_frequencies_hz : ndarray [shape=(nmod,)]
    nhalf : ndarray [shape=(nmod,)], int

    References
    ----------
    pyclarity 0.9.0 ``ebm.fir_modulation_filter``; band edges ``[0, 4, 8, 12.5, ...]`` Hz,
    ``t0 = 0.24`` s (Q about 1.5).
    """
    cf = np.asarray(center_frequencies_hz, dtype=np.float64)
    nmod = len(cf)
    edge = np.zeros(nmod + 1)
    edge[0:3] = [0, 4, 8]
    for k in range(3, nmod + 1):
        edge[k] = (cf[k - 1] ** 2) / edge[k - 1]
    fn_yq = 0.5 * subsample_rate_hz
    edge = edge[edge < fn_yq]
    nmod = len(edge) - 1
    cf = cf[:nmod]
    t_0 = 0.24
    t = np.zeros(nmod)
    t[0:2] = t_0
    t[2:nmod] = t_0 * cf[2] / cf[2:nmod]
    nfir = 2 * np.floor(t * subsample_rate_hz / 2)
    nhalf = (nfir / 2).astype(np.int64)
    nmax = int(nhalf.max()) if nmod else 0
    kernels = np.zeros((nmod, 2 * nmax + 1))
    for k in range(nmod):
        w = np.hanning(int(nfir[k]) + 1)
        w /= np.sum(w)
        kernels[k, nmax - nhalf[k] : nmax + nhalf[k] + 1] = w
    return kernels, cf, nhalf


def fir_modulation_filter(
    reference_envelope: Tensor,
    processed_envelope: Tensor,
    *,
    subsample_rate_hz: float,
    center_frequencies_hz=HASPI_MODULATION_CENTER_FREQUENCIES_HZ,
    lengths: Tensor | None = None,
) -> ModulationFilterOutput:
    """FIR modulation filterbank by complex demodulation and Hann lowpass filtering.

    Band ``k`` multiplies the sequence by ``sqrt(2) exp(-i pi n f_k / f_nyq)`` (``n = 1..time``),
    lowpass filters it with a Hann window of ``2 floor(t_k f_s / 2) + 1`` taps (transient removed,
    i.e. zero-phase) and modulates back up; band 0 is the plain lowpass.

    Parameters
    ----------
    reference_envelope, processed_envelope : Tensor [shape=(batch, nchan, time)], float
        Subsampled envelopes or cepstral coefficient sequences, packed to the front when
        ``lengths`` is given.
    subsample_rate_hz : float
        Rate the filters are designed for (HASPI: the nominal 2560 Hz, see :func:`env_filter`).
    center_frequencies_hz : sequence of float
        Candidate centre frequencies (default the 10 HASPI bands, 2-256 Hz).
    lengths : Tensor [shape=(batch,)], int, optional
        Valid samples per item; samples beyond are treated as absent (zero) and their outputs
        are set to zero.

    Returns
    -------
    ModulationFilterOutput

    Raises
    ------
    ValueError
        Bad shapes.

    Notes
    -----
    Demodulation, lowpass filtering and remodulation are folded into one real bandpass FIR per
    band, ``2 h_k[m] cos(pi f_k m / f_nyq)`` (``h_0`` for band 0), applied by FFT convolution
    (one forward transform per signal): mathematically the same as the reference's
    demodulate / convolve / remodulate (differences ~1e-13 relative).

    References
    ----------
    Kates & Arehart (2021), Sec. 3.3, Fig. 2.  pyclarity 0.9.0 ``ebm.fir_modulation_filter``.
    """
    _check_pair(reference_envelope, processed_envelope, ndim=3, what="fir_modulation_filter")
    batch, nchan, nsamp = reference_envelope.shape
    dtype, device = reference_envelope.dtype, reference_envelope.device
    kernels_np, cf, _ = modulation_filterbank(subsample_rate_hz, center_frequencies_hz)
    nmod = len(cf)
    nmax = (kernels_np.shape[1] - 1) // 2
    kernels = torch.as_tensor(kernels_np, dtype=dtype, device=device)
    fn_yq = 0.5 * subsample_rate_hz
    # Demodulate by sqrt(2) exp(-i w n), lowpass with the centred Hann kernel h, remodulate by
    # sqrt(2) exp(i w n) and take the real part: y[n] = sum_m 2 h[m] cos(w m) x[n - m], i.e. one
    # real bandpass FIR per band (band 0: plain lowpass), so x needs a single forward FFT.
    offsets = np.arange(-nmax, nmax + 1)
    mod_np = 2.0 * np.cos(np.pi * cf[:, None] * offsets[None, :] / fn_yq)
    mod_np[0] = 1.0
    kernels = torch.as_tensor(kernels_np * mod_np, dtype=dtype, device=device)
    x = torch.stack((reference_envelope, processed_envelope), dim=0)  # [2, b, c, t]
    if lengths is not None:
        valid = (torch.arange(nsamp, device=device)[None, :] < lengths[:, None]).to(dtype)
        x = x * valid[None, :, None, :]
    nfft = scipy.fft.next_fast_len(nsamp + 2 * nmax, real=True)  # >= linear convolution length
    kf = torch.fft.rfft(kernels, n=nfft)  # [nmod, f]
    # Items are filtered in chunks that keep the spectra below ~2**24 complex values.
    per_item = 2 * nchan * nmod * (nfft // 2 + 1)
    chunk = max(1, (1 << 24) // max(per_item, 1))
    outs = []
    for i0 in range(0, batch, chunk):
        xf = torch.fft.rfft(x[:, i0 : i0 + chunk], n=nfft).unsqueeze(-2)  # [2, b', c, 1, f]
        filt = torch.fft.irfft(xf * kf, n=nfft)  # [2, b', c, nmod, nfft]
        outs.append(filt[..., nmax : nmax + nsamp])
    y = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
    if lengths is not None:
        y = y * valid[None, :, None, None, :]
    cf_t = torch.as_tensor(cf, dtype=dtype)
    return ModulationFilterOutput(y[0], y[1], cf_t)


def modulation_cross_correlation(
    reference_modulation: Tensor,
    processed_modulation: Tensor,
    *,
    lengths: Tensor | None = None,
    basis_slice: slice = slice(1, 6),
) -> Tensor:
    """Normalised cross-covariance per modulation band, averaged over cepstral basis 2-6.

    Parameters
    ----------
    reference_modulation, processed_modulation : Tensor [shape=(batch, nchan, nmod, time)]
        Modulation filterbank outputs (:func:`fir_modulation_filter`).
    lengths : Tensor [shape=(batch,)], int, optional
        Valid samples per item (packed to the front); default all.
    basis_slice : slice
        Basis functions averaged (reference: ``[1:6]``, i.e. basis functions 2-6).

    Returns
    -------
    Tensor [shape=(batch, nmod)]
        ``mean_j |sum x_j y_j| / sqrt(sum x_j^2 sum y_j^2)`` with mean-removed ``x_j, y_j``; a
        band whose energy is below 1e-30 contributes 0 (as the reference).

    Raises
    ------
    ValueError
        Bad shapes.

    References
    ----------
    Kates & Arehart (2021), Sec. 3.3, Eq. (1).  pyclarity 0.9.0
    ``ebm.modulation_cross_correlation``.
    """
    _check_pair(
        reference_modulation, processed_modulation, ndim=4, what="modulation_cross_correlation"
    )
    x, y = reference_modulation[:, basis_slice], processed_modulation[:, basis_slice]
    nsamp = x.shape[-1]
    if lengths is None:
        x = x - x.mean(dim=-1, keepdim=True)
        y = y - y.mean(dim=-1, keepdim=True)
    else:
        valid = (torch.arange(nsamp, device=x.device)[None, :] < lengths[:, None]).to(x.dtype)
        valid = valid[:, None, None, :]
        denom = lengths.clamp(min=1).to(x.dtype)[:, None, None, None]
        x = (x - (x * valid).sum(-1, keepdim=True) / denom) * valid
        y = (y - (y * valid).sum(-1, keepdim=True) / denom) * valid
    small = 1e-30
    xsum = (x * x).sum(-1)
    ysum = (y * y).sum(-1)
    cross = (x * y).sum(-1).abs()
    ok = (xsum >= small) & (ysum >= small)
    cov = torch.where(
        ok,
        cross / torch.sqrt(torch.where(ok, xsum * ysum, torch.ones_like(xsum))),
        torch.zeros_like(xsum),
    )
    return cov.mean(dim=1)
