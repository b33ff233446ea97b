"""The slow band-envelope correlation (clarity_se.losses.envelope)."""

import numpy as np
import pytest
import torch

from clarity_se.losses.envelope import EnvelopeCorrelation, third_octave_bands

FS = 16000


def _speechlike(seconds: float, seed: int, rate_hz: float = 4.0) -> torch.Tensor:
    """Noise carrier with a slow random on/off envelope (syllable-like, ~``rate_hz``)."""
    gen = np.random.default_rng(seed)
    n = int(seconds * FS)
    t = np.arange(n) / FS
    phase = gen.uniform(0, 2 * np.pi, 3)
    env = 1.0 + np.sin(2 * np.pi * rate_hz * t + phase[0]) * np.sin(2 * np.pi * 0.7 * t + phase[1])
    carrier = gen.standard_normal(n)
    return torch.as_tensor(env**2 * carrier, dtype=torch.float32)


def test_bands_cover_third_octaves():
    w = third_octave_bands(FS, 512)
    assert w.shape == (15, 257)  # 250 Hz .. 6.35 kHz: the 8 kHz band's top edge is above Nyquist
    assert torch.all(w.sum(1) >= 1) and torch.all(w.sum(0) <= 1)  # disjoint, none empty
    assert third_octave_bands(44100, 2048).shape[0] == 16
    with pytest.raises(ValueError, match="holds no bin"):
        third_octave_bands(44100, 256)


def test_invariances_and_distortion():
    env = EnvelopeCorrelation(FS)
    ref = _speechlike(3.0, 0)
    assert float(env(ref, ref)) == pytest.approx(1.0, abs=1e-5)
    # a gain changes nothing (each signal's floor follows its own peak)
    assert float(env(0.05 * ref, ref)) == pytest.approx(1.0, abs=1e-5)
    # added stationary noise flattens the envelope; the lower the SNR, the lower rho
    noise = torch.as_tensor(np.random.default_rng(1).standard_normal(ref.numel()),
                            dtype=torch.float32)
    power = ref.pow(2).mean() / noise.pow(2).mean()
    rhos = [float(env(ref + noise * (power * 10 ** (-snr / 10)).sqrt(), ref))
            for snr in (20, 5, -5)]
    assert rhos[0] > rhos[1] > rhos[2] and rhos[0] > 0.9 and rhos[2] < 0.8
    # another signal's envelope does not correlate
    assert abs(float(env(_speechlike(3.0, 5), ref))) < 0.5


def test_slow_modulations_only():
    """A fast (30 Hz) envelope modulation of the estimate is smoothed away, a slow one is not."""
    env = EnvelopeCorrelation(FS)
    ref = _speechlike(3.0, 2)
    t = torch.arange(ref.numel()) / FS
    fast = ref * (1 + 0.9 * torch.sin(2 * np.pi * 30 * t))
    slow = ref * (1 + 0.9 * torch.sin(2 * np.pi * 1.3 * t))
    assert 1 - float(env(fast, ref)) < 0.2 * (1 - float(env(slow, ref)))


def test_gradient_and_shapes():
    env = EnvelopeCorrelation(FS)
    ref = torch.stack([_speechlike(1.0, s) for s in range(4)]).reshape(2, 2, -1)
    est = (ref + 0.3 * torch.randn_like(ref)).requires_grad_()
    rho = env(est, ref)
    assert rho.shape == (2, 2)
    (1 - rho).sum().backward()
    assert torch.isfinite(est.grad).all() and est.grad.abs().sum() > 0
    # a silent reference band gives a finite value
    assert torch.isfinite(env(torch.zeros(FS), torch.zeros(FS)))
    with pytest.raises(ValueError, match="same shape"):
        env(est[..., :-1], ref)
    with pytest.raises(ValueError, match="shorter than one"):
        env(ref[..., :100], ref[..., :100])
    with pytest.raises(ValueError, match="sample_rate"):
        EnvelopeCorrelation(0)
