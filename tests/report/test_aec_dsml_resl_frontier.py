"""benchmarks/aec_dsml_resl_frontier.py: the oracle frame gains and the frontier they draw."""

import importlib.util
import json

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO

from clarity_se.data.aec_challenge import read_clip, read_synthetic_meta
from clarity_se.data.render.echo import EchoRenderOptions, build_aec_dataset
from clarity_se.metrics.dsml_resl import dsml_resl
from tests._aec_tree import make_data_root

_spec = importlib.util.spec_from_file_location(
    "aec_dsml_resl_frontier", REPO / "benchmarks" / "aec_dsml_resl_frontier.py")
frontier = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(frontier)


def test_oracle_gain_minimises_the_frame_objective():
    rng = np.random.default_rng(0)
    s, r = rng.exponential(1.0, 200), rng.exponential(1.0, 200) * 10 ** rng.uniform(-2, 2, 200)
    for mu in (0.1, 1.0, 10.0):
        g = frontier.oracle_gain(s, r, mu)
        assert np.all((g >= 0) & (g <= 1))

        def cost(x, mu=mu):
            return float(np.sum(s * (1 - x) ** 2) + mu * np.sum(x**2 * r))

        best = cost(g)
        for _ in range(50):  # no other gain has less of one sum for as little of the other
            other = np.clip(g + rng.normal(0, 0.05, g.shape), 0, 1)
            assert cost(other) >= best - 1e-12
    assert np.array_equal(frontier.oracle_gain(s, r, 0.0), np.ones_like(s))
    assert frontier.oracle_gain(np.zeros(3), np.zeros(3), 1.0).tolist() == [1.0, 1.0, 1.0]


def test_oracle_gain_after_a_system_only_takes_away():
    s, r = np.array([1.0, 1.0, 1.0, 0.0]), np.array([0.0, 1.0, 1.0, 1.0])
    target = frontier.oracle_gain(s, r, 1.0)                       # 1, 0.5, 0.5, 0
    base = np.array([0.5, 0.25, 0.8, 0.0])
    after = frontier.oracle_gain(s, r, 1.0, base)
    np.testing.assert_allclose(after, [1.0, 1.0, 0.625, 1.0])      # min(1, G / g); g = 0 -> 1
    assert np.all(after * base <= np.maximum(target, base) + 1e-12)


def test_fall_at_rise_interpolates():
    curve = [(10.0, 10.0, 5.0), (9.0, 12.0, 6.0), (7.0, 14.0, 7.0)]
    assert frontier.fall_at_rise(curve, 2.0) == pytest.approx(-1.0)
    assert frontier.fall_at_rise(curve, 1.0, column=2) == pytest.approx(-1.0)
    assert frontier.fall_at_rise(curve, 3.0) == pytest.approx(-2.0)
    assert frontier.fall_at_rise(curve, 5.0) is None


def test_runs_on_a_rendered_folder(tmp_path):
    recordings = make_data_root(tmp_path / "rec")
    data = tmp_path / "aec"
    build_aec_dataset(data, n_clips=2, options=EchoRenderOptions(
        split="test", seed=3, clip_s=2.0, talk_mix=(0, 1, 0)), data_root=recordings)
    system, quiet = tmp_path / "exp" / "enhanced_signals", tmp_path / "quiet"
    system.mkdir(parents=True)
    quiet.mkdir()
    clips = read_synthetic_meta(data)
    own = []
    for clip in clips:  # a canceller that removes 90 % of the echo and noise; and 6 dB softer
        a = read_clip(clip)
        y = (0.8 * (a.nearend + 0.1 * (a.mic - a.nearend))).astype(np.float32)  # g < 1
        sf.write(system / clip.enhanced_name, y, 16000, subtype="FLOAT")
        sf.write(quiet / clip.enhanced_name, 0.5 * y, 16000, subtype="FLOAT")
        d, r, g = dsml_resl(suppressor_input=a.mic.astype(np.float64), output=y.astype(
            np.float64), speech=a.nearend.astype(np.float64), return_speech_gain=True)
        own.append((d, r, r + 20 * np.log10(g)))
    out, png = tmp_path / "f.json", tmp_path / "f.png"
    assert frontier.main([str(data), "--system", f"sys={tmp_path / 'exp'}", "--system",
                          f"quiet={quiet}", "--mu", "1,3,10", "--out", str(out),
                          "--plot", str(png)]) == 0
    res = json.loads(out.read_text())
    assert res["clips"] == 2 and png.stat().st_size > 0
    np.testing.assert_allclose(res["mean"]["sys"][0], np.mean(own, axis=0), atol=1e-6)
    d, r, q = res["mean"]["sys"][0]
    d2, r2, q2 = res["mean"]["quiet"][0]  # a constant gain: RESL only, not at speech level
    assert d2 == pytest.approx(d, abs=1e-3) and q2 == pytest.approx(q, abs=1e-3)
    assert r2 == pytest.approx(r + 20 * np.log10(2), abs=1e-3)
    after = np.array(res["mean"]["oracle after sys"])
    np.testing.assert_allclose(after[0], res["mean"]["sys"][0], atol=1e-9)  # mu = 0: itself
    assert np.all(np.diff(after[:, 1]) >= -1e-9) and after[-1, 0] < after[0, 0]
    assert set(res["dsml_change_at_resl_rise"]) == {"oracle after sys", "oracle after quiet"}
    assert set(res["dsml_change_at_resl_rise"]["oracle after sys"]) == {
        "resl", "resl_at_speech_level"}
    assert frontier.main([str(data), "--system", "x=/nonexistent", "--out", str(out)]) == 2
    assert frontier.main([str(data), "--mu", "0,1", "--out", str(out)]) == 2
    assert frontier.main([str(tmp_path / "none"), "--out", str(out)]) == 2
