"""benchmarks/target_gain.py: the target's gain through an enhancer, per ear."""

import importlib.util

import numpy as np
from conftest import REPO

_spec = importlib.util.spec_from_file_location(
    "target_gain", REPO / "benchmarks" / "target_gain.py")
target_gain = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(target_gain)


def test_gain_of_a_delayed_scaled_target_plus_independent_noise():
    """Output = a * target delayed by d + noise uncorrelated with the target: the gain is
    20 log10 a per ear (the lag found within max_lag), whatever the noise's level."""
    rng = np.random.default_rng(0)
    n = 44100
    target = rng.standard_normal((2, n))
    noise = rng.standard_normal((2, n))
    noise -= (noise @ target.T).diagonal()[:, None] / n * target  # orthogonal to the target
    out = np.zeros((2, n))
    out[0, 37:] = 0.5 * target[0, :-37]  # -6.02 dB, 37 samples later
    out[1] = 2.0 * target[1]  # +6.02 dB, no delay
    got = target_gain.target_gain_db(out + 0.3 * noise, target, max_lag=100)
    np.testing.assert_allclose(got, [20 * np.log10(0.5), 20 * np.log10(2.0)], atol=0.05)
    assert target_gain.target_gain_db(target, target, max_lag=0) == [0.0, 0.0]


def test_source_gains_separate_target_and_interferer():
    """Output = a t + b i, delayed by d: the joint fit gives both gains per ear, where a
    projection on the target alone would be biased by the target-interferer correlation."""
    rng = np.random.default_rng(1)
    n = 44100
    target = rng.standard_normal((2, n))
    interferer = 0.5 * target + rng.standard_normal((2, n))  # correlated with the target
    out = np.zeros((2, n))
    out[:, 20:] = (0.8 * target + 0.25 * interferer)[:, :-20]
    got = np.array(target_gain.source_gains_db(out, target, interferer, max_lag=50))
    np.testing.assert_allclose(got[:, 0], 20 * np.log10(0.8), atol=0.01)
    np.testing.assert_allclose(got[:, 1], 20 * np.log10(0.25), atol=0.01)


def test_cli_scene_types_on_a_rendered_set(tmp_path):
    """On a rendered held-out set, the pass-through keeps target and interferers at 0 dB, and
    ``--scene-type`` splits the scenes by ``target_in_front``."""
    import json

    from clarity_se.cli import main as cli_main
    from clarity_se.data.scene import load_scenes

    root = tmp_path / "held"
    assert cli_main(["demo-data", str(root), "--acoustic-model", "freefield_ism", "--scenes", "2",
                     "--workers", "1", "--not-in-front-share", "0.5"]) == 0  # fmt: skip
    scenes = load_scenes(root / "clarity_data" / "metadata" / "scenes.dev.json")
    front = {s.scene for s in scenes if s.extra["target_in_front"]}
    assert front == {"S06001"}  # this render (seed 0): one scene of each type
    seen = {}
    for kind in ("all", "front", "side"):
        out = tmp_path / f"{kind}.json"
        args = ["--roots", str(root), "--enhancer", "passthrough", "--interferer",
                "--scene-type", kind, "--out", str(out)]  # fmt: skip
        assert target_gain.main(args) == 0
        result = json.loads(out.read_text())
        seen[kind] = {key.split("/")[-1] for key in result["per_scene_db"]}
        gains = np.concatenate([*result["per_scene_db"].values(),
                                *result["interferer_per_scene_db"].values()])  # fmt: skip
        np.testing.assert_allclose(gains, 0.0, atol=0.05)
    assert seen["all"] == {s.scene for s in scenes}
    assert seen["front"] == front and seen["side"] == seen["all"] - front == {"S06002"}
