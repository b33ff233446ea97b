"""Time of the ear-model front (A1 stages): clarity_se (batched torch) vs pyclarity 0.9.0.

Input: 5 s, 44.1 kHz (reference, processed) pairs from the shared VCTK speech (processed =
delayed, +6 dB, plus noise), a moderate sloping hearing loss, itype 0, level1 65 dB SPL.  The
front is everything ``eb.ear_model`` does before the envelope alignment: resample both signals
to 24 kHz, truncate, ``input_align``, ``middle_ear``, the control-path gammatone, the bandwidth
adjustment, the main-path gammatone and the OHC compression, in all 32 bands.

The reference runs in a subprocess with the pyclarity oracle interpreter (``--ref-python``)
and is also profiled once with cProfile over the whole ``eb.ear_model`` (top functions by
cumulative time go into the JSON).  Without the oracle the reference part is skipped.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ear_front.py \
        [--ref-python /work/tools/pyclarity-venv/bin/python] [--device cpu] [--batch 4]

Writes ``results/benchmarks/ear_front[_<device>].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from scipy.signal import resample_poly  # noqa: E402

from clarity_se.dsp.iir import numba_threads  # noqa: E402
from clarity_se.dsp.resample import resample_24khz  # noqa: E402
from clarity_se.ear_model.align import input_align  # noqa: E402
from clarity_se.ear_model.compression import env_compress_basilar_membrane  # noqa: E402
from clarity_se.ear_model.gammatone import (  # noqa: E402
    bandwidth_adjust,
    gammatone_basilar_membrane,
)
from clarity_se.ear_model.loss import center_frequency, loss_parameters  # noqa: E402
from clarity_se.ear_model.middle_ear import middle_ear  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CLARITY_SE_SHARED_DATA", "/work/shared/data"))
FS = 44100
LEVEL1 = 65.0
HL = np.array([10, 15, 25, 40, 55, 60], dtype=np.float64)

REFERENCE_SCRIPT = r"""
import cProfile, json, pstats, sys, time
import numpy as np
from clarity.evaluator.haspi import eb

d = np.load(sys.argv[1]); repeats = int(sys.argv[2])
ref, proc, hl, fs, level1 = d["ref"], d["proc"], d["hl"], int(d["fs"]), float(d["level1"])

def front(x, y):
    cf = eb.center_frequency(32)
    _, bwmin_y, knee_y, cr_y, _ = eb.loss_parameters(hl, cf)
    attn_y = eb.loss_parameters(hl, cf)[0]
    attn_x, bwmin_x, knee_x, cr_x, _ = eb.loss_parameters(np.zeros(6), cf)
    _, bw1, _, _, _ = eb.loss_parameters(np.full(6, 100), cf)
    x24, _ = eb.resample_24khz(x, fs); y24, f = eb.resample_24khz(y, fs)
    n = min(len(x24), len(y24)); x24, y24 = eb.input_align(x24[:n], y24[:n])
    xm = eb.middle_ear(x24, f); ym = eb.middle_ear(y24, f)
    for k in range(32):
        rc, _, pc, _ = eb.gammatone_basilar_membrane(xm, bw1[k], ym, bw1[k], f, cf[k])
        rb = eb.bandwidth_adjust(rc, bwmin_x[k], bw1[k], level1)
        pb = eb.bandwidth_adjust(pc, bwmin_y[k], bw1[k], level1)
        xe, xb, ye, yb = eb.gammatone_basilar_membrane(xm, rb, ym, pb, f, cf[k])
        eb.env_compress_basilar_membrane(xe, xb, rc, attn_x[k], knee_x[k], cr_x[k], f, level1)
        eb.env_compress_basilar_membrane(ye, yb, pc, attn_y[k], knee_y[k], cr_y[k], f, level1)

