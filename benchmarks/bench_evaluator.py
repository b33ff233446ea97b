"""Whole-``evaluate`` speed: clarity_se vs the official pyclarity ICASSP 2023 ``evaluate.py``.

Builds a CEC2-layout tree of ``--scenes`` scenes (5 s, 44.1 kHz, binaural; 3 listeners each, as
CEC2): the reference is real speech (the demo sources) with a small interaural delay, the
"enhanced" signal is that speech plus real noise at a random SNR in [-5, 15] dB. Then, in the
same run and on the same files:

- the official recipe ``recipes/icassp_2023/baseline/evaluate.py`` (hydra, pyclarity 0.9.0) in a
  subprocess with the oracle interpreter ``--ref-python`` (one process: the official tool has no
  parallelism);
- ``clarity-se evaluate`` in a subprocess for ``evaluate.rng`` in {compat, fast} and each
  ``--batch-sizes`` and ``--workers`` value (``evaluate.workers``; torch threads 1 per worker).

Reports pairs/s, seconds per pair, speed-up over the reference and the largest per-pair score
difference to the reference (compat must be < 1e-4).
Writes ``results/benchmarks/evaluator.json``.

    .venv/bin/python benchmarks/bench_evaluator.py [--scenes 4] [--workers 1,2] [--batch-sizes 3]
        [--device cpu] [--render-seed S] [--against-rev REV]

``--against-rev REV`` runs every configuration a second time with the ``clarity_se`` of git
revision ``REV`` (a temporary worktree), interleaved with ours on the same files, and reports
the time ratio and the largest difference in combined score.

Without a reference interpreter (``--ref-python ''``) only our timings are written.

``--render-seed S`` scores rendered scenes instead (``clarity-se demo-data --dev-scenes
--scenes --seed S``: reverberant binaural scenes of the demo recordings, about 9 s, CEC2-like
listeners up to 105 dB HL, 3 per scene), enhanced by the official baseline's passthrough
(``clarity-se enhance``, ``enhancer.name=passthrough``): a check on scenes that no test or golden
file has seen.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
FS = 44100
DEFAULT_REF_PYTHON = "/work/tools/pyclarity-venv/bin/python"


def build_tree(root: Path, n_scenes: int, seconds: float, seed: int = 0) -> None:
    """Write metadata, references and enhanced signals of ``n_scenes`` scenes under ``root``."""
    import soundfile as sf
    from scipy.signal import resample_poly

    from clarity_se.data.audio_io import write_audio
    from clarity_se.data.audiogram import save_listeners
    from clarity_se.data.render.listeners import bisgaard_listeners

    rng = np.random.default_rng(seed)
    assets = REPO / "clarity_se" / "assets" / "demo_sources"
    speech = sorted((assets / "speech").rglob("*.flac"))
    noises = sorted((assets / "noise").rglob("*.flac"))
    meta = root / "clarity_data" / "metadata"
    scenes_dir = root / "clarity_data" / "dev" / "scenes"
    exp = root / "exp"
    listeners = bisgaard_listeners()
    save_listeners(meta / "listeners.json", listeners)
    names = list(listeners)
    n = int(seconds * FS)
    pairs = {}
    for k in range(n_scenes):
        scene = f"S{6001 + k:05d}"
        x, fs = sf.read(str(speech[k % len(speech)]), always_2d=True)
        x = resample_poly(x[:, 0], FS, fs) if fs != FS else x[:, 0]
        x = np.resize(x, n)
        delay = int(rng.integers(0, 20))
        target = np.stack([x, np.roll(x, delay)], axis=1)
        target *= 0.05 / np.sqrt(np.mean(target**2))
        nz, fs = sf.read(str(noises[k % len(noises)]), always_2d=True)
        nz = resample_poly(nz[:, 0], FS, fs) if fs != FS else nz[:, 0]
        start = int(rng.integers(0, max(1, nz.shape[0] - n)))
        noise = np.resize(nz[start:], n)
        noise = np.stack([noise, np.roll(noise, 7)], axis=1)
        snr_db = rng.uniform(-5, 15)
        noise *= np.sqrt(np.mean(target**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)
        write_audio(
            scenes_dir / f"{scene}_target_anechoic_CH1.wav",
            target / np.abs(target).max() * 0.9,
            FS,
            subtype="PCM_16",
        )
        write_audio(scenes_dir / f"{scene}_target_CH1.wav", target, FS, subtype="PCM_16")
        chosen = [names[(3 * k + j) % len(names)] for j in range(3)]
        pairs[scene] = chosen
        for lis in chosen:
            write_audio(
                exp / "enhanced_signals" / f"{scene}_{lis}_enhanced.wav", target + noise, FS
            )
    (meta / "scenes_listeners.dev.json").write_text(json.dumps(pairs, indent=4))


def render_tree(root: Path, n_scenes: int, seed: int) -> None:
    """Render ``n_scenes`` dev scenes (``clarity-se demo-data``) and their passthrough outputs."""
    cli = [sys.executable, "-m", "clarity_se.cli"]
    subprocess.run([*cli, "demo-data", str(root), "--train-scenes", "0", "--dev-scenes",
                    str(n_scenes), "--seed", str(seed)], check=True, cwd=REPO)  # fmt: skip
    subprocess.run([*cli, "enhance", f"path.root={root}", f"path.exp_folder={root / 'exp'}",
                    "enhancer.name=passthrough"], check=True, cwd=REPO)  # fmt: skip


def run_reference(ref_python: str, root: Path) -> tuple[float, pd.DataFrame]:
    """Run the official evaluate.py on the tree; return (seconds, scores)."""
    site = subprocess.run(
        [
            ref_python,
            "-c",
            "import recipes, os; print(os.path.dirname(os.path.dirname(recipes.__file__)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    exp = root / "exp_ref"
    (exp / "enhanced_signals").mkdir(parents=True, exist_ok=True)
    for f in (root / "exp" / "enhanced_signals").iterdir():
        target = exp / "enhanced_signals" / f.name
        if not target.exists():
            os.link(f, target)
    env = dict(
        os.environ,
        PYTHONPATH=site,
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    t0 = time.perf_counter()
    subprocess.run(
        [
            ref_python,
            f"{site}/recipes/icassp_2023/baseline/evaluate.py",
            f"path.root={root}",
            f"path.exp_folder={exp}",
        ],
        env=env,
        check=True,
        capture_output=True,
        cwd=root,
    )
    return time.perf_counter() - t0, pd.read_csv(exp / "scores.csv")


def run_ours(
    root: Path,
    rng: str,
    batch_size: int,
    workers: int,
    device: str,
    *,
    exp: Path | None = None,
    small_test: bool = False,
    code_dir: Path = REPO,
    tag: str = "",
) -> tuple[float, pd.DataFrame]:
    """Run ``clarity-se evaluate`` in a fresh exp folder; return (seconds, scores).

    ``code_dir`` is the checkout whose ``clarity_se`` runs (``python -m clarity_se.cli`` started
    there, with it first on ``PYTHONPATH``): this repository, or a worktree of ``--against-rev``.
    """
    exp = exp or root / f"exp{tag}_{rng}_b{batch_size}_w{workers}_{device}"
    (exp / "enhanced_signals").mkdir(parents=True, exist_ok=True)
    for f in (root / "exp" / "enhanced_signals").iterdir():
        target = exp / "enhanced_signals" / f.name
        if not target.exists():
            os.link(f, target)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(code_dir))
    cmd = [
        sys.executable,
        "-m",
        "clarity_se.cli",
        "evaluate",
        f"path.root={root}",
        f"path.exp_folder={exp}",
        f"evaluate.rng={rng}",
        f"evaluate.batch_size={batch_size}",
        f"evaluate.workers={workers}",
        f"evaluate.device={device}",
        f"evaluate.small_test={small_test}",
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=code_dir)
    return time.perf_counter() - t0, pd.read_csv(exp / "scores.csv")


def main() -> int:
    """Run the benchmark and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch-sizes", default="1,3")
    parser.add_argument("--workers", default="1,2", help="comma list of evaluate.workers values")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", default="compat,fast")
    parser.add_argument(
        "--ref-python", default=os.environ.get("PYCLARITY_PYTHON", DEFAULT_REF_PYTHON)
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "results" / "benchmarks" / "evaluator.json"
    )
    parser.add_argument("--keep", type=Path, default=None, help="build the tree here and keep it")
    parser.add_argument(
        "--render-seed", type=int, default=None, help="render the scenes with this seed instead"
    )
    parser.add_argument(
        "--against-rev",
        default=None,
        help="also run each configuration with the clarity_se of this git revision (a temporary "
        "worktree), interleaved with ours, and report the time ratio and the largest score "
        "difference",
    )
    args = parser.parse_args()
    other = None
    if args.against_rev:
        other = Path(tempfile.mkdtemp(prefix="bench_eval_rev_"))
        subprocess.run(["git", "worktree", "add", "--detach", str(other), args.against_rev],
                       check=True, cwd=REPO, capture_output=True)  # fmt: skip

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_eval_"))
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "clarity_data").exists():
        if args.render_seed is None:
            build_tree(root, args.scenes, args.seconds)
        else:
            render_tree(root, args.scenes, args.render_seed)
    pairs_file = root / "clarity_data" / "metadata" / "scenes_listeners.dev.json"
    n_pairs = sum(len(v) for v in json.loads(pairs_file.read_text()).values())
    result = {
        "pairs": n_pairs,
        "render_seed": args.render_seed,
        "seconds_per_signal": args.seconds if args.render_seed is None else None,
        "sample_rate": FS,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
        },
        "runs": [],
        "against_rev": args.against_rev,
    }
    # Warm-up (untimed): the first run after an install or a source change compiles and caches
    # the numba kernels (tens of seconds); timing it would measure the compiler, not the evaluator.
    warm = root / "warmup"
    if not warm.exists():
        run_ours(root, "compat", 3, 1, args.device, exp=warm, small_test=True)
    if other is not None and not (root / "warmup_rev").exists():
        run_ours(root, "compat", 3, 1, args.device, exp=root / "warmup_rev", small_test=True,
                 code_dir=other)  # fmt: skip
    ref_scores = None
    if args.ref_python and Path(args.ref_python).exists():
        seconds, ref_scores = run_reference(args.ref_python, root)
        result["reference"] = {
            "tool": "pyclarity 0.9.0 recipes/icassp_2023/baseline/evaluate.py",
            "processes": 1,
            "seconds": seconds,
            "s_per_pair": seconds / n_pairs,
            "pairs_per_s": n_pairs / seconds,
        }
        print(f"reference: {seconds:.1f} s, {seconds / n_pairs:.2f} s/pair", flush=True)
    for rng, batch, workers in [
        (r, int(b), int(w))
        for r in args.modes.split(",")
        for b in args.batch_sizes.split(",")
        for w in args.workers.split(",")
    ]:
        seconds, scores = run_ours(root, rng, batch, workers, args.device)
        run = {
            "rng": rng,
            "batch_size": batch,
            "workers": workers,
            "device": args.device,
            "seconds": seconds,
            "s_per_pair": seconds / n_pairs,
            "pairs_per_s": n_pairs / seconds,
        }
        if ref_scores is not None:
            merged = scores.merge(ref_scores, on=["scene", "listener"], suffixes=("", "_ref"))
            run["speedup_vs_reference"] = result["reference"]["seconds"] / seconds
            run["speedup_vs_reference_per_worker"] = run["speedup_vs_reference"] / workers
            for metric in ("haspi", "hasqi", "combined"):
                diff = np.abs(merged[metric] - merged[f"{metric}_ref"])
                run[f"max_abs_diff_{metric}"] = float(diff.max())
                run[f"mean_diff_{metric}"] = float(
                    (merged[metric] - merged[f"{metric}_ref"]).mean()
                )
        if other is not None:
            rev_seconds, rev_scores = run_ours(
                root, rng, batch, workers, args.device, code_dir=other, tag="_rev"
            )
            merged = scores.merge(rev_scores, on=["scene", "listener"], suffixes=("", "_rev"))
            run["against_rev"] = {
                "seconds": rev_seconds,
                "pairs_per_s": n_pairs / rev_seconds,
                "time_ratio_ours_over_rev": seconds / rev_seconds,
                "max_abs_diff_combined": float(
                    np.abs(merged["combined"] - merged["combined_rev"]).max()
                ),
            }
        result["runs"].append(run)
        print(json.dumps(run), flush=True)
    if other is not None:
        subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=REPO, check=False)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
