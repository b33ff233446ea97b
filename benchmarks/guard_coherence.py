"""Does the do-no-harm rule's cue tell front from side targets? Frontal coherence per scene type.

    python benchmarks/guard_coherence.py ROOT [ROOT ...] [--checkpoint PATH]
        [--residual-mix A] [--out JSON]

Each ``ROOT`` is a held-out set of ``clarity-se demo-data --acoustic-model`` (its
``clarity_data/metadata/scenes.dev.json`` marks ``target_in_front``). The Conv-TasNet enhancer
runs with the rule off (``enhancer.guard=false``; the front microphones as residual,
``enhancer.residual_source=mixture``, ``enhancer.residual_mix`` from ``--residual-mix``, default
0.1; the recipe's other defaults) and
:class:`~clarity_se.enhancers.guard.FrontalGuard` follows its output block by block, as the rule
would: before each 10 ms block, the frontal interaural coherence of the output so far (the
rule's cue; the estimate's weight is 0 below ``c_low`` and 1 above ``c_high``). Printed and
written as JSON (default ``results/benchmarks/guard_coherence.json``): per set and scene type,
the blocks inside the target's span, the 10th, 50th and 90th percentiles of the cue, and the
share of blocks the rule would fall back in (cue below the midpoint of ``c_low`` and
``c_high``, where the weight is 0.5).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def scene_cues(enhancer, dataset, scene) -> np.ndarray:
    """The rule's cue before each whole 10 ms block inside the target's span, ``[blocks]``."""
    from clarity_se.enhancers.guard import FrontalGuard

    mixture = dataset.load_mixture(scene).numpy()
    estimate = enhancer(mixture)
    guard = FrontalGuard(1, dataset.sample_rate)
    block = guard.block
    cues = []
    for start in range(0, estimate.shape[1] - block + 1, block):
        if scene.target.time_start <= start and start + block <= scene.target.time_end:
            cues.append(float(guard.coherence()[0]))
        guard.process(estimate[None, :, start : start + block], mixture[:2, start : start + block])
    return np.asarray(cues)


def main(argv: list[str] | None = None) -> int:
    """Print and write the table; 2 on a folder that is not a held-out set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", type=Path, nargs="+")
    parser.add_argument("--checkpoint", default="", help="enhancer.checkpoint (default packaged)")
    parser.add_argument("--residual-mix", type=float, default=0.1,
                        help="enhancer.residual_mix (0.1)")
    parser.add_argument("--out", type=Path,
                        default=REPO / "results" / "benchmarks" / "guard_coherence.json")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    from clarity_se.config import load_config
    from clarity_se.data.cec2 import CEC2Dataset
    from clarity_se.data.scene import load_scenes
    from clarity_se.enhancers import build_enhancer
    from clarity_se.enhancers.guard import GuardOptions

    config = load_config(REPO / "recipes" / "icassp_2023" / "baseline" / "config.yaml",
                         ["enhancer.name=convtasnet", "enhancer.guard=false",
                          f"enhancer.checkpoint={args.checkpoint}",
                          f"enhancer.residual_mix={args.residual_mix}",
                          "enhancer.residual_source=mixture"])  # fmt: skip
    enhancer = build_enhancer(config.enhancer)
    options = GuardOptions()
    midpoint = (options.c_low + options.c_high) / 2
    rows = []
    for root in args.roots:
        scenes_file = root / "clarity_data" / "metadata" / "scenes.dev.json"
        if not scenes_file.is_file():
            print(f"error: {root}: no clarity_data/metadata/scenes.dev.json")
            return 2
        dataset = CEC2Dataset(root, "dev")
        cues: dict[str, list[np.ndarray]] = {"front": [], "side": []}
        for scene in tqdm(load_scenes(scenes_file), desc=root.name, unit="scene"):
            kind = "front" if scene.extra.get("target_in_front", True) else "side"
            cues[kind].append(scene_cues(enhancer, dataset, scene))
        for kind, values in cues.items():
            if not values:
                continue
            c = np.concatenate(values)
            p10, p50, p90 = np.percentile(c, [10, 50, 90])
            rows.append({"set": root.name, "scenes": kind, "n_scenes": len(values),
                         "blocks": int(c.size), "p10": float(p10), "median": float(p50),
                         "p90": float(p90), "fallback_share": float(np.mean(c < midpoint))})
    print("| set | scenes | blocks | cue p10 | median | p90 | blocks below the midpoint |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['set']} | {r['scenes']} ({r['n_scenes']}) | {r['blocks']} | {r['p10']:.2f} "
              f"| {r['median']:.2f} | {r['p90']:.2f} | {100 * r['fallback_share']:.0f} % |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "guard_coherence", "c_low": options.c_low,
                                    "c_high": options.c_high, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
