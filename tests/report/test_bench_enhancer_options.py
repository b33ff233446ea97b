"""benchmarks/bench_enhancer.py: ``--set SYSTEM:KEY=VALUE`` reaches the enhancer's options."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import REPO

_spec = importlib.util.spec_from_file_location(
    "bench_enhancer", REPO / "benchmarks" / "bench_enhancer.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_assignments_set_nested_options_over_the_defaults():
    sets = bench.parse_sets(["dtln:mvdr.wpe_update_every=4", "dtln:runtime=onnxruntime_int8"],
                            ["dtln", "crced"])  # fmt: skip
    assert sets == {"dtln": ["mvdr.wpe_update_every=4", "runtime=onnxruntime_int8"], "crced": []}
    options = bench._options("dtln", {"residual_source": "mixture"}, sets["dtln"])
    assert (options.mvdr.wpe_update_every, options.runtime) == (4, "onnxruntime_int8")
    assert options.residual_source == "mixture" and options.name == "dtln"
    assert bench._options("crced", None, sets["crced"]).mvdr.wpe_update_every is None


def test_bad_assignments_name_the_system_and_the_key():
    with pytest.raises(ValueError, match=r"--set dtln: Key 'nope' not in 'MVDRConfig'"):
        bench._options("dtln", None, ["mvdr.nope=1"])
    with pytest.raises(ValueError, match=r"--set dtln: Value 'abc'"):
        bench._options("dtln", None, ["mvdr.wpe_update_every=abc"])
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        bench._options("dtln", None, ["runtime"])
    with pytest.raises(ValueError, match="system 'x' is not in --systems"):
        bench.parse_sets(["x:runtime=pytorch"], ["dtln"])
