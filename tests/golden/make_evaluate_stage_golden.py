"""Golden scores of the whole ICASSP 2023 baseline (enhance + evaluate) from pyclarity 0.9.0.

Run with the pyclarity venv, from the repository root::

    /work/tools/pyclarity-venv/bin/python tests/golden/make_evaluate_stage_golden.py

Builds the tiny dev set of ``tests/_eval_tree.py`` in a temporary folder, runs the official
``recipes/icassp_2023/baseline/enhance.py`` (passthrough) and ``evaluate.py`` (NAL-R, compressor,
soft clip, HASPI v2 / HASQI v2 better ear, ``set_scene_seed`` per pair) on it unchanged (their
hydra-wrapped functions called with the official config), and writes
``tests/fixtures/evaluate_stage_golden.json``: the official ``scores.csv`` rows and the sha256 of
every input file (the test checks that it rebuilt the same bytes).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from omegaconf import OmegaConf
from recipes.icassp_2023.baseline.enhance import enhance
from recipes.icassp_2023.baseline.evaluate import run_calculate_si

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from _eval_tree import make_eval_tree  # noqa: E402

CONFIG = Path(run_calculate_si.__wrapped__.__code__.co_filename).with_name("config.yaml")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = make_eval_tree(Path(tmp) / "data")
        cfg = OmegaConf.load(CONFIG)
        cfg.path.root = str(root)
        OmegaConf.resolve(cfg)
        exp = Path(tmp) / "exp"
        exp.mkdir()
        cwd = os.getcwd()
        os.chdir(exp)
        try:
            enhance.__wrapped__(cfg)
            run_calculate_si.__wrapped__(cfg)
        finally:
            os.chdir(cwd)
        with open(exp / "scores.csv", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        scene_dir = root / "clarity_data" / "dev" / "scenes"
        hashes = {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(scene_dir.iterdir())
        }
    out = {
        "source": "pyclarity 0.9.0 recipes/icassp_2023/baseline enhance.py + evaluate.py",
        "input_sha256": hashes,
        "scores": [
            {
                "scene": r["scene"],
                "listener": r["listener"],
                "combined": float(r["combined"]),
                "haspi": float(r["haspi"]),
                "hasqi": float(r["hasqi"]),
            }
            for r in rows
        ],
    }
    path = HERE.parent / "fixtures" / "evaluate_stage_golden.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}: {len(rows)} pairs")


if __name__ == "__main__":
    main()
