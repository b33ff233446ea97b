"""Training steps per second on the domain-randomised mixer, with and without a loader worker.

For each recipe (``--recipes``, default the hearing-aid DTLN and the Conv-TasNet), one short
epoch of the real trainer (:func:`clarity_se.training.trainer.train`, ``--steps`` steps of the
recipe's batch, one validation item, no export) runs three times in this process on the
recipe's README data options:

* ``t1_w0``: ``train.num_threads=1``, ``data.num_workers=0``: the mixer renders each batch in
  the training process, between steps;
* ``t2_w0``: ``train.num_threads=2``, ``data.num_workers=0``: the same with two threads for the
  model (the setting of the DTLN README's fine-tunes);
* ``t1_w1``: ``train.num_threads=1``, ``data.num_workers=1``: a ``DataLoader`` worker process
  renders the next batch while the model trains on this one.

The items are drawn per (seed, epoch, index) (``clarity_se/data/render/randomised.py``), so the
runs train on the same batches (``tests/data/test_randomised.py``); the JSON records each run's
mean training loss, which differ only by floating-point noise (another thread count sums in
another order).

Reported per recipe and setting: ``s_per_step`` (the epoch's wall time over its steps, the one
validation item and the loader start included), and ``speedup``: the faster of ``t1_w0`` and
``t2_w0`` over ``t1_w1`` (same run).

    python benchmarks/bench_training.py --data-root ../shared/data [--steps 16]
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout's package

#: recipe name -> config file (the hearing-aid forms, as trained in their READMEs)
RECIPES = {
    "dtln": REPO / "recipes/icassp_2023/dtln/config.yaml",
    "convtasnet": REPO / "recipes/icassp_2023/convtasnet/config.yaml",
}


#: recipe name -> the README's overrides of its config for the randomised mixer (the
#: Conv-TasNet's steps 6-10 train on 4 s segments)
RECIPE_OVERRIDES = {"dtln": [], "convtasnet": ["data.segment_s=4.0", "train.batch_size=4"]}
#: setting -> (train.num_threads, data.num_workers)
SETTINGS = {"t1_w0": (1, 0), "t2_w0": (2, 0), "t1_w1": (1, 1)}


def _run(name: str, data_root: str, threads: int, workers: int, steps: int,
         exp_dir: Path) -> dict:  # fmt: skip
    """One epoch of ``steps`` steps; its ``log.csv`` row plus ``s_per_step``."""
    from clarity_se.training.config import load_train_config
    from clarity_se.training.trainer import train

    cfg = load_train_config(str(RECIPES[name]), [*RECIPE_OVERRIDES[name],
        "data.source=randomised", "data.root=''", "data.dev_root=''",
        f"data.randomised.data_root={data_root}",
        "data.randomised.acoustic_models=[kemar_ism,sphere_ism,freefield_ism]",
        "data.dev_items=1", f"data.num_workers={workers}", f"train.num_threads={threads}",
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
    parser.add_argument("--steps", type=int, default=16, help="steps per timed epoch")
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
            runs = {key: _run(name, args.data_root, *SETTINGS[key], args.steps,
                              Path(tmp) / f"{name}_{key}")
                    for key in SETTINGS}  # fmt: skip
            best = min(runs["t1_w0"]["s_per_step"], runs["t2_w0"]["s_per_step"])
            results[name] = {**runs, "speedup": round(best / runs["t1_w1"]["s_per_step"], 3)}
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
