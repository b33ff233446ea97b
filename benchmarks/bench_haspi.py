"""Per-pair time of HASPI v2: clarity_se vs pyclarity 0.9.0 ``haspi_v2``, same run, same inputs.

Seeded 5 s, 44.1 kHz (reference, processed) pairs -- a noise carrier with a slow random level
envelope (speech-like on/off) as reference, plus independent noise as processed -- and random
CEC2-like audiograms, level 100 dB SPL (the recipe's), one ear.  Ours runs in ``compat`` mode
(float64, ``PairRandom.compat``) one pair at a time and as one batch, and in ``fast`` mode
(float32, ``PairRandom.fast``); on CUDA too when ``--device cuda``.  The reference runs in a
subprocess with the pyclarity oracle interpreter (``--ref-python``); scores are compared.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_haspi.py [--pairs 4] [--repeats 2]

Writes ``results/benchmarks/haspi.json`` (``--out``).
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
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from clarity_se.metrics.haspi import haspi_v2  # noqa: E402
from clarity_se.random import PairRandom  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FS = 44100
HASPI_F = [250, 500, 1000, 2000, 4000, 6000]

REFERENCE_SCRIPT = r"""
import json, sys, time
import numpy as np
from clarity.evaluator.haspi import haspi_v2
from clarity.utils.audiogram import Audiogram

data = np.load(sys.argv[1])
repeats = int(sys.argv[2])
times, scores = [], []
for i in range(data["ref"].shape[0]):
    ag = Audiogram(levels=data["hl"][i], frequencies=np.array([250, 500, 1000, 2000, 4000, 6000]))
    best = np.inf
    for _ in range(repeats):
        np.random.seed(int(data["seeds"][i]))
        t0 = time.perf_counter()
        score, _ = haspi_v2(data["ref"][i], 44100, data["proc"][i], 44100, ag, 100.0)
        best = min(best, time.perf_counter() - t0)
    times.append(best)
    scores.append(float(score))
print(json.dumps({"times_s": times, "scores": scores}))
"""


def make_pairs(n_pairs: int, seconds: float, seed: int = 0):
    """Seeded pairs ``[n, time]`` and hearing losses ``[n, 6]`` dB HL."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    hop = 4410
    env = np.repeat(rng.uniform(0.0, 1.0, (n_pairs, n // hop + 1)) ** 2, hop, axis=1)[:, :n]
    ref = 0.1 * rng.standard_normal((n_pairs, n)) * env
    proc = ref + 0.03 * rng.standard_normal((n_pairs, n))
    hl = np.sort(rng.uniform(0, 70, (n_pairs, 6)), axis=-1)
    return ref, proc, hl


def machine_info() -> dict:
    info = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def _timed(fn, repeats: int, sync: bool):
    best, out = np.inf, None
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if sync:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=2, help="best of N")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-sizes", default="", help="extra batch sizes to time, e.g. 8,32")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--ref-python", default="/work/tools/pyclarity-venv/bin/python")
    parser.add_argument("--out", type=Path, default=REPO / "results/benchmarks/haspi.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = dev.type == "cuda"

    ref, proc, hl = make_pairs(args.pairs, args.seconds)
    seeds = [1000 + i for i in range(args.pairs)]
    t_ref = torch.from_numpy(ref).to(dev)
    t_proc = torch.from_numpy(proc).to(dev)

    def run(idx, dtype, fast):
        rng = (
            PairRandom.fast([seeds[i] for i in idx], device=dev)
            if fast
            else PairRandom.compat([seeds[i] for i in idx])
        )
        return haspi_v2(
            reference=t_ref[idx].to(dtype),
            processed=t_proc[idx].to(dtype),
            sample_rate=FS,
            hearing_loss_db_hl=hl[idx],
            level_db_spl=100.0,
            rng=rng,
        )

    run([0], torch.float64, False)  # warm-up: numba compile / cache load, FFT plans
    run([0], torch.float32, True)
    single, scores = [], []
    for i in range(args.pairs):
        t, out = _timed(lambda i=i: run([i], torch.float64, False), args.repeats, sync)
        single.append(t)
        scores.append(float(out.score[0]))
    all_idx = list(range(args.pairs))
    t_batch, out_b = _timed(lambda: run(all_idx, torch.float64, False), args.repeats, sync)
    t_fast, out_f = _timed(lambda: run(all_idx, torch.float32, True), args.repeats, sync)
    result: dict = {
        "task": f"haspi_v2, one ear, {args.seconds} s at {FS} Hz, level 100 dB SPL",
        "device": str(dev),
        "pairs": args.pairs,
        "repeats": f"best of {args.repeats}",
        "ours_compat_per_pair_s": float(np.mean(single)),
        "ours_compat_batched_per_pair_s": t_batch / args.pairs,
        "ours_fast_batched_per_pair_s": t_fast / args.pairs,
        "ours_compat_scores": scores,
        "ours_fast_scores": out_f.score.float().cpu().tolist(),
        "batched_vs_single_max_abs_diff": float(np.abs(out_b.score.cpu().numpy() - scores).max()),
        "machine": machine_info(),
    }
    for bs in [int(b) for b in args.batch_sizes.split(",") if b]:
        idx = [i % args.pairs for i in range(bs)]
        # one stream per item; repeated items reuse seeds but get their own streams
        t_c, _ = _timed(lambda idx=idx: run(idx, torch.float64, False), 1, sync)
        t_f, _ = _timed(lambda idx=idx: run(idx, torch.float32, True), 1, sync)
        result[f"batch{bs}_compat_per_pair_s"] = t_c / bs
        result[f"batch{bs}_fast_per_pair_s"] = t_f / bs
    ref_python = Path(args.ref_python)
    if args.no_reference or not ref_python.is_file():
        result["reference"] = "skipped"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            inputs = Path(tmp) / "in.npz"
            np.savez(inputs, ref=ref, proc=proc, hl=hl, seeds=np.array(seeds))
            env = dict(
                os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1"
            )
            res = subprocess.run(
                [str(ref_python), "-c", REFERENCE_SCRIPT, str(inputs), str(args.repeats)],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            if res.returncode != 0:
                result["reference"] = f"failed: {res.stderr.strip()[-500:]}"
            else:
                rj = json.loads(res.stdout.strip().splitlines()[-1])
                result["reference"] = "pyclarity 0.9.0 haspi_v2 (np.random.seed per pair)"
                result["reference_per_pair_s"] = float(np.mean(rj["times_s"]))
                result["reference_scores"] = rj["scores"]
                result["max_abs_score_diff_compat"] = float(
                    np.abs(np.array(scores) - rj["scores"]).max()
                )
                result["max_abs_score_diff_fast"] = float(
                    np.abs(np.array(result["ours_fast_scores"]) - rj["scores"]).max()
                )
                result["speedup_single"] = (
                    result["reference_per_pair_s"] / result["ours_compat_per_pair_s"]
                )
                result["speedup_batched_compat"] = (
                    result["reference_per_pair_s"] / result["ours_compat_batched_per_pair_s"]
                )
                result["speedup_batched_fast"] = (
                    result["reference_per_pair_s"] / result["ours_fast_batched_per_pair_s"]
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
