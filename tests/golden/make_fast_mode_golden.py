"""Generate the ``fast``-mode golden fixture: pyclarity 0.9.0 scores over 5 seeds per pair.

Run with the pyclarity venv (never imported by ``clarity_se``)::

    OMP_NUM_THREADS=1 /work/tools/pyclarity-venv/bin/python tests/golden/make_fast_mode_golden.py

For a subset of the HASPI whole-metric cases (``haspi_whole.json``: binaural speech mixes from
the stored clips ``haspi_clips_*.npz``, the case audiograms and level), the official recipe's
per-pair sequence -- ``haspi_v2_be`` then ``hasqi_v2_better_ear`` after one
``np.random.seed(seed)`` -- is run for 5 seeds.  The spread of these scores over seeds is
pyclarity's own random-noise uncertainty; ``tests/metrics/test_fast_mode.py`` checks that our
``fast`` mode (float32, torch-generator noise) lies within 3x that spread (at least 1e-3) of
pyclarity.

Writes ``tests/fixtures/fast_mode_golden.json`` (a few kB).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from clarity.evaluator.haspi import haspi_v2, haspi_v2_be
from clarity.evaluator.hasqi import hasqi_v2, hasqi_v2_better_ear
from clarity.utils.audiogram import Audiogram, Listener

sys.path.insert(0, str(Path(__file__).resolve().parent))
import haspi_inputs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "fixtures"
CASE_IDS = ["c01", "c03", "c05", "c08", "c10", "c13", "c17", "c20"]
SEED_OFFSETS = [0, 1, 2, 3, 4]  # seed = case seed + offset; offset 0 is the case's own seed


clips = haspi_inputs.clips
mix = haspi_inputs.mix


def main() -> None:
    whole = json.loads((FIX / "haspi_whole.json").read_text())
    by_id = {c["id"]: c for c in whole["cases"]}
    out = {
        "generator": "tests/golden/make_fast_mode_golden.py",
        "pyclarity": "0.9.0",
        "source_cases": "haspi_whole.json",
        "seed_offsets": SEED_OFFSETS,
        "cases": [],
    }
    t0 = time.time()
    for cid in CASE_IDS:
        case = by_id[cid]
        s = mix(clips(case["sample_rate"]), case)
        f = np.array(case["audiogram_frequencies"])
        al = Audiogram(levels=np.array(case["audiogram_left"], float), frequencies=f)
        ar = Audiogram(levels=np.array(case["audiogram_right"], float), frequencies=f)
        listener = Listener(audiogram_left=al, audiogram_right=ar, id="L")
        lvl = case["level_db_spl"]
        fs = case["sample_rate"]
        rec = {"id": cid, "haspi_left": [], "haspi_right": [], "hasqi_left": [],
               "hasqi_right": []}
        for off in SEED_OFFSETS:
            # the recipe's per-pair order: haspi_v2_be (left, right), hasqi_v2_better_ear
            np.random.seed(case["seed"] + off)
            hl, _ = haspi_v2(s["reference_left"], fs, s["processed_left"], fs, al, lvl)
            hr, _ = haspi_v2(s["reference_right"], fs, s["processed_right"], fs, ar, lvl)
            ql, _, _, _ = hasqi_v2(s["reference_left"], fs, s["processed_left"], fs, al,
                                   equalisation=1, level1=lvl)
            qr, _, _, _ = hasqi_v2(s["reference_right"], fs, s["processed_right"], fs, ar,
                                   equalisation=1, level1=lvl)
            if off == 0:  # the unrolled sequence equals the better-ear wrappers
                np.random.seed(case["seed"])
                be = haspi_v2_be(s["reference_left"], s["reference_right"],
                                 s["processed_left"], s["processed_right"], fs, listener, lvl)
                qbe = hasqi_v2_better_ear(s["reference_left"], s["reference_right"],
                                          s["processed_left"], s["processed_right"], fs,
                                          listener, lvl)
                assert be == max(hl, hr) and qbe == max(ql, qr), (be, hl, hr, qbe, ql, qr)
            for k, v in (("haspi_left", hl), ("haspi_right", hr), ("hasqi_left", ql),
                         ("hasqi_right", qr)):
                rec[k].append(float(v))
        out["cases"].append(rec)
        print(cid, {k: np.round(v, 4).tolist() for k, v in rec.items() if k != "id"},
              f"{time.time() - t0:.0f}s", flush=True)
    (FIX / "fast_mode_golden.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
