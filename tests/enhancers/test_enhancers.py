"""Every registered enhancer keeps the enhancer contract (tiny models, CPU)."""

from __future__ import annotations

import pytest
import torch
from enhancer_contract import check_latency, check_shapes, check_streaming
from omegaconf import OmegaConf

from clarity_se.config import EnhancerConfig
from clarity_se.enhancers import MAX_LATENCY_S, SAMPLE_RATE, build_enhancer, enhancer_names
from clarity_se.models import build_model
from clarity_se.models.checkpoint import save_checkpoint


def _options(**kw):
    return OmegaConf.merge(OmegaConf.structured(EnhancerConfig), kw)


@pytest.fixture(scope="module")
def tiny_convtasnet(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("convtasnet", n_filters=16, kernel_size=32, bn_chan=8,
                        hid_chan=16, n_blocks=2, n_repeats=1)  # fmt: skip
    return str(save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", model))


def _enhancers(ckpt):
    yield "passthrough", build_enhancer(_options(name="passthrough"))
    for mirror in (False, True):
        for guard in (False, True):
            yield f"convtasnet-mirror{mirror}-guard{guard}", build_enhancer(_options(
                name="convtasnet", checkpoint=ckpt, mirror_average=mirror, residual_mix=0.1,
                guard=guard, residual_source="mixture"))
    yield "convtasnet-mvdr", build_enhancer(_options(
        name="convtasnet", checkpoint=ckpt, residual_mix=0.5, residual_source="mvdr"))
    yield "convtasnet-defaults", build_enhancer(_options(name="convtasnet", checkpoint=ckpt))


def test_registry_names():
    assert {"passthrough", "convtasnet"} <= set(enhancer_names())
    with pytest.raises(ValueError, match="enhancer.name"):
        build_enhancer(_options(name="nope"))


def test_contract(tiny_convtasnet):
    for label, enh in _enhancers(tiny_convtasnet):
        check_shapes(enh)
        check_latency(enh)
        check_streaming(enh)
        assert enh.latency_samples <= MAX_LATENCY_S * SAMPLE_RATE, label


def test_convtasnet_reports_the_rule_only_when_it_runs(tiny_convtasnet):
    from enhancer_contract import random_mixture

    for guard in (False, True):
        enh = build_enhancer(_options(name="convtasnet", checkpoint=tiny_convtasnet,
                                      guard=guard))  # fmt: skip
        enh(random_mixture(4410))
        report = enh.diagnostics()
        if guard:
            assert set(report) == {"guard_fired"}
            assert set(report["guard_fired"]) == {"direct", "mirrored"}
            assert 0.0 <= report["guard_fired"]["direct"] <= 1.0
        else:
            assert report == {}


def test_convtasnet_mvdr_residual(tiny_convtasnet):
    """``residual_source=mvdr`` mixes in the beamformer that the estimate drives."""
    import numpy as np
    from enhancer_contract import random_mixture

    from clarity_se.dsp.mvdr import mvdr

    mixture = random_mixture(8820)
    plain = build_enhancer(_options(name="convtasnet", checkpoint=tiny_convtasnet,
                                    residual_mix=0.0, residual_source="mixture"))  # fmt: skip
    beam = build_enhancer(_options(name="convtasnet", checkpoint=tiny_convtasnet,
                                   residual_mix=1.0, residual_source="mvdr"))  # fmt: skip
    half = build_enhancer(_options(name="convtasnet", checkpoint=tiny_convtasnet,
                                   residual_mix=0.25, residual_source="mvdr"))  # fmt: skip
    estimate = plain(mixture)
    alone = beam(mixture)
    # the enhancers' default beamformer: WPE on its outputs with 16 taps, up to 8 kHz
    np.testing.assert_allclose(alone, mvdr(mixture, estimate, wpe_taps=16, wpe_max_hz=8000.0),
                               rtol=0, atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(half(mixture), 0.75 * estimate + 0.25 * alone, rtol=0, atol=1e-6)
    assert beam.latency_samples == 191 > plain.latency_samples
    with pytest.raises(ValueError, match="residual_source"):
        build_enhancer(_options(name="convtasnet", checkpoint=tiny_convtasnet,
                                residual_source="beam"))  # fmt: skip
    # the defaults: the beamformer alone; with the front microphones, a quarter of them
    default = build_enhancer(_options(name="convtasnet", checkpoint=tiny_convtasnet))
    assert (default.residual_source, default.residual_mix) == ("mvdr", 1.0)
    front = build_enhancer(_options(name="convtasnet", checkpoint=tiny_convtasnet,
                                    residual_source="mixture"))  # fmt: skip
    assert (front.residual_source, front.residual_mix) == ("mixture", 0.25)


def test_packaged_convtasnet_within_challenge_latency():
    enh = build_enhancer(_options(name="convtasnet"))
    assert 0 < enh.latency_samples <= MAX_LATENCY_S * SAMPLE_RATE


def test_convtasnet_guard_falls_back_from_the_beamformer_to_the_front_mics(tiny_convtasnet):
    """With the beamformer, the do-no-harm rule blends the enhancer's output (not the
    beamformer's input) with the front microphones: weight 0 gives the front microphones, weight
    1 the output without the rule; both stream block by block as on the whole signal."""
    import numpy as np
    from enhancer_contract import check_streaming, random_mixture

    from clarity_se.enhancers.guard import GuardOptions

    mixture = random_mixture(15 * 4410, seed=4)
    plain = build_enhancer(_options(name="convtasnet", checkpoint=tiny_convtasnet))
    never = build_enhancer(_options(name="convtasnet", checkpoint=tiny_convtasnet, guard=True))
    never.guard_options = GuardOptions(c_low=-2.0, c_high=-1.0)  # coherence > c_high: w = 1
    np.testing.assert_array_equal(never(mixture), plain(mixture))
    always = build_enhancer(_options(name="convtasnet", checkpoint=tiny_convtasnet, guard=True))
    always.guard_options = GuardOptions(c_low=2.0, c_high=3.0)  # coherence < c_low: w -> 0
    out = always(mixture)
    late = slice(12 * 4410, None)  # w decays from 1 with the rule's 0.1 s smoothing: < 1e-5
    scale = np.abs(mixture[:2, late]).max()
    np.testing.assert_allclose(out[:, late], mixture[:2, late], rtol=0, atol=1e-3 * scale)
    assert np.abs(plain(mixture)[:, late] - mixture[:2, late]).max() > 0.1 * scale
    check_streaming(always)
