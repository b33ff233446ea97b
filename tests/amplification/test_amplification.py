"""Hearing-aid stage: NAL-R FIR, compressor, the whole aid and ``clarity-se amplify``.

Golden values come from pyclarity 0.9.0 via ``tests/golden/make_amplify_golden.py`` (stored in
``tests/fixtures/amplify_golden.npz``); pyclarity is not needed here.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import (
    FIXTURES,  # noqa: E402
    GOLDEN_COMPRESSOR_ABS,
    GOLDEN_FIR_ABS,
    GOLDEN_PAIR_ABS,
)

from clarity_se.amplification.compressor import Compressor, plot_level_curve, static_curve
from clarity_se.amplification.hearing_aid import amplify
from clarity_se.amplification.nalr import NALR_FREQS_HZ, apply_fir, design_nalr_fir, nalr_gains_db
from clarity_se.config import load_config
from clarity_se.data.audiogram import Audiogram, Listener

pytestmark = pytest.mark.golden

FIXTURE = FIXTURES / "amplify_golden.npz"
FS = 44100
#: Agreement with pyclarity (absolute; set and justified in tests/conftest.py).
TOL_FIR = GOLDEN_FIR_ABS
TOL_COMPRESSOR = GOLDEN_COMPRESSOR_ABS
TOL_PAIR = GOLDEN_PAIR_ABS


@pytest.fixture(scope="module")
def golden():
    with np.load(FIXTURE) as data:
        return {k: data[k] for k in data.files}


def _audiograms(golden) -> list[tuple[str, Audiogram]]:
    out = []
    for name, cfs, levels in zip(
        golden["aud_names"], golden["aud_cfs"], golden["aud_levels"], strict=True
    ):
        keep = ~np.isnan(cfs)
        out.append((str(name), Audiogram(cfs[keep], levels[keep], name=str(name))))
    return out


def _pair_signal(golden) -> np.ndarray:
    base = golden["speech_i16"].astype(np.float64) / 32768.0
    base = base * (0.1 / np.sqrt(np.mean(base**2)))
    ears = [golden["pair_gains"][e] * np.roll(base, golden["pair_delays"][e]) for e in range(2)]
    return np.stack(ears, axis=1)


def _random_listener(rng, name="L0001") -> Listener:
    cfs = [250, 500, 1000, 2000, 3000, 4000, 6000, 8000]
    return Listener(
        name,
        Audiogram(cfs, np.sort(rng.uniform(0, 90, 8))),
        Audiogram(cfs, np.sort(rng.uniform(0, 90, 8))),
    )


# ---------------------------------------------------------------- NAL-R


def test_fir_matches_pyclarity(golden):
    auds = _audiograms(golden)
    assert len(auds) >= 10
    fir = design_nalr_fir([[a] for _, a in auds]).numpy()[:, 0]
    assert fir.shape == golden["fir"].shape == (len(auds), 221)
    err = np.abs(fir - golden["fir"]).max(axis=1)
    bad = [name for (name, _), e in zip(auds, err, strict=True) if e > TOL_FIR]
    assert not bad, f"FIR differs from pyclarity for {bad}: {err}"


def test_no_loss_gives_pure_delay(golden):
    flat = Audiogram([250, 1000, 4000, 8000], [0, 0, 0, 0])
    negative = Audiogram([250, 1000, 4000, 8000], [-10, -5, -10, -5])
    fir = design_nalr_fir([[flat, negative]]).numpy()[0]
    delay = np.zeros(221)
    delay[110] = 1.0
    np.testing.assert_array_equal(fir, np.stack([delay, delay]))
    assert nalr_gains_db(flat) is None
    # a loss above 0 dB HL only at an interpolated frequency designs a (near-unity) filter instead
    tiny = Audiogram([250, 500, 1000, 2000, 4000, 8000], [0, 0, 0, 0, 0, 5])
    assert nalr_gains_db(tiny) is not None
    assert not np.array_equal(design_nalr_fir(tiny).numpy()[0, 0], delay)


@pytest.mark.parametrize(
    "name", ["flat_80", "steep_hf", "mild", "bisgaard_N3", "cookie_bite", "nonstandard_cfs"]
)
def test_fir_response_follows_prescription(golden, name):
    """|H| at the audiometric frequencies vs the NAL-R prescription.

    Within 0.5 dB at 2, 4 and 6 kHz. At 250-1000 Hz the reference's 221-tap Hamming-windowed
    design cannot resolve the steep low-frequency gain steps (main lobe ~800 Hz wide) and misses
    the prescription by up to ~5.5 dB; that is pyclarity's behaviour, which we reproduce, so
    there the bound is 6 dB.
    """
    audiogram = dict(_audiograms(golden))[name]
    taps = design_nalr_fir(audiogram).numpy()[0, 0]
    n = np.arange(taps.size)
    response_db = 20 * np.log10(
        np.abs(np.exp(-2j * np.pi * np.outer(NALR_FREQS_HZ, n) / FS) @ taps)
    )
    err = response_db - nalr_gains_db(audiogram)
    assert np.all(np.abs(err[3:]) < 0.5), err
    assert np.all(np.abs(err[:3]) < 6.0), err


def test_fir_is_linear_phase_and_batch_equals_single():
    rng = np.random.default_rng(0)
    listeners = [_random_listener(rng, f"L{i:04d}") for i in range(5)]
    batch = design_nalr_fir(listeners).numpy()
    assert batch.shape == (5, 2, 221)
    np.testing.assert_allclose(batch, batch[..., ::-1], atol=1e-12, rtol=0)
    for i, lis in enumerate(listeners):
        one = design_nalr_fir([lis]).numpy()[0]
        np.testing.assert_allclose(batch[i], one, atol=1e-13, rtol=0)
        left = design_nalr_fir(lis.audiogram_left).numpy()[0, 0]
        np.testing.assert_allclose(batch[i, 0], left, atol=1e-13, rtol=0)


def test_fir_odd_order_and_bad_input():
    aud = Audiogram([250, 8000], [40, 60])
    assert design_nalr_fir(aud, nfir=101).shape == (1, 1, 102)
    with pytest.raises(ValueError, match="nfir"):
        design_nalr_fir(aud, nfir=0)
    with pytest.raises(ValueError, match="sample_rate"):
        design_nalr_fir(aud, sample_rate=8000)
    with pytest.raises(ValueError, match="audiograms"):
        design_nalr_fir([])
    with pytest.raises(ValueError, match=r"audiograms\[0\]"):
        design_nalr_fir([3.0])


@pytest.mark.parametrize(
    ("method", "n_time"), [("fft", 1001), ("fft", 9000), ("direct", 1001), ("auto", 9001)]
)
def test_apply_fir_equals_np_convolve(method, n_time):
    rng = np.random.default_rng(1)
    sig = rng.standard_normal((3, 2, n_time))
    fir = rng.standard_normal((3, 2, 221))
    out = apply_fir(torch.from_numpy(fir), torch.from_numpy(sig), method=method).numpy()
    assert out.shape == (3, 2, n_time + 220)
    for b in range(3):
        for e in range(2):
            np.testing.assert_allclose(out[b, e], np.convolve(sig[b, e], fir[b, e]), atol=1e-11)
    # broadcasting one filter over a batch of signals
    one = apply_fir(torch.from_numpy(fir[0, 0]), torch.from_numpy(sig), method=method).numpy()
    np.testing.assert_allclose(one[2, 1], np.convolve(sig[2, 1], fir[0, 0]), atol=1e-11)
    with pytest.raises(ValueError, match="broadcast"):
        apply_fir(torch.zeros(3, 5), torch.zeros(2, 10), method=method)


# ---------------------------------------------------------------- compressor


def test_compressor_matches_pyclarity(golden):
    base = golden["speech_i16"].astype(np.float64) / 32768.0
    stride = int(golden["comp_stride"])
    assert len(golden["comp_scales"]) >= 4
    for scale, params, expected in zip(
        golden["comp_scales"], golden["comp_params"], golden["comp_out"], strict=True
    ):
        comp = Compressor(FS, *params)
        out = comp.process(base * scale)
        np.testing.assert_allclose(out[::stride], expected, atol=TOL_COMPRESSOR, rtol=0)


def test_compressor_channels_independent_and_resync():
    rng = np.random.default_rng(2)
    # longer than the exact re-summation block, with loud and silent stretches
    x = rng.standard_normal((3, 70000)) * np.repeat(rng.uniform(0, 1.5, (3, 10)), 7000, axis=1)
    comp = Compressor()
    both, gain = comp.process(x, return_gain=True)
    for c in range(3):
        np.testing.assert_array_equal(both[c], comp.process(x[c]))
    # reference recursion written out in Python (slow, small)
    xx = x[1]
    padded = np.concatenate((np.zeros(comp.win_len - 1), xx))
    rms = np.sqrt(np.convolve(padded**2, np.ones(comp.win_len), "valid") / comp.win_len + 1e-8)
    g, expect = 1.0, np.empty_like(xx)
    for i, r in enumerate(rms):
        if r > comp.threshold:
            t = r * comp.attenuation + (1 - comp.attenuation) * comp.threshold
            g = g * (1 - comp.attack_rate) + t * comp.attack_rate
        else:
            g = comp.release_rate + g * (1 - comp.release_rate)
        expect[i] = g
    np.testing.assert_allclose(gain[1], expect, atol=1e-12, rtol=0)


def test_compressor_quirk_settles_to_level_not_ratio():
    comp = Compressor(rms_buffer_size=0.01, attack=5.0)
    # a constant DC input of level r has RMS r: above threshold the gain settles to the level
    for r in (0.2, 0.5, 0.9):
        out, gain = comp.process(np.full(FS, r), return_gain=True)
        expected_gain = 1.0 if r <= comp.threshold else 0.1 * r + 0.9 * 0.35
        assert gain[-1] == pytest.approx(expected_gain, rel=1e-6)
        assert out[-1] == pytest.approx(static_curve(comp, np.array([r]))[0], rel=1e-6)


def test_compressor_bad_config():
    with pytest.raises(ValueError, match="attack"):
        Compressor(attack=0)
    with pytest.raises(ValueError, match="rms_buffer_size"):
        Compressor(rms_buffer_size=1e-6)
    with pytest.raises(ValueError, match="unknown keys"):
        Compressor.from_config({"ratio": 3}, FS)
    with pytest.raises(ValueError, match="NaN"):
        Compressor().process(np.array([0.0, np.nan]))


def test_plot_level_curve():
    import matplotlib

    matplotlib.use("Agg")
    ax = plot_level_curve(Compressor())
    x, y = ax.lines[1].get_data()
    assert len(x) == 801 and np.all(np.isfinite(y))


# ---------------------------------------------------------------- the whole aid


def _config(tmp_path: Path, **extra):
    overrides = [f"path.root={tmp_path}", f"path.exp_folder={tmp_path / 'exp'}"]
    overrides += [f"{k}={v}" for k, v in extra.items()]
    return load_config(None, overrides)


@pytest.mark.parametrize("kind", ["float", "int16"])
def test_amplify_pair_matches_official(golden, tmp_path, kind, caplog):
    from clarity_se.data.experiment import Experiment
    from clarity_se.stages.amplify import amplify_pair

    listener = Listener.from_dict(json.loads(str(golden["pair_listener"])))
    enhanced = _pair_signal(golden)
    cfg = _config(tmp_path)
    exp = Experiment(cfg.path.exp_folder)
    path = exp.enhanced_path("S9001", listener.name)
    path.parent.mkdir(parents=True)
    if kind == "float":
        sf.write(path, enhanced.astype(np.float32), FS, subtype="FLOAT")
    else:
        sf.write(path, np.round(enhanced * 32768).astype(np.int16), FS, subtype="PCM_16")
    with caplog.at_level(logging.WARNING):
        amplified, record = amplify_pair(cfg, exp, "S9001", listener)
    assert ("16-bit PCM" in caplog.text) == (kind == "int16")
    stride = int(golden["pair_stride"])
    assert amplified.shape == (int(golden["pair_length"]), 2) == (enhanced.shape[0] + 220, 2)
    np.testing.assert_allclose(amplified[::stride], golden[f"pair_{kind}"], atol=TOL_PAIR, rtol=0)
    written, sr = sf.read(Path(cfg.path.exp_folder) / record["path"], dtype="float32")
    assert sr == FS and written.shape == amplified.shape
    np.testing.assert_allclose(written[::stride], golden[f"pair_{kind}"], atol=TOL_PAIR, rtol=0)
    clipped = golden[f"pair_{kind}_clipped"]
    assert (record["clipped_left"], record["clipped_right"]) == (int(clipped[0]), int(clipped[1]))
    assert record["id"] == "S9001_L9001" and record["schema"] == "clarity_se.amplified/1"
    assert record["num_samples"] == amplified.shape[0]
    assert record["duration_s"] == pytest.approx(amplified.shape[0] / FS)


def test_amplify_batch_equals_single_and_ears_independent():
    rng = np.random.default_rng(3)
    listeners = [_random_listener(rng, f"L{i:04d}") for i in range(3)]
    sig = rng.standard_normal((3, 4410, 2)) * 0.3
    batch, clipped = amplify(sig, listeners)
    assert batch.shape == (3, 4410 + 220, 2) and clipped.shape == (3, 2)
    for i, lis in enumerate(listeners):
        one, n_one = amplify(torch.from_numpy(sig[i]), lis)
        np.testing.assert_allclose(batch[i], one, atol=1e-12, rtol=0)
        np.testing.assert_array_equal(clipped[i], n_one)
        # left ear alone: a listener whose right ear is the left ear
        twin = Listener("T", lis.audiogram_left, lis.audiogram_left)
        left, _ = amplify(np.stack([sig[i, :, 0], sig[i, :, 0]], axis=1), twin)
        np.testing.assert_allclose(left[:, 0], one[:, 0], atol=1e-12, rtol=0)
    raw, _ = amplify(sig[0], listeners[0], soft_clip=False)
    np.testing.assert_allclose(np.tanh(raw), batch[0], atol=1e-12, rtol=0)
    assert np.count_nonzero(np.abs(raw) > 1, axis=0).tolist() == clipped[0].tolist()


def test_amplify_bad_input():
    lis = _random_listener(np.random.default_rng(4))
    with pytest.raises(ValueError, match=r"\[time, 2\]"):
        amplify(np.zeros((2, 100)), lis)
    with pytest.raises(ValueError, match="listeners"):
        amplify(np.zeros((2, 100, 2)), [lis])
    with pytest.raises(ValueError, match="unknown keys"):
        amplify(np.zeros((100, 2)), lis, nalr_cfg={"order": 3})


# ---------------------------------------------------------------- clarity-se amplify


def _make_cec2_folder(root: Path) -> tuple[Path, list[tuple[str, str]]]:
    rng = np.random.default_rng(5)
    meta = root / "clarity_data" / "metadata"
    meta.mkdir(parents=True)
    listeners = {f"L000{i}": _random_listener(rng, f"L000{i}").to_dict() for i in (1, 2, 3)}
    (meta / "listeners.json").write_text(json.dumps(listeners))
    scenes = {"S0001": ["L0001", "L0002"], "S0002": ["L0003", "L0001"], "S0003": ["L0002", "L0003"]}
    (meta / "scenes_listeners.dev.json").write_text(json.dumps(scenes))
    exp = root / "exp"
    (exp / "enhanced_signals").mkdir(parents=True)
    pairs = [(s, lis) for s, ls in scenes.items() for lis in ls]
    for scene, lis in pairs:
        sig = (rng.standard_normal((int(0.2 * FS), 2)) * 0.2).astype(np.float32)
        sf.write(exp / "enhanced_signals" / f"{scene}_{lis}_enhanced.wav", sig, FS, subtype="FLOAT")
    return exp, pairs


def test_cli_amplify_resume_and_errors(tmp_path):
    from clarity_se.cli import main

    exp, pairs = _make_cec2_folder(tmp_path)
    bad = exp / "enhanced_signals" / "S0002_L0001_enhanced.wav"
    good_bytes = bad.read_bytes()
    bad.write_bytes(good_bytes[:60])  # truncated: header only
    (exp / "enhanced_signals" / "S0003_L0003_enhanced.wav").unlink()
    args = ["amplify", f"path.root={tmp_path}", f"path.exp_folder={exp}"]

    assert main(args) == 1
    records = [json.loads(x) for x in (exp / "amplify_manifest.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == [
        "S0001_L0001",
        "S0001_L0002",
        "S0002_L0003",
        "S0003_L0002",
    ]
    for r in records:
        data, sr = sf.read(exp / r["path"], dtype="float32")
        info = sf.info(exp / r["path"])
        assert info.subtype == "FLOAT" and sr == FS and data.shape == (int(0.2 * FS) + 220, 2)
        assert r["num_samples"] == data.shape[0] and r["sample_rate"] == FS
    with open(exp / "errors.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["stage"], r["scene"], r["listener"]) for r in rows] == [
        ("amplify", "S0002", "L0001"),
        ("amplify", "S0003", "L0003"),
    ]
    assert all(r["error"] for r in rows)

    # resume: finished pairs are not redone; fixed inputs are done; errors.csv is cleared of them
    first = exp / records[0]["path"]
    mtime = first.stat().st_mtime_ns
    bad.write_bytes(good_bytes)
    sf.write(
        exp / "enhanced_signals" / "S0003_L0003_enhanced.wav",
        np.zeros((FS // 5, 2), np.float32),
        FS,
        subtype="FLOAT",
    )
    assert main(args) == 0
    assert first.stat().st_mtime_ns == mtime
    ids = [json.loads(x)["id"] for x in (exp / "amplify_manifest.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(f"{s}_{lis}" for s, lis in pairs) and len(ids) == len(pairs)
    with open(exp / "errors.csv", newline="") as handle:
        assert list(csv.DictReader(handle)) == []


OFFICIAL_CONFIG = """\
path:
  root: ./ # root folder of the project
  metadata_dir: ${path.root}/clarity_data/metadata
  scenes_listeners_file: ${path.metadata_dir}/scenes_listeners.dev.json
  listeners_file: ${path.metadata_dir}/listeners.json
  scenes_folder: ${path.root}/clarity_data/dev/scenes
  exp_folder: ./exp # folder to store enhanced signals and final results
