"""The estimate-driven causal MVDR beamformer (clarity_se/dsp/mvdr.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FACTORISATION_TOL
from scipy.signal import lfilter

from clarity_se.dsp.mvdr import EstimateMVDR, mvdr

FS = 44100
#: the RTF estimators, and the column with the WPE dereverberation of the outputs and the
#: post-filter
OPTIONS = [{"rtf": "column"}, {"rtf": "whitening"},
           {"wpe_taps": 4, "wpe_max_hz": 8000.0, "postfilter_tau_s": 0.03},
           {"wpe_taps": 4, "wpe_guided": True}, {"wpe_taps": 4, "wpe_update_every": 4},
           {"wpe_taps": 4, "wpe_guided": True, "wpe_update_every": 3}]


def _si_sdr(est, ref):
    alpha = np.dot(est, ref) / np.dot(ref, ref)
    return 10 * np.log10(np.sum((alpha * ref) ** 2) / np.sum((est - alpha * ref) ** 2))


def _scene(n=3 * FS, seed=0):
    """A modulated target and a point interferer reaching six microphones with integer delays
    (a different delay pattern each), plus weak sensor noise."""
    rng = np.random.default_rng(seed)
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4 * np.arange(n) / FS)) ** 2
    target = lfilter([1.0], [1.0, -0.9], rng.standard_normal(n)) * envelope * 0.01
    noise = rng.standard_normal(n) * 0.02
    t_delays, n_delays = [0, 0, 1, 1, 2, 2], [0, 9, 3, 12, 6, 15]
    tgt = np.stack([np.concatenate([np.zeros(d), target])[:n] for d in t_delays])
    nse = np.stack([np.concatenate([np.zeros(d), noise])[:n] for d in n_delays])
    sensor = rng.standard_normal((6, n)) * 1e-4
    return tgt + nse + sensor, tgt


def test_oracle_estimate_removes_a_point_interferer_and_keeps_the_target():
    mixture, target = _scene()
    out = mvdr(mixture, target[:2])
    assert out.shape == (2, mixture.shape[1]) and out.dtype == np.float32
    skip = FS  # after the first second of the recursive averages
    for ear in (0, 1):
        before = _si_sdr(mixture[ear, skip:], target[ear, skip:])
        after = _si_sdr(out[ear, skip:].astype(np.float64), target[ear, skip:])
        assert after > before + 8.0, (ear, before, after)  # measured +10.1 dB (ear 0)


def test_no_burst_at_the_start_of_a_signal():
    """The first frames' covariances have rank below six: without the start-up loading the
    MVDR's weights are unbounded there and the first 10 ms of independent microphone noise came
    out 120 times louder than the microphones; with it, 1.01 times (benchmarks/mvdr_startup.py,
    the same signal)."""
    rng = np.random.default_rng(0)
    x = 0.05 * rng.standard_normal((6, FS // 2))
    estimate = 1e-3 * x[:2] + 3e-4 * rng.standard_normal((2, FS // 2))  # a quiet, poor estimate
    for options in ({}, {"wpe_taps": 16, "wpe_max_hz": 8000.0}):
        out = mvdr(x, estimate, **options)
        for start in range(0, FS // 2, FS // 100):  # 10 ms segments
            seg = slice(start, start + FS // 100)
            assert np.abs(out[:, seg]).max() <= 1.5 * np.abs(x[:2, seg]).max(), (options, start)
    with pytest.raises(ValueError, match="warmup_s"):
        EstimateMVDR(warmup_s=-1.0)


def test_postfilter_removes_what_the_estimate_does_not_explain():
    """With an oracle estimate in diffuse noise (independent per microphone, which the MVDR
    can only average) the post-filter raises the SI-SDR of the MVDR's output; with a silent
    estimate its gain is the floor."""
    rng = np.random.default_rng(3)
    n = 3 * FS
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3 * np.arange(n) / FS)) ** 4
    target = lfilter([1.0], [1.0, -0.9], rng.standard_normal(n)) * envelope * 0.01
    mixture = np.stack([target] * 6) + 0.03 * rng.standard_normal((6, n))
    plain = mvdr(mixture, mixture[:2] * 0 + target)
    post = mvdr(mixture, mixture[:2] * 0 + target, postfilter_tau_s=0.03)
    skip = FS
    for ear in (0, 1):
        before = _si_sdr(plain[ear, skip:].astype(np.float64), target[skip:])
        after = _si_sdr(post[ear, skip:].astype(np.float64), target[skip:])
        assert after > before + 1.0, (ear, before, after)  # measured 14.3 -> 16.6 dB (ear 0)
    silent = np.zeros((2, n))
    floor = mvdr(mixture, silent, postfilter_tau_s=0.03, postfilter_floor=0.25)
    np.testing.assert_allclose(floor[:, skip:], 0.25 * mvdr(mixture, silent)[:, skip:],
                               rtol=1e-5, atol=1e-9)  # fmt: skip
    with pytest.raises(ValueError, match="postfilter_floor"):
        EstimateMVDR(postfilter_tau_s=0.03, postfilter_floor=0.0)
    with pytest.raises(ValueError, match="postfilter_tau_s"):
        EstimateMVDR(postfilter_tau_s=-1.0)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_streamed_equals_whole_with_a_lagging_estimate(options):
    mixture, target = _scene(n=FS, seed=1)
    estimate = 0.5 * target[:2] + 0.1 * mixture[:2]
    whole = mvdr(mixture, estimate, **options)
    beamformer = EstimateMVDR(**options)
    rng = np.random.default_rng(2)
    outs, i, j, n = [], 0, 0, mixture.shape[1]
    while i < n:
        i2 = min(i + int(rng.integers(1, 2000)), n)
        j2 = max(i2 - 127, j)  # the estimate arrives 127 samples after the mixture
        outs.append(beamformer.process(mixture[:, i:i2], estimate[:, j:j2]))
        i, j = i2, j2
    outs.append(beamformer.process(mixture[:, :0], estimate[:, j:]))
    outs.append(beamformer.flush())
    streamed = np.concatenate(outs, axis=1)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, rtol=0, atol=1e-5 * np.abs(whole).max())


def test_one_hop_at_a_time_equals_whole():
    """The streamers' pattern (one 96-sample hop of the mixture and of the estimate per call:
    both framed by one FFT call) gives the whole-signal output."""
    mixture, target = _scene(n=FS // 2, seed=3)
    estimate = 0.5 * target[:2] + 0.1 * mixture[:2]
    whole = mvdr(mixture, estimate)
    beamformer = EstimateMVDR()
    hop = beamformer.stft.hop_length
    outs = [beamformer.process(mixture[:, i : i + hop], estimate[:, i : i + hop])
            for i in range(0, mixture.shape[1], hop)]  # fmt: skip
    streamed = np.concatenate([*outs, beamformer.flush()], axis=1)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, rtol=0, atol=1e-5 * np.abs(whole).max())


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_latency_with_an_estimate_that_looks_ahead(options):
    """The output before ``t`` is unchanged by input after ``t + 191`` when the estimate
    itself looks ``max_estimate_latency`` samples ahead."""
    beamformer = EstimateMVDR(**options)
    look = beamformer.max_estimate_latency
    assert beamformer.latency_samples == 191 and look == 191

    def run(mixture):
        est = np.zeros((2, mixture.shape[1]))
        est[:, : mixture.shape[1] - look] = 0.5 * mixture[:2, look:]  # reads `look` ahead
        return mvdr(mixture, est, **options)

    mixture, _ = _scene(n=FS // 2, seed=3)
    base = run(mixture)
    for t in (5000, 12345, 20000):
        changed = mixture.copy()
        changed[:, t + beamformer.latency_samples :] += 0.3
        out = run(changed)
        np.testing.assert_array_equal(out[:, :t], base[:, :t])
        assert np.abs(out[:, t:] - base[:, t:]).max() > 0  # the change does reach the output


@pytest.mark.parametrize("rtf", ["column", "whitening"])
def test_before_any_signal_the_output_is_the_reference_microphone(rtf):
    """Zero covariances: the RTF is the unit vector, the filter picks the front microphone."""
    beamformer = EstimateMVDR(rtf=rtf)
    mixture = np.random.default_rng(4).standard_normal((6, 2 * 96))
    out = beamformer.process(mixture, np.zeros((2, 0)))  # estimate not there yet
    np.testing.assert_allclose(out, mixture[:2, : out.shape[1]], atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="tau_s"):
        EstimateMVDR(tau_s=0)
    with pytest.raises(ValueError, match="loading"):
        EstimateMVDR(loading=-1)
    with pytest.raises(ValueError, match="lag"):
        EstimateMVDR(lag=0)
    with pytest.raises(ValueError, match="rtf must be one of"):
        EstimateMVDR(rtf="eigen")
    with pytest.raises(ValueError, match="wpe_taps"):
        EstimateMVDR(wpe_taps=-1)
    with pytest.raises(ValueError, match="wpe_max_hz"):
        EstimateMVDR(wpe_taps=4, wpe_max_hz=-1.0)
    with pytest.raises(ValueError, match="wpe_update_every"):
        EstimateMVDR(wpe_taps=4, wpe_update_every=0)
    with pytest.raises(ValueError, match="mixture must be"):
        EstimateMVDR().process(np.zeros((5, 10)), np.zeros((2, 10)))
    with pytest.raises(ValueError, match="estimate must be"):
        EstimateMVDR().process(np.zeros((6, 10)), np.zeros((1, 10)))
    with pytest.raises(ValueError, match="one length"):
        mvdr(np.zeros((6, 10)), np.zeros((2, 9)))


def _output_spectra(beamformer, mixture, estimate):
    """The spectra ``[2, frames, bins]`` that ``beamformer`` synthesises for the signals."""
    frames, synthesise = [], beamformer._synthesise

    def record(y):
        frames.append(y.copy())
        return synthesise(y)

    beamformer._synthesise = record
    beamformer.process(mixture, estimate)
    beamformer.flush()
    return np.concatenate(frames, axis=1)


def test_wpe_max_hz_dereverberates_only_the_bins_below_it():
    mixture, target = _scene(n=FS)
    estimate = target[:2]
    full = _output_spectra(EstimateMVDR(wpe_taps=4), mixture, estimate)
    none = _output_spectra(EstimateMVDR(wpe_taps=0), mixture, estimate)
    limited_bf = EstimateMVDR(wpe_taps=4, wpe_max_hz=8000.0)
    limited = _output_spectra(limited_bf, mixture, estimate)
    bins = limited_bf.wpe_bins
    assert bins == 93  # 92 x 44100 / 512 = 7924 Hz <= 8 kHz < 93 x 44100 / 512
    # each bin's WPE is independent of the others: below the limit as the full-band WPE, above
    # it the beamformer's output unchanged
    scale = np.abs(full).max()
    np.testing.assert_allclose(limited[..., :bins], full[..., :bins], rtol=0,
                               atol=FACTORISATION_TOL * scale)  # fmt: skip
    np.testing.assert_allclose(limited[..., bins:], none[..., bins:], rtol=0,
                               atol=FACTORISATION_TOL * scale)  # fmt: skip
    assert np.abs(full[..., :bins] - none[..., :bins]).max() > 1e-3 * scale  # the WPE acts
    assert EstimateMVDR(wpe_taps=4, wpe_max_hz=FS / 2).wpe_bins == 257


def test_reference_mix_adds_the_reference_microphones():
    """``reference_mix=beta``: ``(1 - beta)`` times the MVDR output plus ``beta`` times each
    ear's reference microphone (through the same analysis and synthesis: the reference itself
    after the first frames); ``beta = 1`` is the reference microphones alone."""
    mixture, target = _scene(n=FS // 2, seed=7)
    estimate = 0.7 * target[:2]
    alone = mvdr(mixture, estimate)
    both = mvdr(mixture, estimate, reference_mix=0.2)
    only = mvdr(mixture, estimate, reference_mix=1.0)
    # the numpy framing and overlap-add follow clarity_se.dsp.lowdelay_stft from sample 0
    stft = EstimateMVDR().stft
    front = torch.from_numpy(mixture[:2])
    round_trip = stft.synthesis(stft.analysis(front), mixture.shape[1]).numpy()
    np.testing.assert_allclose(only, round_trip, rtol=0, atol=1e-6)
    start = 1024  # after the synthesis window's first frames
    np.testing.assert_allclose(only[:, start:], mixture[:2, start:], rtol=0, atol=1e-5)
    np.testing.assert_allclose(both, 0.8 * alone + 0.2 * only, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="reference_mix"):
        EstimateMVDR(reference_mix=1.5)


def test_whitening_keeps_the_target_when_the_estimate_leaks_noise():
    """Covariance whitening (Markovich-Golan and Gannot 2015) against the covariance column
    when the estimate carries 30 % of the interferer: noise in ``Phi_s`` biases the column, not
    the principal generalised eigenvector."""
    mixture, target = _scene()
    estimate = target[:2] + 0.3 * (mixture[:2] - target[:2])
    skip, gain = FS, {}
    for rtf in ("column", "whitening"):
        out = mvdr(mixture, estimate, rtf=rtf).astype(np.float64)
        gain[rtf] = min(_si_sdr(out[e, skip:], target[e, skip:])
                        - _si_sdr(mixture[e, skip:], target[e, skip:]) for e in (0, 1))  # fmt: skip
    # measured: column +5.7 dB, whitening +18.1 dB (worse ear)
    assert gain["whitening"] > 12.0 and gain["whitening"] > gain["column"] + 6.0, gain


def test_whitening_converges_to_the_principal_generalised_eigenvector():
    """After a second of a stationary scene the warm-started power iteration's RTF equals
    the one from ``scipy.linalg.eigh(Phi_s, Phi_n + loading)`` (``Phi_n q`` of the largest
    eigenvalue's ``q``, over its first entry) in every bin with target energy."""
    from scipy.linalg import eigh

    mixture, target = _scene(n=FS, seed=6)
    bf = EstimateMVDR(rtf="whitening")
    bf.process(mixture, 0.8 * target[:2] + 0.1 * mixture[:2])
    phi_s, phi_n = bf.covariances()
    trace = np.trace(phi_n, axis1=1, axis2=2).real
    checked = 0
    for b in range(phi_s.shape[0]):
        if np.trace(phi_s[b]).real < 1e-3 * np.trace(phi_s, axis1=1, axis2=2).real.max():
            continue
        loaded = phi_n[b] + (bf.loading * trace[b] / 6 + 1e-12) * np.eye(6)
        _, vecs = eigh(phi_s[b], loaded)
        expected = loaded @ vecs[:, -1]
        got = np.linalg.cholesky(loaded) @ bf.v[b]
        np.testing.assert_allclose(got / got[0], expected / expected[0], rtol=0, atol=1e-3)
        checked += 1
    assert checked > 100, checked


def test_compiled_recursion_equals_the_equations_in_numpy():
    """The compiled kernel (packed lower triangles, Cholesky) against the docstring's equations
    with ``np.linalg.solve``, on the frames of a scene with a silent start."""
    from clarity_se.dsp import mvdr as module

    mixture, target = _scene(n=FS // 4, seed=5)
    mixture[:, :2000] = 0.0
    estimate = 0.6 * target[:2] + 0.05 * mixture[:2]
    bf = EstimateMVDR()
    stft = bf.stft
    x = stft.analysis_frames(torch.from_numpy(mixture).unfold(-1, stft.win_length,
                                                              stft.hop_length)).numpy()
    s = stft.analysis_frames(torch.from_numpy(estimate).unfold(-1, stft.win_length,
                                                               stft.hop_length)).numpy()
    lag, lam, eps, loading = bf.lag, bf.forget, module.EPS, bf.loading
    n_bins, eye = x.shape[-1], np.eye(6)
    phi_s = np.zeros((n_bins, 6, 6), complex)
    phi_n = np.zeros((n_bins, 6, 6), complex)
    expected = np.zeros((2, x.shape[1], n_bins), complex)
    for k in range(x.shape[1]):
        if k >= lag:
            xs, ss = x[:, k - lag], s[:, k - lag]
            ps, pn = np.abs(ss) ** 2, np.abs(xs[:2] - ss) ** 2
            m = np.mean(ps / np.maximum(ps + pn, 1e-30), axis=0)[:, None, None]
            outer = np.einsum("cb,db->bcd", xs, xs.conj())
            phi_s = lam * phi_s + (1 - lam) * m * outer
            phi_n = lam * phi_n + (1 - lam) * (1 - m) * outer
        ps_l = phi_s + eps * eye
        tr = np.trace(phi_n, axis1=1, axis2=2).real[:, None, None]
        rel = loading + bf.warm ** max(k - lag + 1, 0)  # with the start-up loading
        pn_l = phi_n + (rel * tr / 6 + eps) * eye
        for e in (0, 1):
            d = ps_l[:, :, e] / ps_l[:, e, e][:, None]
            num = np.linalg.solve(pn_l, d[..., None])[..., 0]
            w = num / np.einsum("bc,bc->b", d.conj(), num)[:, None]
            expected[e, k] = np.einsum("bc,cb->b", w.conj(), x[:, k])
    y = np.empty_like(expected)
    stats_x = np.ascontiguousarray(x[:, : x.shape[1] - lag])
    stats_s = np.ascontiguousarray(s[:, : x.shape[1] - lag])
    no_eig = np.zeros((n_bins, 6), complex)  # n_iter 0: the covariance column
    module._mvdr_frames(x, stats_x, stats_s, lag, bf.phi_s, bf.phi_n, lam, loading, eps, y,
                        no_eig, 0, 0.0, 0, bf.warm)  # fmt: skip
    assert np.abs(expected).max() > 0
    scale = np.abs(expected).max()
    np.testing.assert_allclose(y, expected, rtol=0, atol=FACTORISATION_TOL * scale)
    np.testing.assert_allclose(bf.covariances()[1], phi_n, rtol=0,
                               atol=1e-12 * np.abs(phi_n).max())  # fmt: skip


def test_estimate_gain_db_scales_the_estimate_before_the_mask():
    """``estimate_gain_db=g`` equals an estimate ``10^(g/20)`` times louder (the mask compares
    the estimate with the rest of the mixture, so the estimate's level matters: a quiet estimate
    gives another output); a non-finite gain is refused."""
    mixture, target = _scene(n=FS // 2, seed=5)
    quiet = 0.3 * target[:2]  # an estimate 10.5 dB below the target
    gain_db = -20 * np.log10(0.3)
    lifted = mvdr(mixture, quiet, estimate_gain_db=gain_db)
    scale = np.abs(lifted).max()
    np.testing.assert_allclose(lifted, mvdr(mixture, target[:2]), rtol=0,
                               atol=FACTORISATION_TOL * scale)  # fmt: skip
    assert np.abs(lifted - mvdr(mixture, quiet)).max() > 1e-3 * scale
    with pytest.raises(ValueError, match="estimate_gain_db"):
        EstimateMVDR(estimate_gain_db=float("inf"))
