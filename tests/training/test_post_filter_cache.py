"""Fine-tuning deep_adaptive's post-filter on cached canceller frames
(clarity_se.training.post_filter_cache, ``train.post_filter_cache``) and the PESQ-like term of
``aec-train`` (``train.perceptual_weight``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REORDER_TOL

from clarity_se.aec.config import load_aec_config
from clarity_se.data.aec_challenge import load_aec_dataset, read_clip
from clarity_se.data.render.echo import EchoRenderOptions, build_aec_dataset
from clarity_se.models.deep_adaptive import (
    DeepAdaptiveAEC,
    load_deep_adaptive,
    save_deep_adaptive,
)
from clarity_se.training.aec_train import perceptual_term, train_deep_adaptive
from clarity_se.training.perceptual_loss import PesqLikeLoss
from clarity_se.training.post_filter_cache import (
    PostFilterCache,
    PostFilterReplay,
    build_post_filter_cache,
    cache_key,
)
from tests._aec_tree import make_data_root

CONFIG = "recipes/aec/deep_adaptive/config.yaml"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Three rendered 2 s double-talk clips and a random small checkpoint."""
    tmp = tmp_path_factory.mktemp("pfc")
    recordings = make_data_root(tmp / "rec")
    data = tmp / "train"
    build_aec_dataset(data, n_clips=3, options=EchoRenderOptions(
        split="train", seed=1, clip_s=2.0, talk_mix=(0, 1, 0)), data_root=recordings)
    torch.manual_seed(0)
    ckpt = tmp / "init.pt"
    save_deep_adaptive(ckpt, DeepAdaptiveAEC(hidden=8))
    return data, ckpt


def test_replay_of_the_cache_is_the_model_s_post_filter(setup, tmp_path):
    """The cached inputs replayed through the shared ``res_*`` layers give the gains, and the
    cache holds the error, that the frame-by-frame model gives on the whole clip (Kalman
    selection on); a second build with the same key reuses the folder, another key rebuilds."""
    data, ckpt = setup
    model, _ = load_deep_adaptive(ckpt)
    model.kalman_selection = 0.999
    clips = load_aec_dataset(data)
    key = cache_key(str(ckpt), 0.999, [c.id for c in clips])
    cache = build_post_filter_cache(model, clips, tmp_path / "cache", key, batch=2,
                                    progress=False)
    assert len(cache) == 3 and not (tmp_path / "cache.tmp").exists()
    replay = PostFilterReplay(model)
    for i, clip in enumerate(clips):
        a = read_clip(clip)
        k = int(cache.frames[i])
        sig = [np.concatenate([np.zeros(model.hop), x, np.zeros(k * model.hop - x.size)])
               for x in (a.mic, a.farend)]
        with torch.no_grad():
            spec = [model.stft(torch.from_numpy(s)[None].float()) for s in sig]
            e, _, mask, _ = model.forward_with_mask(*spec)
            gains = replay(torch.from_numpy(cache.R[i:i + 1, :k].astype(np.float32)))
        # float16 storage of the inputs (3 significant digits) bounds the agreement
        assert float((gains - mask).abs().max()) < 2e-2
        scale = float(e.abs().max())
        cached_e = torch.from_numpy(np.array(cache.E[i, :k]))
        assert float((cached_e - e[0]).abs().max()) <= REORDER_TOL * scale
        assert bool((cache.E[i, k:] == 0).all())
    # the replay in float32 inputs is the LSTM cell's recursion: exact up to summation order
    r = torch.randn(2, 9, 3 * model.n_bins + model.hidden)
    with torch.no_grad():
        state = model.initial_state(2, torch.float32)
        h, c, ref = state["rh"], state["rc"], []
        for t in range(9):
            h, c = model.res_cell(torch.tanh(model.res_inp(r[:, t])), (h, c))
            ref.append(torch.sigmoid(model.res_head(h)))
        assert float((replay(r) - torch.stack(ref, 1)).abs().max()) < REORDER_TOL
    stamp = (tmp_path / "cache" / "meta.json").stat().st_mtime_ns
    build_post_filter_cache(model, clips, tmp_path / "cache", key, progress=False)
    assert (tmp_path / "cache" / "meta.json").stat().st_mtime_ns == stamp  # reused
    other = dict(key, kalman_selection=0.0)
    build_post_filter_cache(model, clips, tmp_path / "cache", other, progress=False)
    assert PostFilterCache(tmp_path / "cache").meta["key"] == other  # rebuilt
    # crops: shapes, zeros past a clip's end, half of them from frame 0 on average
    rng = np.random.default_rng(0)
    r_in, e_c, s_c = cache.batch(rng, 64, 250)
    assert r_in.shape == (64, 250, 3 * model.n_bins + model.hidden) and e_c.is_complex()
    assert s_c.shape == e_c.shape == (64, 250, model.n_bins)
    assert bool((r_in[:, 201:] == 0).all())  # 2 s clips: 201 frames at most


