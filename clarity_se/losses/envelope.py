r"""Correlation of slow band envelopes: a loss term that keeps the target's envelope shape.

HASPI v2 (Kates and Arehart 2021) scores intelligibility from the correlation of the processed
and reference signals' log auditory envelopes, filtered into ten modulation bands; its two
slowest bands (0-4 and 4-8 Hz, :data:`clarity_se.metrics.modulation` band edges) carry the
syllable rhythm of speech. An enhancer trained on SI-SDR alone may trade a small distortion of
that slow envelope (a mask that dips with the interference) for more removed interference,
which SI-SDR rewards and HASPI does not. This term measures that distortion directly, in the
manner of the STOI-based training losses (Kolbaek et al. 2018; Fu et al. 2018) but on HASPI's
slow, log-compressed envelopes::

    P_b[m]  = sum_k W[b, k] |X[k, m]|^2          (1/3-octave bands b, STFT frames m)
    E_b[m]  = log(P_b[m] + floor_b)              floor_b = 10^(floor_db/10) max_m P_b[m]
    S_b     = E_b * h                            (Hann smoothing over ``smooth_s``)
    rho_b   = corr_m(S_b^est, S_b^ref)           (Pearson over the frames)
    rho     = mean_b rho_b

and the loss term is ``1 - rho`` (0 when the estimate's slow band envelopes are an affine map
of the reference's: a gain per band does not count, a changed shape does).

Design choices (documented, none from a standard):

- a 32 ms Hann STFT rounded up to a power of two (2048 points at 44.1 kHz, 512 at 16 kHz) with
  a 10 ms hop (a 100 Hz envelope rate);
- 1/3-octave bands with centres 250 Hz to 8 kHz (STOI's band layout, Taal et al. 2011, started
  at 250 Hz so that every band holds a bin at 16 kHz; 16 bands at 44.1 kHz, 15 at 16 kHz, where
  the 8 kHz band's top edge is above Nyquist);
- the floor 40 dB below each signal's own band peak: the envelope below it (where HASPI's
  threshold removes it) hardly counts, and own peaks keep the term invariant to a gain per band,
  as SI-SDR is to a gain;
- a 130 ms Hann smoothing kernel (13 frames: gain 0.95 at 2 Hz, 0.5 near 7 Hz, below 0.02 from
  15 Hz), so the correlation is that of the modulations below about 8 Hz, HASPI's two slowest
  bands;
- the correlation over the whole signal (a training crop of a few seconds), not over STOI's
  384 ms segments.

References
----------
J. M. Kates and K. H. Arehart, "The Hearing-Aid Speech Perception Index (HASPI) Version 2",
Speech Communication 131, 2021 (log envelopes, modulation bands).
M. Kolbaek, Z.-H. Tan and J. Jensen, "Monaural speech enhancement using deep neural networks by
maximizing a short-time objective intelligibility measure", Proc. ICASSP 2018.
S.-W. Fu, T.-W. Wang, Y. Tsao, X. Lu and H. Kawai, "End-to-end waveform utterance enhancement
for direct evaluation metrics optimization by fully convolutional neural networks", IEEE/ACM
TASLP 26(9), 2018.
C. H. Taal, R. C. Hendriks, R. Heusdens and J. Jensen, "An algorithm for intelligibility
prediction of time-frequency weighted noisy speech", IEEE TASLP 19(7), 2011 (1/3-octave bands).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

#: STFT window length (s) before rounding up to a power of two
WINDOW_S = 0.032
#: STFT hop (s): the envelope rate is its inverse (100 Hz)
HOP_S = 0.010
#: centre frequencies of the lowest and highest 1/3-octave bands (Hz)
LOWEST_BAND_HZ = 250.0
HIGHEST_BAND_HZ = 8000.0
#: the envelope floor below each signal's band peak (dB)
FLOOR_DB = -40.0
#: length of the Hann smoothing of the log envelopes (s)
SMOOTH_S = 0.13


def third_octave_bands(sample_rate: int, n_fft: int) -> Tensor:
    """Rectangular 1/3-octave band matrix on an ``n_fft``-point STFT's bins.

    Parameters
    ----------
    sample_rate : int
        Sampling rate (Hz).
    n_fft : int
        FFT length (samples); ``n_fft // 2 + 1`` bins.

    Returns
    -------
    Tensor [shape=(n_bands, n_fft // 2 + 1)], float32
        ``W[b, k] = 1`` where bin ``k``'s frequency lies in band ``b``
        (``[f_c 2^(-1/6), f_c 2^(1/6))``, centres ``250 * 2^(i/3)`` Hz up to 8 kHz); the bands
        above the Nyquist frequency are left out.

    Raises
    ------
    ValueError
        If a band holds no bin (``n_fft`` too short for the sample rate) or no band fits.
    """
    n_centres = int(round(3 * math.log2(HIGHEST_BAND_HZ / LOWEST_BAND_HZ))) + 1
    centres = LOWEST_BAND_HZ * 2.0 ** (np.arange(n_centres) / 3.0)
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    rows = []
    for fc in centres:
        lo, hi = fc * 2.0 ** (-1 / 6), fc * 2.0 ** (1 / 6)
        if hi > sample_rate / 2:
            break
        row = (freqs >= lo) & (freqs < hi)
        if not row.any():
            raise ValueError(
                f"third_octave_bands: the band at {fc:.0f} Hz holds no bin of a {n_fft}-point "
                f"STFT at {sample_rate} Hz"
            )
        rows.append(row)
    if not rows:
        raise ValueError(f"third_octave_bands: no band below Nyquist at {sample_rate} Hz")
    return torch.as_tensor(np.stack(rows).astype(np.float32))


def _smoothing_kernel(n_frames: int) -> Tensor:
    """Unit-sum Hann kernel of ``n_frames`` frames (no zero end points)."""
    w = np.hanning(n_frames + 2)[1:-1]
    return torch.as_tensor(w / w.sum(), dtype=torch.float32)


class EnvelopeCorrelation(torch.nn.Module):
    """Mean over 1/3-octave bands of the correlation of slow log band envelopes.

    Parameters
    ----------
    sample_rate : int
        Sampling rate of the signals (Hz).

    Raises
    ------
    ValueError
        If ``sample_rate`` is not positive or too low for one band below Nyquist.

    Notes
    -----
    The formula, its design choices and sources are in the module docstring. Differentiable
    with respect to the estimate; the floors are taken without gradient.
    """

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        if sample_rate <= 0:
            raise ValueError(f"EnvelopeCorrelation: sample_rate must be > 0, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.n_fft = 1 << math.ceil(math.log2(WINDOW_S * sample_rate))
        self.hop = max(1, round(HOP_S * sample_rate))
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.register_buffer("bands", third_octave_bands(sample_rate, self.n_fft), persistent=False)
        n_smooth = max(1, round(SMOOTH_S / HOP_S))
        self.register_buffer("kernel", _smoothing_kernel(n_smooth), persistent=False)

    def band_envelopes(self, signal: Tensor) -> Tensor:
        """Band powers ``P_b[m]``.

        Parameters
        ----------
        signal : Tensor [shape=(..., time)], float

        Returns
        -------
        Tensor [shape=(..., n_bands, frames)]
            Power per 1/3-octave band and STFT frame (centred frames, 10 ms hop).
        """
        lead = signal.shape[:-1]
        spec = torch.stft(
            signal.reshape(-1, signal.shape[-1]), self.n_fft, self.hop,
            window=self.window, center=True, return_complex=True,
        )
        power = spec.real**2 + spec.imag**2
        out = torch.einsum("bk,nkm->nbm", self.bands, power)
        return out.reshape(*lead, *out.shape[-2:])

    @staticmethod
    def _floor(power: Tensor) -> Tensor:
        peak = power.detach().amax(dim=-1, keepdim=True)
        return 10.0 ** (FLOOR_DB / 10.0) * peak + torch.finfo(power.dtype).tiny

    def _slow_log(self, power: Tensor, floor: Tensor) -> Tensor:
        env = torch.log(power + floor)
        flat = env.reshape(-1, 1, env.shape[-1])
        k = self.kernel.numel()
        flat = F.conv1d(F.pad(flat, (k // 2, k - 1 - k // 2), mode="replicate"),
                        self.kernel.reshape(1, 1, -1))
        return flat.reshape(env.shape)

    def forward(self, est: Tensor, ref: Tensor, eps: float = 1e-8) -> Tensor:
        """Correlation ``rho`` per signal.

        Parameters
        ----------
        est, ref : Tensor [shape=(..., time)], float, same shape
            Estimate and reference, at ``sample_rate``; at least one STFT window long.
        eps : float
            Added to the envelope variances (a silent reference band gives correlation 0).

        Returns
        -------
        Tensor [shape=(...)]
            Mean over bands of the Pearson correlation over frames, in ``[-1, 1]``.

        Raises
        ------
        ValueError
            If the shapes differ or the signals are shorter than one window.
        """
        if est.shape != ref.shape:
            raise ValueError(f"EnvelopeCorrelation: est {tuple(est.shape)} and ref "
                             f"{tuple(ref.shape)} must have the same shape")
        if est.shape[-1] < self.n_fft:
            raise ValueError(f"EnvelopeCorrelation: signals of {est.shape[-1]} samples are "
                             f"shorter than one {self.n_fft}-point window")
        p_ref = self.band_envelopes(ref)
        p_est = self.band_envelopes(est)
        s_ref = self._slow_log(p_ref, self._floor(p_ref))
        s_est = self._slow_log(p_est, self._floor(p_est))
        s_ref = s_ref - s_ref.mean(dim=-1, keepdim=True)
        s_est = s_est - s_est.mean(dim=-1, keepdim=True)
        num = (s_ref * s_est).sum(dim=-1)
        den = torch.sqrt(((s_ref**2).sum(dim=-1) + eps) * ((s_est**2).sum(dim=-1) + eps))
        return (num / den).mean(dim=-1)
