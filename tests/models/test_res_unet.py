"""RES U-Net (Ivry et al. 2021): size, latency, streaming, alpha conditioning, objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import STREAM_TOL

from clarity_se.models import build_model
from clarity_se.models.res_unet import RESUNet, res_objective


def _model(seed=0):
    torch.manual_seed(seed)
    model = RESUNet()
    # non-trivial batch-norm statistics, so that eval mode is not the identity
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            mod.running_mean.normal_()
            mod.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _signals(n=6000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(n, generator=g), 0.1 * torch.randn(n, generator=g)


def test_parameter_count_is_pinned():
    model = RESUNet()
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 129_801
    assert build_model("res_unet").hparams == model.hparams


def test_multiply_accumulates_per_frame_are_pinned():
    # the docstring's "5.1 M multiply-accumulates per frame": FLOPs of the matrix products and
    # convolutions of one window, as counted by torch, halved (a count, not a float result)
    from torch.utils.flop_counter import FlopCounterMode

    model = RESUNet().eval()
    window = torch.zeros(1, 2, model.context, model.stft.win_length // 2 + 1)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.window_mask(window, torch.tensor([0.5]))
    assert counter.get_total_flops() // 2 == 5_131_680


def test_latency_is_127_samples():
    model = _model()
    assert model.latency_samples == 127
    e, y = _signals()
    cut = 3000
    e2, y2 = e.clone(), y.clone()
    e2[cut + 128 :] += 1.0
    y2[cut + 128 :] -= 1.0
    with torch.no_grad():
        a, b = model(e, y, 0.5), model(e2, y2, 0.5)
    assert torch.equal(a[: cut + 1], b[: cut + 1])  # same process: bit equality
    assert not torch.allclose(a[cut + 130 :], b[cut + 130 :])


@pytest.mark.parametrize("block", [1, 37, 500])
def test_streaming_equals_whole_clip(block):
    model = _model()
    e, y = _signals()
    with torch.no_grad():
        whole = model(e, y, 0.3)
    streamer = model.streamer(0.3)
    rng = np.random.default_rng(block)
    parts, i = [], 0
    while i < e.shape[0]:
        n = int(rng.integers(1, 2 * block + 1))
        parts.append(streamer.process(e[i : i + n], y[i : i + n]))
        i += n
    parts.append(streamer.flush())
    got = torch.cat(parts)
    assert got.shape == whole.shape
    torch.testing.assert_close(got, whole, atol=STREAM_TOL, rtol=0)


def test_whole_clip_output_does_not_depend_on_batching():
    model = _model()
    e, y = _signals()
    with torch.no_grad():
        torch.testing.assert_close(model(e, y, 0.5, batch_frames=7), model(e, y, 0.5),
                                   atol=STREAM_TOL, rtol=0)


def test_alpha_is_an_input():
    model = _model()
    e, y = _signals()
    with torch.no_grad():
        assert not torch.allclose(model(e, y, 0.0), model(e, y, 1.0))


def test_mask_range_and_nyquist_bin():
    model = _model()
    feats = torch.randn(3, 2, 32, 161)
    with torch.no_grad():
        mask = model.window_mask(feats, torch.tensor([0.0, 0.5, 1.0]))
    assert mask.shape == (3, 161)
    assert torch.all((mask >= 0) & (mask <= 1))
    assert torch.equal(mask[:, 160], mask[:, 159])


def test_objective_trades_distortion_for_suppression():
    """At alpha = 1 a mask that passes the residual costs more than at alpha = 0; the perfect
    oracle mask costs nothing more at alpha = 1; nullifying speech frames is penalised."""
    g = torch.Generator().manual_seed(0)
    s = torch.rand(8, 161, generator=g)
    r = torch.rand(8, 161, generator=g)
    e = s + r
    ones, zeros = torch.ones(8, 161), torch.zeros(8, 161)
    a0, a1 = torch.zeros(8), torch.ones(8)
    assert res_objective(ones, e, s, r, a1) > res_objective(ones, e, s, r, a0)
    oracle = s / e
    base = res_objective(oracle, e, s, r, a0, nullification_weight=0.0)
    assert base < 1e-12
    assert res_objective(zeros, e, s, r, a0) > res_objective(
        zeros, e, s, r, a0, nullification_weight=0.0)


def test_leak_gate_spares_speech_dominated_bins():
    """With ``leak_gate`` the alpha term weighs a bin by its residual share: in a bin the speech
    dominates, passing the residual costs almost nothing more at alpha = 1; in a bin the
    residual dominates it costs nearly the ungated amount."""
    e_mag = torch.ones(1, 2)
    s = torch.tensor([[0.99, 0.01]])
    r = torch.tensor([[0.01, 0.99]])
    a1, ones = torch.ones(1), torch.ones(1, 2)
    kwargs = dict(nullification_weight=0.0)

    def leak(mask, gate):
        gate = {True: "bin", False: "none"}.get(gate, gate)
        a0 = torch.zeros(1)
        return (res_objective(mask, e_mag, s, r, a1, leak_gate=gate, **kwargs)
                - res_objective(mask, e_mag, s, r, a0, leak_gate=gate, **kwargs))

    speech_bin, residual_bin = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert leak(speech_bin, True) < 1e-3 * leak(speech_bin, False)
    assert leak(residual_bin, True) > 0.99 * leak(residual_bin, False) > 0
    assert leak(ones, True) < leak(ones, False)
    # "frame": one weight per frame, the residual's share of the frame's energy (here 1/2)
    np.testing.assert_allclose(float(leak(ones, "frame")), 0.5 * float(leak(ones, "none")),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="leak_gate"):
        res_objective(ones, e_mag, s, r, a1, leak_gate="bins")


def test_bad_geometry_is_refused():
    with pytest.raises(ValueError, match="sample_rate"):
        RESUNet(sample_rate=44100)
    with pytest.raises(ValueError, match="context"):
        RESUNet(context=24)
    with pytest.raises(ValueError, match="5 units"):
        RESUNet(channels=(8, 16))
