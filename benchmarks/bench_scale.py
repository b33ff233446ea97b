"""Throughput of ``clarity-se evaluate`` against the number of Dask workers.

Builds the tree of ``bench_evaluator.py`` (``--scenes`` scenes of ``--seconds`` s, 3 listeners
each) and, in one run on the same files, times ``clarity-se evaluate`` (a fresh process each,
start-up included) with:

- ``evaluate.scheduler=local evaluate.workers=N`` (today's local worker processes), and
- ``evaluate.scheduler=dask dask.cluster=local dask.n_workers=N`` (a ``LocalCluster`` started
  and closed by the command),

for each N of ``--workers``; optionally the official recipe (``--ref-python``) for its time per
pair. Every run's ``scores.csv`` must equal the first one's (compat mode). Writes
``results/benchmarks/scale.json``.

    PYTHONPATH=. python benchmarks/bench_scale.py [--scenes 6] [--workers 1,2] [--ref-python PY]

A Dask run pays a cluster start-up (about 2-4 s here) on top of the local pool's; on a cluster
that is already running (``dask.address``) it is paid once for many runs.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_evaluator import REPO, build_tree, run_reference  # noqa: E402


def run(root: Path, name: str, overrides: list[str]) -> tuple[float, bytes]:
    """Time one ``clarity-se evaluate`` process; return (seconds, scores.csv bytes)."""
    exp = root / f"exp_{name}"
    (exp / "enhanced_signals").mkdir(parents=True, exist_ok=True)
    for f in (root / "exp" / "enhanced_signals").iterdir():
        target = exp / "enhanced_signals" / f.name
        if not target.exists():
            os.link(f, target)
    cmd = [sys.executable, "-m", "clarity_se.cli", "evaluate", f"path.root={root}",
           f"path.exp_folder={exp}", *overrides]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=REPO,
                   env=dict(os.environ, OMP_NUM_THREADS="1"))  # fmt: skip
    return time.perf_counter() - t0, (exp / "scores.csv").read_bytes()


def main() -> int:
    """Run the benchmark and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--ref-python", default="")
    parser.add_argument("--out", type=Path,
                        default=REPO / "results" / "benchmarks" / "scale.json")  # fmt: skip
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    build_tree(root, args.scenes, args.seconds)
    pairs = json.loads((root / "clarity_data" / "metadata" / "scenes_listeners.dev.json")
                       .read_text())  # fmt: skip
    n_pairs = sum(len(v) for v in pairs.values())
    result = {"pairs": n_pairs, "seconds_per_signal": args.seconds, "runs": [],
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}}  # fmt: skip
    run(root, "warmup", ["evaluate.workers=1", "evaluate.small_test=true"])  # numba caches
    if args.ref_python and Path(args.ref_python).exists():
        seconds, _ = run_reference(args.ref_python, root)
        result["reference"] = {"seconds": seconds, "s_per_pair": seconds / n_pairs}
    first = None
    for n in [int(w) for w in args.workers.split(",")]:
        for scheduler, overrides in (
            ("local", [f"evaluate.workers={n}"]),
            ("dask", ["evaluate.scheduler=dask", "dask.cluster=local", f"dask.n_workers={n}"]),
        ):
            seconds, csv = run(root, f"{scheduler}_{n}", overrides)
            first = first if first is not None else csv
            row = {"scheduler": scheduler, "workers": n, "seconds": seconds,
                   "pairs_per_s": n_pairs / seconds, "scores_equal_first_run": csv == first}
            result["runs"].append(row)
            print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
