"""Training losses: SI-SDR / SNR and utterance-level PIT."""

from clarity_se.losses.emphasis import neg_si_sdr_emphasised, preemphasis
from clarity_se.losses.pit import best_permutation, pairwise_loss, pit_loss, reorder_sources
from clarity_se.losses.sisdr import neg_si_sdr, si_sdr, snr

__all__ = [
    "best_permutation",
    "neg_si_sdr",
    "neg_si_sdr_emphasised",
    "pairwise_loss",
    "pit_loss",
    "preemphasis",
    "reorder_sources",
    "si_sdr",
    "snr",
]
