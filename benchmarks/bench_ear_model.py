"""Time of the whole ear model: clarity_se ``ear_model`` vs pyclarity 0.9.0 ``eb.ear_model``.

Input: 5 s, 44.1 kHz (reference, processed) pairs from the shared VCTK speech (processed =
delayed, +6 dB, plus noise), a moderate sloping hearing loss, itype 0, 65 dB SPL, compat random
streams (the reference is seeded with ``np.random.seed``); ours also without the BM outputs
(``basilar_membrane=False``, as HASPI needs) and with fast streams. Both are timed single-item
with 1 and 2 threads (torch and numba threads follow ``torch.set_num_threads``; the reference
subprocess gets ``OMP_NUM_THREADS``/``NUMBA_NUM_THREADS``), best of ``--repeats`` after a
warm-up; ours is also timed on a batch. The time of each of our stages is taken by wrapping the
stage functions that ``clarity_se.ear_model.model`` calls.

    .venv/bin/python benchmarks/bench_ear_model.py \
        [--ref-python /work/tools/pyclarity-venv/bin/python] [--device cpu] [--batch 4]

Writes ``results/benchmarks/ear_model[_<device>].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from scipy.signal import resample_poly  # noqa: E402

import clarity_se.ear_model.model as model_mod  # noqa: E402
from clarity_se.ear_model import ear_model  # noqa: E402
from clarity_se.metrics.hasqi import ear_model_nalr_fir  # noqa: E402
from clarity_se.random import PairRandom  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CLARITY_SE_SHARED_DATA", "/work/shared/data"))
FS = 44100
LEVEL = 65.0
HL = np.array([10, 15, 25, 40, 55, 60], dtype=np.float64)
STAGES = (
    "resample_24khz", "input_align", "middle_ear", "gammatone_basilar_membrane",
    "bandwidth_adjust", "env_compress_basilar_membrane", "envelope_align", "envelope_sl",
    "inner_hair_cell_adaptation", "basilar_membrane_add_noise", "group_delay_compensate",
    "convert_rms_to_sl", "_apply_nalr", "loss_parameters", "shift_rows", "group_delay_correction",
)

REFERENCE_SCRIPT = r"""
import cProfile, json, pstats, sys, time
import numpy as np
from clarity.evaluator.haspi import eb
d = np.load(sys.argv[1]); repeats = int(sys.argv[2])
ref, proc, hl, fs = d["ref"][0], d["proc"][0], d["hl"], int(d["fs"])
# numba warm-up
np.random.seed(0); eb.ear_model(ref[: fs // 4], fs, proc[: fs // 4], fs, hl, 0, 65.0)
times = []
for _ in range(repeats):
    np.random.seed(0); t0 = time.perf_counter()
    eb.ear_model(ref, fs, proc, fs, hl, 0, 65.0)
    times.append(time.perf_counter() - t0)
pr = cProfile.Profile(); np.random.seed(0); pr.enable()
eb.ear_model(ref, fs, proc, fs, hl, 0, 65.0); pr.disable()
st = pstats.Stats(pr)
names = ("gammatone_basilar_membrane", "envelope_align", "env_compress_basilar_membrane",
         "basilar_membrane_add_noise", "inner_hair_cell_adaptation", "envelope_sl",
         "resample_24khz", "input_align", "middle_ear", "group_delay_compensate",
         "convert_rms_to_sl", "bandwidth_adjust", "gammatone_bandwidth_demodulation")
cum = {n: round(max((v[3] for k, v in st.stats.items() if k[2] == n), default=0.0), 4)
       for n in names}
print(json.dumps({"best_s": min(times), "times_s": times, "cumulative_s": cum}))
"""


def make_inputs(batch: int, cache: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``batch`` 5 s pairs at 44.1 kHz from the shared VCTK speech (or an npz ``cache``)."""
    if cache and Path(cache).exists():
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
    if cache:
        np.savez(cache, ref=np.stack(refs), proc=np.stack(procs))
    return np.stack(refs), np.stack(procs)


class StageTimer:
    """Wrap the stage functions used by ``clarity_se.ear_model.model`` to accumulate their time."""

    def __init__(self, device: torch.device):
        self.device = device
        self.totals: dict[str, float] = defaultdict(float)
        self.originals = {n: getattr(model_mod, n) for n in STAGES if hasattr(model_mod, n)}

    def __enter__(self):
        for name, fn in self.originals.items():
            setattr(model_mod, name, self._wrap(name, fn))
        return self

    def __exit__(self, *exc):
        for name, fn in self.originals.items():
            setattr(model_mod, name, fn)

    def _wrap(self, name, fn):
        def timed(*args, **kwargs):
            self._sync()
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            self._sync()
            self.totals[name] += time.perf_counter() - t0
            return out

        return timed

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def make_rng(kind, n, device):
    return PairRandom.compat(list(range(n))) if kind == "compat" else PairRandom.fast(
        list(range(n)), device=device)


def time_ours(ref, proc, device, threads, repeats, dtype=torch.float64, rng_kind="compat",
              basilar_membrane=True):
    torch.set_num_threads(threads)
    x = torch.as_tensor(ref, dtype=dtype, device=device)
    y = torch.as_tensor(proc, dtype=dtype, device=device)
    hl = torch.as_tensor(np.tile(HL, (x.shape[0], 1)), device=device)

    def call():
        rng = make_rng(rng_kind, x.shape[0], device)
        out = ear_model(x, FS, y, FS, hl, itype=0, level_db_spl=LEVEL, rng=rng,
                        basilar_membrane=basilar_membrane)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    ear_model(x[:, : FS // 4], FS, y[:, : FS // 4], FS, hl, itype=0, level_db_spl=LEVEL,
              rng=make_rng(rng_kind, x.shape[0], device))  # warm-up / compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    with StageTimer(device) as st:
        t0 = time.perf_counter()
        call()
        total = time.perf_counter() - t0
    stages = {k: round(v, 4) for k, v in sorted(st.totals.items(), key=lambda kv: -kv[1])}
    return {"best_s": min(times), "times_s": times, "stage_s": stages, "instrumented_s": total}


def check_vs_cpu(ref, proc, device):
    """Largest |device - CPU| of each output (compat streams, float64; float32 fast in dB)."""
    hl = torch.as_tensor(np.tile(HL, (ref.shape[0], 1)))
    fir = ear_model_nalr_fir(hl.numpy())
    outs = {}
    for dev in (torch.device("cpu"), device):
        outs[dev.type] = ear_model(torch.as_tensor(ref, device=dev), FS,
                                   torch.as_tensor(proc, device=dev), FS, hl.to(dev), itype=1,
                                   level_db_spl=LEVEL, rng=PairRandom.compat([0] * ref.shape[0]),
                                   nalr_fir=fir.to(dev))
    res = {}
    for k, name in enumerate(outs["cpu"]._fields[:6]):
        a, b = outs["cpu"][k], outs[device.type][k].cpu()
        res[name] = {"max_abs": float((a - b).abs().max()), "max_ref": float(a.abs().max())}
    f32 = ear_model(torch.as_tensor(ref, device=device, dtype=torch.float32), FS,
                    torch.as_tensor(proc, device=device, dtype=torch.float32), FS, hl.to(device),
                    itype=1, level_db_spl=LEVEL, rng=PairRandom.fast([0] * ref.shape[0], device),
                    nalr_fir=fir.to(device))
    for k in (0, 2, 4, 5):
        name = outs["cpu"]._fields[k]
        res[f"{name}_float32_fast"] = float((f32[k].cpu().double() - outs["cpu"][k]).abs().max())
    return res


def time_reference(ref_python, ref, proc, threads, repeats):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.npz"
        np.savez(path, ref=ref[:1], proc=proc[:1], hl=HL, fs=FS)
        script = Path(tmp) / "ref.py"
        script.write_text(REFERENCE_SCRIPT)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads),
               "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        res = subprocess.run([ref_python, str(script), str(path), str(repeats)], env=env,
                             capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref-python", default="/work/tools/pyclarity-venv/bin/python")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--out", default=None)
    parser.add_argument("--inputs", default=None, help="npz cache of the input pairs")
    parser.add_argument("--check", action="store_true",
                        help="non-CPU device: report the largest deviation from the CPU result")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    ref, proc = make_inputs(max(args.batch, 1), args.inputs)
    result = {
        "benchmark": "ear_model",
        "input": "5 s 44.1 kHz speech pairs, itype 0, moderate sloping loss, compat rng",
        "device": str(device),
        "cuda_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_avg_at_start": os.getloadavg(),
        "torch": torch.__version__,
        "runs": {},
    }
    for threads in [int(t) for t in args.threads.split(",")]:
        entry = {"ours_single": time_ours(ref[:1], proc[:1], device, threads, args.repeats)}
        # HASPI's call (BM outputs not needed) and the fast random streams
        entry["ours_single_no_bm"] = time_ours(ref[:1], proc[:1], device, threads, args.repeats,
                                               basilar_membrane=False)
        entry["ours_single_fast_rng"] = time_ours(ref[:1], proc[:1], device, threads,
                                                  args.repeats, rng_kind="fast")
        if args.batch > 1:
            b = time_ours(ref, proc, device, threads, max(1, args.repeats - 1))
            b["per_item_s"] = b["best_s"] / args.batch
            entry[f"ours_batch{args.batch}"] = b
        if args.ref_python and Path(args.ref_python).exists() and device.type == "cpu":
            entry["pyclarity_single"] = time_reference(args.ref_python, ref, proc, threads,
                                                       args.repeats)
            entry["speedup_single"] = (entry["pyclarity_single"]["best_s"]
                                       / entry["ours_single"]["best_s"])
            if args.batch > 1:
                entry["speedup_batch_per_item"] = (entry["pyclarity_single"]["best_s"]
                                                   / entry[f"ours_batch{args.batch}"]["per_item_s"])
        result["runs"][f"threads_{threads}"] = entry
    if device.type != "cpu":
        for dtype, rng_kind in ((torch.float64, "fast"), (torch.float32, "fast")):
            r = time_ours(ref, proc, device, 1, args.repeats, dtype=dtype, rng_kind=rng_kind)
            r["per_item_s"] = r["best_s"] / ref.shape[0]
            result["runs"][f"batch{ref.shape[0]}_{str(dtype)[6:]}_{rng_kind}"] = r
        if args.check:
            result["check_vs_cpu"] = check_vs_cpu(ref[:1], proc[:1], device)
    result["load_avg_at_end"] = os.getloadavg()
    suffix = "" if device.type == "cpu" else f"_{device.type}"
    default = REPO / "results" / "benchmarks" / f"ear_model{suffix}.json"
    out = Path(args.out) if args.out else default
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
