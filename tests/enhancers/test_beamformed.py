"""``enhancer.residual_source=mvdr`` for the DTLN and CR-CED enhancers (BeamformedEnhancer)."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
from enhancer_contract import check_latency, check_shapes, check_streaming, random_mixture
from omegaconf import OmegaConf

from clarity_se.config import EnhancerConfig, MVDRConfig
from clarity_se.dsp.mvdr import mvdr
from clarity_se.enhancers import MAX_LATENCY_S, SAMPLE_RATE, build_enhancer
from clarity_se.enhancers.beamformed import MVDR_OPTIONS, BeamformedEnhancer

#: the enhancers' default WPE of the beamformer's outputs (the shipped default, pinned here)
WPE = {"wpe_taps": 16, "wpe_max_hz": 8000.0}


def _options(**kw):
    return OmegaConf.merge(OmegaConf.structured(EnhancerConfig), kw)


def test_dtln_drives_the_beamformer():
    beam = build_enhancer(_options(name="dtln"))  # the default for the hearing-aid variant
    plain = build_enhancer(_options(name="dtln", residual_source="mixture"))
    assert isinstance(beam, BeamformedEnhancer)
    assert beam.latency_samples == 191 <= MAX_LATENCY_S * SAMPLE_RATE
    check_shapes(beam)
    check_latency(beam)
    check_streaming(beam)
    x = random_mixture(6000, seed=5)
    np.testing.assert_array_equal(beam(x), mvdr(x, plain(x), tau_s=1.0, **WPE))
    assert beam.variant == "" and type(beam.model) is type(plain.model)
    assert beam.block_samples == plain.block_samples == 96


def test_residual_source_mixture_leaves_the_enhancer_as_it_is():
    enhancer = build_enhancer(_options(name="dtln", residual_source="mixture"))
    assert not isinstance(enhancer, BeamformedEnhancer)


def test_defaults_per_enhancer():
    published = build_enhancer(_options(name="dtln", variant="published"))
    assert not isinstance(published, BeamformedEnhancer)
    crced = build_enhancer(_options(name="crced"))  # the hearing-aid CR-CED drives it too
    assert isinstance(crced, BeamformedEnhancer) and crced.beamformer_options == WPE
    assert crced.latency_samples == 191
    check_latency(crced)
    crced_plain = build_enhancer(_options(name="crced", residual_source="mixture"))
    assert not isinstance(crced_plain, BeamformedEnhancer)


def test_refused_where_it_would_add_latency_or_is_unknown():
    with pytest.raises(ValueError, match="looks 1463 samples ahead"):
        build_enhancer(_options(name="dtln", variant="published", residual_source="mvdr"))
    with pytest.raises(ValueError, match="residual_source"):
        build_enhancer(_options(name="dtln", residual_source="beam"))


def test_mvdr_options_reach_the_beamformer():
    """``enhancer.mvdr.*`` set -> the beamformer's keyword arguments, for the DTLN wrapper and
    the Conv-TasNet alike; unset ones keep its defaults; bad ones name the key."""
    x = random_mixture(6000, seed=6)
    plain = build_enhancer(_options(name="dtln", residual_source="mixture"))
    options = {"tau_s": 0.5, "reference_mix": 0.3, "wpe_taps": 2, "wpe_max_hz": 5000.0}
    beam = build_enhancer(_options(name="dtln", mvdr=options))
    assert beam.beamformer_options == options
    np.testing.assert_array_equal(beam(x), mvdr(x, plain(x), tau_s=0.5, reference_mix=0.3,
                                                wpe_taps=2, wpe_max_hz=5000.0))  # fmt: skip
    # the enhancers' defaults: WPE with 16 taps up to 8 kHz; the DTLN's own time constant (1 s,
    # the beamformer's is 2 s)
    assert build_enhancer(_options(name="dtln")).beamformer_options == {**WPE, "tau_s": 1.0}
    assert build_enhancer(_options(name="dtln", mvdr={"rtf": "whitening"})).beamformer_options \
        == {**WPE, "tau_s": 1.0, "rtf": "whitening"}
    assert build_enhancer(_options(name="convtasnet")).beamformer_options == WPE
    assert build_enhancer(_options(name="crced")).beamformer_options == WPE
    conv = build_enhancer(_options(name="convtasnet", mvdr={"rtf": "whitening", "wpe_taps": 0}))
    assert conv.beamformer_options == {**WPE, "wpe_taps": 0, "rtf": "whitening"}
    assert not np.array_equal(conv(x), build_enhancer(_options(name="convtasnet"))(x))
    with pytest.raises(ValueError, match="enhancer.mvdr: .*rtf must be one of"):
        build_enhancer(_options(name="convtasnet", mvdr={"rtf": "eigen"}))
    with pytest.raises(ValueError, match="enhancer.mvdr: .*reference_mix"):
        build_enhancer(_options(name="dtln", mvdr={"reference_mix": 2.0}))
    with pytest.raises(ValueError, match="enhancer.mvdr: .*wpe_stride"):
        build_enhancer(_options(name="crced", mvdr={"wpe_stride": 0}))
    with pytest.raises(ValueError, match="enhancer.mvdr: .*wpe_update_every"):
        build_enhancer(_options(name="dtln", mvdr={"wpe_update_every": 0}))


def test_raw_estimate_drops_the_mask_floor_and_output_gain():
    """``enhancer.mvdr.raw_estimate``: the DTLN network that drives the beamformer is rebuilt
    with ``RAW_ESTIMATE`` (same weights); its own output (``mixture``) keeps the checkpoint's."""
    from clarity_se.enhancers.dtln import DEFAULT_RAW_ESTIMATE, RAW_ESTIMATE, DTLNEnhancer

    x = random_mixture(6000, seed=9)
    for flag in (True, False):
        beam = build_enhancer(_options(name="dtln", mvdr={"raw_estimate": flag}))
        raw = beam.model.mask_floor == 0.0 and beam.model.output_gain_db == 0.0
        assert raw == flag
    default = build_enhancer(_options(name="dtln"))
    assert (default.model.mask_floor == 0.0) == DEFAULT_RAW_ESTIMATE
    mixture_out = build_enhancer(_options(name="dtln", residual_source="mixture",
                                          mvdr={"raw_estimate": True}))  # fmt: skip
    assert mixture_out.model.mask_floor == 0.4  # the checkpoint's
    beam = build_enhancer(_options(name="dtln", mvdr={"raw_estimate": True}))
    inner = DTLNEnhancer("", "", "cpu", RAW_ESTIMATE)
    np.testing.assert_array_equal(beam(x), mvdr(x, inner(x), tau_s=1.0, **WPE))
    check_streaming(beam)


def test_every_mvdr_config_key_reaches_the_beamformer():
    """Each ``enhancer.mvdr.*`` key of the config (but ``raw_estimate``, the DTLN's) is one of
    the beamformer's keyword arguments, passed through when set."""
    keys = {f.name for f in fields(MVDRConfig)} - {"raw_estimate"}
    assert keys == set(MVDR_OPTIONS)
    options = {"postfilter_tau_s": 0.05, "postfilter_floor": 0.2}
    beam = build_enhancer(_options(name="crced", mvdr=options))
    assert beam.beamformer_options == {**WPE, **options}
