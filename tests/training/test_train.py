"""clarity-se train: end-to-end on tiny synthetic scenes, resume, DDP (2 gloo processes)."""

import csv
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from conftest import REORDER_TOL
from enhancer_helpers import TINY_MODEL, make_scenes
from omegaconf import OmegaConf

from clarity_se.cli import main as cli_main
from clarity_se.models import build_model
from clarity_se.models.checkpoint import load_model, read_checkpoint
from clarity_se.training.config import load_train_config
from clarity_se.training.trainer import train


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cec2")
    make_scenes(root, "train", 4, 9001, seed=1)
    make_scenes(root, "dev", 2, 6001, seed=2)
    return root


def _overrides(root, exp, *extra):
    return [
        f"data.root={root}",
        f"train.exp_dir={exp}",
        "data.segment_s=0.1",
        "data.dev_segment_s=0.1",
        "data.cache=true",
        "train.batch_size=2",
        "train.progress=false",
        "train.num_threads=1",
        *TINY_MODEL,
        *extra,
    ]


def test_train_cli_resume_and_checkpoint(data_root, tmp_path):
    exp = tmp_path / "exp"
    assert cli_main(["train", *_overrides(data_root, exp, "train.epochs=2")]) == 0
    rows = list(csv.DictReader(open(exp / "log.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert (exp / "best.pt").is_file() and (exp / "config.yaml").is_file()
    payload = read_checkpoint(exp / "last.pt")
    assert payload["epoch"] == 1 and payload["model_name"] == "convtasnet"
    assert payload["training"]["train_manifest"]["n_scenes"] == 4
    # resume: a second call with more epochs continues at epoch 2, not from scratch
    cfg = load_train_config(None, _overrides(data_root, exp, "train.epochs=3"))
    model, history = train(cfg)
    assert [h["epoch"] for h in history] == [2]
    assert history[0]["step"] == payload["step"] + 2
    rows = list(csv.DictReader(open(exp / "log.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    loaded, _ = load_model(exp / "last.pt")
    x = torch.randn(1, 6, 777)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_init_from_starts_from_checkpoint_weights(data_root, tmp_path, caplog):
    first = tmp_path / "first"
    cfg = load_train_config(None, _overrides(data_root, first, "train.epochs=1"))
    trained, _ = train(cfg)
    # epochs=0: no step is taken, so the model is exactly the init_from weights
    cfg = load_train_config(
        None,
        _overrides(
            data_root, tmp_path / "ft", "train.epochs=0", f"train.init_from={first}/last.pt"
        ),
    )
    model, history = train(cfg)
    assert history == []
    for name, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    # a different architecture is refused with the file named
    cfg = load_train_config(
        None,
        _overrides(
            data_root,
            tmp_path / "bad",
            "train.epochs=0",
            "model.bn_chan=9",
            f"train.init_from={first}/last.pt",
        ),
    )
    with pytest.raises(ValueError, match="last.pt: does not match"):
        train(cfg)
    # n_src 1 -> 2 (uPIT fine-tune): the target keeps the checkpoint's masks
    cfg = load_train_config(
        None,
        _overrides(
            data_root, tmp_path / "pit", "train.epochs=0", "model.n_src=2",
            f"train.init_from={first}/last.pt",
        ),  # fmt: skip
    )
    caplog.set_level("INFO", logger="clarity_se.training.trainer")
    widened, _ = train(cfg)
    # the intended widening is logged as information, not warned about as a dropped argument
    messages = {r.levelname: r.getMessage() for r in caplog.records if "n_src" in r.getMessage()}
    assert "WARNING" not in messages and "n_src 1 -> 2" in messages.get("INFO", ""), messages
    x = torch.randn(1, 6, 2048)
    with torch.no_grad():
        est, ref = widened.eval()(x), trained.eval()(x)
    torch.testing.assert_close(est[:, :1], ref, rtol=0, atol=REORDER_TOL)


def test_init_from_warns_about_dropped_model_args(data_root, tmp_path, caplog):
    from clarity_se.models.checkpoint import set_model_args
    from clarity_se.training.trainer import init_args_differences

    assert init_args_differences({"a": 1, "b": 0.4}, {"a": 1, "b": 0.0, "c": 2}) == [
        "model.b=0.0 (the checkpoint has 0.4; add model.b=0.4 to keep it)"
    ]
    assert init_args_differences({"n_src": 1}, {"n_src": 2}, adapted=("n_src",)) == []
    first = tmp_path / "first"
    train(load_train_config(None, _overrides(data_root, first, "train.epochs=1")))
    gained = set_model_args(first / "last.pt", tmp_path / "gained.pt", output_gain_db=3.0)
    caplog.set_level("WARNING", logger="clarity_se.training.trainer")
    cfg = load_train_config(
        None, _overrides(data_root, tmp_path / "ft", "train.epochs=0", f"train.init_from={gained}")
    )
    train(cfg)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("model.output_gain_db=0.0 (the checkpoint has 3.0" in m for m in warned), warned
    caplog.clear()
    cfg = load_train_config(
        None,
        _overrides(data_root, tmp_path / "ft2", "train.epochs=0", "model.output_gain_db=3.0",
                   f"train.init_from={gained}"),
    )  # fmt: skip
    train(cfg)
    assert not [r for r in caplog.records if "init_from" in r.getMessage()]


def test_non_finite_loss_skips_the_step(data_root, tmp_path, monkeypatch):
    from clarity_se.training import trainer

    real, calls = trainer.compute_loss, {"n": 0}

    def nan_twice(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] in (2, 3) else loss

    monkeypatch.setattr(trainer, "compute_loss", nan_twice)
    cfg = load_train_config(
        None, _overrides(data_root, tmp_path / "nan", "train.epochs=1", "train.steps_per_epoch=4")
    )
    model, history = train(cfg)
    assert calls["n"] == 6  # 4 steps taken, 2 skipped
    assert np.isfinite(history[0]["train_loss"])
    assert all(torch.isfinite(p).all() for p in model.parameters())
    monkeypatch.setattr(trainer, "compute_loss", lambda *a, **k: torch.tensor(float("nan")))
    cfg = load_train_config(None, _overrides(data_root, tmp_path / "nan2", "train.epochs=1"))
    with pytest.raises(ValueError, match="non-finite loss"):
        train(cfg)


def test_training_improves_si_sdr(data_root, tmp_path):
    cfg = load_train_config(
        None,
        _overrides(
            data_root,
            tmp_path / "e",
            "train.epochs=6",
            "train.steps_per_epoch=8",
            "optim.lr=0.005",
            "optim.scheduler=cosine",
        ),
    )
    _, history = train(cfg)
    assert history[-1]["val_si_sdr"] > history[0]["val_si_sdr"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_bad_config_is_reported(tmp_path):
    assert cli_main(["train", "data.root=/nonexistent", "train.bogus=1"]) == 2
    with pytest.raises(ValueError, match="data.root"):
        load_train_config(None, [])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank, world, port, overrides, out_dir):
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    import torch.distributed as dist

    cfg = load_train_config(None, overrides)
    model, history = train(cfg)
    torch.save(
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        os.path.join(out_dir, f"rank{rank}.pt"),
    )
    dist.destroy_process_group()


def test_ddp_two_gloo_processes_keep_replicas_identical(data_root, tmp_path):
    overrides = _overrides(
        data_root,
        tmp_path / "ddp",
        "train.epochs=1",
        "train.steps_per_epoch=2",
        "train.batch_size=1",
        "optim.lr=0.01",
    )
    mp.spawn(_ddp_worker, args=(2, _free_port(), overrides, str(tmp_path)), nprocs=2, join=True)
    s0 = torch.load(tmp_path / "rank0.pt")
    s1 = torch.load(tmp_path / "rank1.pt")
    saved = load_model(tmp_path / "ddp" / "last.pt")[0].state_dict()
    for key in s0:
        assert torch.equal(s0[key], s1[key]), key
        assert torch.equal(s0[key], saved[key]), key
    # the replicas did train: parameters moved away from the seeded initialisation
    torch.manual_seed(0)
    cfg = load_train_config(None, overrides)
    args = {k: v for k, v in OmegaConf.to_container(cfg.model).items() if k != "name"}
    fresh = build_model("convtasnet", **args).state_dict()
    moved = max((s0[k] - fresh[k]).abs().max().item() for k in s0)
    assert moved > 1e-4
    assert read_checkpoint(tmp_path / "ddp" / "last.pt")["training"]["world_size"] == 2


def test_dataset_crops_and_remix(data_root):
    from clarity_se.data.scene_segments import SceneSegmentDataset

    kw = dict(n_src=2, segment_s=0.05, seed=3)
    plain = SceneSegmentDataset(data_root, "train", **kw)
    remix = SceneSegmentDataset(data_root, "train", remix_prob=1.0, **kw)
    a, b = plain[1], remix[1]
    assert a["mixture"].shape == (6, 2205) and a["sources"].shape == (2, 2, 2205)
    assert torch.equal(a["sources"][0], b["sources"][0])  # same target crop
    assert not torch.allclose(a["mixture"], b["mixture"])  # other interferers
    # residual source = front mixture - target, also after remixing
    assert torch.allclose(b["sources"][1], b["mixture"][:2] - b["sources"][0])
    assert torch.equal(remix[1]["mixture"], b["mixture"])  # deterministic per epoch
    remix.set_epoch(1)
    assert not torch.equal(remix[1]["mixture"], b["mixture"])
    # the crop contains target speech
    assert a["sources"][0].abs().max() > 0.01


def test_preemphasis_weight_sets_the_training_loss(data_root, tmp_path):
    """``train.preemphasis_weight`` swaps in the emphasised SI-SDR, for 1 and 2 sources."""
    from clarity_se.losses import neg_si_sdr_emphasised, pit_loss
    from clarity_se.training.trainer import compute_loss

    torch.manual_seed(0)
    src = torch.randn(3, 2, 2, 500)
    est = src.flip(1) + 0.3 * torch.randn_like(src)
    one = compute_loss(est[:, :1], src[:, :1], 0.5)
    torch.testing.assert_close(one, neg_si_sdr_emphasised(est[:, :1], src[:, :1]).mean())
    assert not torch.allclose(one, compute_loss(est[:, :1], src[:, :1]))
    two = compute_loss(est, src, 0.5)
    torch.testing.assert_close(two, pit_loss(est, src, neg_si_sdr_emphasised)[0])
    assert float(two) < float(neg_si_sdr_emphasised(est, src).mean())  # permutation found
    exp = tmp_path / "pe"
    overrides = _overrides(data_root, exp, "train.epochs=2", "train.preemphasis_weight=0.5",
                           "train.keep_epochs=true", "train.envelope_weight=10",
                           "train.mask_weight=1")  # fmt: skip
    assert cli_main(["train", *overrides]) == 0
    saved = OmegaConf.load(exp / "config.yaml").train
    assert saved.preemphasis_weight == 0.5 and saved.envelope_weight == 10
    assert saved.mask_weight == 1
    with pytest.raises(ValueError, match="mask_weight"):
        load_train_config(None, _overrides(data_root, tmp_path / "x", "train.mask_weight=-1"))
    # keep_epochs: one weights file per epoch, the last equal to last.pt's weights
    assert sorted(p.name for p in exp.glob("epoch_*.pt")) == ["epoch_000.pt", "epoch_001.pt"]
    last, kept = read_checkpoint(exp / "last.pt"), read_checkpoint(exp / "epoch_001.pt")
    assert kept["training"]["epoch"] == 1
    for key, value in last["state_dict"].items():
        assert torch.equal(value, kept["state_dict"][key]), key


def test_envelope_weight_adds_the_envelope_term(data_root, tmp_path):
    """``train.envelope_weight``: w (1 - rho) dB on each signal's loss, also under uPIT."""
    from clarity_se.losses import neg_si_sdr_emphasised, pit_loss, si_sdr
    from clarity_se.losses.envelope import EnvelopeCorrelation
    from clarity_se.training.trainer import compute_loss

    torch.manual_seed(0)
    src = torch.randn(2, 2, 2, 8000)
    est = src.flip(1) + 0.5 * torch.randn_like(src)
    env = EnvelopeCorrelation(16000)
    one = compute_loss(est[:, :1], src[:, :1], 0.5, envelope=env, envelope_weight=20.0)
    expect = (neg_si_sdr_emphasised(est[:, :1], src[:, :1])
              + 20.0 * (1 - env(est[:, :1], src[:, :1]))).mean()
    torch.testing.assert_close(one, expect)
    assert float(one) > float(compute_loss(est[:, :1], src[:, :1], 0.5)) + 0.1
    two = compute_loss(est, src, envelope=env, envelope_weight=20.0)
    ref_two = pit_loss(est, src, lambda e, r: -si_sdr(e, r) + 20.0 * (1 - env(e, r)))[0]
    torch.testing.assert_close(two, ref_two)
    with pytest.raises(ValueError, match="envelope_weight"):
        compute_loss(est, src, envelope=None, envelope_weight=1.0)
    with pytest.raises(ValueError, match="envelope_weight"):
        compute_loss(est, src, envelope=env, envelope_weight=-1.0)
    with pytest.raises(ValueError, match="envelope_weight"):
        load_train_config(None, _overrides(data_root, tmp_path / "x", "train.envelope_weight=-1"))


def test_average_checkpoints(tmp_path):
    """clarity-se average: the mean of the weights; mismatched models are named errors."""
    torch.manual_seed(0)
    args = dict(n_filters=16, kernel_size=16, bn_chan=8, hid_chan=16, skip_chan=8,
                n_blocks=2, n_repeats=1)  # fmt: skip
    from clarity_se.models.checkpoint import save_checkpoint

    models = [build_model("convtasnet", **args) for _ in range(3)]
    paths = [save_checkpoint(tmp_path / f"e{i}.pt", m, training={"epoch": i, "step": 10 * i})
             for i, m in enumerate(models)]  # fmt: skip
    out = tmp_path / "avg.pt"
    assert cli_main(["average", str(out), *map(str, paths)]) == 0
    averaged, payload = load_model(out)
    for name, value in averaged.state_dict().items():
        expected = sum(m.state_dict()[name].double() for m in models) / 3
        torch.testing.assert_close(value.double(), expected, rtol=0, atol=1e-7)
    assert [e["epoch"] for e in payload["training"]["averaged_from"]] == [0, 1, 2]
    other = build_model("convtasnet", **{**args, "n_blocks": 3})
    other = save_checkpoint(tmp_path / "other.pt", other)
    assert cli_main(["average", str(tmp_path / "bad.pt"), str(paths[0]), str(other)]) == 2
    assert cli_main(["average", str(tmp_path / "bad.pt"), str(paths[0])]) == 2
    assert not (tmp_path / "bad.pt").exists()
