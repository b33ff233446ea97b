"""Views of training items: the same scenes, seen by models with other inputs.

:class:`FrontEarsView` turns the six-microphone items of any training dataset
(:class:`~clarity_se.data.scene_segments.SceneSegmentDataset`, the domain-randomised mixer)
into the front-microphone pair at another sample rate, for mono models run once per ear.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from clarity_se.data.scene import CEC2_SAMPLE_RATE as SAMPLE_RATE

__all__ = ["FrontEarsView"]


class FrontEarsView(Dataset):
    """The front-microphone pair of another dataset's items, resampled: for mono models.

    Wraps any dataset whose items are ``{"mixture": [6, T], "sources": [n_src, 2, T], ...}`` at
    44.1 kHz (:class:`SceneSegmentDataset`, or an on-the-fly mixer yielding the same dict) and
    yields ``{"mixture": [2, T'], "sources": [n_src, 2, T'], ...}``: the ``CH1-L, CH1-R``
    mixture rows and the sources, resampled to ``sample_rate`` with
    :class:`~clarity_se.dsp.polyphase.PolyphaseResampler` (the resampler the ``dtln`` enhancer's
    published variant uses at run time), ``T' = ceil(T * sample_rate / 44100)``. A model that
    maps each input channel to an enhanced channel (the published 16 kHz DTLN) then learns
    the front-microphone target of each ear.

    Parameters
    ----------
    base : Dataset
        The six-microphone dataset (its ``sample_rate`` attribute, if any, must be 44100).
    sample_rate : int
        Output rate, Hz.

    Raises
    ------
    ValueError
        If ``base`` is not at 44.1 kHz or ``sample_rate`` is not positive.
    """

    def __init__(self, base: Dataset, sample_rate: int) -> None:
        from clarity_se.dsp.polyphase import PolyphaseResampler

        if int(getattr(base, "sample_rate", SAMPLE_RATE)) != SAMPLE_RATE:
            raise ValueError(f"FrontEarsView: base dataset must be {SAMPLE_RATE} Hz")
        if sample_rate < 1:
            raise ValueError(f"FrontEarsView: sample_rate must be positive, got {sample_rate}")
        self.base, self.sample_rate = base, int(sample_rate)
        self.resampler = (
            None if sample_rate == SAMPLE_RATE else PolyphaseResampler(SAMPLE_RATE, sample_rate)
        )

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        """Forwarded to the base dataset."""
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def manifest(self) -> dict:
        """The base dataset's manifest plus ``view`` and the output ``sample_rate``."""
        base = self.base.manifest() if hasattr(self.base, "manifest") else {}
        return {**base, "view": "front_ears", "sample_rate": self.sample_rate}

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.resampler is None:
            return x
        return torch.from_numpy(self.resampler(x.numpy()))

    def __getitem__(self, index: int) -> dict:
        item = dict(self.base[index])
        item["mixture"] = self._resample(item["mixture"][:2])
        item["sources"] = self._resample(item["sources"])
        return item
