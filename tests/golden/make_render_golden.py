"""Golden values for tests/data/test_render.py from pyclarity's CEC2 scene renderer helpers.

Run with the pyclarity venv (writes tests/fixtures/render_golden.npz)::

    /work/tools/pyclarity-venv/bin/python tests/golden/make_render_golden.py

Stores seeded stereo signals, pyclarity's ``better_ear_speechweighted_snr`` of them (the CEC2
SNR definition) and the int16 samples ``SceneRenderer.save_signal_16bit`` writes for them with
norm 3 (the CH1 write norm; includes clipping and truncation toward zero).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from clarity.data.scene_renderer_cec2 import SceneRenderer
from clarity.data.utils import better_ear_speechweighted_snr
from scipy.io import wavfile

OUT = Path(__file__).resolve().parents[1] / "fixtures" / "render_golden.npz"


def main() -> None:
    rng = np.random.default_rng(20230101)
    n = 2205  # 50 ms at 44.1 kHz
    target = rng.standard_normal((n, 2)).astype(np.float32) * np.array([0.3, 0.1], dtype=np.float32)
    noise = rng.standard_normal((n, 2)).astype(np.float32) * np.array([0.2, 0.25], dtype=np.float32)
    noise[:, 1] += np.sin(2 * np.pi * 1000 * np.arange(n) / 44100).astype(np.float32)
    snr = better_ear_speechweighted_snr(target.astype(np.float64), noise.astype(np.float64))
    loud = (noise * 4.0).astype(np.float64)  # some samples beyond +-3 -> clipped when written /3
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "x.wav")
        SceneRenderer.save_signal_16bit(None, path, loud.copy(), 3.0)
        _, pcm = wavfile.read(path)
    np.savez_compressed(
        OUT, target=target, noise=noise, snr=np.float64(snr), loud=loud.astype(np.float32), pcm=pcm
    )
    print("wrote", OUT, "snr", snr, "clipped", int(np.sum(np.abs(loud / 3) > 1)))


if __name__ == "__main__":
    main()
