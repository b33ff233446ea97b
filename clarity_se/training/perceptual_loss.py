r"""A differentiable PESQ-like loss on STFT frames: the perceptual model of ITU-T P.862 as PMSQE
uses it for training.

The loss follows Martin-Donas et al. (2018, PMSQE), who made the disturbance computation of PESQ
(ITU-T P.862, section 10.2) differentiable: both signals' power spectra are aligned in level,
grouped into Bark bands, the reference is partially equalised to the degraded signal's mean
spectrum, the degraded signal's frame gain is compensated, both are mapped to Zwicker loudness,
and the loudness difference outside a masking dead zone gives, per frame, a symmetric
disturbance (the L2 norm over bands) and an asymmetric one (the L1 norm, weighted by how much
the degraded band power exceeds the reference: added components, such as residual echo or
noise, are louder to listeners than missing ones)::

    D_b     = L_b(degraded) - L_b(reference)
    D'_b    = sign(D_b) max(|D_b| - 0.25 min(L_b(degraded), L_b(reference)), 0)
    d_sym   = sqrt(sum_b (w_b D'_b)^2)
    A_b     = ((P_b(degraded) + c_b) / (P_b(reference) + c_b))^1.2,  0 below 3, at most 12
    d_asym  = sum_b w_b |D'_b| A_b

with ``w_b`` the band widths (Bark) and the frame means taken over the frames where the
near-end speech is active (PESQ scores the speech; here the double-talk frames).

Deviations from P.862 and PMSQE (documented, all for a 16 kHz STFT of any size):

- Bark bands of 0.5 Bark from Zwicker and Terhardt's formula on the STFT's own bins (not
  P.862's band tables for its 32 ms frames; DC is left out); the absolute hearing threshold per
  band is Terhardt's (1979) formula at the band's centre, scaled by its width (at most 1 Bark);
  the level alignment brings the mean 300-3000 Hz power of the active frames to 79 dB SPL, the
  listening level P.862 assumes; the loudness exponent is 0.23 in every band.
- No time alignment (the signals are aligned by construction), no L6 aggregation over
  split-second intervals (the mean over the active frames), and no mapping to MOS.
- The offsets of the frequency equalisation (``1000 c_b``), the frame-gain compensation
  (``5000 sum_b c_b``; smoothed 0.8 / 0.2 and clipped to [3e-4, 5] as in P.862) and the
  asymmetry factor (``50 c_b``) take P.862's numbers as multiples of the band's hearing
  threshold ``c_b`` under this level alignment: a choice of this port, not a conversion of
  P.862's internal units.

References
----------
J. M. Martin-Donas, A. M. Gomez, J. A. Gonzalez, A. M. Peinado, "A deep learning loss function
based on the perceptual evaluation of the speech quality", IEEE Signal Processing Letters 25(11),
2018 (PMSQE).
ITU-T Recommendation P.862, "Perceptual evaluation of speech quality (PESQ)", 2001, section 10.2.
E. Terhardt, "Calculating virtual pitch", Hearing Research 1, 1979 (threshold in quiet).
E. Zwicker, E. Terhardt, "Analytical expressions for critical-band rate and critical bandwidth",
JASA 68(5), 1980 (Bark scale).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: level (dB SPL) to which the active speech frames are aligned (P.862's listening level)
LISTENING_LEVEL_DB = 79.0
#: width of the Bark bands
BAND_BARK = 0.5
#: Zwicker's loudness exponent
ZWICKER_POWER = 0.23
#: P.862's weight of the symmetric disturbance in its MOS mapping (its asymmetric one, 0.0309,
#: is replaced by ``train.perceptual_asymmetry``)
SYMMETRIC_WEIGHT = 0.1


def bark(f_hz):
    """Critical-band rate (Bark) of frequencies ``f_hz`` (Zwicker and Terhardt 1980)."""
    f = np.asarray(f_hz, dtype=float)
    return 13.0 * np.arctan(0.00076 * f) + 3.5 * np.arctan((f / 7500.0) ** 2)


def hearing_threshold_db(f_hz):
    """Absolute threshold of hearing (dB SPL) at ``f_hz`` (Terhardt 1979; 20 Hz at least)."""
    k = np.maximum(np.asarray(f_hz, dtype=float), 20.0) / 1000.0
    return 3.64 * k ** -0.8 - 6.5 * np.exp(-0.6 * (k - 3.3) ** 2) + 1e-3 * k ** 4


class PesqLikeLoss(torch.nn.Module):
    """Differentiable PESQ-like disturbances of STFT frames (module docstring).

    Parameters
    ----------
    n_bins : int
        One-sided STFT bins ``F`` (``n_fft // 2 + 1``), spanning 0 to ``sample_rate / 2``.
    sample_rate : int
        Hz.

    Raises
    ------
    ValueError
        If ``n_bins < 16`` (too few bins for Bark bands).

    Notes
    -----
    ``forward(est, target, active)`` takes complex spectra ``[batch, frames, F]`` (the enhanced
    output and the clean reference, in any common scale: both are level-aligned separately, so
    the loss does not see a global gain) and ``active [batch, frames]`` (bool or 0/1: the
    frames to score, each crop needing at least one), and returns ``(d_sym, d_asym)``, each
    ``[batch]``: the mean symmetric and asymmetric frame disturbances over the active frames.
    A training objective weighs them, P.862 by 0.1 and 0.0309.
    """

    def __init__(self, n_bins: int, sample_rate: int = 16000) -> None:
        super().__init__()
        if n_bins < 16:
            raise ValueError(f"PesqLikeLoss: n_bins must be >= 16, got {n_bins}")
        f = np.arange(n_bins) * (sample_rate / 2) / (n_bins - 1)
        df = f[1]
        z = bark(f)
        idx = np.floor(z / BAND_BARK).astype(int)
        idx[0] = -1  # DC is in no band
        bands = sorted(set(idx[1:].tolist()))
        matrix = np.zeros((n_bins, len(bands)))
        width, centre = np.zeros(len(bands)), np.zeros(len(bands))
        for j, b in enumerate(bands):
            sel = idx == b
            matrix[sel, j] = 1.0
            width[j] = max(bark(f[sel].max() + df / 2) - bark(max(f[sel].min() - df / 2, 0)),
                           0.05)
            centre[j] = f[sel].mean()
        threshold = 10 ** (hearing_threshold_db(centre) / 10) * np.minimum(width, 1.0)
        self.register_buffer("bands", torch.tensor(matrix, dtype=torch.float32))
        self.register_buffer("width", torch.tensor(width, dtype=torch.float32))
        self.register_buffer("threshold", torch.tensor(threshold, dtype=torch.float32))
        self.register_buffer("speech_bins", torch.tensor((f >= 300) & (f <= 3000)))
        kernel = 0.2 * 0.8 ** np.arange(30)  # P.862's first-order gain smoothing, truncated
        self.register_buffer("smoothing", torch.tensor(kernel[::-1].copy(), dtype=torch.float32))

    def forward(self, est, target, active):
        """``(d_sym, d_asym)`` ``[batch]`` (class docstring)."""
        act = active.to(torch.float32)
        n_act = act.sum(-1)
        if bool((n_act == 0).any()):
            raise ValueError("PesqLikeLoss: every crop needs at least one active frame")
        pe = est.real.square() + est.imag.square()
        pt = target.real.square() + target.imag.square()
        level = 10 ** (LISTENING_LEVEL_DB / 10)

        def aligned(p):  # mean 300-3000 Hz power of the active frames -> the listening level
            speech = (p[..., self.speech_bins].sum(-1) * act).sum(-1) / n_act
            return p * (level / (speech + 1e-12))[:, None, None]

        thr = self.threshold
        be, bt = aligned(pe) @ self.bands, aligned(pt) @ self.bands
        # partial frequency equalisation of the reference (audible mean powers, +-20 dB)
        w = act[..., None]
        mean_e = (be * (be > thr) * w).sum(1) / n_act[:, None]
        mean_t = (bt * (bt > thr) * w).sum(1) / n_act[:, None]
        bt = bt * ((mean_e + 1000 * thr) / (mean_t + 1000 * thr)).clamp(0.01, 100.0)[:, None]
        # frame-gain compensation of the degraded signal (smoothed, clipped)
        floor = 5000 * thr.sum()
        ratio = ((be * (be > 100 * thr)).sum(-1) + floor) / ((bt * (bt > 100 * thr)).sum(-1)
                                                             + floor)
        n_k = self.smoothing.numel()
        ratio = F.conv1d(F.pad(ratio[:, None], (n_k - 1, 0), value=1.0),
                         self.smoothing[None, None])[:, 0]
        be = be / ratio.clamp(3e-4, 5.0)[..., None]

        def loudness(p):
            g = ZWICKER_POWER
            return ((thr / 0.5) ** g * ((0.5 + 0.5 * p / thr) ** g - 1)).clamp_min(0)

        le, lt = loudness(be), loudness(bt)
        d = le - lt
        dz = torch.sign(d) * (d.abs() - 0.25 * torch.minimum(le, lt)).clamp_min(0)
        d_sym = torch.sqrt((dz * self.width).square().sum(-1) + 1e-8)
        asym = ((be + 50 * thr) / (bt + 50 * thr)) ** 1.2
        asym = torch.where(asym < 3, torch.zeros_like(asym), asym.clamp_max(12.0))
        d_asym = (dz.abs() * asym * self.width).sum(-1)
        return (d_sym * act).sum(-1) / n_act, (d_asym * act).sum(-1) / n_act
