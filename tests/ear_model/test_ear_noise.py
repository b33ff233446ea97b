"""Tests of the per-pair random streams (clarity_se.random.PairRandom, scene_seed)."""

import hashlib

import numpy as np
import pytest
import torch

from clarity_se.random import PairRandom, _skip_legacy_gauss, scene_seed


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
def test_legacy_skip_leaves_the_generator_as_a_draw(before, count):
    drawn, skipped = np.random.RandomState(7), np.random.RandomState(7)
    for r in (drawn, skipped):
        r.standard_normal(before)  # before odd: a cached normal enters the skip
    drawn.standard_normal(count)
    _skip_legacy_gauss(skipped, count)
    sa, sb = drawn.get_state(), skipped.get_state()
    np.testing.assert_array_equal(sa[1], sb[1])
    assert sa[2:] == sb[2:]


@pytest.mark.parametrize("before, count", [(0, 10), (1, 11), (3, 4001), (0, 0)])
def test_compat_skip_then_draw_equals_the_legacy_sequence(before, count):
    rng = PairRandom.compat([7, 8])
    rng.standard_normal((before,))
    rng.skip_standard_normal([(count,), (count + 1,)])
    after = rng.standard_normal((2, 3))
    for i, (seed, extra) in enumerate([(7, 0), (8, 1)]):
        ref = _legacy_draws(seed, [(before,), (count + extra,), (2, 3)])[2]
        np.testing.assert_array_equal(after[i].numpy(), ref)  # same process: bit equality


@pytest.mark.parametrize("max_bytes", [1 << 30, 200])
def test_compat_items_sharing_a_seed_each_follow_the_legacy_sequence(max_bytes):
    """Items with one seed (the pairs of a scene) share a lazily generated sequence; any
    interleaving of draws and skips of any sizes gives each item numpy's numbers, also when
    the sequence keeps almost nothing (windows then replay from saved generator states)."""
    from clarity_se import random as noise

    seeds = [11, 11, 11, 12]
    rng = PairRandom.compat(seeds)
    for stream in rng._streams:
        stream.source.max_bytes = max_bytes
    plan = np.random.RandomState(0)
    history = [[] for _ in seeds]  # per item: (count, drawn?)
    for _ in range(40):
        items = sorted(set(plan.randint(0, len(seeds), size=plan.randint(1, 4)).tolist()))
        counts = [int(plan.choice([0, 1, 2, 7, 64, 513])) for _ in items]
        view = rng.subset(items)
        if plan.rand() < 0.3:
            view.skip_standard_normal([(c,) for c in counts])
            for i, c in zip(items, counts, strict=True):
                history[i].append((c, False))
            continue
        draws = view.standard_normal([(c,) for c in counts])
        for k, (i, c) in enumerate(zip(items, counts, strict=True)):
            history[i].append((c, True))
            ref = _legacy_draws(seeds[i], [(n,) for n, _ in history[i]])[-1]
            np.testing.assert_array_equal(draws[k].numpy(), ref)  # both drawn here
    assert isinstance(rng._streams[0].source, noise._LegacyNormals)
    assert rng._streams[0].source is rng._streams[2].source
    assert rng._streams[0].source is not rng._streams[3].source


def test_fast_items_in_one_state_draw_the_same_numbers_as_separate_generators():
    rng = PairRandom.fast([3, 3, 4])
    first = rng.standard_normal((5, 7), dtype=torch.float32)  # items 0 and 1: one memo entry
    first[0].zero_()  # callers may change the result in place: the memo keeps its own
    second = rng.subset([1, 0]).standard_normal((4,), dtype=torch.float32)
    alone = PairRandom.fast([3])
    ref_first = alone.standard_normal((5, 7), dtype=torch.float32)[0]
    ref_second = alone.standard_normal((4,), dtype=torch.float32)[0]
    assert torch.equal(first[1], ref_first)
    assert torch.equal(second[0], ref_second) and torch.equal(second[1], ref_second)
    assert not torch.equal(first[2], ref_first)


def test_fast_skip_costs_nothing_and_keeps_the_stream():
    fresh, skipped, drawn = PairRandom.fast([5]), PairRandom.fast([5]), PairRandom.fast([5])
    skipped.skip_standard_normal((4, 6), dtype=torch.float32)
    drawn.standard_normal((4, 6), dtype=torch.float32)
    first = fresh.standard_normal((3,))
    assert torch.equal(skipped.standard_normal((3,)), first)  # not advanced
    assert not torch.equal(drawn.standard_normal((3,)), first)
    with pytest.raises(ValueError):
        skipped.skip_standard_normal([(1,), (2,)])
