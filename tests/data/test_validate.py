"""``clarity-se validate``: every kind of problem is found, named and counted; exit codes."""

from __future__ import annotations

import json
import os

import numpy as np
import soundfile as sf
from _cec2_tree import make_tree, signal

from clarity_se.cli import main as cli_main
from clarity_se.data.audio_io import wav_data_frames, write_audio
from clarity_se.data.validate import validate_dataset


def _scenes(root):
    return root / "clarity_data" / "dev" / "scenes"


def _meta(root):
    return root / "clarity_data" / "metadata"


def test_clean_dataset_passes(tmp_path, capsys):
    root = make_tree(tmp_path, n_scenes=2)
    assert cli_main(["validate", str(root), "--split", "dev"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("validate: OK: splits dev; 2 scenes, 3 scene-")
    assert "26 audio files (headers checked)" in out[0]  # 2 x (12 + anechoic)
    assert cli_main(["validate", str(root), "--read-audio"]) == 0
    assert "(decoded)" in capsys.readouterr().out


def test_every_problem_is_reported_once_per_line(tmp_path, capsys):
    root = make_tree(tmp_path, n_scenes=4)
    scenes = _scenes(root)
    os.truncate(scenes / "S00001_mix_CH2.wav", 5000)  # cut with truncate
    (scenes / "S00002_target_CH1.wav").unlink()  # missing
    (scenes / "S00003_mix_CH3.wav").write_bytes(b"not a wav file" * 20)  # unreadable
    write_audio(scenes / "S00002_mix_CH1.wav", signal(1, "mix", 1), 16000, subtype="PCM_16")
    write_audio(
        scenes / "S00003_target_CH2.wav", signal(2, "target", 2)[:, 0], 44100, subtype="PCM_16"
    )  # mono
    write_audio(
        scenes / "S00001_interferer_CH0.wav",
        signal(0, "interferer", 0, 4000),
        44100,
        subtype="PCM_16",
    )  # shorter than the other files of the scene
    entries = json.loads((_meta(root) / "scenes.dev.json").read_text())
    entries[3]["interferers"][0]["type"] = "babble"  # bad field
    (_meta(root) / "scenes.dev.json").write_text(json.dumps(entries, indent=2))
    pairs = json.loads((_meta(root) / "scenes_listeners.dev.json").read_text())
    pairs["S00002"] = ["L9999"]  # unknown listener
    pairs["S00042"] = ["L0064"]  # unknown scene
    (_meta(root) / "scenes_listeners.dev.json").write_text(json.dumps(pairs))

    assert cli_main(["validate", str(root)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    problems, summary = lines[:-1], lines[-1]
    expected = [
        "S00001_mix_CH2.wav: num_samples: truncated: header declares 4410 frames, file holds 1239",
        "S00002_target_CH1.wav: file: missing",
        "S00003_mix_CH3.wav: header: unreadable audio header",
        "S00002_mix_CH1.wav: sample_rate: is 16000 Hz, expected 44100 Hz",
        "S00003_target_CH2.wav: channels: is 1, expected 2",
        "S00001_interferer_CH0.wav: num_samples: is 4000 but S00001_mix_CH1.wav has 4410",
        "scenes.dev.json: scene 'S00004': interferers[0]: Interferer 'CIN_fan_001.wav': type must",
        "scenes_listeners.dev.json: scene 'S00002': listeners[0]: listener 'L9999' is not in",
        "scenes_listeners.dev.json: scene 'S00042': scene is not in scenes.dev.json",
    ]
    for fragment in expected:
        assert sum(fragment in line for line in problems) == 1, (fragment, problems)
    assert len(problems) == len(expected), problems
    assert summary.startswith(f"validate: {len(expected)} problem(s): splits dev; 3 scenes")


def test_problems_in_scene_files_of_a_valid_scene(tmp_path):
    root = make_tree(tmp_path, n_scenes=2, channels=(1, 2, 3), kinds=("mix", "target"))
    scenes = _scenes(root)
    (scenes / "S00002_mix_CH3.wav").write_bytes(b"RIFF....WAVEjunk")
    write_audio(scenes / "S00001_target_CH1.wav", signal(0, "target", 1), 22050, subtype="PCM_16")
    report = validate_dataset(root, ["dev"])
    assert len(report.problems) == 2, report.problems
    assert any("S00002_mix_CH3.wav: header:" in p for p in report.problems)
    assert any("S00001_target_CH1.wav: sample_rate: is 22050 Hz" in p for p in report.problems)
    assert report.n_files == 14  # 2 x (3 mix + 3 target (CH2/3 present, so expected) + anechoic)


def test_read_audio_finds_what_headers_cannot(tmp_path):
    root = make_tree(tmp_path, n_scenes=1, channels=(1, 2, 3), kinds=("mix", "target"))
    path = _scenes(root) / "S00001_mix_CH1.wav"
    # A FLAC stream under a .wav name: no RIFF header to compare, the frame count is only in
    # STREAMINFO, so only decoding finds the cut.
    rng = np.random.default_rng(0)
    sf.write(path, rng.uniform(-0.5, 0.5, (4410, 2)), 44100, format="FLAC", subtype="PCM_16")
    assert validate_dataset(root).ok
    os.truncate(path, path.stat().st_size // 2)
    assert validate_dataset(root, ["dev"]).ok
    report = validate_dataset(root, ["dev"], read_audio_data=True)
    assert len(report.problems) == 1
    assert "S00001_mix_CH1.wav: " in report.problems[0]
    assert "truncated" in report.problems[0] or "unreadable" in report.problems[0]


def test_optional_signals_become_required_when_the_split_has_them(tmp_path, capsys):
    root = make_tree(tmp_path, n_scenes=2, channels=(1, 2, 3), kinds=("mix", "target"))
    write_audio(
        _scenes(root) / "S00001_interferer_CH2.wav",
        signal(0, "interferer", 2),
        44100,
        subtype="PCM_16",
    )
    assert cli_main(["validate", str(root)]) == 1
    out = capsys.readouterr().out
    assert "S00002_interferer_CH2.wav: file: missing" in out


def test_mix_only_and_required_signals(tmp_path, capsys):
    root = make_tree(tmp_path, n_scenes=1, channels=(1, 2, 3), kinds=("mix",), anechoic=False)
    assert cli_main(["validate", str(root)]) == 1
    out = capsys.readouterr().out
    assert "S00001_target_CH1.wav: file: missing" in out
    assert "S00001_target_anechoic_CH1.wav: file: missing" in out
    assert cli_main(["validate", str(root), "--mix-only"]) == 0


def test_metadata_file_problems(tmp_path, capsys):
    root = make_tree(tmp_path, n_scenes=1)
    (_meta(root) / "scenes.dev.json").write_text("[{]")
    (_meta(root) / "scenes_listeners.dev.json").unlink()
    listeners = json.loads((_meta(root) / "listeners.json").read_text())
    listeners["L0008"]["audiogram_levels_l"] = [10, 20]
    (_meta(root) / "listeners.json").write_text(json.dumps(listeners))
    assert cli_main(["validate", str(root), "--split", "dev"]) == 1
    out = capsys.readouterr().out
    assert "scenes.dev.json: not valid JSON" in out
    assert "scenes_listeners.dev.json: missing scenes_listeners file" in out
    assert "listeners.json: listener 'L0008': field " in out
    assert cli_main(["validate", str(tmp_path / "nothing")]) == 1
    assert "missing folder (ROOT must hold clarity_data/)" in capsys.readouterr().out


def test_wav_data_frames(tmp_path):
    path = tmp_path / "a.wav"
    write_audio(path, np.zeros((100, 2)), 44100, subtype="PCM_16")
    assert wav_data_frames(path) == (100, 100)
    os.truncate(path, path.stat().st_size - 41)
    assert wav_data_frames(path) == (100, 89)
    write_audio(path, np.zeros((7, 1)), 44100, subtype="FLOAT")
    assert wav_data_frames(path) == (7, 7)
    path.write_bytes(b"fLaC")
    assert wav_data_frames(path) is None


def test_rooms_and_non_finite_samples(tmp_path, capsys):
    root = make_tree(tmp_path, n_scenes=2, channels=(1, 2, 3), kinds=("mix", "target"))
    rooms = [{"name": "R00001", "interferers": [{"position": [0, 0, 0]}] * 2}]
    (_meta(root) / "rooms.dev.json").write_text(json.dumps(rooms))
    bad = signal(1, "target", 3)
    bad[7, 1] = np.nan
    sf.write(_scenes(root) / "S00002_target_CH3.wav", bad, 44100, subtype="FLOAT")
    assert cli_main(["validate", str(root)]) == 1
    out = capsys.readouterr().out
    # Scene interferer positions are 1 and 3; the room has 2.
    assert out.count("interferers[1].position: 3 but room 'R00001' has 2") == 2
    assert "NaN" not in out
    assert cli_main(["validate", str(root), "--read-audio"]) == 1
    out = capsys.readouterr().out
    assert "S00002_target_CH3.wav: data: contains NaN or Inf samples" in out
    rooms[0]["name"] = "R00002"
    (_meta(root) / "rooms.dev.json").write_text(json.dumps(rooms))
    validate_out = validate_dataset(root).problems
    assert sum("room: 'R00001' is not in rooms.dev.json" in p for p in validate_out) == 2
