"""Time ``clarity-se demo-data`` (the default 24 train + 8 dev scenes) and one in-memory scene.

Measures wall-clock and CPU time (this process + its rendering workers) of
``build_dataset`` with the CLI defaults, the machine's load average before and after (the
wall time is only meaningful on an otherwise idle machine; the CPU time is not affected by
other load), the output size, and the CPU time of ``render_scene`` for on-the-fly training.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_demo_data.py [--scenes 32] [--workers 2]
    # -> results/benchmarks/demo_data.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    from clarity_se.data.render import render_scene, sample_scene, scene_rng
    from clarity_se.data.render.cli import DEFAULT_SCENES, build_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=DEFAULT_SCENES)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument(
        "--out", type=Path, default=REPO / "results" / "benchmarks" / "demo_data.json"
    )
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        cpu0, t0 = _cpu_s(), time.perf_counter()
        result = build_dataset(
            tmp,
            n_train=args.scenes - args.scenes // 4,
            n_dev=args.scenes // 4,
            workers=args.workers,
        )
        wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    load_after = os.getloadavg()

    scene, room = sample_scene(scene_rng(0, "S00001"), "train", "S00001")
    render_scene(scene, room)  # warm caches
    times = []
    for k in range(5):
        sid = f"S{k + 2:05d}"
        scene, room = sample_scene(scene_rng(0, sid), "train", sid)
        c0 = time.process_time()
        render_scene(scene, room)
        times.append((time.process_time() - c0, scene["duration"] / 44100))

    out = {
        "command": f"clarity-se demo-data OUT --scenes {args.scenes} --workers {args.workers}",
        "n_train": len(result["train"]),
        "n_dev": len(result["dev"]),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "output_mb": round(size / 1e6, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "render_scene_cpu_s_per_scene_s": round(
            sum(t for t, _ in times) / sum(d for _, d in times), 4
        ),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
