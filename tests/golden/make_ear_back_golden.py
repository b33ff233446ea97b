"""Generate the golden fixtures of the ear model's back stages and of the whole ``eb.ear_model``.

Run with the pyclarity oracle environment (never imported by the library or the tests):

    /work/tools/pyclarity-venv/bin/python tests/golden/make_ear_back_golden.py

Writes ``tests/fixtures/ear_back_stages.npz`` (stage outputs for the synthetic inputs of
``ear_back_inputs.py``) and ``tests/fixtures/ear_back_model_<case>.npz`` (real-speech inputs as
int16 x 2**-11, the NAL-R FIR, and summaries of the seven ``eb.ear_model`` outputs).
"""

import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from clarity.enhancer.nalr import NALR
from clarity.evaluator.haspi import eb
from clarity.utils.audiogram import Audiogram
from scipy.signal import lfilter, resample_poly

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ear_back_inputs as inp  # noqa: E402

FIXTURES = HERE.parent / "fixtures"
SPEECH = Path("/work/shared/data/speech")
NOISE = Path("/work/shared/data/noise/speech_commands/doing_the_dishes.flac")
SCALE = 2.0**-11  # int16 quantisation step of the stored signals (RMS 1 == 65 dB SPL)
SUBSAMPLE = 251  # stride of the stored output samples
LEVEL = 65.0


def stage_fixtures():
    out = {}
    ref, proc = inp.align_inputs()
    out["align_out"] = np.stack([eb.envelope_align(r, p) for r, p in zip(ref, proc, strict=True)])
    ref, proc = inp.align_short_inputs()
    out["align_short_out"] = eb.envelope_align(ref[0], proc[0])[None]

    env, bm, attn = inp.envelope_sl_inputs()
    res = [eb.envelope_sl(e, b, a, LEVEL) for e, b, a in zip(env, bm, attn, strict=True)]
    out["sl_env_db"] = np.stack([r[0] for r in res])
    out["sl_bm"] = np.stack([r[1] for r in res])

    env_db, bm = inp.ihc_inputs()
    res = [eb.inner_hair_cell_adaptation(e, b, 2, 24000.0) for e, b in zip(env_db, bm, strict=True)]
    out["ihc_db"] = np.stack([r[0] for r in res])
    out["ihc_bm"] = np.stack([r[1] for r in res])

    bws = inp.group_delay_inputs()
    cf = eb.center_frequency(32)
    ramp = np.tile(np.arange(1.0, 1001.0), (32, 1))
    shifted = [eb.group_delay_compensate(ramp, bw, cf, 24000.0) for bw in bws]
    out["gd_center_freq"] = cf
    out["gd_correct"] = np.stack([(s == 0).sum(axis=1) for s in shifted])

    ref, ctl = inp.rms_sl_inputs()
    for i, name in enumerate(["mild", "moderate"]):
        params = eb.loss_parameters(inp.HEARING_LOSSES[name], cf)
        keys = ["attn_ohc", "bw_min", "low_knee", "cr", "attn_ihc"]
        for key, value in zip(keys, params, strict=True):
            out[f"rms_{key}_{i}"] = np.asarray(value, dtype=float)
        out[f"rms_sl_{i}"] = eb.convert_rms_to_sl(
            ref[i], ctl[i], params[0], params[2], params[3], params[4], LEVEL
        )

    np.random.seed(7)
    base = np.outer(np.arange(4.0), np.ones(50))
    out["noise_first"] = eb.basilar_membrane_add_noise(base, -10, LEVEL)
    out["noise_second"] = eb.basilar_membrane_add_noise(base[:, :30], -10, LEVEL)
    return out


