"""benchmarks/aec_linear_alternatives.py: other adaptation rules under the same network."""

import importlib.util
import json

import numpy as np
import pytest
import torch
from conftest import REPO

from clarity_se.models.deep_adaptive import DeepAdaptiveAEC

_spec = importlib.util.spec_from_file_location(
    "aec_linear_alternatives", REPO / "benchmarks" / "aec_linear_alternatives.py")
alt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(alt)
_bspec = importlib.util.spec_from_file_location(
    "aec_linear_bound", REPO / "benchmarks" / "aec_linear_bound.py")
bound = importlib.util.module_from_spec(_bspec)
_bspec.loader.exec_module(bound)


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(0)
    model = DeepAdaptiveAEC(taps=4, hidden=8, layers=1)
    with torch.no_grad():  # reference gain exactly 1: the far end itself, a fixed echo path
        model.ref_head.weight.zero_()
        model.ref_head.bias.fill_(0.0)
    return model.double().eval()


def _clip(seconds: float = 3.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    far = rng.standard_normal(int(16000 * seconds)) * 0.05
    h = rng.standard_normal(200) * np.exp(-np.arange(200) / 40.0) * 0.3
    echo = np.convolve(far, h)[: far.size]
    return far, echo


def test_learned_rule_is_the_model_itself(base):
    far, echo = _clip()
    model = alt.rule_model(base, "learned")
    db, out = alt.run_rule(model, echo, far, echo)
    db0, out0 = alt.run_rule(base, echo, far, echo)
    assert db == db0 and np.array_equal(out, out0)  # same process: bit equality


def test_select_rule_is_the_canceller_with_kalman_selection(base):
    far, echo = _clip()
    model = alt.rule_model(base, "select:0.999")
    assert model.kalman_selection == 0.999 and alt.rule_model(base, "learned").kalman_selection == 0
    db = alt.run_rule(model, echo, far, echo)[0]
    assert db > alt.run_rule(alt.rule_model(base, "learned"), echo, far, echo)[0] - 1.0


def test_hammerstein_rule_models_a_rectifying_loudspeaker(base):
    # echo through an asymmetric loudspeaker (x + 0.8 |x|, the even-order part of the AEC
    # Challenge model at low level): the Kalman filter with the |x| branch leaves less echo
    # than the selection without it (measured 6.2 -> 13.3 dB); a linear echo stays cancelled
    # (15.7 dB without the branch, 15.4 dB with it)
    rng = np.random.default_rng(2)
    far = rng.standard_normal(16000 * 3) * 0.05
    h = rng.standard_normal(200) * np.exp(-np.arange(200) / 40.0) * 0.3
    echo = np.convolve(far + 0.8 * np.abs(far), h)[: far.size]
    ham = alt.rule_model(base, "hammerstein:0.999")
    sel = alt.rule_model(base, "select:0.999")
    assert ham.kalman_selection == 0.999
    db_ham, out = alt.run_rule(ham, echo, far, echo)
    assert db_ham > alt.run_rule(sel, echo, far, echo)[0] + 3.0
    assert out.shape == echo.shape and np.all(np.isfinite(out))
    far_lin, echo_lin = _clip()
    assert alt.run_rule(ham, echo_lin, far_lin, echo_lin)[0] > 12.0


@pytest.mark.parametrize("rule", ["nlms:0.5", "rls:0.999", "kalman:0.9999"])
def test_each_rule_cancels_a_linear_echo_without_near_end(base, rule):
    # white far end, a 12.5 ms path, no near end, no noise: every rule converges close to
    # the best fixed filter of its form (4 taps per bin, 17.6 dB here), RLS closest
    # (measured 15.0 / 16.5 / 15.2 dB for nlms / rls / kalman)
    far, echo = _clip()
    best = bound.best_filter_reduction(bound.framed(far, 320), bound.framed(echo, 320), 4)
    db, out = alt.run_rule(alt.rule_model(base, rule), echo, far, echo)
    assert best - (1.5 if rule.startswith("rls") else 3.0) < db < best + 1.0
    assert out.shape == echo.shape and np.all(np.isfinite(out))


def test_rules_differ_and_bad_rules_are_refused(base):
    far, echo = _clip(2.0, 1)
    a = alt.run_rule(alt.rule_model(base, "nlms:0.1"), echo, far, echo)[0]
    b = alt.run_rule(alt.rule_model(base, "nlms:0.9"), echo, far, echo)[0]
    assert a != b
    for bad in ("nlms", "nlms:2.5", "rls:0", "kalman:x", "lms:0.1", "select:2"):
        with pytest.raises(ValueError, match="rule"):
            alt.rule_model(base, bad)


def test_cli_on_a_rendered_folder(tmp_path):
    from clarity_se.data.render.echo import EchoRenderOptions, build_aec_dataset

    root = tmp_path / "aec"
    build_aec_dataset(root, n_clips=3, options=EchoRenderOptions(split="test", seed=3, clip_s=1.5))
    out = tmp_path / "alt.json"
    assert alt.main([str(root), "--rules", "learned", "nlms:0.3", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["rules"] == ["learned", "nlms:0.3"]
    assert result["groups"]["all"]["clips"] == len(result["clips"]) > 0
    assert result["time_ratio"]["learned"] == pytest.approx(1.0)
    assert any(r["talk_type"] == "dt" for r in result["clips"])  # seed 3: two dt clips
    assert alt.main([str(root), "--rules", "learned", "--aecmos", "--out", str(out)]) == 0
    mos = json.loads(out.read_text())
    assert 1.0 <= mos["echo_mos_dt"]["learned"] <= 5.0
    assert 1.0 <= mos["deg_mos_dt"]["learned"] <= 5.0
    assert alt.main([str(root), "--rules", "bogus"]) == 2
    assert alt.main([str(tmp_path / "missing")]) == 2