front(ref[0, :fs // 4], proc[0, :fs // 4])  # numba warm-up
best = min((lambda t0: (front(ref[0], proc[0]), time.perf_counter() - t0)[1])(time.perf_counter())
           for _ in range(repeats))
np.random.seed(0)
eb.ear_model(ref[0, :fs // 4], fs, proc[0, :fs // 4], fs, hl, 0, level1)
pr = cProfile.Profile(); np.random.seed(0)
t0 = time.perf_counter(); pr.enable()
eb.ear_model(ref[0], fs, proc[0], fs, hl, 0, level1)
pr.disable(); full = time.perf_counter() - t0
st = pstats.Stats(pr)
rows = sorted(((v[3], k[2]) for k, v in st.stats.items()), reverse=True)
names = ("gammatone_basilar_membrane", "envelope_align", "env_compress_basilar_membrane",
         "basilar_membrane_add_noise", "inner_hair_cell_adaptation", "envelope_sl",
         "resample_24khz", "input_align", "middle_ear", "group_delay_compensate",
         "convert_rms_to_sl", "bandwidth_adjust", "lfilter", "correlate")
cum = {n: round(max((c for c, f in rows if f == n), default=0.0), 4) for n in names}
print(json.dumps({"front_s": best, "ear_model_profiled_s": full, "cumulative_s": cum}))
"""


def numba_threads_used() -> int:
    """Distinct numba worker threads that a prange kernel actually runs on (under our cap)."""
    import numba

    @numba.njit(parallel=True)
    def probe(n):
        out = np.zeros(n, dtype=np.int64)
        for i in numba.prange(n):
            acc = 0.0
            for k in range(20000):
                acc += np.sqrt(k + i)
            out[i] = numba.get_thread_id() + int(acc * 0)
        return out

    with numba_threads():
        return int(np.unique(probe(256)).size)


def make_inputs(batch: int, cache: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``batch`` pairs; read from / written to ``cache`` (npz) when given (no soundfile needed)."""
    if cache is not None and cache.exists():
        with np.load(cache) as d:
            if d["ref"].shape[0] >= batch:
                return d["ref"][:batch], d["proc"][:batch]
    import soundfile as sf

    files = sorted((DATA / "speech" / "vctk").glob("p22*.flac"))
    rng = np.random.default_rng(0)
    refs, procs = [], []
    for i in range(batch):
        x = np.concatenate([sf.read(f)[0] for f in files[2 * i : 2 * i + 3]])[:80000]
        x = resample_poly(x, 441, 160)  # 16 -> 44.1 kHz, 5 s
        x = x / np.sqrt(np.mean(x**2))
        y = 2.0 * np.roll(x, 300 + 17 * i) + 0.05 * rng.standard_normal(x.size)
        refs.append(x)
        procs.append(y)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, ref=np.stack(refs), proc=np.stack(procs))
    return np.stack(refs), np.stack(procs)


def ours_front(ref: torch.Tensor, proc: torch.Tensor, hl: torch.Tensor) -> dict[str, float]:
    """One pass of the batched front; returns seconds per stage."""
    times: dict[str, float] = {}
    sync = torch.cuda.synchronize if ref.device.type == "cuda" else (lambda: None)

    def tick(name: str, t0: float) -> float:
        sync()
        t1 = time.perf_counter()
        times[name] = times.get(name, 0.0) + t1 - t0
        return t1

    t = time.perf_counter()
    cf = center_frequency(32, device=ref.device)
    px = loss_parameters(torch.zeros_like(hl), cf)
    py = loss_parameters(hl, cf)
    bw1 = loss_parameters(torch.full_like(hl, 100.0), cf).bandwidth
    t = tick("loss", t)
    x24, f = resample_24khz(ref, FS)
    y24, _ = resample_24khz(proc, FS)
    t = tick("resample", t)
    al = input_align(x24, y24)
    t = tick("input_align", t)
    xm = middle_ear(al.reference, f)
    ym = middle_ear(al.processed, f)
    t = tick("middle_ear", t)
    rc, _, pc, _ = gammatone_basilar_membrane(xm, bw1, ym, bw1, f, cf)
    t = tick("gammatone_control", t)
    rb = bandwidth_adjust(rc, px.bandwidth, bw1, LEVEL1, lengths=al.lengths)
    pb = bandwidth_adjust(pc, py.bandwidth, bw1, LEVEL1, lengths=al.lengths)
    t = tick("bandwidth_adjust", t)
    out = gammatone_basilar_membrane(xm, rb, ym, pb, f, cf)
    t = tick("gammatone_main", t)
    env_compress_basilar_membrane(
        out.reference_envelope, out.reference_basilar_membrane, rc,
        px.attenuated_ohc, px.low_knee, px.compression_ratio, f, LEVEL1,
    )  # fmt: skip
    env_compress_basilar_membrane(
        out.processed_envelope, out.processed_basilar_membrane, pc,
        py.attenuated_ohc, py.low_knee, py.compression_ratio, f, LEVEL1,
    )  # fmt: skip
    tick("compression", t)
    times["total"] = sum(times.values())
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref-python", default="/work/tools/pyclarity-venv/bin/python")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--inputs", type=Path, default=None, help="npz cache of the input pairs")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks")
    args = parser.parse_args()
    ref_np, proc_np = make_inputs(args.batch, args.inputs)
    device = torch.device(args.device)
    result: dict = {
        "benchmark": "ear_front",
        "input": f"5 s, {FS} Hz pairs, nchan 32, hl {HL.tolist()}, itype 0",
        "device": str(device),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "ours": {},
    }
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for batch in sorted({1, args.batch}):
            ref = torch.from_numpy(ref_np[:batch]).to(device)
            proc = torch.from_numpy(proc_np[:batch]).to(device)
            hl = torch.from_numpy(np.tile(HL, (batch, 1))).to(device)
            ours_front(ref[:, : FS // 4], proc[:, : FS // 4], hl)  # warm-up (numba, caches)
            runs = [ours_front(ref, proc, hl) for _ in range(args.repeats)]
            best = min(runs, key=lambda r: r["total"])
            result["ours"][f"threads{threads}_batch{batch}"] = {
                "per_pair_s": best["total"] / batch,
                "torch_threads": torch.get_num_threads(),
                "numba_threads_used": numba_threads_used(),
                "stages_s": {k: round(v, 4) for k, v in best.items()},
            }
            print(f"threads={threads} batch={batch}: {best['total'] / batch:.3f} s/pair  {best}")
    ref_python = shutil.which(args.ref_python) if args.ref_python else None
    if ref_python:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "inputs.npz"
            np.savez(path, ref=ref_np[:1], proc=proc_np[:1], hl=HL, fs=FS, level1=LEVEL1)
            env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
            proc_run = subprocess.run(
                [ref_python, "-c", REFERENCE_SCRIPT, str(path), str(args.repeats)],
                capture_output=True, text=True, env=env, check=False,
            )  # fmt: skip
        if proc_run.returncode == 0:
            result["reference"] = json.loads(proc_run.stdout.strip().splitlines()[-1])
            print("reference:", result["reference"])
        else:
            result["reference"] = {"error": proc_run.stderr[-2000:]}
            print(proc_run.stderr[-2000:], file=sys.stderr)
    else:
        result["reference"] = {"skipped": "no --ref-python interpreter"}
    out_dir = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "ear_front.json" if device.type == "cpu" else f"ear_front_{device.type}.json"
    (out_dir / name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out_dir / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
