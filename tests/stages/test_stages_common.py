"""Pair list, small_test, sharding and errors.csv plumbing shared by the stages."""

import json

import pytest

from clarity_se.data.experiment import ErrorLog
from clarity_se.data.pairs import select_shard, shard_suffix
from clarity_se.data.scene import make_scene_listener_list, read_scenes_listeners


@pytest.fixture()
def scenes_listeners(tmp_path):
    data = {f"S{6000 + i:05d}": [f"L{j:04d}" for j in range(3)] for i in range(20)}
    path = tmp_path / "scenes_listeners.dev.json"
    path.write_text(json.dumps(data))
    return path, data


def test_pairs_file_order_and_small_test(scenes_listeners):
    path, data = scenes_listeners
    pairs = make_scene_listener_list(read_scenes_listeners(path))
    assert pairs[:4] == [
        ("S06000", "L0000"),
        ("S06000", "L0001"),
        ("S06000", "L0002"),
        ("S06001", "L0000"),
    ]
    assert len(pairs) == 60
    assert make_scene_listener_list(data, small_test=True) == pairs[::15]


def test_shards_are_disjoint_and_cover(scenes_listeners):
    path, _ = scenes_listeners
    pairs = make_scene_listener_list(read_scenes_listeners(path))
    shards = [select_shard(pairs, f"{k}/4") for k in range(1, 5)]
    flat = [p for shard in shards for p in shard]
    assert sorted(flat) == sorted(pairs) and len(flat) == len(set(flat))
    assert shard_suffix("2/4") == ".shard-2-of-4" and shard_suffix("") == ""
    with pytest.raises(ValueError, match="evaluate.shard"):
        select_shard(pairs, "5/4")


def test_bad_scenes_listeners_names_file(tmp_path):
    path = tmp_path / "scenes_listeners.dev.json"
    path.write_text('{"S1": "L0001"}')
    with pytest.raises(ValueError, match="scenes_listeners.dev.json.*S1"):
        read_scenes_listeners(path)
    with pytest.raises(ValueError, match="not found"):
        read_scenes_listeners(tmp_path / "nope.json")


def test_error_log_keeps_other_stages_and_retries_own(tmp_path):
    log = ErrorLog(tmp_path, "enhance")
    log.add("S1", "L1", ValueError("bad, file\nwith newline"))
    log = ErrorLog(tmp_path, "evaluate")
    log.add("S2", "L2", "too quiet")
    rows = ErrorLog.read(tmp_path / "errors.csv")
    assert [(r["stage"], r["scene"]) for r in rows] == [("enhance", "S1"), ("evaluate", "S2")]
    assert rows[0]["error"] == "ValueError: bad, file with newline"
    ErrorLog(tmp_path, "evaluate")  # a rerun of evaluate clears its own rows only
    assert [r["stage"] for r in ErrorLog.read(tmp_path / "errors.csv")] == ["enhance"]
