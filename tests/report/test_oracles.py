"""benchmarks/oracles.py: ceilings that know the target, scored by bench_enhancer_quality.py."""

import importlib.util
import json
import sys

import numpy as np
import pytest
from _cec2_tree import make_scene
from _eval_tree import DURATION_S, SR, make_eval_tree
from conftest import REPO

from clarity_se.data.audio_io import read_audio
from clarity_se.data.cec2 import CEC2Dataset
from clarity_se.data.scene import save_scenes
from clarity_se.metrics.scene import make_reference

sys.path.insert(0, str(REPO / "benchmarks"))
import oracles  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "bench_enhancer_quality", REPO / "benchmarks" / "bench_enhancer_quality.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def bench_read(path):
    return read_audio(path)[0]


def _snr_db(estimate, target):
    return 10 * np.log10(np.sum(target**2) / np.sum((estimate - target) ** 2))


def test_ideal_ratio_mask_passes_clean_speech_removes_pure_noise_and_raises_snr():
    rng = np.random.default_rng(0)
    n = SR // 2
    t = np.arange(n) / SR
    speech = (np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 4 * t)))[None].repeat(2, 0)
    noise = 0.5 * rng.standard_normal((2, n))
    core = slice(2048, n - 2048)  # away from the STFT's edge frames
    assert oracles.ideal_ratio_mask(speech, speech).shape == speech.shape
    silent = oracles.ideal_ratio_mask(noise, np.zeros_like(noise))
    assert np.max(np.abs(silent)) == 0.0
    before = _snr_db((speech + noise)[:, core], speech[:, core])
    for lowdelay in (False, True):
        clean = oracles.ideal_ratio_mask(speech, speech, lowdelay=lowdelay)
        np.testing.assert_allclose(clean[:, core], speech[:, core], atol=1e-9)
        masked = oracles.ideal_ratio_mask(speech + noise, speech, lowdelay=lowdelay)
        after = _snr_db(masked[:, core], speech[:, core])
        assert after > before + 10  # a tone in white noise: most bins are noise only
    with pytest.raises(ValueError, match="same"):
        oracles.ideal_ratio_mask(speech, speech[:, :-1])
    with pytest.raises(ValueError, match="at least 4"):
        oracles.ideal_ratio_mask(speech, speech, window=2)


def test_oracle_outputs_and_residual_mix():
    rng = np.random.default_rng(1)
    mixture, target, anechoic = (rng.standard_normal((2, 4000)) for _ in range(3))
    np.testing.assert_array_equal(oracles.oracle_output("target_CH1", mixture, target, anechoic),
                                  target)  # fmt: skip
    np.testing.assert_array_equal(oracles.oracle_output("reference", mixture, target, anechoic),
                                  make_reference(anechoic.T, target.T).T)  # fmt: skip
    mixed = oracles.oracle_output("target_CH1", mixture, target, anechoic, residual_mix=0.25)
    np.testing.assert_allclose(mixed, 0.75 * target + 0.25 * mixture, atol=1e-15)
    with pytest.raises(ValueError, match="unknown oracle"):
        oracles.oracle_output("wiener", mixture, target, anechoic)
    with pytest.raises(ValueError, match="residual_mix"):
        oracles.oracle_output("irm", mixture, target, anechoic, residual_mix=1.5)


def test_oracle_mvdr_is_the_beamformer_driven_by_the_target():
    from clarity_se.dsp.mvdr import mvdr

    rng = np.random.default_rng(2)
    microphones = rng.standard_normal((6, 6000)).astype(np.float32)
    target, anechoic = 0.5 * microphones[:2], rng.standard_normal((2, 6000))
    out = oracles.oracle_output("mvdr", microphones[:2], target, anechoic,
                                microphones=microphones)  # fmt: skip
    np.testing.assert_array_equal(out, mvdr(microphones, target).astype(np.float64))
    with pytest.raises(ValueError, match="six microphones"):
        oracles.oracle_output("mvdr", microphones[:2], target, anechoic)


