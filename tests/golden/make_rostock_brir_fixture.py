"""Early part of the three Rostock KEMAR BRIRs for tests/data/test_randomised.py (run once).

Usage (from the repository root; needs the shared data set)::

    .venv/bin/python tests/golden/make_rostock_brir_fixture.py [--shared /work/shared/data]

Writes ``tests/fixtures/rostock_brir_early.npz``: for each of ``brir_sweep.mat``,
``brir_sweep+40.mat``, ``brir_sweep-40.mat`` the first 3072 samples (70 ms: direct sound and
early reflections) of ``data.ir`` as float32 ``[3072, 2]`` and ``data.apparent_azimuth``
(radians), at 44.1 kHz. The test rebuilds ``.mat`` files of the same struct layout from it.

Source: measured BRIRs, KEMAR 45BA with large ears, University of Rostock,
spatialaudio/communication-acoustics-exercises ``data/brir_sweep*.mat`` (commit 584171182f7d),
CC0 1.0 (courtesy attribution: Exercises for the lecture "Acoustics for Communications",
University of Rostock).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.io import loadmat

OUT = Path(__file__).resolve().parents[1] / "fixtures" / "rostock_brir_early.npz"
N = 3072


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("/work/shared/data"))
    args = parser.parse_args()
    arrays = {}
    for key, name in (("0", "brir_sweep"), ("p40", "brir_sweep+40"), ("m40", "brir_sweep-40")):
        path = args.shared / "rir" / "rostock_kemar_brir" / f"{name}.mat"
        data = loadmat(str(path), struct_as_record=False, squeeze_me=True)["data"]
        arrays[f"ir_{key}"] = np.asarray(data.ir[:N], dtype=np.float32)
        arrays[f"azimuth_{key}"] = np.float64(data.apparent_azimuth)
    np.savez_compressed(OUT, **arrays)
    print(f"{OUT}: {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
