"""benchmarks/aec_paired.py: paired per-clip differences of two echo-track runs."""

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

_spec = importlib.util.spec_from_file_location("aec_paired", REPO / "benchmarks" / "aec_paired.py")
aec_paired = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(aec_paired)


def _scores(pesq, erle):
    n = len(pesq)
    return pd.DataFrame({"id": [f"fileid_{i}" for i in range(n)], "talk_type": ["dt"] * (n - 1)
                         + ["st"], "pesq_wb": pesq, "erle_db": erle})


def test_mean_interval_and_count():
    base = _scores([1.0, 1.2, 1.4, 1.1, np.nan], [np.nan] * 4 + [20.0])
    new = _scores([1.1, 1.3, 1.4, 1.4, np.nan], [np.nan] * 4 + [np.inf])
    rows = aec_paired.paired_differences(base, new, metrics=("pesq_wb", "erle_db"))
    assert [(r["talk_type"], r["metric"]) for r in rows] == [("dt", "pesq_wb")]  # inf ERLE out
    r = rows[0]
    diff = np.array([0.1, 0.1, 0.0, 0.3])
    half = 3.182446305284263 * diff.std(ddof=1) / 2  # t(0.975, 3) * s / sqrt(4)
    assert r["n"] == 4 and r["better"] == 3
    assert r["mean"] == pytest.approx(diff.mean())
    assert (r["low"], r["high"]) == pytest.approx((diff.mean() - half, diff.mean() + half))


def test_cli_and_errors(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _scores([1.0, 1.2, np.nan], [np.nan, np.nan, 30.0]).to_csv(a, index=False)
    _scores([1.2, 1.1, np.nan], [np.nan, np.nan, 35.0]).to_csv(b, index=False)
    out = tmp_path / "p.json"
    assert aec_paired.main([str(a), str(b), "--metrics", "pesq_wb", "erle_db",
                            "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert {(r["talk_type"], r["metric"], r["n"]) for r in rows} == {
        ("dt", "pesq_wb", 2), ("st", "erle_db", 1)}
    assert np.isnan([r["low"] for r in rows if r["n"] == 1][0])
    assert aec_paired.main([str(a), str(b), "--metrics", "aecmos_echo"]) == 2  # no such column
    assert aec_paired.main([str(a), str(tmp_path / "missing.csv")]) == 2
