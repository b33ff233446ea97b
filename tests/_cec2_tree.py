"""Build a tiny CEC2-layout dataset in a temporary folder (for the data tests).

Signals are 0.1 s (4410 samples) 16-bit stereo WAVs. In every file the left channel is the
ramp ``t / 32768`` (so a crop's offset can be read back) and the right channel is the
constant ``-code / 32768`` with a ``code`` unique to (scene, kind, channel) (so the channel
order can be checked); both are exact in int16.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from clarity_se.data.audio_io import write_audio
from clarity_se.data.scene import Interferer, Scene, SceneListenerInfo, Target, save_scenes

FIXTURES = Path(__file__).parent / "fixtures" / "cec2_metadata"
FRAMES = 4410
SR = 44100
KINDS = ("mix", "target", "interferer", "target_anechoic")
PAIRS = {"S00001": ["L0064", "L0068"], "S00002": ["L0008"]}


def code(scene_index: int, kind: str, ch: int) -> int:
    """Unique int16 value identifying a file's right channel."""
    return 1000 + 100 * scene_index + 10 * KINDS.index(kind) + ch


def make_scene(
    scene_id: str, *, duration: int = FRAMES - 10, t0: int = 1000, t1: int = 3500
) -> Scene:
    return Scene(
        dataset="dev",
        room="R00001",
        scene=scene_id,
        target=Target(name="T001_ABC_00001", time_start=t0, time_end=t1),
        duration=duration,
        interferers=(
            Interferer(
                position=1,
                time_start=0,
                time_end=duration,
                type="noise",
                name="CIN_fan_001.wav",
                offset=10,
            ),
            Interferer(
                position=3,
                time_start=5,
                time_end=duration,
                type="speech",
                name="som_00001.wav",
                offset=0,
            ),
        ),
        snr_db=3.25,
        listener=SceneListenerInfo(
            rotation=({"sample": 900.5, "angle": -30.0}, {"sample": 1800, "angle": 10.0}),
            hrir_filename=("VP_E1-ED", "VP_E1-BTE_fr", "VP_E1-BTE_mid", "VP_E1-BTE_rear"),
        ),
    )


def signal(scene_index: int, kind: str, ch: int, frames: int = FRAMES) -> np.ndarray:
    left = np.arange(frames) / 32768.0
    right = np.full(frames, -code(scene_index, kind, ch) / 32768.0)
    return np.stack([left, right], axis=1)


def make_tree(
    root: Path,
    *,
    split: str = "dev",
    n_scenes: int = 2,
    frames: int = FRAMES,
    channels: tuple[int, ...] = (0, 1, 2, 3),
    kinds: tuple[str, ...] = ("mix", "target", "interferer"),
    anechoic: bool = True,
) -> Path:
    """Write metadata and signals; return ``root``."""
    meta = root / "clarity_data" / "metadata"
    scenes_dir = root / "clarity_data" / split / "scenes"
    meta.mkdir(parents=True, exist_ok=True)
    scenes = [make_scene(f"S{i + 1:05d}") for i in range(n_scenes)]
    save_scenes(meta / f"scenes.{split}.json", scenes)
    pairs = {s.scene: PAIRS.get(s.scene, ["L0077"]) for s in scenes}
    (meta / f"scenes_listeners.{split}.json").write_text(
        __import__("json").dumps(pairs, indent=2), encoding="utf-8"
    )
    shutil.copy(FIXTURES / "listeners.json", meta / "listeners.json")
    for i, scene in enumerate(scenes):
        for kind in kinds:
            for ch in channels:
                write_audio(
                    scenes_dir / f"{scene.scene}_{kind}_CH{ch}.wav",
                    signal(i, kind, ch, frames),
                    SR,
                    subtype="PCM_16",
                )
        if anechoic:
            write_audio(
                scenes_dir / f"{scene.scene}_target_anechoic_CH1.wav",
                signal(i, "target_anechoic", 1, frames),
                SR,
                subtype="PCM_16",
            )
    return root
