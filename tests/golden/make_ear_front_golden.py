"""Golden values for the front of the ear model (A1 stages) from pyclarity 0.9.0.

Run with the pyclarity oracle environment (never from the library or the tests)::

    /work/tools/pyclarity-venv/bin/python tests/golden/make_ear_front_golden.py

Writes ``tests/fixtures/ear_front_*.npz`` (each < 100 kB).  Inputs are real VCTK speech
(``/work/shared/data/speech/vctk``, 16 kHz) plus seeded Gaussian noise.  Every stored stage
input is rounded to float32 first and the reference is run on that float32-exact float64
array, so the fixture holds the exact input the golden output was computed from at half the
size.  Large band outputs ``[32, time]`` are stored as values at fixed sample indices plus the
per-band RMS and maximum over the whole signal.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
from clarity.evaluator.haspi import eb
from scipy.signal import resample_poly

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SPEECH = (
    Path(os.environ.get("CLARITY_SE_SHARED", "/work/shared/data"))
    / "speech"
    / "vctk"
    / "p226_003.flac"
)
LEVEL1 = 65.0
FS = 24000.0
HEARING_LOSSES = np.array(
    [
        [0, 0, 0, 0, 0, 0],  # normal hearing
        [10, 15, 25, 40, 55, 60],  # moderate sloping
        [0, 5, 10, 45, 80, 100],  # steep high-frequency loss
        [70, 70, 75, 80, 85, 90],  # severe flat
    ],
    dtype=np.float64,
)


def q32(x: np.ndarray) -> np.ndarray:
    """Round to float32 and back: exactly storable as float32."""
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def band_summary(prefix: str, x: np.ndarray, idx: np.ndarray, out: dict) -> None:
    out[f"{prefix}_at"] = x[:, idx]
    out[f"{prefix}_rms"] = np.sqrt(np.mean(x**2, axis=-1))
    out[f"{prefix}_max"] = np.max(np.abs(x), axis=-1)


def save(name: str, **arrays) -> None:
    path = FIXTURES / f"ear_front_{name}.npz"
    np.savez(path, **arrays)
    size = path.stat().st_size
    print(f"{path.relative_to(ROOT)}: {size / 1024:.1f} kB")
    if size >= 100_000:
        raise SystemExit(f"{path} is too large ({size} bytes)")


def main() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261122)
    speech16, fs16 = sf.read(SPEECH)
    assert fs16 == 16000
    # a segment with a speech onset: 0.35 s .. 0.60 s of the utterance
    seg16 = speech16[int(0.35 * fs16) : int(0.6 * fs16)]
    seg16 = seg16 / np.sqrt(np.mean(seg16**2))  # RMS 1 == 65 dB SPL

    # --- loss parameters and centre frequencies ------------------------------------------
    cf = eb.center_frequency(32)
    cf_shift = eb.center_frequency(32, 0.02)
    params = [eb.loss_parameters(hl, cf) for hl in HEARING_LOSSES]
    _, bw_control, _, _, _ = eb.loss_parameters(np.full(6, 100), cf)
    _, bw_control_shift, _, _, _ = eb.loss_parameters(np.full(6, 100), cf_shift)
    names = ["attenuated_ohc", "bandwidth", "low_knee", "compression_ratio", "attenuated_ihc"]
    save(
        "loss",
        hearing_loss=HEARING_LOSSES,
        center_freq=cf,
        center_freq_shift=cf_shift,
        bandwidth_control=bw_control,
        bandwidth_control_shift=bw_control_shift,
        **{n: np.stack([p[i] for p in params]) for i, n in enumerate(names)},
    )

    # --- resampling at 16, 24 and 44.1 kHz ------------------------------------------------
    seg16_02 = seg16[: int(0.2 * fs16)]
    inputs = {
        16000: seg16_02,
        24000: resample_poly(seg16_02, 3, 2),
        44100: resample_poly(seg16_02, 441, 160),
    }
    for fs, x in inputs.items():
        x = q32(x + 0.01 * rng.standard_normal(x.size))
        y, fs_out = eb.resample_24khz(x, fs)
        assert fs_out == 24000
        save(f"resample_{fs}", x=x.astype(np.float32), y=y, sample_rate=fs)

    # --- input alignment -----------------------------------------------------------------
    ref24 = resample_poly(seg16, 3, 2)[:3600]  # 0.15 s with the onset
    ref24 = np.concatenate([1e-5 * rng.standard_normal(150), ref24[150:]])  # near-silent lead
    for case, delay in (("delayed", 137), ("advanced", -60)):
        ref = q32(ref24)
        proc = q32(1.3 * np.roll(ref24, delay) + 0.003 * rng.standard_normal(ref24.size))
        ref_a, proc_a = eb.input_align(ref, proc)
        save(
            f"align_{case}",
            reference=ref.astype(np.float32),
            processed=proc.astype(np.float32),
            reference_aligned=ref_a.astype(np.float32),
            processed_aligned=proc_a.astype(np.float32),
            true_delay=delay,
        )
        assert np.array_equal(ref_a.astype(np.float32).astype(np.float64), ref_a)
        assert np.array_equal(proc_a.astype(np.float32).astype(np.float64), proc_a)

    # --- middle ear ----------------------------------------------------------------------
    x = q32(resample_poly(seg16, 3, 2)[:4800])
    save("middle_ear", x=x.astype(np.float32), y=eb.middle_ear(x, FS))

    # --- gammatone (control + main), bandwidth adjustment, OHC compression -----------------
    # itype=0 convention: the reference uses normal-hearing parameters, the processed the loss.
    nsamp = 4800  # 0.2 s at 24 kHz
    ref_sig = resample_poly(seg16, 3, 2)[:nsamp]
    proc_sig = 10.0 * np.roll(ref_sig, 24) + 0.05 * rng.standard_normal(nsamp)  # +20 dB
    ref_mid = q32(eb.middle_ear(ref_sig, FS))
    proc_mid = q32(eb.middle_ear(proc_sig, FS))
    idx = np.unique(np.round(np.linspace(5, nsamp - 1, 16)).astype(int))
    attn_x, bwmin_x, knee_x, cr_x, _ = eb.loss_parameters(HEARING_LOSSES[0], cf)
    for case, hl in (("moderate", HEARING_LOSSES[1]), ("steep", HEARING_LOSSES[2])):
        attn_y, bwmin_y, knee_y, cr_y, _ = eb.loss_parameters(hl, cf)
        arrays = {k: np.zeros((32, nsamp)) for k in (
            "ref_control", "proc_control", "ref_env", "ref_bm", "proc_env", "proc_bm",
            "ref_comp_env", "ref_comp_bm", "proc_comp_env", "proc_comp_bm")}  # fmt: skip
        ref_bw = np.zeros(32)
        proc_bw = np.zeros(32)
        for n in range(32):
            rc, _, pc, _ = eb.gammatone_basilar_membrane(
                ref_mid, bw_control[n], proc_mid, bw_control[n], FS, cf[n]
            )
            ref_bw[n] = eb.bandwidth_adjust(rc, bwmin_x[n], bw_control[n], LEVEL1)
            proc_bw[n] = eb.bandwidth_adjust(pc, bwmin_y[n], bw_control[n], LEVEL1)
            xenv, xbm, yenv, ybm = eb.gammatone_basilar_membrane(
                ref_mid, ref_bw[n], proc_mid, proc_bw[n], FS, cf[n]
            )
            xc, xbc = eb.env_compress_basilar_membrane(
                xenv, xbm, rc, attn_x[n], knee_x[n], cr_x[n], FS, LEVEL1
            )
            yc, ybc = eb.env_compress_basilar_membrane(
                yenv, ybm, pc, attn_y[n], knee_y[n], cr_y[n], FS, LEVEL1
            )
            for k, v in zip(arrays, (rc, pc, xenv, xbm, yenv, ybm, xc, xbc, yc, ybc), strict=True):
                arrays[k][n] = v
        out = {
            "reference_mid": ref_mid.astype(np.float32),
            "processed_mid": proc_mid.astype(np.float32),
            "hearing_loss": hl,
            "index": idx,
            "reference_bandwidth": ref_bw,
            "processed_bandwidth": proc_bw,
        }
        for k, v in arrays.items():
            if k.endswith("control"):
                out[f"{k}_rms"] = np.sqrt(np.mean(v**2, axis=-1))
                out[f"{k}_max"] = np.max(np.abs(v), axis=-1)
            else:
                band_summary(k, v, idx, out)
        save(f"gammatone_{case}", **out)

    # --- demodulation carriers over 5 s (drift of the rotation recursion) -----------------
    npts = 120000
    cfs = np.array([cf[0], cf[13], 1000.0, cf[-1]])
    cidx = np.unique(np.concatenate([np.round(np.linspace(0, npts - 1, 120)).astype(int),
                                     np.arange(npts - 8, npts)]))  # fmt: skip
    sin_at, cos_at = [], []
    for f in cfs:
        s, c = eb.gammatone_bandwidth_demodulation(
            npts, 2 * np.pi / FS, f, np.zeros(npts), np.zeros(npts)
        )
        sin_at.append(s[cidx])
        cos_at.append(c[cidx])
    save("carrier", center_freq=cfs, npts=npts, index=cidx, sincf=np.stack(sin_at),
         coscf=np.stack(cos_at))  # fmt: skip


if __name__ == "__main__":
    main()
