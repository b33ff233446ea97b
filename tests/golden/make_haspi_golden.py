"""Generate the HASPI v2 golden fixtures from pyclarity 0.9.0 (the test-time oracle).

Run with the pyclarity venv (never imported by ``clarity_se``)::

    OMP_NUM_THREADS=1 /work/tools/pyclarity-venv/bin/python tests/golden/make_haspi_golden.py

Writes, under ``tests/fixtures/`` (each file < 100 kB):

* ``haspi_backend_{envfilter,modfilter,misc}.npz`` -- back-end golden (ebm.py / ip.py functions)
  on deterministic synthetic inputs (regenerated in the test from ``numpy.random.RandomState``
  seeds written in both scripts).
* ``haspi_chain_{a,b}.npz`` -- the 24 kHz ear-model envelopes of a 0.45 s speech-in-noise pair
  after pyclarity's ``env_filter`` (quantised to float16; the golden below is computed from the
  quantised values), and the golden outputs of ``cepstral_correlation_coef`` ->
  ``fir_modulation_filter`` -> ``modulation_cross_correlation`` -> network on them.
* ``haspi_clips_16k.npz``, ``haspi_clips_44k_{a,b}.npz`` -- int16 source clips cut from
  ``/work/shared/data`` (speech, competing talker, noise, music).
* ``haspi_whole.json`` -- whole-metric cases (mixing recipe, audiogram, level, seed) with
  pyclarity's left / right / better-ear HASPI v2 scores and raw features, pyclarity's published
  test value and an unequal-length case.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from clarity.evaluator.haspi import haspi_v2, haspi_v2_be
from clarity.evaluator.haspi.eb import ear_model
from clarity.evaluator.haspi.ebm import (
    add_noise,
    cepstral_correlation_coef,
    env_filter,
    fir_modulation_filter,
    modulation_cross_correlation,
)
from clarity.evaluator.haspi.ip import get_neural_net, nn_feed_forward_ensemble
from clarity.utils.audiogram import Audiogram, Listener

sys.path.insert(0, str(Path(__file__).resolve().parent))
import haspi_inputs  # noqa: E402
from scipy.signal import resample_poly

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "fixtures"
DATA = Path("/work/shared/data")
HASPI_F = np.array([250, 500, 1000, 2000, 4000, 6000])
CEC2_F = np.array([250, 500, 1000, 2000, 3000, 4000, 6000, 8000])


def network(raw):
    params, wh, wo, norm = get_neural_net()
    return nn_feed_forward_ensemble(raw, params, wh, wo) / norm


# --------------------------------------------------------------------------------------------
# (a) back-end golden on synthetic inputs
# --------------------------------------------------------------------------------------------
def synth_env(seed: int, nchan: int, nsamp: int) -> tuple[np.ndarray, np.ndarray]:
    """Envelope-like dB signals [nchan, nsamp]; identical recipe in tests/metrics/test_haspi.py."""
    rs = np.random.RandomState(seed)
    ref = 30.0 + 20.0 * rs.standard_normal((nchan, nsamp))
    proc = 0.7 * ref + 10.0 * rs.standard_normal((nchan, nsamp))
    return ref, proc


def make_backend() -> None:
    out: dict[str, np.ndarray] = {}
    # env_filter: HASPI parameters (quirk: step 9 at 24 kHz) and other parameters
    for tag, (seed, nchan, nsamp, fcut, fsub, fs) in {
        "ef1": (1, 8, 2400, 320.0, 2560.0, 24000.0),
        "ef2": (2, 5, 1601, 1000.0, 4000.0, 16000.0),
    }.items():
        ref, proc = synth_env(seed, nchan, nsamp)
        r, p = env_filter(ref, proc, fcut, fsub, fs)  # transposed inside (ncol > nrow)
        out[f"{tag}_ref"], out[f"{tag}_proc"] = r.T, p.T  # store [nchan, nsub]
    # cepstral_correlation_coef with silence removal and noise: input seed 3, noise seed 4
    ref, proc = synth_env(3, 32, 500)
    ref[:, 100:180] = -30.0  # a "silent" stretch removed by the threshold
    np.random.seed(4)
    rc, pc = cepstral_correlation_coef(ref.T, proc.T, 2.5, 0.1, 6)
    out["cc_ref"], out["cc_proc"] = rc, pc  # [nsel, 6]
    # add_noise: seed 5
    ref, _ = synth_env(6, 4, 50)
    np.random.seed(5)
    out["an"] = add_noise(ref.T, 0.1).T
    # fir_modulation_filter on [nchan=3, nsamp=300] at fsub 2560 Hz, and 8 bands at 1000 Hz
    ref, proc = synth_env(7, 3, 300)
    rm, pm, cf = fir_modulation_filter(ref.T, proc.T, 2560.0)
    out["mf_ref"], out["mf_proc"], out["mf_cf"] = rm[:, :, ::3], pm[:, :, ::3], cf
    ref, proc = synth_env(8, 2, 120)
    rm, pm, cf = fir_modulation_filter(ref.T, proc.T, 1000.0)
    out["mf2_ref"], out["mf2_proc"], out["mf2_cf"] = rm, pm, cf
    # modulation_cross_correlation: seed 9, [6, 10, 200]; one zero band
    rs = np.random.RandomState(9)
    xm = rs.standard_normal((6, 10, 200))
    ym = 0.5 * xm + rs.standard_normal((6, 10, 200))
    xm[2, 3] = 0.0
    out["mc"] = modulation_cross_correlation(xm.copy(), ym.copy())
    # network: seed 10, [20, 10] in [0, 1]
    rs = np.random.RandomState(10)
    feats = rs.uniform(0, 1, (20, 10))
    params, wh, wo, norm = get_neural_net()
    out["nn"] = nn_feed_forward_ensemble(feats, params, wh, wo)
    out["nn_norm"] = np.array(norm)
    groups = {"envfilter": ("ef",), "modfilter": ("mf",), "misc": ("cc", "an", "mc", "nn")}
    for name, prefixes in groups.items():
        part = {k: v for k, v in out.items() if k.split("_")[0].rstrip("0123456789") in prefixes}
        np.savez_compressed(FIX / f"haspi_backend_{name}.npz", **part)


# --------------------------------------------------------------------------------------------
# chain golden on real ear-model output
# --------------------------------------------------------------------------------------------
def read(path: str, start_s: float, dur_s: float, sr_out: int | None = None) -> np.ndarray:
    x, sr = sf.read(DATA / path, dtype="float64", always_2d=True)
    x = x[:, 0]
    if sr_out is not None and sr_out != sr:
        g = np.gcd(int(sr), int(sr_out))
        x = resample_poly(x, sr_out // g, sr // g)
        sr = sr_out
    i0 = int(round(start_s * sr))
    return x[i0 : i0 + int(round(dur_s * sr))]


def make_chain() -> None:
    sr = 16000
    tgt = read("speech/vctk/p225_003.flac", 1.0, 0.35)
    noise = read("noise/speech_commands/running_tap.flac", 3.0, 0.45)
    ref = np.concatenate([np.zeros(int(0.1 * sr)), tgt])  # 0.1 s digital silence first
    proc = ref + 0.5 * np.sqrt(np.mean(ref**2) / np.mean(noise**2)) * noise
    hl = np.array([30.0, 35, 40, 50, 60, 65])
    np.random.seed(11)
    ref_env, _, proc_env, _, _, _, fsamp = ear_model(ref, sr, proc, sr, hl, 0, 65.0, shift=None)
    rl, pl = env_filter(ref_env, proc_env, 320.0, 2560.0, fsamp)
    rl16, pl16 = rl.T.astype(np.float16), pl.T.astype(np.float16)  # [32, nsub]
    rl, pl = rl16.astype(np.float64).T, pl16.astype(np.float64).T
    np.random.seed(12)
    rc, pc = cepstral_correlation_coef(rl, pl, 2.5, 0.1, 6)
    rm, pm, _ = fir_modulation_filter(rc, pc, 2560.0)
    raw = modulation_cross_correlation(rm.copy(), pm.copy())
    score = network(raw)[0]
    np.savez_compressed(
        FIX / "haspi_chain_a.npz",
        ref_lp=rl16,
        ref_cep=rc[::3],
        proc_cep=pc[::3],
        nsel=np.array(len(rc)),
        raw=raw,
        score=np.array(score),
    )
    np.savez_compressed(
        FIX / "haspi_chain_b.npz", proc_lp=pl16, ref_mod=rm[:, :, ::25], proc_mod=pm[:, :, ::25]
    )
    print("chain score", score, "nsel", len(rc), "of", rl.shape[0])


# --------------------------------------------------------------------------------------------
# (b) whole-metric golden
# --------------------------------------------------------------------------------------------
CLIPS = {
    16000: {
        "speech": ("speech/vctk/p226_005.flac", 0.9, 0.75),
        "talker": ("speech/librispeech/1963-142393-0000.flac", 1.2, 0.75),
        "noise": ("noise/speech_commands/doing_the_dishes.flac", 10.0, 0.75),
        "music": ("music/Kevin_MacLeod_-_Vibe_Ace.flac", 20.0, 0.75),
    },
    44100: {
        "speech": ("speech/freesound/xmas.flac", 0.3, 0.5),
        "talker": ("speech/vctk/p228_005.flac", 1.0, 0.5),
        "noise": ("noise/sonic_pi/vinyl_hiss.flac", 2.0, 0.5),
        "music": ("music/sorohanro_-_solo-trumpet-06.flac", 1.0, 0.5),
    },
}
AUDIOGRAMS = [  # levels at CEC2_F unless frequencies given
    [10, 10, 15, 20, 25, 30, 35, 40],
    [25, 25, 25, 25, 30, 40, 65, 70],
    [45, 45, 35, 45, 50, 60, 65, 70],
    [20, 30, 40, 50, 55, 60, 70, 75],
    [50, 55, 60, 65, 70, 75, 80, 85],
    [0, 0, 0, 0, 0, 0, 0, 0],
    [35, 30, 25, 30, 45, 55, 50, 60],
    [60, 60, 65, 70, 75, 80, 85, 90],
    [15, 20, 30, 45, 55, 65, 75, 80],
]
NONSTD_F = [250, 500, 700, 1000, 2000, 6000]  # non-standard frequencies (resampling)


mix = haspi_inputs.mix


def make_whole() -> None:
    clips = {}
    for sr, spec in CLIPS.items():
        clips[sr] = {}
        for name, (path, t0, dur) in spec.items():
            x = read(path, t0, dur, sr)
            x = x / np.max(np.abs(x)) * 0.5
            clips[sr][name] = np.round(x * 32767).astype(np.int16)
    np.savez_compressed(FIX / "haspi_clips_16k.npz", **clips[16000])
    c44 = clips[44100]
    np.savez_compressed(FIX / "haspi_clips_44k_a.npz", speech=c44["speech"], talker=c44["talker"])
    np.savez_compressed(FIX / "haspi_clips_44k_b.npz", noise=c44["noise"], music=c44["music"])

    cases = []
    snrs = [-10, -5, 0, 5, 10, 20]
    k = 0
    for sr in (16000, 44100):
        for interferer in ("noise", "music", "talker"):
            for j in range(4):
                snr = snrs[(k + j) % len(snrs)]
                ag = AUDIOGRAMS[k % len(AUDIOGRAMS)]
                ag_r = AUDIOGRAMS[(k + 3) % len(AUDIOGRAMS)]
                case = {
                    "id": f"c{k:02d}",
                    "sample_rate": sr,
                    "interferer": interferer,
                    "snr_db": snr,
                    "level_db_spl": [65.0, 100.0][k % 2],
                    "delay_right": 7 * (k % 5),
                    "seed": 1000 + 37 * k,
                    "audiogram_frequencies": CEC2_F.tolist(),
                    "audiogram_left": ag,
                    "audiogram_right": ag_r,
                }
                if k % 8 == 5:  # non-standard frequencies -> interpolation
                    case["audiogram_frequencies"] = NONSTD_F
                    case["audiogram_left"] = ag[:6]
                    case["audiogram_right"] = ag_r[:6]
                cases.append(case)
                k += 1
    t_total = 0.0
    for case in cases:
        sig = mix(clips[case["sample_rate"]], case)
        f = np.array(case["audiogram_frequencies"])
        al = Audiogram(levels=np.array(case["audiogram_left"], float), frequencies=f)
        ar = Audiogram(levels=np.array(case["audiogram_right"], float), frequencies=f)
        t0 = time.time()
        np.random.seed(case["seed"])
        sl, raw_l = haspi_v2(
            sig["reference_left"],
            case["sample_rate"],
            sig["processed_left"],
            case["sample_rate"],
            al,
            case["level_db_spl"],
        )
        sr_, raw_r = haspi_v2(
            sig["reference_right"],
            case["sample_rate"],
            sig["processed_right"],
            case["sample_rate"],
            ar,
            case["level_db_spl"],
        )
        t_total += time.time() - t0
        np.random.seed(case["seed"])
        be = haspi_v2_be(
            sig["reference_left"],
            sig["reference_right"],
            sig["processed_left"],
            sig["processed_right"],
            case["sample_rate"],
            Listener(audiogram_left=al, audiogram_right=ar, id="L"),
            case["level_db_spl"],
        )
        assert be == max(sl, sr_)
        case.update(
            score_left=float(sl),
            score_right=float(sr_),
            score_better_ear=float(be),
            raw_left=raw_l.tolist(),
            raw_right=raw_r.tolist(),
        )
        print(case["id"], case["sample_rate"], case["interferer"], case["snr_db"], sl, sr_)

    # pyclarity's published test (tests/evaluator/haspi/test_haspi.py::test_haspi_v2)
    np.random.seed(0)
    x = np.random.uniform(-1, 1, 8000)
    y = np.random.uniform(-1, 1, 8000)
    pub, pub_raw = haspi_v2(
        x,
        16000,
        y + x,
        16000,
        Audiogram(levels=np.array([45, 45, 35, 45, 60, 65]), frequencies=HASPI_F),
        65,
    )
    published = {
        "setup": "np.random.seed(0); x, y = uniform(-1, 1, 8000) x2; "
        "haspi_v2(x, 16000, x + y, 16000, [45,45,35,45,60,65], 65)",
        "published_score": 0.043808448934532965,
        "pyclarity_0_9_0_score": float(pub),
        "raw": pub_raw.tolist(),
    }
    # unequal lengths: pyclarity's ear model truncates both to the shorter after resampling
    c16 = clips[16000]
    ref_u = c16["speech"].astype(np.float64) / 32768.0
    proc_u = (ref_u + 0.3 * c16["noise"].astype(np.float64) / 32768.0)[: len(ref_u) - 1234]
    np.random.seed(77)
    un, un_raw = haspi_v2(
        ref_u,
        16000,
        proc_u,
        16000,
        Audiogram(levels=np.array([20.0, 25, 30, 40, 50, 60]), frequencies=HASPI_F),
        65,
    )
    unequal = {
        "setup": "speech vs (speech + 0.3 noise)[:-1234], 16 kHz clips, seed 77, "
        "loss [20,25,30,40,50,60], level 65",
        "score": float(un),
        "raw": un_raw.tolist(),
    }
    meta = {
        "generator": "tests/golden/make_haspi_golden.py",
        "pyclarity": "0.9.0",
        "pyclarity_seconds_per_pair_both_ears": t_total / len(cases),
        "cases": cases,
        "published": published,
        "unequal": unequal,
    }
    (FIX / "haspi_whole.json").write_text(json.dumps(meta, indent=1))


if __name__ == "__main__":
    import sys

    parts = sys.argv[1:] or ["backend", "chain", "whole"]
    if "backend" in parts:
        make_backend()
    if "chain" in parts:
        make_chain()
    if "whole" in parts:
        make_whole()
    for p in sorted(FIX.glob("haspi_*")):
        print(p.name, p.stat().st_size)
