"""benchmarks/compare_quality.py: two quality runs of one system compared per scene and pair."""

import importlib.util
import json

import pytest
from conftest import REPO

_spec = importlib.util.spec_from_file_location(
    "compare_quality", REPO / "benchmarks" / "compare_quality.py")
compare_quality = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_quality)


def _run(tmp_path, name, scores, passthrough=None, root="", official=None):
    """A bench_enhancer_quality-like JSON: scene S1 in front (2 listeners), S2 to the side;
    ``official``: per-scene SI-SDR (dB) against the official reference of the system, with
    the pass-through's at 0 dB."""
    passthrough = passthrough or {"S1_L1": 0.2, "S1_L2": 0.3, "S2_L1": 0.4}
    data = {
        "root": str(root),
        "target_in_front": {"S1": True, "S2": False},
        "per_pair": {
            "passthrough": {p: {"combined": c} for p, c in passthrough.items()},
            "dtln": {p: {"combined": c} for p, c in scores.items()},
        },
    }
    if official is not None:
        data["per_scene_si_sdr_db"] = {
            "passthrough": {"anechoic": {s: 0.0 for s in official}},
            "dtln": {"anechoic": dict(official)},
        }
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def _scene(scene_id, azimuth):
    """A CEC2 scene entry as the held-out renderer writes it (azimuth in ``extra``)."""
    return {"dataset": "dev", "room": "R06001", "scene": scene_id,
            "target": {"name": "T", "time_start": 100, "time_end": 900}, "duration": 1000,
            "interferers": [{"position": 1, "time_start": 0, "time_end": 1000,
                             "type": "noise", "name": "noise:N", "offset": 0}],
            "SNR": 0.0,
            "listener": {"rotation": [{"sample": 50.0, "angle": 0.0},
                                      {"sample": 90.0, "angle": 0.0}],
                         "hrir_filename": ["ED", "BTE_fr", "BTE_mid", "BTE_rear"]},
            "target_azimuth_deg": azimuth}


def test_per_type_per_scene_and_worst_pairs(tmp_path):
    """Differences to pass-through, their means per scene type and scene, B - A, and the pairs
    sorted from B's largest loss, computed by hand."""
    a = _run(tmp_path, "a.json", {"S1_L1": 0.25, "S1_L2": 0.31, "S2_L1": 0.38})
    b = _run(tmp_path, "b.json", {"S1_L1": 0.30, "S1_L2": 0.27, "S2_L1": 0.41})
    got = compare_quality.compare(compare_quality.load_run(a, "dtln"),
                                  compare_quality.load_run(b, "dtln"))
    front, side = got["types"]["front"], got["types"]["side"]
    assert front["a"] == pytest.approx((0.05 + 0.01) / 2)
    assert front["b"] == pytest.approx((0.10 - 0.03) / 2)
    assert front["b_minus_a"] == pytest.approx(0.035 - 0.03)
    assert front["worst_a"] == pytest.approx(0.01) and front["worst_b"] == pytest.approx(-0.03)
    assert side["a"] == pytest.approx(-0.02) and side["b"] == pytest.approx(0.01)
    assert front["pairs"] == 2 and side["pairs"] == 1
    s1, s2 = got["scenes"]
    assert (s1["scene"], s1["in_front"], s2["in_front"]) == ("S1", True, False)
    assert s1["passthrough"] == pytest.approx(0.25)
    assert s1["b_minus_a"] == pytest.approx(0.035 - 0.03)
    assert [p[1] for p in got["pairs"]] == ["S1_L2", "S2_L1", "S1_L1"]
    assert got["pairs"][0][0] == pytest.approx(-0.04)


def test_cli_prints_tables_and_azimuths(tmp_path, capsys):
    """The CLI prints the three tables; azimuths come from the root's scenes file."""
    meta = tmp_path / "set" / "clarity_data" / "metadata"
    meta.mkdir(parents=True)
    scenes = [_scene("S1", 4.4), _scene("S2", -97.6)]
    (meta / "scenes.dev.json").write_text(json.dumps(scenes))
    root = meta.parents[1]
    a = _run(tmp_path, "a.json", {"S1_L1": 0.25, "S1_L2": 0.31, "S2_L1": 0.38}, root=root)
    b = _run(tmp_path, "b.json", {"S1_L1": 0.30, "S1_L2": 0.27, "S2_L1": 0.41}, root=root)
    assert compare_quality.main([str(a), str(b), "--worst", "1"]) == 0
    out = capsys.readouterr().out
    assert "| front (2 pairs) | +0.0300 | +0.0350 | +0.0050 | +0.0100 | -0.0300 |" in out
    assert "| S2 | -98 | no | 0.400 | -0.0200 | +0.0100 | +0.0300 |" in out
    assert "| S1_L2 | +0.0100 | -0.0300 | -0.0400 |" in out
    assert "S1_L1 |" not in out.split("| pair |")[1]  # --worst 1: one pair listed


