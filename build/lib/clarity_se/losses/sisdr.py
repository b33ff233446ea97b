"""Scale-invariant SDR and SNR in dB (torch, differentiable, batched over leading dims).

References
----------
J. Le Roux, S. Wisdom, H. Erdogan and J. R. Hershey, "SDR - half-baked or well done?",
Proc. ICASSP 2019, pp. 626-630, Eq. 1-4 (SI-SDR with zero-mean signals).
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Added to energies before the ratio/log so silent inputs give finite values.
EPS = 1e-8


def _check_pair(est: Tensor, ref: Tensor, name: str) -> None:
    if est.shape != ref.shape:
        raise ValueError(
            f"{name}: estimate and reference shapes differ: "
            f"{tuple(est.shape)} vs {tuple(ref.shape)}"
        )
    if est.shape[-1] < 1:
        raise ValueError(f"{name}: signals have no samples")


def si_sdr(est: Tensor, ref: Tensor, *, zero_mean: bool = True, eps: float = EPS) -> Tensor:
    """Scale-invariant signal-to-distortion ratio in dB, per signal.

    ``alpha = <s_hat, s> / ||s||^2``, ``SI-SDR = 10 log10(||alpha s||^2 / ||alpha s - s_hat||^2)``
    (Le Roux et al. 2019, Eq. 1-4), after removing each signal's mean if ``zero_mean``.

    Parameters
    ----------
    est : Tensor [shape=(..., time)], float
        Estimate.
    ref : Tensor [shape=(..., time)], float
        Reference, same shape.
    zero_mean : bool
        Subtract the temporal mean of both first (the paper's convention; default True).
    eps : float
        Regulariser added to numerator and denominator energies.

    Returns
    -------
    Tensor [shape=(...)]
        SI-SDR in dB. Differentiable; any device; dtype of the inputs.

    Raises
    ------
    ValueError
        If the shapes differ or the signals are empty.
    """
    _check_pair(est, ref, "si_sdr")
    if zero_mean:
        est = est - est.mean(dim=-1, keepdim=True)
        ref = ref - ref.mean(dim=-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / ((ref * ref).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = target - est
    return 10 * torch.log10(((target**2).sum(-1) + eps) / ((noise**2).sum(-1) + eps))


def snr(est: Tensor, ref: Tensor, *, eps: float = EPS) -> Tensor:
    """Plain signal-to-noise ratio in dB, ``10 log10(||s||^2 / ||s - s_hat||^2)``, per signal.

    Parameters
    ----------
    est, ref : Tensor [shape=(..., time)], float, same shape

    Returns
    -------
    Tensor [shape=(...)]
        SNR in dB (not scale-invariant). Differentiable; any device.

    Raises
    ------
    ValueError
        If the shapes differ or the signals are empty.
    """
    _check_pair(est, ref, "snr")
    return 10 * torch.log10(((ref**2).sum(-1) + eps) / (((ref - est) ** 2).sum(-1) + eps))


def neg_si_sdr(est: Tensor, ref: Tensor) -> Tensor:
    """Negative SI-SDR in dB (a loss), per signal; see :func:`si_sdr`."""
    return -si_sdr(est, ref)
