"""HASQI reusing the processed half of HASPI's ear model (:mod:`clarity_se.ear_model.shared`).

The shared part must be exactly what HASQI would compute, so scores with and without the cache
are compared bit for bit, in both random modes and both batch layouts (compat: ear by ear; fast:
both ears as one batch).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clarity_se.ear_model.shared import ProcessedPathCache
from clarity_se.metrics.haspi import haspi_v2, haspi_v2_better_ear
from clarity_se.metrics.hasqi import hasqi_v2, hasqi_v2_better_ear
from clarity_se.random import PairRandom

FS = 16000
HL_LEFT = np.array([[10, 20, 30, 40, 50, 60], [0, 0, 10, 20, 40, 70]], dtype=float)
HL_RIGHT = HL_LEFT[:, ::-1].copy()


def _signals(dtype):
    g = torch.Generator().manual_seed(3)
    n = int(0.6 * FS)
    t = torch.arange(n, dtype=torch.float64) / FS
    speechy = torch.sin(2 * np.pi * 310 * t) * (1 + torch.sin(2 * np.pi * 4 * t))
    ref = 0.1 * speechy[None].repeat(2, 1) + 0.03 * torch.randn(2, n, generator=g,
                                                               dtype=torch.float64)
    proc = 1.4 * ref + 0.04 * torch.randn(2, n, generator=g, dtype=torch.float64)
    return ref.to(dtype), proc.to(dtype)


def _score(mode, cache, hl_right_hasqi=HL_RIGHT):
    dtype = torch.float64 if mode == "compat" else torch.float32
    ref, proc = _signals(dtype)
    rng = PairRandom.compat([11, 12]) if mode == "compat" else PairRandom.fast([11, 12])
    common = dict(reference_left=ref, reference_right=0.8 * ref, processed_left=proc,
                  processed_right=0.7 * proc, sample_rate=FS, level_db_spl=100.0, rng=rng,
                  processed_cache=cache)  # fmt: skip
    return _both_metrics(common, HL_LEFT, HL_RIGHT, hl_right_hasqi)


def _both_metrics(common, hl_left, hl_right, hl_right_hasqi):
    """HASPI then HASQI better ear (sharing ``common["processed_cache"]``): the four scores."""
    haspi = haspi_v2_better_ear(**common, hearing_loss_left_db_hl=hl_left,
                                hearing_loss_right_db_hl=hl_right)
    hasqi = hasqi_v2_better_ear(**common, hearing_loss_left_db_hl=hl_left,
                                hearing_loss_right_db_hl=hl_right_hasqi)
    return torch.stack([haspi.left.score, haspi.right.score, hasqi.left.score,
                        hasqi.right.score])  # fmt: skip


@pytest.mark.parametrize("mode", ["compat", "fast"])
def test_shared_processed_path_is_bit_identical(mode):
    plain = _score(mode, None)
    cache = ProcessedPathCache()
    shared = _score(mode, cache)
    assert torch.equal(plain, shared)
    assert cache.hits == 4 and cache.misses == 4  # 2 items x 2 ears, made by HASPI, used by HASQI
    assert len(cache) == 0 and cache.nbytes == 0  # each entry is used once and dropped


def test_other_audiogram_is_not_shared():
    plain = _score("compat", None, hl_right_hasqi=HL_RIGHT + 5.0)
    cache = ProcessedPathCache()
    shared = _score("compat", cache, hl_right_hasqi=HL_RIGHT + 5.0)
    assert torch.equal(plain, shared)
    assert cache.hits == 2  # the left ears only
    # HASPI's right-ear entries were never claimed, and HASQI offered its own right-ear ones
    assert len(cache) == 4


def test_no_room_or_no_bm_means_no_sharing():
    plain = _score("compat", None)
    for cache in (ProcessedPathCache(max_bytes=0),
                  ProcessedPathCache(basilar_membrane=False)):  # HASQI needs the BM motion
        assert torch.equal(plain, _score("compat", cache))
        assert cache.hits == 0


def test_other_signal_is_not_shared():
    ref, proc = _signals(torch.float64)
    cache = ProcessedPathCache()
    haspi_v2(reference=ref, processed=proc, sample_rate=FS, hearing_loss_db_hl=HL_LEFT,
             level_db_spl=100.0, rng=PairRandom.compat([1, 2]), processed_cache=cache)
    assert len(cache) == 2
    other = proc.clone()
    other[:, 100] += 1e-9  # one sample differs: a different processed signal
    expected = hasqi_v2(reference=ref, processed=other, sample_rate=FS, hearing_loss_db_hl=HL_LEFT,
                        level_db_spl=100.0, rng=PairRandom.compat([1, 2]))
    got = hasqi_v2(reference=ref, processed=other, sample_rate=FS, hearing_loss_db_hl=HL_LEFT,
                   level_db_spl=100.0, rng=PairRandom.compat([1, 2]), processed_cache=cache)
    assert torch.equal(expected.score, got.score)
    assert cache.hits == 0 and cache.misses == 4 and len(cache) == 4  # HASQI offered its own


def test_bad_size():
    with pytest.raises(ValueError, match="max_bytes"):
        ProcessedPathCache(max_bytes=-1)


def _scene(mode, cache, shift_one_reference=False):
    """Three listeners of one scene: one reference and seed, own hearing-aid outputs and
    audiograms (HASPI passes that reference through a normal ear: one path for all three)."""
    dtype = torch.float64 if mode == "compat" else torch.float32
    ref, proc = _signals(dtype)
    refs = ref[:1].repeat(3, 1)
    if shift_one_reference:
        refs[2, 50] += 1e-6  # no longer the same reference
    procs = torch.stack([proc[0], proc[1], 0.9 * proc[0]])
    hl = np.concatenate([HL_LEFT, HL_RIGHT[:1]])
    rng = PairRandom.compat([11] * 3) if mode == "compat" else PairRandom.fast([11] * 3)
    common = dict(reference_left=refs, reference_right=0.8 * refs, processed_left=procs,
                  processed_right=0.7 * procs, sample_rate=FS, level_db_spl=100.0, rng=rng,
                  processed_cache=cache)  # fmt: skip
    return _both_metrics(common, hl, hl[:, ::-1].copy(), hl[:, ::-1].copy())


@pytest.mark.parametrize("mode", ["compat", "fast"])
def test_listeners_of_a_scene_share_haspis_reference_path_bit_identically(mode):
    plain = _scene(mode, None)
    cache = ProcessedPathCache()
    shared = _scene(mode, cache)
    assert torch.equal(plain, shared)
    assert cache.reference_hits == 4  # HASPI, per ear: made by the first listener, used twice
    assert cache.hits == 6  # and HASQI still reuses each item's processed path
    # 24 kHz resampling, per ear: HASPI resamples the reference once (2 hits) and each output;
    # HASQI finds all six rows
    assert cache.resampled_hits == 2 * (2 + 6)


def test_a_different_reference_is_not_shared():
    cache = ProcessedPathCache()
    assert torch.equal(_scene("compat", None, True), _scene("compat", cache, True))
    assert cache.reference_hits == 2  # the first two listeners, per ear


def test_no_room_for_the_reference_means_it_is_computed_per_item():
    cache = ProcessedPathCache(max_reference_bytes=0)
    assert torch.equal(_scene("compat", None), _scene("compat", cache))
    assert cache.reference_hits == 0 and cache.hits == 6