@pytest.mark.parametrize("case", ["missing_pair", "other_scenes", "no_system", "not_json"])
def test_errors_name_the_file_and_field(tmp_path, capsys, case):
    """Runs that cannot be compared give exit status 2 and one line naming file and field."""
    a = _run(tmp_path, "a.json", {"S1_L1": 0.25, "S1_L2": 0.31, "S2_L1": 0.38})
    if case == "missing_pair":
        b = _run(tmp_path, "b.json", {"S1_L1": 0.25, "S1_L2": 0.31})
        expect = "b.json: per_pair lacks pair S2_L1"
    elif case == "other_scenes":
        b = _run(tmp_path, "b.json", {"S1_L1": 0.25, "S1_L2": 0.31, "S2_L1": 0.38},
                 passthrough={"S1_L1": 0.2, "S1_L2": 0.3, "S2_L1": 0.5})
        expect = "b.json: per_pair.passthrough of S2_L1 is 0.500000"
    elif case == "no_system":
        b = tmp_path / "b.json"
        b.write_text(json.dumps({"per_pair": {"passthrough": {}}}))
        expect = "b.json: per_pair has no system 'dtln'"
    else:
        b = tmp_path / "b.json"
        b.write_text("{not json")
        expect = "b.json: cannot read a JSON"
    assert compare_quality.main([str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert expect in err and len(err.strip().splitlines()) == 1


def test_pooled_over_two_sets(tmp_path, capsys):
    """Two sets pooled: means over all pairs, counts below -0.01 and the per-scene SI-SDR mean,
    computed by hand; the second set's scenes reuse the first's ids."""
    a1 = _run(tmp_path, "a1.json", {"S1_L1": 0.25, "S1_L2": 0.31, "S2_L1": 0.38},
              official={"S1": 1.0, "S2": 2.0})
    b1 = _run(tmp_path, "b1.json", {"S1_L1": 0.30, "S1_L2": 0.27, "S2_L1": 0.41},
              official={"S1": 3.0, "S2": 0.5})
    p2 = {"S1_L1": 0.5, "S1_L2": 0.6, "S2_L1": 0.1}
    a2 = _run(tmp_path, "a2.json", {"S1_L1": 0.48, "S1_L2": 0.62, "S2_L1": 0.12},
              passthrough=p2, official={"S1": -1.0, "S2": 1.0})
    b2 = _run(tmp_path, "b2.json", {"S1_L1": 0.52, "S1_L2": 0.64, "S2_L1": 0.05},
              passthrough=p2, official={"S1": 2.0, "S2": 1.5})
    sets = [(compare_quality.load_run(a, "dtln"), compare_quality.load_run(b, "dtln"))
            for a, b in ((a1, b1), (a2, b2))]
    got = compare_quality.pool(sets)
    front, side = got["front"], got["side"]
    # front pairs: A +0.05 +0.01 -0.02 +0.02; B +0.10 -0.03 +0.02 +0.04
    assert front["pairs"] == 4 and front["scenes"] == 2
    assert front["a"] == pytest.approx(0.06 / 4) and front["b"] == pytest.approx(0.13 / 4)
    assert front["b_minus_a"] == pytest.approx(0.07 / 4)
    assert front["worst_a"] == pytest.approx(-0.02) and front["worst_b"] == pytest.approx(-0.03)
    assert (front["below_a"], front["below_b"]) == (1, 1)
    assert front["si_sdr_a"] == pytest.approx(0.0) and front["si_sdr_b"] == pytest.approx(2.5)
    # side pairs: A -0.02 +0.02; B +0.01 -0.05
    assert side["a"] == pytest.approx(0.0) and side["b"] == pytest.approx(-0.02)
    assert (side["below_a"], side["below_b"]) == (1, 1)
    assert side["si_sdr_a"] == pytest.approx(1.5) and side["si_sdr_b"] == pytest.approx(1.0)
    assert compare_quality.main([str(a1), str(b1), str(a2), str(b2), "--below", "-0.025"]) == 0
    out = capsys.readouterr().out
    assert out.count("A: ") == 2 and "Pooled over 2 sets; pairs below -0.0250" in out
    assert ("| front (4 pairs, 2 scenes) | +0.0150 | +0.0325 | +0.0175 | -0.0200 | -0.0300 "
            "| 0 | 1 | +0.00 | +2.50 |") in out


def test_pooled_needs_pairs_of_runs_and_the_same_scenes(tmp_path, capsys):
    """An odd number of runs, or a second set whose runs differ, gives exit status 2."""
    a = _run(tmp_path, "a.json", {"S1_L1": 0.25, "S1_L2": 0.31, "S2_L1": 0.38})
    assert compare_quality.main([str(a), str(a), str(a)]) == 2
    assert "3 runs given; expected pairs of runs" in capsys.readouterr().err
    b = _run(tmp_path, "b.json", {"S1_L1": 0.25, "S1_L2": 0.31})
    assert compare_quality.main([str(a), str(a), str(a), str(b)]) == 2
    assert "b.json: per_pair lacks pair S2_L1" in capsys.readouterr().err
