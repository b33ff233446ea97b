"""benchmarks/haspi_features.py: HASPI v2 of a scene's outputs with its raw features."""

import importlib.util
import json

import numpy as np
import soundfile as sf
from _eval_tree import make_eval_tree
from conftest import REPO

from clarity_se.data.audio_io import read_audio
from clarity_se.data.audiogram import load_listeners
from clarity_se.data.cec2 import CEC2Dataset
from clarity_se.metrics.scene import make_reference, score_scene_pairs
from clarity_se.random import scene_seed

_spec = importlib.util.spec_from_file_location(
    "haspi_features", REPO / "benchmarks" / "haspi_features.py")
haspi_features = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(haspi_features)


def test_features_score_equals_the_evaluator_and_tracks_distortion(tmp_path):
    """The script's HASPI is the evaluator's for the same pair (same process, same draws);
    a noisier output lowers the raw modulation correlations and the score."""
    root = make_eval_tree(tmp_path / "data", {"S06001": ["L0001"]})
    scenes = root / "clarity_data" / "dev" / "scenes"
    anechoic, fs = read_audio(scenes / "S06001_target_anechoic_CH1.wav")
    target, _ = read_audio(scenes / "S06001_target_CH1.wav")
    reference = make_reference(anechoic, target)
    dataset = CEC2Dataset(root, "dev")
    np.testing.assert_array_equal(haspi_features.scene_reference(dataset, "S06001"), reference)
    rng = np.random.default_rng(0)
    outputs = {"clean": reference, "noisy": reference + 0.5 * rng.standard_normal(reference.shape)
               * np.sqrt(np.mean(reference**2))}  # fmt: skip
    got = {}
    for name, signal in outputs.items():
        folder = tmp_path / name
        folder.mkdir()
        sf.write(folder / "S06001_L0001_HA-output.wav", np.clip(signal, -1, 1), fs,
                 subtype="PCM_16")  # fmt: skip
        got[name] = haspi_features.pair_features(dataset, reference, "S06001", "L0001", folder)
        amplified, _ = read_audio(folder / "S06001_L0001_HA-output.wav")
        listener = load_listeners(root / "clarity_data" / "metadata" / "listeners.json")["L0001"]
        (ears,) = score_scene_pairs(scene_seed=scene_seed("S06001"), reference=reference,
                                    amplified=[amplified], listeners=[listener],
                                    sample_rate=fs)  # fmt: skip
        assert got[name]["left"]["haspi"] == ears.haspi_left
        assert got[name]["right"]["haspi"] == ears.haspi_right
        assert all(len(got[name][e]["raw"]) == 10 for e in ("left", "right"))
    for ear in ("left", "right"):
        assert got["noisy"][ear]["haspi"] < got["clean"][ear]["haspi"]
        assert np.mean(got["noisy"][ear]["raw"]) < np.mean(got["clean"][ear]["raw"])
    # the command line writes the rows
    out = tmp_path / "f.json"
    haspi_features.main(["--root", str(root), "--scene", "S06001", "--outputs",
                         f"clean={tmp_path / 'clean'}", "--out", str(out)])  # fmt: skip
    rows = json.loads(out.read_text())["rows"]
    assert [(r["listener"], r["ear"]) for r in rows] == [("L0001", "left"), ("L0001", "right")]
    assert rows[0]["haspi"] == got["clean"]["left"]["haspi"]
