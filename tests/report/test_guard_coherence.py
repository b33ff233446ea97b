"""benchmarks/guard_coherence.py: the rule's cue over a scene's target span."""

import importlib.util
from types import SimpleNamespace

import numpy as np
import torch
from conftest import REPO

_spec = importlib.util.spec_from_file_location(
    "guard_coherence", REPO / "benchmarks" / "guard_coherence.py")
guard_coherence = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(guard_coherence)


def _dataset(left: np.ndarray, right: np.ndarray):
    mixture = np.stack([left, right] * 3).astype(np.float32)
    return SimpleNamespace(sample_rate=44100, load_mixture=lambda scene: torch.from_numpy(mixture))


def test_cue_is_high_for_a_frontal_output_and_low_for_a_lateral_one():
    rng = np.random.default_rng(0)
    n = 44100
    source = rng.standard_normal(n + 100)
    scene = SimpleNamespace(target=SimpleNamespace(time_start=4410, time_end=n - 4410))

    def front_pair(mixture):  # the enhancer: the front microphones as they are
        return mixture[:2]

    frontal = guard_coherence.scene_cues(front_pair, _dataset(source[:n], source[:n]), scene)
    lateral = guard_coherence.scene_cues(  # 0.7 ms interaural delay: outside +-0.1 ms
        front_pair, _dataset(source[31 : n + 31], source[:n]), scene)
    # only whole 10 ms blocks inside the span: 441 samples each
    assert frontal.size == lateral.size == (n - 2 * 4410) // 441
    assert frontal.min() > 0.99
    assert lateral.max() < 0.2
