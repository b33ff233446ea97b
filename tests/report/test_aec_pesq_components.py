"""benchmarks/aec_pesq_components.py: the post-filter gain applied to each part of its input."""

import importlib.util
import json

import numpy as np
import torch
from conftest import REPO

from clarity_se.aec.deep_adaptive import DeepAdaptive
from clarity_se.data.render.echo import EchoRenderOptions, EchoSceneRenderer, build_aec_dataset
from clarity_se.models.deep_adaptive import DeepAdaptiveAEC
from tests._aec_tree import make_data_root

_spec = importlib.util.spec_from_file_location(
    "aec_pesq_components", REPO / "benchmarks" / "aec_pesq_components.py")
aec_pesq_components = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(aec_pesq_components)


def test_parts_add_up_and_the_output_is_the_cancellers(tmp_path):
    recordings = make_data_root(tmp_path / "rec")
    clip = EchoSceneRenderer(recordings, EchoRenderOptions(
        clip_s=1.5, talk_mix=(0, 1, 0), p_nearend_noise=1.0, seed=2)).render(0)
    torch.manual_seed(0)
    model = DeepAdaptiveAEC(hidden=8, taps=4)
    aec = DeepAdaptive(model)
    sig = aec_pesq_components.components(aec.model, clip.mic, clip.farend, clip.nearend,
                                         clip.echo)
    assert set(sig) == set(aec_pesq_components.VARIANTS)
    # the split is exact: speech + (noise + residual) under one gain is the output
    np.testing.assert_allclose(sig["gain_on_speech"] + sig["no_speech_distortion"]
                               - clip.nearend, sig["output"], atol=1e-9)
    # whole-clip framing == the streaming canceller (float64 both; float32 output)
    np.testing.assert_allclose(sig["output"], aec(clip.mic, clip.farend).output, atol=1e-5)
    noise = clip.mic - clip.nearend - clip.echo
    assert np.abs(noise).max() > 0
    np.testing.assert_allclose(sig["oracle"], clip.nearend + noise, atol=1e-9)
    np.testing.assert_array_equal(sig["nearend"], clip.nearend)
    # the gain toward S + N keeps the noise the gain toward S takes away
    assert np.abs(sig["ideal_gain_sn"] - sig["ideal_gain"]).max() > 1e-6
    quiet = EchoSceneRenderer(recordings, EchoRenderOptions(
        clip_s=1.5, talk_mix=(0, 1, 0), p_nearend_noise=0.0, seed=2)).render(0)
    assert np.abs(quiet.mic - quiet.nearend - quiet.echo).max() < 1e-6
    sig = aec_pesq_components.components(aec.model, quiet.mic, quiet.farend, quiet.nearend,
                                         quiet.echo)
    np.testing.assert_allclose(sig["ideal_gain_sn"], sig["ideal_gain"], atol=1e-6)


def test_cli_on_a_rendered_folder(tmp_path):
    root = tmp_path / "aec"
    build_aec_dataset(root, n_clips=2, options=EchoRenderOptions(
        split="test", seed=3, clip_s=2.0, talk_mix=(0, 1, 0)))
    out = tmp_path / "c.json"
    assert aec_pesq_components.main([str(root), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(result["clips"]) == 2 and set(result["mean"]) == set(aec_pesq_components.VARIANTS)
    assert result["mean"]["oracle"] > result["mean"]["mic"]
    assert result["kalman_selection"] == 0.999
    off = tmp_path / "off.json"
    assert aec_pesq_components.main([str(root), "--kalman-selection", "0", "--out", str(off)]) == 0
    off = json.loads(off.read_text())
    assert off["kalman_selection"] == 0.0 and off["mean"]["oracle"] == result["mean"]["oracle"]
    assert aec_pesq_components.main([str(tmp_path / "missing")]) == 2
    assert "mean_aecmos_deg" not in result and "aecmos_deg" not in result["clips"][0]
    mos = tmp_path / "mos.json"
    assert aec_pesq_components.main([str(root), "--aecmos", "--out", str(mos)]) == 0
    mos = json.loads(mos.read_text())
    assert mos["mean"] == result["mean"]
    for key in ("mean_aecmos_echo", "mean_aecmos_deg"):
        assert set(mos[key]) == set(aec_pesq_components.VARIANTS)
        assert all(1.0 <= v <= 5.0 for v in mos[key].values())
    # the microphone's echo is what the echo MOS measures: the clean speech scores higher
    assert mos["mean_aecmos_echo"]["nearend"] > mos["mean_aecmos_echo"]["mic"]


def test_ideal_gain_is_the_clipped_magnitude_ratio():
    e = torch.tensor([[2 + 0j, 1j, 0j, 3 - 4j]])
    s = torch.tensor([[1 + 0j, 2 + 0j, 1j, 0j]])
    g = aec_pesq_components.ideal_gain(e, s)
    # |S| / |E| = 0.5, 2 -> 1 (clipped), E = 0 -> 1, S = 0 -> 0
    np.testing.assert_allclose(g.numpy(), [[0.5, 1.0, 1.0, 0.0]])
    # never louder than the error, and exactly |S| wherever |S| <= |E|
    assert torch.all((g * e).abs() <= e.abs())
    assert torch.isclose((g * e).abs()[0, 0], s.abs()[0, 0])
