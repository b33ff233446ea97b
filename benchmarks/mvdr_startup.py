"""How loud the estimate-driven MVDR beamformer is at the start of a signal, with and without
its start-up loading (``EstimateMVDR(warmup_s=)``).

    python benchmarks/mvdr_startup.py [--roots heldout/freefield_ism ...] [--scenes S06004 ...]
        [--out results/benchmarks/mvdr_startup.json]

The figure is the peak of the output over a signal's first ``--head-ms`` (100 ms) over the peak
of the front microphones (``CH1-L, CH1-R``) in the same span, both ears together: above 1 the
beamformer is louder than what reaches the hearing aid. Two cases, each with the enhancers'
default beamformer options (:data:`~clarity_se.enhancers.beamformed.ENHANCER_DEFAULTS`) and
``warmup_s=0`` (no start-up loading) against the default:

* ``noise``: the signal of ``tests/dsp/test_mvdr.py``'s start-up test (0.5 s of independent
  noise on the six microphones, a quiet, poor estimate), per 10 ms segment too;
* each scene of ``--roots`` (held-out sets of ``clarity-se demo-data``; ``--scenes`` restricts
  them): the shipped Conv-TasNet's own estimate (``residual_source=mixture``,
  ``residual_mix=0``) drives the beamformer on the scene's first second.

Printed and written as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout's package

FS = 44100


def head_ratio(out: np.ndarray, mixture: np.ndarray, n: int) -> float:
    """Peak of ``out [2, T]`` over peak of ``mixture[:2]`` in the first ``n`` samples."""
    return float(np.abs(out[:, :n]).max() / max(np.abs(mixture[:2, :n]).max(), 1e-12))


def noise_case() -> tuple[np.ndarray, np.ndarray]:
    """The start-up test's microphone noise and estimate (``tests/dsp/test_mvdr.py``)."""
    rng = np.random.default_rng(0)
    x = 0.05 * rng.standard_normal((6, FS // 2))
    return x, 1e-3 * x[:2] + 3e-4 * rng.standard_normal((2, FS // 2))


def main(argv: list[str] | None = None) -> int:
    """Measure, print and write the JSON (exit status 0)."""
    from clarity_se.dsp.mvdr import mvdr
    from clarity_se.enhancers.beamformed import ENHANCER_DEFAULTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roots", nargs="*", default=[], help="held-out CEC2-layout folders")
    parser.add_argument("--scenes", nargs="*", default=[], help="only these scene IDs")
    parser.add_argument("--head-ms", type=float, default=100.0)
    parser.add_argument("--out", default=str(REPO / "results/benchmarks/mvdr_startup.json"))
    args = parser.parse_args(argv)
    n = int(args.head_ms * 1e-3 * FS)
    variants = {"no_startup_loading": {**ENHANCER_DEFAULTS, "warmup_s": 0.0},
                "default": dict(ENHANCER_DEFAULTS)}  # fmt: skip
    x, estimate = noise_case()
    seg = FS // 100
    result: dict = {"head_ms": args.head_ms, "noise": {}, "scenes": {}}
    for name, options in variants.items():
        out = mvdr(x, estimate, **options)
        result["noise"][name] = {
            "head_ratio": head_ratio(out, x, n),
            "max_10ms_ratio": max(head_ratio(out[:, i:], x[:, i:], seg)
                                  for i in range(0, x.shape[1] - seg + 1, seg)),
        }  # fmt: skip
    if args.roots:
        from omegaconf import OmegaConf

        from clarity_se.config import EnhancerConfig
        from clarity_se.data.cec2 import CEC2Dataset
        from clarity_se.enhancers import build_enhancer

        network = build_enhancer(OmegaConf.merge(
            OmegaConf.structured(EnhancerConfig(name="convtasnet")),
            {"residual_source": "mixture", "residual_mix": 0.0}))  # fmt: skip
        for root in args.roots:
            dataset = CEC2Dataset(root, "dev")
            for scene in dataset.scenes:
                if args.scenes and scene.scene not in args.scenes:
                    continue
                mixture = dataset.load_mixture(scene.scene).numpy()[:, :FS]
                est = network(mixture)
                result["scenes"][f"{Path(root).name}/{scene.scene}"] = {
                    name: head_ratio(mvdr(mixture, est, **options), mixture, n)
                    for name, options in variants.items()
                }
    text = json.dumps(result, indent=1)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
