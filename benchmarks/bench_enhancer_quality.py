"""Does the shipped Conv-TasNet help? SI-SDR and ICASSP 2023 scores vs the passthrough baseline.

Renders a held-out dev set with the demo renderer (``--seed`` different from the demo's 0, so
new rooms, SNRs, source positions and utterance segments; dev speakers are disjoint from the
training speakers), then for ``passthrough`` and ``convtasnet``:

1. ``clarity-se enhance`` (subprocess);
2. SI-SDR of the enhanced left/right signals against ``<scene>_target_CH1.wav`` over the target's
   active span (``target.time_start``..``time_end``), mean of the two ears, per scene;
3. ``clarity-se evaluate`` (NAL-R + compressor, HASPI v2 / HASQI v2 better ear; ``--rng``).

Writes ``results/benchmarks/enhancer_quality.json`` with per-system means and paired differences
(convtasnet - passthrough): SI-SDR improvement and combined-score improvement.

    .venv/bin/python benchmarks/bench_enhancer_quality.py [--dev-scenes 12] [--seed 1] [--rng fast]
        [--checkpoint PATH] [--residual-mix A] [--mirror-average true|false] [--out JSON]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def si_sdr_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR (zero-mean, Le Roux et al. 2019) of 1-D signals, in dB."""
    import torch

    from clarity_se.losses.sisdr import si_sdr

    return float(si_sdr(torch.as_tensor(estimate)[None], torch.as_tensor(reference)[None])[0])


def main() -> int:
    """Run the quality benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=REPO / "results" / "benchmarks" / "enhancer_quality_data"
    )
    parser.add_argument("--dev-scenes", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rng", default="fast")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--checkpoint", default="")
    parser.add_argument(
        "--residual-mix",
        type=float,
        default=None,
        help="enhancer.residual_mix of the convtasnet system (default: the config's, 0.1)",
    )
    parser.add_argument(
        "--mirror-average",
        choices=("true", "false"),
        default=None,
        help="enhancer.mirror_average of the convtasnet system (default: the config's, true)",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "results" / "benchmarks" / "enhancer_quality.json"
    )
    args = parser.parse_args()

    from clarity_se.data.audio_io import read_audio
    from clarity_se.data.scene import load_scenes

    root = args.root
    if not (root / "clarity_data" / "metadata" / "scenes.dev.json").is_file():
        from clarity_se.data.render.cli import build_dataset

        build_dataset(root, n_train=0, n_dev=args.dev_scenes, seed=args.seed, workers=args.workers)
    scenes = {
        s.scene: s for s in load_scenes(root / "clarity_data" / "metadata" / "scenes.dev.json")
    }
    scenes_folder = root / "clarity_data" / "dev" / "scenes"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result: dict = {
        "root": str(root),
        "seed": args.seed,
        "dev_scenes": len(scenes),
        "rng": args.rng,
        "checkpoint": args.checkpoint or "clarity_se/assets/checkpoints/convtasnet.pt",
        "residual_mix": args.residual_mix,
        "mirror_average": args.mirror_average,
        "systems": {},
    }
    per_scene = {}
    scores = {}
    for system in ("passthrough", "convtasnet"):
        exp = root / f"exp_{system}"
        if system == "convtasnet":  # checkpoint / residual_mix may differ from the last run
            shutil.rmtree(exp, ignore_errors=True)
        common = [f"path.root={root}", f"path.exp_folder={exp}"]
        extra = []
        if system == "convtasnet":
            if args.checkpoint:
                extra.append(f"enhancer.checkpoint={args.checkpoint}")
            if args.residual_mix is not None:
                extra.append(f"enhancer.residual_mix={args.residual_mix}")
            if args.mirror_average is not None:
                extra.append(f"enhancer.mirror_average={args.mirror_average}")
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "clarity_se.cli",
                "enhance",
                *common,
                f"enhancer.name={system}",
                *extra,
            ],
            check=True,
            env=env,
            cwd=REPO,
        )
        enhance_s = time.perf_counter() - t0
        values = {}
        for name, scene in scenes.items():
            enhanced = sorted((exp / "enhanced_signals").glob(f"{name}_*_enhanced.wav"))[0]
            est, _ = read_audio(enhanced)
            ref, _ = read_audio(scenes_folder / f"{name}_target_CH1.wav")
            span = slice(scene.target.time_start, scene.target.time_end)
            values[name] = float(
                np.mean([si_sdr_db(est[span, ear], ref[span, ear]) for ear in (0, 1)])
            )
        per_scene[system] = values
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "clarity_se.cli",
                "evaluate",
                *common,
                f"evaluate.rng={args.rng}",
                f"evaluate.workers={args.workers}",
            ],
            check=True,
            env=env,
            cwd=REPO,
        )
        evaluate_s = time.perf_counter() - t0
        scores[system] = pd.read_csv(exp / "scores.csv")
        result["systems"][system] = {
            "si_sdr_db": float(np.mean(list(values.values()))),
            **{m: float(scores[system][m].mean()) for m in ("combined", "haspi", "hasqi")},
            "pairs": len(scores[system]),
            "enhance_s": enhance_s,
            "evaluate_s": evaluate_s,
        }
    delta = np.array([per_scene["convtasnet"][s] - per_scene["passthrough"][s] for s in scenes])
    merged = scores["convtasnet"].merge(
        scores["passthrough"], on=["scene", "listener"], suffixes=("", "_base")
    )
    result["si_sdr_improvement_db"] = float(delta.mean())
    result["si_sdr_improved_scenes"] = int((delta > 0).sum())
    for metric in ("combined", "haspi", "hasqi"):
        result[f"{metric}_improvement"] = float((merged[metric] - merged[f"{metric}_base"]).mean())
    result["combined_improved_pairs"] = int((merged["combined"] > merged["combined_base"]).sum())
    result["per_scene_si_sdr_db"] = per_scene
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "per_scene_si_sdr_db"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
