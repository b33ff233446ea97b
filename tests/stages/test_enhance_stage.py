"""clarity-se enhance: official passthrough, Conv-TasNet checkpoint, small_test, resume, errors."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from enhancer_helpers import make_scenes, make_scenes_listeners
from scipy.io import wavfile

from clarity_se.cli import main as cli_main
from clarity_se.models import build_model
from clarity_se.models.checkpoint import save_checkpoint

N_TIME = 4411


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    scenes = make_scenes(root, "dev", 3, N_TIME, seed=5)
    make_scenes_listeners(root, "dev", scenes, ["L0001", "L0002"])
    return root, scenes


def _run(root, exp, *extra):
    return cli_main(["enhance", f"path.root={root}", f"path.exp_folder={exp}", *extra])


@pytest.mark.filterwarnings("ignore::scipy.io.wavfile.WavFileWarning")
def test_passthrough_is_the_official_baseline(dataset, tmp_path):
    root, scenes = dataset
    exp = tmp_path / "exp"
    assert _run(root, exp) == 0
    for scene in scenes:
        # the official enhance.py: wavfile.read, / 32768.0, astype(float32), wavfile.write
        _, raw = wavfile.read(root / "clarity_data/dev/scenes" / f"{scene}_mix_CH1.wav")
        expected = (raw / 32768.0).astype(np.float32)
        for listener in ("L0001", "L0002"):
            path = exp / "enhanced_signals" / f"{scene}_{listener}_enhanced.wav"
            info = sf.info(str(path))
            assert (info.subtype, info.channels, info.samplerate) == ("FLOAT", 2, 44100)
            _, got = wavfile.read(path)
            assert got.dtype == np.float32 and np.array_equal(got, expected)
    records = [json.loads(x) for x in open(exp / "enhance_manifest.jsonl")]
    assert len(records) == 6 and records[0]["schema"] == "clarity_se.enhanced/1"


def test_small_test_resume_and_errors(dataset, tmp_path):
    root, scenes = dataset
    exp = tmp_path / "exp"
    assert _run(root, exp, "evaluate.small_test=true") == 0
    written = sorted(p.name for p in (exp / "enhanced_signals").iterdir())
    assert written == [f"{scenes[0]}_L0001_enhanced.wav"]  # pairs[::15] of 6 pairs
    # resume: existing outputs are not rewritten
    first = exp / "enhanced_signals" / written[0]
    stamp = first.stat().st_mtime_ns
    (root / "clarity_data/dev/scenes" / f"{scenes[1]}_mix_CH1.wav").unlink()
    assert _run(root, exp) == 1
    assert first.stat().st_mtime_ns == stamp
    rows = list(csv.DictReader(open(exp / "errors.csv")))
    assert {(r["scene"], r["listener"]) for r in rows} == {
        (scenes[1], "L0001"),
        (scenes[1], "L0002"),
    }
    assert all(r["stage"] == "enhance" and "mix_CH1" in r["error"] for r in rows)
    assert len(list((exp / "enhanced_signals").iterdir())) == 4


def test_convtasnet_checkpoint_whole_and_chunked(dataset, tmp_path):
    root, scenes = dataset
    torch.manual_seed(0)
    model = build_model(
        "convtasnet",
        n_src=2,
        n_filters=16,
        kernel_size=16,
        bn_chan=8,
        hid_chan=16,
        n_blocks=2,
        n_repeats=1,
    )
    ckpt = save_checkpoint(tmp_path / "tiny.pt", model)
    outs = {}
    for chunk in ("0", "0.0123"):
        exp = tmp_path / f"exp{chunk}"
        assert (
            _run(
                root,
                exp,
                "enhancer.name=convtasnet",
                f"enhancer.checkpoint={ckpt}",
                f"enhancer.chunk_s={chunk}",
                "enhancer.guard=true",
            )
            == 0
        )
        path = exp / "enhanced_signals" / f"{scenes[2]}_L0002_enhanced.wav"
        outs[chunk], sr = sf.read(str(path), dtype="float32")
        assert sr == 44100 and outs[chunk].shape == (N_TIME, 2)
    np.testing.assert_allclose(outs["0"], outs["0.0123"], atol=1e-5)
    assert np.abs(outs["0"]).max() > 0
    # the journal says how often the do-no-harm rule fell back, per pass, as a share of blocks
    records = [json.loads(line) for line in (exp / "enhance_manifest.jsonl").open()]
    assert records
    for record in records:
        assert set(record["guard_fired"]) == {"direct", "mirrored"}
        assert all(0.0 <= v <= 1.0 for v in record["guard_fired"].values())
    passthrough = tmp_path / "pt"
    assert _run(root, passthrough) == 0
    assert all("guard_fired" not in json.loads(line)
               for line in (passthrough / "enhance_manifest.jsonl").open())  # fmt: skip
    # a missing checkpoint is a config error
    assert (
        _run(
            root,
            tmp_path / "x",
            "enhancer.name=convtasnet",
            f"enhancer.checkpoint={tmp_path / 'none.pt'}",
        )
        == 2
    )
    assert _run(root, tmp_path / "x", "enhancer.name=bogus") == 2
    # residual_mix: (1 - a) * estimate + a * front-mic mixture, a in [0, 1]
    mixed = {}
    for a in ("0.0", "0.25"):
        exp = tmp_path / f"mix{a}"
        assert _run(root, exp, "enhancer.name=convtasnet", f"enhancer.checkpoint={ckpt}",
                    f"enhancer.residual_mix={a}",
                    "enhancer.residual_source=mixture") == 0  # fmt: skip
        mixed[a], _ = sf.read(str(exp / "enhanced_signals" / f"{scenes[2]}_L0002_enhanced.wav"),
                              dtype="float32")  # fmt: skip
    front, _ = sf.read(str(root / "clarity_data" / "dev" / "scenes" / f"{scenes[2]}_mix_CH1.wav"),
                       dtype="float32")  # fmt: skip
    np.testing.assert_allclose(mixed["0.25"], 0.75 * mixed["0.0"] + 0.25 * front, atol=1e-6)
    assert not np.allclose(mixed["0.25"], mixed["0.0"], atol=1e-4)
    assert _run(root, tmp_path / "y", "enhancer.name=convtasnet", f"enhancer.checkpoint={ckpt}",
                "enhancer.residual_mix=1.5") == 2  # fmt: skip


def test_mirror_average_is_left_right_equivariant(dataset, tmp_path):
    """Mirrored scene in -> ears swapped out; and the average differs from one pass."""
    from clarity_se.data.cec2 import CEC2Dataset
    from clarity_se.enhancers.convtasnet import ConvTasNetEnhancer

    root, scenes = dataset
    torch.manual_seed(1)
    model = build_model("convtasnet", n_filters=16, kernel_size=16, bn_chan=8, hid_chan=16,
                        n_blocks=2, n_repeats=1)  # fmt: skip
    ckpt = save_checkpoint(tmp_path / "tiny.pt", model)
    folder = root / "clarity_data" / "dev" / "scenes"
    for ch in (1, 2, 3):  # the scene with left and right swapped
        x, sr = sf.read(str(folder / f"{scenes[0]}_mix_CH{ch}.wav"), dtype="float32")
        sf.write(str(folder / f"MIRROR_mix_CH{ch}.wav"), x[:, ::-1], sr, subtype="FLOAT")
    both = ConvTasNetEnhancer(str(ckpt), mirror_average=True)
    one = ConvTasNetEnhancer(str(ckpt), mirror_average=False)
    data = CEC2Dataset(root, "dev")

    def read_mixtures(scene):
        return data.load_mixture(scene).numpy()

    out = both(read_mixtures(scenes[0])).T
    np.testing.assert_allclose(both(read_mixtures("MIRROR")).T, out[:, ::-1], atol=1e-6)
    single = one(read_mixtures(scenes[0])).T
    assert out.shape == single.shape == (N_TIME, 2)
    assert not np.allclose(out, single, atol=1e-4)  # the random model is not symmetric
    # the cli key reaches the enhancer
    for flag in ("false", "true"):
        args = ["enhancer.name=convtasnet", f"enhancer.checkpoint={ckpt}"]
        args += ["enhancer.residual_mix=0"]
        assert _run(root, tmp_path / flag, *args, f"enhancer.mirror_average={flag}") == 0
    name = f"{scenes[0]}_L0001_enhanced.wav"
    got = {f: sf.read(str(tmp_path / f / "enhanced_signals" / name), dtype="float32")[0]
           for f in ("false", "true")}  # fmt: skip
    np.testing.assert_allclose(got["false"], single, atol=1e-6)
    np.testing.assert_allclose(got["true"], out, atol=1e-6)
