"""Deterministic inputs for the HASQI golden fixtures (shared by the generator and the tests).

Pure numpy/scipy/soundfile, importable from both the pyclarity venv (``make_hasqi_golden.py``)
and the project venv (``tests/metrics/test_hasqi.py``), so the fixtures store only the outputs
and the tests rebuild the inputs bit for bit (seeded ``RandomState`` + the FLAC files in
``/work/shared/data``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DATA_ROOT = Path(os.environ.get("CLARITY_SE_SHARED_DATA", "/work/shared/data"))
HASQI_FREQS = np.array([250, 500, 1000, 2000, 4000, 6000])
CEC2_FREQS = np.array([250, 500, 1000, 2000, 3000, 4000, 6000, 8000])

# ---------------------------------------------------------------------------------------------
# back-end (synthetic ear-model outputs)
# ---------------------------------------------------------------------------------------------


def backend_inputs(seed: int, *, nchan: int = 32, fs: int = 24000, duration_s: float = 0.3,
                   silent: bool = False) -> dict[str, np.ndarray]:
    """Ear-model-like outputs for one item: envelopes/BM in dB SL, long-term spectra.

    ``silent=True`` makes almost everything below the 2.5 dB thresholds.
    """
    rs = np.random.RandomState(seed)
    n = int(round(duration_s * fs))
    t = np.arange(n) / fs
    cf = np.geomspace(80.0, 8000.0, nchan)[:, None]
    phase = rs.uniform(0, 2 * np.pi, (nchan, 1))
    rate = rs.uniform(2.0, 9.0, (nchan, 1))
    shape = 0.5 * (1 + np.sin(2 * np.pi * rate * t[None, :] + phase))
    gap = (t > 0.12) & (t < 0.17)  # a pause: below threshold
    ref_db = 45.0 * shape + 3.0 * rs.standard_normal((nchan, n))
    ref_db[:, gap] = 0.5 * np.abs(rs.standard_normal((nchan, int(gap.sum()))))
    ref_db = np.maximum(ref_db, 0.0)
    proc_db = np.maximum(0.7 * np.roll(ref_db, 7, axis=1) + 4.0 * rs.standard_normal((nchan, n))
                         + 5.0, 0.0)
    carrier = np.sin(2 * np.pi * cf * t[None, :] + phase)
    ref_bm = ref_db * carrier + 0.5 * rs.standard_normal((nchan, n))
    delay = rs.randint(0, 12, nchan)
    proc_bm = np.stack([np.roll(ref_bm[k], delay[k]) for k in range(nchan)])
    proc_bm = 0.8 * proc_bm + 6.0 * rs.standard_normal((nchan, n)) * shape
    ref_sl = rs.uniform(0.0, 60.0, nchan)
    proc_sl = ref_sl + rs.normal(0.0, 6.0, nchan)
    if silent:
        ref_db *= 0.01
        ref_bm *= 0.01
    return {"reference_db": ref_db, "processed_db": proc_db, "reference_bm": ref_bm,
            "processed_bm": proc_bm, "reference_sl": ref_sl, "processed_sl": proc_sl}


BACKEND_CASES = [
    {"name": "b0", "seed": 11, "silent": False, "add_noise": 0.0},
    {"name": "b1", "seed": 12, "silent": False, "add_noise": 1.5},
    {"name": "b2", "seed": 13, "silent": True, "add_noise": 0.0},
]

# ---------------------------------------------------------------------------------------------
# whole metric on real recordings
# ---------------------------------------------------------------------------------------------

AUDIOGRAMS: dict[str, tuple[np.ndarray, np.ndarray]] = {
    # name: (frequencies Hz, levels dB HL)
    "normal": (HASQI_FREQS, np.array([0, 0, 0, 0, 0, 0])),
    "slight": (HASQI_FREQS, np.array([10, 10, 15, 20, 25, 30])),
    "mild_slope": (CEC2_FREQS, np.array([10, 15, 20, 30, 40, 45, 50, 55])),
    "moderate_flat": (HASQI_FREQS, np.array([45, 45, 50, 50, 55, 55])),
    "moderate_slope": (CEC2_FREQS, np.array([20, 25, 35, 50, 55, 60, 65, 70])),
    "severe_slope": (CEC2_FREQS, np.array([40, 50, 60, 70, 75, 80, 85, 90])),
    "reverse": (HASQI_FREQS, np.array([50, 45, 35, 25, 20, 15])),
    "notch": (CEC2_FREQS, np.array([5, 5, 10, 25, 50, 45, 20, 15])),
    "profound_hf": (HASQI_FREQS, np.array([30, 40, 60, 85, 100, 105])),
    "sparse": (np.array([500, 1000, 4000]), np.array([25, 40, 70])),
}

SPEECH = [
    "speech/vctk/p225_003.flac",
    "speech/vctk/p226_005.flac",
    "speech/librispeech/1088-129236-0000.flac",
    "speech/cmu_arctic/cmu_arctic_us_axb_a0004.flac",
    "speech/vctk/p227_008.flac",
    "speech/vctk/p228_011.flac",
]
INTERFERERS = {
    "tap": "noise/speech_commands/running_tap.flac",
    "dishes": "noise/speech_commands/doing_the_dishes.flac",
    "music": "music/Kevin_MacLeod_-_Vibe_Ace.flac",
    "trumpet": "music/sorohanro_-_solo-trumpet-06.flac",
    "talker": "speech/librispeech/1363-135842-0000.flac",
    "talker2": "speech/vctk/p226_008.flac",
}


def _case(i, speech, interferer, snr, fs, level, audiogram, *, eq=1, lowpass=False,
          delay_ms=0.0, dur=1.0, ref_rms=None, proc_gain=1.0):
    if ref_rms is None:
        ref_rms = 1.0 if level == 65 else 0.03
    return {"name": f"c{i:02d}_{interferer}_{snr:+d}dB_{fs}_{level}_{audiogram}",
            "speech": speech, "interferer": interferer, "snr_db": snr, "sample_rate": fs,
            "level_db_spl": float(level), "audiogram": audiogram, "equalisation": eq,
            "lowpass": lowpass, "delay_ms": delay_ms, "duration_s": dur, "ref_rms": ref_rms,
            "proc_gain": proc_gain, "seed": 1000 + i}


METRIC_CASES = [
    _case(0, SPEECH[0], "tap", 10, 16000, 65, "normal"),
    _case(1, SPEECH[1], "dishes", 0, 16000, 65, "mild_slope"),
    _case(2, SPEECH[2], "music", 5, 44100, 100, "moderate_slope"),
    _case(3, SPEECH[3], "talker", -10, 16000, 100, "severe_slope"),
    _case(4, SPEECH[4], "trumpet", 20, 44100, 65, "slight", lowpass=True),
    _case(5, SPEECH[5], "talker2", -5, 44100, 100, "reverse", delay_ms=3.0),
    _case(6, SPEECH[0], "music", 15, 16000, 100, "notch"),
    _case(7, SPEECH[1], "tap", -10, 44100, 65, "profound_hf"),
    _case(8, SPEECH[2], "dishes", 20, 16000, 100, "moderate_flat", eq=2),
    _case(9, SPEECH[3], "talker", 5, 44100, 100, "sparse"),
    _case(10, SPEECH[4], "none", 0, 16000, 65, "moderate_slope"),  # processed == reference
    # reference below the silence thresholds: cepstral correlation and BM sync are 0
    _case(11, SPEECH[5], "tap", 10, 16000, 65, "mild_slope", ref_rms=3e-7, proc_gain=1e5),
]

BETTER_EAR_CASES = [
    {"name": "be0", "speech": SPEECH[0], "interferer": "dishes", "snr_db": 5, "sample_rate": 44100,
     "left": "mild_slope", "right": "severe_slope", "seed": 2000, "duration_s": 0.5,
     "ref_rms": 0.03},
    {"name": "be1", "speech": SPEECH[5], "interferer": "music", "snr_db": 0, "sample_rate": 16000,
     "left": "profound_hf", "right": "normal", "seed": 2001, "duration_s": 0.5, "ref_rms": 0.03},
]


def _read(rel: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    x, fs = sf.read(str(DATA_ROOT / rel), dtype="float64", always_2d=True)
    return x[:, 0], fs


def _at_rate(x: np.ndarray, fs_in: int, fs_out: int) -> np.ndarray:
    if fs_in == fs_out:
        return x
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(fs_in, fs_out)
    return resample_poly(x, fs_out // g, fs_in // g)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)))


def make_pair(case: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """Reference and processed signals (1-D float64) and their sample rate for one case.

    Reference = a speech excerpt (from 0.3 s) scaled to ``ref_rms``; processed = reference +
    interferer at ``snr_db`` (optionally low-passed and delayed); ``"none"`` = a copy.
    """
    fs = case["sample_rate"]
    n = int(round(case["duration_s"] * fs))
    s, sfs = _read(case["speech"])
    s = _at_rate(s, sfs, fs)
    off = int(0.3 * fs)
    ref = s[off : off + n].copy()
    ref *= case["ref_rms"] / _rms(ref)
    if case["interferer"] == "none":
        return ref, ref.copy(), fs
    v, vfs = _read(INTERFERERS[case["interferer"]])
    v = _at_rate(v, vfs, fs)
    voff = int(1.1 * fs)
    v = v[voff : voff + n]
    v = v * (_rms(ref) / _rms(v)) / 10 ** (case["snr_db"] / 20)
    proc = ref + v
    if case.get("lowpass"):
        from scipy.signal import butter, lfilter

        b, a = butter(2, 3000.0 / (fs / 2))
        proc = lfilter(b, a, proc)
    d = int(round(case.get("delay_ms", 0.0) * 1e-3 * fs))
    if d:
        proc = np.concatenate([np.zeros(d), proc[:-d]])
    return ref, proc * case.get("proc_gain", 1.0), fs


def audiogram_arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies Hz, levels dB HL) of a named test audiogram."""
    f, lv = AUDIOGRAMS[name]
    return np.asarray(f, dtype=np.float64), np.asarray(lv, dtype=np.float64)
