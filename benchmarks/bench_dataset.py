"""Throughput of the training dataset and of validation on a synthetic CEC2-layout tree.

Builds ``--scenes`` scenes of ``--scene-s`` seconds (16-bit stereo WAVs at 44.1 kHz:
``mix_CH0..3``, ``target_CH0..3``, ``interferer_CH0..3``, ``target_anechoic_CH1`` as CEC2 has)
in a temporary folder, then measures, single-threaded:

- the training dataset (``SceneSegmentDataset``) items per second (4-s crops, 6-channel
  mixture + 2-channel target), reading the scene from disk (``cache=False``) and from the
  in-memory cache (``cache=True``, after one pass that fills it), and the seconds of audio
  per second that means;
- ``clarity-se validate`` (header checks) and ``--read-audio`` (full decode) files per second;
- ``clarity-se manifest`` scenes per second.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_dataset.py   # -> results/benchmarks/dataset.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def build_tree(root: Path, n_scenes: int, scene_s: float) -> None:
    from _cec2_tree import make_scene

    from clarity_se.data.audio_io import write_audio
    from clarity_se.data.scene import save_scenes

    frames = int(scene_s * 44100)
    meta = root / "clarity_data" / "metadata"
    scenes_dir = root / "clarity_data" / "dev" / "scenes"
    meta.mkdir(parents=True)
    scenes = [
        make_scene(f"S{i + 1:05d}", duration=frames, t0=int(1.5 * 44100), t1=frames - 44100)
        for i in range(n_scenes)
    ]
    save_scenes(meta / "scenes.dev.json", scenes)
    (meta / "scenes_listeners.dev.json").write_text(
        json.dumps({s.scene: ["L0064"] for s in scenes})
    )
    shutil.copy(REPO / "tests/fixtures/cec2_metadata/listeners.json", meta / "listeners.json")
    rng = np.random.default_rng(0)
    noise = rng.uniform(-0.3, 0.3, (frames, 2))
    for scene in scenes:
        for kind in ("mix", "target", "interferer"):
            for ch in range(4):
                write_audio(
                    scenes_dir / f"{scene.scene}_{kind}_CH{ch}.wav", noise, 44100, subtype="PCM_16"
                )
        write_audio(
            scenes_dir / f"{scene.scene}_target_anechoic_CH1.wav", noise, 44100, subtype="PCM_16"
        )


def rate(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--scene-s", type=float, default=6.5)
    parser.add_argument("--crop-s", type=float, default=4.0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "results/benchmarks/dataset.json"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from clarity_se.data.manifest_cli import write_scene_manifest
    from clarity_se.data.scene_segments import SceneSegmentDataset
    from clarity_se.data.validate import validate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        build_tree(root, args.scenes, args.scene_s)
        n_items = args.scenes * args.epochs
        results = {}
        for cache in (False, True):
            ds = SceneSegmentDataset(root, "dev", segment_s=args.crop_s, cache=cache)
            if cache:
                t0 = time.perf_counter()
                for i in range(len(ds)):
                    ds.load_scene(ds.scene_ids[i])
                results["preload_s"] = time.perf_counter() - t0

            def run(ds=ds):
                for epoch in range(args.epochs):
                    ds.set_epoch(epoch)
                    for i in range(len(ds)):
                        ds[i]

            items = rate(run, n_items)
            key = "cached" if cache else "disk"
            results[f"items_per_s_{key}"] = items
            results[f"audio_s_per_s_{key}"] = items * args.crop_s
        n_files = args.scenes * 13
        report = None

        def check(read: bool) -> None:
            nonlocal report
            report = validate_dataset(root, ["dev"], read_audio_data=read)
            assert report.ok, report.problems

        results["validate_files_per_s_headers"] = rate(lambda: check(False), n_files)
        results["validate_files_per_s_read_audio"] = rate(lambda: check(True), n_files)
        results["manifest_scenes_per_s"] = rate(
            lambda: write_scene_manifest(str(root), "dev", str(Path(tmp) / "m")), args.scenes
        )
    out = {
        "benchmark": "dataset",
        "config": vars(args) | {"threads": 1},
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
        },
        "results": {k: round(v, 3) for k, v in results.items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out["results"], indent=2))


if __name__ == "__main__":
    main()
