"""CR-CED (Park & Lee 2017): layer table, latency, streaming, reconstruction."""

from __future__ import annotations

import pytest
import torch
from conftest import STREAM_TOL

from clarity_se.models import build_model
from clarity_se.models.crced import CRCED, CRCEDHearingAid, erb_band_matrix, fold_batch_norms
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
    args = ["train", "-c", "recipes/icassp_2023/crced/config_published.yaml", f"data.root={root}",
            f"data.dev_root={root}", f"train.exp_dir={exp}", "data.segment_s=0.3",
            "data.dev_segment_s=0.2", "data.cache=true", "data.max_dev_scenes=2",
            "train.batch_size=2", "optim.lr=0.01", "train.epochs=3", "train.steps_per_epoch=4"]
    assert cli_main(args) == 0
    with open(exp / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    model = load_model(exp / "last.pt")[0]
    assert isinstance(model, CRCED) and count_parameters(model) == 32_653


# ------------------------------------------------------------------ hearing-aid variant


@pytest.fixture(scope="module")
def ha_model():
    torch.manual_seed(0)
    m = CRCEDHearingAid(identity_init=False).eval()
    for bn in (mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm1d)):
        bn.running_mean.normal_(0, 0.1)
        bn.running_var.uniform_(0.5, 1.5)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.normal_(0, 0.1)
    return m


def test_ha_parameters_layers_and_compute(ha_model):
    assert count_parameters(ha_model) == 17_966
    assert count_parameters(fold_batch_norms(ha_model)) == 17_606
    convs = [m for m in ha_model.modules() if isinstance(m, torch.nn.Conv1d)]
    assert len(convs) == 16  # the paper's 16 layers
    macs = ha_model.macs_per_second()
    assert macs["total"] <= 0.3e9  # the budget per second of 44.1 kHz audio
    # the dense count of the network alone: weights x bands x frames per second
    weights = sum(c.weight.numel() for c in convs)
    assert macs["network"] == pytest.approx(weights * 32 * 44100 / 96)
    assert macs["total"] == pytest.approx(sum(v for k, v in macs.items() if k != "total"))
    # the paper's width would not fit: 18-30-8 filters on the same bands exceed the budget
    wide = CRCEDHearingAid(filters_outer=18, filters_mid=30, width_first=9)
    assert wide.macs_per_second()["total"] > 0.3e9


def test_erb_bands_are_a_partition_of_unity():
    w = erb_band_matrix(257, 32, 44100)
    torch.testing.assert_close(w.sum(0), torch.ones(257, dtype=torch.float64))
    assert (w.sum(1) > 0).all() and (w >= 0).all()
    peaks = w.argmax(1)
    assert (peaks.diff() > 0).all() and peaks[0] == 0 and peaks[-1] == 256
    with pytest.raises(ValueError, match="n_bands"):
        erb_band_matrix(257, 1, 44100)


def test_ha_latency_perturbing_the_future_changes_no_past_output(ha_model):
    assert ha_model.latency_samples == 191 <= 220  # 4.33 ms at 44.1 kHz
    x = torch.randn(1, 6, 6000)
    with torch.no_grad():
        y = ha_model(x)
        for t in (3000, 3001, 3071):  # a hop boundary (t = 31 R + 24 ...) and inside hops
            x2 = x.clone()
            x2[..., t + 191 + 1 :] += torch.randn(6, 6000 - t - 192)
            y2 = ha_model(x2)
            assert torch.equal(y[..., :t], y2[..., :t])
            assert not torch.allclose(y[..., t + 192 :], y2[..., t + 192 :])


@pytest.mark.parametrize("block", [1, 96, 333])
def test_ha_streaming_equals_whole(ha_model, block):
    x = torch.randn(2, 6, 2500)
    with torch.no_grad():
        whole = ha_model(x)
        streamer = DTLNStreamer(ha_model)
        parts = [streamer.process(x[..., i : i + block]) for i in range(0, x.shape[-1], block)]
        stream = torch.cat([*parts, streamer.flush()], dim=-1)
    assert stream.shape == whole.shape == (2, 2, 2500)
    torch.testing.assert_close(stream, whole, rtol=0, atol=STREAM_TOL)


