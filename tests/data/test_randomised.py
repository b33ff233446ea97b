"""Tests of the domain-randomised mixer and held-out sets (``clarity_se.data.render``).

Everything runs on the embedded demo sources (no shared data needed); the measured Rostock
BRIRs come from a 70 ms fixture (``tests/golden/make_rostock_brir_fixture.py``, CC0).
Segments are 0.5 s so the file stays within a few seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FIXTURES, PROCESS_ITEM_ABS  # noqa: E402
from scipy.io import savemat
from scipy.signal import coherence
from torch.utils.data import default_collate

from clarity_se.data.render import acoustics, corpus, renderer, rooms
from clarity_se.data.render.randomised import (
    MixerOptions,
    RandomisedMixtures,
    build_training_dataset,
    early_response,
)

FIXTURE = FIXTURES / "rostock_brir_early.npz"
FS = 44100
SMALL = {"segment_s": 0.5, "n_items": 16, "rt60_s": [0.1, 0.4]}


def _lag(a: np.ndarray, b: np.ndarray) -> int:
    """Samples by which ``a`` lags ``b`` (negative: ``a`` leads)."""
    c = np.correlate(a, b, "full")
    return int(np.argmax(np.abs(c))) - (len(b) - 1)


@pytest.fixture(scope="module")
def brir_root(tmp_path_factory) -> Path:
    """A data root: the demo talkers / noises (linked) and .mat BRIRs rebuilt from the fixture."""
    root = tmp_path_factory.mktemp("brir_root")
    for sub in ("speech", "noise", "music"):
        (root / sub).symlink_to(corpus.default_data_root() / sub, target_is_directory=True)
    folder = root / "rir" / "rostock_kemar_brir"
    folder.mkdir(parents=True)
    data = np.load(FIXTURE)
    for key, name in (("0", "brir_sweep"), ("p40", "brir_sweep+40"), ("m40", "brir_sweep-40")):
        struct = {
            "ir": data[f"ir_{key}"].astype(np.float64),
            "fs": 44100.0,
            "apparent_azimuth": float(data[f"azimuth_{key}"]),
        }
        savemat(str(folder / f"{name}.mat"), {"data": struct})
    return root


@pytest.fixture(scope="module")
def train_set() -> RandomisedMixtures:
    return build_training_dataset({**SMALL, "n_src": 2})


# --------------------------------------------------------------------------- corpus


def test_validation_talkers_are_disjoint_from_training_talkers():
    train = corpus.SourceCorpus(None, "train")
    val = corpus.SourceCorpus(None, "validation")
    assert set(train.speakers).isdisjoint(val.speakers)
    assert set(val.speakers) <= set(corpus.VALIDATION_SPEAKERS)
    assert {"p226", "p228", "201"} <= set(val.speakers)  # the demo dev talkers
    assert train.speakers and val.speakers
    # noise segments: the validation split only reads *_dev files
    assert all(c.path.split("/")[-1].split(".")[0].endswith("_dev") for c in val.clips)
    assert not any("_dev" in c.path for c in train.clips)


def test_speaker_ids_from_file_names():
    assert corpus.speaker_of_path("speech/vctk/p225_003.flac") == "p225"
    assert corpus.speaker_of_path("x/cmu_arctic_us_aew_a0001.flac") == "aew"
    assert (
        corpus.speaker_of_path("speech/librispeech_extra/test-other/1688-142285-0003.flac")
        == "1688"
    )
    assert corpus.speaker_of_path("speech/freesound/xmas.flac") == "xmas"


def test_read_segment_equals_resampling_the_whole_file():
    import soundfile as sf
    from scipy.signal import resample_poly

    path = corpus.default_data_root() / "speech" / "vctk" / "p225_003.flac"
    x, sr = sf.read(str(path), dtype="int16")
    full = resample_poly(x / 32768.0, 441, 160)
    for start_s in (0.0, 0.0137, 1.5):
        seg = corpus.read_segment(path, start_s, 4410)
        k = int(round(start_s * FS))
        np.testing.assert_allclose(seg, full[k : k + 4410], atol=1e-5)


def test_validation_speakers_never_in_training_items(train_set):
    held = set(corpus.VALIDATION_SPEAKERS)
    seen = set()
    for i in range(len(train_set)):
        meta = train_set[i]["metadata"]
        seen.add(meta["target_speaker"])
        for name in meta["interferers"].split(","):
            kind, _, who = name.partition(":")
            if kind in ("speech", "babble"):
                seen.update(who.split("+"))
    assert seen and seen.isdisjoint(held)
    val = build_training_dataset({**SMALL, "split": "validation", "n_items": 4})
    assert {val[i]["metadata"]["target_speaker"] for i in range(4)} <= held


# --------------------------------------------------------------------------- items


def test_item_shapes_dtypes_and_collate(train_set):
    item = train_set[0]
    assert set(item) == {"mixture", "sources", "metadata"}
    t = train_set.segment
    assert item["mixture"].shape == (6, t) and item["mixture"].dtype == torch.float32
    assert item["sources"].shape == (2, 2, t) and item["sources"].dtype == torch.float32
    # residual definition: the two sources add up to the CH1 mixture
    torch.testing.assert_close(item["sources"].sum(0), item["mixture"][:2])
    assert torch.isfinite(item["mixture"]).all()
    batch = default_collate([train_set[i] for i in range(3)])
    assert batch["mixture"].shape == (3, 6, t)
    assert batch["metadata"]["mic_gain_db"].shape == (3, 6)
    assert len(batch["metadata"]["acoustic_model"]) == 3


def test_deterministic_per_seed_epoch_index():
    a = build_training_dataset(SMALL)
    b = build_training_dataset(SMALL)
    x, y = a[5], b[5]
    assert torch.equal(x["mixture"], y["mixture"]) and torch.equal(x["sources"], y["sources"])
    assert x["metadata"]["acoustic_model"] == y["metadata"]["acoustic_model"]
    b[2]  # order of access does not matter
    assert torch.equal(a[5]["mixture"], b[5]["mixture"])
    b.set_epoch(1)
    assert not torch.equal(a[5]["mixture"], b[5]["mixture"])
    c = build_training_dataset({**SMALL, "seed": 1})
    assert not torch.equal(a[5]["mixture"], c[5]["mixture"])
    val = build_training_dataset({**SMALL, "split": "validation"})
    first = val[1]["mixture"]
    val.set_epoch(3)  # the validation set is fixed
    assert torch.equal(first, val[1]["mixture"])


def test_snr_level_and_sources_as_requested():
    # each interferer separately (n_src = 4 holds up to 3), negligible self-noise
    ds = build_training_dataset({**SMALL, "n_src": 4, "self_noise_db_spl": [-60.0, -60.0]})
    for i in range(6):
        item = ds[i]
        meta = item["metadata"]
        src = item["sources"].double().numpy()
        a0, a1 = meta["target_start"], meta["target_end"]
        assert a1 - a0 > 0.1 * FS
        interf = src[1:].sum(0)
        snr = 20 * np.log10(
            renderer.better_ear_speechweighted_snr(src[0][:, a0:a1].T, interf[:, a0:a1].T)
        )
        assert abs(snr - meta["snr_db"]) < 0.05, (snr, meta["snr_db"])
        level = 10 * np.log10(np.mean(src[0][:, a0:a1] ** 2))
        assert abs(level - meta["target_level_dbfs"]) < 0.05
        assert -12.0 <= meta["snr_db"] <= 12.0
        # mixture CH1 = target + interferers (+ the -60 dB SPL self-noise)
        np.testing.assert_allclose(item["mixture"][:2].numpy(), src.sum(0), atol=1e-6)
        assert (src[1 + meta["n_interferers"] :] == 0).all()


def test_interferer_gain_refuses_a_silent_interferer():
    rng = np.random.default_rng(0)
    target = rng.standard_normal((4000, 2))
    noise = rng.standard_normal((4000, 2))
    g = renderer.interferer_gain(target, noise, 6.0, "scene S1")
    assert g == renderer.better_ear_speechweighted_snr(target, noise) * 10 ** (-6.0 / 20)
    with pytest.raises(ValueError, match="scene S1: interferers silent over the target"):
        renderer.interferer_gain(target, np.zeros_like(noise), 6.0, "scene S1")
    with pytest.raises(ValueError, match="silent"):  # digital dust of an FFT of zeros
        renderer.interferer_gain(target, 1e-9 * noise, 6.0, "scene S1")


def test_silent_interferer_is_redrawn(monkeypatch):
    """A noise clip cropped in its digital-silence padding leaves the SNR undefined: the item
    redraws its interferers instead of returning NaN (the other items are unchanged)."""
    ds = build_training_dataset({**SMALL, "n_interferers": [1, 1]})
    reference = ds[3]
    real = type(ds.dry).interferer
    calls = {"n": 0}

    def first_silent(self, rng, kind, n, used, babble):
        name, x = real(self, rng, kind, n, used, babble)
        calls["n"] += 1
        return (f"silent-{name}", np.zeros_like(x)) if calls["n"] == 1 else (name, x)

    monkeypatch.setattr(type(ds.dry), "interferer", first_silent)
    item = ds[3]
    assert calls["n"] == 2
    assert torch.isfinite(item["mixture"]).all() and torch.isfinite(item["sources"]).all()
    assert "silent" not in item["metadata"]["interferers"]
    assert not torch.equal(item["mixture"], reference["mixture"])  # another interferer
    monkeypatch.setattr(type(ds.dry), "interferer",
                        lambda self, rng, kind, n, used, babble: ("zero", np.zeros(n, np.float32)))
    with pytest.raises(ValueError, match="mixer item 3 .*silent over the target"):
        ds[3]
    monkeypatch.undo()
    assert torch.equal(ds[3]["mixture"], reference["mixture"])


def test_anechoic_target_is_rescaled_direct_path():
    rev = build_training_dataset({**SMALL, "acoustic_models": ["kemar_ism"], "rt60_s": [0.6, 0.8]})
    ane = build_training_dataset(
        {
            **SMALL,
            "acoustic_models": ["kemar_ism"],
            "rt60_s": [0.6, 0.8],
            "target": "target_anechoic_CH1",
        }
    )
    x, y = rev[0], ane[0]
    assert torch.equal(x["mixture"], y["mixture"])  # same scene, only the reference differs
    r, a = x["sources"][0].double(), y["sources"][0].double()
    torch.testing.assert_close(
        a.pow(2).mean(-1).sqrt(), r.pow(2).mean(-1).sqrt(), rtol=1e-4, atol=0
    )
    assert not torch.allclose(a, r, atol=1e-4)  # reverberation removed
    # strongly correlated (same talker, same direct sound) but not identical
    corr = float((a * r).sum() / (a.norm() * r.norm()))
    assert 0.3 < corr < 0.999


def test_early_response_window():
    fs_ms = FS / 1000
    response = np.ones((4, 2, 4000))
    direct = np.zeros((2, 300))
    direct[0, 100], direct[1, 140] = 1.0, -2.0  # each ear's direct-path peak
    out = early_response(response, direct, 20 * fs_ms, fade_samples=88)
    for ear, peak in ((0, 100), (1, 140)):
        cut = peak + int(round(20 * fs_ms))
        np.testing.assert_array_equal(out[:, ear, : cut + 1], 1.0)  # kept up to the boundary
        np.testing.assert_array_equal(out[:, ear, cut + 88 :], 0.0)  # gone after the fade
        fade = out[0, ear, cut : cut + 89]
        assert np.all(np.diff(fade) <= 0) and 0.4 < fade[44] < 0.6  # half-cosine, no step
    np.testing.assert_array_equal(response, 1.0)  # input untouched
    with pytest.raises(ValueError, match="direct"):
        early_response(response, direct[0], 100)
    with pytest.raises(ValueError, match="early_samples"):
        early_response(response, direct, -1)


def test_early_target_lies_between_the_reverberant_and_anechoic_ones():
    opts = {**SMALL, "acoustic_models": ["kemar_ism"], "rt60_s": [0.6, 0.8]}
    rev, ane, early = (
        build_training_dataset({**opts, "target": t})[0]
        for t in ("target_CH1", "target_anechoic_CH1", "target_early_CH1")
    )
    assert torch.equal(rev["mixture"], early["mixture"])  # same scene, only the reference differs
    r, a, e = (x["sources"][0].double() for x in (rev, ane, early))
    torch.testing.assert_close(
        e.pow(2).mean(-1).sqrt(), r.pow(2).mean(-1).sqrt(), rtol=1e-4, atol=0
    )

    def corr(x, y):
        return float((x * y).sum() / (x.norm() * y.norm()))

    # the late reverberation is gone (closer to the direct path than the reverberant target)
    # and the early reflections kept (closer to the reverberant target than the direct path)
    assert corr(e, a) > corr(r, a) + 0.02
    assert corr(e, r) > corr(a, r) + 0.02
    with pytest.raises(ValueError, match="early_ms"):
        MixerOptions.from_mapping({"target": "target_early_CH1", "early_ms": -5})


def test_not_in_front_share_and_flag():
    ds = build_training_dataset({**SMALL, "n_items": 200, "segment_s": 0.1})
    # the flag follows the drawn azimuth; only the (cheap) metadata matters here
    from clarity_se.data.render.randomised import draw_target_azimuth, item_rng

    azs = []
    for i in range(2000):
        rng = item_rng(0, 0, i)
        azs.append(draw_target_azimuth(rng, bool(rng.random() >= 0.2), 35.0))
    share = np.mean([abs(a) > 35.0 for a in azs])
    assert 0.17 < share < 0.23
    assert max(abs(a) for a in azs if abs(a) <= 35.0) <= 35.0
    assert min(abs(a) for a in azs if abs(a) > 35.0) >= 45.0
    meta = ds[0]["metadata"]
    assert meta["target_in_front"] == (abs(meta["target_azimuth_deg"]) <= 35.0)


def test_off_front_talkers_reference_keeps_every_talker(brir_root):
    """``off_front_target=talkers``: off the front the reference holds every speech source."""
    side = {**SMALL, "n_items": 3, "not_in_front_prob": 1.0, "n_interferers": [2, 2]}
    quiet = {"self_noise_db_spl": [-100.0, -100.0]}  # microphone self-noise out of the way
    # reverberant definition: the reference is then every source at CH1, i.e. mixture[:2]
    speech_only = {"interferer_types": ["speech"], "interferer_weights": [1.0]}
    rev = build_training_dataset({**side, **quiet, **speech_only, "off_front_target": "talkers"})
    for i in range(len(rev)):
        item = rev[i]
        assert item["metadata"]["reference_talkers"] == 3
        assert not item["metadata"]["target_in_front"]
        torch.testing.assert_close(item["sources"][0], item["mixture"][:2], rtol=0, atol=1e-5)
    # anechoic definition, each model: target reference plus each talker's direct path
    for model in ("sphere_ism", "rostock_brir"):
        opts = {**side, "data_root": str(brir_root), "acoustic_models": [model],
                "target": "target_anechoic_CH1", "interferer_types": ["speech", "noise"],
                "interferer_weights": [0.5, 0.5]}  # fmt: skip
        plain = build_training_dataset({**opts, "n_src": 3})  # one row per interferer
        talk = build_training_dataset({**opts, "off_front_target": "talkers", "n_src": 2})
        for i in range(len(plain)):
            a, b = plain[i], talk[i]
            assert torch.equal(a["mixture"], b["mixture"])  # same scene
            n_speech = a["metadata"]["interferers"].count("speech:")
            assert b["metadata"]["reference_talkers"] == 1 + n_speech
            added = (b["sources"][0] - a["sources"][0]).double()
            if n_speech == 0:
                assert float(added.abs().max()) == 0.0
                continue
            # the added part is the talkers' direct sound: strongly correlated with the speech
            # interferers at CH1 (reverberant), not with the noise
            kinds = a["metadata"]["interferers"].split(",")
            speech = sum(a["sources"][1 + k].double() for k, n in enumerate(kinds)
                         if n.startswith("speech:"))  # fmt: skip
            corr = float((added * speech).sum() / (added.norm() * speech.norm()))
            assert corr > 0.2, (model, i, corr)
            assert float(added.norm()) < 1.5 * float(speech.norm())
            torch.testing.assert_close(b["sources"][1], b["mixture"][:2] - b["sources"][0])
    # a target in front keeps the target-only reference; babble is noise
    front = {**SMALL, "n_items": 2, "not_in_front_prob": 0.0}
    for opts in (front, {**side, "interferer_types": ["babble"], "interferer_weights": [1.0]}):
        a = build_training_dataset(opts)[0]
        b = build_training_dataset({**opts, "off_front_target": "talkers"})[0]
        assert torch.equal(a["sources"], b["sources"])
        assert b["metadata"]["reference_talkers"] == 1
    with pytest.raises(ValueError, match="off_front_target"):
        MixerOptions.from_mapping({"off_front_target": "all"})
    with pytest.raises(ValueError, match="n_src <= 2"):
        MixerOptions.from_mapping({"off_front_target": "talkers", "n_src": 3})


def test_bad_options_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="unknown keys"):
        MixerOptions.from_mapping({"snr": [0, 1]})
    with pytest.raises(ValueError, match="snr_db"):
        MixerOptions.from_mapping({"snr_db": [5, -5]})
    with pytest.raises(ValueError, match="acoustic_models"):
        MixerOptions.from_mapping({"acoustic_models": ["hoa"]})
    with pytest.raises(ValueError, match="rostock_kemar_brir"):
        build_training_dataset({**SMALL, "acoustic_models": ["rostock_brir"]})
    with pytest.raises(ValueError, match="speech/"):
        build_training_dataset({**SMALL, "data_root": str(tmp_path)})


def test_leave_one_model_out_and_every_model_in_a_batch(brir_root):
    ds = build_training_dataset({**SMALL, "data_root": str(brir_root), "n_items": 24})
    assert set(ds.models) == set(acoustics.ACOUSTIC_MODELS)
    metas = [ds[i]["metadata"] for i in range(24)]
    assert {m["acoustic_model"] for m in metas} == set(acoustics.ACOUSTIC_MODELS)
    for m in metas:  # measured BRIRs: a measured direction, on the drawn side
        if m["acoustic_model"] == "rostock_brir":
            assert m["target_azimuth_deg"] in (-40.0, 0.0, 40.0)
            assert m["target_in_front"] == (m["target_azimuth_deg"] == 0.0)
    lomo = build_training_dataset(
        {**SMALL, "data_root": str(brir_root), "acoustic_models": ["kemar_ism", "freefield_ism"]}
    )
    assert {lomo[i]["metadata"]["acoustic_model"] for i in range(8)} <= {
        "kemar_ism",
        "freefield_ism",
    }


# --------------------------------------------------------------------------- acoustics


def test_kemar_early_response_equals_the_demo_renderer():
    dims, lis, src = np.array([6.0, 4.5, 2.8]), np.array([3.0, 2.0, 1.5]), np.array([4.5, 2.6, 1.6])
    im = rooms.image_sources(dims, 0.4, src, lis, view_vector=lis - src)
    ref = rooms.early_response(im, lis, 15.0)
    ears = acoustics.KemarEars(rooms.load_hrir_set())
    np.testing.assert_allclose(acoustics.early_response(im, lis, 15.0, ears), ref, atol=1e-12)


@pytest.mark.parametrize("name", acoustics.ACOUSTIC_MODELS)
def test_each_model_gives_sensible_inter_mic_delays(name, brir_root):
    model = acoustics.build_acoustic_model(name, brir_root)
    geometry = acoustics.BteGeometry.default()
    # frontal target: left and right within a few samples; front mic before rear mic
    front = model.draw(
        np.random.default_rng(0), target_azimuth_deg=0.0, n_interferers=1, geometry=geometry
    )
    d = front.target_direct[0]
    assert abs(_lag(d[0], d[1])) <= 3
    early = front.target.early[0][:, :, :4000]
    for ear in range(2):
        lag_fr = _lag(early[1, ear], early[3, ear])  # front vs rear BTE mic
        assert -3 <= lag_fr <= 0
    # a target at +40 degrees (left): the left ear leads by 8-25 samples (ITD 0.2-0.6 ms)
    side = model.draw(
        np.random.default_rng(1), target_azimuth_deg=40.0, n_interferers=2, geometry=geometry
    )
    d = side.target_direct[0]
    lag = _lag(d[0], d[1]) if not side.info.get("mirrored") else -_lag(d[1], d[0])
    assert -25 <= lag <= -8, lag
    assert len(side.interferers) == 2
    assert np.all(np.isfinite(side.target.combined(0)))


def test_bte_geometry_ranges():
    rng = np.random.default_rng(3)
    ranges = acoustics.GeometryRanges()
    for _ in range(50):
        g = acoustics.draw_bte_geometry(rng, ranges)
        assert np.all(g.offsets_m[:, 0] == 0)
        spacing = 1000 * np.linalg.norm(g.offsets_m[:, 1] - g.offsets_m[:, 3], axis=-1)
        slack = 2 * np.sqrt(3) * ranges.jitter_mm
        assert np.all(spacing > ranges.spacing_mm[0] - slack)
        assert np.all(spacing < ranges.spacing_mm[1] + slack)
        assert not np.allclose(g.offsets_m[0], g.offsets_m[1])  # the two ears differ


def test_microphone_gain_and_phase_mismatch_ranges():
    ranges = acoustics.MicRanges(colour_db=0.0)
    gains, phase_250 = [], []
    f = np.fft.rfftfreq(4096, 1 / FS)
    k1, k250 = int(np.argmin(np.abs(f - 1000))), int(np.argmin(np.abs(f - 250)))
    for seed in range(40):
        resp, params = acoustics.microphone_response(np.random.default_rng(seed), 4096, ranges)
        assert np.all(np.abs(params["gain_db"]) <= 2.0)
        # the response at 1 kHz carries the drawn gain (the high-pass corner is <= 100 Hz)
        np.testing.assert_allclose(
            20 * np.log10(np.abs(resp[..., k1])), params["gain_db"], atol=0.05
        )
        gains.append(params["gain_db"])
        phase_250.append(np.angle(resp[..., k250] / resp[1, 0, k250], deg=True))
    gains, phase_250 = np.array(gains), np.array(phase_250)
    assert gains.max() > 1.8 and gains.min() < -1.8  # the range is used
    assert np.abs(phase_250).max() < 25.0 and np.abs(phase_250).max() > 3.0
    # the mixer draws its gains within +-mic_gain_db
    ds = build_training_dataset({**SMALL, "mic_gain_db": 1.0, "n_items": 4})
    for i in range(4):
        assert ds[i]["metadata"]["mic_gain_db"].abs().max() <= 1.0


def test_diffuse_tail_has_diffuse_field_coherence():
    geometry = acoustics.BteGeometry.default()
    tail, _ = acoustics.diffuse_tail(
        np.random.default_rng(0),
        dimensions=[8.0, 6.0, 3.0],
        rt60_s=3.0,
        t_mix_s=0.02,
        ears=acoustics.FreeFieldEars(),
        geometry=geometry,
    )
    x = tail[..., :FS]  # first second: flat enough envelope
    f, c_mid = coherence(x[1, 0], x[3, 0], fs=FS, nperseg=512)  # front-rear, 15.2 mm
    _, c_ears = coherence(x[1, 0], x[1, 1], fs=FS, nperseg=512)  # left-right, 15 cm
    low = (f > 200) & (f < 1000)
    high = (f > 3000) & (f < 8000)
    assert c_mid[low].mean() > 0.9  # sinc(kd) ~ 1 for a 15 mm spacing
    assert c_ears[high].mean() < 0.2  # incoherent across the head at high frequencies
    assert c_ears[(f > 50) & (f < 300)].mean() > 0.5  # but coherent at low frequencies


def test_bte_from_brir_reproduces_the_eardrum_channel(brir_root):
    b = acoustics.load_rostock_brirs(str(brir_root / "rir" / "rostock_kemar_brir"))[0]
    g = acoustics.BteGeometry.default()
    out = acoustics.bte_from_brir(b.ir, b.onset + 66, b.azimuth_deg, g, np.random.default_rng(0))
    assert out.shape == (4, 2, b.ir.shape[-1])
    np.testing.assert_allclose(out[0], b.ir, atol=1e-6 * np.abs(b.ir).max())  # ED: no delay
    # BTE channels differ from the eardrum only by sub-sample delays: same energy within 1 dB
    for c in (1, 2, 3):
        ratio = 10 * np.log10(np.sum(out[c] ** 2) / np.sum(b.ir**2))
        assert abs(ratio) < 1.0


# --------------------------------------------------------------------------- held-out sets


def test_heldout_split_has_cec2_layout_and_scene_types(tmp_path):
    from clarity_se.cli import main as cli_main
    from clarity_se.data.scene import load_scenes

    out = tmp_path / "held"
    rc = cli_main(
        ["demo-data", str(out), "--acoustic-model", "freefield_ism", "--scenes", "2",
         "--workers", "1", "--not-in-front-share", "0.5"]
    )  # fmt: skip
    assert rc == 0
    meta = out / "clarity_data" / "metadata"
    for name in (
        "scenes.dev.json",
        "rooms.dev.json",
        "scenes_listeners.dev.json",
        "listeners.json",
    ):
        assert (meta / name).is_file()
    scenes = load_scenes(meta / "scenes.dev.json")
    assert [s.scene for s in scenes] == ["S06001", "S06002"]
    val = set(corpus.VALIDATION_SPEAKERS)
    for s in scenes:
        assert s.extra["acoustic_model"] == "freefield_ism"
        assert s.extra["target_in_front"] == (abs(s.extra["target_azimuth_deg"]) <= 35.0)
        assert corpus.speaker_of_path(s.target.name) in val
        files = out / "clarity_data" / "dev" / "scenes"
        for kind in ("mix", "target", "interferer"):
            for ch in range(4):
                assert (files / f"{s.scene}_{kind}_CH{ch}.wav").is_file()
        assert (files / f"{s.scene}_target_anechoic_CH1.wav").is_file()
        import soundfile as sf

        mix, _ = sf.read(str(files / f"{s.scene}_mix_CH1.wav"), dtype="int16")
        tgt, _ = sf.read(str(files / f"{s.scene}_target_CH1.wav"), dtype="int16")
        itf, _ = sf.read(str(files / f"{s.scene}_interferer_CH1.wav"), dtype="int16")
        assert mix.shape == (s.duration, 2)
        assert np.abs(mix.astype(int) - tgt - itf).max() <= 2  # mix = target + interferer
    rooms_json = json.loads((meta / "rooms.dev.json").read_text())
    assert all(
        r["acoustic_model"] == "freefield_ism" and 0.1 <= r["rt60_s"] <= 1.0 for r in rooms_json
    )


def test_loader_worker_renders_the_main_process_items():
    """``data.num_workers=1`` trains on the batches of ``num_workers=0``: an item depends only on
    (seed, epoch, index), and the epoch set in the training process before a pass reaches the
    worker that renders it (``benchmarks/bench_training.py`` times both)."""
    from torch.utils.data import DataLoader

    ds = build_training_dataset(SMALL)
    order = [3, 0, 5, 1]

    def batches(workers: int) -> list[torch.Tensor]:
        loader = DataLoader(ds, batch_size=2, sampler=order, num_workers=workers)
        return [torch.cat([b["mixture"], b["sources"].flatten(1, 2)], 1) for b in loader]

    ds.set_epoch(2)
    in_process, in_worker = batches(0), batches(1)
    assert len(in_worker) == 2
    for a, b in zip(in_process, in_worker, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=PROCESS_ITEM_ABS)
    ds.set_epoch(3)
    assert (batches(1)[0] - in_process[0]).abs().max() > 100 * PROCESS_ITEM_ABS
