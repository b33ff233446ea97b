"""Online WPE dereverberation (clarity_se/dsp/wpe.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FACTORISATION_TOL
from scipy.signal import fftconvolve, lfilter

from clarity_se.dsp.lowdelay_stft import LowDelaySTFT
from clarity_se.dsp.wpe import EPS, MAX_COEFFICIENT, OnlineWPE

FS = 44100
STFT = LowDelaySTFT(512, 96, 192)  # the beamformer's
BINS = STFT.n_bins


def _reverberant(seconds=6.0, rt60=0.3, seed=0):
    """Two microphones (3 samples apart) hear a dry source with a fluctuating level (a new
    level every 50 ms, over 15 dB, AR(1)-coloured noise) directly and through an exponentially
    decaying random tail from 15 ms on (``rt60`` s, 0: none); returns the low-delay STFT
    spectra of the mixture and of its direct part, ``[2, F, bins]``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    level = np.repeat(10 ** rng.uniform(-1.5, 0, n // 2205 + 1), 2205)[:n]
    source = lfilter([1.0], [1.0, -0.9], rng.standard_normal(n)) * level
    t = np.arange(int(0.8 * FS)) / FS
    direct, mixture = [], []
    for c in range(2):
        d = np.concatenate([np.zeros(3 * c), source])[:n]
        tail = np.zeros_like(t)
        if rt60:
            tail = rng.standard_normal(len(t)) * 10 ** (-3 * t / rt60) * 0.05 * (t >= 0.015)
        direct.append(d)
        mixture.append(d + fftconvolve(source, tail)[:n])
    spectra = STFT.analysis(torch.from_numpy(np.array(mixture + direct))).numpy()
    return spectra[:2], spectra[2:]


def _wpe(**kwargs):
    args = {"n_channels": 2, "n_bins": BINS, "taps": 16, "delay": 6, "stride": 3,
            "forget": float(np.exp(-96 / FS))}  # fmt: skip
    return OnlineWPE(**{**args, **kwargs})


def _db(x):
    return 10 * np.log10(np.sum(np.abs(x) ** 2))


def _reference(y, taps, delay, stride, forget, floor=1e-3, every=1):
    """The module docstring's recursion per bin with complex matrices (numpy, no packing),
    updating on frames ``k`` with ``k % every == 0`` with forgetting ``forget ** every``."""
    n_ch, n_frames, n_bins = y.shape
    dim, alpha = n_ch * taps, forget**every
    out = np.empty_like(y)
    for b in range(n_bins):
        p_inv, filt, level = np.eye(dim, dtype=complex), np.zeros((dim, n_ch), complex), 0.0
        for k in range(n_frames):
            x = np.concatenate([y[:, k - delay - t * stride, b] if k - delay - t * stride >= 0
                                else np.zeros(n_ch, complex) for t in range(taps)])  # fmt: skip
            e = y[:, k, b] - filt.conj().T @ x
            out[:, k, b] = e
            if k % every:
                continue
            power = np.mean(np.abs(y[:, k, b]) ** 2)
            level = alpha * level + (1 - alpha) * power
            px = p_inv @ x
            g = px / (alpha * (max(power, floor * level) + EPS) + np.real(x.conj() @ px))
            filt = filt + np.outer(g, e.conj())
            scale = 1 / alpha if np.trace(p_inv).real < dim else 1.0
            p_inv = (p_inv - np.outer(g, px.conj())) * scale
            if np.abs(filt).max() > MAX_COEFFICIENT:
                p_inv, filt = np.eye(dim, dtype=complex), np.zeros((dim, n_ch), complex)
    return out


@pytest.mark.parametrize("every", [1, 4])
def test_equals_the_equations(every):
    """The compiled kernel (packed triangles, loops over bins) equals the recursion written
    with complex matrices, updating on every frame or on every 4th, over any split into
    calls; the prediction of the frames between updates uses the latest filter."""
    y, _ = _reverberant(seconds=1.0, seed=4)
    y = np.ascontiguousarray(y[:, :, 20:24])
    forget = float(np.exp(-96 / (0.2 * FS)))
    expected = _reference(y, 3, 6, 3, forget, every=every)
    wpe = OnlineWPE(2, 4, 3, 6, 3, forget, update_every=every)
    out = np.concatenate([wpe.process(y[:, a:b]) for a, b in ((0, 7), (7, 250), (250, None))],
                         axis=1)  # fmt: skip
    assert np.abs(out - y).max() > 0.1 * np.abs(y).max()  # the filter acts
    np.testing.assert_allclose(out, expected, rtol=0, atol=FACTORISATION_TOL * np.abs(y).max())


@pytest.mark.parametrize("every", [1, 4])
def test_removes_late_reverberation_and_keeps_the_direct_sound(every):
    """After 2 s of adaptation (RLS time constant 1 s), the late tail of a 0.3 s RT60 room
    (about as strong as the direct sound here) falls by over 4 dB relative to the direct
    sound (this test's scene: +1.0 dB -> -4.6 dB; updating every 4th frame: -4.3 dB)."""
    y, direct = _reverberant()
    out = _wpe(update_every=every).process(y)
    tail = slice(y.shape[1] // 3, None)
    before = _db(y[:, tail] - direct[:, tail]) - _db(direct[:, tail])
    after = _db(out[:, tail] - direct[:, tail]) - _db(direct[:, tail])
    assert before > -1.0, before  # the test's reverberation is strong
    assert after < before - 4.0, (before, after)


def test_dry_signal_passes_unchanged():
    """Without reverberation the prediction finds nothing: output within 0.5 dB of the
    input and the residual 20 dB below it."""
    y, _ = _reverberant(rt60=0.0, seed=1)
    out = _wpe().process(y)
    tail = slice(y.shape[1] // 3, None)
    assert abs(_db(out[:, tail]) - _db(y[:, tail])) < 0.5
    assert _db(out[:, tail] - y[:, tail]) < _db(y[:, tail]) - 20.0


def test_any_split_into_calls_gives_the_same_output_and_only_the_past_counts():
    y, _ = _reverberant(seconds=1.0, seed=2)
    whole = _wpe(taps=4).process(y)
    wpe = _wpe(taps=4)
    parts = [wpe.process(y[:, a:b]) for a, b in ((0, 1), (1, 130), (130, 131), (131, None))]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, rtol=0,
                               atol=1e-12 * np.abs(whole).max())  # fmt: skip
    changed = y.copy()
    changed[:, 200:] *= 2.0
    out = _wpe(taps=4).process(changed)
    np.testing.assert_array_equal(out[:, :200], whole[:, :200])
    wpe.reset()
    np.testing.assert_array_equal(wpe.process(y), whole)


def test_bounded_state_in_silence_and_with_a_short_memory():
    """Digital silence does not grow ``P`` (its trace stops at its initial ``D``, give or take
    one frame's forgetting); a short memory (0.3 s) for 32 coefficients keeps every
    coefficient within :data:`MAX_COEFFICIENT` and the output finite."""
    y, _ = _reverberant(seconds=8.0, rt60=0.6, seed=3)
    wpe = _wpe(forget=float(np.exp(-96 / (0.3 * FS))))
    dim = 2 * wpe.taps
    diag = [i * (i + 1) // 2 + i for i in range(dim)]
    for part in np.array_split(y, 8, axis=1):
        out = wpe.process(part)
        assert np.all(np.isfinite(out))
        assert np.abs(wpe.filt[0] + 1j * wpe.filt[1]).max() <= MAX_COEFFICIENT
    trace_before = wpe.p_inv[0][diag].sum(axis=0)
    silence = np.zeros((2, 8000, BINS), complex)  # 17 s
    out = wpe.process(silence)
    assert np.all(out[:, wpe.hist.shape[1] :] == 0)  # once the history holds only silence
    trace = wpe.p_inv[0][diag].sum(axis=0)
    assert np.all(trace <= np.maximum(trace_before, dim) / wpe.forget * (1 + 1e-9))
    assert np.all(np.isfinite(wpe.process(y[:, :400])))


def test_errors():
    with pytest.raises(ValueError, match="taps"):
        _wpe(taps=0)
    with pytest.raises(ValueError, match="forget"):
        _wpe(forget=1.0)
    with pytest.raises(ValueError, match="floor"):
        _wpe(floor=-1.0)
    with pytest.raises(ValueError, match="update_every"):
        _wpe(update_every=0)
    with pytest.raises(ValueError, match=r"frames must be \[2, F, 257\]"):
        _wpe().process(np.zeros((2, 5, 23), complex))


def test_guided_by_the_direct_sound_power():
    """Guided by the direct sound's power, two frames late (``guide_lag=2``): the late tail
    falls further than with the observation's power (the observation's power counts the tail as
    desired signal) and the output is the same for any split into calls."""
    y, direct = _reverberant()
    lam = np.zeros(y.shape[1:])
    lam[2:] = np.mean(np.abs(direct[:, :-2]) ** 2, axis=0)  # frame k carries frame k - 2's
    plain = _wpe().process(y)
    guided = _wpe(guide_lag=2).process(y, lam)
    tail = slice(y.shape[1] // 3, None)

    def late(out):
        return _db(out[:, tail] - direct[:, tail]) - _db(direct[:, tail])

    # this test's scene: -4.6 dB -> -5.2 dB
    assert late(guided) < late(plain) - 0.3, (late(plain), late(guided))
    wpe = _wpe(taps=4, guide_lag=2)
    whole = wpe.process(y[:, :200], lam[:200])
    wpe.reset()
    parts = [wpe.process(y[:, a:b], lam[a:b]) for a, b in ((0, 1), (1, 77), (77, 200))]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, rtol=0,
                               atol=1e-12 * np.abs(whole).max())  # fmt: skip
    with pytest.raises(ValueError, match="lam must be"):
        wpe.process(y[:, :3])
    with pytest.raises(ValueError, match="guide_lag"):
        _wpe(guide_lag=-1)
