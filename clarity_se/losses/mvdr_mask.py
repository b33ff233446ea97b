r"""Error of the beamformer's covariance weights: a loss term for an estimate that drives the MVDR.

The enhancers' default output (:class:`clarity_se.dsp.mvdr.EstimateMVDR`) uses the network's
two-ear estimate ``S`` only through the mask that weights the microphones' outer products into
the target and noise covariances, per bin ``b`` and frame ``k`` of the low-delay STFT::

    m(k, b) = mean over ears e of |S_e|^2 / (|S_e|^2 + |X_e - S_e|^2)

(``X_e`` the ear's front microphone). An SI-SDR loss on ``S`` does not see this mask: it is
blind to the estimate's scale, which the mask is not, and weighs the errors by the waveform's
energy rather than by each bin's share of its covariance. This term measures the mask itself
against the one a perfect estimate gives (``m*`` from the training target ``T``)::

    w(k, b) = P(k, b) / mean_k P(k, b)          P = mean over ears of |X_e|^2
    E       = mean_{k, b} w(k, b) (m(k, b) - m*(k, b))^2
    term    = 10 log10(E + 10^(floor_db / 10))  (dB, as the SI-SDR loss)

``w`` weighs each frame by its share of the bin's covariance (a frame enters ``Phi`` in
proportion to ``|x|^2``, the front microphones standing for the six) and normalises each bin
(each bin has its own filter). Design choices, none from a standard: the mean of the ears'
masks, as the beamformer; every bin; the floor (-40 dB: a mask error of 0.01 RMS) keeps the
logarithm finite for a perfect estimate.

The loss follows the oracle measurement of ``benchmarks/oracles.py`` (``oracle/mvdr_wpe``): the
default back end driven by a perfect ``target_CH1`` gains far more than the hearing-aid DTLN
driving it (``recipes/icassp_2023/dtln/README.md``, "Held-out quality"). Mask-based
beamforming with a trained mask: Heymann et al. 2016 and Erdogan et al. 2016 (their networks
are trained on the mask, not through the beamformer, as here).

References
----------
J. Heymann, L. Drude and R. Haeb-Umbach, "Neural network based spectral mask estimation for
acoustic beamforming", Proc. ICASSP 2016, pp. 196-200.
H. Erdogan, J. R. Hershey, S. Watanabe, M. I. Mandel and J. Le Roux, "Improved MVDR
beamforming using single-channel mask prediction networks", Proc. Interspeech 2016,
pp. 1981-1985.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clarity_se.dsp.lowdelay_stft import LowDelaySTFT

#: power below which a bin's frames count as silent (avoids 0 / 0 in the masks and weights)
TINY = 1e-20


def beamformer_mask(spec_est: Tensor, spec_ref: Tensor) -> Tensor:
    """The beamformer's mask from complex spectra ``[..., 2, frames, bins]`` (ears on dim -3).

    Returns
    -------
    Tensor [shape=(..., frames, bins)]
        ``mean_e |S_e|^2 / (|S_e|^2 + |X_e - S_e|^2)`` (module docstring), in ``[0, 1]``.
    """
    ps = spec_est.real.square() + spec_est.imag.square()
    diff = spec_ref - spec_est
    pn = diff.real.square() + diff.imag.square()
    return (ps / (ps + pn).clamp_min(TINY)).mean(dim=-3)


class MVDRMaskError(nn.Module):
    """Weighted error, dB, of the MVDR mask that an estimate gives (module docstring).

    Parameters
    ----------
    win_length, hop_length, synth_length : int
        The beamformer's low-delay STFT (default 512 / 96 / 192, ``EstimateMVDR``'s).
    floor_db : float
        Floor of the error, dB (default -40).

    Raises
    ------
    ValueError
        (forward) ``est``, ``target`` and ``reference`` not all shaped ``[..., 2, time]`` alike.
    """

    def __init__(self, win_length: int = 512, hop_length: int = 96, synth_length: int = 192,
                 floor_db: float = -40.0) -> None:  # fmt: skip
        super().__init__()
        self.stft = LowDelaySTFT(win_length, hop_length, synth_length)
        self.floor = 10.0 ** (float(floor_db) / 10.0)

    def forward(self, est: Tensor, target: Tensor, reference: Tensor) -> Tensor:
        """Error of ``est``'s mask against ``target``'s.

        Parameters
        ----------
        est, target, reference : Tensor [shape=(..., 2, time)]
            The two-ear estimate, the training target (its perfect value) and the ears' front
            microphones (``mixture[:, :2]``), at the mixture's scale.

        Returns
        -------
        Tensor [shape=(...)]
            ``10 log10(E + floor)`` per item, dB (lower is better).
        """
        if not (est.shape == target.shape == reference.shape) or est.shape[-2:-1] != (2,):
            raise ValueError(f"MVDRMaskError: est, target and reference must be [..., 2, time] "
                             f"alike, got {tuple(est.shape)}, {tuple(target.shape)}, "
                             f"{tuple(reference.shape)}")  # fmt: skip
        s_est, s_tgt, s_ref = (self.stft.analysis(z) for z in (est, target, reference))
        power = (s_ref.real.square() + s_ref.imag.square()).mean(dim=-3)  # [..., frames, bins]
        weight = power / power.mean(dim=-2, keepdim=True).clamp_min(TINY)
        err = (beamformer_mask(s_est, s_ref) - beamformer_mask(s_tgt, s_ref)).square()
        return 10.0 * torch.log10((weight * err).mean(dim=(-2, -1)) + self.floor)
