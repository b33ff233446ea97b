"""Classical echo cancellers: ``nlms``, ``pbfdaf`` and the ``webrtc_aec3`` anchor."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy.signal import lfilter

from clarity_se.aec import AEC_MODULES, aec_names, build_aec
from clarity_se.aec.adaptive import FarEndGate, GccPhatDelayEstimator, TwoPathSelector
from clarity_se.aec.nlms import NLMS, NLMSConfig
from clarity_se.aec.pbfdaf import PBFDAF, PBFDAFConfig
from clarity_se.aec.webrtc_aec3 import INTERNAL_DELAY, WebRTCAEC3
from clarity_se.data.render.echo import EchoRenderOptions, EchoSceneRenderer, hearing_aid_path
from tests._aec_tree import make_data_root, speech_like
from tests.aec_contract import check_latency, check_shapes, check_streaming

FS = 16000
SYSTEMS = ("nlms", "pbfdaf", "webrtc_aec3")


def _build(name, **extra):
    return build_aec(OmegaConf.create({"name": name, **extra}))


def _erle(mic, out):
    return 10 * np.log10(np.sum(np.asarray(mic, float) ** 2) / np.sum(np.asarray(out, float) ** 2))


def _speech_echo(seconds, seed=0, delay=0, path=None, gain=0.5):
    """Speech-like far end through a hearing-aid path; returns (far, echo)."""
    far = np.concatenate([speech_like(seed + k, 1.2, 110 + 40 * k) for k in range(
        int(np.ceil(seconds / 1.2)))])[: int(seconds * FS)]
    path = hearing_aid_path(np.random.default_rng(seed)) if path is None else path
    echo = np.zeros_like(far)
    echo[delay:] = gain * np.convolve(far, path)[: far.size - delay]
    return far, echo


@pytest.mark.parametrize("name", SYSTEMS)
def test_contract(name):
    aec = _build(name)
    assert aec.name == name
    check_shapes(aec)
    check_latency(aec)
    check_streaming(aec, blocks=(1, 441, 4096) if name == "nlms" else (1, 37, 441, 4096))


def test_registry_and_latency_derivation():
    assert set(SYSTEMS) <= set(aec_names()) and set(AEC_MODULES) == set(aec_names())
    with pytest.raises(ValueError, match="aec.name: expected one of"):
        _build("nope")
    # derived, not declared: block - 1 + lookahead
    assert PBFDAF(PBFDAFConfig(block=256, lookahead=32)).latency_samples == 255 + 32
    assert NLMS(NLMSConfig(hop=32, lookahead=16)).latency_samples == 31 + 16
    assert WebRTCAEC3().latency_samples == 160 - 1 + INTERNAL_DELAY
    with pytest.raises(ValueError, match="pbfdaf: steps"):
        PBFDAFConfig(mu_max=2.0)
    with pytest.raises(ValueError, match="nlms: hop must divide"):
        NLMSConfig(hop=100)
    assert _build("pbfdaf", pbfdaf={"partitions": 4}).config.partitions == 4


@pytest.mark.parametrize("name", ["nlms", "pbfdaf"])
def test_converges_on_a_linear_echo(name):
    far, echo = _speech_echo(5.0, seed=3, delay=30)
    out = _build(name)(echo, far).output
    assert _erle(echo[-FS:], out[-FS:]) > 15.0
    assert _erle(echo[-FS:], out[-FS:]) > _erle(echo[FS : 2 * FS], out[FS : 2 * FS]) + 3.0


@pytest.mark.parametrize("name", ["nlms", "pbfdaf"])
def test_misalignment_of_40_samples_costs_nothing(name):
    # AR(1) noise far end (speech-like spectral tilt), hearing-aid path, no bulk delay
    rng = np.random.default_rng(4)
    far = lfilter([1.0], [1.0, -0.9], rng.standard_normal(3 * FS)) * 0.05
    echo = 0.5 * np.convolve(far, hearing_aid_path(np.random.default_rng(4)))[: far.size]
    aec = _build(name)
    tail = slice(-FS - 200, -200)  # the last 40 echo samples of a late loopback have no loopback
    aligned = _erle(echo[tail], aec(echo, far).output[tail])
    for shift in (40, -40):  # loopback late (the echo leads it), loopback early
        moved = np.roll(far, shift)
        if shift > 0:
            moved[:shift] = 0.0
        else:
            moved[shift:] = 0.0
        got = _erle(echo[tail], aec(echo, moved).output[tail])
        assert got > aligned - 1.0, (shift, got, aligned)


@pytest.mark.parametrize("name", ["nlms", "pbfdaf"])
def test_near_silent_far_end_does_not_diverge(name):
    rng = np.random.default_rng(5)
    near = np.concatenate([speech_like(9, 1.2, 150), speech_like(10, 1.2, 180)])
    for level in (1e-6, 1e-4):  # -120 and -80 dBFS far end, unrelated to the microphone
        far = level * rng.standard_normal(near.size)
        out = _build(name)(near, far).output.astype(float)
        assert np.max(np.abs(out)) < 2 * np.max(np.abs(near))
        assert 10 * np.log10(np.sum((out - near) ** 2) / np.sum(near**2)) < -30.0


def test_double_talk_keeps_the_near_end():
    far, echo = _speech_echo(5.0, seed=6, delay=20)
    near = np.zeros_like(far)
    near[3 * FS :] = speech_like(11, 2.0, 200)[: 2 * FS] * 0.5
    out = _build("pbfdaf")(echo + near, far).output.astype(float)
    residual = out[3 * FS :] - near[3 * FS :]
    # during double talk (SER +6 dB) the echo stays cancelled and the near end is not
    assert _erle(echo[3 * FS :], residual) > 6.0


@pytest.mark.parametrize("name", SYSTEMS)
def test_erle_never_below_zero_on_rendered_single_talk(name, tmp_path_factory):
    root = make_data_root(tmp_path_factory.mktemp("rec"))
    renderer = EchoSceneRenderer(root, EchoRenderOptions(clip_s=1.2, talk_mix=(1, 0, 0),
                                                         p_nonlinear=0.5, seed=21))
    aec = _build(name)
    for fileid in range(3):
        clip = renderer.render(fileid)
        out = aec(clip.mic.astype(np.float32), clip.farend.astype(np.float32)).output
        assert _erle(clip.mic, out) >= 0.0, (fileid, clip.meta["echo_path"])


def test_webrtc_output_is_aligned_with_the_microphone():
    rng = np.random.default_rng(7)
    near = np.concatenate([speech_like(12, 1.2, 140), speech_like(13, 1.2, 170)])
    out = WebRTCAEC3()(near, np.zeros_like(near)).output.astype(float)
    lags = range(-5, 6)
    corr = [np.dot(out[2000:-2000], np.roll(near, k)[2000:-2000]) for k in lags]
    assert abs(list(lags)[int(np.argmax(corr))]) <= 1
    noise = 0.05 * rng.standard_normal(2 * FS)  # broadband: the lag is exact
    out = WebRTCAEC3()(noise, np.zeros_like(noise)).output.astype(float)
    corr = [np.dot(out[2000:-2000], np.roll(noise, k)[2000:-2000]) for k in lags]
    assert list(lags)[int(np.argmax(corr))] == 0
    far, echo = _speech_echo(3.0, seed=8, delay=50)
    out = WebRTCAEC3()(echo + 1e-3 * rng.standard_normal(echo.size), far).output
    assert _erle(echo[-FS:], out[-FS:]) > 10.0


def test_gcc_phat_finds_positive_and_negative_lags():
    rng = np.random.default_rng(8)
    for lag in (300, -30):
        est = GccPhatDelayEstimator(window=1024, min_lag=-64, max_lag=960)
        x = rng.standard_normal(20000)
        d = np.roll(x, lag) + 0.3 * rng.standard_normal(x.size)
        found = None
        for t in range(3000, 20000 - 100, 512):
            r = est.update(x[t - 1024 - 960 : t + 64], d[t - 1024 : t])
            found = r if r is not None else found
        assert found == lag


def test_gate_and_selector():
    gate = FarEndGate(128)
    assert not gate.update(1e-9)  # below the absolute floor
    assert gate.update(1e-2)
    assert not gate.update(1e-2 * 10 ** (-4))  # 40 dB below the long-term level
    assert gate.update(1e-2 * 10 ** (-2))  # 20 dB below: still active
    sel = TwoPathSelector(128)
    decisions = [sel.update(1.0, 0.1, 1.0) for _ in range(3)]
    assert "copy" in decisions
    assert sel.update(1.0, 0.1, 5.0) == "clear" or sel.update(1.0, 0.1, 5.0) == "clear"
