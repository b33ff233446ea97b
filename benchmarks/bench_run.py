"""Wall and CPU time of the main job, ``clarity-se run``, from scratch (render included).

Runs ``clarity-se run -c recipes/icassp_2023/demo.yaml run.systems=[passthrough]`` (plus any extra
overrides) in a subprocess on a fresh data + results folder, and records the wall time, the
user and system CPU time of the whole process tree (``RUSAGE_CHILDREN``, worker processes
included: the machine may be shared, so CPU time is the steadier number), peak RSS, and the
per-stage times that ``run_info.json`` holds.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_run.py [--keep DIR] [override ...]

Writes ``results/benchmarks/run_demo.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "overrides", nargs="*", help="extra dotlist overrides, e.g. run.demo_scenes=8"
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="work folder to keep (default: temp)"
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "results" / "benchmarks" / "run_demo.json"
    )
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_run_"))
    work.mkdir(parents=True, exist_ok=True)
    overrides = [
        "run.systems=[passthrough]",
        f"path.root={work / 'data'}",
        f"run.results_folder={work / 'results'}",
        *args.overrides,
    ]
    cmd = [
        sys.executable,
        "-m",
        "clarity_se.cli",
        "run",
        "-c",
        str(REPO / "recipes" / "icassp_2023" / "demo.yaml"),
        *overrides,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    status = subprocess.run(cmd, cwd=REPO, env=env, check=False).returncode
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    info_path = work / "results" / "run_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    result = {
        "command": "clarity-se run -c recipes/icassp_2023/demo.yaml " + " ".join(overrides),
        "exit_status": status,
        "wall_s": wall,
        "user_cpu_s": usage.ru_utime,
        "system_cpu_s": usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": env["OMP_NUM_THREADS"],
        "render": info.get("render"),
        "stages": {s["name"]: s["seconds"] for s in info.get("systems", [])},
        "pairs": {s["name"]: s["n_scored"] for s in info.get("systems", [])},
        "summary": info.get("summary"),
        "platform": platform.platform(),
        "git": info.get("environment", {}).get("git"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(
        json.dumps({k: result[k] for k in ("exit_status", "wall_s", "user_cpu_s", "system_cpu_s")})
    )
    print(f"wrote {args.out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
