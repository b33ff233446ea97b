"""Per-pair time of HASQI v2: clarity_se (batched torch) vs pyclarity 0.9.0, same inputs, same run.

Both sides score the same 5 s, 44.1 kHz (reference, processed) pairs built from the shared
recordings (speech + running-tap noise at 0-10 dB SNR, RMS 0.03 at 100 dB SPL = the recipe's
better-ear level), for seeded random CEC2-like audiograms, with ``equalisation=1``.  Ours uses
``PairRandom.compat`` streams seeded as the reference's ``np.random.seed``, so the scores are
compared too.  The reference runs in a subprocess with the pyclarity oracle interpreter
(``--ref-python``); without it the reference timing is skipped and says so.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_hasqi.py \
        [--pairs 4] [--threads 1] [--device cpu]

Writes ``results/benchmarks/hasqi[_<device>].json``.
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
os.environ.setdefault("NUMBA_NUM_THREADS", os.environ["OMP_NUM_THREADS"])

import torch  # noqa: E402

from clarity_se.metrics.hasqi import hasqi_v2  # noqa: E402
from clarity_se.random import PairRandom  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CLARITY_SE_SHARED_DATA", "/work/shared/data"))
FS = 44100
CFS = np.array([250, 500, 1000, 2000, 3000, 4000, 6000, 8000], dtype=np.float64)
HASQI_FREQS = np.array([250, 500, 1000, 2000, 4000, 6000], dtype=np.float64)

REFERENCE_SCRIPT = r"""
import json, sys, time
import numpy as np
from clarity.evaluator.hasqi import hasqi_v2
from clarity.utils.audiogram import Audiogram

