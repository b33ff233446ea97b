"""Multi-channel Conv-TasNet: shapes, causality/latency, non-causal mode, checkpoints."""

import pytest
import torch
from conftest import REORDER_TOL

from clarity_se.models import MODELS, build_model
from clarity_se.models.checkpoint import (
    load_model,
    read_checkpoint,
    save_checkpoint,
    set_model_args,
)
from clarity_se.models.conv_tasnet import MultichannelConvTasNet
from clarity_se.models.streaming import enhance_in_chunks

TINY = dict(n_filters=16, kernel_size=16, bn_chan=8, hid_chan=16, n_blocks=3, n_repeats=2)


@pytest.mark.parametrize("n_src", [1, 2])
@pytest.mark.parametrize("n_time", [1, 15, 16, 333])
def test_shapes_and_length(n_src, n_time):
    torch.manual_seed(0)
    model = MultichannelConvTasNet(n_src=n_src, **TINY)
    out = model(torch.randn(3, 6, n_time))
    assert out.shape == (3, n_src, 2, n_time)
    assert torch.isfinite(out).all()


def test_causal_latency():
    """Changing the input after t + latency changes no output sample before t."""
    torch.manual_seed(1)
    model = MultichannelConvTasNet(n_src=2, **TINY).eval()
    assert model.latency_samples == TINY["kernel_size"] - 1
    x = torch.randn(1, 6, 700)
    with torch.no_grad():
        ref = model(x)
        for t in (200, 203, 208, 450):  # different frame alignments
            cut = t + model.latency_samples
            x2 = x.clone()
            x2[..., cut:] = torch.randn_like(x2[..., cut:]) * 3
            out = model(x2)
            assert torch.equal(out[..., :t], ref[..., :t])
            assert (out[..., t:] - ref[..., t:]).abs().max() > 1e-3
        # the bound is tight at some alignment: a change at t + latency - 1 reaches t - 1
        moved = [
            (model(torch.cat([x[..., : t + 14], x[..., t + 14 :] + 1], -1)) - ref)[..., :t]
            .abs()
            .max()
            .item()
            for t in range(200, 216)
        ]
        assert max(moved) > 0


def test_shipped_default_latency_under_5ms():
    model = MultichannelConvTasNet()
    assert model.latency_s <= 5e-3
    assert model.sample_rate == 44100


def test_noncausal_gln_sees_future():
    torch.manual_seed(2)
    model = MultichannelConvTasNet(causal=False, **TINY).eval()
    assert model.hparams["norm_type"] == "gLN"
    x = torch.randn(1, 6, 400)
    x2 = x.clone()
    x2[..., 300:] += 1.0
    with torch.no_grad():
        diff = (model(x2) - model(x))[..., :100].abs().max()
    assert diff > 0
    with pytest.raises(ValueError, match="causal"):
        model.init_state()


def test_bad_arguments_and_input():
    with pytest.raises(ValueError, match="kernel_size"):
        MultichannelConvTasNet(kernel_size=15)
    with pytest.raises(ValueError, match="n_src"):
        MultichannelConvTasNet(n_src=0)
    with pytest.raises(ValueError, match="cLN"):
        MultichannelConvTasNet(causal=True, norm_type="gLN")
    model = MultichannelConvTasNet(**TINY)
    with pytest.raises(ValueError, match="mixture"):
        model(torch.randn(2, 4, 100))


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(3)
    model = build_model("convtasnet", n_src=2, **TINY).eval()
    assert MODELS["convtasnet"] is MultichannelConvTasNet
    path = save_checkpoint(tmp_path / "ck.pt", model, training={"config": {"lr": 1e-3}})
    payload = read_checkpoint(path)
    assert payload["model_name"] == "convtasnet"
    assert payload["sample_rate"] == 44100
    assert payload["channel_layout"][:2] == ["CH1-L", "CH1-R"]
    assert payload["versions"]["torch"] == torch.__version__
    loaded, _ = load_model(path)
    x = torch.randn(2, 6, 1237)  # odd length
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="bad.pt"):
        load_model(tmp_path / "bad.pt")


def test_output_gain_scales_every_estimate_whole_and_streamed(tmp_path):
    """``output_gain_db`` set after training (an older checkpoint without the argument keeps
    its default, 0 dB) multiplies the estimates by ``10^(g / 20)`` in the whole-signal and the
    streaming paths, and is recorded in the file."""
    torch.manual_seed(4)
    model = build_model("convtasnet", n_src=2, **TINY).eval()
    src = save_checkpoint(tmp_path / "ck.pt", model)
    payload = torch.load(src, weights_only=False)
    del payload["model_args"]["output_gain_db"]  # as written before the argument existed
    torch.save(payload, src)
    louder, payload = load_model(set_model_args(src, tmp_path / "g.pt", output_gain_db=5.7))
    assert payload["training"]["model_args_set"] == {"output_gain_db": [None, 5.7]}
    x = torch.randn(1, 6, 1237)
    with torch.no_grad():
        base, gained = model(x), louder(x)
        streamed = enhance_in_chunks(louder, x, 100)
    assert not torch.equal(gained, base)
    torch.testing.assert_close(gained, base * 10 ** (5.7 / 20), rtol=1e-5, atol=1e-7)
    assert (streamed - gained).abs().max() < 1e-5


def test_n_src_1_weights_start_a_target_plus_residual_model():
    torch.manual_seed(0)
    small = dict(n_filters=16, kernel_size=16, bn_chan=8, hid_chan=16, skip_chan=8,
                 n_blocks=2, n_repeats=1)  # fmt: skip
    one = MultichannelConvTasNet(n_src=1, **small).eval()
    two = MultichannelConvTasNet(n_src=2, **small).eval()
    two.load_state_dict(two.adapt_state_dict(one.state_dict()))
    # all-ones masks: what target + residual must add up to when the masks are complements
    ones = MultichannelConvTasNet(n_src=1, **small).eval()
    state = dict(one.state_dict())
    state["separator.mask_conv.weight"] = torch.zeros_like(state["separator.mask_conv.weight"])
    state["separator.mask_conv.bias"] = torch.full_like(state["separator.mask_conv.bias"], 40.0)
    ones.load_state_dict(state)
    x = torch.randn(2, 6, 1000)
    with torch.no_grad():
        est, ref, full = two(x), one(x), ones(x)
    assert est.shape == (2, 2, 2, 1000)
    # same weights; a wider mask layer may round differently (other GEMM blocking)
    torch.testing.assert_close(est[:, :1], ref, rtol=0, atol=REORDER_TOL)
    torch.testing.assert_close(est.sum(dim=1), full[:, 0], rtol=0, atol=REORDER_TOL)
    assert two.adapt_state_dict(two.state_dict()) is not None  # a match passes unchanged
    with pytest.raises(ValueError, match="n_src=3"):
        MultichannelConvTasNet(n_src=3, **small).adapt_state_dict(one.state_dict())
