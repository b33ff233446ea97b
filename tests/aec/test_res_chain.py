"""``aec.res=unet``: the RES U-Net after a canceller passes the echo-canceller contract."""

from __future__ import annotations

import numpy as np
import pytest
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