d = np.load(sys.argv[1])
repeats = int(sys.argv[2])
fs = int(d["fs"])
# warm-up (numba JIT) on a short excerpt
hasqi_v2(d["ref"][0, :fs // 2], fs, d["proc"][0, :fs // 2], fs,
         Audiogram(levels=d["levels"][0], frequencies=d["cfs"]), level1=100.0)
times, scores = [], []
for i in range(d["ref"].shape[0]):
    ag = Audiogram(levels=d["levels"][i], frequencies=d["cfs"])
    best = np.inf
    for _ in range(repeats):
        np.random.seed(int(d["seeds"][i]))
        t0 = time.perf_counter()
        s = hasqi_v2(d["ref"][i], fs, d["proc"][i], fs, ag, equalisation=1, level1=100.0)
        best = min(best, time.perf_counter() - t0)
    times.append(best)
    scores.append(float(s[0]))
print(json.dumps({"times_s": times, "scores": scores}))
"""


def _read(rel: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    x, fs = sf.read(str(DATA / rel), dtype="float64", always_2d=True)
    return x[:, 0], fs


def make_pairs(n_pairs: int, seconds: float, seed: int = 0):
    """``ref, proc [n, time]`` at 44.1 kHz, audiogram levels ``[n, 8]`` and seeds."""
    from scipy.signal import resample_poly

    rng = np.random.default_rng(seed)
    speech, sfs = _read("speech/librispeech/1088-129236-0000.flac")
    noise, nfs = _read("noise/speech_commands/running_tap.flac")
    speech = resample_poly(speech, 441, 160) if sfs == 16000 else speech
    noise = resample_poly(noise, 441, 160) if nfs == 16000 else noise
    n = int(seconds * FS)
    refs, procs = [], []
    for _ in range(n_pairs):
        off = int(rng.integers(0, max(1, speech.size - n)))
        ref = speech[off : off + n]
        ref = 0.03 * ref / np.sqrt(np.mean(ref**2))
        noff = int(rng.integers(0, noise.size - n))
        v = noise[noff : noff + n]
        snr = rng.uniform(0.0, 10.0)
        v = v * np.sqrt(np.mean(ref**2) / np.mean(v**2)) / 10 ** (snr / 20)
        refs.append(ref)
        procs.append(ref + v)
    levels = np.sort(rng.uniform(0, 80, (n_pairs, CFS.size)), axis=-1)
    seeds = rng.integers(0, 10**8, n_pairs)
    return np.stack(refs), np.stack(procs), levels, seeds


def _hearing_loss(levels: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(np.log(HASQI_FREQS), np.log(CFS), lv) for lv in levels])


def machine_info(device: str) -> dict:
    info = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "NUMBA_NUM_THREADS": os.environ.get("NUMBA_NUM_THREADS"),
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=2, help="best of N")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--ref-python", default="/work/tools/pyclarity-venv/bin/python")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--inputs", type=Path, default=None,
                        help="npz with ref, proc, levels, seeds (instead of reading the FLACs)")
    parser.add_argument("--save-inputs", type=Path, default=None,
                        help="write the generated pairs to this npz and exit")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dev = args.device
    out_path = args.out or REPO / "results/benchmarks" / (
        "hasqi.json" if dev == "cpu" else f"hasqi_{dev.split(':')[0]}.json")

    if args.inputs is not None:
        d = np.load(args.inputs)
        ref, proc, levels, seeds = d["ref"], d["proc"], d["levels"], d["seeds"]
        ref, proc, levels, seeds = ref[: args.pairs], proc[: args.pairs], levels[: args.pairs], \
            seeds[: args.pairs]
    else:
        ref, proc, levels, seeds = make_pairs(args.pairs, args.seconds)
    if args.save_inputs is not None:
        np.savez(args.save_inputs, ref=ref, proc=proc, levels=levels, seeds=seeds)
        return 0
    hl = _hearing_loss(levels)
    t_ref = torch.as_tensor(ref, device=dev)
    t_proc = torch.as_tensor(proc, device=dev)
    t_hl = torch.as_tensor(hl, device=dev)

    def run(idx: list[int]):
        # numba's OpenMP layer (used by the ear model) may reset torch's thread count when it
        # restores its own; pin it before every call so the timing uses --threads threads
        torch.set_num_threads(args.threads)
        return hasqi_v2(reference=t_ref[idx], processed=t_proc[idx], sample_rate=FS,
                        hearing_loss_db_hl=t_hl[idx], level_db_spl=100.0,
                        rng=PairRandom.compat([int(seeds[i]) for i in idx]))

    hasqi_v2(reference=t_ref[:1, : FS // 2], processed=t_proc[:1, : FS // 2], sample_rate=FS,
             hearing_loss_db_hl=t_hl[:1], level_db_spl=100.0)  # warm-up (numba, FFT plans)
    ours, ours_scores = [], []
    for i in range(args.pairs):
        best = np.inf
        for _ in range(args.repeats):
            _sync(dev)
            t0 = time.perf_counter()
            s = run([i]).score
            _sync(dev)
            best = min(best, time.perf_counter() - t0)
        ours.append(best)
        ours_scores.append(float(s[0]))
    best_batch = np.inf
    for _ in range(args.repeats):
        _sync(dev)
        t0 = time.perf_counter()
        batch_scores = run(list(range(args.pairs))).score
        _sync(dev)
        best_batch = min(best_batch, time.perf_counter() - t0)

    result: dict = {
        "task": "HASQI v2 (ear model + quality back-end), one 5 s 44.1 kHz pair, level 100 dB SPL",
        "pairs": args.pairs,
        "signal_s": args.seconds,
        "sample_rate": FS,
        "repeats": f"best of {args.repeats}",
        "ours_per_pair_s": float(np.mean(ours)),
        "ours_batched_per_pair_s": best_batch / args.pairs,
        "ours_times_s": ours,
        "ours_scores": ours_scores,
        "batch_vs_single_max_abs_diff": float(
            np.abs(batch_scores.cpu().numpy() - np.array(ours_scores)).max()),
        "machine": machine_info(dev),
    }
    ref_python = Path(args.ref_python)
    if args.skip_reference or not ref_python.is_file():
        result["reference"] = "skipped"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            inputs = Path(tmp) / "in.npz"
            np.savez(inputs, ref=ref, proc=proc, levels=levels, cfs=CFS, seeds=seeds, fs=FS)
            env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                       MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
            p = subprocess.run([str(ref_python), "-c", REFERENCE_SCRIPT, str(inputs),
                                str(args.repeats)], capture_output=True, text=True, env=env,
                               check=False)
            if p.returncode != 0:
                result["reference"] = f"failed: {p.stderr.strip()[-500:]}"
            else:
                r = json.loads(p.stdout.strip().splitlines()[-1])
                result["reference"] = "pyclarity 0.9.0 clarity.evaluator.hasqi.hasqi_v2"
                result["reference_per_pair_s"] = float(np.mean(r["times_s"]))
                result["reference_times_s"] = r["times_s"]
                result["reference_scores"] = r["scores"]
                result["speedup"] = result["reference_per_pair_s"] / result["ours_per_pair_s"]
                result["speedup_batched"] = (
                    result["reference_per_pair_s"] / result["ours_batched_per_pair_s"])
                result["max_abs_score_diff_vs_reference"] = float(
                    np.abs(np.array(r["scores"]) - np.array(ours_scores)).max())
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result.items()
               if not k.endswith(("times_s", "scores")) and k != "machine"}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
