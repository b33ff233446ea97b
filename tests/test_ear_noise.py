"""Tests of the per-pair random streams (clarity_se.ear_model.noise.PairRandom, scene_seed)."""

import hashlib

import numpy as np
import pytest
import torch

from clarity_se.ear_model.noise import PairRandom, scene_seed


def _legacy_draws(seed, shapes):
    """The official recipe's draws: global legacy numpy generator, seeded once."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        return [np.random.standard_normal(s) for s in shapes]
    finally:
        np.random.set_state(state)


def test_scene_seed_md5_rule():
    for scene in ["S06001", "S06123", "x"]:
        expected = int(hashlib.md5(scene.encode("utf-8")).hexdigest(), 16) % 10**8
        assert scene_seed(scene) == expected
    assert scene_seed("S06001") != scene_seed("S06002")
    with pytest.raises(ValueError):
        scene_seed(6001)


def test_compat_equals_numpy_legacy_sequence():
    seeds = [scene_seed("S06001"), 12345, 0]
    shapes = [(32, 7), (3,), (2, 5, 3), (11,)]  # odd counts exercise the Box-Muller cache
    rng = PairRandom.compat(seeds)
    draws = [rng.standard_normal(s, dtype=torch.float64) for s in shapes]
    for i, seed in enumerate(seeds):
        ref = _legacy_draws(seed, shapes)
        for d, r in zip(draws, ref, strict=True):
            assert d.shape[1:] == r.shape
            np.testing.assert_array_equal(d[i].numpy(), r)


def test_compat_per_item_shapes_and_subset_shares_streams():
    seeds = [7, 8, 9]
    rng = PairRandom.compat(seeds)
    first = rng.standard_normal([(3,), (4,), (5,)])
    assert isinstance(first, list) and [t.shape[0] for t in first] == [3, 4, 5]
    sub = rng.subset([2, 0])
    assert sub.seeds == (9, 7) and sub.mode == "compat"
    second = sub.standard_normal((6,))
    np.testing.assert_array_equal(second[0].numpy(), _legacy_draws(9, [(5,), (6,)])[1])
    np.testing.assert_array_equal(second[1].numpy(), _legacy_draws(7, [(3,), (6,)])[1])
    # the parent saw the subset's draws: item 1 untouched, item 0 advanced
    third = rng.standard_normal((2,))
    np.testing.assert_array_equal(third[0].numpy(), _legacy_draws(7, [(3,), (6,), (2,)])[2])
    np.testing.assert_array_equal(third[1].numpy(), _legacy_draws(8, [(4,), (2,)])[1])


def test_fast_deterministic_and_order_independent():
    a = PairRandom.fast([1, 2, 3]).standard_normal((4, 5), dtype=torch.float32)
    b = PairRandom.fast([3, 1]).standard_normal((4, 5), dtype=torch.float32)
    assert a.dtype == torch.float32 and a.shape == (3, 4, 5)
    torch.testing.assert_close(a[2], b[0], rtol=0, atol=0)
    torch.testing.assert_close(a[0], b[1], rtol=0, atol=0)
    assert not torch.equal(a[0], a[1])
    assert abs(float(a.mean())) < 0.5


def test_bad_input():
    with pytest.raises(ValueError):
        PairRandom.compat(5)
    with pytest.raises(ValueError):
        PairRandom.compat([-1])
    with pytest.raises(ValueError):
        PairRandom.compat([1, 2]).standard_normal([(3,)])
    with pytest.raises(ValueError):
        PairRandom.compat([1]).subset([3])
    with pytest.raises(ValueError):
        PairRandom.fast([1], device="cpu").standard_normal((2,), device="meta")


@pytest.mark.parametrize("before, count", [(0, 10), (1, 10), (0, 11), (1, 11), (3, 4001), (1, 1),
                                           (0, 0)])
def test_compat_skip_leaves_the_stream_as_a_draw(before, count):
    drawn, skipped = PairRandom.compat([7, 8]), PairRandom.compat([7, 8])
    for r in (drawn, skipped):
        r.standard_normal((before,))  # before odd: a cached normal enters the skip
    drawn.standard_normal([(count,), (count + 1,)])
    skipped.skip_standard_normal([(count,), (count + 1,)])
    for a, b in zip(drawn._streams, skipped._streams, strict=True):
        sa, sb = a.get_state(), b.get_state()
        np.testing.assert_array_equal(sa[1], sb[1])
        assert sa[2:] == sb[2:]
    torch.testing.assert_close(drawn.standard_normal((2, 3)), skipped.standard_normal((2, 3)),
                               rtol=0, atol=0)


def test_fast_skip_costs_nothing_and_keeps_the_stream():
    fresh, skipped, drawn = PairRandom.fast([5]), PairRandom.fast([5]), PairRandom.fast([5])
    skipped.skip_standard_normal((4, 6), dtype=torch.float32)
    drawn.standard_normal((4, 6), dtype=torch.float32)
    first = fresh.standard_normal((3,))
    assert torch.equal(skipped.standard_normal((3,)), first)  # not advanced
    assert not torch.equal(drawn.standard_normal((3,)), first)
    with pytest.raises(ValueError):
        skipped.skip_standard_normal([(1,), (2,)])
