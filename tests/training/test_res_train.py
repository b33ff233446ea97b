"""``clarity-se res-train``: the RES U-Net trains on canceller outputs (time-domain re-analysis
or the canceller's own frames), resumes, exports, and refuses a framing that is not the
canceller's."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest
import torch

from clarity_se.aec.deep_adaptive import packaged_checkpoint
from clarity_se.cli import main as cli_main
from clarity_se.data.render.echo import EchoRenderOptions, build_aec_dataset
from clarity_se.models.checkpoint import load_model
from clarity_se.models.res_unet import RESUNet
from clarity_se.training.res import FrameBank, canceller_outputs, load_res_config, train_res
from tests._aec_tree import make_data_root

FRAMEWISE = ["model.hop_length=160", "model.synth_length=320"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = make_data_root(tmp_path_factory.mktemp("rec"))
    out = tmp_path_factory.mktemp("res")
    for split, n in (("train", 3), ("test", 2)):  # double talk only
        options = EchoRenderOptions(clip_s=0.8, seed=4, talk_mix=(0, 1, 0), split=split)
        build_aec_dataset(out / split, n_clips=n, options=options, data_root=root)
    return out


def _cfg(folders, exp, *extra):
    return load_res_config("recipes/aec/res_unet/config.yaml", [
        f"data.root={folders / 'train'}", f"data.val_root={folders / 'test'}",
        f"train.exp_dir={exp}", "train.steps=4", "train.batch_size=8", "train.val_every=2",
        "train.num_threads=1", "model.channels=[4,4,4,4,4]", "model.out_channels=4", *extra])


def _steps(exp):
    with open(exp / "log.csv", newline="") as handle:
        return [int(r["step"]) for r in csv.DictReader(handle)]


def test_trains_resumes_and_exports(folders, tmp_path):
    exp = tmp_path / "exp"
    export = tmp_path / "res.pt"
    best = train_res(_cfg(folders, exp, "data.aec=[nlms]", f"train.export={export}"))
    assert _steps(exp) == [2, 4]
    model, _ = load_model(best)
    assert isinstance(model, RESUNet) and model.latency_samples == 127
    assert export.read_bytes() == best.read_bytes()
    # resume: two more steps, not six
    train_res(_cfg(folders, exp, "data.aec=[nlms]", "train.steps=6"))
    assert _steps(exp) == [2, 4, 6]


def test_framewise_model_learns_on_deep_adaptive_frames(folders, tmp_path):
    cfg = _cfg(folders, tmp_path / "exp", "data.aec=[deep_adaptive]", *FRAMEWISE)
    best = train_res(cfg)
    model, _ = load_model(best)
    assert model.frame_synchronous(320, 160) and model.latency_samples == 319
    clips = canceller_outputs("deep_adaptive", str(folders / "train"),
                              tmp_path / "exp" / "cache" / "deep_adaptive" / "train",
                              frames_for=model)  # fmt: skip
    # the cache of a learned canceller is keyed by its weights and its Kalman selection, so new
    # weights or another selection never reuse it
    digest = hashlib.sha256(packaged_checkpoint().read_bytes()).hexdigest()[:12]
    cache = tmp_path / "exp" / "cache" / "deep_adaptive" / "train"
    assert [p.name for p in cache.iterdir()] == [f"{digest}_kalman0.999"]
    cached = list((cache / f"{digest}_kalman0.999").glob("*.npz"))
    assert len(cached) == len(clips) > 0
    for c in clips:  # the canceller's frames line up with the analysis of the near-end speech
        frames = model.stft.num_frames(c["nearend"].size)
        assert c["error_spec"].shape == c["echo_spec"].shape == (frames, 161)
    bank = FrameBank(model, clips)
    assert bank.n_frames.tolist() == [c["error_spec"].shape[0] for c in clips]
    feats, e, s, r = bank.gather(np.array([0]), np.array([5]))
    assert feats.shape == (1, 2, model.context, 161)
    np.testing.assert_allclose(e[0], np.abs(clips[0]["error_spec"][5]), rtol=1e-6)
    assert torch.all(r >= 0) and torch.all(s >= 0)


def test_linear_error_of_deep_adaptive_is_cached_apart(folders, tmp_path):
    """``data.post_filter=false``: the suppressor learns on deep_adaptive's linear error (the
    paper's set-up), cached under its own key, never mixed with the post-filtered outputs."""
    exp = tmp_path / "exp"
    train_res(_cfg(folders, exp, "data.aec=[deep_adaptive]", "data.post_filter=false",
                   "train.steps=2", *FRAMEWISE))
    digest = hashlib.sha256(packaged_checkpoint().read_bytes()).hexdigest()[:12]
    cache = exp / "cache" / "deep_adaptive" / "train"
    assert [p.name for p in cache.iterdir()] == [f"{digest}_kalman0.999_linear"]
    model = RESUNet(hop_length=160, synth_length=320, channels=(4, 4, 4, 4, 4), out_channels=4)
    linear = canceller_outputs("deep_adaptive", str(folders / "train"), cache,
                               frames_for=model, post_filter=False)
    gained = canceller_outputs("deep_adaptive", str(folders / "train"), cache,
                               frames_for=model)
    assert sorted(p.name for p in cache.iterdir()) == [f"{digest}_kalman0.999",
                                                       f"{digest}_kalman0.999_linear"]
    for lin, out in zip(linear, gained, strict=True):
        # the post-filter is a gain in (0, 1) on the same error: never louder, and not 1
        assert np.all(np.abs(out["error_spec"]) <= np.abs(lin["error_spec"]) * (1 + 1e-5) + 1e-9)
        assert np.abs(out["error_spec"]).sum() < 0.99 * np.abs(lin["error_spec"]).sum()
        np.testing.assert_allclose(out["echo_spec"], lin["echo_spec"], rtol=1e-5, atol=1e-7)