def load_speech(name, start_s, dur_s, sample_rate):
    x, fs = sf.read(SPEECH / name)
    seg = x[int(start_s * fs) : int((start_s + dur_s) * fs)]
    if sample_rate == 44100:
        seg = resample_poly(seg, 441, 160)
    else:
        seg = resample_poly(seg, sample_rate // 1000, fs // 1000)
    return seg / np.sqrt(np.mean(seg**2))


def quantise(x):
    q = np.clip(np.round(x / SCALE), -32768, 32767).astype(np.int16)
    return q, q.astype(np.float64) * SCALE


def summarise(prefix, arr, out):
    w = np.cos(np.linspace(0.0, 7.0, arr.shape[1]))
    out[f"{prefix}_sum"] = arr.sum(axis=1)
    out[f"{prefix}_sumsq"] = (arr**2).sum(axis=1)
    out[f"{prefix}_wsum"] = arr @ w
    out[f"{prefix}_absmax"] = np.abs(arr).max(axis=1)
    out[f"{prefix}_sub"] = arr[:, ::SUBSAMPLE]


CASES = {
    # name: (speech file, start s, loss, itype, ref rate, proc rate, seed, delay ms, snr dB)
    "mild_it0_24k": ("vctk/p225_003.flac", 0.9, "mild", 0, 24000, 24000, 11, 1.5, 10.0),
    "moderate_it1_44k": ("cmu_arctic/cmu_arctic_us_aew_a0001.flac", 0.6, "moderate", 1,
                         44100, 44100, 12, 3.0, 5.0),
    "severe_it0_44k": ("librispeech/1088-129236-0000.flac", 1.2, "severe", 0, 44100, 44100,
                       13, 0.5, 15.0),
    "nh_it1_24k": ("vctk/p226_003.flac", 1.0, "nh", 1, 24000, 24000, 14, 2.0, 5.0),
    "mild_it2_mixed": ("cmu_arctic/cmu_arctic_us_axb_a0005.flac", 0.4, "mild", 2, 44100,
                       24000, 15, 1.0, 10.0),
}


def model_fixture(name, spec):
    fname, start, loss_name, itype, ref_sr, proc_sr, seed, delay_ms, snr = spec
    dur = 0.3
    ref = load_speech(fname, start, dur, ref_sr)
    proc = load_speech(fname, start, dur, proc_sr)
    # processed: delayed, coloured, amplified, plus real noise
    delay = int(round(delay_ms * 1e-3 * proc_sr))
    proc = np.concatenate((np.zeros(delay), proc[: len(proc) - delay]))
    proc = lfilter([0.6, 0.3, 0.1], [1.0], proc) * 1.4
    noise, nfs = sf.read(NOISE)
    noise = resample_poly(noise[: int(nfs * dur) + 100], proc_sr // 1000 if proc_sr != 44100
                          else 441, 16 if proc_sr != 44100 else 160)[: len(proc)]
    noise *= np.sqrt(np.mean(proc**2) / np.mean(noise**2)) * 10 ** (-snr / 20)
    proc = proc + noise
    ref_q, ref = quantise(ref)
    proc_q, proc = quantise(proc)
    loss = inp.HEARING_LOSSES[loss_name]

    np.random.seed(seed)
    outputs = eb.ear_model(ref, ref_sr, proc, proc_sr, loss, itype, LEVEL)
    out = {
        "reference_int16": ref_q,
        "processed_int16": proc_q,
        "scale": np.float64(SCALE),
        "reference_sample_rate": np.int64(ref_sr),
        "processed_sample_rate": np.int64(proc_sr),
        "hearing_loss": loss,
        "itype": np.int64(itype),
        "seed": np.int64(seed),
        "level_db_spl": np.float64(LEVEL),
        "subsample": np.int64(SUBSAMPLE),
    }
    if itype == 1:
        enhancer = NALR(140, 24000.0)
        out["nalr_fir"], _ = enhancer.build(
            Audiogram(levels=loss, frequencies=np.array([250, 500, 1000, 2000, 4000, 6000]))
        )
    keys = ["reference_db", "reference_bm", "processed_db", "processed_bm"]
    for key, arr in zip(keys, outputs[:4], strict=True):
        out[f"{key}_shape"] = np.array(arr.shape)
        summarise(key, arr, out)
    out["reference_sl"] = outputs[4]
    out["processed_sl"] = outputs[5]
    out["freq_sample"] = np.float64(outputs[6])
    return out


def main():
    FIXTURES.mkdir(parents=True, exist_ok=True)
    path = FIXTURES / "ear_back_stages.npz"
    np.savez_compressed(path, **stage_fixtures())
    print(path, path.stat().st_size)
    for name, spec in CASES.items():
        path = FIXTURES / f"ear_back_model_{name}.npz"
        np.savez_compressed(path, **model_fixture(name, spec))
        print(path, path.stat().st_size)


if __name__ == "__main__":
    main()
