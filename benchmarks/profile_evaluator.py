"""Where ``evaluate``'s time goes: cProfile of one scene (three 5 s pairs) in one process.

Builds the ``bench_evaluator.py`` tree (one scene, 3 listeners, 5 s, 44.1 kHz binaural), scores
one scene once to warm up (numba cache, allocations), then profiles scoring it again with one
thread, as one ``clarity-se evaluate`` worker does, for each ``evaluate.rng``.  Writes the
functions with the most own time, and their share of the total, and the time per pair of each
stage of the pipeline (:data:`STAGES`: cumulative time of the stage's functions, split by
caller where a function serves two stages) to ``results/benchmarks/evaluator_profile.json``
and prints them.  ``--startup`` also times what each spawned ``evaluate`` worker pays before its
first pair (a fresh interpreter: importing torch, importing the metrics, and the first call of
the mode's compiled kernels, i.e. loading numba's cache), 3 runs per mode.

    .venv/bin/python benchmarks/profile_evaluator.py [--modes fast,compat] [--top 15] [--startup]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # as `clarity-se` sets it, before torch loads


#: Pipeline stages: label -> functions ``(file, name)`` or ``(file, name, caller file, caller
#: name)`` whose cumulative times add up to the stage.  They must be disjoint: a function that
#: another listed one also calls is counted only from its own caller (``gammatone_filterbank``
#: also runs inside ``gammatone_basilar_membrane``, ``shift_rows`` inside ``envelope_align``).
STAGES = {
    "amplification (NAL-R, compressor)": [("stages/amplify.py", "amplify_pair")],
    "resampling, input alignment, middle ear, NAL-R": [
        ("ear_model/model.py", "_resample_rows"),
        ("ear_model/align.py", "input_align"),
        ("ear_model/middle_ear.py", "middle_ear"),
        ("ear_model/model.py", "_apply_nalr"),
    ],
    "gammatone filterbanks (control, main) and bandwidths": [
        ("ear_model/gammatone.py", "gammatone_filterbank", "ear_model/model.py", "_cochlea"),
        ("ear_model/gammatone.py", "gammatone_basilar_membrane"),
        ("ear_model/gammatone.py", "bandwidth_adjust"),
    ],
    "OHC compression": [("ear_model/compression.py", "env_compress_basilar_membrane")],
    "envelope / BM alignment (lag search and shift)": [("ear_model/envelope.py", "envelope_align")],
    "dB SL conversion": [("ear_model/envelope.py", "envelope_sl")],
    "IHC adaptation": [("ear_model/ihc.py", "inner_hair_cell_adaptation")],
    "threshold noise (draw or skip)": [
        ("ear_model/noise.py", "basilar_membrane_add_noise"),
        ("clarity_se/random.py", "skip_standard_normal", "ear_model/model.py", "_cochlea"),
    ],
    "group-delay compensation": [
        ("ear_model/envelope.py", "shift_rows", "ear_model/model.py", "<genexpr>")
    ],
    "HASPI back end (cepstral, modulation, network)": [("metrics/haspi.py", "_haspi_back_end")],
    "HASQI back end (smoothing, BM covariance, spectra)": [("metrics/hasqi.py", "_hasqi_backend")],
}


def _matches(func: tuple, path: str, name: str) -> bool:
    return func[2] == name and func[0].replace("\\", "/").endswith(path)


def stage_seconds(stats: dict) -> dict[str, float]:
    """Seconds per :data:`STAGES` entry from ``pstats.Stats(...).stats``."""
    out = {}
    for label, funcs in STAGES.items():
        total = 0.0
        for spec in funcs:
            for func, (_, _, _, cum, callers) in stats.items():
                if not _matches(func, spec[0], spec[1]):
                    continue
                if len(spec) == 2:
                    total += cum
                else:
                    total += sum(v[3] for c, v in callers.items() if _matches(c, *spec[2:]))
        out[label] = total
    return out


def _label(func: tuple) -> str:
    path, line, name = func
    if path == "~":
        return name
    try:
        path = str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        path = Path(path).name
    return f"{path}:{line}({name})"


def profile_mode(root: Path, rng: str, top: int) -> dict:
    """Profile one scene's pairs in ``rng`` mode; returns the summary dict."""
    import torch
    from omegaconf import OmegaConf

    from clarity_se.config import load_config
    from clarity_se.stages.evaluate import SceneJob, score_scene_job

    torch.set_num_threads(1)
    cfg = load_config(None, [f"path.root={root}", f"path.exp_folder={root / 'exp'}",
                             f"evaluate.rng={rng}"])  # fmt: skip
    container = OmegaConf.to_container(cfg, resolve=True)
    pairs = json.loads((root / "clarity_data" / "metadata" / "scenes_listeners.dev.json")
                       .read_text())  # fmt: skip
    scene, listeners = next(iter(pairs.items()))
    job = SceneJob(scene, list(listeners), container)
    score_scene_job(job)  # warm-up
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    records = score_scene_job(job)
    profiler.disable()
    wall = time.perf_counter() - t0
    errors = [r["error"] for r in records if "error" in r]
    if errors:
        raise RuntimeError(f"scoring failed: {errors}")
    stats = pstats.Stats(profiler).stats
    total = sum(v[2] for v in stats.values())  # own times sum to the profiled total
    rows = sorted(((v[2], v[3], k) for k, v in stats.items()), reverse=True)[:top]
    stages = stage_seconds(stats)
    stages["other (glue, cache look-ups, I/O)"] = total - sum(stages.values())
    return {
        "rng": rng,
        "pairs": len(listeners),
        "seconds": wall,
        "s_per_pair": wall / len(listeners),
        "profiled_s_per_pair": total / len(listeners),
        "stages_s_per_pair": {k: v / len(listeners) for k, v in stages.items()},
        "top": [
            {"function": _label(k), "own_s": own, "cumulative_s": cum, "share": own / total}
            for own, cum, k in rows
        ],
    }


