"""DTLN: parameter count, latency, streaming, ONNX parity, the enhancer adapter, training."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from clarity_se.cli import main as cli_main
from clarity_se.config import EnhancerConfig
from clarity_se.data.scene_segments import SceneSegmentDataset
from clarity_se.data.views import FrontEarsView
from clarity_se.enhancers import MAX_LATENCY_S, SAMPLE_RATE, build_enhancer
from clarity_se.enhancers.checkpoints import packaged_checkpoint
from clarity_se.models import build_model
from clarity_se.models.checkpoint import load_model, read_checkpoint, save_checkpoint
from clarity_se.models.dtln import DTLN, DTLNHearingAid, count_parameters
from clarity_se.models.dtln_onnx import OnnxDTLNStreamer, export_onnx
from clarity_se.training.config import load_train_config
from tests.enhancer_contract import check_latency, check_shapes, check_streaming, random_mixture
from tests.enhancer_helpers import make_scenes

TINY = dict(units=16, encoder_size=16)
MIRROR = [1, 0, 3, 2, 5, 4]


def _seeded(cls, **kw):
    torch.manual_seed(0)
    if cls is DTLNHearingAid and kw.get("encoder_size", 256) < 192:
        kw["identity_init"] = False  # a tiny encoder cannot hold the 192-sample segment
    return cls(**kw).eval()


def _options(**kw):
    return OmegaConf.merge(OmegaConf.structured(EnhancerConfig), kw)


def test_parameter_counts_follow_the_reference_layer_shapes():
    published = DTLN()
    assert count_parameters(published) == 988_801
    # the reference (Keras) keeps one bias vector per LSTM layer: 4 layers x 4 x 128 fewer
    assert count_parameters(published) - 4 * 4 * 128 == 986_753
    assert count_parameters(DTLN(norm_input=True)) == 988_801 + 2 * 257
    assert count_parameters(DTLNHearingAid()) == 1_171_591
    assert 4 * count_parameters(DTLNHearingAid()) < 5_000_000  # float32 checkpoint <= 5 MB


def test_latency_values():
    assert DTLN().latency_samples == 511 and DTLN().latency_s == pytest.approx(511 / 16000)
    ha = DTLNHearingAid()
    assert ha.latency_samples == 191 <= MAX_LATENCY_S * SAMPLE_RATE
    assert ha.latency_s * 1000 == pytest.approx(4.331, abs=1e-3)


@pytest.mark.parametrize("cls,shape", [(DTLN, (1, 4000)), (DTLNHearingAid, (1, 6, 5000))])
def test_model_latency_perturb_the_future(cls, shape):
    model = _seeded(cls, **TINY)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1)) * 0.1
    lat, hop = model.latency_samples, model.hop_length
    with torch.no_grad():
        base = model(x)
        for cut in (2000, 2001, 2000 + hop // 2):
            y = x.clone()
            y[..., cut + lat + 1 :] += 0.3
            assert torch.equal(model(y)[..., : cut + 1], base[..., : cut + 1])
        # tight: the published model's output t = bR reads input t + 511; the hearing-aid
        # model's synthesis window is 0 at a segment's first sample, so there t = bR + 1 reads
        # input t + 190 (the stated 191 is the structural bound)
        t = 16 * hop + (1 if cls is DTLNHearingAid else 0)
        reach = lat - 1 if cls is DTLNHearingAid else lat
        y = x.clone()
        y[..., t + reach] += 0.3
        assert not torch.equal(model(y)[..., t], base[..., t])


def test_identity_init_starts_as_the_front_microphones():
    model = _seeded(DTLNHearingAid)
    mix = torch.randn(1, 6, 8000, generator=torch.Generator().manual_seed(5)) * 0.1
    with torch.no_grad():
        out = model(mix)
    from clarity_se.losses import si_sdr

    assert float(si_sdr(out, mix[:, :2]).min()) > 30.0
    assert float(out.std() / mix[:, :2].std()) == pytest.approx(1.0, abs=0.05)
    with pytest.raises(ValueError, match="identity_init"):
        DTLNHearingAid(encoder_size=64)


def test_shapes_batch_and_mirror_invariance():
    published = _seeded(DTLN, **TINY)
    x = torch.randn(3, 2, 3001) * 0.1
    with torch.no_grad():
        out = published(x)
        assert out.shape == x.shape
        torch.testing.assert_close(published(x[1, 0][None])[0], out[1, 0], rtol=0, atol=1e-6)
    ha = _seeded(DTLNHearingAid, **TINY)
    mix = torch.randn(2, 6, 3001) * 0.1
    with torch.no_grad():
        out = ha(mix)
        assert out.shape == (2, 2, 3001)
        torch.testing.assert_close(ha(mix[1:])[0], out[1], rtol=0, atol=1e-6)
        # one set of weights for both ears: mirrored microphones give mirrored ears
        torch.testing.assert_close(ha(mix[:, MIRROR])[:, [1, 0]], out, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r"\[batch, 6, time\]"):
        ha(torch.zeros(1, 4, 100))
    with pytest.raises(ValueError, match="x: expected"):
        published(torch.zeros(100))
    with pytest.raises(ValueError, match="block_len"):
        DTLN(block_len=500, block_shift=128)


@pytest.mark.parametrize("cls,shape", [(DTLN, (2, 2, 7001)), (DTLNHearingAid, (1, 6, 7001))])
def test_streaming_equals_whole(cls, shape):
    model = _seeded(cls, **TINY)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2)) * 0.1
    with torch.no_grad():
        for block, n_time in ((1, 1501), (100, 7001), (128, 7001), (3000, 7001)):
            signal = x[..., :n_time]
            whole = model(signal)
            stream = model.streamer()
            pieces = [stream.process(signal[..., i : i + block]) for i in range(0, n_time, block)]
            pieces.append(stream.flush())
            got = torch.cat(pieces, dim=-1)
            assert got.shape == whole.shape
            torch.testing.assert_close(got, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("cls,n_in", [(DTLN, 2), (DTLNHearingAid, 6)])
def test_onnx_two_submodels_match_pytorch(cls, n_in, tmp_path):
    model = _seeded(cls, **TINY)
    paths = export_onnx(model, tmp_path / cls.__name__)
    assert paths["model_1"].is_file() and paths["model_2"].is_file()
    import onnx

    graph = onnx.load(str(paths["model_1"])).graph
    assert [i.name for i in graph.input] == ["mags", "states_in"]
    assert [o.name for o in graph.output] == ["mask", "states_out"]
    x = random_mixture(6001, seed=3)[:n_in]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)[None])[0] if n_in == 6 else model(torch.from_numpy(x))
    runner = OnnxDTLNStreamer(tmp_path / cls.__name__)
    pieces = [runner.process(x[:, i : i + 333]) for i in range(0, 6001, 333)]
    pieces.append(runner.flush())
    got = np.concatenate(pieces, axis=1)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref.numpy(), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="no dtln_onnx.json"):
        OnnxDTLNStreamer(tmp_path)


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dtln_ckpt")
    torch.manual_seed(0)
    ha = save_checkpoint(folder / "ha.pt", build_model("dtln_ha", identity_init=False, **TINY))
    pub = save_checkpoint(folder / "pub.pt", build_model("dtln", **TINY))
    return str(ha), str(pub)


def test_output_gain_scales_the_output_in_pytorch_and_onnx(tiny_checkpoints, tmp_path):
    """``output_gain_db`` of the hearing-aid form (set after training with ``set_model_args``,
    also on a checkpoint written before the argument existed) multiplies the output by
    ``10^(gain / 20)`` in the PyTorch model and in its ONNX export (parity within 1e-4)."""
    from clarity_se.models.checkpoint import set_model_args

    src = tmp_path / "old.pt"
    payload = torch.load(tiny_checkpoints[0], weights_only=False)
    del payload["model_args"]["output_gain_db"]
    torch.save(payload, src)
    base, _ = load_model(src)
    softer, payload = load_model(set_model_args(src, tmp_path / "g.pt", output_gain_db=-6.0))
    assert payload["model_args"]["output_gain_db"] == -6.0
    assert payload["training"]["model_args_set"] == {"output_gain_db": [None, -6.0]}
    x = random_mixture(6001, seed=4)
    with torch.no_grad():
        ref = base.eval()(torch.from_numpy(x)[None])[0]
        got = softer.eval()(torch.from_numpy(x)[None])[0]
    assert ref.abs().max() > 1e-4
    torch.testing.assert_close(got, 10 ** (-6.0 / 20) * ref, rtol=1e-5, atol=1e-7)
    export_onnx(softer, tmp_path / "onnx")
    runner = OnnxDTLNStreamer(tmp_path / "onnx")
    out = np.concatenate(
        [runner.process(x[:, :3000]), runner.process(x[:, 3000:]), runner.flush()], axis=1
    )
    np.testing.assert_allclose(out, got.numpy(), rtol=0, atol=1e-4)


def test_mask_floor_bounds_both_masks_in_pytorch_and_onnx(tiny_checkpoints, tmp_path):
    """``mask_floor`` of the hearing-aid form (set after training) bounds both cores' masks from
    below, changes the output, keeps streaming == whole, and is in the ONNX export (1e-4)."""
    from clarity_se.models.checkpoint import set_model_args

    base, _ = load_model(tiny_checkpoints[0])
    floored, payload = load_model(
        set_model_args(tiny_checkpoints[0], tmp_path / "f.pt", mask_floor=0.6)
    )
    assert payload["model_args"]["mask_floor"] == 0.6
    base.eval(), floored.eval()
    mags = torch.rand(2, 7, 3 * floored.n_bins) * 3.0
    with torch.no_grad():
        m1, _ = floored.core1_mask(mags)
        m1_base, _ = base.core1_mask(mags)
    assert m1.min() >= 0.6 and m1_base.min() < 0.6
    torch.testing.assert_close(m1, 0.6 + 0.4 * m1_base)
    x = random_mixture(6001, seed=6)
    with torch.no_grad():
        ref = base(torch.from_numpy(x)[None])[0]
        got = floored(torch.from_numpy(x)[None])[0]
    assert (got - ref).abs().max() > 1e-4
    with torch.no_grad():
        stream = floored.streamer()
        pieces = [
            stream.process(torch.from_numpy(x[None, :, i : i + 97])) for i in range(0, 6001, 97)
        ]
        pieces.append(stream.flush())
    torch.testing.assert_close(torch.cat(pieces, dim=-1)[0], got, rtol=0, atol=1e-5)
    export_onnx(floored, tmp_path / "onnx")
    runner = OnnxDTLNStreamer(tmp_path / "onnx")
    out = np.concatenate(
        [runner.process(x[:, :3000]), runner.process(x[:, 3000:]), runner.flush()], axis=1
    )
    np.testing.assert_allclose(out, got.numpy(), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="mask_floor"):
        DTLNHearingAid(mask_floor=1.0)


def test_checkpoint_round_trip_odd_length(tiny_checkpoints):
    model, payload = load_model(tiny_checkpoints[0])
    assert payload["model_name"] == "dtln_ha" and payload["sample_rate"] == 44100
    fresh = _seeded(DTLNHearingAid, **TINY)
    x = torch.randn(1, 6, 777)
    with torch.no_grad():
        torch.testing.assert_close(model(x), fresh(x), rtol=0, atol=0)
    assert read_checkpoint(tiny_checkpoints[1])["channel_layout"] == ["mono"]


def test_enhancer_contract_both_variants(tiny_checkpoints):
    ha_ckpt, pub_ckpt = tiny_checkpoints
    ha = build_enhancer(_options(name="dtln", checkpoint=ha_ckpt))
    published = build_enhancer(_options(name="dtln", variant="published", checkpoint=pub_ckpt))
    assert ha.latency_samples == 191 <= MAX_LATENCY_S * SAMPLE_RATE
    assert published.latency_samples == 1463  # resamplers 2 x 0.625 ms + 511 samples at 16 kHz
    for enh in (ha, published):
        check_shapes(enh)
        check_latency(enh)
        check_streaming(enh)


def _snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / np.sum((got - ref) ** 2)))


def test_int8_export_of_the_shipped_model(tmp_path):
    """``export_onnx(int8=True)`` on the shipped hearing-aid checkpoint: both sub-models' LSTM
    and dense products run on 8-bit weights (onnxruntime's dynamic quantisation operators),
    the files take under 40 % of the float export's bytes, the record says ``int8``, and the
    output differs from the PyTorch model's by the quantisation error only: at least 20 dB
    below it (27.7 dB on ``bench_enhancer.py``'s input, field ``snr_db_vs_float``), while the
    float export matches within 1e-4 (the parity test above)."""
    import json

    import onnx

    model, _ = load_model(packaged_checkpoint("dtln"))
    model.eval()
    f32 = export_onnx(model, tmp_path / "f32")
    i8 = export_onnx(model, tmp_path / "i8", int8=True)
    for name in ("model_1", "model_2"):
        ops = {n.op_type for n in onnx.load(str(i8[name])).graph.node}
        assert {"DynamicQuantizeLSTM", "MatMulInteger"} <= ops, ops
        assert i8[name].stat().st_size < 0.4 * f32[name].stat().st_size
    assert json.loads(i8["meta"].read_text())["weights"] == "int8"
    assert "weights" not in json.loads(f32["meta"].read_text())
    x = 0.1 * random_mixture(8000, seed=7)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)[None])[0].numpy()
    runner = OnnxDTLNStreamer(tmp_path / "i8")
    got = np.concatenate([runner.process(x), runner.flush()], axis=1)
    assert got.shape == ref.shape
    assert 20.0 < _snr_db(ref, got) < 80.0  # quantised: close, and not the float graph


def test_enhancer_onnx_runtimes(tiny_checkpoints):
    """``enhancer.runtime=onnxruntime`` gives the PyTorch enhancer's output (1e-4, beamformer
    included); ``onnxruntime_int8`` keeps the enhancer contract (shapes, latency, streaming)
    within 20 dB of it; bad runtimes and other enhancers are refused by name."""
    ha_ckpt, pub_ckpt = tiny_checkpoints
    x = random_mixture(6001, seed=5)
    for variant, ckpt in (("", ha_ckpt), ("published", pub_ckpt)):
        ref = build_enhancer(_options(name="dtln", variant=variant, checkpoint=ckpt))(x)
        ort = build_enhancer(_options(name="dtln", variant=variant, checkpoint=ckpt,
                                      runtime="onnxruntime"))  # fmt: skip
        np.testing.assert_allclose(ort(x), ref, rtol=0, atol=1e-4, err_msg=variant)
        i8 = build_enhancer(_options(name="dtln", variant=variant, checkpoint=ckpt,
                                     runtime="onnxruntime_int8"))  # fmt: skip
        assert _snr_db(ref, i8(x)) > 20.0, variant
        check_shapes(i8)
        check_latency(i8)
        check_streaming(i8)
    with pytest.raises(ValueError, match="enhancer.runtime"):
        build_enhancer(_options(name="dtln", checkpoint=ha_ckpt, runtime="tflite"))
    with pytest.raises(ValueError, match="enhancer.runtime=onnxruntime: only"):
        build_enhancer(_options(name="convtasnet", runtime="onnxruntime"))


def test_published_latency_is_tight(tiny_checkpoints):
    enh = build_enhancer(_options(name="dtln", variant="published", checkpoint=tiny_checkpoints[1]))
    t = np.arange(2000, 2000 + 441 * 128)  # one period of the resampler -> DTLN chain
    reach = enh.down.last_input(enh.model.last_input(enh.up.last_input(t))) - t
    worst = int(t[np.argmax(reach)])
    assert reach.max() == enh.latency_samples
    x = random_mixture(worst + enh.latency_samples + 1000, seed=4)
    y = x.copy()
    # the path runs through the end taps of both resampling filters (~1e-3 each): a large
    # step makes the (real) dependency visible in float32
    y[:, worst + enh.latency_samples] += 1000.0
    assert not np.array_equal(enh(x)[:, worst], enh(y)[:, worst])


def test_enhancer_rejects_wrong_variant_or_checkpoint(tiny_checkpoints):
    ha_ckpt, pub_ckpt = tiny_checkpoints
    with pytest.raises(ValueError, match="enhancer.variant"):
        build_enhancer(_options(name="dtln", variant="tiny"))
    with pytest.raises(ValueError, match="needs a 'dtln_ha'"):
        build_enhancer(_options(name="dtln", checkpoint=pub_ckpt))
    with pytest.raises(ValueError, match="needs a 'dtln'"):
        build_enhancer(_options(name="dtln", variant="published", checkpoint=ha_ckpt))


def test_packaged_checkpoints():
    for name, model_name in (("dtln", "dtln_ha"), ("dtln_published", "dtln")):
        path = packaged_checkpoint(name)
        assert path.stat().st_size <= 5_000_000, name
        assert read_checkpoint(path)["model_name"] == model_name
    enh = build_enhancer(_options(name="dtln"))
    assert 0 < enh.latency_samples <= MAX_LATENCY_S * SAMPLE_RATE


@pytest.fixture(scope="module")
def scenes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cec2")
    make_scenes(root, "train", 4, 9001, seed=1)
    make_scenes(root, "dev", 2, 6001, seed=2)
    return root


def test_front_ears_view_resamples_the_front_pair(scenes_root):
    base = SceneSegmentDataset(scenes_root, "train", segment_s=0.1, seed=0)
    view = FrontEarsView(base, 16000)
    item, raw = view[1], base[1]
    assert item["mixture"].shape == (2, 1600) and item["sources"].shape == (1, 2, 1600)
    from clarity_se.dsp.polyphase import PolyphaseResampler

    expected = PolyphaseResampler(44100, 16000)(raw["mixture"][:2].numpy())
    np.testing.assert_allclose(item["mixture"].numpy(), expected, rtol=0, atol=1e-7)
    assert view.manifest()["sample_rate"] == 16000 and len(view) == 4


def _train_overrides(root, exp, *extra):
    return [f"data.root={root}", f"data.dev_root={root}", f"train.exp_dir={exp}",
            "data.segment_s=0.2", "data.dev_segment_s=0.1", "data.cache=true",
            "data.max_dev_scenes=2", "train.batch_size=2", "train.num_threads=1",
            "train.export=", "model.units=8", "model.encoder_size=8", "optim.lr=0.01",
            "model.dropout=0.0", "train.epochs=3", "train.steps_per_epoch=4", *extra]  # fmt: skip


@pytest.mark.parametrize("recipe,name", [("config.yaml", "dtln_ha"),
                                         ("config_published.yaml", "dtln")])  # fmt: skip
def test_recipe_smoke_training(scenes_root, tmp_path, recipe, name):
    """The recipe configs with tiny overrides: the loss decreases, a checkpoint is written."""
    exp = tmp_path / name
    extra = ["model.identity_init=false"] if name == "dtln_ha" else []
    config = f"recipes/icassp_2023/dtln/{recipe}"
    assert cli_main(["train", "-c", config, *_train_overrides(scenes_root, exp, *extra)]) == 0
    with open(exp / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    payload = read_checkpoint(exp / "last.pt")
    assert payload["model_name"] == name and payload["model_args"]["units"] == 8
    assert payload["training"]["config"]["data"]["view"] == (
        "six_mics" if name == "dtln_ha" else "front_ears"
    )


def test_train_config_schema_follows_the_model(tmp_path):
    cfg = load_train_config(None, ["data.root=/x", "model.name=dtln", "model.block_shift=64"])
    assert cfg.model.block_shift == 64 and cfg.model.sample_rate == 16000
    with pytest.raises(ValueError, match="n_filters"):
        load_train_config(None, ["data.root=/x", "model.name=dtln", "model.n_filters=3"])
    with pytest.raises(ValueError, match="train.loss"):
        load_train_config(None, ["data.root=/x", "train.loss=l1"])
    with pytest.raises(ValueError, match="data.view"):
        load_train_config(None, ["data.root=/x", "data.view=all"])
    for recipe, name, loss in (("config.yaml", "dtln_ha", "si_sdr"),
                               ("config_published.yaml", "dtln", "neg_snr")):  # fmt: skip
        cfg = load_train_config(f"recipes/icassp_2023/dtln/{recipe}", [])
        assert (cfg.model.name, cfg.train.loss) == (name, loss)


def test_export_command(tiny_checkpoints, tmp_path):
    from clarity_se.models import dtln_onnx

    assert dtln_onnx.main([tiny_checkpoints[0], str(tmp_path / "onnx")]) == 0
    assert (tmp_path / "onnx" / "model_2.onnx").is_file()
    assert dtln_onnx.main([str(tmp_path / "missing.pt"), str(tmp_path / "x")]) == 2


@pytest.mark.parametrize("variant", ["", "published"])
def test_enhance_stage_runs_both_variants(tiny_checkpoints, tmp_path, variant):
    from enhancer_helpers import make_scenes_listeners

    from clarity_se.data.audio_io import read_audio
    from clarity_se.data.cec2 import CEC2Dataset

    root = tmp_path / "data"
    scenes = make_scenes(root, "dev", 1, 4411, seed=5)
    make_scenes_listeners(root, "dev", scenes, ["L0001"])
    ckpt = tiny_checkpoints[1 if variant else 0]
    exp = tmp_path / "exp"
    args = ["enhance", f"path.root={root}", f"path.exp_folder={exp}", "enhancer.name=dtln",
            f"enhancer.variant={variant}", f"enhancer.checkpoint={ckpt}"]  # fmt: skip
    assert cli_main(args) == 0
    got, rate = read_audio(exp / "enhanced_signals" / f"{scenes[0]}_L0001_enhanced.wav")
    enh = build_enhancer(_options(name="dtln", variant=variant, checkpoint=ckpt))
    expected = enh(CEC2Dataset(root, "dev").load_mixture(scenes[0]).numpy())
    assert rate == 44100 and got.shape == (4411, 2)
    np.testing.assert_allclose(got.T, expected, rtol=0, atol=1e-6)
