"""The CEC2 dataset on disk: metadata, file paths and signal loading.

Layout (the official ``clarity_data`` tree; ``<split>`` is ``train``, ``dev`` or ``eval``)::

    <root>/clarity_data/metadata/scenes.<split>.json
    <root>/clarity_data/metadata/scenes_listeners.<split>.json
    <root>/clarity_data/metadata/listeners.json
    <root>/clarity_data/metadata/rooms.<split>.json            (optional)
    <root>/clarity_data/<split>/scenes/S06001_mix_CH1.wav      (CH0 = eardrum, CH1..3 = the
    <root>/clarity_data/<split>/scenes/S06001_target_CH1.wav    front, middle and rear
    <root>/clarity_data/<split>/scenes/S06001_interferer_CH1.wav behind-the-ear mic pairs)
    <root>/clarity_data/<split>/scenes/S06001_target_anechoic_CH1.wav

Every signal is a 2-channel (left, right) 16-bit WAV at 44100 Hz, read as ``int16 / 32768``
like the official recipe (:func:`clarity_se.data.audio_io.read_audio`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clarity_se.data.audio_io import AudioFileError, read_audio
from clarity_se.data.audiogram import Listener, load_listeners
from clarity_se.data.scene import (
    CEC2_SAMPLE_RATE,
    Scene,
    load_scenes,
    make_scene_listener_list,
    read_scenes_listeners,
)

if TYPE_CHECKING:  # torch is imported when signals are loaded, so the CLI stays light
    import torch

logger = logging.getLogger(__name__)

#: Hearing-aid microphone pairs the enhancer sees (front, middle, rear BTE), in this order.
MIX_CHANNELS = (1, 2, 3)
#: All rendered channels: 0 is the eardrum (ED) pair, 1-3 the BTE pairs.
ALL_CHANNELS = (0, 1, 2, 3)
#: Signal kinds rendered per scene and channel (``<scene>_<kind>_CH<n>.wav``).
SIGNAL_KINDS = ("mix", "target", "interferer")
#: Channel of the anechoic reference (pyclarity renderer's ``reference_channel``).
ANECHOIC_CHANNEL = 1


class CEC2Dataset:
    """One split of a CEC2-layout dataset.

    Parameters
    ----------
    root : path-like
        Folder holding ``clarity_data/`` (the official recipe's ``path.root``).
    split : str
        ``"train"``, ``"dev"``, ``"eval"`` (or any split name with the same layout).

    Notes
    -----
    Metadata is read lazily and cached: ``scenes`` on first use, ``listeners`` and
    ``scenes_listeners`` likewise. Signals are read on every call (no cache).
    ``scene`` arguments accept a scene id (``"S06001"``) or a :class:`Scene`.

    References
    ----------
    Official paths: pyclarity ``recipes/icassp_2023/baseline/config.yaml`` (``path.*``) and
    ``clarity.data.scene_renderer_cec2.SceneRenderer.generate_binaural_signals`` (file names).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "dev",
        *,
        metadata_dir: str | os.PathLike | None = None,
        scenes_dir: str | os.PathLike | None = None,
        scenes_listeners_file: str | os.PathLike | None = None,
        listeners_file: str | os.PathLike | None = None,
    ) -> None:
        if not isinstance(split, str) or not split or "/" in split:
            raise ValueError(f"CEC2Dataset: split must be a plain folder name, got {split!r}")
        self.root = Path(root)
        self.split = split
        self.sample_rate = CEC2_SAMPLE_RATE
        self._metadata_dir = None if metadata_dir is None else Path(metadata_dir)
        self._scenes_dir = None if scenes_dir is None else Path(scenes_dir)
        self._scenes_listeners_file = (
            None if scenes_listeners_file is None else Path(scenes_listeners_file)
        )
        self._listeners_file = None if listeners_file is None else Path(listeners_file)

    @classmethod
    def from_recipe(cls, path) -> CEC2Dataset:
        """The dataset a recipe config's ``path.*`` keys point at.

        Parameters
        ----------
        path : omegaconf.DictConfig or object
            ``path.root``, ``path.metadata_dir``, ``path.scenes_folder``,
            ``path.scenes_listeners_file``, ``path.listeners_file`` (the official keys). The
            split is read from the scenes-listeners file name (``scenes_listeners.<split>.json``,
            ``dev`` otherwise).
        """
        name = Path(str(path.scenes_listeners_file)).name
        parts = name.split(".")
        split = parts[1] if len(parts) == 3 and parts[0] == "scenes_listeners" else "dev"
        return cls(
            path.root,
            split,
            metadata_dir=path.metadata_dir,
            scenes_dir=path.scenes_folder,
            scenes_listeners_file=path.scenes_listeners_file,
            listeners_file=path.listeners_file,
        )

    def __repr__(self) -> str:
        return f"CEC2Dataset(root={str(self.root)!r}, split={self.split!r})"

    # ------------------------------------------------------------------ folders and files
    @property
    def metadata_dir(self) -> Path:
        """``<root>/clarity_data/metadata`` (or the folder given)."""
        if self._metadata_dir is not None:
            return self._metadata_dir
        return self.root / "clarity_data" / "metadata"

    @property
    def scenes_dir(self) -> Path:
        """``<root>/clarity_data/<split>/scenes`` (or the folder given)."""
        if self._scenes_dir is not None:
            return self._scenes_dir
        return self.root / "clarity_data" / self.split / "scenes"

    @property
    def scenes_file(self) -> Path:
        """``metadata/scenes.<split>.json``."""
        return self.metadata_dir / f"scenes.{self.split}.json"

    @property
    def scenes_listeners_file(self) -> Path:
        """``metadata/scenes_listeners.<split>.json`` (or the file given)."""
        if self._scenes_listeners_file is not None:
            return self._scenes_listeners_file
        return self.metadata_dir / f"scenes_listeners.{self.split}.json"

    @property
    def listeners_file(self) -> Path:
        """``metadata/listeners.json`` (or the file given)."""
        if self._listeners_file is not None:
            return self._listeners_file
        return self.metadata_dir / "listeners.json"

    @property
    def rooms_file(self) -> Path:
        """``metadata/rooms.<split>.json`` (optional; not read by this class)."""
        return self.metadata_dir / f"rooms.{self.split}.json"

    # ------------------------------------------------------------------ metadata
    @cached_property
    def scenes(self) -> list[Scene]:
        """Scenes of ``scenes.<split>.json`` in file order (``ValueError`` if bad)."""
        return load_scenes(self.scenes_file)

    @cached_property
    def _scene_index(self) -> dict[str, Scene]:
        return {scene.scene: scene for scene in self.scenes}

    @property
    def scene_ids(self) -> list[str]:
        """Scene ids in file order."""
        return [scene.scene for scene in self.scenes]

    def __len__(self) -> int:
        return len(self.scenes)

    def __iter__(self) -> Iterator[Scene]:
        return iter(self.scenes)

    def get_scene(self, scene: str | Scene) -> Scene:
        """The :class:`Scene` with this id.

        Raises
        ------
        KeyError
            If the id is not in ``scenes.<split>.json`` (the message names the file).
        """
        if isinstance(scene, Scene):
            return scene
        try:
            return self._scene_index[scene]
        except KeyError:
            raise KeyError(f"{self.scenes_file}: no scene {scene!r}") from None

    @cached_property
    def listeners(self) -> dict[str, Listener]:
        """``listeners.json`` as ``{listener_id: Listener}`` (``ValueError`` if bad)."""
        return load_listeners(self.listeners_file)

    @cached_property
    def scenes_listeners(self) -> dict[str, list[str]]:
        """``scenes_listeners.<split>.json``: ``{scene_id: [listener_id, ...]}``."""
        return read_scenes_listeners(self.scenes_listeners_file)

    def scene_listener_pairs(self, small_test: bool = False) -> list[tuple[str, str]]:
        """(scene, listener) pairs in the official order (``small_test``: every 15th)."""
        return make_scene_listener_list(self.scenes_listeners, small_test)

    # ------------------------------------------------------------------ signal paths
    @staticmethod
    def _scene_id(scene: str | Scene) -> str:
        return scene.scene if isinstance(scene, Scene) else str(scene)

    def signal_path(self, scene: str | Scene, kind: str, ch: int) -> Path:
        """``<scenes_dir>/<scene>_<kind>_CH<ch>.wav`` for ``kind`` in mix/target/interferer/
        target_anechoic.

        Raises
        ------
        ValueError
            Unknown ``kind`` or a channel outside 0..3.
        """
        if kind not in (*SIGNAL_KINDS, "target_anechoic"):
            raise ValueError(f"signal kind must be one of {SIGNAL_KINDS + ('target_anechoic',)}")
        if isinstance(ch, bool) or ch not in ALL_CHANNELS:
            raise ValueError(f"channel must be one of {ALL_CHANNELS}, got {ch!r}")
        return self.scenes_dir / f"{self._scene_id(scene)}_{kind}_CH{ch}.wav"

    def mix_path(self, scene: str | Scene, ch: int) -> Path:
        """Mixture at microphone pair ``ch`` (0 eardrum, 1 front, 2 middle, 3 rear)."""
        return self.signal_path(scene, "mix", ch)

    def target_path(self, scene: str | Scene, ch: int = 1) -> Path:
        """Reverberant target at microphone pair ``ch``."""
        return self.signal_path(scene, "target", ch)

    def interferer_path(self, scene: str | Scene, ch: int = 1) -> Path:
        """Summed interferers at microphone pair ``ch``."""
        return self.signal_path(scene, "interferer", ch)

    def target_anechoic_path(self, scene: str | Scene, ch: int = ANECHOIC_CHANNEL) -> Path:
        """Anechoic target reference (rendered at CH1 only in CEC2); the HASPI/HASQI reference."""
        return self.signal_path(scene, "target_anechoic", ch)

    def head_rotation_path(self, scene: str | Scene) -> Path:
        """``<scene>_hr.wav``: head-rotation signal (mono float; optional, not loaded here)."""
        return self.scenes_dir / f"{self._scene_id(scene)}_hr.wav"

    def relative(self, path: str | os.PathLike) -> str:
        """``path`` relative to ``root`` with ``/`` separators (what manifests store)."""
        return Path(os.path.relpath(Path(path), self.root)).as_posix()

    # ------------------------------------------------------------------ signal loading
    def _read_stereo(self, path: Path, dtype: str) -> np.ndarray:
        samples, _ = read_audio(
            path, expected_sample_rate=self.sample_rate, expected_channels=2, dtype=dtype
        )
        return samples

    def load_signals(
        self, paths: Sequence[Path], *, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Read 2-channel files and stack them as ``[2 * len(paths), time]`` (L, R per file).

        Raises
        ------
        AudioFileError
            A file is missing, unreadable, truncated, not 44100 Hz or not 2 channels, or the
            files differ in length; the message names the file.
        """
        import torch

        dtype = torch.float32 if dtype is None else dtype
        np_dtype = "float64" if dtype == torch.float64 else "float32"
        arrays = []
        for path in paths:
            samples = self._read_stereo(path, np_dtype)
            if arrays and samples.shape[0] != arrays[0].shape[1]:
                raise AudioFileError(
                    f"{path}: num_samples is {samples.shape[0]} but {paths[0]} has "
                    f"{arrays[0].shape[1]}"
                )
            arrays.append(samples.T)
        return torch.from_numpy(np.ascontiguousarray(np.concatenate(arrays, axis=0))).to(dtype)

    def load_mixture(
        self,
        scene: str | Scene,
        channels: Sequence[int] = MIX_CHANNELS,
        *,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """The hearing-aid microphone mixture.

        Parameters
        ----------
        scene : str or Scene
            Scene id or record.
        channels : sequence of int
            Microphone pairs, default ``(1, 2, 3)``.
        dtype : torch.dtype, optional
            Output dtype (default ``torch.float32``).

        Returns
        -------
        Tensor [shape=(2 * len(channels), time)]
            Rows ``[CH1-L, CH1-R, CH2-L, CH2-R, CH3-L, CH3-R]`` for the default channels;
            16-bit PCM divided by 32768 (the official scaling).

        Raises
        ------
        AudioFileError
            See :meth:`load_signals`.
        """
        return self.load_signals([self.mix_path(scene, ch) for ch in channels], dtype=dtype)

    def load_target(
        self, scene: str | Scene, ch: int = 1, *, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Reverberant target at microphone pair ``ch``: ``[2, time]`` (left, right).

        Same scale as the mixture of that channel (pyclarity writes target, interferer and
        mix of a channel with one normalisation).
        """
        return self.load_signals([self.target_path(scene, ch)], dtype=dtype)

    def load_target_anechoic(
        self, scene: str | Scene, *, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Anechoic target reference: ``[2, time]`` (left, right), peak-normalised to 1 by the
        CEC2 renderer (a different scale from the mixture)."""
        return self.load_signals([self.target_anechoic_path(scene)], dtype=dtype)

    def load_interferer(
        self, scene: str | Scene, ch: int = 1, *, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Summed interferers at microphone pair ``ch``: ``[2, time]`` (left, right)."""
        return self.load_signals([self.interferer_path(scene, ch)], dtype=dtype)
