"""How much do the hearing-aid scores move with the level alone? Pass-through, scaled.

    python benchmarks/level_control.py --root heldout/sphere_ism --gain-db 2 \
        --out results/benchmarks/level_control_sphere.json

Needs a root scored by ``bench_enhancer_quality.py`` (its ``exp_passthrough`` with
``enhanced_signals/`` and ``scores.csv``). Copies the pass-through's enhanced signals into
``ROOT/exp_passthrough_gain``, multiplies them by ``10^(gain_db / 20)`` (float32, no clipping),
runs ``clarity-se evaluate`` there and writes the paired differences to the unscaled
pass-through, per pair and, for the front / side scenes (``target_in_front`` in the scene
metadata), their mean, extremes and median absolute value. The same gain on every signal
changes no SI-SDR: what moves is the listener's amplifier and the audibility in the ear
model, i.e. what a make-up gain on an enhancer's output (``crced``'s ``output_gain_db``) does
besides restoring the target's level.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from clarity_se.data.scene import load_scenes

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Scale, evaluate, compare (exit status 0)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--gain-db", type=float, required=True)
    parser.add_argument("--rng", default="fast", help="evaluate.rng")
    parser.add_argument("--out", default="results/benchmarks/level_control.json")
    args = parser.parse_args(argv)
    source = args.root / "exp_passthrough"
    if not (source / "scores.csv").is_file():
        parser.error(f"{source / 'scores.csv'}: not found; run bench_enhancer_quality.py on "
                     f"{args.root} first")
    exp = args.root / "exp_passthrough_gain"
    shutil.rmtree(exp, ignore_errors=True)
    (exp / "enhanced_signals").mkdir(parents=True)
    gain = 10 ** (args.gain_db / 20)
    for wav in sorted((source / "enhanced_signals").glob("*.wav")):
        signal, rate = sf.read(wav, dtype="float32")
        sf.write(exp / "enhanced_signals" / wav.name, signal * gain, rate, subtype="FLOAT")
    subprocess.run(
        [sys.executable, "-m", "clarity_se.cli", "evaluate", f"path.root={args.root}",
         f"path.exp_folder={exp}", f"evaluate.rng={args.rng}", "evaluate.workers=1"],
        check=True, env=dict(os.environ, OMP_NUM_THREADS="1"), cwd=REPO,
    )  # fmt: skip
    keys = ["scene", "listener"]
    base = pd.read_csv(source / "scores.csv").set_index(keys)
    scaled = pd.read_csv(exp / "scores.csv").set_index(keys)
    delta = (scaled - base).dropna()["combined"]
    scenes = load_scenes(args.root / "clarity_data" / "metadata" / "scenes.dev.json")
    in_front = {s.scene: bool(s.extra.get("target_in_front", True)) for s in scenes}
    result: dict = {"root": str(args.root), "gain_db": args.gain_db, "rng": args.rng,
                    "per_pair": {f"{s}_{lis}": float(v) for (s, lis), v in delta.items()}}
    for kind, front in (("front", True), ("side", False)):
        d = delta[[in_front[s] == front for s, _ in delta.index]].to_numpy()
        if d.size:
            result[kind] = {"pairs": int(d.size), "mean": float(d.mean()),
                            "min": float(d.min()), "max": float(d.max()),
                            "median_abs": float(np.median(np.abs(d)))}  # fmt: skip
            print(f"{kind}: {d.size} pairs, combined {d.mean():+.4f} (min {d.min():+.4f}, "
                  f"max {d.max():+.4f}, median |change| {np.median(np.abs(d)):.4f})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
