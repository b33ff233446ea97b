"""The training dataset: fixed-length segments of CEC2-layout scenes (mixture, target[, residual]).

Each item is one scene of a CEC2-layout split (``<root>/clarity_data/<split>/scenes``):

* ``mixture``: ``[6, segment]`` float32, rows ``CH1-L, CH1-R, CH2-L, CH2-R, CH3-L, CH3-R``
  (official int16 / 32768 scaling);
* ``sources``: ``[n_src, 2, segment]``: the target at the front microphones
  (``target_CH1`` by default, the reverberant target in the mixture's scale) and, for
  ``n_src = 2``, the residual ``mix_CH1 - target``.

Training crops are random but start inside the target's active region (a CEC2 target starts
about 2 s after the interferers), so a segment always contains target speech; the crop of a
given (scene, epoch) depends only on the seed, not on worker or rank order. Validation items
are whole scenes or a fixed crop at the target's onset.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from clarity_se.data.audio_io import AudioFileError
from clarity_se.data.cec2 import CEC2Dataset
from clarity_se.data.scene import CEC2_SAMPLE_RATE as SAMPLE_RATE

logger = logging.getLogger(__name__)

#: Target signals a model can be trained towards.
TARGET_KINDS = ("target_CH1", "target_anechoic_CH1")


def list_scene_ids(data: CEC2Dataset) -> list[str]:
    """Scene ids of a split: those of ``metadata/scenes.<split>.json`` if present (file
    order), else the ``*_mix_CH1.wav`` files of the scenes folder (sorted).

    Raises
    ------
    ValueError
        If the scenes file is malformed or no scene is found (names the file/folder).
    """
    if data.scenes_file.is_file():
        ids = data.scene_ids
    else:
        ids = sorted(p.name[: -len("_mix_CH1.wav")] for p in data.scenes_dir.glob("*_mix_CH1.wav"))
    if not ids:
        raise ValueError(f"{data.scenes_dir}: no scenes found (no *_mix_CH1.wav, no scenes file)")
    return ids


def _stable_seed(*parts: object) -> int:
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()
    return int(digest[:8], 16)


class SceneSegmentDataset(Dataset):
    """Segments of CEC2 scenes for training or validation.

    Parameters
    ----------
    root : path-like
        Folder holding ``clarity_data/`` (like ``path.root``).
    split : str
        ``train`` / ``dev`` / ...
    n_src : int
        1 (target) or 2 (target, residual).
    segment_s : float
        Segment length in seconds; ``<= 0`` returns whole scenes (use batch size 1).
    target : {"target_CH1", "target_anechoic_CH1"}
        Training target (the anechoic one is rescaled to the reverberant target's RMS, as the
        official evaluation does with its reference).
    random_crop : bool
        Random crops (training) or the fixed crop at the target onset (validation).
    max_scenes : int
        Keep only the first ``max_scenes`` scenes (0: all).
    seed : int
        Seed of the random crops; call :meth:`set_epoch` each epoch.
    cache : bool
        Keep decoded scenes in memory (small demo sets).
    remix_prob : float
        Dynamic remixing (training crops only): with this probability the segment's
        interferers are replaced by those of another random scene of the split
        (``mix_CHk - target_CHk`` of all three pairs, a random crop of it) scaled by a gain
        drawn uniformly in +-``remix_gain_db`` dB, so a small demo set yields many more distinct
        mixtures. The target is unchanged. 0 disables it.
    remix_gain_db : float
        Range of the interferer gain of a remixed segment, dB.

    Raises
    ------
    ValueError
        Bad arguments, or no scenes in the split (names the folder).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        n_src: int = 1,
        segment_s: float = 2.0,
        target: str = "target_CH1",
        random_crop: bool = True,
        max_scenes: int = 0,
        seed: int = 0,
        cache: bool = False,
        remix_prob: float = 0.0,
        remix_gain_db: float = 6.0,
    ) -> None:
        if n_src not in (1, 2):
            raise ValueError(f"n_src must be 1 or 2, got {n_src}")
        if target not in TARGET_KINDS:
            raise ValueError(f"target must be one of {TARGET_KINDS}, got {target!r}")
        self.root, self.split = Path(root), split
        self.data = CEC2Dataset(root, split)
        self.scene_ids = list_scene_ids(self.data)
        if max_scenes > 0:
            self.scene_ids = self.scene_ids[:max_scenes]
        self.sample_rate = SAMPLE_RATE
        self.n_src, self.target, self.random_crop = n_src, target, random_crop
        self.segment = int(round(segment_s * self.sample_rate)) if segment_s > 0 else 0
        self.seed, self.epoch = seed, 0
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = {} if cache else None
        self._cache6: dict[str, torch.Tensor] | None = {} if cache else None
        if not 0.0 <= remix_prob <= 1.0:
            raise ValueError(f"remix_prob must be in [0, 1], got {remix_prob}")
        self.remix_prob, self.remix_gain_db = float(remix_prob), float(remix_gain_db)

    def __len__(self) -> int:
        return len(self.scene_ids)

    def set_epoch(self, epoch: int) -> None:
        """Change the random crops (called by the trainer at each epoch)."""
        self.epoch = epoch

    def manifest(self) -> dict:
        """Description stored in checkpoints: root, split, scene ids, target, segment."""
        return {
            "root": str(self.root),
            "split": self.split,
            "n_scenes": len(self.scene_ids),
            "scene_ids": self.scene_ids,
            "target": self.target,
            "segment_samples": self.segment,
            "sample_rate": self.sample_rate,
        }

    def load_scene(self, scene: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole scene: mixture ``[6, time]`` and target ``[2, time]`` (float32)."""
        if self._cache is not None and scene in self._cache:
            return self._cache[scene]
        mixture = self.data.load_mixture(scene)
        n_time = mixture.shape[-1]
        reverberant = self._checked(self.data.load_target(scene), self.data.target_path(scene),
                                    n_time)  # fmt: skip
        if self.target == "target_CH1":
            target = reverberant
        else:
            target = self._checked(self.data.load_target_anechoic(scene),
                                   self.data.target_anechoic_path(scene), n_time)  # fmt: skip
            target = target * (
                reverberant.pow(2).mean(-1, keepdim=True).sqrt()
                / target.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-12)
            )
        if target.shape[-1] != mixture.shape[-1]:
            raise ValueError(
                f"scene {scene}: target has {target.shape[-1]} samples, mixture {mixture.shape[-1]}"
            )
        if self._cache is not None:
            self._cache[scene] = (mixture, target)
        return mixture, target

    def load_targets6(self, scene: str) -> torch.Tensor:
        """Reverberant target at all three microphone pairs, ``[6, time]`` (mixture rows)."""
        if self._cache6 is not None and scene in self._cache6:
            return self._cache6[scene]
        targets = self.data.load_signals([self.data.target_path(scene, ch) for ch in (1, 2, 3)])
        if self._cache6 is not None:
            self._cache6[scene] = targets
        return targets

    @staticmethod
    def _checked(signal: torch.Tensor, path: Path, n_time: int) -> torch.Tensor:
        if signal.shape[-1] != n_time:
            raise AudioFileError(f"{path}: num_samples is {signal.shape[-1]}, expected {n_time}")
        return signal

    def _crop(self, signal: torch.Tensor, start: int) -> torch.Tensor:
        signal = signal[:, start : start + self.segment]
        pad = self.segment - signal.shape[-1]
        return torch.nn.functional.pad(signal, (0, pad)) if pad > 0 else signal

    def _remixed(self, scene: str, start: int, rng: np.random.Generator) -> torch.Tensor:
        others = [s for s in self.scene_ids if s != scene]
        other = others[int(rng.integers(len(others)))]
        other_mix, _ = self.load_scene(other)
        interferers = other_mix - self.load_targets6(other)
        other_start = int(rng.integers(0, max(1, interferers.shape[-1] - self.segment + 1)))
        gain = 10.0 ** (rng.uniform(-self.remix_gain_db, self.remix_gain_db) / 20.0)
        own = self._crop(self.load_targets6(scene), start)
        return own + float(gain) * self._crop(interferers, other_start)

    def _crop_start(self, scene: str, target: torch.Tensor) -> int:
        n_time = target.shape[-1]
        if self.segment <= 0 or n_time <= self.segment:
            return 0
        level = target.abs().amax(0)
        active = torch.nonzero(level > 1e-3 * float(level.max().clamp_min(1e-12))).flatten()
        first = int(active[0]) if active.numel() else 0
        last = int(active[-1]) if active.numel() else n_time
        if not self.random_crop:
            return min(first, n_time - self.segment)
        lo = max(0, first - self.segment // 4)
        hi = max(lo, min(n_time - self.segment, last - 3 * self.segment // 4))
        rng = np.random.default_rng(_stable_seed(self.seed, self.epoch, scene))
        return int(rng.integers(lo, hi + 1))

    def __getitem__(self, index: int) -> dict:
        scene = self.scene_ids[index]
        mixture, target = self.load_scene(scene)
        start = self._crop_start(scene, target)
        if self.segment > 0:
            rng = np.random.default_rng(_stable_seed(self.seed, self.epoch, scene, "remix"))
            remix = (
                self.random_crop
                and self.remix_prob > 0
                and len(self.scene_ids) > 1
                and rng.random() < self.remix_prob
            )
            mixture = self._remixed(scene, start, rng) if remix else self._crop(mixture, start)
            target = self._crop(target, start)
        sources = [target]
        if self.n_src == 2:
            sources.append(mixture[:2] - target)
        return {"scene": scene, "mixture": mixture, "sources": torch.stack(sources)}


class FrontEarsView(Dataset):
    """The front-microphone pair of another dataset's items, resampled: for mono models.

    Wraps any dataset whose items are ``{"mixture": [6, T], "sources": [n_src, 2, T], ...}`` at
    44.1 kHz (:class:`SceneSegmentDataset`, or an on-the-fly mixer yielding the same dict) and
    yields ``{"mixture": [2, T'], "sources": [n_src, 2, T'], ...}``: the ``CH1-L, CH1-R``
    mixture rows and the sources, resampled to ``sample_rate`` with
    :class:`~clarity_se.dsp.resample.PolyphaseResampler` (the resampler the ``dtln`` enhancer's
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
        from clarity_se.dsp.resample import PolyphaseResampler

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
