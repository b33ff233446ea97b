"""benchmarks/aec_linear_bound.py: the best fixed per-bin STFT filter on known echo paths."""

import importlib.util
import json

import numpy as np
import pytest
from conftest import REPO

_spec = importlib.util.spec_from_file_location(
    "aec_linear_bound", REPO / "benchmarks" / "aec_linear_bound.py")
aec_linear_bound = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(aec_linear_bound)


def _echo(far: np.ndarray, length: int, rt_frames: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h = rng.standard_normal(length) * np.exp(-np.arange(length) / rt_frames)
    return np.convolve(far, h)[: len(far)]


def test_a_longer_filter_removes_more_of_a_long_echo_and_a_short_one_is_easy():
    far = np.random.default_rng(0).standard_normal(16000 * 3)
    spec = lambda x: aec_linear_bound.framed(x, 320)  # noqa: E731
    short = _echo(far, 40, 8.0, 1)  # 2.5 ms path
    long = _echo(far, 4800, 1200.0, 2)  # 300 ms path
    x = spec(far)
    db_short = aec_linear_bound.best_filter_reduction(x, spec(short), 5)
    db_long = [aec_linear_bound.best_filter_reduction(x, spec(long), t) for t in (5, 10, 40)]
    assert db_short > 12.0  # a path within one frame: the framing is the only limit
    assert db_long[0] < db_long[1] < db_long[2]  # more of a long tail within reach
    assert db_long[0] < db_short
    # one fit per segment: a path change in the middle is no worse for the separate fits
    changed = np.concatenate([short[:24000], _echo(far, 40, 8.0, 3)[24000:]])
    d = spec(changed)
    segs = aec_linear_bound.clip_segments(x.shape[0], 160, 1.5)
    assert aec_linear_bound.best_filter_reduction(x, d, 5, segs) > \
        aec_linear_bound.best_filter_reduction(x, d, 5) + 3.0
    assert np.isnan(aec_linear_bound.best_filter_reduction(x, np.zeros_like(x), 3))
    # a delay of half a hop leaks between bins: neighbours' taps recover it
    half_hop = np.concatenate([np.zeros(80), short])[: len(short)]
    d = spec(half_hop)
    assert aec_linear_bound.best_filter_reduction(x, d, 5, cross_bands=1) > \
        aec_linear_bound.best_filter_reduction(x, d, 5) + 3.0


def test_cli_on_a_rendered_folder(tmp_path):
    from clarity_se.data.render.echo import EchoRenderOptions, build_aec_dataset

    root = tmp_path / "aec"
    build_aec_dataset(root, n_clips=4, options=EchoRenderOptions(split="test", seed=3, clip_s=1.5))
    out = tmp_path / "bound.json"
    assert aec_linear_bound.main([str(root), "--taps", "2", "8", "--cross-bands", "0", "1",
                                  "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["taps"] == [2, 8] and result["groups"]["all"]["clips"] == len(result["clips"])
    for row in result["clips"]:  # a larger filter contains the smaller one: never worse
        assert row["b0_taps_8_db"] >= row["b0_taps_2_db"] - 1e-6
        assert row["b1_taps_2_db"] >= row["b0_taps_2_db"] - 1e-6
    assert aec_linear_bound.main([str(tmp_path / "missing")]) == 2


@pytest.mark.parametrize("change_s", [None, 0.5])
def test_segments_cover_the_clip(change_s):
    segs = aec_linear_bound.clip_segments(100, 160, change_s)
    assert segs[0].start == 0 and segs[-1].stop == 100
