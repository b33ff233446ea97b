"""The gain an enhancer gives the target talker, measured on held-out scenes.

    python benchmarks/target_gain.py --roots heldout/sphere_ism heldout/freefield_ism \
        --set checkpoint=my_crced.pt --out results/benchmarks/target_gain.json

For every scene whose target is in front (``target_in_front`` in the scene metadata; every
scene of a CEC2 set) the enhancer runs on the six microphones and, per ear, the output ``y`` is
projected on the target at the front microphone ``t`` (``<scene>_target_CH1.wav``, the
reverberant target as it is in the mixture, with unit gain there): ``a = <y, t> / <t, t>``,
after aligning ``y`` to ``t`` by the lag in ``0 .. 2 x latency`` samples that maximises
``<y, t>``. ``20 log10 a`` is the target's gain through the enhancer, dB (0 for the
pass-through). A model trained with a scale-invariant loss (SI-SDR) leaves this gain
unconstrained; the median over scenes and ears is the make-up gain that restores it to 0 dB
(``clarity-se set-args CKPT OUT output_gain_db=G`` for ``crced``). Writes the per-ear gains and
their median and quartiles to ``--out`` (JSON) and prints the median.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from tqdm import tqdm

from clarity_se.config import EnhancerConfig
from clarity_se.data.audio_io import read_audio
from clarity_se.data.cec2 import CEC2Dataset
from clarity_se.enhancers import build_enhancer


def target_gain_db(output: np.ndarray, target: np.ndarray, max_lag: int) -> list[float]:
    """Per-ear gain of the target in ``output`` ``[2, time]`` against ``target`` ``[2, time]``
    (dB), each ear aligned by the lag in ``0 .. max_lag`` samples that maximises their inner
    product."""
    n = min(output.shape[1], target.shape[1])
    gains = []
    for y, t in zip(output[:, :n].astype(np.float64), target[:, :n].astype(np.float64),
                    strict=True):  # fmt: skip
        lag = max(range(max_lag + 1), key=lambda k: float(np.dot(y[k:], t[: n - k])))
        a = float(np.dot(y[lag:], t[: n - lag]) / np.dot(t[: n - lag], t[: n - lag]))
        gains.append(20 * np.log10(max(a, 1e-6)))
    return gains


def main(argv: list[str] | None = None) -> int:
    """Measure and write the target gains (exit status 0)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--roots", nargs="+", required=True, help="CEC2-layout folders")
    parser.add_argument("--enhancer", default="crced", help="enhancer.name (crced)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="enhancer.* options, e.g. checkpoint=my_crced.pt")
    parser.add_argument("--out", default="results/benchmarks/target_gain.json")
    args = parser.parse_args(argv)
    options = OmegaConf.merge(
        OmegaConf.structured(EnhancerConfig(name=args.enhancer)), OmegaConf.from_dotlist(args.set)
    )
    enhancer = build_enhancer(options)
    per_scene: dict[str, list[float]] = {}
    for root in args.roots:
        dataset = CEC2Dataset(root, "dev")
        scenes = [s for s in dataset.scenes if s.extra.get("target_in_front", True)]
        for scene in tqdm(scenes, desc=Path(root).name):
            mixture = dataset.load_mixture(scene.scene).numpy()
            target, _ = read_audio(dataset.target_path(scene.scene, 1))
            per_scene[f"{Path(root).name}/{scene.scene}"] = target_gain_db(
                enhancer(mixture), np.asarray(target).T, 2 * enhancer.latency_samples)
    gains = np.concatenate(list(per_scene.values()))
    q1, median, q3 = (float(v) for v in np.percentile(gains, [25, 50, 75]))
    result = {"enhancer": args.enhancer, "options": args.set, "roots": args.roots,
              "median_db": median, "quartiles_db": [q1, q3], "per_scene_db": per_scene}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"target gain: median {median:+.2f} dB (quartiles {q1:+.2f}, {q3:+.2f}) over "
          f"{len(gains)} ears of {len(per_scene)} scenes -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
