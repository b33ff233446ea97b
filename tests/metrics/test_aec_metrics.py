"""Echo-track metrics: ERLE, SI-SDR, PESQ-WB and AECMOS (golden values from speechmos)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    FIXTURES,  # noqa: E402
    GOLDEN_AECMOS_FEATURES_ABS,
    GOLDEN_AECMOS_MOS_ABS,
)

from clarity_se.metrics.aec import (
    _hz_to_mel,
    aecmos,
    aecmos_features,
    erle,
    erle_over_time,
    mel_filterbank,
    pesq_wb,
    si_sdr,
)
from tests._aec_tree import speech_like
from tests.golden.make_aecmos_golden import CASES, aecmos_inputs

pytestmark = pytest.mark.golden

GOLDEN = FIXTURES / "aecmos_golden.npz"
FS = 16000


def test_erle_and_its_time_course():
    rng = np.random.default_rng(0)
    mic = 0.1 * rng.standard_normal(2 * FS)
    assert erle(mic=mic, output=0.1 * mic) == pytest.approx(20.0)
    gain = np.where(np.arange(mic.size) < FS, 1.0, 0.01)
    out = mic * gain
    assert erle(mic=mic, output=out, skip_s=1.0) == pytest.approx(40.0)
    assert erle(mic=mic, output=np.zeros_like(mic)) == np.inf
    assert np.isnan(erle(mic=np.zeros(10), output=np.zeros(10)))
    times, values = erle_over_time(mic=mic, output=out, frame_s=0.1, hop_s=0.05)
    assert times[0] == pytest.approx(0.05)
    np.testing.assert_allclose(values[times < 0.9], 0.0, atol=1e-9)
    np.testing.assert_allclose(values[times > 1.1], 40.0, atol=1e-9)
    quiet = mic.copy()
    quiet[: FS // 2] = 0.0
    _, values = erle_over_time(mic=quiet, output=quiet)
    assert np.isnan(values[0]) and not np.isnan(values[-1])
    with pytest.raises(ValueError, match="erle: mic has"):
        erle(mic=mic, output=mic[:-1])
    with pytest.raises(ValueError, match="output: contains NaN"):
        erle(mic=mic, output=np.full_like(mic, np.nan))


def test_si_sdr():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal(4000)
    noise = rng.standard_normal(4000)
    noise -= np.dot(noise, ref) / np.dot(ref, ref) * ref  # orthogonal to ref
    noise *= np.linalg.norm(ref) / np.linalg.norm(noise) * 0.1
    assert si_sdr(reference=ref, estimate=3.0 * ref + noise * 3.0) == pytest.approx(20.0)
    assert si_sdr(reference=ref, estimate=-2 * ref) == np.inf
    assert np.isnan(si_sdr(reference=np.zeros(5), estimate=np.ones(5)))


def test_pesq_wb_orders_quality():
    clean = np.concatenate([speech_like(5, 1.2, 130), speech_like(6, 1.2, 180)]) * 0.5
    rng = np.random.default_rng(2)
    assert pesq_wb(reference=clean, processed=clean) > 4.4
    light = pesq_wb(reference=clean, processed=clean + 0.003 * rng.standard_normal(clean.size))
    heavy = pesq_wb(reference=clean, processed=clean + 0.05 * rng.standard_normal(clean.size))
    assert 1.0 <= heavy < light < 4.5
    assert np.isnan(pesq_wb(reference=np.zeros(FS), processed=np.zeros(FS)))
    with pytest.raises(ValueError, match="16000 Hz"):
        pesq_wb(reference=clean, processed=clean, sample_rate=8000)


def test_mel_filterbank_matches_the_slaney_scale():
    fb = mel_filterbank()
    assert fb.shape == (160, 257)
    centres = np.fft.rfftfreq(513, 1 / FS)[np.argmax(fb, axis=1)]
    assert np.all(np.diff(centres) >= 0)
    assert _hz_to_mel(np.array(1000.0)) == pytest.approx(15.0)  # linear below 1 kHz
    t = np.arange(FS) / FS
    feats = aecmos_features(0.5 * np.sin(2 * np.pi * 1000 * t))
    band = int(np.argmax(feats[10]))
    assert abs(centres[band] - 1000) < 70
    assert feats.max() == pytest.approx(1.0)  # power_to_db(ref=max) + 40, / 40
    assert feats.min() >= -1.0 - 1e-12  # top_db = 80


def test_aecmos_matches_speechmos():
    golden = np.load(GOLDEN)
    _, mic, _ = aecmos_inputs("dt")
    np.testing.assert_allclose(
        aecmos_features(mic), golden["features"], atol=GOLDEN_AECMOS_FEATURES_ABS
    )
    for (echo_ref, deg_ref), talk_type in zip(golden["scores"], CASES, strict=True):
        lpb, mic, enh = aecmos_inputs(talk_type)
        echo_mos, deg_mos = aecmos(loopback=lpb, mic=mic, enhanced=enh, talk_type=talk_type)
        assert echo_mos == pytest.approx(echo_ref, abs=GOLDEN_AECMOS_MOS_ABS)
        assert deg_mos == pytest.approx(deg_ref, abs=GOLDEN_AECMOS_MOS_ABS)


def test_aecmos_ranks_cancellation_and_checks_input():
    lpb, mic, _ = aecmos_inputs("st")
    none, _ = aecmos(loopback=lpb, mic=mic, enhanced=mic, talk_type="st")
    full, _ = aecmos(loopback=lpb, mic=mic, enhanced=1e-4 * mic, talk_type="st")
    assert full > none + 1.0
    with pytest.raises(ValueError, match="talk_type"):
        aecmos(loopback=lpb, mic=mic, enhanced=mic, talk_type="double")
    with pytest.raises(ValueError, match=r"mic must be in \[-1, 1\]"):
        aecmos(loopback=lpb, mic=2 * mic / np.max(np.abs(mic)), enhanced=mic, talk_type="st")
