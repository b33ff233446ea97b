"""JSONL manifests: streaming, resume by id, repair after a kill, scene records, CLI."""

from __future__ import annotations

import gzip
import json
import os

import pytest
from _cec2_tree import FRAMES, make_tree

from clarity_se.cli import main as cli_main
from clarity_se.data.cec2 import CEC2Dataset
from clarity_se.data.manifest import (
    SCENE_SCHEMA,
    ManifestError,
    ManifestWriter,
    manifest_path,
    read_manifest,
    resolve_audio,
    scene_record,
    write_manifest,
)

SCHEMA = "clarity_se.test/1"


def _rec(i: int) -> dict:
    return {"id": f"r{i}", "schema": SCHEMA, "value": i, "label": "é"}


def test_manifest_path():
    assert str(manifest_path("out", "cec2", "scenes", "dev")) == "out/cec2_scenes_dev.jsonl"
    assert str(manifest_path("o", "cec2", "scenes", "dev", compress=True)).endswith(".jsonl.gz")
    with pytest.raises(ValueError, match="type must be non-empty without"):
        manifest_path("o", "cec2", "scene_x", "dev")


@pytest.mark.parametrize("name", ["m.jsonl", "m.jsonl.gz"])
def test_write_read_and_resume(tmp_path, name):
    path = tmp_path / "sub" / name
    with ManifestWriter(path, schema=SCHEMA) as writer:
        assert [writer.write(_rec(i)) for i in range(3)] == [True] * 3
        assert writer.write(_rec(1)) is False  # duplicate id skipped
        assert [r["id"] for r in writer.records()] == ["r0", "r1", "r2"]
    if name.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8") as handle:  # a standard gzip file
            assert len(handle.read().splitlines()) == 3
    records = read_manifest(path, schema=SCHEMA)
    assert next(records) == _rec(0)  # lazy generator
    with ManifestWriter(path, schema=SCHEMA) as writer:
        assert writer.ids == {"r0", "r1", "r2"} and "r2" in writer and len(writer) == 3
        assert writer.write(_rec(2)) is False
        assert writer.write(_rec(3)) is True
    assert [r["value"] for r in read_manifest(path)] == [0, 1, 2, 3]
    with ManifestWriter(path, schema=SCHEMA, resume=False) as writer:
        assert len(writer) == 0 and writer.write(_rec(7))
    assert [r["id"] for r in read_manifest(path)] == ["r7"]


@pytest.mark.parametrize("name", ["m.jsonl", "m.jsonl.gz"])
@pytest.mark.parametrize("cut", [3, 11, 25])
def test_resume_after_kill_with_torn_last_line(tmp_path, name, cut, caplog):
    path = tmp_path / name
    writer = ManifestWriter(path, schema=SCHEMA)
    for i in range(6):
        writer.write(_rec(i))
    # Simulated kill: the process dies without closing, the last line is torn.
    writer._raw.close()
    os.truncate(path, path.stat().st_size - cut)
    survivors = [r["id"] for r in read_manifest(path, schema=SCHEMA)]
    assert survivors == [f"r{i}" for i in range(len(survivors))] and 4 <= len(survivors) <= 6
    with ManifestWriter(path, schema=SCHEMA) as writer:
        assert writer.ids == set(survivors)
        for i in range(8):
            writer.write(_rec(i))
    assert "repairing a torn last line" in caplog.text
    assert [r["id"] for r in read_manifest(path)] == survivors + [
        f"r{i}" for i in range(len(survivors), 8)
    ]


def test_newline_cut_keeps_the_record(tmp_path):
    path = tmp_path / "m.jsonl"
    write_manifest(path, [_rec(0), _rec(1)])
    os.truncate(path, path.stat().st_size - 1)  # only the final newline is lost
    with ManifestWriter(path) as writer:
        assert writer.ids == {"r0", "r1"}
        writer.write(_rec(2))
    assert [r["id"] for r in read_manifest(path)] == ["r0", "r1", "r2"]


