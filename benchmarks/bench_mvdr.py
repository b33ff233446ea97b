"""Cost of the estimate-driven MVDR beamformer (``clarity_se/dsp/mvdr.py``) on one CPU thread.

On the same seeded 6-channel noise and two-ear estimate (``--seconds`` at 44.1 kHz), in one
run:

* ``whole``: :func:`~clarity_se.dsp.mvdr.mvdr` on the whole signal, per RTF estimator
  (``column``, the default, and ``whitening``);
* ``blocks``: :class:`~clarity_se.dsp.mvdr.EstimateMVDR` fed one hop (96 samples) of the
  mixture and of the estimate per call, as the enhancers' streamers feed it;
* ``whole.column_wpe16``, ``blocks_wpe16``: the same with the enhancers' defaults
  (:data:`~clarity_se.enhancers.beamformed.ENHANCER_DEFAULTS`: the online WPE of the outputs,
  16 taps per ear, on the bins up to its ``wpe_max_hz``);
* ``whole.column_wpe16_fullband``, ``blocks_wpe16_fullband``: those defaults with the WPE on
  every bin (``wpe_max_hz=0``);
* ``whole.column_wpe16_every4``, ``blocks_wpe16_every4``: those defaults with the WPE's
  recursion updated on every 4th frame (``wpe_update_every=4``);
* ``kernel``: the compiled per-frame recursion alone on the same frames' spectra (the part of
  both that is not framing, FFTs, overlap-add and Python), per frame and as a real-time factor.

Real-time factor = processing time / audio duration; the ratios ``blocks / whole`` and
``kernel / blocks`` are within this run. The first call compiles the kernel (or loads it from
numba's cache) and is not timed.

    OMP_NUM_THREADS=1 python benchmarks/bench_mvdr.py [--seconds 4] [--repeats 3]

Writes ``results/benchmarks/mvdr.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout's package

from clarity_se.dsp import mvdr as mvdr_module  # noqa: E402
from clarity_se.enhancers.beamformed import ENHANCER_DEFAULTS as ENHANCERS  # noqa: E402

FS = 44100


def _best(fn, repeats: int) -> float:
    """Least wall time of ``repeats`` calls, s."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    """Time the beamformer; write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=str(REPO / "results" / "benchmarks" / "mvdr.json"))
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    n = int(args.seconds * FS)
    mixture = (0.1 * rng.standard_normal((6, n))).astype(np.float32)
    estimate = (0.5 * mixture[:2] + 0.02 * rng.standard_normal((2, n))).astype(np.float32)
    mvdr_module.mvdr(mixture[:, :FS // 10], estimate[:, :FS // 10])  # compile / load
    mvdr_module.mvdr(mixture[:, :FS // 10], estimate[:, :FS // 10], rtf="whitening")
    fullband = {**ENHANCERS, "wpe_max_hz": 0.0}
    every4 = {**ENHANCERS, "wpe_update_every": 4}
    mvdr_module.mvdr(mixture[:, :FS // 10], estimate[:, :FS // 10], **ENHANCERS)
    result: dict = {"seconds": args.seconds, "threads": 1, "whole": {}}
    for rtf in mvdr_module.RTF_METHODS:
        t = _best(lambda rtf=rtf: mvdr_module.mvdr(mixture, estimate, rtf=rtf), args.repeats)
        result["whole"][rtf] = {"rtf": t / args.seconds}
    for key, options in (("column_wpe16", ENHANCERS), ("column_wpe16_fullband", fullband),
                         ("column_wpe16_every4", every4)):  # fmt: skip
        t = _best(lambda o=options: mvdr_module.mvdr(mixture, estimate, **o), args.repeats)
        result["whole"][key] = {"rtf": t / args.seconds}

    for key, options in (("blocks", {}), ("blocks_wpe16", ENHANCERS),
                         ("blocks_wpe16_fullband", fullband),
                         ("blocks_wpe16_every4", every4)):  # fmt: skip
        beamformer = mvdr_module.EstimateMVDR(**options)
        hop = beamformer.stft.hop_length

        def blocks(beamformer=beamformer, hop=hop) -> None:
            beamformer.reset()
            for i in range(0, n, hop):
                beamformer.process(mixture[:, i : i + hop], estimate[:, i : i + hop])

        t_blocks = _best(blocks, args.repeats)
        result[key] = {"block_samples": hop, "rtf": t_blocks / args.seconds,
                       "ms_per_block": 1000 * t_blocks / -(-n // hop)}  # fmt: skip
    beamformer = mvdr_module.EstimateMVDR()

    # the kernel alone on the spectra of the same frames (column RTF, as the default)
    beamformer.reset()
    x, _ = beamformer._frames(beamformer.mix_buf, mixture.astype(np.float64))
    s, _ = beamformer._frames(beamformer.est_buf, estimate.astype(np.float64))
    n_frames = min(x.shape[1], s.shape[1])
    x, s = np.ascontiguousarray(x[:, :n_frames]), np.ascontiguousarray(s[:, :n_frames])
    y = np.empty((2, n_frames, x.shape[2]), np.complex128)

    def kernel() -> None:
        beamformer.reset()
        mvdr_module._mvdr_frames(x, x, s, 0, beamformer.phi_s, beamformer.phi_n,
                                 beamformer.forget, beamformer.loading, mvdr_module.EPS, y,
                                 beamformer.v, 0, 0.0, 0, beamformer.warm)  # fmt: skip

    t_kernel = _best(kernel, args.repeats)
    result["kernel"] = {"ms_per_frame": 1000 * t_kernel / n_frames,
                        "rtf": t_kernel / (n_frames * hop / FS)}  # fmt: skip
    whole_rtf, blocks_rtf = result["whole"]["column"]["rtf"], result["blocks"]["rtf"]
    result["ratios"] = {"blocks_over_whole": blocks_rtf / whole_rtf,
                        "kernel_over_blocks": result["kernel"]["rtf"] / blocks_rtf}  # fmt: skip
    result["machine"] = {"platform": platform.platform(), "processor": platform.processor(),
                         "python": platform.python_version()}  # fmt: skip
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
