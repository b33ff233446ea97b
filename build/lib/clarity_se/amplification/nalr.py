"""NAL-R linear prescription and its linear-phase FIR, batched over listeners and ears.

The prescription (Byrne & Dillon 1986) and the filter design reproduce pyclarity 0.9.0's
``clarity.enhancer.nalr.NALR.build`` as the ICASSP 2023 recipe uses it (``nfir=220`` at
44.1 kHz), coefficient for coefficient (agreement ~1e-14, tested to 1e-10):

1. the audiogram is resampled to 250, 500, 1000, 2000, 4000, 6000 Hz (linear interpolation on a
   log-frequency axis, held at the end values; :meth:`Audiogram.resample`);
2. if the largest resampled loss is not positive (e.g. a flat 0 dB HL audiogram) the filter is the
   pure delay ``delta[n - nfir // 2]`` (the reference's ``NALR.delay``);
3. otherwise ``gain_db = X + 0.31 * HL + bias`` with ``bias = [-17, -8, 1, -1, -2, -2]`` dB and
   ``X = 0.05 * H3`` if the three-frequency sum ``H3 = HL(500) + HL(1k) + HL(2k) <= 180`` dB, else
   ``X = 9 + 0.116 * (H3 - 180)``; gains are clipped at 0 dB;
4. the gains, extended flat to 0 Hz and Nyquist, are interpolated linearly (in dB, on a linear
   frequency axis) onto ``nfir + 1`` uniformly spaced frequencies, converted to linear amplitude and
   turned into an ``nfir + 1``-tap linear-phase FIR by pyclarity's port of MATLAB ``fir2``
   (``clarity.evaluator.msbg.msbg_utils.fir2``: piecewise-linear magnitude on a 513-point grid,
   linear phase ``exp(-j pi n dt / 512)``, inverse FFT, Hamming window).

Every step after the resampling is linear in the gains, so :func:`design_nalr_fir` precomputes the
``fir2`` interpolation matrix once per ``(nfir, sample_rate)`` and designs any number of filters
with one matrix product and one batched inverse FFT.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence

import numpy as np
import torch

from clarity_se.data.audiogram import AUDIOMETRIC_FREQUENCIES_HZ, Audiogram, Listener

logger = logging.getLogger(__name__)

#: Audiometric frequencies (Hz) at which NAL-R is prescribed.
NALR_FREQS_HZ = np.array(AUDIOMETRIC_FREQUENCIES_HZ)
#: NAL-R frequency-specific corrections (dB) at :data:`NALR_FREQS_HZ` (Byrne & Dillon 1986).
NALR_BIAS_DB = np.array([-17.0, -8.0, 1.0, -1.0, -2.0, -2.0])
#: Knee (dB) of the three-frequency (0.5, 1, 2 kHz) hearing-loss sum.
NALR_KNEE_DB = 180.0


def nalr_gains_db(audiogram: Audiogram) -> np.ndarray | None:
    """NAL-R insertion gains at 250, 500, 1000, 2000, 4000, 6000 Hz.

    Parameters
    ----------
    audiogram : Audiogram
        Any centre frequencies (Hz) and levels (dB HL); resampled on a log-frequency axis.

    Returns
    -------
    np.ndarray [shape=(6,)] float64 in dB, or None
        Gains clipped at 0 dB; ``None`` where the largest resampled loss is ``<= 0`` dB HL,
        for which the reference uses a pure delay instead of a designed filter.

    References
    ----------
    Byrne, D. & Dillon, H. (1986). The National Acoustic Laboratories' (NAL) new procedure for
    selecting the gain and frequency response of a hearing aid. Ear Hear. 7(4), 257-265.
    pyclarity 0.9.0 ``clarity.enhancer.nalr.NALR.build`` (the ``180`` dB knee and the clip at 0 dB
    are the reference's).
    """
    levels = audiogram.resample(NALR_FREQS_HZ).levels_db_hl
    if np.max(levels) <= 0:
        return None
    critical_loss = levels[1] + levels[2] + levels[3]
    if critical_loss <= NALR_KNEE_DB:
        x_ave = 0.05 * critical_loss
    else:
        x_ave = 9.0 + 0.116 * (critical_loss - NALR_KNEE_DB)
    gain_db = x_ave + 0.31 * levels + NALR_BIAS_DB
    return np.clip(gain_db, a_min=0, a_max=None)


@functools.lru_cache(maxsize=8)
def _design_operators(nfir: int, sample_rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear operators of the reference design for one ``(nfir, sample_rate)``.

    Returns ``(interp, fir2_grid, window)``: ``interp [nfir+1, 8]`` maps the flat-extended dB gains
    at ``[0, 250, ..., 6000, fs/2]`` Hz to the ``nfir + 1`` design frequencies (scipy ``interp1d``
    linear); ``fir2_grid [n_grid, nfir+1]`` maps the linear gains at the design frequencies to the
    ``fir2`` magnitude grid (the reference's loop, including its ``lap`` rule for repeated
    frequencies, which never triggers here); ``window`` is the Hamming window of ``nfir + 1`` taps.
    """
    fmax = 0.5 * sample_rate
    n_taps = nfir + 1
    freq_ext = np.concatenate(([0.0], NALR_FREQS_HZ.astype(np.float64), [fmax]))
    if np.any(np.diff(freq_ext) <= 0):
        raise ValueError(
            f"nalr.sample_rate: {sample_rate} Hz is too low, Nyquist must exceed 6000 Hz"
        )
    center_freqs = np.linspace(0, nfir, nfir + 1) / nfir
    x_new = fmax * center_freqs
    # scipy.interpolate.interp1d(kind="linear"): lo = searchsorted(x, x_new) - 1 (clipped),
    # y = slope * (x_new - x_lo) + y_lo with slope = (y_hi - y_lo) / (x_hi - x_lo).
    hi = np.clip(np.searchsorted(freq_ext, x_new), 1, freq_ext.size - 1)
    lo = hi - 1
    frac = (x_new - freq_ext[lo]) / (freq_ext[hi] - freq_ext[lo])
    interp = np.zeros((n_taps, freq_ext.size))
    interp[np.arange(n_taps), lo] += 1.0 - frac
    interp[np.arange(n_taps), hi] += frac

    # MATLAB fir2 as ported in clarity.evaluator.msbg.msbg_utils.fir2.
    n_interpolate = 2 ** math.ceil(math.log(n_taps) / math.log(2.0)) if n_taps >= 1024 else 512
    lap = int(np.fix(n_interpolate / 25))
    freqs = center_freqs.copy()
    freqs[0] = 0.0
    freqs[-1] = 1.0
    n_grid = n_interpolate + 1
    grid = np.zeros((n_grid, n_taps))
    grid[0, 0] = 1.0
    df = np.diff(freqs)
    nb = 0
    for i in range(n_taps - 1):
        if df[i] == 0:
            nb = int(np.ceil(nb - lap / 2))
            ne = nb + lap - 1
        else:
            ne = int(np.fix(freqs[i + 1] * n_grid)) - 1
        if ne >= nb:
            j = np.arange(nb, ne + 1)
            inc = np.zeros(j.size) if nb == ne else (j - nb) / (ne - nb)
            grid[nb : ne + 1, :] = 0.0
            grid[nb : ne + 1, i + 1] = inc
            grid[nb : ne + 1, i] = 1.0 - inc
        nb = ne + 1
    from clarity_se.dsp.designs import scipy_design

    window = scipy_design("windows.hamming", n_taps)
    return interp, grid, window


def _fir2_from_gains(
    gains_linear: np.ndarray, nfir: int, grid: np.ndarray, window: np.ndarray
) -> np.ndarray:
    """Reference ``fir2`` tail: linear gains ``[n, nfir + 1]`` -> taps ``[n, nfir + 1]``."""
    n_taps = nfir + 1
    n_grid = grid.shape[0]
    spectrum = gains_linear @ grid.T  # [n, n_grid], the piecewise-linear magnitude
    dt = 0.5 * (n_taps - 1)
    rad = -dt * 1j * math.pi * np.arange(0, n_grid) / (n_grid - 1)
    spectrum = spectrum * np.exp(rad)
    full = np.concatenate((spectrum, spectrum[:, n_grid - 2 : 0 : -1].conj()), axis=1)
    impulse = np.real(np.fft.ifft(full, axis=1))
    return impulse[:, :n_taps] * window


def _as_ear_lists(audiograms: Sequence) -> list[list[Audiogram]]:
    rows: list[list[Audiogram]] = []
    for index, item in enumerate(audiograms):
        if isinstance(item, Listener):
            rows.append([item.audiogram_left, item.audiogram_right])
        elif isinstance(item, Audiogram):
            rows.append([item])
        else:
            try:
                ears = list(item)
            except TypeError:
                raise ValueError(
                    f"design_nalr_fir: audiograms[{index}] must be a Listener, an Audiogram or a "
                    f"sequence of Audiograms, got {type(item).__name__}"
                ) from None
            if not ears or not all(isinstance(a, Audiogram) for a in ears):
                raise ValueError(
                    f"design_nalr_fir: audiograms[{index}] must hold Audiogram objects"
                )
            rows.append(ears)
    if not rows:
        raise ValueError("design_nalr_fir: no audiograms given")
    n_ears = {len(r) for r in rows}
    if len(n_ears) != 1:
        raise ValueError(
            f"design_nalr_fir: every item must have the same number of ears, got {n_ears}"
        )
    return rows


def design_nalr_fir(
    audiograms: Sequence[Listener] | Sequence[Sequence[Audiogram]] | Listener | Audiogram,
    *,
    nfir: int = 220,
    sample_rate: float = 44100,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Design the NAL-R FIR of every ear of every listener.

    Parameters
    ----------
    audiograms : sequence of Listener, or sequence of sequences of Audiogram, or one of either
        ``batch`` items; a ``Listener`` contributes its ``(left, right)`` ears, a sequence of
        ``Audiogram`` its ears in the given order, a bare ``Audiogram`` one ear. All items need the
        same number of ears.
    nfir : int
        Filter order (``nalr.nfir``); the filter has ``nfir + 1`` taps and a group delay of
        ``nfir / 2`` samples. 220 in the ICASSP 2023 recipe.
    sample_rate : float
        Hz (``nalr.sample_rate``, 44100 in the recipe); must exceed 12 kHz.
    dtype, device : torch dtype and device of the result (float64 CPU by default).

    Returns
    -------
    torch.Tensor [shape=(batch, ears, nfir + 1)]
        FIR coefficients, linear-phase (symmetric). Ears whose largest resampled loss is ``<= 0``
        dB HL get the pure delay ``delta[n - nfir // 2]``, as in the reference. Not differentiable
        (designed in float64 NumPy, then moved).

    Raises
    ------
    ValueError
        If ``audiograms`` is empty or malformed, ``nfir < 1``, or the sample rate is too low.

    References
    ----------
    Byrne & Dillon (1986), see :func:`nalr_gains_db`. pyclarity 0.9.0
    ``clarity.enhancer.nalr.NALR.build`` and ``clarity.evaluator.msbg.msbg_utils.fir2`` (MATLAB
    ``fir2`` semantics, Hamming window), reproduced to ~1e-14.

    Examples
    --------
    >>> import numpy as np
    >>> flat = Audiogram(np.array([250, 1000, 4000]), np.array([0.0, 0.0, 0.0]))
    >>> fir = design_nalr_fir([[flat]])
    >>> tuple(fir.shape), float(fir[0, 0, 110]), float(fir.abs().sum())
    ((1, 1, 221), 1.0, 1.0)
    """
    if isinstance(audiograms, (Listener, Audiogram)):
        audiograms = [audiograms]
    if not isinstance(nfir, (int, np.integer)) or nfir < 1:
        raise ValueError(f"nalr.nfir must be a positive integer, got {nfir!r}")
    rows = _as_ear_lists(audiograms)
    n_batch, n_ears = len(rows), len(rows[0])
    interp, grid, window = _design_operators(int(nfir), float(sample_rate))
    taps = np.zeros((n_batch * n_ears, nfir + 1))
    gains_db, designed = [], []
    for flat_index, audiogram in enumerate(a for row in rows for a in row):
        gain = nalr_gains_db(audiogram)
        if gain is None:
            taps[flat_index, nfir // 2] = 1.0
        else:
            gains_db.append(np.concatenate(([gain[0]], gain, [gain[-1]])))
            designed.append(flat_index)
    if designed:
        gains_grid_db = np.stack(gains_db) @ interp.T  # [n, nfir + 1]
        gains_linear = np.power(10, gains_grid_db / 20.0)
        taps[designed] = _fir2_from_gains(gains_linear, int(nfir), grid, window)
    return torch.as_tensor(taps.reshape(n_batch, n_ears, nfir + 1), dtype=dtype, device=device)


def apply_fir(fir: torch.Tensor, signal: torch.Tensor, *, method: str = "auto") -> torch.Tensor:
    """Filter signals with FIRs: full linear convolution, as ``np.convolve(signal, fir)``.

    Parameters
    ----------
    fir : torch.Tensor [shape=(..., taps)]
        Filter coefficients (e.g. from :func:`design_nalr_fir`, ``[batch, ears, taps]``).
    signal : torch.Tensor [shape=(..., time)]
        Signals, broadcastable against ``fir`` in the leading dimensions (``[batch, ears, time]``);
        same dtype and device as ``fir``.
    method : {"auto", "fft", "direct"}
        ``fft`` (real FFT; overlap-add in power-of-two blocks for long signals), ``direct``
        (``conv1d``), or ``auto``: FFT for more than 64 taps, where it is faster on CPU and CUDA.

    Returns
    -------
    torch.Tensor [shape=(..., time + taps - 1)]
        Full convolution (``time + nfir`` samples for an ``nfir + 1``-tap NAL-R filter, like the
        reference's ``np.convolve``). Differentiable; CPU and CUDA. Agrees with ``np.convolve`` to
        float64 rounding (~1e-15 relative to the output peak).

    Raises
    ------
    ValueError
        If shapes do not broadcast, either input is empty, or ``method`` is unknown.

    References
    ----------
    pyclarity 0.9.0 ``clarity.enhancer.nalr.NALR.apply`` (``np.convolve(wav, nalr)``).
    """
    if fir.shape[-1] == 0 or signal.shape[-1] == 0:
        raise ValueError("apply_fir: fir and signal must be non-empty in the last dimension")
    if method not in ("auto", "fft", "direct"):
        raise ValueError(f"apply_fir: method must be 'auto', 'fft' or 'direct', got {method!r}")
    try:  # numpy's rule (torch.broadcast_shapes would import torch._refs and sympy: ~1 s)
        lead = torch.Size(np.broadcast_shapes(tuple(fir.shape[:-1]), tuple(signal.shape[:-1])))
    except ValueError:
        raise ValueError(
            f"apply_fir: fir {tuple(fir.shape)} and signal {tuple(signal.shape)} do not broadcast"
        ) from None
    n_taps, n_time = fir.shape[-1], signal.shape[-1]
    n_out = n_time + n_taps - 1
    if method == "auto":
        method = "fft" if n_taps > 64 else "direct"
    if method == "fft":
        return _fft_convolve(fir, signal, lead)
    sig = signal.expand(*lead, n_time).reshape(1, -1, n_time)
    ker = fir.expand(*lead, n_taps).reshape(-1, 1, n_taps).flip(-1)
    out = torch.nn.functional.conv1d(sig, ker, padding=n_taps - 1, groups=ker.shape[0])
    return out.reshape(*lead, n_out)


def _fft_convolve(fir: torch.Tensor, signal: torch.Tensor, lead: torch.Size) -> torch.Tensor:
    """Full convolution by FFT: one transform for short signals, else overlap-add in blocks.

    Blocks of a power-of-two FFT size (at least 4096 and 8x the filter length) are transformed
    together and their tails added to the next block; for a 5 s signal and 221 taps this is ~3x
    faster than one long FFT on CPU (smaller, cache-resident transforms).
    """
    n_taps, n_time = fir.shape[-1], signal.shape[-1]
    n_out = n_time + n_taps - 1
    n_fft = max(4096, 1 << (8 * n_taps - 1).bit_length())
    if n_out <= n_fft:
        n_fft = 1 << (n_out - 1).bit_length()
        spectrum = torch.fft.rfft(signal, n=n_fft) * torch.fft.rfft(fir, n=n_fft)
        return torch.fft.irfft(spectrum, n=n_fft)[..., :n_out].expand(*lead, n_out)
    hop = n_fft - n_taps + 1
    n_blocks = -(-n_time // hop)
    blocks = torch.nn.functional.pad(signal, (0, n_blocks * hop - n_time))
    blocks = blocks.reshape(*signal.shape[:-1], n_blocks, hop)
    spectrum = torch.fft.rfft(blocks, n=n_fft) * torch.fft.rfft(fir, n=n_fft).unsqueeze(-2)
    pieces = torch.fft.irfft(spectrum, n=n_fft).expand(*lead, n_blocks, n_fft)
    # overlap-add: block b's first hop samples plus block b-1's tail of n_taps - 1 samples
    out = pieces[..., :hop].clone()
    out[..., 1:, : n_taps - 1] += pieces[..., :-1, hop:]
    out = torch.cat((out.reshape(*lead, n_blocks * hop), pieces[..., -1, hop:]), dim=-1)
    return out[..., :n_out]
