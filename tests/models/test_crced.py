"""CR-CED (Park & Lee 2017): layer table, latency, streaming, reconstruction."""

from __future__ import annotations

import pytest
import torch
from conftest import STREAM_TOL

from clarity_se.models import build_model
from clarity_se.models.crced import CRCED
from clarity_se.models.dtln import DTLNStreamer, count_parameters


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = CRCED().eval()
    for bn in (mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm1d)):
        bn.running_mean.normal_(0, 0.1)  # non-trivial statistics, as after training
        bn.running_var.uniform_(0.5, 1.5)
    return m


def test_parameter_count_follows_the_layer_table(model):
    assert count_parameters(model) == 32_653
    assert build_model("crced").hparams["context"] == 8
    with pytest.raises(ValueError, match="4 \\* hop_length"):
        CRCED(n_fft=256, hop_length=128)


def test_latency_perturbing_the_future_changes_no_past_output(model):
    x = torch.randn(1, 3000)
    t = 1500
    y = model(x)
    x2 = x.clone()
    x2[:, t + model.latency_samples :] += torch.randn(1, 3000 - t - model.latency_samples)
    y2 = model(x2)
    assert torch.equal(y[:, :t], y2[:, :t])  # same process, same arithmetic on the same frames
    assert not torch.allclose(y[:, t + model.latency_samples :], y2[:, t + model.latency_samples :])
    assert model.latency_samples == 255


@pytest.mark.parametrize("block", [1, 64, 333])
def test_streaming_equals_whole(model, block):
    x = torch.randn(2, 3, 2100)
    whole = model(x)
    streamer = DTLNStreamer(model)
    parts = [streamer.process(x[..., i : i + block]) for i in range(0, x.shape[-1], block)]
    stream = torch.cat([*parts, streamer.flush()], dim=-1)
    assert stream.shape == whole.shape
    torch.testing.assert_close(stream, whole, rtol=0, atol=STREAM_TOL)


def test_unit_mask_reconstructs_the_input():
    m = CRCED().eval()
    with torch.no_grad():
        m.out.weight.zero_()
        m.out.bias.fill_(40.0)  # sigmoid -> 1
    x = torch.randn(2, 4000)
    y = m(x)
    # square-root Hann analysis and synthesis at 75 % overlap: unit gain once frames overlap
    torch.testing.assert_close(y[:, 256:-256], x[:, 256:-256], rtol=0, atol=1e-5)
    est, noisy = m.enhanced_magnitude(x)
    torch.testing.assert_close(est, noisy)


def test_recipe_smoke_training(tmp_path):
    """The recipe config with tiny overrides: the loss decreases, a checkpoint is written."""
    import csv

    from clarity_se.cli import main as cli_main
    from clarity_se.models.checkpoint import load_model
    from tests.enhancer_helpers import make_scenes

    root = tmp_path / "cec2"
    make_scenes(root, "train", 4, 9001, seed=1)
    make_scenes(root, "dev", 2, 6001, seed=2)
    exp = tmp_path / "exp"
    args = ["train", "-c", "recipes/icassp_2023/crced/config.yaml", f"data.root={root}",
            f"data.dev_root={root}", f"train.exp_dir={exp}", "data.segment_s=0.3",
            "data.dev_segment_s=0.2", "data.cache=true", "data.max_dev_scenes=2",
            "train.batch_size=2", "optim.lr=0.01", "train.epochs=3", "train.steps_per_epoch=4"]
    assert cli_main(args) == 0
    rows = list(csv.DictReader(open(exp / "log.csv")))
    assert len(rows) == 3 and float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    model = load_model(exp / "last.pt")[0]
    assert isinstance(model, CRCED) and count_parameters(model) == 32_653