def test_ha_context_carries_eight_frames(ha_model):
    """A change in frame k reaches the segments of frames k .. k + 7 and no later."""
    R = ha_model.hop_length
    x = torch.randn(1, 6, R * 60)
    x2 = x.clone()
    x2[..., 20 * R - 1] += 5.0  # the last sample of frame 19, inside frames 19 .. 19 + K // R
    with torch.no_grad():
        f1, f2 = ha_model.derived_frames(x), ha_model.derived_frames(x2)
        changed = [k for k in range(f1.shape[2]) if not torch.equal(f1[:, :, k], f2[:, :, k])]
        assert changed == list(range(19, 19 + 512 // R + 1))
        s1, _ = ha_model._process_frames(f1, None)
        s2, _ = ha_model._process_frames(f2, None)
    diff = [k for k in range(s1.shape[2]) if not torch.allclose(s1[:, :, k], s2[:, :, k])]
    assert diff == list(range(19, changed[-1] + 7 + 1))


def test_ha_shapes_and_errors(ha_model):
    with pytest.raises(ValueError, match="n_mics"):
        CRCEDHearingAid(n_mics=2)
    with pytest.raises(ValueError, match=r"\[batch, 6, time\]"):
        ha_model(torch.randn(1, 2, 100))
    assert ha_model(torch.randn(3, 6, 0)).shape == (3, 2, 0)


def test_ha_identity_init_is_near_the_front_microphones():
    m = CRCEDHearingAid().eval()
    x = torch.randn(1, 6, 8000)
    with torch.no_grad():
        y = m(x)
    ratio = (y[..., 500:] @ x[:, :2, 500:].transpose(-1, -2)).diagonal(dim1=-2, dim2=-1) / (
        x[:, :2, 500:].square().sum(-1)
    )
    assert torch.all((ratio > 0.9) & (ratio < 1.0))


@pytest.mark.parametrize("cls", [CRCED, CRCEDHearingAid])
def test_folded_batch_norms_equal_unfolded_in_eval_mode(cls, ha_model, model):
    m = ha_model if cls is CRCEDHearingAid else model
    folded = fold_batch_norms(m)
    assert not any(isinstance(x, torch.nn.BatchNorm1d) for x in folded.modules())
    assert any(isinstance(x, torch.nn.BatchNorm1d) for x in m.modules())  # original untouched
    x = torch.randn(1, 6, 4000) if cls is CRCEDHearingAid else torch.randn(2, 4000)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), m(x), rtol=0, atol=1e-5)
    bad = torch.nn.Sequential(torch.nn.BatchNorm1d(3))
    with pytest.raises(ValueError, match="follow a Conv1d"):
        fold_batch_norms(bad)


