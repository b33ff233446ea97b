"""A tiny recordings folder (``speech/``, ``noise/``, ``rir/``) for the echo-track tests.

"Speech" is synthetic but speech-like: a talker-specific harmonic series (f0 100-250 Hz) with a
4 Hz syllabic envelope and pauses, 16 kHz 16-bit FLAC, 1.2 s per utterance. Talkers are named
``p9NN`` (VCTK style) so that :func:`~clarity_se.data.render.echo.talker_split` puts some in each
split. The noise is seeded pink-ish noise; the measured responses are one mono FLAC RIR and one
Rostock-format ``.mat`` BRIR (struct ``data`` with ``ir`` and ``fs``), both exponentially
decaying noise at 44.1 kHz.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
import soundfile as sf

from clarity_se.data.render.echo import talker_split

SR = 16000


def speech_like(seed: int, seconds: float, f0: float) -> np.ndarray:
    """A voiced, amplitude-modulated harmonic signal with a pause, peak 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f = f0 * (1 + 0.05 * np.sin(2 * np.pi * 1.3 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 25) if k * f0 < 7000)
    env = np.clip(np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)), 0, None) ** 0.5
    env[int(0.55 * t.size) : int(0.65 * t.size)] = 0
    x = x * env + 0.01 * rng.standard_normal(t.size)
    return 0.5 * x / np.max(np.abs(x))


def talkers(n_per_split: int = 3) -> dict[str, list[str]]:
    """``{"train": [...], "test": [...]}`` VCTK-style talker names, ``n_per_split`` each."""
    out: dict[str, list[str]] = {"train": [], "test": []}
    i = 900
    while min(len(v) for v in out.values()) < n_per_split:
        name = f"p{i}"
        split = talker_split(name)
        if len(out[split]) < n_per_split:
            out[split].append(name)
        i += 1
    return out


def make_data_root(root: Path, *, n_per_split: int = 3, utterances: int = 2) -> Path:
    """Write the recordings folder and return it."""
    root = Path(root)
    for split_talkers in talkers(n_per_split).values():
        for k, name in enumerate(split_talkers):
            for u in range(utterances):
                path = root / "speech" / "vctk" / f"{name}_{u:03d}.flac"
                path.parent.mkdir(parents=True, exist_ok=True)
                seed = int(name[1:]) * 10 + u
                sf.write(path, speech_like(seed, 1.2, 100 + 30 * k), SR, subtype="PCM_16")
    rng = np.random.default_rng(7)
    noise = np.cumsum(rng.standard_normal(3 * SR)) * 0.002
    noise -= np.convolve(noise, np.ones(64) / 64, mode="same")
    (root / "noise").mkdir(parents=True, exist_ok=True)
    sf.write(root / "noise" / "hum.flac", 0.3 * noise / np.max(np.abs(noise)), SR,
             subtype="PCM_16")
    (root / "rir").mkdir(parents=True, exist_ok=True)
    fs = 44100
    t = np.arange(int(0.2 * fs)) / fs
    rir = rng.standard_normal(t.size) * np.exp(-t / 0.03)
    rir[:200] = 0
    rir[200] = 3.0
    sf.write(root / "rir" / "clap.flac", 0.9 * rir / np.max(np.abs(rir)), fs, subtype="PCM_16")
    brir = np.stack([np.roll(rir, 10), np.roll(rir, 25)], axis=1)
    scipy.io.savemat(root / "rir" / "brir.mat", {"data": {"ir": brir, "fs": fs}})
    return root
