"""Generate the HASQI v2 golden fixtures with pyclarity 0.9.0 (the test-time oracle).

Run with the pyclarity venv, from the repository root::

    /work/tools/pyclarity-venv/bin/python tests/golden/make_hasqi_golden.py

Writes
- ``tests/fixtures/hasqi_backend_<case>.npz``: outputs of each quality back-end function of
  ``clarity/evaluator/haspi/eb.py`` (env_smooth, mel_cepstrum_correlation, melcor9,
  spectrum_diff, bm_covary, ave_covary2) on the synthetic ear-model outputs of
  ``hasqi_inputs.backend_inputs`` (rebuilt by the tests from the same seed);
- ``tests/fixtures/hasqi_metric.json``: ``hasqi_v2`` (combined, nonlinear, linear, raw) for
  every ``hasqi_inputs.METRIC_CASES`` case and ``hasqi_v2_better_ear`` for
  ``BETTER_EAR_CASES``, on real recordings, each after ``np.random.seed(case seed)``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from clarity.evaluator.haspi import eb
from clarity.evaluator.hasqi import hasqi_v2, hasqi_v2_better_ear
from clarity.utils.audiogram import Audiogram, Listener

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import hasqi_inputs as hi  # noqa: E402

FIXTURES = HERE.parent / "fixtures"
FS = 24000


def backend(case: dict) -> None:
    inp = hi.backend_inputs(case["seed"], silent=case["silent"])
    out: dict[str, np.ndarray] = {}
    ref_s = eb.env_smooth(inp["reference_db"], 16, FS)
    proc_s = eb.env_smooth(inp["processed_db"], 16, FS)
    out["smooth16_ref"] = ref_s
    out["smooth16_proc"] = proc_s
    out["smooth8_ref"] = eb.env_smooth(inp["reference_db"], 8, FS)
    np.random.seed(case["seed"])
    avg, ind = eb.mel_cepstrum_correlation(ref_s, proc_s, 2.5, case["add_noise"])
    out["melcep_average"] = np.asarray(avg, dtype=np.float64)
    out["melcep_individual"] = ind
    out["melcep_next_draw"] = np.random.standard_normal(3)  # stream position after the call
    ref8 = out["smooth8_ref"]
    proc8 = eb.env_smooth(inp["processed_db"], 8, FS)
    np.random.seed(case["seed"] + 1)
    m_avg, m_low, m_high, m_mod = eb.melcor9(ref8, proc8, 2.5, case["add_noise"], 8)
    out["melcor9"] = np.array([m_avg, m_low, m_high], dtype=np.float64)
    out["melcor9_modulation"] = np.asarray(m_mod, dtype=np.float64)
    out["melcor9_next_draw"] = np.random.standard_normal(3)
    dl, dn, ds = eb.spectrum_diff(inp["reference_sl"].copy(), inp["processed_sl"].copy())
    out["spectrum_diff"] = np.stack([dl, dn, ds])
    cov, rms_, pms = eb.bm_covary(inp["reference_bm"], inp["processed_bm"], 16, FS)
    out["bm_cov"] = cov
    out["bm_ref_ms"] = rms_
    out["bm_proc_ms"] = pms
    ave, sync = eb.ave_covary2(cov, rms_, 2.5)
    out["ave_covary2"] = np.concatenate([[ave], sync]).astype(np.float64)
    path = FIXTURES / f"hasqi_backend_{case['name']}.npz"
    np.savez_compressed(path, **out)
    print(f"{path.name}: {path.stat().st_size / 1024:.1f} kB")


def _audiogram(name: str) -> Audiogram:
    f, lv = hi.audiogram_arrays(name)
    return Audiogram(levels=lv, frequencies=f)


def metric() -> None:
    results: dict[str, dict] = {"cases": {}, "better_ear": {}}
    for case in hi.METRIC_CASES:
        ref, proc, fs = hi.make_pair(case)
        np.random.seed(case["seed"])
        t0 = time.time()
        combined, nonlin, linear, raw = hasqi_v2(
            ref, fs, proc, fs, _audiogram(case["audiogram"]),
            equalisation=case["equalisation"], level1=case["level_db_spl"],
        )
        results["cases"][case["name"]] = {
            "combined": float(combined), "nonlinear": float(nonlin), "linear": float(linear),
            "raw": [float(r) for r in raw], "next_draw": np.random.standard_normal(3).tolist(),
        }
        print(f"{case['name']}: {float(combined):.6f}  ({time.time() - t0:.1f} s)")
    for case in hi.BETTER_EAR_CASES:
        ref_l, proc_l, fs = hi.make_pair(case)
        right = dict(case, snr_db=case["snr_db"] + 6)
        ref_r, proc_r, _ = hi.make_pair(right)
        listener = Listener(audiogram_left=_audiogram(case["left"]),
                            audiogram_right=_audiogram(case["right"]), id=case["name"])
        np.random.seed(case["seed"])
        score = hasqi_v2_better_ear(ref_l, ref_r, proc_l, proc_r, fs, listener)
        np.random.seed(case["seed"])
        left = hasqi_v2(ref_l, fs, proc_l, fs, listener.audiogram_left, level1=100.0)[0]
        right_s = hasqi_v2(ref_r, fs, proc_r, fs, listener.audiogram_right, level1=100.0)[0]
        results["better_ear"][case["name"]] = {
            "score": float(score), "left": float(left), "right": float(right_s)}
        print(f"{case['name']}: {float(score):.6f} (L {left:.6f}, R {right_s:.6f})")
    path = FIXTURES / "hasqi_metric.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"{path.name}: {path.stat().st_size / 1024:.1f} kB")


if __name__ == "__main__":
    FIXTURES.mkdir(parents=True, exist_ok=True)
    which = sys.argv[1:] or ["backend", "metric"]
    if "backend" in which:
        for c in hi.BACKEND_CASES:
            backend(c)
    if "metric" in which:
        metric()
