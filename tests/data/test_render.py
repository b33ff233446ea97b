"""Tests of the demo-data renderer (``clarity_se.data.render``).

Renders a tiny dataset (1 train + 1 dev scene) twice; pyclarity golden values for the SNR
definition and the 16-bit writer come from ``tests/golden/make_render_golden.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import (
    FIXTURES,  # noqa: E402
    GOLDEN_PCM_LSB,
)
from scipy.io import loadmat
from scipy.signal import fftconvolve

from clarity_se.data.audiogram import load_listeners
from clarity_se.data.render import renderer, rooms, scene_sampler, sources
from clarity_se.data.render.cli import build_dataset
from clarity_se.data.render.listeners import BISGAARD_FREQUENCIES_HZ
from clarity_se.data.scene import load_scenes

FIXTURES = FIXTURES
KINDS = ("mix", "target", "interferer")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_a")
    build_dataset(out, n_train=1, n_dev=1, seed=7, workers=1)
    return out / "clarity_data"


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _cec2_snr_db(target: np.ndarray, noise: np.ndarray) -> float:
    """Independent re-implementation of the CEC2 better-ear speech-weighted SNR (dB)."""
    path = Path(sources.assets_dir()).parent / "clarity" / "speech_weight.mat"
    filt = loadmat(str(path), squeeze_me=True)["filt"]
    ratios = []
    for ear in range(2):
        t = fftconvolve(target[:, ear], filt)
        n = fftconvolve(noise[:, ear], filt)
        ratios.append(np.sqrt(np.mean(t**2)) / np.sqrt(np.mean(n**2)))
    return 20 * math.log10(max(ratios))


def _read_int16(path: Path) -> np.ndarray:
    x, _ = sf.read(str(path), dtype="int16")
    return x.astype(np.float64) / 32768.0


def test_same_seed_gives_identical_bytes_whatever_the_workers(dataset, tmp_path):
    build_dataset(tmp_path, n_train=1, n_dev=1, seed=7, workers=2)
    first, second = _files(dataset), _files(tmp_path / "clarity_data")
    assert sorted(first) == sorted(second)
    assert len(first) == 6 + 2 * 13
    for name in first:
        assert first[name] == second[name], name


def test_different_seed_gives_different_scene():
    a, _ = scene_sampler.sample_scene(scene_sampler.scene_rng(1, "S06001"), "dev", "S06001")
    b, _ = scene_sampler.sample_scene(scene_sampler.scene_rng(2, "S06001"), "dev", "S06001")
    assert a != b


def test_layout_and_wav_format(dataset):
    meta = dataset / "metadata"
    for name in (
        "scenes.train.json",
        "scenes.dev.json",
        "scenes_listeners.dev.json",
        "listeners.json",
        "rooms.train.json",
        "rooms.dev.json",
    ):
        assert (meta / name).is_file(), name
    for split in ("train", "dev"):
        scenes = load_scenes(meta / f"scenes.{split}.json")
        rooms_ = {r["name"]: r for r in json.loads((meta / f"rooms.{split}.json").read_text())}
        assert len(scenes) == 1
        for scene in scenes:
            assert scene.dataset == split and scene.room in rooms_
            files = [f"{scene.scene}_{k}_CH{c}.wav" for k in KINDS for c in range(4)]
            files.append(f"{scene.scene}_target_anechoic_CH1.wav")
            for name in files:
                info = sf.info(str(dataset / split / "scenes" / name))
                assert (info.samplerate, info.channels, info.subtype, info.format) == (
                    44100,
                    2,
                    "PCM_16",
                    "WAV",
                ), name
                assert info.frames == scene.duration, name


def test_measured_snr_matches_metadata(dataset):
    for split in ("train", "dev"):
        raw = json.loads((dataset / "metadata" / f"scenes.{split}.json").read_text())
        for scene in raw:
            d = dataset / split / "scenes"
            a, b = scene["target"]["time_start"], scene["target"]["time_end"]
            t = _read_int16(d / f"{scene['scene']}_target_CH1.wav")[a:b]
            n = _read_int16(d / f"{scene['scene']}_interferer_CH1.wav")[a:b]
            assert abs(_cec2_snr_db(t, n) - scene["SNR"]) < 0.5


def test_lead_in_and_tail(dataset):
    for split in ("train", "dev"):
        raw = json.loads((dataset / "metadata" / f"scenes.{split}.json").read_text())
        for scene in raw:
            a, b, dur = (
                scene["target"]["time_start"],
                scene["target"]["time_end"],
                scene["duration"],
            )
            assert 1.5 <= a / 44100 <= 2.0
            assert dur - b == 44100
            d = dataset / split / "scenes"
            t = _read_int16(d / f"{scene['scene']}_target_CH1.wav")
            i = _read_int16(d / f"{scene['scene']}_interferer_CH1.wav")
            assert np.all(t[:a] == 0) and np.abs(t[a : a + 4410]).max() > 0  # silent until onset
            assert np.abs(i[:4410]).max() > 0  # interferers play from the start
            assert np.abs(t[b:]).max() > 0  # reverberant tail continues after the dry target ends
            for ip in scene["interferers"]:
                assert (ip["time_start"], ip["time_end"]) == (0, dur)


def test_mix_is_target_plus_interferer_and_anechoic_is_peak_normalised(dataset):
    raw = json.loads((dataset / "metadata" / "scenes.dev.json").read_text())
    d = dataset / "dev" / "scenes"
    sid = raw[0]["scene"]
    for ch in range(4):
        t, i, m = (
            _read_int16(d / f"{sid}_{k}_CH{ch}.wav") for k in ("target", "interferer", "mix")
        )
        assert np.max(np.abs(m - (t + i))) <= 3 / 32768  # three truncations
    x, _ = sf.read(str(d / f"{sid}_target_anechoic_CH1.wav"), dtype="int16")
    assert np.abs(x).max() == 32767


def test_train_and_dev_speakers_are_disjoint(dataset):
    assert not sources.speakers("train") & sources.speakers("dev")
    used = {}
    for split in ("train", "dev"):
        used[split] = set()
        for scene in json.loads((dataset / "metadata" / f"scenes.{split}.json").read_text()):
            used[split].add(sources.speaker_of("target", scene["target"]["name"]))
            used[split] |= {
                sources.speaker_of("speech", ip["name"])
                for ip in scene["interferers"]
                if ip["type"] == "speech"
            }
        assert used[split] <= sources.speakers(split)
    assert not used["train"] & used["dev"]


def test_listeners_parse_and_dev_scenes_have_three(dataset):
    listeners = load_listeners(dataset / "metadata" / "listeners.json")
    assert sorted(listeners) == ["N1", "N2", "N3", "N4", "N5", "N6", "N7", "S1", "S2", "S3"]
    n3 = listeners["N3"].audiogram_left
    assert list(n3.frequencies_hz) == list(BISGAARD_FREQUENCIES_HZ)
    # spot checks against Bisgaard et al. (2010) Table 1
    assert n3.levels_db_hl[list(BISGAARD_FREQUENCIES_HZ).index(1000)] == 40
    assert (
        listeners["S2"].audiogram_right.levels_db_hl[list(BISGAARD_FREQUENCIES_HZ).index(4000)]
        == 95
    )
    sl = json.loads((dataset / "metadata" / "scenes_listeners.dev.json").read_text())
    assert len(sl) == 1
    for names in sl.values():
        assert len(names) == 3 == len(set(names)) and set(names) <= set(listeners)


def test_sampled_scenes_follow_cec2_rules():
    for k in range(40):
        split = ("train", "dev")[k % 2]
        sid = f"S{k + 1:05d}"
        scene, room = scene_sampler.sample_scene(scene_sampler.scene_rng(3, sid), split, sid)
        assert -12 <= scene["SNR"] <= 6
        assert len(scene["interferers"]) in (2, 3)
        assert [i["type"] for i in scene["interferers"]].count("music") <= 1
        dims = renderer.parse_dimensions(room)
        lis = np.array(room["listener"]["position"])
        tgt = np.array(room["target"]["position"]) - lis
        for pos in [room["target"]["position"]] + [p["position"] for p in room["interferers"]]:
            assert np.all(np.array(pos) > 0) and np.all(np.array(pos) < dims)
        for p in room["interferers"]:
            v = np.array(p["position"]) - lis
            cos = tgt[:2] @ v[:2] / np.linalg.norm(tgt[:2]) / np.linalg.norm(v[:2])
            assert cos <= math.cos(math.radians(29.9))
        rot = scene["listener"]["rotation"]
        target_angle = math.degrees(math.atan2(tgt[1], tgt[0]))
        final_offset = (rot[1]["angle"] - target_angle + 180) % 360 - 180
        assert (
            abs(final_offset) <= 10.0001
            and rot[0]["sample"] <= rot[1]["sample"] <= scene["duration"]
        )
        target_speaker = sources.speaker_of("target", scene["target"]["name"])
        for ip in scene["interferers"]:
            if ip["type"] == "speech":
                assert sources.speaker_of("speech", ip["name"]) != target_speaker


def test_head_model_directional_cues():
    dims, lis = [6.0, 5.0, 3.0], np.array([3.0, 2.5, 1.5])

    def lag(a, b):  # delay of a relative to b, samples (16x upsampled cross-correlation)
        from scipy.signal import resample_poly

        a, b = resample_poly(a, 16, 1), resample_poly(b, 16, 1)
        return (np.argmax(np.correlate(a, b, "full")) - (len(b) - 1)) / 16

    left = rooms.early_response(
        rooms.image_sources(dims, 0.4, [3.0, 4.5, 1.5], lis), lis, 0.0, direct_only=True
    )
    assert np.sum(left[1, 0] ** 2) > 4 * np.sum(left[1, 1] ** 2)  # head shadow: > 6 dB ILD
    assert -35 < lag(left[1, 0], left[1, 1]) < -20  # left ear leads by ~0.6-0.8 ms
    front = rooms.early_response(
        rooms.image_sources(dims, 0.4, [5.0, 2.5, 1.5], lis), lis, 0.0, direct_only=True
    )
    expected = 2 * 0.0076 / rooms.SPEED_OF_SOUND * 44100
    assert abs(lag(front[3, 0], front[1, 0]) - expected) < 0.2  # rear BTE mic lags the front one


def test_speech_weighted_snr_and_pcm_writer_match_pyclarity():
    g = np.load(FIXTURES / "render_golden.npz")
    snr = renderer.better_ear_speechweighted_snr(
        g["target"].astype(np.float64), g["noise"].astype(np.float64)
    )
    assert snr == pytest.approx(float(g["snr"]), rel=1e-9)
    pcm, n_clipped = renderer.to_pcm16(g["loud"].astype(np.float64), 3.0)
    assert n_clipped > 0
    # a last-bit float difference may move a sample across a rounding boundary (conftest.py)
    assert np.abs(pcm.astype(np.int32) - g["pcm"].astype(np.int32)).max() <= GOLDEN_PCM_LSB
    assert np.mean(pcm == g["pcm"]) > 0.999


def test_render_scene_in_memory_sets_snr_and_rejects_bad_metadata():
    scene, room = scene_sampler.sample_scene(
        scene_sampler.scene_rng(11, "S00042"), "train", "S00042"
    )
    scene["target"]["name"] = "p225_003"
    n = sources.load_target("p225_003").size
    scene["target"]["time_end"] = scene["target"]["time_start"] + n + 1
    with pytest.raises(ValueError, match="S00042"):
        renderer.render_scene(scene, room)
    with pytest.raises(ValueError, match="not in the demo source catalogue"):
        sources.load_masker("speech", "nobody.wav")
    with pytest.raises(ValueError, match="split"):
        scene_sampler.sample_scene(np.random.default_rng(0), "eval")


def test_facing_target_talker_raises_direct_to_reverberant_ratio_by_its_directivity():
    dims, lis, src = np.array([5.0, 4.0, 2.7]), np.array([2.5, 2.0, 1.4]), np.array([4.3, 2.5, 1.4])

    def drr_db(view):
        im = rooms.image_sources(dims, 0.4, src, lis, view_vector=view)
        early = rooms.early_response(im, lis, 0.0)[1]
        direct = np.sum(rooms.early_response(im, lis, 0.0, direct_only=True)[1] ** 2)
        rng = np.random.default_rng(0)
        tail, _ = rooms.late_tail(dims, 0.4, im.t_mix_s, rng, radiated_power=im.radiated_power)
        return 10 * np.log10(direct / (np.sum(early**2) - direct + np.sum(tail**2)))

    a = rooms.TALKER_DIRECTIVITY
    di_db = -10 * np.log10(a * a + (1 - a) ** 2 / 3)
    assert drr_db(lis - src) - drr_db(None) == pytest.approx(di_db, abs=1.0)
    assert drr_db(src - lis) < drr_db(None) - 6  # facing away: direct path attenuated


def test_cli_main_writes_metadata_only_for_zero_scenes(tmp_path):
    import argparse

    from clarity_se.data.render import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(
        [str(tmp_path), "--train-scenes", "0", "--dev-scenes", "0", "--workers", "1"]
    )
    assert cli.main(args) == 0
    meta = tmp_path / "clarity_data" / "metadata"
    assert load_scenes(meta / "scenes.dev.json") == []
    assert len(load_listeners(meta / "listeners.json")) == 10
    bad = parser.parse_args([str(tmp_path), "--scenes", "-1"])
    assert cli.main(bad) == 2
