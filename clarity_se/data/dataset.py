"""Training dataset: seeded fixed-length crops of CEC2 scenes for the multi-channel enhancer.

Each item is ``(mixture, target)``:

- ``mixture``: ``[6, crop]`` float32, rows ``[CH1-L, CH1-R, CH2-L, CH2-R, CH3-L, CH3-R]``
  (the three behind-the-ear microphone pairs the hearing aid sees);
- ``target``: ``[2, crop]`` float32, left and right ear.

Choice of training target (``target=``):

- ``"CH1"`` (default): ``<scene>_target_CH1.wav``, the *reverberant* target at the front
  microphone pair. It is written by the CEC2 renderer with the same normalisation as
  ``mix_CH1`` (so ``mix_CH1 = target_CH1 + interferer_CH1`` up to 16-bit rounding) and is
  time-aligned with the mixture: the enhancer learns denoising and spatial filtering without
  having to undo the room or the head's transfer function. This is the target of the CEC2
  baseline enhancers.
- ``"anechoic"``: ``<scene>_target_anechoic_CH1.wav``, the HASPI/HASQI reference; the model must
  also dereverberate. It is peak-normalised on its own, so only scale-invariant losses (SI-SDR)
  make sense with it.
- ``"CH0"``, ``"CH2"``, ``"CH3"``: the reverberant target at another microphone pair.

Crops are deterministic: the offset of item ``index`` in epoch ``epoch`` is drawn from
``numpy.random.default_rng([seed, epoch, index])``, so it depends neither on the DataLoader
worker nor on the order items are fetched. With ``crop_region="target"`` (default) the crop lies
inside the target's active interval ``[time_start, time_end]`` when the target is longer than
the crop, and contains the whole target otherwise, so no crop has a silent target (which would
make SI-SDR undefined). Scenes shorter than the crop are zero-padded at the end.

References
----------
Luo & Mesgarani (2019), "Conv-TasNet", IEEE/ACM TASLP 27(8), Sec. IV-A: training on 4-s
segments (the default ``crop_s``). Levels: pyclarity ``recipes/icassp_2023/baseline/evaluate.py``
rescales the anechoic reference to the RMS of ``target_CH1`` per ear, so ``target_CH1`` carries
the level the evaluation expects.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from clarity_se.data.audio_io import AudioFileError, audio_info
from clarity_se.data.cec2 import MIX_CHANNELS, CEC2Dataset
from clarity_se.data.scene import Scene

logger = logging.getLogger(__name__)

TARGET_CHOICES = ("CH1", "anechoic", "CH0", "CH2", "CH3")
CROP_REGIONS = ("target", "any")


def _open_checked(path: os.PathLike, sample_rate: int, channels: int) -> sf.SoundFile:
    try:
        handle = sf.SoundFile(str(path))
    except (RuntimeError, sf.LibsndfileError) as exc:
        if not os.path.isfile(path):
            raise AudioFileError(f"{path}: file not found") from None
        raise AudioFileError(f"{path}: unreadable audio header ({exc})") from None
    if handle.samplerate != sample_rate:
        handle.close()
        raise AudioFileError(
            f"{path}: sample_rate is {handle.samplerate} Hz, expected {sample_rate} Hz"
        )
    if handle.channels != channels:
        handle.close()
        raise AudioFileError(f"{path}: channels is {handle.channels}, expected {channels}")
    return handle


def _read_raw(
    path: os.PathLike, start: int, frames: int, sample_rate: int, channels: int
) -> tuple[np.ndarray, bool]:
    """Frames ``[start, start + frames)`` (fewer at the end of the file) as stored.

    Returns ``(samples [time, channels], is_pcm16)``; int16 for 16-bit PCM, else float32.
    Raises ``AudioFileError`` naming the file if it is short of what its header promises.
    """
    with _open_checked(path, sample_rate, channels) as handle:
        is_pcm16 = handle.subtype == "PCM_16"
        total = handle.frames
        start = min(start, total)
        want = total - start if frames < 0 else min(frames, total - start)
        try:
            handle.seek(start)
            data = handle.read(want, dtype="int16" if is_pcm16 else "float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as exc:
            raise AudioFileError(f"{path}: unreadable audio data ({exc})") from None
    if data.shape[0] != want:
        raise AudioFileError(
            f"{path}: truncated: header says {total} frames, could read {start + data.shape[0]}"
        )
    return data, is_pcm16


def _fill(out: np.ndarray, data: np.ndarray, is_pcm16: bool) -> None:
    """Write ``data [time, channels]`` into ``out [channels, >= time]`` as float32, zero after.

    16-bit PCM is scaled by ``1 / 32768`` (exact in float32; the official ``/ 32768``).
    """
    n = data.shape[0]
    if is_pcm16:
        np.multiply(data.T, np.float32(1.0 / 32768.0), out=out[:, :n], casting="unsafe")
    else:
        out[:, :n] = data.T
    out[:, n:] = 0.0


class CEC2TrainDataset(Dataset):
    """Seeded fixed-length crops of (6-channel mixture, 2-channel target) from CEC2 scenes.

    Parameters
    ----------
    data : CEC2Dataset or path-like
        The dataset, or its root (then ``split`` is used).
    split : str
        Split when ``data`` is a root path (default ``"train"``).
    crop_s : float or None
        Crop length in seconds (default 4.0 s); ``None`` returns whole scenes (then batch size
        1 or a padding collate is needed).
    target : {"CH1", "anechoic", "CH0", "CH2", "CH3"}
        Training target, see the module docstring (default the reverberant front-pair target).
    seed : int
        Base seed of the crop offsets.
    crop_region : {"target", "any"}
        Draw crops inside the target's active interval (default) or anywhere in the scene.
    scene_ids : sequence of str, optional
        Subset (and order) of scenes; default every scene of ``scenes.<split>.json``.
    channels : sequence of int
        Microphone pairs of the mixture, default ``(1, 2, 3)``.
    cache : bool
        Keep decoded files in memory (as int16 for 16-bit PCM: 2 bytes per sample, about
        6.5 MB per 6.5-s scene for 4 stereo files). Call :meth:`preload` before creating a
        multi-worker ``DataLoader`` so that forked workers share the cache copy-on-write;
        without ``cache`` only the crop is read from disk (seek + partial read).

    Raises
    ------
    ValueError
        Bad ``target``/``crop_region``/``crop_s`` or an unknown scene id.

    Notes
    -----
    Call :meth:`set_epoch` at the start of every epoch to draw new crops (as
    ``DistributedSampler.set_epoch``); with non-persistent workers the DataLoader re-pickles the
    dataset each epoch, so the new epoch reaches the workers.
    """

    def __init__(
        self,
        data: CEC2Dataset | str | os.PathLike,
        split: str = "train",
        *,
        crop_s: float | None = 4.0,
        target: str = "CH1",
        seed: int = 0,
        crop_region: str = "target",
        scene_ids: Sequence[str] | None = None,
        channels: Sequence[int] = MIX_CHANNELS,
        cache: bool = False,
    ) -> None:
        self.data = data if isinstance(data, CEC2Dataset) else CEC2Dataset(data, split)
        if target not in TARGET_CHOICES:
            raise ValueError(
                f"CEC2TrainDataset: target must be one of {TARGET_CHOICES}, got {target!r}"
            )
        if crop_region not in CROP_REGIONS:
            raise ValueError(
                f"CEC2TrainDataset: crop_region must be one of {CROP_REGIONS}, got {crop_region!r}"
            )
        sample_rate = self.data.sample_rate
        if crop_s is None:
            self.crop_samples: int | None = None
        else:
            if isinstance(crop_s, bool) or not np.isfinite(crop_s) or crop_s <= 0:
                raise ValueError(f"CEC2TrainDataset: crop_s must be > 0 seconds, got {crop_s!r}")
            self.crop_samples = int(round(float(crop_s) * sample_rate))
        self.crop_s = crop_s
        self.target = target
        self.seed = int(seed)
        self.crop_region = crop_region
        self.channels = tuple(int(c) for c in channels)
        self.cache = bool(cache)
        self.epoch = 0
        if scene_ids is None:
            self.scenes: list[Scene] = list(self.data.scenes)
        else:
            self.scenes = []
            for scene_id in scene_ids:
                try:
                    self.scenes.append(self.data.get_scene(scene_id))
                except KeyError as exc:
                    raise ValueError(exc.args[0]) from None
        self._num_frames: dict[str, int] = {}
        self._cache: dict[str, tuple[np.ndarray, bool]] = {}

    def __len__(self) -> int:
        return len(self.scenes)

    def set_epoch(self, epoch: int) -> None:
        """Select the crops of epoch ``epoch`` (crop offsets depend on (seed, epoch, index))."""
        self.epoch = int(epoch)

    # ------------------------------------------------------------------ files
    def paths(self, index: int) -> tuple[list[os.PathLike], os.PathLike]:
        """``(mixture files in channel order, target file)`` of item ``index``."""
        scene = self.scenes[index]
        mix = [self.data.mix_path(scene, ch) for ch in self.channels]
        if self.target == "anechoic":
            target = self.data.target_anechoic_path(scene)
        else:
            target = self.data.target_path(scene, int(self.target[2:]))
        return mix, target

    def num_frames(self, index: int) -> int:
        """Length of the scene's signal files in samples (header of the first mixture file)."""
        scene_id = self.scenes[index].scene
        if scene_id not in self._num_frames:
            path = self.paths(index)[0][0]
            self._num_frames[scene_id] = int(audio_info(path).frames)
        return self._num_frames[scene_id]

    def preload(self) -> None:
        """Decode every file of every scene into the in-memory cache (needs ``cache=True``)."""
        from tqdm import tqdm

        if not self.cache:
            raise ValueError("CEC2TrainDataset.preload: the dataset was built with cache=False")
        for index in tqdm(range(len(self)), desc="preload", unit="scene"):
            mix, target = self.paths(index)
            for path in (*mix, target):
                self._cached(path)

    def _cached(self, path: os.PathLike) -> tuple[np.ndarray, bool]:
        key = os.fspath(path)
        if key not in self._cache:
            self._cache[key] = _read_raw(path, 0, -1, self.data.sample_rate, 2)
        return self._cache[key]

    # ------------------------------------------------------------------ crops
    def crop_offset(self, index: int) -> int:
        """Start sample of the crop of item ``index`` in the current epoch.

        Deterministic in ``(seed, epoch, index)`` (``numpy.random.default_rng``); 0 when the
        scene is not longer than the crop or ``crop_s`` is None.
        """
        n = self.num_frames(index)
        length = self.crop_samples
        if length is None or n <= length:
            return 0
        lo, hi = 0, n - length
        if self.crop_region == "target":
            target = self.scenes[index].target
            if target.time_end - target.time_start >= length:
                lo, hi = target.time_start, target.time_end - length
            else:
                lo, hi = target.time_end - length, target.time_start
            lo, hi = min(max(lo, 0), n - length), min(max(hi, 0), n - length)
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        return int(rng.integers(lo, hi + 1))

    def _segment_into(self, out: np.ndarray, path: os.PathLike, start: int) -> None:
        length = out.shape[1]
        if self.cache:
            data, is_pcm16 = self._cached(path)
            data = data[start : start + length]
        else:
            data, is_pcm16 = _read_raw(path, start, length, self.data.sample_rate, 2)
        _fill(out, data, is_pcm16)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mixture [2 * n_channels, crop], target [2, crop])``, float32.

        Raises
        ------
        AudioFileError
            A file is missing, unreadable, truncated, not 44100 Hz or not stereo.
        """
        if not -len(self) <= index < len(self):
            raise IndexError(f"CEC2TrainDataset: index {index} out of range ({len(self)} scenes)")
        index = index % len(self)
        start = self.crop_offset(index)
        length = self.crop_samples
        if length is None:
            length = self.num_frames(index)
        mix_paths, target_path = self.paths(index)
        mixture = torch.empty(2 * len(mix_paths), length, dtype=torch.float32)
        target = torch.empty(2, length, dtype=torch.float32)
        mix_np = mixture.numpy()
        for k, path in enumerate(mix_paths):
            self._segment_into(mix_np[2 * k : 2 * k + 2], path, start)
        self._segment_into(target.numpy(), target_path, start)
        return mixture, target