def test_bad_records_are_named(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(_rec(0)) + "\n{oops\n" + json.dumps(_rec(1)) + "\n")
    with pytest.raises(ManifestError, match=r"m\.jsonl:2: not a JSON line"):
        list(read_manifest(path))
    with pytest.raises(ManifestError, match=r"m\.jsonl:2: not a JSON line"):
        ManifestWriter(path)
    path.write_text(json.dumps({"schema": SCHEMA}) + "\n")
    with pytest.raises(ManifestError, match=r"m\.jsonl:1: field 'id' must be"):
        list(read_manifest(path))
    path.write_text(json.dumps({"id": "a", "schema": "other/1"}) + "\n")
    with pytest.raises(ManifestError, match=r"record 'a': schema is 'other/1'"):
        list(read_manifest(path, schema=SCHEMA))
    with ManifestWriter(tmp_path / "w.jsonl", schema=SCHEMA) as writer:
        with pytest.raises(ManifestError, match="field 'schema'"):
            writer.write({"id": "x"})
    with pytest.raises(ValueError, match="manifest not found"):
        list(read_manifest(tmp_path / "none.jsonl"))


def test_write_manifest_is_atomic(tmp_path):
    path = tmp_path / "m.jsonl.gz"
    assert write_manifest(path, [_rec(0), _rec(1)]) == 2
    before = path.read_bytes()
    with pytest.raises(ManifestError, match="id 'r0' appears twice"):
        write_manifest(path, [_rec(0), _rec(0)])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.jsonl.gz"]  # no temp file left


def test_scene_record(tmp_path):
    root = make_tree(tmp_path, n_scenes=1)
    data = CEC2Dataset(root, "dev")
    record = scene_record(data, "S00001", listeners=["L0064"])
    assert record["id"] == "S00001" and record["schema"] == SCENE_SCHEMA
    assert record["sample_rate"] == 44100 and record["num_samples"] == FRAMES
    assert record["duration_s"] == pytest.approx(FRAMES / 44100)
    assert record["scene_duration_s"] == pytest.approx((FRAMES - 10) / 44100)
    assert record["target"]["time_start_s"] == pytest.approx(1000 / 44100)
    assert record["interferers"][1]["type"] == "speech"
    assert record["rotation"][0] == {"time_s": pytest.approx(900.5 / 44100), "angle_deg": -30.0}
    assert record["listeners"] == ["L0064"]
    assert record["audio"]["mix_CH1"] == "clarity_data/dev/scenes/S00001_mix_CH1.wav"
    assert len(record["audio"]) == 13  # 3 kinds x 4 channels + anechoic
    assert resolve_audio(record, "target_anechoic_CH1", root).is_file()
    json.dumps(record)  # serialisable
    data.mix_path("S00001", 3).unlink()
    with pytest.raises(ValueError, match=r"S00001_mix_CH3\.wav: file not found"):
        scene_record(data, "S00001")


def test_manifest_cli_exit_codes_and_resume(tmp_path, capsys):
    root = make_tree(tmp_path / "data", n_scenes=2, channels=(1, 2, 3), kinds=("mix", "target"))
    out = tmp_path / "manifests"
    assert cli_main(["manifest", str(root), "--split", "dev", "--out", str(out)]) == 0
    path = out / "cec2_scenes_dev.jsonl"
    records = list(read_manifest(path, schema=SCENE_SCHEMA))
    assert [r["id"] for r in records] == ["S00001", "S00002"]
    assert records[0]["listeners"] == ["L0064", "L0068"]
    assert "2 scene(s) written" in capsys.readouterr().out
    assert cli_main(["manifest", str(root), "--out", str(out)]) == 0
    assert "0 scene(s) written, 2 already present" in capsys.readouterr().out
    # A scene with a missing mixture: reported, left out, exit 1.
    (root / "clarity_data" / "dev" / "scenes" / "S00002_mix_CH2.wav").unlink()
    args = ["manifest", str(root), "--out", str(out), "--overwrite", "--gzip"]
    assert cli_main(args) == 1
    printed = capsys.readouterr().out
    assert "S00002_mix_CH2.wav: file not found" in printed
    assert [r["id"] for r in read_manifest(out / "cec2_scenes_dev.jsonl.gz")] == ["S00001"]
    assert cli_main(["manifest", str(tmp_path / "nowhere"), "--out", str(out)]) == 1