def test_oracle_mvdr_wpe_kinds_are_the_enhancers_back_end():
    """``mvdr_wpe`` is the enhancers' default back end (beamformer and WPE) driven by
    ``target_CH1``, ``mvdr_anechoic_wpe`` the same driven by the anechoic target; the WPE
    changes the output."""
    from clarity_se.dsp.mvdr import mvdr
    from clarity_se.enhancers.beamformed import ENHANCER_DEFAULTS

    rng = np.random.default_rng(3)
    microphones = rng.standard_normal((6, 6000)).astype(np.float32)
    target, anechoic = 0.5 * microphones[:2], 0.3 * microphones[:2] + 0.1 * microphones[2:4]
    wpe = oracles.oracle_output("mvdr_wpe", microphones[:2], target, anechoic,
                                microphones=microphones)  # fmt: skip
    np.testing.assert_array_equal(wpe, mvdr(microphones, target, **ENHANCER_DEFAULTS))
    assert not np.allclose(wpe, mvdr(microphones, target))
    dry = oracles.oracle_output("mvdr_anechoic_wpe", microphones[:2], target, anechoic,
                                microphones=microphones)  # fmt: skip
    np.testing.assert_array_equal(dry, mvdr(microphones, anechoic, **ENHANCER_DEFAULTS))
    with pytest.raises(ValueError, match="mvdr_wpe needs all six microphones"):
        oracles.oracle_output("mvdr_wpe", microphones[:2], target, anechoic)


@pytest.fixture()
def dev_set(tmp_path):
    root = make_eval_tree(tmp_path / "data", {"S06001": ["L0001", "L0002"]})
    n = int(DURATION_S * SR)
    scene = make_scene("S06001", duration=n, t0=2000, t1=n - 2000)
    save_scenes(root / "clarity_data" / "metadata" / "scenes.dev.json", [scene])
    return root


def test_bench_scores_oracles_as_systems(dev_set, tmp_path):
    """oracle/target_CH1 is scored against target_CH1 as the target itself, oracle/reference
    against the official reference, for every listener of the scene; oracle/irm lies between
    pass-through and the target; an unknown oracle or option is refused."""
    out = tmp_path / "q.json"
    assert bench.main(["--root", str(dev_set), "--systems", "oracle/target_CH1",
                       "oracle/reference", "oracle/irm", "oracle/irm_lowdelay", "--no-evaluate",
                       "--out", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    per_scene = result["per_scene_si_sdr_db"]
    assert per_scene["oracle/target_CH1"]["target_CH1"]["S06001"] > 60
    assert per_scene["oracle/reference"]["anechoic"]["S06001"] > 60
    for kind in ("irm", "irm_lowdelay"):
        irm = per_scene[f"oracle/{kind}"]["target_CH1"]["S06001"]
        assert per_scene["passthrough"]["target_CH1"]["S06001"] + 3 < irm < 60
    exp = dev_set / "exp_oracle_target_CH1" / "enhanced_signals"
    assert sorted(p.name for p in exp.iterdir()) == ["S06001_L0001_enhanced.wav",
                                                     "S06001_L0002_enhanced.wav"]  # fmt: skip
    written = bench_read(exp / "S06001_L0001_enhanced.wav")
    target = CEC2Dataset(dev_set).load_target("S06001").numpy().T
    np.testing.assert_allclose(written, target, atol=1e-7)  # float32 WAV of int16 / 32768
    assert bench.main(["--root", str(dev_set), "--systems", "oracle/target_CH1", "--set",
                       "oracle/target_CH1:residual_mix=0.5", "--no-evaluate",
                       "--out", str(out)]) == 0  # fmt: skip
    mixed = bench_read(exp / "S06001_L0001_enhanced.wav")
    mixture = CEC2Dataset(dev_set).load_mixture("S06001").numpy()[:2].T
    np.testing.assert_allclose(mixed, 0.5 * (target + mixture), atol=1e-7)
    with pytest.raises(SystemExit):
        bench.main(["--root", str(dev_set), "--systems", "oracle/wiener", "--no-evaluate",
                    "--out", str(out)])  # fmt: skip
    assert bench.main(["--root", str(dev_set), "--systems", "oracle/irm", "--set",
                       "oracle/irm:checkpoint=x.pt", "--no-evaluate", "--out", str(out)]) == 1
