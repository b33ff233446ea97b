"""CEC2 loader (paths, channel order, format checks)."""

from __future__ import annotations

import pytest
import torch
from _cec2_tree import FRAMES, code, make_tree, signal

from clarity_se.data.audio_io import AudioFileError, write_audio
from clarity_se.data.cec2 import CEC2Dataset


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("cec2"))


def test_paths_follow_the_cec2_layout(tmp_path):
    data = CEC2Dataset(tmp_path, "dev")
    scenes = tmp_path / "clarity_data" / "dev" / "scenes"
    meta = tmp_path / "clarity_data" / "metadata"
    assert data.scenes_file == meta / "scenes.dev.json"
    assert data.scenes_listeners_file == meta / "scenes_listeners.dev.json"
    assert data.listeners_file == meta / "listeners.json"
    assert data.mix_path("S06001", 2) == scenes / "S06001_mix_CH2.wav"
    assert data.target_path("S06001") == scenes / "S06001_target_CH1.wav"
    assert data.interferer_path("S06001", 0) == scenes / "S06001_interferer_CH0.wav"
    assert data.target_anechoic_path("S06001") == scenes / "S06001_target_anechoic_CH1.wav"
    assert data.relative(data.mix_path("S06001", 1)) == "clarity_data/dev/scenes/S06001_mix_CH1.wav"
    with pytest.raises(ValueError, match="channel must be one of"):
        data.mix_path("S06001", 4)
    with pytest.raises(ValueError, match="split must be"):
        CEC2Dataset(tmp_path, "../dev")


def test_metadata_access(tree):
    data = CEC2Dataset(tree, "dev")
    assert data.scene_ids == ["S00001", "S00002"] and len(data) == 2
    assert data.get_scene("S00002").scene == "S00002"
    with pytest.raises(KeyError, match="no scene 'S09999'"):
        data.get_scene("S09999")
    assert data.scene_listener_pairs() == [
        ("S00001", "L0064"),
        ("S00001", "L0068"),
        ("S00002", "L0008"),
    ]
    assert data.scene_listener_pairs(small_test=True) == [("S00001", "L0064")]
    assert data.listeners["L0064"].audiogram_left.levels_db_hl[0] == 5


def test_mixture_channel_order_and_scaling(tree):
    data = CEC2Dataset(tree, "dev")
    mix = data.load_mixture("S00002")
    assert mix.shape == (6, FRAMES) and mix.dtype == torch.float32
    ramp = torch.arange(FRAMES, dtype=torch.float32) / 32768
    # Rows: CH1-L, CH1-R, CH2-L, CH2-R, CH3-L, CH3-R.
    for row, ch in zip((0, 2, 4), (1, 2, 3), strict=True):
        assert torch.equal(mix[row], ramp)
        assert torch.all(mix[row + 1] == -code(1, "mix", ch) / 32768)
    target = data.load_target(data.get_scene("S00001"), 2, dtype=torch.float64)
    assert target.shape == (2, FRAMES) and target.dtype == torch.float64
    assert torch.all(target[1] == -code(0, "target", 2) / 32768)
    anechoic = data.load_target_anechoic("S00001")
    assert torch.all(anechoic[1] == -code(0, "target_anechoic", 1) / 32768)
    interferer = data.load_interferer("S00001", 3)
    assert torch.all(interferer[1] == -code(0, "interferer", 3) / 32768)
    two = data.load_mixture("S00001", channels=(0, 3))
    assert torch.all(two[1] == -code(0, "mix", 0) / 32768)
    assert torch.all(two[3] == -code(0, "mix", 3) / 32768)


def test_loader_rejects_wrong_files(tmp_path):
    root = make_tree(tmp_path, n_scenes=1, channels=(1, 2, 3), kinds=("mix", "target"))
    data = CEC2Dataset(root, "dev")
    write_audio(data.mix_path("S00001", 2), signal(0, "mix", 2), 16000, subtype="PCM_16")
    with pytest.raises(AudioFileError, match=r"S00001_mix_CH2\.wav: sample_rate is 16000 Hz"):
        data.load_mixture("S00001")
    write_audio(data.mix_path("S00001", 2), signal(0, "mix", 2)[:, 0], 44100, subtype="PCM_16")
    with pytest.raises(AudioFileError, match=r"S00001_mix_CH2\.wav: channels is 1, expected 2"):
        data.load_mixture("S00001")
    write_audio(data.mix_path("S00001", 2), signal(0, "mix", 2, 100), 44100, subtype="PCM_16")
    with pytest.raises(AudioFileError, match=r"S00001_mix_CH2\.wav: num_samples is 100"):
        data.load_mixture("S00001")
    data.mix_path("S00001", 2).unlink()
    with pytest.raises(AudioFileError, match=r"S00001_mix_CH2\.wav: file not found"):
        data.load_mixture("S00001")
