"""benchmarks/aec_perceptual_loss.py: the gain raised to powers, and the rank agreement."""

import importlib.util
import json

import numpy as np
import pytest
import torch
from conftest import REPO

from clarity_se.data.render.echo import EchoRenderOptions, build_aec_dataset
from clarity_se.models.deep_adaptive import DeepAdaptiveAEC, save_deep_adaptive
from tests._aec_tree import make_data_root

_spec = importlib.util.spec_from_file_location(
    "aec_perceptual_loss", REPO / "benchmarks" / "aec_perceptual_loss.py")
aec_perceptual_loss = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(aec_perceptual_loss)


def test_rank_agreement_is_spearman_within_clips():
    rows = [{"id": c, "p": p, "pesq": q, "x": x} for c, pairs in
            (("a", [(0, 1.0, 3.0), (1, 2.0, 2.0), (2, 3.0, 1.0)]),   # lower loss, higher PESQ
             ("b", [(0, 1.0, 1.0), (1, 2.0, 2.0), (2, 3.0, 3.0)]))  # the other way round
            for p, q, x in pairs]
    assert aec_perceptual_loss.rank_agreement(rows[:3], lambda r: r["x"]) == pytest.approx(1.0)
    assert aec_perceptual_loss.rank_agreement(rows[3:], lambda r: r["x"]) == pytest.approx(-1.0)
    assert aec_perceptual_loss.rank_agreement(rows, lambda r: r["x"]) == pytest.approx(0.0)


def test_runs_on_a_rendered_folder(tmp_path):
    recordings = make_data_root(tmp_path / "rec")
    data = tmp_path / "aec"
    build_aec_dataset(data, n_clips=2, options=EchoRenderOptions(
        split="test", seed=3, clip_s=2.0, talk_mix=(0, 1, 0)), data_root=recordings)
    torch.manual_seed(0)
    ckpt = tmp_path / "m.pt"
    save_deep_adaptive(ckpt, DeepAdaptiveAEC(hidden=8, taps=4))
    out = tmp_path / "r.json"
    assert aec_perceptual_loss.main([str(data), "--checkpoint", str(ckpt), "--powers", "0,1",
                                     "--asymmetry", "0.001", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert len(res["rows"]) == 4 and set(res["mean"]) == {"0.0", "1.0"}
    assert all(np.isfinite(r["pesq"]) and r["d_sym"] > 0 and r["d_asym"] >= 0
               for r in res["rows"])
    assert set(res["agreement"]) == {"spectral", "0.1 d_sym + 0.001 d_asym"}
    assert aec_perceptual_loss.main([str(tmp_path / "none"), "--out", str(out)]) == 2
