"""Echo-track benchmark: quality and cost of every registered echo canceller in one run.

For each system of the ``aec.name`` registry (:func:`clarity_se.aec.aec_names`: the classical
``nlms`` and ``pbfdaf``, the ``webrtc_aec3`` anchor, the learned ``deep_adaptive`` with its
packaged checkpoint, and any system registered beside them) on the clips of an AEC Challenge
synthetic folder:

- quality per talk type, as ``clarity-se aec-evaluate`` scores it
  (:func:`clarity_se.metrics.aec_scores.score_output`): ERLE (st), PESQ-WB and SI-SDR (dt),
  AECMOS echo and degradation MOS (all), with the unprocessed microphone (``input``) beside;
- cost on one CPU core (``torch``, numba, onnxruntime and BLAS limited to one thread): the
  CPU time of the whole-clip call (which is the streaming path; process CPU time, so other load
  on a shared machine does not inflate it; wall time is reported too), as real-time factor
  (processing time / audio duration) and milliseconds per 10 ms of audio; algorithmic latency;
  parameter count.

Without ``--data`` it renders a held-out set first (``clarity-se aec-data --split test``: talkers,
noise segments and measured paths not used by ``--split train``) into
``results/benchmarks/aec_data`` (reused when present). Writes ``results/benchmarks/aec.json``
and prints a Markdown table.

Usage::

    flock /work/wt/cpu.lock nice -n 5 python benchmarks/bench_aec.py --clips 20
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("CLARITY_SE_ORT_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "benchmarks"
METRICS = ("erle_db", "pesq_wb", "si_sdr_db", "aecmos_echo", "aecmos_deg")


def ensure_data(folder: Path, clips: int, seed: int, data_root: str | None) -> Path:
    """Render the held-out benchmark set unless ``folder`` already has ``clips`` clips."""
    from clarity_se.data.aec_challenge import detect_layout, load_aec_dataset
    from clarity_se.data.render.echo import (
        DEFAULT_DATA_ROOT,
        EchoRenderOptions,
        build_aec_dataset,
    )

    if detect_layout(folder) == "synthetic" and len(load_aec_dataset(folder)) >= clips:
        return folder
    build_aec_dataset(folder, n_clips=clips, options=EchoRenderOptions(split="test", seed=seed),
                      data_root=data_root or DEFAULT_DATA_ROOT)
    return folder


def bench_system(name: str, clips, audios) -> dict:
    """Run one system over the clips: per-clip scores and timing."""
    from omegaconf import OmegaConf

    from clarity_se.aec import build_aec
    from clarity_se.aec.config import AECOptions
    from clarity_se.aec.res import build_chain
    from clarity_se.metrics.aec_scores import score_output

    # every aec.* key at its schema default (packaged checkpoints for learned systems);
    # "<canceller>+res_unet@<alpha>" adds the residual-echo suppressor (system_label's names)
    base, _, alpha = name.partition("+res_unet@")
    extra = {"res": "unet", "res_alpha": float(alpha)} if alpha else {}
    options = OmegaConf.merge(OmegaConf.structured(AECOptions), {"name": base, **extra})
    system = build_chain(build_aec(options), options)
    warm = audios[0]
    system(warm.mic[:16000], warm.farend[:16000])  # JIT / session warm-up, not timed
    seconds = wall = audio_s = 0.0
    per_clip = []
    for clip, audio in zip(clips, audios, strict=True):
        t0, c0 = time.perf_counter(), time.process_time()
        out = system(audio.mic, audio.farend).output
        seconds += time.process_time() - c0
        wall += time.perf_counter() - t0
        audio_s += audio.mic.size / 16000
        per_clip.append({"id": clip.id, "talk_type": clip.talk_type,
                         **score_output(audio, out, clip.talk_type)})
    n_params = getattr(system, "n_params", None)
    return {
        "latency_samples": int(system.latency_samples),
        "latency_ms": 1000 * system.latency_samples / 16000,
        "n_params": None if n_params is None else int(n_params),
        "rtf_one_core": seconds / audio_s,
        "rtf_wall": wall / audio_s,
        "ms_per_10ms_frame": 1000 * seconds / (audio_s / 0.01),
        "audio_s": audio_s,
        "clips": per_clip,
    }


def aggregate(per_clip: list[dict]) -> dict:
    """Mean and count of each metric per talk type (empty cells skipped)."""
    out: dict = {}
    for talk in ("st", "dt", "nst"):
        rows = [r for r in per_clip if r["talk_type"] == talk]
        if not rows:
            continue
        out[talk] = {}
        for m in METRICS:
            vals = [r[m] for r in rows if r[m] is not None and math.isfinite(r[m])]
            if vals:
                out[talk][m] = {"mean": float(np.mean(vals)), "n": len(vals)}
    return out


def table(results: dict) -> str:
    """Markdown table: one row per system, metric means per talk type and cost."""
    cols = [("st", "erle_db", "ERLE st"), ("st", "aecmos_echo", "echo MOS st"),
            ("dt", "aecmos_echo", "echo MOS dt"), ("dt", "aecmos_deg", "deg MOS dt"),
            ("dt", "pesq_wb", "PESQ dt"), ("dt", "si_sdr_db", "SI-SDR dt"),
            ("nst", "aecmos_deg", "deg MOS nst")]
    head = ("| system | " + " | ".join(c[2] for c in cols)
            + " | RTF (1 core) | ms / 10 ms | latency ms | params |")
    lines = [head, "|" + "---|" * (len(cols) + 5)]
    for name, res in results.items():
        cells = []
        for talk, metric, _ in cols:
            cell = res["metrics"].get(talk, {}).get(metric)
            cells.append(f"{cell['mean']:.2f}" if cell else "-")
        cost = (["-"] * 4 if name == "input" else
                [f"{res['rtf_one_core']:.3f}", f"{res['ms_per_10ms_frame']:.2f}",
                 f"{res['latency_ms']:.1f}",
                 "-" if res["n_params"] is None else str(res["n_params"])])
        lines.append(f"| {name} | " + " | ".join(cells + cost) + " |")
    return "\n".join(lines)


def main() -> int:
    """Run the benchmark; write ``results/benchmarks/aec.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="AEC Challenge synthetic folder (default: render a held-out set)")
    parser.add_argument("--clips", type=int, default=20, help="clips to render/use (20)")
    parser.add_argument("--seed", type=int, default=0, help="render seed (0)")
    parser.add_argument("--data-root", default=None, help="recordings for the render")
    parser.add_argument("--systems", nargs="*", default=None,
                        help="default: every registered; NAME+res_unet@ALPHA adds the RES U-Net")
    parser.add_argument("--out", type=Path, default=OUT / "aec.json")
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    from clarity_se.aec import aec_names
    from clarity_se.data.aec_challenge import load_aec_dataset, read_clip
    from clarity_se.metrics.aec_scores import score_output

    folder = args.data or ensure_data(OUT / "aec_data", args.clips, args.seed, args.data_root)
    clips = load_aec_dataset(folder)[: args.clips]
    audios = [read_clip(c) for c in clips]
    results: dict = {}
    inputs = [{"id": c.id, "talk_type": c.talk_type, **score_output(a, a.mic, c.talk_type)}
              for c, a in zip(clips, audios, strict=True)]
    results["input"] = {"metrics": aggregate(inputs), "clips": inputs}
    for name in args.systems or aec_names():
        try:
            res = bench_system(name, clips, audios)
        except (ValueError, RuntimeError, OSError) as exc:
            print(f"{name}: skipped ({exc})")
            continue
        res["metrics"] = aggregate(res["clips"])
        results[name] = res
    counts = {t: sum(c.talk_type == t for c in clips) for t in ("st", "dt", "nst")}
    report = {
        "data": str(folder), "n_clips": len(clips), "talk_types": counts,
        "python": platform.python_version(), "machine": platform.machine(),
        "processor": platform.processor(), "threads": 1, "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"{len(clips)} clips ({', '.join(f'{k} {v}' for k, v in counts.items())}) from {folder}")
    print(table(results))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