def test_trainer_on_the_cache_moves_the_post_filter_alone(setup, tmp_path):
    data, ckpt = setup
    common = [f"path.root={data}", "train.model.hidden=8", "train.batch=2",
              "train.segment_s=0.5", f"train.init_checkpoint={ckpt}", "train.log_every=1",
              "train.trainable=[res_]", "train.linear_weight=0", "train.kalman_selection=0.999",
              "train.nearend_weight=4", "train.lr=0.01"]
    path = train_deep_adaptive(load_aec_config(CONFIG, [
        *common, f"path.exp_folder={tmp_path / 'exp'}", "train.max_steps=3",
        "train.post_filter_cache=true", "train.perceptual_weight=0.02"]))
    tuned, payload = load_deep_adaptive(path)
    start, _ = load_deep_adaptive(ckpt)
    old = start.state_dict()
    moved = [k for k, v in tuned.state_dict().items() if not torch.equal(v, old[k])]
    assert moved and all(k.startswith("res_") for k in moved), moved
    assert "res_cell.weight_hh" in moved  # the replay's LSTM shares the cell's parameters
    assert (tmp_path / "exp" / "post_filter_cache" / "meta.json").is_file()
    assert len(payload["training"]["history"]) == 3
    for bad in (["train.trainable=[]"], ["train.linear_weight=0.5"],
                [f"train.init_checkpoint={''}"]):
        with pytest.raises(ValueError, match="train.post_filter_cache"):
            train_deep_adaptive(load_aec_config(CONFIG, [
                *common, f"path.exp_folder={tmp_path / 'bad'}", "train.max_steps=1",
                "train.post_filter_cache=true", *bad]))


def test_perceptual_term_counts_crops_with_near_end_speech(setup, tmp_path):
    loss = PesqLikeLoss(161)
    g = torch.Generator().manual_seed(1)
    near = torch.complex(torch.randn(2, 80, 161, generator=g), torch.randn(2, 80, 161,
                                                                            generator=g))
    near[1] = 0  # no near-end speech: adds nothing
    est = near + 0.5 * torch.complex(torch.randn(2, 80, 161, generator=g),
                                     torch.randn(2, 80, 161, generator=g))
    both = float(perceptual_term(loss, est, near, 0.001))
    alone = float(perceptual_term(loss, est[:1], near[:1], 0.001))
    assert both > 0 and both == pytest.approx(alone / 2, rel=1e-6)
    assert float(perceptual_term(loss, est[1:], near[1:], 0.001)) == 0.0
    # in the end-to-end trainer: the same crops, other weights than without the term
    data, _ = setup
    common = [f"path.root={data}", "train.model.hidden=8", "train.batch=2",
              "train.segment_s=2.0", "train.max_steps=2", "train.lr=0.01"]
    weights = []
    for w in (0, 1):
        path = train_deep_adaptive(load_aec_config(CONFIG, [
            *common, f"path.exp_folder={tmp_path / str(w)}", f"train.perceptual_weight={w}"]))
        weights.append(load_deep_adaptive(path)[0].state_dict()["res_head.bias"])
    assert not torch.equal(*weights)
    with pytest.raises(ValueError, match="train.perceptual_weight"):
        train_deep_adaptive(load_aec_config(CONFIG, [
            *common, f"path.exp_folder={tmp_path / 'bad'}", "train.perceptual_weight=-1"]))


def test_cached_run_resumes_to_the_same_weights(setup, tmp_path):
    """Killed after 2 steps and rerun to 4: the same crops and optimiser state as 4 straight
    steps (the cache reused), so the same weights (bit-equal: one process, same code path)."""
    data, ckpt = setup
    common = [f"path.root={data}", "train.model.hidden=8", "train.batch=2",
              "train.segment_s=0.5", f"train.init_checkpoint={ckpt}", "train.log_every=1",
              "train.trainable=[res_]", "train.linear_weight=0", "train.post_filter_cache=true",
              "train.checkpoint_every=2", "train.perceptual_weight=0.02", "train.lr=0.01"]

    def run(exp, steps):
        return train_deep_adaptive(load_aec_config(CONFIG, [
            *common, f"path.exp_folder={tmp_path / exp}", f"train.max_steps={steps}"]))

    straight, _ = load_deep_adaptive(run("straight", 4))
    run("resumed", 2)
    resumed, payload = load_deep_adaptive(run("resumed", 4))
    assert [h["step"] for h in payload["training"]["history"]] == [1, 2, 3, 4]
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
