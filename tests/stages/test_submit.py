"""``clarity-se submit``: validates every enhanced signal and zips them with checksums."""

import hashlib
import json
import zipfile

import numpy as np

from clarity_se.cli import main as cli_main
from clarity_se.data.audio_io import write_audio


def _setup(tmp_path, n_samples=4410):
    root = tmp_path / "cec2"
    meta = root / "clarity_data" / "metadata"
    scenes = root / "clarity_data" / "eval" / "scenes"
    meta.mkdir(parents=True)
    sl = {"S00001": ["L0001", "L0002"], "S00002": ["L0003"]}
    (meta / "scenes_listeners.eval.json").write_text(json.dumps(sl))
    exp = tmp_path / "exp"
    rng = np.random.default_rng(1)
    for scene, listeners in sl.items():
        write_audio(
            scenes / f"{scene}_mix_CH1.wav",
            rng.uniform(-0.1, 0.1, (n_samples, 2)),
            44100,
            subtype="PCM_16",
        )
        for lis in listeners:
            write_audio(
                exp / "enhanced_signals" / f"{scene}_{lis}_enhanced.wav",
                rng.uniform(-0.1, 0.1, (n_samples, 2)),
                44100,
            )
    args = [
        "submit",
        f"path.root={root}",
        f"path.exp_folder={exp}",
        f"path.scenes_listeners_file={meta}/scenes_listeners.eval.json",
        f"path.scenes_folder={scenes}",
    ]
    return exp, args


def test_submit_zips_valid_files_with_checksums(tmp_path):
    exp, args = _setup(tmp_path)
    assert cli_main(args) == 0
    with zipfile.ZipFile(exp / "submission.zip") as archive:
        names = set(archive.namelist())
        assert {
            "S00001_L0001_enhanced.wav",
            "S00001_L0002_enhanced.wav",
            "S00002_L0003_enhanced.wav",
            "manifest.json",
            "SHA256SUMS",
        } <= names
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["pairs"] == 3
        for record in manifest["files"]:
            assert hashlib.sha256(archive.read(record["path"])).hexdigest() == record["sha256"]


def test_submit_refuses_and_lists_problems(tmp_path, capsys):
    exp, args = _setup(tmp_path)
    write_audio(exp / "enhanced_signals" / "S00001_L0002_enhanced.wav", np.zeros((100, 2)), 44100)
    write_audio(
        exp / "enhanced_signals" / "S00002_L0003_enhanced.wav",
        np.zeros((4410, 2)),
        44100,
        subtype="PCM_16",
    )
    (exp / "enhanced_signals" / "S00001_L0001_enhanced.wav").unlink()
    assert cli_main(args) == 1
    out = capsys.readouterr().out
    assert "3 problem(s)" in out
    assert "S00001_L0001_enhanced.wav: file not found" in out
    assert "S00001_L0002_enhanced.wav: length is 100 samples, mixture has 4410" in out
    assert "S00002_L0003_enhanced.wav: format is WAV/PCM_16" in out
    assert not (exp / "submission.zip").exists()
