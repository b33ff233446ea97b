"""benchmarks/leave_one_out_table.py: the leave-one-acoustic-model-out and uPIT tables."""

import json
import subprocess
import sys

from conftest import REPO

SCRIPT = REPO / "benchmarks" / "leave_one_out_table.py"


def _entry(sdr: float, combined: float) -> dict:
    def stat(v):
        return {"mean": v, "ci_low": v - 0.01, "ci_high": v + 0.01, "n": 3}

    group = {
        "scenes": 2,
        "si_sdr_anechoic_improvement_db": stat(sdr),
        "si_sdr_target_CH1_improvement_db": stat(sdr / 2),
        "haspi_improvement": stat(combined),
        "hasqi_improvement": stat(combined),
        "combined_improvement": stat(combined),
        "pairs": 6,
        "combined_improved_pairs": 4,
        "combined_worst_pair_delta": -0.02,
    }
    per_pair = {f"S{i}_L1": {"combined": combined + 0.01 * i, "haspi": 0.0, "hasqi": 0.0}
                for i in range(4)}  # fmt: skip
    return {"vs_passthrough": {"convtasnet": {"all": group, "front": group, "side": group}},
            "per_pair": {"convtasnet": per_pair},
            "per_scene_si_sdr_db": {"convtasnet": {"anechoic": {
                f"S{i}": sdr + i for i in range(4)}}},
            "target_in_front": {"S0": True, "S1": True, "S2": False, "S3": False}}  # fmt: skip


def _run(folder, *extra):
    return subprocess.run([sys.executable, str(SCRIPT), str(folder), *extra],
                          capture_output=True, text=True)  # fmt: skip


def test_table_gap_and_runs(tmp_path):
    q = tmp_path / "quality"
    q.mkdir()
    for name, sdr, comb in [("all@kemar_ism", 3.0, 0.05), ("no_kemar_ism@kemar_ism", 1.0, 0.01),
                            ("upit_no_kemar_ism@kemar_ism", 2.0, 0.02)]:  # fmt: skip
        (q / f"{name}.json").write_text(json.dumps(_entry(sdr, comb)))
    out = _run(q, "--json", str(tmp_path / "rows.json"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    front = next(line for line in lines if line.startswith("| kemar_ism | front"))
    assert front.rstrip().endswith("| -2.00 | -0.0400 |")  # without minus with
    assert "+3.00 / +1.00" in front
    upit = [line for line in lines if line.startswith("| upit_no_kemar_ism |")]
    assert len(upit) == 2 and upit[1].startswith("| upit_no_kemar_ism | side (2)")
    # paired against no_kemar_ism: 0.02 - 0.01 on every pair and 2.0 - 1.0 dB on every scene,
    # intervals of zero width
    assert upit[0].rstrip().endswith("| +0.0100 [+0.0100, +0.0100] | +1.00 [+1.00, +1.00] |")
    base = next(line for line in lines if line.startswith("| no_kemar_ism | front"))
    assert base.rstrip().endswith("| - | - |")
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [(r["model"], r["scenes"]) for r in rows] == [
        ("kemar_ism", "front"),
        ("kemar_ism", "side"),
    ]


def test_empty_or_bad_folder_is_reported(tmp_path):
    out = _run(tmp_path)
    assert out.returncode == 2 and "no RUN@MODEL.json" in out.stderr
    (tmp_path / "all@x.json").write_text(json.dumps({"vs_passthrough": {}}))
    out = _run(tmp_path)
    assert out.returncode == 2 and "all@x.json" in out.stderr
