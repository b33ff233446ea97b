"""HASPI v2 of one scene's hearing-aid outputs, with the modulation-band features behind it.

    python benchmarks/haspi_features.py --root heldout/sphere_ism --scene S06015 \
        --outputs pass=heldout/sphere_ism/exp_passthrough/amplified_signals \
                  dtln=heldout/sphere_ism/exp_dtln/amplified_signals --out haspi_S06015.json

For each listener of the scene (``scenes_listeners.dev.json``) and each named folder of
hearing-aid outputs (``<scene>_<listener>_HA-output.wav``, the files ``clarity-se evaluate``
reads), HASPI v2 of each ear against the official reference (the anechoic target rescaled to
``target_CH1``'s RMS, 100 dB SPL at RMS 1) with the official random draws
(``evaluate.rng=compat``), and its 10 raw features: the cross-correlations of the reference's
and the processed signal's envelope modulations in HASPI v2's 10 modulation bands (Kates and
Arehart 2021, Speech Communication 131, section 2), which its neural-network ensemble maps to
the score. A large score change from small feature changes means the pair sits on the steep
part of that mapping. Prints one line per listener, folder and ear; writes them to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from clarity_se.data.audio_io import read_audio
from clarity_se.data.cec2 import CEC2Dataset
from clarity_se.metrics.haspi import haspi_v2_better_ear
from clarity_se.metrics.scene import make_reference
from clarity_se.random import PairRandom, scene_seed


def scene_reference(dataset: CEC2Dataset, scene: str) -> np.ndarray:
    """The official reference of a scene, ``[time, 2]``, read as the evaluate stage reads it."""
    anechoic = dataset.load_target_anechoic(scene, dtype=torch.float64).numpy().T
    target = dataset.load_target(scene, dtype=torch.float64).numpy().T
    return make_reference(anechoic, target)


def haspi_pair(reference: np.ndarray, amplified: np.ndarray, listener, scene: str,
               sample_rate: int):  # fmt: skip
    """Better-ear HASPI v2 of one hearing-aid output ``amplified`` ``[time, 2]`` against
    ``reference`` ``[time, 2]`` for ``listener``, as ``clarity-se evaluate`` scores it (float64,
    100 dB SPL at RMS 1, the official random draws of ``scene``; ``sample_rate`` in Hz);
    returns :func:`~clarity_se.metrics.haspi.haspi_v2_better_ear`'s result."""
    ref = torch.as_tensor(reference[None], dtype=torch.float64)
    out = torch.as_tensor(amplified[None], dtype=torch.float64)
    return haspi_v2_better_ear(
        reference_left=ref[..., 0], reference_right=ref[..., 1],
        processed_left=out[..., 0], processed_right=out[..., 1], sample_rate=sample_rate,
        listener=[listener], level_db_spl=100.0, rng=PairRandom.compat([scene_seed(scene)]),
    )  # fmt: skip


def pair_features(
    dataset: CEC2Dataset, reference: np.ndarray, scene: str, listener: str, folder: Path
) -> dict:
    """HASPI v2 per ear and its raw features for one pair.

    Parameters
    ----------
    dataset : CEC2Dataset
        The scenes and listeners (dev split).
    reference : ndarray [shape=(time, 2)]
        :func:`scene_reference` of ``scene``.
    scene, listener : str
        IDs, e.g. ``S06015``, ``L0001``.
    folder : Path
        Holds ``<scene>_<listener>_HA-output.wav`` (int16 stereo, 44.1 kHz).

    Returns
    -------
    dict
        ``{"left": {"haspi": float, "raw": [10 floats]}, "right": {...}}``.

    Raises
    ------
    ValueError
        A missing or unreadable file (named) or an unknown listener.
    """
    amplified, fs = read_audio(folder / f"{scene}_{listener}_HA-output.wav")
    result = haspi_pair(reference, amplified, dataset.listener(listener), scene, int(fs))
    return {
        ear: {"haspi": float(getattr(result, ear).score[0]),
              "raw": [float(v) for v in getattr(result, ear).raw[0]]}
        for ear in ("left", "right")
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Score the scene's pairs for every folder (exit status 0)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="CEC2-layout folder (dev split)")
    parser.add_argument("--scene", required=True)
    parser.add_argument("--outputs", nargs="+", required=True, metavar="NAME=FOLDER",
                        help="folders of <scene>_<listener>_HA-output.wav")
    parser.add_argument("--out", default="results/benchmarks/haspi_features.json")
    args = parser.parse_args(argv)
    folders = {}
    for item in args.outputs:
        name, sep, folder = item.partition("=")
        if not sep:
            parser.error(f"--outputs: expected NAME=FOLDER, got {item!r}")
        folders[name] = Path(folder)
    dataset = CEC2Dataset(args.root, "dev")
    pairs = dataset.scenes_listeners.get(args.scene)
    if not pairs:
        parser.error(f"{dataset.scenes_listeners_file}: no listeners for scene {args.scene!r}")
    reference = scene_reference(dataset, args.scene)
    rows = []
    for listener in pairs:
        for name, folder in folders.items():
            features = pair_features(dataset, reference, args.scene, listener, folder)
            for ear, v in features.items():
                rows.append({"listener": listener, "output": name, "ear": ear, **v})
                print(f"{listener} {name:>12s} {ear:5s} HASPI {v['haspi']:.3f}  raw "
                      + " ".join(f"{x:.3f}" for x in v["raw"]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"root": args.root, "scene": args.scene,
                                          "rows": rows}, indent=1), encoding="utf-8")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
