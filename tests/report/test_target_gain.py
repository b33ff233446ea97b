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
