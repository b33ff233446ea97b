"""benchmarks/aec_level.py: an echo canceller scored at several input levels."""

import importlib.util
import json

import numpy as np
from conftest import REPO

from clarity_se.data.aec_challenge import read_clip, read_synthetic_meta
from clarity_se.data.render.echo import EchoRenderOptions, build_aec_dataset
from clarity_se.metrics.aec_scores import score_output

_spec = importlib.util.spec_from_file_location("aec_level", REPO / "benchmarks" / "aec_level.py")
aec_level = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(aec_level)


def test_levels_on_a_rendered_folder(tmp_path):
    root = tmp_path / "aec"
    build_aec_dataset(root, n_clips=2, options=EchoRenderOptions(
        split="test", seed=3, clip_s=2.0, talk_mix=(1, 1, 0)))
    clips = read_synthetic_meta(root)
    audio = read_clip(clips[0])
    louder = audio.scaled(6.0)
    for key in ("mic", "farend", "nearend", "echo"):
        if getattr(audio, key) is not None:
            np.testing.assert_allclose(getattr(louder, key), 10 ** 0.3 * getattr(audio, key),
                                       rtol=1e-6)
    out = tmp_path / "level.json"
    assert aec_level.main([str(root), "--systems", "deep_adaptive", "--gains-db", "-10", "0",
                           "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["mean"]["deep_adaptive"]) == {"-10.0", "0.0"}
    assert len(result["clips"]) == 2 * len(clips)
    # the 0 dB row is the canceller on the clip as it is, scored as aec-evaluate scores it
    row = next(r for r in result["clips"] if r["gain_db"] == 0.0 and r["id"] == clips[0].id)
    system = aec_level.build("deep_adaptive", "")
    expected = score_output(audio, np.asarray(system(audio.mic, audio.farend).output,
                                              dtype=np.float64), clips[0].talk_type)
    for key, value in expected.items():
        assert (np.isnan(value) and np.isnan(row[key])) or abs(value - row[key]) < 1e-9
    assert result["kalman_selection"] == 0.999
    assert system.model.kalman_selection == 0.999  # the canceller's default
    assert aec_level.build("deep_adaptive", "", 0.0).model.kalman_selection == 0.0
    # --level-target-db: deep_adaptive once per value, the 0 run as before
    out2 = tmp_path / "level2.json"
    assert aec_level.main([str(root), "--systems", "deep_adaptive", "--gains-db", "0",
                           "--level-target-db", "0", "-24", "--out", str(out2)]) == 0
    both = json.loads(out2.read_text())
    assert set(both["mean"]) == {"deep_adaptive", "deep_adaptive@-24"}
    assert both["mean"]["deep_adaptive"]["0.0"] == result["mean"]["deep_adaptive"]["0.0"]
    assert aec_level.build("deep_adaptive", "", 0.999, -24.0).model.level_target_db == -24.0
    assert aec_level.main([str(root), "--level-target-db", "-3"]) == 2
    assert aec_level.main([str(tmp_path / "missing")]) == 2
    assert aec_level.main([str(root), "--systems", "no_such_aec"]) == 2