_STARTUP_PROBE = """
import json, os, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
torch.set_num_threads(1)
import clarity_se.stages.evaluate
from clarity_se.random import PairRandom
from clarity_se.metrics.haspi import haspi_v2_better_ear
from clarity_se.metrics.hasqi import hasqi_v2_better_ear
t2 = time.perf_counter()
mode = sys.argv[1]  # a worker scores one evaluate.rng: only that mode's kernels are loaded
dtype = torch.float32 if mode == "fast" else torch.float64

def tiny():  # 0.25 s pairs at 44.1 kHz: every kernel of this mode runs once
    g = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(4, 11025, generator=g, dtype=dtype)
    kw = dict(reference_left=x[:1], reference_right=x[1:2], processed_left=x[2:3],
              processed_right=x[3:], sample_rate=44100, level_db_spl=100.0,
              hearing_loss_left_db_hl=[[30.0] * 6], hearing_loss_right_db_hl=[[30.0] * 6])
    haspi_v2_better_ear(**kw, rng=getattr(PairRandom, mode)([1]))
    hasqi_v2_better_ear(**kw, rng=getattr(PairRandom, mode)([1]))

tiny()
t3 = time.perf_counter()
tiny()
t4 = time.perf_counter()
print(json.dumps({"import_torch_s": t1 - t0, "import_metrics_s": t2 - t1,
                  "first_call_extra_s": (t3 - t2) - (t4 - t3)}))
"""


def startup_seconds(rng: str, runs: int = 3) -> list[dict]:
    """Fixed cost of a spawned ``rng``-mode worker, in fresh interpreters (``runs`` times)."""
    out = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _STARTUP_PROBE, rng], capture_output=True,
                              text=True, check=True, cwd=REPO, env=env)  # fmt: skip
        record = json.loads(proc.stdout.strip().splitlines()[-1])
        record["rng"] = rng
        record["process_s"] = time.perf_counter() - t0
        out.append(record)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="fast,compat")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--startup", action="store_true", help="also time a worker's start-up")
    parser.add_argument(
        "--out", type=Path, default=REPO / "results" / "benchmarks" / "evaluator_profile.json"
    )
    args = parser.parse_args()
    from bench_evaluator import build_tree

    root = Path(tempfile.mkdtemp(prefix="profile_eval_"))
    build_tree(root, 1, 5.0)
    results = [profile_mode(root, mode, args.top) for mode in args.modes.split(",")]
    modes = args.modes.split(",")
    startup = [rec for mode in modes for rec in startup_seconds(mode)] if args.startup else []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"results": results, "startup": startup}, indent=2))
    for rec in startup:
        print(
            f"{rec['rng']} worker start-up: import torch {rec['import_torch_s']:.2f} s, metrics "
            f"{rec['import_metrics_s']:.2f} s, first kernel calls +{rec['first_call_extra_s']:.2f}"
            f" s (whole probe process {rec['process_s']:.2f} s)"
        )
    for res in results:
        print(f"{res['rng']}: {res['s_per_pair']:.2f} s per pair (profiled, one thread)")
        print(f"  stages, s per pair (of {res['profiled_s_per_pair']:.2f} s profiled):")
        for label, sec in res["stages_s_per_pair"].items():
            print(f"    {sec:6.3f} s  {label}")
        print("  functions with the most own time:")
        for row in res["top"]:
            print(f"  {100 * row['share']:5.1f} %  {row['own_s']:6.3f} s  {row['function']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
