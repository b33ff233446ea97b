"""A tiny CEC2-layout dev set for the evaluate / run tests, built from seeded synthetic signals.

Deliberately free of ``clarity_se`` imports (numpy, soundfile and json only), so that the
pyclarity golden script ``tests/golden/evaluate_stage_golden.py`` builds byte-identical files
in the oracle venv. Scenes are ``DURATION_S`` long, 44.1 kHz, 16-bit stereo:

* ``<scene>_target_anechoic_CH1.wav``: a harmonic "voice" (f0 130-210 Hz, 4 Hz syllable
  envelope, per-ear gain and a 0.3 ms interaural delay);
* ``<scene>_target_CH1.wav``: that voice through a short exponentially decaying noise reverb;
* ``<scene>_mix_CH{1,2,3}.wav``: reverberant target plus pink-ish noise at ``SNR_DB[scene]``.

``default_rng`` (PCG64) streams and the float -> int16 rounding are identical across numpy
versions, so both environments write the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100
DURATION_S = 0.5
SCENES_LISTENERS = {
    "S06001": ["L0001", "L0002"],
    "S06002": ["L0003"],
    "S06003": ["L0001"],
}
SNR_DB = {"S06001": 3.0, "S06002": 0.0, "S06003": 6.0}
CFS = [250, 500, 1000, 2000, 3000, 4000, 6000, 8000]
LISTENERS = {
    "L0001": ([10, 10, 15, 25, 30, 35, 45, 50], [10, 15, 15, 30, 35, 40, 45, 55]),
    "L0002": ([20, 25, 30, 40, 50, 55, 60, 65], [25, 25, 35, 45, 50, 60, 65, 70]),
    "L0003": ([35, 40, 45, 55, 60, 65, 70, 75], [30, 40, 50, 55, 65, 70, 70, 80]),
}


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def _voice(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / SR
    f0 = rng.uniform(130.0, 210.0) * (1.0 + 0.05 * np.sin(2 * np.pi * 1.3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    harmonics = sum((0.7**k) * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) for k in range(1, 16))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 2 * np.pi)), 0.0, None) ** 1.5
    fricative = rng.standard_normal(n) * 0.15 * (envelope < 0.05)
    return harmonics * envelope + fricative


def _stereo_delay(mono: np.ndarray, gains: tuple[float, float], delay: int) -> np.ndarray:
    left = gains[0] * mono
    right = gains[1] * np.concatenate([np.zeros(delay), mono[: len(mono) - delay]])
    return np.stack([left, right], axis=1)


def _write(path: Path, samples: np.ndarray) -> None:
    sf.write(str(path), _to_int16(samples), SR, subtype="PCM_16")


def scene_signals(scene: str, index: int) -> dict[str, np.ndarray]:
    """The float signals ``[time, 2]`` of one scene (before int16 quantisation)."""
    rng = np.random.default_rng(1000 + index)
    n = int(round(DURATION_S * SR))
    dry = _voice(rng, n)
    anechoic = _stereo_delay(dry, (1.0, 0.8), 13)
    anechoic *= 0.05 / np.sqrt(np.mean(anechoic**2))
    tail = rng.standard_normal(int(0.05 * SR)) * np.exp(-np.arange(int(0.05 * SR)) / (0.012 * SR))
    tail[0] = 4.0
    tail /= np.sqrt(np.sum(tail**2))
    target = np.stack([np.convolve(anechoic[:, c], tail)[:n] for c in range(2)], axis=1)
    out = {"target_anechoic_CH1": anechoic, "target_CH1": target}
    for ch in (1, 2, 3):
        noise = np.cumsum(rng.standard_normal((n, 2)), axis=0)
        noise -= np.linspace(noise[0], noise[-1], n)
        noise = 0.5 * noise / np.std(noise) + rng.standard_normal((n, 2))
        noise *= np.sqrt(np.mean(target**2) / np.mean(noise**2)) * 10 ** (-SNR_DB[scene] / 20)
        out[f"mix_CH{ch}"] = target + noise
    return out


def make_eval_tree(root: str | Path, scenes: dict[str, list[str]] | None = None) -> Path:
    """Write ``root/clarity_data/{metadata,dev/scenes}`` and return ``root``.

    Parameters
    ----------
    root : path-like
        Output root (``path.root`` of the recipe config).
    scenes : dict, optional
        ``scenes_listeners`` mapping (default :data:`SCENES_LISTENERS`).
    """
    root = Path(root)
    scenes = SCENES_LISTENERS if scenes is None else scenes
    meta = root / "clarity_data" / "metadata"
    scene_dir = root / "clarity_data" / "dev" / "scenes"
    meta.mkdir(parents=True, exist_ok=True)
    scene_dir.mkdir(parents=True, exist_ok=True)
    (meta / "scenes_listeners.dev.json").write_text(json.dumps(scenes, indent=2))
    listeners = {
        name: {
            "name": name,
            "audiogram_cfs": CFS,
            "audiogram_levels_l": left,
            "audiogram_levels_r": right,
        }
        for name, (left, right) in LISTENERS.items()
    }
    (meta / "listeners.json").write_text(json.dumps(listeners, indent=2))
    for index, scene in enumerate(sorted(SCENES_LISTENERS)):
        if scene not in scenes:
            continue
        for kind, samples in scene_signals(scene, index).items():
            _write(scene_dir / f"{scene}_{kind}.wav", samples)
    return root