nalr:
  nfir: 220
  sample_rate: 44100
compressor:
  threshold: 0.35
  attenuation: 0.1
  attack: 50
  release: 1000
  rms_buffer_size: 0.064
soft_clip: True
evaluate:
  set_random_seed: True
  small_test: False
hydra:
  run:
    dir: ${path.exp_folder}
  job:
    chdir: True
"""


def test_cli_amplify_small_test_and_shard(tmp_path):
    """With the official recipe config.yaml (pyclarity 0.9.0 verbatim) and hydra-style overrides."""
    from clarity_se.cli import main

    exp, pairs = _make_cec2_folder(tmp_path)
    (tmp_path / "config.yaml").write_text(OFFICIAL_CONFIG)
    base = ["amplify", "-c", str(tmp_path / "config.yaml"), f"path.root={tmp_path}"]
    base += [f"path.exp_folder={exp}"]
    assert main(base + ["evaluate.small_test=true"]) == 0
    ids = [json.loads(x)["id"] for x in (exp / "amplify_manifest.jsonl").read_text().splitlines()]
    assert ids == ["S0001_L0001"]  # every 15th pair: only the first of six
    assert main(base + ["evaluate.shard=2/2"]) == 0
    shard = (exp / "amplify_manifest.shard-2-of-2.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in shard] == [f"{s}_{lis}" for s, lis in pairs[1::2]]
    assert main(base + ["compressor.ratio=3"]) == 2