@pytest.mark.parametrize("cls", [CRCED, CRCEDHearingAid])
def test_onnx_export_matches_pytorch_frame_by_frame(cls, ha_model, model, tmp_path):
    import numpy as np

    from clarity_se.models.crced_onnx import OnnxCRCEDStreamer, export_onnx

    m = ha_model if cls is CRCEDHearingAid else model
    paths = export_onnx(m, tmp_path / "onnx")
    import onnx

    graph = onnx.load(str(paths["model"])).graph
    assert [i.name for i in graph.input] == ["mags", "context_in"]
    assert [o.name for o in graph.output] == ["mask", "context_out"]
    assert not any(n.op_type == "BatchNormalization" for n in graph.node)  # folded
    rng = np.random.default_rng(3)
    x = (0.1 * rng.standard_normal((6 if cls is CRCEDHearingAid else 2, 5001))).astype("float32")
    with torch.no_grad():
        ref = m(torch.from_numpy(x)[None])[0] if cls is CRCEDHearingAid else m(torch.from_numpy(x))
    runner = OnnxCRCEDStreamer(tmp_path / "onnx")
    hop = runner.R
    # blocks of 333 samples; then hop by hop, with odd blocks between that misalign the hops
    # (the hop-by-hop path and the general one) and pass the ring's wrap-around
    odd = [hop] * 40 + [hop // 2, hop + hop // 2] + [hop] * 3 + [1, 2 * hop - 1] + [hop] * 30
    for sizes in ([333], odd, [333]):  # after flush, a new signal starts from a fresh context
        edges = np.cumsum([0, *(sizes * (x.shape[1] // sum(sizes) + 1))])
        edges = [int(e) for e in edges[edges < x.shape[1]]] + [x.shape[1]]
        pieces = [runner.process(x[:, a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        assert all(p.shape[0] == ref.shape[0] for p in pieces)
        got = np.concatenate([*pieces, runner.flush()], axis=1)
        assert got.shape == tuple(ref.shape)
        np.testing.assert_allclose(got, ref.numpy(), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="no crced_onnx.json"):
        OnnxCRCEDStreamer(tmp_path)
    (tmp_path / "crced_onnx.json").write_text('{"model_name": "crced_ha"}')
    with pytest.raises(ValueError, match="crced_onnx.json: not an export record"):
        OnnxCRCEDStreamer(tmp_path)
    with pytest.raises(ValueError, match="CR-CED"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "x")


# ------------------------------------------------------------------ enhancer adapter


def _options(**kw):
    from omegaconf import OmegaConf

    from clarity_se.config import EnhancerConfig

    return OmegaConf.merge(OmegaConf.structured(EnhancerConfig), kw)


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory, ha_model):
    from clarity_se.models.checkpoint import save_checkpoint

    folder = tmp_path_factory.mktemp("crced_ckpt")
    torch.manual_seed(0)
    ha = save_checkpoint(folder / "ha.pt", ha_model)
    pub = save_checkpoint(folder / "pub.pt", build_model("crced", filters_mid=8, n_units=1))
    return str(ha), str(pub)


def test_enhancer_contract_both_variants(tiny_checkpoints):
    from clarity_se.enhancers import MAX_LATENCY_S, SAMPLE_RATE, build_enhancer
    from tests.enhancer_contract import check_latency, check_shapes, check_streaming

    ha = build_enhancer(_options(name="crced", checkpoint=tiny_checkpoints[0]))
    pub_ckpt = tiny_checkpoints[1]
    pub = build_enhancer(_options(name="crced", variant="published", checkpoint=pub_ckpt))
    assert ha.name == "crced" and ha.latency_samples == 191 <= MAX_LATENCY_S * SAMPLE_RATE
    assert ha.block_samples == 96 and pub.block_samples == 177  # 64 samples at 16 kHz
    # 255 samples at 16 kHz plus the two resamplers: 17.2 ms, over the 5 ms rule
    assert pub.latency_samples == 757
    for enh in (ha, pub):
        check_shapes(enh)
        check_latency(enh)
        check_streaming(enh)


def test_enhancer_rejects_wrong_variant_or_checkpoint(tiny_checkpoints):
    from clarity_se.enhancers import build_enhancer, enhancer_names

    assert "crced" in enhancer_names()
    with pytest.raises(ValueError, match="enhancer.variant"):
        build_enhancer(_options(name="crced", variant="tiny"))
    with pytest.raises(ValueError, match="needs a 'crced_ha'"):
        build_enhancer(_options(name="crced", checkpoint=tiny_checkpoints[1]))
    with pytest.raises(ValueError, match="needs a 'crced'"):
        build_enhancer(_options(name="crced", variant="published", checkpoint=tiny_checkpoints[0]))
    with pytest.raises(ValueError, match="no packaged checkpoint 'crced_published'"):
        build_enhancer(_options(name="crced", variant="published"))


def test_export_command(tiny_checkpoints, tmp_path):
    from clarity_se.models import crced_onnx

    assert crced_onnx.main([tiny_checkpoints[0], str(tmp_path / "onnx")]) == 0
    assert (tmp_path / "onnx" / "crced.onnx").is_file()
    assert crced_onnx.main([str(tmp_path / "missing.pt"), str(tmp_path / "x")]) == 2


def test_packaged_checkpoint():
    from clarity_se.enhancers import MAX_LATENCY_S, SAMPLE_RATE, build_enhancer
    from clarity_se.enhancers.checkpoints import packaged_checkpoint
    from clarity_se.models.checkpoint import read_checkpoint

    path = packaged_checkpoint("crced")
    assert path.stat().st_size < 1_000_000
    payload = read_checkpoint(path)
    assert payload["model_name"] == "crced_ha"
    enh = build_enhancer(_options(name="crced"))
    assert enh.latency_samples == 191 <= MAX_LATENCY_S * SAMPLE_RATE
    assert enh.model.macs_per_second()["total"] <= 0.3e9
    assert not enh.model.training and count_parameters(enh.model) == 17_966


def test_ha_frame_norm_makes_the_output_level_independent():
    torch.manual_seed(1)
    m = CRCEDHearingAid(identity_init=False).eval()
    x = 0.01 * torch.randn(1, 6, 4000, dtype=torch.float64)
    m = m.double()
    with torch.no_grad():
        y, y_loud = m(x), m(100.0 * x) / 100.0
        torch.testing.assert_close(y_loud, y, rtol=1e-6, atol=1e-9)
        m.frame_norm = False  # absolute log powers: the masks depend on the level
        assert not torch.allclose(m(100.0 * x) / 100.0, m(x), rtol=1e-3, atol=1e-6)


def test_dense_conv1d_equals_the_convolution_and_replaces_the_output_layer(ha_model, tmp_path):
    import onnx

    from clarity_se.models.crced_onnx import DenseConv1d, export_onnx

    torch.manual_seed(0)
    for conv, n in [(torch.nn.Conv1d(8, 2, 63, padding=31), 32),
                    (torch.nn.Conv1d(3, 4, 5, padding=2), 11),
                    (torch.nn.Conv1d(2, 1, 129, padding=64, bias=False), 129)]:  # fmt: skip
        x = torch.randn(3, conv.in_channels, n)
        with torch.no_grad():
            torch.testing.assert_close(DenseConv1d(conv, n)(x), conv(x), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="length-keeping"):
        DenseConv1d(torch.nn.Conv1d(2, 2, 5), 32)  # no padding: shortens
    with pytest.raises(ValueError, match="length-keeping"):
        DenseConv1d(torch.nn.Conv1d(2, 2, 3, padding=1, stride=2), 32)
    graph = onnx.load(str(export_onnx(ha_model, tmp_path)["model"])).graph
    assert sum(n.op_type == "Conv" for n in graph.node) == 15  # 16 layers, the last dense


def test_raising_the_mask_floor_mixes_in_the_front_microphones(ha_model, tmp_path):
    """``set_model_args(mask_floor=f')`` keeps the weights; its output is the old one mixed
    with the all-pass output (mask 1, the front microphones through the STFT) by
    ``a = (f' - f) / (1 - f)``, as documented."""
    from clarity_se.models.checkpoint import load_model, save_checkpoint, set_model_args

    src = save_checkpoint(tmp_path / "src.pt", ha_model)
    floor = ha_model.mask_floor
    outs = {}
    for new in (0.4, 1.0):
        path = set_model_args(src, tmp_path / f"f{new}.pt", mask_floor=new)
        model, payload = load_model(path)
        assert payload["training"]["model_args_set"] == {"mask_floor": [floor, new]}
        outs[new] = model
    x = torch.randn(1, 6, 4000, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        old, raised, allpass = ha_model.eval()(x), outs[0.4](x), outs[1.0](x)
    a = (0.4 - floor) / (1.0 - floor)
    assert not torch.allclose(raised, old, atol=1e-4)
    assert torch.allclose(raised, (1 - a) * old + a * allpass, atol=1e-5)


def test_set_model_args_errors_and_command(ha_model, tmp_path):
    from clarity_se.cli import main as cli_main
    from clarity_se.models.checkpoint import read_checkpoint, save_checkpoint, set_model_args

    src = save_checkpoint(tmp_path / "src.pt", ha_model)
    with pytest.raises(ValueError, match="no argument"):
        set_model_args(src, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="has no \\['mask_floors'\\]"):
        set_model_args(src, tmp_path / "x.pt", mask_floors=0.4)
    with pytest.raises(ValueError, match="src.pt: the weights do not fit"):
        set_model_args(src, tmp_path / "x.pt", n_bands=16)
    assert not (tmp_path / "x.pt").exists()
    out = tmp_path / "cli.pt"
    assert cli_main(["set-args", str(src), str(out), "mask_floor=0.25"]) == 0
    assert read_checkpoint(out)["model_args"]["mask_floor"] == 0.25
    assert cli_main(["set-args", str(src), str(out), "mask_floor"]) == 2
    assert cli_main(["set-args", str(tmp_path / "none.pt"), str(out), "mask_floor=0.2"]) == 2


def test_output_gain_scales_the_output_in_pytorch_and_onnx(ha_model, tmp_path):
    """``output_gain_db`` (set after training with ``set_model_args``) multiplies the output by
    ``10^(gain / 20)``, in the PyTorch model and in its ONNX export (parity within 1e-4)."""
    import numpy as np

    from clarity_se.models.checkpoint import load_model, save_checkpoint, set_model_args
    from clarity_se.models.crced_onnx import OnnxCRCEDStreamer, export_onnx

    src = save_checkpoint(tmp_path / "src.pt", ha_model)
    payload = torch.load(src, weights_only=False)  # as written before the argument existed
    del payload["model_args"]["output_gain_db"]
    torch.save(payload, src)
    louder, payload = load_model(set_model_args(src, tmp_path / "g.pt", output_gain_db=3.0))
    assert payload["model_args"]["output_gain_db"] == 3.0
    assert payload["training"]["model_args_set"] == {"output_gain_db": [None, 3.0]}
    x = torch.randn(1, 6, 4000, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref, got = ha_model.eval()(x), louder(x)
    assert ref.abs().max() > 1e-3
    torch.testing.assert_close(got, 10 ** (3.0 / 20) * ref, rtol=1e-5, atol=1e-6)
    export_onnx(louder, tmp_path / "onnx")
    runner = OnnxCRCEDStreamer(tmp_path / "onnx")
    out = np.concatenate([runner.process(x[0, :, :2000].numpy()),
                          runner.process(x[0, :, 2000:].numpy()), runner.flush()], axis=1)
    np.testing.assert_allclose(out, got[0].numpy(), rtol=0, atol=1e-4)
