"""The PESQ-like loss (clarity_se.training.perceptual_loss): its invariances and the direction
of each disturbance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clarity_se.training.perceptual_loss import PesqLikeLoss, bark, hearing_threshold_db

F = 161


def _speech_like(seed=0, batch=2, frames=60):
    """Random complex spectra with a speech-like tilt (-6 dB per octave above 500 Hz) and a
    frame-to-frame level modulation."""
    g = torch.Generator().manual_seed(seed)
    f = torch.arange(F) * 50.0
    tilt = 1.0 / torch.clamp(f / 500.0, min=1.0)
    level = 1.0 + torch.rand(batch, frames, 1, generator=g)
    re, im = (torch.randn(batch, frames, F, generator=g) for _ in range(2))
    return torch.complex(re, im) * tilt * level * 1e-2


def _active(batch=2, frames=60):
    return torch.ones(batch, frames, dtype=torch.bool)


def test_bands_partition_the_bins_and_thresholds_are_terhardt():
    loss = PesqLikeLoss(F)
    counts = loss.bands.sum(1)
    assert counts[0] == 0 and bool((counts[1:] == 1).all())  # DC out, every other bin once
    assert loss.bands.shape[1] == int(np.floor(bark(8000) / 0.5)) + 1 - int(bark(50) // 0.5)
    assert bool((loss.bands.sum(0) >= 1).all())
    # Terhardt's threshold: about 3.6 dB at 1 kHz, its minimum near 3.3 kHz, high at 100 Hz
    assert abs(hearing_threshold_db(1000) - 3.37) < 0.1
    assert hearing_threshold_db(3300) < 0 < hearing_threshold_db(100) - 20


def test_zero_for_the_reference_at_any_level():
    loss = PesqLikeLoss(F)
    s = _speech_like()
    for gain in (1.0, 0.05, 30.0):
        d_sym, d_asym = loss(gain * s, s, _active())
        assert bool((d_sym < 1e-3).all()) and bool((d_asym == 0).all()), (gain, d_sym, d_asym)


def test_added_noise_raises_both_disturbances_monotonically():
    loss = PesqLikeLoss(F)
    s = _speech_like()
    n = _speech_like(seed=5)
    sym, asym = [], []
    for level in (0.03, 0.1, 0.3, 1.0):
        d_sym, d_asym = loss(s + level * n, s, _active())
        sym.append(float(d_sym.mean()))
        asym.append(float(d_asym.mean()))
    assert all(b > a for a, b in zip(sym, sym[1:], strict=False)), sym
    assert all(b > a for a, b in zip(asym, asym[1:], strict=False)), asym
    assert asym[-1] > 0


def test_missing_components_weigh_less_than_added_ones_in_the_asymmetric_disturbance():
    """Holes punched into the spectrum (half the bins of every frame) against noise of the
    same power added: the symmetric disturbance sees both, the asymmetric one (added
    components, P.862's factor) far more the addition."""
    loss = PesqLikeLoss(F)
    s = _speech_like()
    keep = (torch.rand(s.shape, generator=torch.Generator().manual_seed(3)) < 0.5).to(s.dtype)
    holes = s * keep
    removed = (s - holes).abs().square().sum()
    n = _speech_like(seed=9)
    added = s + n * torch.sqrt(removed / n.abs().square().sum())
    sym_h, asym_h = (float(x.mean()) for x in loss(holes, s, _active()))
    sym_a, asym_a = (float(x.mean()) for x in loss(added, s, _active()))
    assert sym_h > 0.5 and sym_a > 0.5
    assert asym_a > 5 * asym_h, (asym_a, asym_h)


def test_only_active_frames_count_and_gradients_flow():
    loss = PesqLikeLoss(F)
    s = _speech_like(frames=40)
    est = s.clone()
    est[:, 20:] += 10 * _speech_like(seed=2, frames=40)[:, 20:]  # damage the second half only
    first = torch.zeros(2, 40, dtype=torch.bool)
    first[:, :20] = True
    d_sym, _ = loss(est, s, first)
    assert bool((d_sym < 0.5).all())  # the frame-gain smoothing reaches back little
    gain = torch.full((2, 40, F), 0.5, requires_grad=True)
    d_sym, d_asym = loss(gain * (s + 0.3 * _speech_like(seed=4, frames=40)), s, _active(2, 40))
    (0.1 * d_sym + 0.001 * d_asym).sum().backward()
    assert torch.isfinite(gain.grad).all() and gain.grad.abs().sum() > 0


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="n_bins"):
        PesqLikeLoss(8)
    loss = PesqLikeLoss(F)
    with pytest.raises(ValueError, match="active frame"):
        loss(_speech_like(), _speech_like(), torch.zeros(2, 60, dtype=torch.bool))
