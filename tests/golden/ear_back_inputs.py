"""Deterministic synthetic inputs of the back-stage ear-model tests (numpy only).

Shared by ``make_ear_back_golden.py`` (pyclarity venv) and
``tests/ear_model/test_ear_back.py`` so that the fixtures only hold the reference outputs.
Uses numpy's legacy ``RandomState``, whose streams are stable across numpy versions.
"""

import numpy as np

ALIGN_DELAYS = (37, -50, 0, 239, -239)


def smooth_noise(rs, shape, width=25):
    """Low-passed Gaussian noise (moving average) along the last axis."""
    x = rs.standard_normal(shape[:-1] + (shape[-1] + width,))
    kernel = np.ones(width) / width
    return np.apply_along_axis(lambda r: np.convolve(r, kernel, "valid")[: shape[-1]], -1, x)


def align_inputs():
    """Reference/output pairs [5, 700] whose output is the reference shifted by ALIGN_DELAYS."""
    rs = np.random.RandomState(101)
    n = 700
    ref = smooth_noise(rs, (len(ALIGN_DELAYS), n + 600))  # zero-mean, like BM motion
    out = np.zeros((len(ALIGN_DELAYS), n))
    for i, d in enumerate(ALIGN_DELAYS):
        # output delayed by d samples relative to the reference, plus a little noise
        out[i] = ref[i, 300 - d : 300 - d + n] + 0.05 * rs.standard_normal(n)
    return ref[:, 300 : 300 + n].copy(), out


def align_short_inputs():
    """A pair shorter than the 240-sample lag range: [1, 150]."""
    rs = np.random.RandomState(102)
    ref = np.abs(smooth_noise(rs, (1, 150), width=9))
    out = np.roll(ref, 20, axis=-1) + 0.01 * rs.standard_normal((1, 150))
    return ref, out


def envelope_sl_inputs():
    """Linear envelopes (with exact zeros), BM motion [3, 400] and IHC attenuation [3] (dB)."""
    rs = np.random.RandomState(103)
    env = np.exp(2.5 * smooth_noise(rs, (3, 400)) - 5.0)
    env[:, 50:80] = 0.0
    bm = rs.standard_normal((3, 400)) * env
    attn = np.array([0.0, 7.5, 21.0])
    return env, bm, attn


def ihc_inputs():
    """dB SL envelopes [2, 1500] with exact-zero stretches (silence), and BM motion."""
    rs = np.random.RandomState(104)
    env_db = np.maximum(45.0 + 60.0 * smooth_noise(rs, (2, 1500), width=40), 0.0)
    env_db[:, 600:900] = 0.0
    bm = rs.standard_normal((2, 1500)) * (env_db + 1.0)
    return env_db, bm


def group_delay_inputs():
    """Bandwidth factors [2, 32] in [1, 3.5]."""
    rs = np.random.RandomState(105)
    return 1.0 + 2.5 * rs.random_sample((2, 32))


def rms_sl_inputs():
    """RMS averages [2, 32] of the envelope and control paths (linear, RMS 1 == 65 dB SPL)."""
    rs = np.random.RandomState(106)
    ref = 10 ** (rs.uniform(-4.0, 0.5, (2, 32)))
    ctl = ref * 10 ** (rs.uniform(-0.5, 1.0, (2, 32)))
    ref[0, 3] = 0.0
    return ref, ctl


HEARING_LOSSES = {
    "nh": np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    "mild": np.array([10.0, 15.0, 20.0, 30.0, 40.0, 45.0]),
    "moderate": np.array([35.0, 40.0, 45.0, 55.0, 65.0, 70.0]),
    "severe": np.array([60.0, 65.0, 70.0, 75.0, 85.0, 90.0]),
}
