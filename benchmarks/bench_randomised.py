"""Items per second of the domain-randomised mixer (``RandomisedMixtures``) on one CPU thread.

Configurations: every acoustic model alone and the default mix of all models available at the
data root, ``--segment-s`` seconds per item (default 4 s, the Conv-TasNet recipe's training
segment), default ranges (RT60 0.1-1.0 s, 1-3 interferers). Each configuration times
``--items`` items after 2 untimed ones (file caches warm), in this process, with
``torch.set_num_threads(1)``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_randomised.py --data-root /work/shared/data
    # -> results/benchmarks/randomised.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="", help="default: $CLARITY_SE_DATA_ROOT or demo")
    parser.add_argument("--segment-s", type=float, default=4.0)
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--out", default=str(REPO / "results/benchmarks/randomised.json"))
    args = parser.parse_args()

    import torch

    from clarity_se.data.render.randomised import build_training_dataset, items_per_second

    torch.set_num_threads(1)
    base = {"data_root": args.data_root, "segment_s": args.segment_s}
    models = list(build_training_dataset(base, n_items=1).models)
    results = {}
    for name in [*models, "mix"]:
        opts = dict(base) if name == "mix" else {**base, "acoustic_models": [name]}
        r = items_per_second(opts, n_items=args.items)
        results[name] = {k: r[k] for k in ("items_per_s", "audio_s_per_s", "per_model_s")}
        print(name, json.dumps(results[name]))
    out = {
        "benchmark": "randomised_mixer",
        "config": vars(args) | {"threads": 1, "models": models},
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
        },
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
