"""The AEC Challenge layouts (loader, validate) and the echo-scene renderer (``aec-data``)."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
import soundfile as sf

from clarity_se.cli import main as cli_main
from clarity_se.data.aec_challenge import (
    AECClip,
    detect_layout,
    load_aec_dataset,
    parse_scenario,
    read_clip,
    read_synthetic_meta,
    scan_real,
)
from clarity_se.data.audio_io import AudioFileError
from clarity_se.data.render.echo import (
    EchoRenderOptions,
    EchoSceneRenderer,
    build_aec_dataset,
    hearing_aid_path,
    load_measured_paths,
    loudspeaker_nonlinearity,
    room_echo_path,
    talker_of,
)
from clarity_se.data.validate_aec import validate_aec_dataset
from tests._aec_tree import make_data_root, talkers

CLIP_S = 0.8


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_data_root(tmp_path_factory.mktemp("recordings"))


@pytest.fixture(scope="module")
def rendered(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("aec") / "synthetic"
    options = EchoRenderOptions(clip_s=CLIP_S, seed=3, p_path_change=0.5)
    build_aec_dataset(out, n_clips=8, options=options, data_root=data_root)
    return out


def _digest(folder):
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(folder).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- signal models
def test_loudspeaker_nonlinearity_matches_the_published_form():
    x = np.linspace(-1, 1, 2001)
    y = loudspeaker_nonlinearity(x)
    x_hard = np.clip(x, -0.8, 0.8)
    b = 1.5 * x_hard - 0.3 * x_hard**2
    # 2 / (1 + exp(-z)) - 1 == tanh(z / 2): an independent form of the sigmoid
    expected = 4 * np.tanh(np.where(b > 0, 4.0, 0.5) * b / 2)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    assert np.all(np.diff(y) >= 0)  # monotonic
    assert np.all(y[x >= 0.8] == y[x >= 0.8][0])  # hard-clipped above 80 % of the peak
    # small-signal slopes gamma * a * 1.5 / 2: 12 for b > 0, 1.5 for b < 0 (asymmetric)
    eps = 1e-4
    small = loudspeaker_nonlinearity(np.array([-eps, eps, 1.0]))
    assert small[1] / eps == pytest.approx(12.0, rel=1e-3)
    assert small[0] / -eps == pytest.approx(1.5, rel=1e-3)


def test_hearing_aid_path_is_short_strong_and_band_pass():
    for seed in range(5):
        h = hearing_aid_path(np.random.default_rng(seed))
        energy = np.cumsum(h**2) / np.sum(h**2)
        assert np.argmax(np.abs(h)) < 16  # peak within 1 ms
        assert energy[int(0.008 * 16000)] > 0.95  # >95 % of the energy within 8 ms
        spectrum = np.abs(np.fft.rfft(h, 4096)) ** 2
        f = np.fft.rfftfreq(4096, 1 / 16000)
        band = spectrum[(f > 1500) & (f < 5000)].mean()
        low = spectrum[f < 300].mean()
        assert 10 * np.log10(band / low) > 10


def test_room_path_distance_and_direct_path_delay():
    rng = np.random.default_rng(1)
    for _ in range(3):
        h, info = room_echo_path(rng, (0.05, 1.0))
        assert 0.05 <= info["distance_m"] <= 1.0
        expected = info["distance_m"] / 343.0 * 16000
        assert abs(int(np.argmax(np.abs(h))) - expected) <= 2.0
        assert 0.15 <= info["rt60"] <= 0.7


def test_measured_paths_split_by_file(data_root):
    paths = load_measured_paths(data_root / "rir")
    assert [p.name for p in paths["train"]] == ["brir/0", "brir/1"]
    assert [p.name for p in paths["test"]] == ["clap"]
    for p in paths["train"] + paths["test"]:
        assert np.max(np.abs(p.response)) == pytest.approx(1.0)
        onset = np.flatnonzero(np.abs(p.response) >= 0.1 * np.max(np.abs(p.response)))[0]
        assert onset == 16  # cut 1 ms before the onset


def test_talker_names():
    assert talker_of("speech/librispeech/1034-121119-0000.flac") == "ls1034"
    assert talker_of("speech/vctk/p225_003.flac") == "p225"
    assert talker_of("speech/cmu_arctic/cmu_arctic_us_aew_a0001.flac") == "arctic_aew"
    assert talker_of("speech/freesound/xmas.flac") == "xmas"


# --------------------------------------------------------------------------- renderer
def test_render_signal_model_and_ser(data_root):
    for talk_type, mix in (("st", (1, 0, 0)), ("dt", (0, 1, 0)), ("nst", (0, 0, 1))):
        renderer = EchoSceneRenderer(
            data_root,
            EchoRenderOptions(clip_s=CLIP_S, talk_mix=mix, p_nearend_noise=0.0, seed=5),
        )
        for fileid in range(3):
            clip = renderer.render(fileid)
            n = int(CLIP_S * 16000)
            assert all(s.shape == (n,) for s in (clip.mic, clip.farend, clip.echo, clip.nearend))
            assert clip.meta["talk_type"] == talk_type
            np.testing.assert_allclose(clip.mic, clip.nearend + clip.echo, atol=1e-12)
            assert np.max(np.abs(clip.mic)) <= 0.99 + 1e-12
            if talk_type == "st":
                assert not clip.nearend.any() and clip.echo.any()
            if talk_type == "nst":
                assert not clip.farend.any() and not clip.echo.any() and clip.nearend.any()
            if talk_type == "dt":
                start = round(float(clip.meta["nearend_start_s"]) * 16000)
                length = round(float(clip.meta["nearend_duration_s"]) * 16000)
                p_near = np.mean(clip.nearend[start : start + length] ** 2)
                ser = 10 * np.log10(p_near / np.mean(clip.echo**2))
                assert ser == pytest.approx(float(clip.meta["ser"]), abs=2e-3)
                assert -10 <= ser <= 10
                assert not clip.nearend[:start].any()


def test_render_is_deterministic_and_order_free(data_root):
    options = EchoRenderOptions(clip_s=CLIP_S, seed=11)
    a = EchoSceneRenderer(data_root, options)
    b = EchoSceneRenderer(data_root, options)
    late = [a.render(i) for i in range(4)][3]
    alone = b.render(3)
    for name in ("mic", "farend", "echo", "nearend"):
        assert np.array_equal(getattr(late, name), getattr(alone, name))
    assert late.meta == alone.meta
    other = EchoSceneRenderer(data_root, EchoRenderOptions(clip_s=CLIP_S, seed=12)).render(3)
    assert not np.array_equal(other.mic, alone.mic)


def test_splits_use_distinct_talkers(data_root):
    names = talkers()
    seen = {"train": set(), "test": set()}
    for split in seen:
        renderer = EchoSceneRenderer(data_root, EchoRenderOptions(clip_s=CLIP_S, split=split))
        for fileid in range(6):
            meta = renderer.render(fileid).meta
            for key in ("nearend_speaker", "farend_speaker"):
                if meta[key]:
                    seen[split].add(meta[key])
            assert meta["nearend_speaker"] != meta["farend_speaker"]
            if meta["echo_path"] == "measured":
                expected = "clap" if split == "test" else "brir/"
                assert meta["echo_path_detail"].startswith(expected)
    assert seen["train"] <= set(names["train"]) and seen["test"] <= set(names["test"])
    assert seen["train"] and seen["test"]


def test_echo_path_change_is_flagged_and_changes_the_echo(data_root):
    options = EchoRenderOptions(clip_s=CLIP_S, talk_mix=(1, 0, 0), p_path_change=1.0,
                                p_nonlinear=0.0, p_nearend_noise=0.0, path_mix=(0, 0, 1),
                                delay_ms=(0.0, 0.0))
    clip = EchoSceneRenderer(data_root, options).render(0)
    assert clip.meta["is_echo_path_change"] == "1"
    change = float(clip.meta["echo_path_change_s"])
    assert 0.4 * CLIP_S <= change <= 0.6 * CLIP_S
    # least-squares fit of the echo from the far end on each half: a single path explains the
    # first half far better than the whole clip
    def residual(lo, hi, taps=160):
        x = clip.farend
        X = np.stack([np.roll(x, k) for k in range(taps)], axis=1)[lo:hi]
        d = clip.echo[lo:hi]
        w = np.linalg.lstsq(X, d, rcond=None)[0]
        return np.sum((d - X @ w) ** 2) / np.sum(d**2)

    k = int(change * 16000)
    assert residual(1000, k) < 0.05 * residual(1000, len(clip.echo))


def test_build_dataset_layout_and_byte_identical_rerun(data_root, rendered, tmp_path):
    clips = load_aec_dataset(rendered)
    assert [c.fileid for c in clips] == list(range(8))
    assert {c.talk_type for c in clips} <= {"st", "dt", "nst"}
    again = tmp_path / "again"
    options = EchoRenderOptions(clip_s=CLIP_S, seed=3, p_path_change=0.5)
    build_aec_dataset(again, n_clips=8, options=options, data_root=data_root, workers=2)
    assert _digest(again) == _digest(rendered)
    for clip in clips:
        audio = read_clip(clip)
        np.testing.assert_allclose(audio.mic, audio.nearend + audio.echo
                                   + (audio.mic - audio.nearend - audio.echo), atol=0)
        if not clip.is_nearend_noisy:
            assert np.max(np.abs(audio.mic - audio.nearend - audio.echo)) <= 2 / 32768
        assert sf.info(str(clip.mic)).subtype == "PCM_16"


def test_cli_aec_data_and_validate(data_root, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = cli_main(["aec-data", str(out), "--clips", "3", "--clip-s", "0.5", "--split", "test",
                   "--data-root", str(data_root), "--seed", "1"])
    assert rc == 0
    assert {c.split for c in read_synthetic_meta(out)} == {"test"}
    assert cli_main(["validate", str(out), "--read-audio"]) == 0
    assert "OK: AEC Challenge synthetic layout; 3 clips" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse usage error
        cli_main(["aec-data", str(out), "--talk-mix", "1,2"])


def test_bad_options_and_data_root(tmp_path):
    with pytest.raises(ValueError, match="split"):
        EchoRenderOptions(split="dev")
    with pytest.raises(ValueError, match="talk_mix"):
        EchoRenderOptions(talk_mix=(0, 0, 0))
    with pytest.raises(ValueError, match="need at least 2 talkers"):
        EchoSceneRenderer(tmp_path, EchoRenderOptions())


# --------------------------------------------------------------------------- loader
def test_synthetic_meta_errors_name_file_line_and_field(rendered, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(rendered, copy)
    meta = copy / "meta.csv"
    lines = meta.read_text().splitlines()
    header = lines[0].split(",")
    for column, bad, pattern in (("fileid", "x1", "line 3: fileid"),
                                 ("is_farend_nonlinear", "2", "line 3: is_farend_nonlinear"),
                                 ("ser", "loud", "line 3: ser"),
                                 ("talk_type", "both", "line 3: talk_type")):
        row = lines[2].split(",")
        row[header.index(column)] = bad
        meta.write_text("\n".join([lines[0], lines[1], ",".join(row), *lines[3:]]) + "\n")
        with pytest.raises(ValueError, match=f"meta.csv: {pattern}"):
            read_synthetic_meta(copy)
    meta.write_text("\n".join([lines[0], lines[1], lines[1]]) + "\n")
    with pytest.raises(ValueError, match="line 3: fileid: 0 already on line 2"):
        read_synthetic_meta(copy)
    meta.write_text(lines[0].replace("ser,", "") + "\n")
    with pytest.raises(ValueError, match="header: missing column"):
        read_synthetic_meta(copy)


def test_original_challenge_meta_reads_as_double_talk(tmp_path):
    # the challenge's own header (no talk_type column)
    root = tmp_path / "synthetic"
    (root / "nearend_mic_signal").mkdir(parents=True)
    header = ("nearend_speaker,nearend_wav_path,nearend_wav_path_noisy,farend_speaker,"
              "farend_wav_path,farend_wav_path_noisy,ser,is_farend_nonlinear,is_farend_noisy,"
              "is_nearend_noisy,split,fileid,nearend_scale")
    row = "r1,a.wav,b.wav,r2,c.wav,d.wav,-7,1,1,0,test,0,0.57"
    (root / "meta.csv").write_text(f"{header}\n{row}\n")
    sf.write(root / "nearend_mic_signal" / "nearend_mic_fileid_0.wav", np.zeros(160), 16000)
    assert detect_layout(root) == "synthetic"
    (clip,) = load_aec_dataset(root)
    assert (clip.talk_type, clip.ser_db, clip.is_farend_nonlinear, clip.split) == (
        "dt", -7.0, True, "test")
    assert clip.meta["nearend_scale"] == "0.57"
    assert clip.enhanced_name == "nearend_mic_fileid_0_enhanced.wav"
    with pytest.raises(AudioFileError, match="farend: .*farend_speech_fileid_0.wav"):
        read_clip(clip)


def _wav(path, n=1600, sr=16000, channels=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.zeros((n, channels)) if channels > 1 else np.zeros(n)
    sf.write(path, data, sr, subtype="PCM_16")


def test_real_layout_talk_types_from_names_and_folders(tmp_path):
    root = tmp_path / "real"
    for stem in ("a_doubletalk", "a_farend_singletalk_with_movement", "b_farend-singletalk",
                 "clean/c_doubletalk_with_movement"):
        _wav(root / f"{stem}_lpb.wav")
        _wav(root / f"{stem}_mic.wav", n=1700)
    _wav(root / "a_nearend_singletalk_mic.wav")  # no loopback: allowed for nst
    _wav(root / "a_sweep_mic.wav")
    _wav(root / "a_sweep_lpb.wav")
    _wav(root / "doubletalk" / "x_mic.wav")  # talk type from the folder
    _wav(root / "doubletalk" / "x_lpb.wav")
    assert detect_layout(root) == "real"
    clips = {c.id: c for c in scan_real(root)}
    assert {k: (c.talk_type, c.scenario) for k, c in clips.items()} == {
        "a_doubletalk": ("dt", "doubletalk"),
        "a_farend_singletalk_with_movement": ("st", "farend_singletalk_with_movement"),
        "a_nearend_singletalk": ("nst", "nearend_singletalk"),
        "b_farend-singletalk": ("st", "farend_singletalk"),
        "clean/c_doubletalk_with_movement": ("dt", "doubletalk_with_movement"),
        "doubletalk/x": ("dt", "doubletalk"),
    }
    assert clips["clean/c_doubletalk_with_movement"].enhanced_name == (
        "clean/c_doubletalk_with_movement_enhanced.wav")
    audio = read_clip(clips["a_doubletalk"])
    assert audio.mic.shape == audio.farend.shape == (1700,)  # loopback zero-padded
    audio = read_clip(clips["a_nearend_singletalk"])
    assert not audio.farend.any()
    assert parse_scenario("q_nearend-singletalk") == ("q", "nearend_singletalk", False)
    assert cli_main(["validate", str(root)]) == 0


def test_real_layout_errors_name_the_file(tmp_path):
    root = tmp_path / "r1"
    _wav(root / "a_doubletalk_mic.wav")
    with pytest.raises(ValueError, match="a_doubletalk_mic.wav: farend: no loopback"):
        scan_real(root)
    root = tmp_path / "r2"
    _wav(root / "a_whatever_mic.wav")
    with pytest.raises(ValueError, match="a_whatever_mic.wav: talk_type"):
        scan_real(root)
    root = tmp_path / "r3"
    _wav(root / "a_doubletalk_lpb.wav")
    _wav(root / "b_doubletalk_mic.wav")
    _wav(root / "b_doubletalk_lpb.wav")
    with pytest.raises(ValueError, match="a_doubletalk_lpb.wav: mic"):
        scan_real(root)
    with pytest.raises(ValueError, match="layout must be"):
        AECClip(id="x", layout="other", talk_type="dt", mic=root, farend=root)


def test_read_clip_rejects_wrong_rate_and_channels(tmp_path):
    root = tmp_path / "real"
    _wav(root / "a_doubletalk_mic.wav", sr=48000)
    _wav(root / "a_doubletalk_lpb.wav")
    _wav(root / "b_doubletalk_mic.wav")
    _wav(root / "b_doubletalk_lpb.wav", channels=2)
    clips = {c.id: c for c in scan_real(root)}
    with pytest.raises(AudioFileError, match="mic: .*a_doubletalk_mic.wav: sample_rate is 48000"):
        read_clip(clips["a_doubletalk"])
    with pytest.raises(AudioFileError, match="farend: .*b_doubletalk_lpb.wav: channels is 2"):
        read_clip(clips["b_doubletalk"])


def test_validate_lists_every_problem(rendered, tmp_path, capsys):
    copy = tmp_path / "bad"
    shutil.copytree(rendered, copy)
    (copy / "echo_signal" / "echo_fileid_1.wav").unlink()
    mic = copy / "nearend_mic_signal" / "nearend_mic_fileid_2.wav"
    mic.write_bytes(mic.read_bytes()[:-100])  # truncated
    near = copy / "nearend_speech" / "nearend_speech_fileid_3.wav"
    sf.write(near, np.zeros(100), 16000, subtype="PCM_16")  # wrong length
    shutil.copy(copy / "nearend_mic_signal" / "nearend_mic_fileid_0.wav",
                copy / "nearend_mic_signal" / "nearend_mic_fileid_99.wav")  # orphan
    report = validate_aec_dataset(copy)
    text = "\n".join(report.problems)
    assert "echo_fileid_1.wav: echo: file missing" in text
    assert "nearend_mic_fileid_2.wav: num_samples: truncated" in text
    assert "nearend_speech_fileid_3.wav: num_samples: is 100" in text
    assert "nearend_mic_fileid_99.wav: fileid: 99 is not in meta.csv" in text
    assert len(report.problems) == 4
    assert cli_main(["validate", str(copy)]) == 1
    assert "4 problem(s)" in capsys.readouterr().out
