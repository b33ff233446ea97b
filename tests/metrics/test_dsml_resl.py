"""DSML / RESL (Ivry et al. 2021): analytic cases."""

from __future__ import annotations

import numpy as np
import pytest

from clarity_se.metrics.dsml_resl import CAP_DB, dsml_resl, suppressor_gain


@pytest.fixture(scope="module")
def signals():
    rng = np.random.default_rng(0)
    speech = rng.standard_normal(16000) * 0.1
    residual = rng.standard_normal(16000) * 0.05
    return speech, speech + residual


def test_identity_gain(signals):
    speech, e = signals
    dsml, resl = dsml_resl(suppressor_input=e, output=e, speech=speech)
    assert dsml == CAP_DB and resl == pytest.approx(0.0, abs=1e-5)


def test_zero_gain(signals):
    speech, e = signals
    dsml, resl = dsml_resl(suppressor_input=e, output=np.zeros_like(e), speech=speech)
    assert dsml == 0.0 and resl == CAP_DB


@pytest.mark.parametrize("c", [0.1, 0.5, 0.9])
def test_constant_gain_is_no_distortion(signals, c):
    speech, e = signals
    dsml, resl = dsml_resl(suppressor_input=e, output=c * e, speech=speech)
    assert resl == pytest.approx(-20 * np.log10(c), abs=1e-4)
    assert dsml > 60.0  # compensated: a constant attenuation does not distort
    d, r, g_hat = dsml_resl(suppressor_input=e, output=c * e, speech=speech,
                            return_speech_gain=True)
    assert (d, r) == (dsml, resl) and g_hat == pytest.approx(c, rel=1e-4)
    assert r + 20 * np.log10(g_hat) == pytest.approx(0.0, abs=1e-3)  # at the speech's level


def test_gain_that_tracks_the_residual_trades_dsml_for_resl():
    """Suppress the half of the signal that holds the residual: RESL rises, DSML falls."""
    rng = np.random.default_rng(1)
    speech = rng.standard_normal(32000) * 0.1
    residual = np.zeros(32000)
    residual[16000:] = rng.standard_normal(16000) * 0.2  # residual echo in the second half only
    e = speech + residual
    levels = []
    for atten in (1.0, 0.5, 0.1):
        out = e.copy()
        out[16000:] *= atten
        levels.append(dsml_resl(suppressor_input=e, output=out, speech=speech))
    dsml, resl = np.array(levels).T
    assert np.all(np.diff(resl) > 3.0) and np.all(np.diff(dsml[1:]) < 0) and dsml[1] < CAP_DB


def test_double_talk_mask_and_errors(signals):
    speech, e = signals
    s = speech.copy()
    s[:8000] = 0.0  # near-end silent in the first half: single talk there
    dsml_all, _ = dsml_resl(suppressor_input=s + (e - speech), output=0.5 * (s + e - speech),
                            speech=s, double_talk_only=True)  # fmt: skip
    assert dsml_all > 60.0
    g = suppressor_gain(suppressor_input=e, output=0.25 * e)
    assert g.shape == e.shape and np.allclose(g, 0.25, atol=1e-6)
    with pytest.raises(ValueError, match="equal length"):
        suppressor_gain(suppressor_input=e, output=e[:-1])
    with pytest.raises(ValueError, match="speech"):
        dsml_resl(suppressor_input=e, output=e, speech=speech[:-1])
