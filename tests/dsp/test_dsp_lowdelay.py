"""clarity_se.dsp: low-delay STFT (perfect reconstruction, latency, streaming) and resampling."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import scipy.signal
import torch

import clarity_se.dsp.lowdelay_stft as lowdelay_stft
import clarity_se.dsp.polyphase as resample
from clarity_se.dsp.lowdelay_stft import (
    LowDelaySTFT,
    asymmetric_windows,
    frame_signal,
    num_frames,
    overlap_add,
    periodic_hann,
)
from clarity_se.dsp.polyphase import PolyphaseResampler

GEOMETRIES = [(512, 96, 192, 0), (64, 8, 16, 0), (64, 8, 32, 4), (32, 8, 32, 0), (48, 5, 10, 3)]


def _signal(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("K,R,S,d", GEOMETRIES)
def test_windows_overlap_add_to_one(K, R, S, d):
    analysis, synthesis = asymmetric_windows(K, R, S, d)
    assert np.all(analysis[:d] == 0) and np.all(synthesis[: K - S] == 0)
    assert analysis.max() <= 1 + 1e-12 and np.all(analysis[d + 1 :] > 0)
    product = analysis * synthesis
    total = np.zeros(K + 10 * R)
    for start in range(0, total.size - K + 1, R):
        total[start : start + K] += product
    steady = total[K : total.size - K]  # away from the ends, every sample gets S / R segments
    np.testing.assert_allclose(steady, 1.0, atol=1e-12)


def test_symmetric_case_is_square_root_hann():
    analysis, synthesis = asymmetric_windows(64, 32, 64)
    root = np.sqrt(periodic_hann(64))
    np.testing.assert_allclose(analysis, root, atol=1e-12)
    np.testing.assert_allclose(synthesis, root, atol=1e-12)


@pytest.mark.parametrize("K,R,S,d", GEOMETRIES)
@pytest.mark.parametrize("n_time", [1, 7, 1001])
def test_perfect_reconstruction_whole_signal(K, R, S, d, n_time):
    stft = LowDelaySTFT(K, R, S, d)
    x = _signal(2, 3, n_time)
    spec = stft.analysis(x)
    assert spec.shape == (2, 3, num_frames(n_time, R, S), K // 2 + 1)
    torch.testing.assert_close(stft.synthesis(spec, n_time), x, rtol=0, atol=1e-12)
    # float32 in, float32 out, same reconstruction within float32 rounding
    x32 = x.float()
    out32 = stft(x32)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32, x32, rtol=0, atol=1e-5)


def test_zero_padded_fft_still_reconstructs():
    stft = LowDelaySTFT(64, 8, 16, n_fft=128)
    x = _signal(1, 333)
    assert stft.analysis(x).shape[-1] == 65
    torch.testing.assert_close(stft(x), x, rtol=0, atol=1e-12)


def _nonlinear(spec):
    return spec * spec.abs() ** 0.5


@pytest.mark.parametrize("K,R,S", [(512, 96, 192), (64, 8, 24)])
def test_latency_is_synthesis_length_minus_one_and_tight(K, R, S):
    stft = LowDelaySTFT(K, R, S)
    assert stft.latency_samples == S - 1

    def run(x):
        return stft.synthesis(_nonlinear(stft.analysis(x)), x.shape[-1])

    x = _signal(1, 20 * K)
    for cut in (5 * K, 5 * K + 3 * R, 5 * K + 1):
        y = x.clone()
        y[..., cut + S :] = _signal(1, y.shape[-1] - cut - S, seed=1)  # after t + latency
        a, b = run(x), run(y)
        assert torch.equal(a[..., : cut + 1], b[..., : cut + 1])
    # nearly tight: the window product is zero at a segment's first sample, so the STFT pair
    # reads up to t + S - 2 (t = 1 after a multiple of R); S - 1 is the structural bound
    t = 5 * R * (K // R) + 1
    y = x.clone()
    y[..., t + S - 2] += 1.0
    assert not torch.equal(run(x)[..., t], run(y)[..., t])
    # the structural bound is tight for segments that mix the whole frame with no window (a
    # learned decoder): output t - 1 (a multiple of R) reads input t - 1 + S - 1

    def decoder_like(signal):
        frames = frame_signal(signal, K, R, S)
        return overlap_add(frames[..., -S:] * frames[..., -1:], R, signal.shape[-1])

    y = x.clone()
    y[..., t - 1 + S - 1] += 1.0
    assert not torch.equal(decoder_like(x)[..., t - 1], decoder_like(y)[..., t - 1])


def test_streaming_equals_whole_with_stateful_frame_processing():
    stft = LowDelaySTFT(64, 8, 24)
    x = _signal(2, 2, 1234)

    def make_fn():
        state = {"acc": None}

        def fn(spec):  # a recurrence over frames: order matters
            out = []
            for k in range(spec.shape[-2]):
                frame = spec[..., k, :]
                state["acc"] = frame if state["acc"] is None else 0.5 * state["acc"] + frame
                out.append(state["acc"])
            return torch.stack(out, dim=-2) if out else spec

        return fn

    whole = stft.synthesis(make_fn()(stft.analysis(x)), x.shape[-1])
    for block in (1, 5, 8, 77, 2000):
        streamer = stft.streamer(make_fn())
        pieces = [streamer.process(x[..., i : i + block]) for i in range(0, 1234, block)]
        for piece in pieces:
            assert piece.shape[-1] % 8 == 0  # whole hops only until the flush
        pieces.append(streamer.flush())
        got = torch.cat(pieces, dim=-1)
        assert got.shape == x.shape
        torch.testing.assert_close(got, whole, rtol=0, atol=1e-12)


def test_framing_and_overlap_add_are_differentiable():
    stft = LowDelaySTFT(32, 4, 8)
    x = _signal(1, 2, 50).requires_grad_()
    stft(x).pow(2).sum().backward()
    torch.testing.assert_close(x.grad, 2 * x.detach(), rtol=0, atol=1e-10)
    frames = frame_signal(x.detach(), 32, 4, 8)
    assert frames.shape == (1, 2, num_frames(50, 4, 8), 32)
    # frame k holds input samples (k+1)R - K .. (k+1)R - 1
    torch.testing.assert_close(frames[0, 0, 10], x.detach()[0, 0, 44 - 32 : 44])
    with pytest.raises(ValueError, match="cover"):
        overlap_add(torch.zeros(3, 8), 4, 50)


@pytest.mark.parametrize(
    "args", [(64, 0, 16), (64, 8, 12), (64, 8, 8), (16, 8, 16, 4), (64, 8, 15)]
)
def test_bad_geometry_is_a_value_error(args):
    with pytest.raises(ValueError):
        LowDelaySTFT(*args)


def test_resampler_matches_scipy_and_states_its_lookahead():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4410))
    down, up = PolyphaseResampler(44100, 16000), PolyphaseResampler(16000, 44100)
    y = down(x)
    np.testing.assert_allclose(y, scipy.signal.resample_poly(x, 160, 441, axis=-1), atol=1e-6)
    z = up(y)
    np.testing.assert_allclose(z, scipy.signal.resample_poly(y, 441, 160, axis=-1), atol=1e-6)
    assert y.shape == (2, 1600) and z.shape == (2, 4410) and y.dtype == np.float32
    assert down.lookahead_s == pytest.approx(0.625e-3, abs=1e-6)
    assert up.lookahead_s == pytest.approx(0.625e-3, abs=1e-6)
    # output m reads input up to last_input(m) and nothing later
    for m in (300, 301, 777):
        last = down.last_input(m)
        assert last - m * 441 / 160 <= down.lookahead_in
        x2 = x.copy()
        x2[:, last + 1 :] += 1.0
        assert np.array_equal(down(x2)[:, m], y[:, m])
        x3 = x.copy()
        x3[:, last] += 1.0
        assert not np.array_equal(down(x3)[:, m], y[:, m])


@pytest.mark.parametrize("rates", [(44100, 16000), (16000, 44100), (48000, 16000)])
def test_resampler_streaming_equals_whole(rates):
    r = PolyphaseResampler(*rates)
    x = np.random.default_rng(1).standard_normal((3, 5000))
    whole = r(x)
    for block in (1, 37, 441, 10000):
        streamer = r.streamer()
        pieces = [streamer.process(x[:, i : i + block]) for i in range(0, 5000, block)]
        pieces.append(streamer.flush())
        got = np.concatenate(pieces, axis=-1)
        assert got.shape == whole.shape
        np.testing.assert_allclose(got, whole, rtol=0, atol=1e-6)
    assert r.streamer().flush() is None
    with pytest.raises(ValueError, match="positive"):
        PolyphaseResampler(0, 16000)


def test_docstring_examples():
    for module in (lowdelay_stft, resample):
        failed, _ = doctest.testmod(module)
        assert failed == 0, module.__name__
