"""SI-SDR, SNR and uPIT."""

import itertools

import numpy as np
import pytest
import torch

from clarity_se.losses import pit_loss, reorder_sources, si_sdr, snr
from clarity_se.losses.pit import best_permutation, pairwise_loss


def test_si_sdr_values():
    gen = torch.Generator().manual_seed(0)
    ref = torch.randn(4, 1001, generator=gen, dtype=torch.float64)
    noise = torch.randn(4, 1001, generator=gen, dtype=torch.float64)
    est = 3.0 * ref + 0.5 + 0.1 * noise
    # closed form (numpy): zero-mean, projection
    r = ref.numpy() - ref.numpy().mean(-1, keepdims=True)
    e = est.numpy() - est.numpy().mean(-1, keepdims=True)
    a = (e * r).sum(-1, keepdims=True) / (r * r).sum(-1, keepdims=True)
    expect = 10 * np.log10(((a * r) ** 2).sum(-1)) - 10 * np.log10(((a * r - e) ** 2).sum(-1))
    np.testing.assert_allclose(si_sdr(est, ref).numpy(), expect, atol=1e-6)
    # scale invariance, but SNR is not scale-invariant
    np.testing.assert_allclose(si_sdr(0.1 * est, ref), si_sdr(est, ref), atol=1e-9)
    assert (snr(0.1 * est, ref) - snr(est, ref)).abs().min() > 1
    with pytest.raises(ValueError, match="shapes differ"):
        si_sdr(est, ref[:, :10])


@pytest.mark.parametrize("n_src", [2, 3, 4, 5])
@pytest.mark.parametrize("ears", [False, True])
def test_permuted_estimate_gives_optimum(n_src, ears):
    gen = torch.Generator().manual_seed(n_src)
    shape = (3, n_src, 2, 517) if ears else (3, n_src, 517)
    sources = torch.randn(*shape, generator=gen)
    perms = [torch.randperm(n_src, generator=gen) for _ in range(3)]
    est = torch.stack([sources[b, p] for b, p in enumerate(perms)]) + 1e-3 * torch.randn(
        *shape, generator=gen
    )
    loss, perm = pit_loss(est, sources)
    # est[b, i] = sources[b, perms[b][i]]  =>  the estimate for target j is argsort(perms[b])[j]
    for b in range(3):
        assert perm[b].tolist() == torch.argsort(perms[b]).tolist()
    assert torch.allclose(reorder_sources(est, perm), sources, atol=1e-2)
    pair = pairwise_loss(est, sources)
    brute = (
        torch.stack(
            [
                pair[:, list(p), list(range(n_src))].sum(-1)
                for p in itertools.permutations(range(n_src))
            ]
        )
        .min(dim=0)
        .values
    )
    assert torch.allclose(loss, (brute / n_src).mean(), atol=1e-5)
    assert loss.item() < -40  # near-perfect SI-SDR


def test_hungarian_matches_exhaustive():
    gen = torch.Generator().manual_seed(7)
    pair = torch.rand(6, 4, 4, generator=gen)
    hung = best_permutation(pair)  # 4 sources -> Hungarian
    idx = torch.arange(4)
    for b in range(6):
        best = min(itertools.permutations(range(4)), key=lambda p: pair[b, list(p), idx].sum())
        assert pair[b, hung[b], idx].sum() == pytest.approx(pair[b, list(best), idx].sum().item())


def test_pit_gradient_and_shape_errors():
    est = torch.randn(2, 2, 2, 301, requires_grad=True)
    loss, _ = pit_loss(est, torch.randn(2, 2, 2, 301))
    loss.backward()
    assert est.grad is not None and torch.isfinite(est.grad).all()
    with pytest.raises(ValueError, match="differ"):
        pit_loss(torch.randn(2, 2, 100), torch.randn(2, 3, 100))


def test_emphasised_si_sdr():
    """Pre-emphasis is the first difference; the loss weighs high-frequency errors more."""
    from clarity_se.losses import neg_si_sdr_emphasised, preemphasis

    x = torch.randn(2, 3, 1001, dtype=torch.float64)
    pre = preemphasis(x, 0.9)
    assert torch.equal(pre[..., 0], x[..., 0])
    torch.testing.assert_close(pre[..., 1:], x[..., 1:] - 0.9 * x[..., :-1])
    # weight 0 is plain negative SI-SDR, bit for bit
    est = x + 0.1 * torch.randn_like(x)
    assert torch.equal(neg_si_sdr_emphasised(est, x, weight=0.0), -si_sdr(est, x))
    # same error energy at 100 Hz vs 8 kHz: plain SI-SDR cannot tell, the emphasised one can
    t = torch.arange(44100, dtype=torch.float64) / 44100
    ref = torch.sin(2 * torch.pi * 500 * t)
    low = ref + 0.1 * torch.sin(2 * torch.pi * 100 * t)
    high = ref + 0.1 * torch.sin(2 * torch.pi * 8000 * t)
    assert abs(float(si_sdr(low, ref) - si_sdr(high, ref))) < 0.05
    assert float(neg_si_sdr_emphasised(high, ref)) > float(neg_si_sdr_emphasised(low, ref)) + 5
    # gradients flow; bad arguments are named
    est.requires_grad_(True)
    neg_si_sdr_emphasised(est, x).sum().backward()
    assert torch.isfinite(est.grad).all() and est.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="weight"):
        neg_si_sdr_emphasised(est, x, weight=1.5)
    with pytest.raises(ValueError, match="coef"):
        preemphasis(x, 1.0)
