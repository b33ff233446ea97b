"""The causal target selection and do-no-harm rule (clarity_se.enhancers.guard)."""

from __future__ import annotations

import numpy as np
import pytest

from clarity_se.enhancers.guard import FrontalGuard, GuardOptions

FS = 44100


def _talker(n, seed):
    rng = np.random.default_rng(seed)
    env = np.repeat(rng.uniform(0.2, 1.0, n // 2205 + 1), 2205)[:n]  # 50 ms syllable-like
    return (env * rng.standard_normal(n)).astype(np.float32)


def _frontal(s):
    return np.stack([s, s])


def _side(s, itd=25):
    return np.stack([s, np.concatenate([np.zeros(itd, s.dtype), s[:-itd]])])


@pytest.fixture()
def scene():
    n = 2 * FS
    return _talker(n, 1), _talker(n, 2), 0.3 * np.random.default_rng(3).standard_normal((2, n))


def test_frontal_estimate_is_kept_side_estimate_falls_back(scene):
    s, _, noise = scene
    mix = (_frontal(s) + noise).astype(np.float32)
    g = FrontalGuard(1, FS)
    out = g.run(_frontal(s)[None], mix)
    np.testing.assert_allclose(out, _frontal(s), atol=1e-6)  # weight stays 1
    assert g.fired_fraction() == 0.0
    side_mix = (_side(s) + noise).astype(np.float32)
    out = g.run(_side(s)[None], side_mix)
    assert g.fired_fraction() > 0.8
    tail = slice(FS, 2 * FS)  # once the window has filled, the mixture passes unchanged
    np.testing.assert_allclose(out[:, tail], side_mix[:, tail], atol=1e-3)


def test_selects_the_frontal_output_of_two(scene):
    s, t, noise = scene
    est = np.stack([_side(t), _frontal(s)])
    mix = (est.sum(0) + noise).astype(np.float32)
    g = FrontalGuard(2, FS)
    out = g.run(est, mix)
    assert g.state.selected == 1 and g.fired_fraction() == 0.0
    np.testing.assert_allclose(out[:, FS:], _frontal(s)[:, FS:], atol=1e-6)


def test_weight_holds_while_the_model_is_silent(scene):
    s, _, noise = scene
    est = np.zeros((1, 2, s.size), np.float32)
    est[..., FS:] = _frontal(s)[:, FS:]  # the target starts after 1 s of silence
    g = FrontalGuard(1, FS)
    out = g.run(est, (est[0] + noise).astype(np.float32))
    assert g.fired_fraction() == 0.0  # a silent estimate is not evidence of a side talker
    np.testing.assert_allclose(out, est[0], atol=1e-6)


def test_streaming_equals_whole_and_no_look_ahead(scene):
    s, t, noise = scene
    est = np.stack([_side(t), _frontal(s)]).astype(np.float32)
    mix = (est.sum(0) + noise).astype(np.float32)
    g = FrontalGuard(2, FS)
    whole = g.run(est, mix)
    g.reset()
    b = g.block
    parts = [g.process(est[..., i : i + b], mix[:, i : i + b]) for i in range(0, s.size, b)]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)  # same process
    changed = est.copy()
    changed[..., FS + 1 :] = 0.0
    again = FrontalGuard(2, FS).run(changed, mix)
    np.testing.assert_array_equal(again[:, : FS + 1], whole[:, : FS + 1])


def test_disabled_guard_is_the_selected_output(scene):
    s, _, noise = scene
    g = FrontalGuard(1, FS, GuardOptions(enabled=False))
    out = g.run(_side(s)[None].astype(np.float32), noise.astype(np.float32))
    np.testing.assert_allclose(out, _side(s), atol=1e-6)
