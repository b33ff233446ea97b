"""benchmarks/haspi_crossover.py: two outputs crossed over in frequency, scored with HASPI."""

import importlib.util
import json

import numpy as np
import pytest
from _eval_tree import make_eval_tree
from conftest import REPO

from clarity_se.amplification.hearing_aid import amplify
from clarity_se.data.cec2 import CEC2Dataset
from clarity_se.metrics.scene import make_reference, score_scene_pairs
from clarity_se.random import scene_seed

_spec = importlib.util.spec_from_file_location(
    "haspi_crossover", REPO / "benchmarks" / "haspi_crossover.py")
haspi_crossover = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(haspi_crossover)


def test_crossover_takes_each_side_from_its_signal():
    fs = 16000
    t = np.arange(fs) / fs
    low, high = np.sin(2 * np.pi * 500 * t)[None], np.sin(2 * np.pi * 3000 * t)[None]
    both = low + high
    np.testing.assert_allclose(haspi_crossover.crossover(both, both, 1000, fs), both, atol=1e-12)
    np.testing.assert_allclose(haspi_crossover.crossover(both, 0 * both, 1000, fs), low,
                               atol=1e-9)  # fmt: skip
    np.testing.assert_allclose(haspi_crossover.crossover(0 * both, both, 1000, fs), high,
                               atol=1e-9)  # fmt: skip
    with pytest.raises(ValueError, match="shapes differ"):
        haspi_crossover.crossover(both, both[:, :-1], 1000, fs)
    with pytest.raises(ValueError, match="outside"):
        haspi_crossover.crossover(both, both, 9000, fs)


def test_scores_are_the_evaluators_and_the_command_writes_every_hybrid(tmp_path):
    """pair_haspi is the evaluator's score of the amplified output (same process, same draws);
    with the pass-through as A and B every hybrid scores as A."""
    root = make_eval_tree(tmp_path / "data", {"S06001": ["L0001"]})
    dataset = CEC2Dataset(root, "dev")
    mixture = dataset.load_mixture("S06001").numpy().astype(np.float64)
    reference = make_reference(dataset.load_target_anechoic("S06001").numpy().T,
                               dataset.load_target("S06001").numpy().T)  # fmt: skip
    listener = dataset.listener("L0001")
    got = haspi_crossover.pair_haspi(reference, mixture[:2], listener, "S06001",
                                     dataset.sample_rate)  # fmt: skip
    amplified, _ = amplify(mixture[:2].T, listener)
    (ears,) = score_scene_pairs(scene_seed=scene_seed("S06001"), reference=reference,
                                amplified=[amplified], listeners=[listener],
                                sample_rate=dataset.sample_rate)  # fmt: skip
    assert (got["left"], got["right"]) == (ears.haspi_left, ears.haspi_right)
    assert got["better"] == max(got["left"], got["right"])
    out = tmp_path / "x.json"
    haspi_crossover.main(["--root", str(root), "--scene", "S06001", "--enhancer", "passthrough",
                          "--crossover", "1000", "4000", "--out", str(out)])  # fmt: skip
    rows = json.loads(out.read_text())["rows"]
    assert [r["output"] for r in rows] == ["A", "B", "A<1000+B", "B<1000+A", "A<4000+B",
                                           "B<4000+A"]  # fmt: skip
    for row in rows:
        assert row["better"] == pytest.approx(rows[0]["better"], abs=1e-6)
        assert row["envelope_left"] == pytest.approx(rows[0]["envelope_left"], abs=1e-5)
    assert 0 < rows[0]["envelope_left"] < 1  # the noisy mixture against the clean reference
