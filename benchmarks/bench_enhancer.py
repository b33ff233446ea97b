"""Real-time factor and memory of the Conv-TasNet enhancer's streaming inference on CPU.

Configurations: the shipped one (``model.*`` of ``recipes/icassp_2023/convtasnet/config.yaml``)
and the paper-size one (Luo & Mesgarani 2019 best causal row: N=512, L=32, B=128, H=512, P=3,
X=8, R=3; at 44.1 kHz). Each runs in its own subprocess (clean peak-RSS figure) with
``torch.set_num_threads(threads)``, on random weights (speed does not depend on them), on
``--seconds`` of 6-channel noise, whole-utterance and streamed in chunks.

RTF = processing time / audio duration (< 1 is faster than real time). ``peak_rss_mb`` is the
subprocess's peak resident memory; ``state_kb`` the streaming state carried between chunks.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_enhancer.py   # -> results/benchmarks/enhancer.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAPER = dict(
    n_filters=512,
    kernel_size=32,
    bn_chan=128,
    hid_chan=512,
    skip_chan=128,
    conv_kernel_size=3,
    n_blocks=8,
    n_repeats=3,
)


def shipped_args() -> dict:
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(REPO / "recipes/icassp_2023/convtasnet/config.yaml")
    args = OmegaConf.to_container(cfg.model)
    args.pop("name")
    return args


def _state_bytes(obj) -> int:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_state_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_state_bytes(v) for v in obj)
    return 0


def run_one(name: str, args: dict, seconds: float, threads: int, chunks_s: list[float]) -> dict:
    import torch

    from clarity_se.models.conv_tasnet import MultichannelConvTasNet, count_parameters
    from clarity_se.models.streaming import StreamingEnhancer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = MultichannelConvTasNet(**args).eval()
    sr = model.sample_rate
    x = torch.randn(1, 6, int(seconds * sr)) * 0.1
    out = {
        "name": name,
        "model_args": model.hparams,
        "parameters": count_parameters(model),
        "latency_ms": 1000 * model.latency_s,
        "audio_s": seconds,
        "threads": threads,
        "rtf": {},
    }
    with torch.inference_mode():
        model(x[..., : sr // 10])  # warm-up
        t0 = time.perf_counter()
        model(x)
        out["rtf"]["whole"] = (time.perf_counter() - t0) / seconds
        for chunk_s in chunks_s:
            chunk = max(1, int(round(chunk_s * sr)))
            stream = StreamingEnhancer(model)
            t0 = time.perf_counter()
            for i in range(0, x.shape[-1], chunk):
                stream.process(x[..., i : i + chunk])
            state = _state_bytes(stream.state) + _state_bytes([stream.in_buf, stream.ola])
            stream.flush()
            out["rtf"][f"chunk_{1000 * chunk_s:g}ms"] = (time.perf_counter() - t0) / seconds
            out["state_kb"] = state / 1024
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chunks-ms", type=float, nargs="+", default=[5.8, 20.0, 100.0])
    parser.add_argument("--output", type=Path, default=REPO / "results/benchmarks/enhancer.json")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    configs = {"shipped": shipped_args(), "paper_size": PAPER}
    chunks_s = [c / 1000 for c in opts.chunks_ms]
    if opts.one:
        print(
            json.dumps(run_one(opts.one, configs[opts.one], opts.seconds, opts.threads, chunks_s))
        )
        return 0
    results = []
    for name in configs:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            name,
            "--seconds",
            str(opts.seconds),
            "--threads",
            str(opts.threads),
            "--chunks-ms",
            *map(str, opts.chunks_ms),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1], indent=1))
    import torch

    report = {
        "benchmark": "enhancer streaming inference (CPU)",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch": torch.__version__,
        },
        "results": results,
    }
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