def test_framing_not_the_cancellers_is_refused(folders, tmp_path):
    with pytest.raises(ValueError, match="are not the frames of 'nlms'"):
        train_res(_cfg(folders, tmp_path / "exp", "data.aec=[nlms]", *FRAMEWISE))
    code = cli_main(["res-train", "-c", "recipes/aec/res_unet/config.yaml",
                     f"data.root={folders / 'train'}", "train.steps=1"])
    assert code == 2  # data.val_root missing


PERCEPTUAL = ["loss.perceptual_weight=1.0", "loss.perceptual_frames=250",
              "loss.perceptual_crops=2"]


@pytest.fixture(scope="module")
def long_folders(tmp_path_factory):
    """2.5 s double-talk clips: 46-60 frames of near-end speech each (the PESQ-like term
    scores crops with at least 50)."""
    root = make_data_root(tmp_path_factory.mktemp("rec"))
    out = tmp_path_factory.mktemp("res_long")
    for split, n in (("train", 2), ("test", 1)):
        options = EchoRenderOptions(clip_s=2.5, seed=4, talk_mix=(0, 1, 0), split=split)
        build_aec_dataset(out / split, n_clips=n, options=options, data_root=root)
    return out


def test_perceptual_term_from_a_checkpoint(long_folders, tmp_path):
    """``loss.perceptual_weight``: the PESQ-like term on contiguous crops is validated and
    trains the network; ``train.init_checkpoint`` starts from given weights (with a zero
    learning rate the best checkpoint keeps them exactly)."""
    first = train_res(_cfg(long_folders, tmp_path / "a", "data.aec=[deep_adaptive]",
                           "train.steps=2", *FRAMEWISE))
    init, _ = load_model(first)
    kept = train_res(_cfg(long_folders, tmp_path / "b", "data.aec=[deep_adaptive]", "train.steps=2",
                          "train.lr=0", f"train.init_checkpoint={first}", *FRAMEWISE,
                          *PERCEPTUAL))
    for a, b in zip(init.parameters(), load_model(kept)[0].parameters(), strict=True):
        assert torch.equal(a, b)  # (batch-norm statistics move without a learning rate)
    exp = tmp_path / "c"
    moved = train_res(_cfg(long_folders, exp, "data.aec=[deep_adaptive]", "train.steps=2",
                           f"train.init_checkpoint={first}", *FRAMEWISE, *PERCEPTUAL))
    assert any(not torch.equal(a, b) for a, b in zip(
        init.parameters(), load_model(moved)[0].parameters(), strict=True))
    with open(exp / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert all(np.isfinite(float(r["val_perceptual"])) and float(r["val_perceptual"]) > 0
               for r in rows)


def test_perceptual_crops_are_the_frames_and_carry_gradients(long_folders, tmp_path):
    from clarity_se.training.perceptual_loss import PesqLikeLoss
    from clarity_se.training.res import perceptual_crops_loss

    model = RESUNet(hop_length=160, synth_length=320, channels=(4, 4, 4, 4, 4), out_channels=4)
    clips = canceller_outputs("deep_adaptive", str(long_folders / "train"), tmp_path / "cache",
                              frames_for=model)
    bank = FrameBank(model, clips)
    rng = np.random.default_rng(0)
    crops, starts = bank.random_crops(rng, 3, 250)
    assert np.all(starts + 250 <= bank.n_frames[crops])
    feats, e, s = bank.crops(crops, starts, 250)
    f2, e2, s2, _ = bank.gather(np.repeat(crops[1:2], 250), starts[1] + np.arange(250))
    assert torch.equal(feats[250:500], f2) and torch.equal(e[1], e2) and torch.equal(s[1], s2)
    cfg = load_res_config("recipes/aec/res_unet/config.yaml",
                          ["data.root=x", "data.val_root=y", *PERCEPTUAL])
    loss = perceptual_crops_loss(model, bank, cfg, PesqLikeLoss(model.stft.n_bins), crops,
                                 starts, torch.rand(3))
    loss.backward()
    assert loss.item() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    with pytest.raises(ValueError, match="loss.perceptual_frames"):
        bank.random_crops(rng, 1, int(bank.n_frames.max()) + 1)


def test_perceptual_and_init_errors_are_named(folders, tmp_path):
    with pytest.raises(ValueError, match="model.hop_length=64"):
        train_res(_cfg(folders, tmp_path / "a", "data.aec=[nlms]", *PERCEPTUAL))
    with pytest.raises(ValueError, match="loss.perceptual_frames: 250 frames.*data.root"):
        train_res(_cfg(folders, tmp_path / "d", "data.aec=[deep_adaptive]", *FRAMEWISE,
                       *PERCEPTUAL))  # 0.8 s clips: 81 frames
    other = tmp_path / "other.pt"
    first = train_res(_cfg(folders, tmp_path / "b", "data.aec=[nlms]", "train.steps=2"))
    other.write_bytes(first.read_bytes())
    with pytest.raises(ValueError, match="train.init_checkpoint"):
        train_res(_cfg(folders, tmp_path / "c", "data.aec=[nlms]", "model.channels=[4,4,4,4,8]",
                       f"train.init_checkpoint={other}"))
