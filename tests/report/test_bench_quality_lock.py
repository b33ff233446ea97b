"""benchmarks/bench_enhancer_quality.py: one run per root at a time; paths and failing stages."""

import importlib.util
import json

import pytest
from conftest import REPO

_spec = importlib.util.spec_from_file_location(
    "bench_enhancer_quality", REPO / "benchmarks" / "bench_enhancer_quality.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_a_second_quality_run_on_the_same_root_is_refused(tmp_path):
    """bench_enhancer_quality.py holds ROOT/bench_enhancer_quality.lock: a second holder is
    refused with the file's name (two flock handles conflict even within one process), and
    the root is free again once the first lets go."""
    first = bench.lock_root(tmp_path / "root")
    with pytest.raises(RuntimeError, match="bench_enhancer_quality.lock: another"):
        bench.lock_root(tmp_path / "root")
    first.close()
    bench.lock_root(tmp_path / "root").close()


def test_relative_root_and_a_failing_stage(tmp_path, monkeypatch, capfd):
    """A relative --root and a relative checkpoint mean the caller's folder to the stages the
    benchmark runs, and a stage that fails ends the run with status 1 and its name, not a
    traceback."""
    monkeypatch.chdir(tmp_path)
    assert bench.main(["--root", "rel", "--systems", "passthrough", "--dev-scenes", "1",
                       "--no-evaluate", "--out", "q.json"]) == 0
    result = json.loads((tmp_path / "q.json").read_text())
    assert result["root"] == str(tmp_path / "rel") and result["dev_scenes"] == 1
    assert (tmp_path / "rel" / "exp_passthrough").is_dir()
    assert bench.main(["--root", "rel", "--systems", "dtln", "--set",
                       "dtln:checkpoint=missing.pt", "--no-evaluate", "--out", "q2.json"]) == 1
    err = capfd.readouterr().err
    assert "missing.pt" in err and "bench_enhancer_quality: dtln: `clarity-se enhance" in err
    assert "Traceback" not in err and not (tmp_path / "q2.json").exists()
