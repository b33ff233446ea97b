"""The gain an enhancer gives the target talker, measured on held-out scenes.

    python benchmarks/target_gain.py --roots heldout/sphere_ism heldout/freefield_ism \
        --set checkpoint=my_crced.pt --out results/benchmarks/target_gain.json

For every scene whose target is in front (``target_in_front`` in the scene metadata; every
scene of a CEC2 set; ``--scene-type`` below for the others) the enhancer runs on the six
microphones and, per ear, the output ``y`` is projected on the target at the front microphone
``t`` (``<scene>_target_CH1.wav``, the reverberant target as it is in the mixture, with unit
gain there): ``a = <y, t> / <t, t>``,
after aligning ``y`` to ``t`` by the lag in ``0 .. 2 x latency`` samples that maximises
``<y, t>``. ``20 log10 a`` is the target's gain through the enhancer, dB (0 for the
pass-through). A model trained with a scale-invariant loss (SI-SDR) leaves this gain
unconstrained; the median over scenes and ears is the make-up gain that restores it to 0 dB
(``clarity-se set-args CKPT OUT output_gain_db=G`` for ``crced``). Writes the per-ear gains and
their median and quartiles to ``--out`` (JSON) and prints the median.

With ``--interferer`` the output is fitted by least squares on the target and the interferers
at the front microphone together (``<scene>_interferer_CH1.wav``), at the same lag:
``y ~ a t + b i``; ``20 log10 a`` and ``20 log10 b`` are the target's and the interferers' gains
(their difference is the enhancer's SNR gain at the front microphones) and ``--out`` gets both.
``--scenes S06015 ...`` restricts the run to those scenes; ``--scene-type side`` (or ``all``)
takes the scenes whose target is not in front (or every scene) instead of the front ones, e.g.
to see whether an enhancer keeps a talker to the side or the interferers in front:

    python benchmarks/target_gain.py --roots heldout/sphere_ism --enhancer convtasnet \
        --set residual_source=mixture residual_mix=0 --interferer --scene-type side
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


def best_lag(y: np.ndarray, t: np.ndarray, max_lag: int) -> int:
    """The lag in ``0 .. max_lag`` samples by which ``y`` best matches ``t`` (largest
    ``<y[k:], t[:n - k]>``)."""
    n = min(y.size, t.size)
    return max(range(max_lag + 1), key=lambda k: float(np.dot(y[k:n], t[: n - k])))


def target_gain_db(output: np.ndarray, target: np.ndarray, max_lag: int) -> list[float]:
    """Per-ear gain of the target in ``output`` ``[2, time]`` against ``target`` ``[2, time]``
    (dB), each ear aligned by the lag in ``0 .. max_lag`` samples that maximises their inner
    product."""
    n = min(output.shape[1], target.shape[1])
    gains = []
    for y, t in zip(output[:, :n].astype(np.float64), target[:, :n].astype(np.float64),
                    strict=True):  # fmt: skip
        lag = best_lag(y, t, max_lag)
        a = float(np.dot(y[lag:], t[: n - lag]) / np.dot(t[: n - lag], t[: n - lag]))
        gains.append(20 * np.log10(max(a, 1e-6)))
    return gains


def source_gains_db(
    output: np.ndarray, target: np.ndarray, interferer: np.ndarray, max_lag: int
) -> list[tuple[float, float]]:
    """Per-ear (target, interferer) gains (dB) of ``output`` ``[2, time]``: least squares
    ``y ~ a t + b i`` at the lag in ``0 .. max_lag`` that maximises ``<y, t>``."""
    n = min(output.shape[1], target.shape[1], interferer.shape[1])
    out = []
    for y, t, i in zip(output[:, :n].astype(np.float64), target[:, :n].astype(np.float64),
                       interferer[:, :n].astype(np.float64), strict=True):  # fmt: skip
        lag = best_lag(y, t, max_lag)
        basis = np.stack([t[: n - lag], i[: n - lag]], axis=1)
        (a, b), *_ = np.linalg.lstsq(basis, y[lag:], rcond=None)
        out.append((20 * np.log10(max(abs(a), 1e-6)), 20 * np.log10(max(abs(b), 1e-6))))
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure and write the target gains (exit status 0)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--roots", nargs="+", required=True, help="CEC2-layout folders")
    parser.add_argument("--enhancer", default="crced", help="enhancer.name (crced)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="enhancer.* options, e.g. checkpoint=my_crced.pt")
    parser.add_argument("--out", default="results/benchmarks/target_gain.json")
    parser.add_argument("--interferer", action="store_true",
                        help="also the interferers' gain (joint least squares)")
    parser.add_argument("--scenes", nargs="*", default=[], help="only these scene IDs")
    parser.add_argument("--scene-type", choices=("front", "side", "all"), default="front",
                        help="scenes whose target is in front (default), not, or all")
    args = parser.parse_args(argv)
    options = OmegaConf.merge(
        OmegaConf.structured(EnhancerConfig(name=args.enhancer)), OmegaConf.from_dotlist(args.set)
    )
    enhancer = build_enhancer(options)
    per_scene: dict[str, list[float]] = {}
    interferer_per_scene: dict[str, list[float]] = {}
    for root in args.roots:
        dataset = CEC2Dataset(root, "dev")
        wanted = {"front": (True,), "side": (False,), "all": (True, False)}[args.scene_type]
        scenes = [s for s in dataset.scenes if s.extra.get("target_in_front", True) in wanted
                  and (not args.scenes or s.scene in args.scenes)]  # fmt: skip
        for scene in tqdm(scenes, desc=Path(root).name):
            key = f"{Path(root).name}/{scene.scene}"
            mixture = dataset.load_mixture(scene.scene).numpy()
            target, _ = read_audio(dataset.target_path(scene.scene, 1))
            output, max_lag = enhancer(mixture), 2 * enhancer.latency_samples
            if args.interferer:
                interferer, _ = read_audio(dataset.interferer_path(scene.scene, 1))
                pairs = source_gains_db(output, np.asarray(target).T, np.asarray(interferer).T,
                                        max_lag)  # fmt: skip
                per_scene[key] = [a for a, _ in pairs]
                interferer_per_scene[key] = [b for _, b in pairs]
            else:
                per_scene[key] = target_gain_db(output, np.asarray(target).T, max_lag)
    if not per_scene:
        parser.error(f"no scene of type {args.scene_type} (or none of --scenes) in --roots")
    gains = np.concatenate(list(per_scene.values()))
    q1, median, q3 = (float(v) for v in np.percentile(gains, [25, 50, 75]))
    result = {"enhancer": args.enhancer, "options": args.set, "roots": args.roots,
              "scene_type": args.scene_type,
              "median_db": median, "quartiles_db": [q1, q3], "per_scene_db": per_scene}
    if args.interferer:
        result["interferer_per_scene_db"] = interferer_per_scene
        result["interferer_median_db"] = float(
            np.median(np.concatenate(list(interferer_per_scene.values())))
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"target gain: median {median:+.2f} dB (quartiles {q1:+.2f}, {q3:+.2f}) over "
          f"{len(gains)} ears of {len(per_scene)} scenes -> {args.out}")
    if args.interferer:
        print(f"interferer gain: median {result['interferer_median_db']:+.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
