"""Golden values of the hearing-aid stage from pyclarity 0.9.0 (the official ICASSP 2023 recipe).

Run with the pyclarity oracle environment (never imported by clarity_se or the tests)::

    /work/tools/pyclarity-venv/bin/python tests/golden/make_amplify_golden.py

Writes ``tests/fixtures/amplify_golden.npz`` (< 100 kB):

- ``aud_cfs``, ``aud_levels`` [n, 10] (NaN-padded), ``aud_names``: test audiograms;
  ``fir`` [n, 221]: ``NALR(220, 44100).build(audiogram)[0]``;
- ``speech_i16`` [13230]: 0.3 s of real speech (VCTK p225_024, from /work/shared/data), resampled
  16 -> 44.1 kHz and quantised to int16 so that the test can rebuild it exactly (``/ 32768``);
- ``comp_scales`` [k], ``comp_params`` [k, 6] (threshold, attenuation, attack, release,
  rms_buffer_size, makeup_gain), ``comp_out`` [k, ceil(13230 / COMP_STRIDE)]: every
  ``COMP_STRIDE``-th sample of ``Compressor(**params).process(scale * speech)[0]`` in float64;
- ``pair_*``: one (scene, listener) pair run through the official
  ``recipes/icassp_2023/baseline/evaluate.py`` (hydra, its own config.yaml): the enhanced signal
  is ``pair_gains[ear] * speech`` delayed by ``pair_delays[ear]`` samples, written as a float32
  WAV (``pair_float``) or 16-bit PCM (``pair_int16``, the official saturating path); stored are
  every ``PAIR_STRIDE``-th row of the official ``amplified_signals/*_HA-output.wav`` (float32) and
  the per-ear clip counts (``|x| > 1`` before ``tanh``, from the official ``amplify_signal``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import clarity
import numpy as np
import soundfile as sf
from clarity.enhancer.compressor import Compressor
from clarity.enhancer.nalr import NALR
from clarity.utils.audiogram import Audiogram
from scipy.io import wavfile
from scipy.signal import resample_poly

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "fixtures" / "amplify_golden.npz"
SPEECH = Path("/work/shared/data/speech/vctk/p225_024.flac")
FS = 44100
COMP_STRIDE = 16
PAIR_STRIDE = 8
CEC2_CFS = [250, 500, 1000, 2000, 3000, 4000, 6000, 8000]
BISGAARD_CFS = [250, 375, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000]

AUDIOGRAMS = [
    ("flat_0", CEC2_CFS, [0, 0, 0, 0, 0, 0, 0, 0]),
    ("flat_80", CEC2_CFS, [80] * 8),
    ("steep_hf", CEC2_CFS, [10, 10, 15, 30, 55, 70, 80, 90]),
    ("asym_left_mild", CEC2_CFS, [10, 15, 20, 25, 30, 35, 40, 45]),
    ("asym_right_severe", CEC2_CFS, [45, 55, 65, 75, 80, 85, 90, 95]),
    ("nonstandard_cfs", [300, 700, 1500, 3500, 7000], [20, 30, 45, 60, 70]),
    ("mild", CEC2_CFS, [5, 10, 15, 20, 25, 30, 30, 35]),
    ("bisgaard_N3", BISGAARD_CFS, [35, 35, 35, 35, 40, 45, 50, 55, 60, 65]),
    ("bisgaard_S2", BISGAARD_CFS, [10, 10, 10, 10, 10, 20, 40, 55, 70, 80]),
    ("profound_110", CEC2_CFS, [110] * 8),
    ("negative_-10", CEC2_CFS, [-10] * 8),
    ("reverse_slope", CEC2_CFS, [60, 55, 45, 30, 20, 15, 10, 10]),
    ("cookie_bite", CEC2_CFS, [15, 30, 50, 55, 50, 30, 20, 15]),
    ("single_cf", [1000], [40]),
    ("knee_180", CEC2_CFS, [50, 60, 60, 60, 65, 70, 75, 80]),
    ("tiny_hf_interp", [250, 500, 1000, 2000, 4000, 8000], [0, 0, 0, 0, 0, 5]),
    ("fractional", [250, 500, 1000, 2000, 4000, 6000], [12.5, 17.25, 33.3, 41.7, 58.9, 66.1]),
]

RECIPE = (0.35, 0.1, 50.0, 1000.0, 0.064, 1.0)
COMPRESSOR_CASES = [  # (RMS of the input, params)
    (0.03, RECIPE),
    (0.3, RECIPE),
    (0.6, RECIPE),
    (1.5, RECIPE),
    (0.2, (0.1, 0.3, 5.0, 20.0, 0.01, 2.0)),
]

PAIR_LISTENER = {
    "name": "L9001",
    "audiogram_cfs": CEC2_CFS,
    "audiogram_levels_l": [20, 25, 30, 40, 50, 55, 60, 65],
    "audiogram_levels_r": [10, 10, 15, 35, 60, 70, 75, 85],
}
PAIR_GAINS = np.array([1.5, 0.9])  # times the speech scaled to RMS 0.1
PAIR_DELAYS = np.array([0, 37])


def speech_int16() -> np.ndarray:
    x, sr = sf.read(SPEECH, dtype="float64")
    y = resample_poly(x, FS, sr)
    start = int(0.8 * FS)  # skip the leading silence
    seg = y[start : start + int(0.3 * FS)]
    seg = seg / np.max(np.abs(seg)) * 0.9
    return np.round(seg * 32768).astype(np.int16)


def enhanced_pair(speech: np.ndarray) -> np.ndarray:
    """[time, 2] float64 enhanced signal of the pair (rebuilt alike in test_amplification.py)."""
    base = speech.astype(np.float64) / 32768.0
    base = base * (0.1 / np.sqrt(np.mean(base**2)))
    ears = [PAIR_GAINS[e] * np.roll(base, PAIR_DELAYS[e]) for e in range(2)]
    return np.stack(ears, axis=1)


def run_official_pair(enhanced: np.ndarray, as_int16: bool) -> tuple[np.ndarray, np.ndarray]:
    """Run the official evaluate.py on a one-pair CEC2-like folder -> (HA output, clip counts)."""
    from clarity.utils.audiogram import Listener

    from recipes.icassp_2023.baseline import evaluate as official

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        meta = root / "clarity_data" / "metadata"
        scenes = root / "clarity_data" / "dev" / "scenes"
        exp = root / "exp"
        for d in (meta, scenes, exp / "enhanced_signals"):
            d.mkdir(parents=True)
        (meta / "scenes_listeners.dev.json").write_text(json.dumps({"S9001": ["L9001"]}))
        (meta / "listeners.json").write_text(json.dumps({"L9001": PAIR_LISTENER}))
        ref = np.round(enhanced * 32768 / 2).astype(np.int16)
        wavfile.write(scenes / "S9001_target_anechoic_CH1.wav", FS, ref)
        wavfile.write(scenes / "S9001_target_CH1.wav", FS, ref)
        data = (
            np.round(enhanced * 32768).astype(np.int16) if as_int16 else enhanced.astype(np.float32)
        )
        wavfile.write(exp / "enhanced_signals" / "S9001_L9001_enhanced.wav", FS, data)
        script = Path(official.__file__)
        subprocess.run(
            [sys.executable, str(script), f"path.root={root}", f"path.exp_folder={exp}"],
            check=True,
            cwd=script.parent,
        )
        _, out = wavfile.read(exp / "amplified_signals" / "S9001_L9001_HA-output.wav")
        # clip counts from the official components (the script does not expose them)
        listener = Listener.from_dict(PAIR_LISTENER)
        _, signal = wavfile.read(exp / "enhanced_signals" / "S9001_L9001_enhanced.wav")
        enhancer, compressor = (
            NALR(220, FS),
            Compressor(
                threshold=0.35, attenuation=0.1, attack=50, release=1000, rms_buffer_size=0.064
            ),
        )
        clipped = [
            np.count_nonzero(
                np.abs(official.amplify_signal(signal[:, e], aud, enhancer, compressor)) > 1
            )
            for e, aud in enumerate((listener.audiogram_left, listener.audiogram_right))
        ]
    return out, np.array(clipped)


def main() -> None:
    n = len(AUDIOGRAMS)
    cfs = np.full((n, 10), np.nan)
    levels = np.full((n, 10), np.nan)
    firs = np.zeros((n, 221))
    nalr = NALR(220, FS)
    for i, (_, f, lv) in enumerate(AUDIOGRAMS):
        cfs[i, : len(f)] = f
        levels[i, : len(lv)] = lv
        firs[i] = nalr.build(Audiogram(levels=np.array(lv, float), frequencies=np.array(f)))[0]

    speech = speech_int16()
    base = speech.astype(np.float64) / 32768.0
    base_rms = np.sqrt(np.mean(base**2))
    comp_scales = np.array([rms / base_rms for rms, _ in COMPRESSOR_CASES])
    comp_params = np.array([p for _, p in COMPRESSOR_CASES])
    comp_out = []
    for scale, p in zip(comp_scales, comp_params, strict=True):
        comp = Compressor(
            fs=FS, threshold=p[0], attenuation=p[1], attack=p[2], release=p[3],
            rms_buffer_size=p[4], makeup_gain=p[5],
        )  # fmt: skip
        comp_out.append(comp.process(base * scale)[0][::COMP_STRIDE])

    enhanced = enhanced_pair(speech)
    pair_float, clip_float = run_official_pair(enhanced, as_int16=False)
    pair_int16, clip_int16 = run_official_pair(enhanced, as_int16=True)

    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        OUT,
        pyclarity_version=np.array(getattr(clarity, "__version__", "0.9.0")),
        aud_names=np.array([a[0] for a in AUDIOGRAMS]),
        aud_cfs=cfs,
        aud_levels=levels,
        fir=firs,
        speech_i16=speech,
        comp_stride=np.array(COMP_STRIDE),
        comp_scales=comp_scales,
        comp_params=comp_params,
        comp_out=np.stack(comp_out),
        pair_listener=np.array(json.dumps(PAIR_LISTENER)),
        pair_gains=PAIR_GAINS,
        pair_delays=PAIR_DELAYS,
        pair_stride=np.array(PAIR_STRIDE),
        pair_length=np.array(pair_float.shape[0]),
        pair_float=pair_float[::PAIR_STRIDE],
        pair_float_clipped=clip_float,
        pair_int16=pair_int16[::PAIR_STRIDE],
        pair_int16_clipped=clip_int16,
    )
    print(
        f"wrote {OUT} ({OUT.stat().st_size} bytes); "
        f"clip counts float {clip_float}, int16 {clip_int16}"
    )


if __name__ == "__main__":
    main()
