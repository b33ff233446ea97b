"""Which frequency region of an output costs HASPI? Two systems' outputs crossed over in frequency.

    python benchmarks/haspi_crossover.py --root heldout/sphere_ism --scene S06015 \
        --enhancer dtln --set-a checkpoint=clarity_se/assets/checkpoints/dtln.pt \
        --set-b checkpoint=my_dtln.pt --crossover 750 1500 3000 --out haspi_crossover.json

Runs the enhancer twice on one scene's six microphones (``--set-a`` and ``--set-b``: the
``enhancer.*`` options of systems A and B), and builds, for every crossover frequency ``f``,
two hybrids: ``A<f+B`` (A's output below ``f``, B's at and above it) and ``B<f+A``. Each output
and hybrid is amplified with the recipe's hearing aid (NAL-R, compressor, soft clip;
:func:`clarity_se.amplification.hearing_aid.amplify` with its defaults) for every listener of
the scene and scored with HASPI v2 per ear against the official reference, with the official
random draws (as ``clarity-se evaluate``). When A and B differ in score, the crossover at which
a hybrid takes on B's score tells in which region the difference lies. Beside HASPI, each row
gives the training proxy of :mod:`clarity_se.losses.envelope` (the correlation of the slow log
1/3-octave band envelopes of the output, before the hearing aid, and the reference) per ear, to
compare the two rankings.

The amplified outputs stay in float64 in memory (``clarity-se evaluate`` reads them back from
float32 files). The split is a brick wall on the FFT of the whole output (zero phase, not causal): a
diagnostic, not a filter a hearing aid could run. Prints one line per listener and output;
writes the rows to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from clarity_se.amplification.hearing_aid import amplify
from clarity_se.config import EnhancerConfig
from clarity_se.data.cec2 import CEC2Dataset
from clarity_se.enhancers import build_enhancer
from clarity_se.losses.envelope import EnvelopeCorrelation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from haspi_features import haspi_pair, scene_reference  # noqa: E402


def crossover(low: np.ndarray, high: np.ndarray, frequency_hz: float,
              sample_rate: float) -> np.ndarray:  # fmt: skip
    """``low``'s content below ``frequency_hz`` and ``high``'s at and above it.

    Parameters
    ----------
    low, high : ndarray [shape=(channels, time)], same shape
    frequency_hz : float
        Crossover frequency (Hz), in ``(0, sample_rate / 2]``.
    sample_rate : float
        Sampling rate (Hz).

    Returns
    -------
    ndarray [shape=(channels, time)], float64
        Inverse real FFT of the spliced spectra (a zero-phase brick wall over the whole signal).

    Raises
    ------
    ValueError
        If the shapes differ or the frequency is outside ``(0, sample_rate / 2]``.
    """
    if low.shape != high.shape:
        raise ValueError(f"crossover: shapes differ, {low.shape} and {high.shape}")
    if not 0 < frequency_hz <= sample_rate / 2:
        raise ValueError(f"crossover: frequency {frequency_hz} Hz outside (0, {sample_rate / 2}]")
    n = low.shape[-1]
    below = np.fft.rfftfreq(n, 1.0 / sample_rate) < frequency_hz
    spectrum = np.where(below, np.fft.rfft(low, axis=-1), np.fft.rfft(high, axis=-1))
    return np.fft.irfft(spectrum, n=n, axis=-1)


def pair_haspi(reference: np.ndarray, output: np.ndarray, listener, scene: str,
               sample_rate: float) -> dict:  # fmt: skip
    """HASPI v2 per ear and better ear of ``output`` ``[2, time]`` through the recipe's hearing
    aid for ``listener``, against ``reference`` ``[time, 2]`` (official draws of ``scene``;
    ``sample_rate`` in Hz)."""
    amplified, _ = amplify(output.T, listener)
    result = haspi_pair(reference, amplified, listener, scene, int(sample_rate))
    return {"left": float(result.left.score[0]), "right": float(result.right.score[0]),
            "better": float(result.score[0])}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Score A, B and their hybrids for every listener of the scene (exit status 0)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="CEC2-layout folder (dev split)")
    parser.add_argument("--scene", required=True)
    parser.add_argument("--enhancer", default="dtln", help="enhancer.name (dtln)")
    parser.add_argument("--set-a", nargs="*", default=[], metavar="KEY=VALUE",
                        help="enhancer.* options of system A")
    parser.add_argument("--set-b", nargs="*", default=[], metavar="KEY=VALUE",
                        help="enhancer.* options of system B")
    parser.add_argument("--crossover", nargs="+", type=float, default=[750.0, 1500.0, 3000.0],
                        metavar="HZ")
    parser.add_argument("--listeners", nargs="*", default=[], help="only these listener IDs")
    parser.add_argument("--out", default="results/benchmarks/haspi_crossover.json")
    args = parser.parse_args(argv)
    dataset = CEC2Dataset(args.root, "dev")
    listeners = [name for name in dataset.scenes_listeners.get(args.scene, [])
                 if not args.listeners or name in args.listeners]  # fmt: skip
    if not listeners:
        parser.error(f"{dataset.scenes_listeners_file}: no (chosen) listeners for scene "
                     f"{args.scene!r}")  # fmt: skip
    mixture = dataset.load_mixture(args.scene).numpy()
    reference = scene_reference(dataset, args.scene)
    base = OmegaConf.structured(EnhancerConfig(name=args.enhancer))
    outputs = {}
    for name, options in (("A", args.set_a), ("B", args.set_b)):
        enhancer = build_enhancer(OmegaConf.merge(base, OmegaConf.from_dotlist(options)))
        outputs[name] = np.asarray(enhancer(mixture), dtype=np.float64)
    for f in args.crossover:
        outputs[f"A<{f:g}+B"] = crossover(outputs["A"], outputs["B"], f, dataset.sample_rate)
        outputs[f"B<{f:g}+A"] = crossover(outputs["B"], outputs["A"], f, dataset.sample_rate)
    envelope = EnvelopeCorrelation(int(dataset.sample_rate))
    n = min(reference.shape[0], mixture.shape[-1])
    ref_t = torch.as_tensor(reference[:n].T.copy(), dtype=torch.float32)
    proxy = {name: envelope(torch.as_tensor(out[:, :n], dtype=torch.float32), ref_t).tolist()
             for name, out in outputs.items()}  # fmt: skip
    rows = []
    for listener in listeners:
        for name, output in outputs.items():
            scores = pair_haspi(reference, output, dataset.listener(listener), args.scene,
                                dataset.sample_rate)
            rows.append({"listener": listener, "output": name, **scores,
                         "envelope_left": proxy[name][0], "envelope_right": proxy[name][1]})
            print(f"{listener} {name:>14s} HASPI left {scores['left']:.3f} right "
                  f"{scores['right']:.3f} better {scores['better']:.3f}  envelope "
                  f"{proxy[name][0]:.3f} {proxy[name][1]:.3f}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(
        {"root": args.root, "scene": args.scene, "enhancer": args.enhancer, "set_a": args.set_a,
         "set_b": args.set_b, "rows": rows}, indent=1), encoding="utf-8")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
