"""benchmarks/bench_enhancer_quality.py: one run per root at a time."""

import importlib.util

import pytest
from conftest import REPO


def test_a_second_quality_run_on_the_same_root_is_refused(tmp_path):
    """bench_enhancer_quality.py holds ROOT/bench_enhancer_quality.lock: a second holder is
    refused with the file's name (two flock handles conflict even within one process), and
    the root is free again once the first lets go."""
    spec = importlib.util.spec_from_file_location(
        "bench_enhancer_quality", REPO / "benchmarks" / "bench_enhancer_quality.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    first = bench.lock_root(tmp_path / "root")
    with pytest.raises(RuntimeError, match="bench_enhancer_quality.lock: another"):
        bench.lock_root(tmp_path / "root")
    first.close()
    bench.lock_root(tmp_path / "root").close()
