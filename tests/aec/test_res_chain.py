"""``aec.res=unet``: the RES U-Net after a canceller passes the echo-canceller contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from clarity_se.aec import build_aec
from clarity_se.aec.config import AECOptions
from clarity_se.aec.res import ResidualEchoChain, build_chain, load_res_unet
from tests.aec_contract import check_latency, check_shapes, check_streaming, echo_clip


def _options(**kw):
    opts = OmegaConf.structured(AECOptions)
    for k, v in kw.items():
        setattr(opts, k, v)
    return opts


def _chain(alpha=0.5):
    opts = _options(name="nlms", res="unet", res_alpha=alpha)
    return build_chain(build_aec(opts), opts)


def test_contract_after_nlms():
    chain = _chain()
    assert isinstance(chain, ResidualEchoChain)
    assert chain.name == "nlms+res_unet"
    assert chain.latency_samples == 127 + 127
    assert chain.n_params == 129_801  # nlms has none
    check_shapes(chain)
    check_latency(chain)
    check_streaming(chain, blocks=(160, 441, 4096))


def test_packaged_checkpoint_suppresses_more_with_larger_alpha():
    """Far-end single talk: the chain removes more than the linear filter alone, and alpha=1
    leaves less than alpha=0."""
    mic, far = echo_clip(32000, seed=3)
    linear = build_aec(_options(name="nlms"))(mic, far).output[16000:]
    low = _chain(0.0)(mic, far).output[16000:]
    high = _chain(1.0)(mic, far).output[16000:]
    energy = [float(np.sum(np.square(x, dtype=np.float64))) for x in (linear, low, high)]
    assert energy[1] < energy[0]
    assert energy[2] < energy[1]


def test_no_suppressor_leaves_the_canceller_unchanged_and_errors_are_clear(tmp_path):
    canceller = build_aec(_options(name="nlms"))
    assert build_chain(canceller, _options(name="nlms")) is canceller
    with pytest.raises(ValueError, match="aec.res: expected one of"):
        build_chain(canceller, _options(name="nlms", res="resnet"))
    with pytest.raises(ValueError, match="no checkpoint at"):
        build_chain(canceller, _options(name="nlms", res="unet",
                                        res_checkpoint=str(tmp_path / "x.pt")))
    with pytest.raises(ValueError, match="res_alpha"):
        ResidualEchoChain(canceller, load_res_unet(), alpha=1.5)


def _framewise_checkpoint(tmp_path, seed=0):
    from clarity_se.models.checkpoint import save_checkpoint
    from clarity_se.models.res_unet import RESUNet

    torch.manual_seed(seed)
    model = RESUNet(channels=(4, 4, 4, 4, 4), out_channels=4, hop_length=160,
                    synth_length=320).eval()  # fmt: skip
    path = tmp_path / "framewise.pt"
    save_checkpoint(path, model)
    return path


def test_framewise_chain_after_deep_adaptive_adds_no_latency(tmp_path):
    """A suppressor on deep_adaptive's own frames: the canceller's 319 samples, contract,
    streaming; it masks the very frames the canceller outputs."""
    from clarity_se.aec.res import FramewiseResidualEchoChain

    path = _framewise_checkpoint(tmp_path)
    opts = _options(name="deep_adaptive", res="unet", res_checkpoint=str(path), res_alpha=0.3)
    canceller = build_aec(opts)
    chain = build_chain(canceller, opts)
    assert isinstance(chain, FramewiseResidualEchoChain)
    assert chain.latency_samples == canceller.latency_samples == 319
    check_shapes(chain)
    check_latency(chain)
    check_streaming(chain, blocks=(160, 441, 4096))
    mic, far = echo_clip(16000, seed=5)
    alone, res = canceller(mic, far), chain(mic, far)
    np.testing.assert_array_equal(res.echo_estimate, alone.echo_estimate)
    assert 0 < np.sum(res.output.astype(np.float64) ** 2) < np.sum(alone.output.astype(
        np.float64) ** 2)  # sigmoid gains in (0, 1)
    # the time-domain chain with the same (frame-synchronous) model after another canceller
    nlms = build_aec(_options(name="nlms"))
    other = build_chain(nlms, _options(name="nlms", res="unet", res_checkpoint=str(path)))
    assert isinstance(other, ResidualEchoChain) and other.latency_samples == 127 + 319
    with pytest.raises(ValueError, match="is not deep_adaptive's"):
        FramewiseResidualEchoChain(canceller, load_res_unet(), 0.5)


def test_packaged_framewise_checkpoint_after_deep_adaptive():
    """``aec.name=deep_adaptive aec.res=unet`` picks the shipped frame-synchronous suppressor
    (within the 20 ms rule) and it leaves less echo at alpha 1 than at alpha 0."""
    from clarity_se.aec.res import FramewiseResidualEchoChain

    chains = {}
    for alpha in (0.0, 1.0):
        opts = _options(name="deep_adaptive", res="unet", res_alpha=alpha)
        chains[alpha] = build_chain(build_aec(opts), opts)
        assert isinstance(chains[alpha], FramewiseResidualEchoChain)
        assert chains[alpha].res_checkpoint_path.name == "res_unet_deep_adaptive.pt"
        assert chains[alpha].latency_samples == 319
    mic, far = echo_clip(32000, seed=3)
    low, high = (chains[a](mic, far).output[16000:].astype(np.float64) for a in (0.0, 1.0))
    assert np.sum(high**2) < np.sum(low**2)
