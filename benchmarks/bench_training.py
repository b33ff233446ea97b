"""Training steps per second on the domain-randomised mixer, with and without a loader worker.

For each recipe (``--recipes``, default the hearing-aid DTLN and the Conv-TasNet), one short
epoch of the real trainer (:func:`clarity_se.training.trainer.train`, ``--steps`` steps of the
recipe's batch, one validation item, no export) runs twice in this process on the recipe's
README data options: with ``data.num_workers=0`` (the mixer renders each batch in the training
process, between steps) and ``data.num_workers=1`` (a ``DataLoader`` worker process renders the
next batch while the model trains on this one), both with ``train.num_threads=1``. On a 2-core
machine the second keeps both cores busy. The items are drawn per (seed, epoch, index)
(``clarity_se/data/render/randomised.py``), so both runs train on the same batches: the JSON
records both runs' mean training loss, which differ by no more than floating-point noise.

Reported per recipe: ``s_per_step`` (the epoch's wall time over its steps, the one validation
item and the loader start included) for each setting, and ``speedup`` = workers 0 / workers 1
(same run).

    python benchmarks/bench_training.py --data-root ../shared/data [--steps 24]
    # -> results/benchmarks/training.json

Needs the shared recordings (``--data-root``); the machine should otherwise be idle.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout's package

#: recipe name -> config file (the hearing-aid forms, as trained in their READMEs)
RECIPES = {
    "dtln": REPO / "recipes/icassp_2023/dtln/config.yaml",
    "convtasnet": REPO / "recipes/icassp_2023/convtasnet/config.yaml",
}


def _run(config: Path, data_root: str, workers: int, steps: int, exp_dir: Path) -> dict:
    """One epoch of ``steps`` steps; its ``log.csv`` row plus ``s_per_step``."""
    from clarity_se.training.config import load_train_config
    from clarity_se.training.trainer import train

    cfg = load_train_config(str(config), [
        "data.source=randomised", "data.root=''", "data.dev_root=''",
        f"data.randomised.data_root={data_root}",
        "data.randomised.acoustic_models=[kemar_ism,sphere_ism,freefield_ism]",
        "data.dev_items=1", f"data.num_workers={workers}", "train.num_threads=1",
        "train.epochs=1", f"train.steps_per_epoch={steps}", f"train.exp_dir={exp_dir}",
        "train.export=''", "train.resume=false", "train.max_time_s=0", "train.progress=false",
    ])  # fmt: skip
    _, history = train(cfg)
    row = dict(history[-1])
    row["s_per_step"] = round(row["epoch_time_s"] / steps, 3)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True, help="the shared recordings")
    parser.add_argument("--steps", type=int, default=24, help="steps per timed epoch")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--out", default=str(REPO / "results/benchmarks/training.json"))
    args = parser.parse_args(argv)
    if not Path(args.data_root).is_dir():
        print(f"--data-root: {args.data_root} is not a folder", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.recipes:
            runs = {w: _run(RECIPES[name], args.data_root, w, args.steps, Path(tmp) / f"{name}{w}")
                    for w in (0, 1)}  # fmt: skip
            results[name] = {
                "workers_0": runs[0],
                "workers_1": runs[1],
                "speedup": round(runs[0]["s_per_step"] / runs[1]["s_per_step"], 3),
            }
            print(name, json.dumps(results[name]))
    out = {
        "benchmark": "training_loader_workers",
        "config": vars(args),
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
