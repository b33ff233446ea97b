"""Where ``evaluate``'s time goes: cProfile of one scene (three 5 s pairs) in one process.

Builds the ``bench_evaluator.py`` tree (one scene, 3 listeners, 5 s, 44.1 kHz binaural), scores
one scene once to warm up (numba cache, allocations), then profiles scoring it again with one
thread, as one ``clarity-se evaluate`` worker does, for each ``evaluate.rng``.  Writes the
functions with the most own time, and their share of the total, to
``results/benchmarks/evaluator_profile.json`` and prints them.

    .venv/bin/python benchmarks/profile_evaluator.py [--modes fast,compat] [--top 15]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # as `clarity-se` sets it, before torch loads


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
    from clarity_se.stages.evaluate import PairJob, score_scene

    torch.set_num_threads(1)
    cfg = load_config(None, [f"path.root={root}", f"path.exp_folder={root / 'exp'}",
                             f"evaluate.rng={rng}"])  # fmt: skip
    container = OmegaConf.to_container(cfg, resolve=True)
    pairs = json.loads((root / "clarity_data" / "metadata" / "scenes_listeners.dev.json")
                       .read_text())  # fmt: skip
    scene, listeners = next(iter(pairs.items()))
    job = PairJob(scene, list(listeners))
    score_scene(job, container)  # warm-up
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    records = score_scene(job, container)
    profiler.disable()
    wall = time.perf_counter() - t0
    errors = [r["error"] for r in records if "error" in r]
    if errors:
        raise RuntimeError(f"scoring failed: {errors}")
    stats = pstats.Stats(profiler).stats
    total = sum(v[2] for v in stats.values())  # own times sum to the profiled total
    rows = sorted(((v[2], v[3], k) for k, v in stats.items()), reverse=True)[:top]
    return {
        "rng": rng,
        "pairs": len(listeners),
        "seconds": wall,
        "s_per_pair": wall / len(listeners),
        "top": [
            {"function": _label(k), "own_s": own, "cumulative_s": cum, "share": own / total}
            for own, cum, k in rows
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="fast,compat")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--out", type=Path,
                        default=REPO / "results" / "benchmarks" / "evaluator_profile.json")
    args = parser.parse_args()
    from bench_evaluator import build_tree

    root = Path(tempfile.mkdtemp(prefix="profile_eval_"))
    build_tree(root, 1, 5.0)
    results = [profile_mode(root, mode, args.top) for mode in args.modes.split(",")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"results": results}, indent=2))
    for res in results:
        print(f"{res['rng']}: {res['s_per_pair']:.2f} s per pair (profiled, one thread)")
        for row in res["top"]:
            print(f"  {100 * row['share']:5.1f} %  {row['own_s']:6.3f} s  {row['function']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
