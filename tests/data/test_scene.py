"""CEC2 scene records: exact round-trip of the metadata files and field validation."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import re

import pytest
from _cec2_tree import FIXTURES

from clarity_se.data.scene import (
    CEC2_SAMPLE_RATE,
    Scene,
    SceneListenerInfo,
    Target,
    dumps_cec2_json,
    load_scenes,
    load_scenes_listeners,
    make_scene_listener_list,
    read_scenes_listeners,
    save_scenes,
    save_scenes_listeners,
)

SCENES = FIXTURES / "scenes.dev.json"
PAIRS = FIXTURES / "scenes_listeners.dev.json"


def _entry(i: int = 0) -> dict:
    return copy.deepcopy(json.loads(SCENES.read_text())[i])


def test_scenes_round_trip_is_byte_identical(tmp_path):
    scenes = load_scenes(SCENES)
    assert [s.scene for s in scenes] == ["S06001", "S06002", "S06003"]
    out = save_scenes(tmp_path / "scenes.dev.json", scenes)
    assert out.read_bytes() == SCENES.read_bytes()
    assert load_scenes(out) == scenes


def test_scenes_round_trip_modulo_indentation(tmp_path):
    reindented = tmp_path / "in.json"
    # The same file with another indent: tokens must come back identical.
    reindented.write_text(dumps_cec2_json(json.loads(SCENES.read_text()), indent=4))
    out = save_scenes(tmp_path / "out.json", load_scenes(reindented))

    def tokens(text: str) -> str:
        return re.sub(r"\s+", "", text)

    assert tokens(out.read_text()) == tokens(reindented.read_text())
    assert out.read_text() == SCENES.read_text()


def test_scene_fields_and_units():
    scene = load_scenes(SCENES)[0]
    assert scene.id == scene.scene == "S06001"
    assert (scene.dataset, scene.room, scene.duration) == ("dev", "R06001", 287735)
    assert scene.snr_db == pytest.approx(2.558)
    assert scene.target == Target(name="T024_BMR_00659", time_start=78260, time_end=243635)
    assert scene.target.time_start_s == pytest.approx(78260 / 44100)
    assert scene.duration_s == pytest.approx(287735 / CEC2_SAMPLE_RATE)
    assert [i.type for i in scene.interferers] == ["speech", "noise"]
    assert scene.interferers[0].offset_s == pytest.approx(31593565 / 44100)
    rot = scene.listener.rotation
    assert rot[0].sample_s == pytest.approx(90952.7142 / 44100)
    assert rot[1].angle_deg == pytest.approx(-112.0054)
    assert scene.listener.hrir_filename[1] == "VP_E4-BTE_fr"


def test_int_rotation_sample_and_negative_zero_survive(tmp_path):
    scenes = load_scenes(SCENES)
    assert isinstance(scenes[1].listener.rotation[0].sample, int)
    text = save_scenes(tmp_path / "s.json", scenes).read_text()
    assert '"sample": 0,' in text and '"angle": -0.0000' in text and '"SNR": -6.1000' in text


def test_precise_float_is_not_rounded(tmp_path):
    entry = _entry()
    entry["SNR"] = 1.234567891
    scene = Scene.from_dict(entry)
    again = load_scenes(save_scenes(tmp_path / "s.json", [scene]))[0]
    assert again.snr_db == 1.234567891


def test_unknown_top_level_key_is_kept_in_place(tmp_path):
    entry = _entry()
    items = list(entry.items())
    items.insert(3, ("note", {"a": [1, 2.5]}))
    entry = dict(items)
    scene = Scene.from_dict(entry)
    assert scene.extra == {"note": {"a": [1, 2.5]}}
    assert list(scene.to_dict()) == list(entry)


def test_records_are_frozen_and_picklable():
    scene = load_scenes(SCENES)[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        scene.duration = 3  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(scene)) == scene
    assert hash(scene) == hash(pickle.loads(pickle.dumps(scene)))


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda e: e.pop("SNR"), "missing field 'SNR'"),
        (lambda e: e.__setitem__("SNR", "loud"), "SNR must be a number"),
        (lambda e: e.__setitem__("SNR", float("nan")), "SNR must be finite"),
        (lambda e: e.__setitem__("duration", 0), "duration must be >= 1"),
        (lambda e: e.__setitem__("room", ""), "room must be a non-empty string"),
        (lambda e: e["target"].__setitem__("time_start", 1.5), "time_start must be an integer"),
        (lambda e: e["target"].__setitem__("time_end", 10), "time_end (10) must be > time_start"),
        (
            lambda e: e["target"].__setitem__("time_end", 10**9),
            "target.time_end (1000000000) is after duration",
        ),
        (lambda e: e["target"].pop("name"), "target: missing field 'name'"),
        (lambda e: e["target"].__setitem__("speaker", "x"), "target: unknown field(s) ['speaker']"),
        (
            lambda e: e["interferers"][1].__setitem__("type", "babble"),
            "interferers[1]: Interferer 'CIN_washing_013.wav': type must be one of",
        ),
        (lambda e: e["interferers"][0].__setitem__("offset", -1), "offset must be >= 0"),
        (lambda e: e["interferers"][0].__setitem__("position", 0), "position must be >= 1"),
        (lambda e: e["interferers"][1].__setitem__("position", 1), "position 1 is used twice"),
        (
            lambda e: e["interferers"][0].__setitem__("time_end", 287736),
            "interferers[0].time_end (287736) is after duration",
        ),
        (lambda e: e.__setitem__("interferers", {}), "interferers must be a list"),
        (lambda e: e["listener"].__setitem__("hrir_filename", []), "hrir_filename is empty"),
        (lambda e: e["listener"].__setitem__("rotation", []), "rotation is empty"),
        (
            lambda e: e["listener"]["rotation"][1].__setitem__("angle", "left"),
            "rotation[1]: RotationPoint: angle must be a number",
        ),
        (
            lambda e: e["listener"]["rotation"][0].pop("sample"),
            "rotation[0]: missing field 'sample'",
        ),
        (lambda e: e["listener"].__setitem__("rotation", True), "rotation must be a list"),
    ],
)
def test_bad_field_names_scene_and_field(mutate, fragment):
    entry = _entry()
    mutate(entry)
    with pytest.raises(ValueError) as info:
        Scene.from_dict(entry, source="scenes.dev.json")
    message = str(info.value)
    assert message.startswith("scenes.dev.json: scene 'S06001': "), message
    assert fragment in message, message


def test_load_scenes_file_level_errors(tmp_path):
    path = tmp_path / "scenes.dev.json"
    with pytest.raises(ValueError, match="scenes file not found"):
        load_scenes(path)
    path.write_text("[{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_scenes(path)
    path.write_text("{}")
    with pytest.raises(ValueError, match="expected a JSON list"):
        load_scenes(path)
    path.write_text(json.dumps([_entry(), _entry()]))
    with pytest.raises(ValueError, match="'S06001': scene id appears twice"):
        load_scenes(path)
    with pytest.raises(ValueError, match="not a Scene"):
        save_scenes(tmp_path / "x.json", [_entry()])


def test_direct_construction_validates():
    listener = SceneListenerInfo(rotation=[{"sample": 1, "angle": 2}], hrir_filename=["A"])
    assert listener.rotation[0].sample == 1
    with pytest.raises(ValueError, match="Target 'x': time_end"):
        Target(name="x", time_start=5, time_end=5)
    with pytest.raises(ValueError, match="hrir_filename must be a list"):
        SceneListenerInfo(rotation=[{"sample": 1, "angle": 2}], hrir_filename="A")


def test_scene_listener_pairs_follow_the_official_rule(tmp_path):
    pairs = load_scenes_listeners(PAIRS)
    assert pairs[:4] == [
        ("S06001", "L0064"),
        ("S06001", "L0068"),
        ("S06001", "L0008"),
        ("S06002", "L0044"),
    ]
    assert len(pairs) == 9
    # Official small_test: every 15th pair of the full list.
    big = {f"S{i:05d}": [f"L{i:04d}", f"L{i + 1:04d}", f"L{i + 2:04d}"] for i in range(20)}
    full = make_scene_listener_list(big)
    assert len(full) == 60
    small = make_scene_listener_list(big, small_test=True)
    assert small == [full[0], full[15], full[30], full[45]]
    assert load_scenes_listeners(PAIRS, small_test=True) == [pairs[0]]
    out = save_scenes_listeners(tmp_path / "sl.json", read_scenes_listeners(PAIRS))
    assert out.read_bytes() == PAIRS.read_bytes()


def test_scenes_listeners_errors(tmp_path):
    path = tmp_path / "sl.json"
    path.write_text(json.dumps({"S1": "L0001"}))
    with pytest.raises(ValueError, match="scene 'S1': listeners must be a list"):
        read_scenes_listeners(path)
    path.write_text(json.dumps({"S1": ["L1", 3]}))
    with pytest.raises(ValueError, match=r"scene 'S1': listeners\[1\] must be a non-empty string"):
        read_scenes_listeners(path)
    path.write_text(json.dumps({"S1": ["L1", "L1"]}))
    with pytest.raises(ValueError, match="repeated"):
        read_scenes_listeners(path)


def test_docstring_examples():
    import doctest

    import clarity_se.data.scene as module

    result = doctest.testmod(module)
    assert result.attempted >= 3 and result.failed == 0
