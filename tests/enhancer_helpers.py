"""Tiny synthetic CEC2-layout scenes for the enhancer tests (written to a tmp folder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clarity_se.data.audio_io import write_audio

SR = 44100
TINY_MODEL = [
    "model.n_filters=16",
    "model.kernel_size=16",
    "model.bn_chan=8",
    "model.hid_chan=16",
    "model.skip_chan=8",
    "model.n_blocks=2",
    "model.n_repeats=1",
]


def make_scenes(root: Path, split: str, n_scenes: int, n_time: int, seed: int = 0) -> list[str]:
    """Write ``n_scenes`` scenes: a frontal (diotic) target + a lateral noise, CH1-CH3 + target."""
    rng = np.random.default_rng(seed)
    folder = root / "clarity_data" / split / "scenes"
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(n_scenes):
        scene = f"S{seed:02d}{i:03d}"
        t = np.arange(n_time) / SR
        speech = np.sin(2 * np.pi * (200 + 40 * i) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
        speech[: n_time // 5] = 0.0  # target starts late, as in CEC2
        noise = rng.standard_normal(n_time + 8) * 0.05
        for ch in (1, 2, 3):
            target = 0.2 * np.stack([speech, speech], axis=1)
            interf = np.stack([noise[8:], noise[:-8]], axis=1) * (1 + 0.1 * ch)
            write_audio(folder / f"{scene}_target_CH{ch}.wav", target, SR, subtype="PCM_16")
            write_audio(folder / f"{scene}_mix_CH{ch}.wav", target + interf, SR, subtype="PCM_16")
        ids.append(scene)
    return ids


def make_scenes_listeners(
    root: Path, split: str, scene_ids: list[str], listeners: list[str]
) -> Path:
    """``metadata/scenes_listeners.<split>.json`` pairing each scene with every listener."""
    meta = root / "clarity_data" / "metadata"
    meta.mkdir(parents=True, exist_ok=True)
    path = meta / f"scenes_listeners.{split}.json"
    path.write_text(json.dumps({s: list(listeners) for s in scene_ids}))
    return path
