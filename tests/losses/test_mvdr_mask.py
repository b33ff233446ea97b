"""The beamformer-mask error (clarity_se.losses.mvdr_mask) and its place in the training loss."""

import numpy as np
import pytest
import torch

from clarity_se.dsp.mvdr import EstimateMVDR
from clarity_se.losses.mvdr_mask import MVDRMaskError, beamformer_mask


def _signals(seed: int = 0, n: int = 8000):
    """A target, a mixture (target plus louder noise) and its two front rows, ``[1, 2, n]``."""
    gen = np.random.default_rng(seed)
    env = np.repeat(gen.uniform(0.0, 1.0, n // 400 + 1) > 0.5, 400)[:n]  # on/off bursts
    target = torch.as_tensor(gen.standard_normal((1, 2, n)) * env, dtype=torch.float64)
    noise = torch.as_tensor(0.7 * gen.standard_normal((1, 2, n)), dtype=torch.float64)
    return target, target + noise


def test_mask_is_the_beamformers_on_its_frames():
    """Same frames as EstimateMVDR's framing, and the equation of its docstring per bin."""
    gen = np.random.default_rng(3)
    x, s = gen.standard_normal((6, 3000)), gen.standard_normal((2, 3000))
    bf = EstimateMVDR()
    spec_x, _ = bf._frames(bf.mix_buf, x)
    spec_s, _ = bf._frames(bf.est_buf, s)
    loss = MVDRMaskError().double()
    ours_x = loss.stft.analysis(torch.as_tensor(x[:2])).numpy()
    ours_s = loss.stft.analysis(torch.as_tensor(s)).numpy()
    n = spec_x.shape[1]
    np.testing.assert_allclose(ours_x[:, :n], spec_x[:2], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours_s[:, :n], spec_s, rtol=0, atol=1e-9)
    ps, pn = np.abs(spec_s) ** 2, np.abs(spec_x[:2] - spec_s) ** 2
    expect = np.mean(ps / (ps + pn), axis=0)
    got = beamformer_mask(torch.as_tensor(spec_s), torch.as_tensor(spec_x[:2])).numpy()
    np.testing.assert_allclose(got, expect, rtol=1e-12, atol=0)


def test_error_orders_estimates_and_ignores_a_common_gain():
    target, mixture = _signals()
    err = MVDRMaskError()
    perfect = float(err(target, target, mixture))
    assert perfect == pytest.approx(-40.0, abs=1e-6)  # the floor
    values = [float(err(target + a * (mixture - target), target, mixture)) for a in (0.1, 0.4, 1.0)]
    assert perfect < values[0] < values[1] < values[2]  # more noise left in: larger error
    # the mask sees the estimate's scale (SI-SDR does not)
    assert float(err(0.5 * target, target, mixture)) > perfect + 10
    # one gain on all three signals changes nothing
    assert float(err(3.0 * (target + 0.4 * (mixture - target)), 3.0 * target, 3.0 * mixture)) \
        == pytest.approx(values[1], abs=1e-6)


def test_batch_shape_gradient_silence_and_errors():
    target, mixture = _signals(1)
    est = (target + 0.3 * (mixture - target)).float().repeat(3, 1, 1).requires_grad_(True)
    err = MVDRMaskError()
    out = err(est, target.float().repeat(3, 1, 1), mixture.float().repeat(3, 1, 1))
    assert out.shape == (3,)
    out.sum().backward()
    assert torch.isfinite(est.grad).all() and est.grad.abs().sum() > 0
    zeros = torch.zeros(1, 2, 4000, requires_grad=True)
    silent = err(zeros, torch.zeros(1, 2, 4000), torch.zeros(1, 2, 4000))
    silent.sum().backward()
    assert torch.isfinite(silent).all() and torch.isfinite(zeros.grad).all()
    with pytest.raises(ValueError, match="MVDRMaskError"):
        err(est, target.float(), mixture.float())
    with pytest.raises(ValueError, match="MVDRMaskError"):
        err(torch.zeros(1, 3, 4000), torch.zeros(1, 3, 4000), torch.zeros(1, 3, 4000))


def test_compute_loss_adds_the_weighted_mask_error():
    from clarity_se.losses import neg_si_sdr_emphasised
    from clarity_se.training.trainer import compute_loss

    target, front = _signals(2)
    gen = torch.Generator().manual_seed(0)
    mixture = torch.cat([front, torch.randn(1, 4, front.shape[-1], generator=gen,
                                            dtype=torch.float64)], dim=1).float()  # fmt: skip
    src = target.float().unsqueeze(1)  # [batch, n_src=1, 2, time]
    est = (target + 0.3 * (front - target)).float().unsqueeze(1)
    err = MVDRMaskError()
    got = compute_loss(est, src, 0.5, mask_error=err, mask_weight=2.0, mixture=mixture)
    expect = neg_si_sdr_emphasised(est, src).mean() + 2.0 * err(est[:, 0], src[:, 0],
                                                                 mixture[:, :2]).mean()  # fmt: skip
    torch.testing.assert_close(got, expect)
    assert float(got) < float(compute_loss(est, src, 0.5)) - 1.0  # the term is in dB, < 0 here
    for kwargs in (dict(mask_error=None, mixture=mixture), dict(mask_error=err, mixture=None)):
        with pytest.raises(ValueError, match="mask_weight"):
            compute_loss(est, src, mask_weight=1.0, **kwargs)
    with pytest.raises(ValueError, match="mask_weight"):  # uPIT: not defined
        compute_loss(est.repeat(1, 2, 1, 1), src.repeat(1, 2, 1, 1), mask_error=err,
                     mask_weight=1.0, mixture=mixture)  # fmt: skip
    with pytest.raises(ValueError, match="mask_weight"):
        compute_loss(est, src, mask_error=err, mask_weight=-1.0, mixture=mixture)
    with pytest.raises(ValueError, match="mask_weight"):  # one ear (the published DTLN)
        compute_loss(est[:, :, :1], src[:, :, :1], mask_error=err, mask_weight=1.0,
                     mixture=mixture[:, :1])  # fmt: skip
