"""``deep_adaptive``: the Deep Adaptive AEC model, echo canceller, trainer and checkpoint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from clarity_se.aec import aec_names, build_aec
from clarity_se.aec.config import load_aec_config
from clarity_se.aec.deep_adaptive import DeepAdaptive, load, packaged_checkpoint
from clarity_se.data.render.echo import EchoRenderOptions, EchoSceneRenderer, build_aec_dataset
from clarity_se.models.deep_adaptive import (
    DeepAdaptiveAEC,
    kalman_step,
    load_deep_adaptive,
    save_deep_adaptive,
)
from clarity_se.training.aec_train import (
    SegmentSampler,
    compressed_spectral_loss,
    nearend_frame_weight,
    train_deep_adaptive,
)
from tests._aec_tree import make_data_root
from tests.aec_contract import check_latency, check_shapes, check_streaming, echo_clip

FS = 16000


def _erle(mic, out):
    return 10 * np.log10(np.sum(np.asarray(mic, float) ** 2) / np.sum(np.asarray(out, float) ** 2))


def _random_model(seed=0, **kwargs):
    torch.manual_seed(seed)
    return DeepAdaptiveAEC(**kwargs)


@pytest.mark.parametrize("post_filter", [True, False])
def test_contract_untrained(post_filter):
    aec = DeepAdaptive(_random_model(), post_filter=post_filter)
    check_shapes(aec)
    check_latency(aec)
    check_streaming(aec)


def test_contract_packaged_and_registry():
    assert "deep_adaptive" in aec_names()
    aec = build_aec(OmegaConf.create({"name": "deep_adaptive", "checkpoint": ""}))
    assert aec.name == "deep_adaptive" and aec.checkpoint_path == packaged_checkpoint()
    assert packaged_checkpoint().stat().st_size <= 10 * 2**20
    check_latency(aec)
    check_streaming(aec, blocks=(1, 441, 4096))


def test_latency_is_derived_from_the_frame():
    assert DeepAdaptive(_random_model()).latency_samples == 319  # n_fft - 1: 19.9 ms
    small = DeepAdaptive(_random_model(n_fft=128, hop=64, hidden=16))
    assert small.latency_samples == 127
    check_latency(small)
    with pytest.raises(ValueError, match="hop = n_fft // 2"):
        DeepAdaptiveAEC(n_fft=320, hop=100)


def test_stft_reconstructs():
    model = _random_model(hidden=8).double()
    x = torch.randn(2, 160 * 11, dtype=torch.float64)
    y = model.istft(model.stft(x))
    torch.testing.assert_close(y[:, 160:-160], x[:, 160:-160], atol=1e-12, rtol=0)


def test_adaptive_layer_cancels_a_linear_echo_untrained():
    # untrained: mu ~ 0.3, reference gain 1 -> a plain per-bin NLMS; the error output alone
    mic, far = echo_clip(3 * FS, seed=3)
    out = DeepAdaptive(_random_model(), post_filter=False)(mic, far)
    assert _erle(mic[-FS:], out.output[-FS:]) > 12.0
    assert _erle(mic[:4000], out.output[:4000]) < _erle(mic[-FS:], out.output[-FS:]) - 6.0
    # the echo estimate is the microphone minus the error
    np.testing.assert_allclose(out.echo_estimate + out.output, mic, atol=1e-5)


def test_cross_band_taps_cancel_what_a_per_bin_filter_cannot():
    # a path of a few ms after a delay of half a hop: energy leaks between neighbouring bins
    mic, far = echo_clip(6 * FS, seed=3, delay=80)
    erle = {}
    for bands in (0, 1):
        model = _random_model(cross_bands=bands)
        assert model.n_regressors == (2 * bands + 1) * 10
        out = DeepAdaptive(model, post_filter=False)(mic, far).output
        erle[bands] = _erle(mic[-2 * FS:], out[-2 * FS:])
    assert erle[1] > erle[0] + 4.0  # measured: 15.7 and 25.4 dB
    assert "cross_bands" not in _random_model().hparams  # old checkpoints' arguments
    with pytest.raises(ValueError, match="cross_bands"):
        DeepAdaptiveAEC(cross_bands=80)


def _frozen_nlms_model():
    """A random model whose network never steps its NLMS (mu ~ 0) on the far end itself."""
    model = _random_model()
    with torch.no_grad():
        model.mu_head.weight.zero_()
        model.mu_head.bias.fill_(-30.0)
        model.ref_head.weight.zero_()
        model.ref_head.bias.zero_()
    return model


def test_kalman_selection_takes_over_where_the_nlms_does_not_adapt():
    # the NLMS error stays the microphone; the Kalman filter beside it cancels the echo, and
    # per bin its lower error goes on (measured: 0.0 dB off, 16.2 dB on)
    mic, far = echo_clip(3 * FS, seed=3)
    model = _frozen_nlms_model()
    off = DeepAdaptive(model, post_filter=False, kalman_selection=0.0)(mic, far).output
    on = DeepAdaptive(model, post_filter=False)(mic, far)
    assert abs(_erle(mic[-FS:], off[-FS:])) < 0.5
    assert _erle(mic[-FS:], on.output[-FS:]) > 12.0
    # the echo estimate is that of the filter whose error was chosen
    np.testing.assert_allclose(on.echo_estimate + on.output, mic, atol=1e-5)
    # after a minute of digital far-end silence the Kalman filter still adapts (its variance
    # is held while the far end is silent; measured 16.2 dB, and 0.0 dB without the hold)
    silence = np.zeros(60 * FS, np.float32)
    late = DeepAdaptive(model, post_filter=False)(np.concatenate([silence, mic]),
                                                  np.concatenate([silence, far])).output
    assert _erle(mic[-FS:], late[-FS:]) > 12.0


def test_kalman_step_identifies_a_filter_and_holds_in_silence():
    # y = h x + small noise, per bin with P regressors: the diagonal Kalman filter converges to h
    g = torch.Generator().manual_seed(0)
    shape = (1, 5, 3)
    def cplx():
        return torch.complex(torch.randn(shape, generator=g, dtype=torch.float64),
                             torch.randn(shape, generator=g, dtype=torch.float64))

    h = cplx()
    w = torch.zeros_like(h)
    p = torch.ones(shape, dtype=torch.float64)
    noise = torch.full(shape[:2], 1e-6, dtype=torch.float64)
    for _ in range(400):  # a = 1: no process noise (measured error 1.5e-6)
        x = cplx()
        e = (h * x).sum(-1) - (w * x).sum(-1)
        w, p = kalman_step(w, p, noise, x, e, 1.0)
    assert float((w - h).abs().max()) < 1e-4
    # digital silence: filter and variance held exactly
    w2, p2 = kalman_step(w, p, noise, torch.zeros_like(h), torch.zeros(shape[:2],
                         dtype=h.dtype), 0.999)
    assert torch.equal(w2, w) and torch.equal(p2, p)


def test_kalman_selection_is_an_inference_option(tmp_path):
    model = _random_model(hidden=8)
    assert model.kalman_selection == 0.0 and "kalman_selection" not in model.hparams
    assert "kw" not in model.initial_state(1)
    aec = DeepAdaptive(model)  # the canceller's default: on, on its own copy
    assert aec.model.kalman_selection == 0.999 and model.kalman_selection == 0.0
    assert {"kw", "kp", "kr", "sn", "sk"} <= set(aec.model.initial_state(1))
    save_deep_adaptive(tmp_path / "m.pt", aec.model)
    assert load_deep_adaptive(tmp_path / "m.pt")[0].kalman_selection == 0.0
    cfg = OmegaConf.create({"name": "deep_adaptive", "checkpoint": "",
                            "deep_adaptive": {"post_filter": True, "kalman_selection": 0.0}})
    assert build_aec(cfg).model.kalman_selection == 0.0
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="kalman_selection"):
            DeepAdaptiveAEC(kalman_selection=bad)
        with pytest.raises(ValueError, match="aec.deep_adaptive.kalman_selection"):
            DeepAdaptive(model, kalman_selection=bad)


def test_contract_kalman_selection_frozen_nlms():
    # the selection's own path (the Kalman filter carries the echo): latency and streaming
    aec = DeepAdaptive(_frozen_nlms_model())
    check_latency(aec)
    check_streaming(aec)


def test_level_normalisation_is_an_inference_option(tmp_path):
    model = _random_model(hidden=8)
    assert model.level_target_db == 0.0 and "level_target_db" not in model.hparams
    assert "level" not in model.initial_state(1)
    aec = DeepAdaptive(model, level_target_db=-24.0)  # on its own copy
    assert aec.model.level_target_db == -24.0 and model.level_target_db == 0.0
    state = aec.model.initial_state(2, torch.float64)
    assert state["level"].shape == (2,) and abs(10 * math.log10(state["level"][0]) + 24) < 1e-9
    save_deep_adaptive(tmp_path / "m.pt", aec.model)
    assert load_deep_adaptive(tmp_path / "m.pt")[0].level_target_db == 0.0
    assert DeepAdaptive(model).model.level_target_db == 0.0  # off by default
    cfg = OmegaConf.create({"name": "deep_adaptive", "checkpoint": "",
                            "deep_adaptive": {"level_target_db": -30.0}})
    assert build_aec(cfg).model.level_target_db == -30.0
    for bad in (-70.0, -3.0, 5.0):
        with pytest.raises(ValueError, match="level_target_db"):
            DeepAdaptiveAEC(level_target_db=bad)
        with pytest.raises(ValueError, match="aec.deep_adaptive.level_target_db"):
            DeepAdaptive(model, level_target_db=bad)


def test_contract_level_normalisation():
    aec = DeepAdaptive(_random_model(), level_target_db=-24.0)
    check_latency(aec)  # the gain of frame t comes from frames up to t: no added latency
    check_streaming(aec)


def test_level_normalisation_tracks_the_microphone_level():
    model = _random_model(hidden=8).double()
    model.level_target_db = -24.0
    state = model.initial_state(1, torch.float64)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(6 * FS) * 10 ** (-50 / 20)  # white noise at -50 dBFS RMS
    spec = model.stft(torch.from_numpy(np.concatenate([np.zeros(160), noise]))[None])
    for t in range(spec.shape[1]):
        gain, level, count = model._level_gain(spec[:, t], state)
        state = {**state, "level": level, "level_n": count}
    # after 6 s the running level is within 1 dB of -50 dBFS and the
    # gain brings it to the target: +26 dB
    assert abs(10 * math.log10(float(level[0])) + 50) < 1.0
    assert abs(20 * math.log10(float(gain[0, 0])) - 26) < 1.0
    # digital silence leaves the level as it is; a very soft input is raised by 30 dB at most
    silent = torch.zeros_like(spec[:, 0])
    assert torch.equal(model._level_gain(silent, state)[1], level)
    quiet = {**state, "level": torch.full_like(level, 1e-9)}
    assert abs(20 * math.log10(float(model._level_gain(spec[:, 0] * 1e-3, quiet)[0])) - 30) < 1e-9


def test_level_normalisation_makes_the_output_follow_the_input_scale():
    # the network sees log powers, so without the normalisation the same clip 20 dB softer
    # gives another output (scaled back); with it, after the estimate has settled, nearly
    # the same one
    mic, far = echo_clip(6 * FS, seed=4)
    model = _random_model(hidden=16)
    gap = {}
    for level in (0.0, -24.0):
        aec = DeepAdaptive(model, level_target_db=level)
        loud = aec(mic, far).output[-2 * FS:].astype(np.float64)
        soft = aec(0.1 * mic, 0.1 * far).output[-2 * FS:].astype(np.float64) / 0.1
        gap[level] = 10 * math.log10(np.sum((loud - soft) ** 2) / np.sum(loud ** 2))
    assert gap[-24.0] < gap[0.0] - 10.0, gap


def test_contract_cross_band_untrained():
    aec = DeepAdaptive(_random_model(taps=4, cross_bands=2))
    check_latency(aec)  # the neighbours' frames are the same frames: no added latency
    check_streaming(aec)


@pytest.mark.parametrize("coherence", [0.0, 0.8])
def test_refinement_post_filter_starts_as_the_identity_and_streams(coherence):
    """``refine``: a model with the refinement, holding another's weights, gives that model's
    output bit for bit (its head starts at zero); trained away from zero it changes the gain,
    adds no latency and streams."""
    base = _random_model(hidden=16, taps=4, cross_bands=1)
    torch.manual_seed(1)
    refined = DeepAdaptiveAEC(hidden=16, taps=4, cross_bands=1, refine=8, coherence=coherence)
    missing, unexpected = refined.load_state_dict(base.state_dict(), strict=False)
    assert unexpected == [] and missing and all(k.startswith("refine_") for k in missing)
    assert refined.hparams["refine"] == 8 and "refine" not in base.hparams
    mic, far = echo_clip(30 * 160 + 160, seed=5)
    y = base.stft(torch.from_numpy(mic)[None].double())
    x = base.stft(torch.from_numpy(far)[None].double())
    base.double()
    refined.double()
    with torch.no_grad():
        m0 = base.forward_with_mask(y, x)[2]
        m1 = refined.forward_with_mask(y, x)[2]
        assert torch.equal(m0, m1)
        refined.refine_head.bias.fill_(1.0)  # a correction: the gain rises in every bin
        refined.refine_head.weight.copy_(0.01 * torch.randn_like(refined.refine_head.weight))
        m2 = refined.forward_with_mask(y, x)[2]
    assert bool((m2 > m0).all())
    aec = DeepAdaptive(refined.float())
    check_latency(aec)
    check_streaming(aec)
    with pytest.raises(ValueError, match="refine"):
        DeepAdaptiveAEC(refine=-1)
    with pytest.raises(ValueError, match="coherence"):
        DeepAdaptiveAEC(coherence=0.5)  # needs the refinement
    with pytest.raises(ValueError, match="coherence"):
        DeepAdaptiveAEC(refine=4, coherence=1.0)


def test_coherence_features_tell_echo_from_near_end():
    """An error that is a fixed multiple of the echo estimate is fully coherent with it
    (``C_eh`` -> 1); an error independent of it is not; the power ratio is ``log(S_ee/S_yy)/4``."""
    model = DeepAdaptiveAEC(hidden=8, taps=2, refine=4, coherence=0.9).double()
    gen = torch.Generator().manual_seed(3)
    f = model.n_bins

    def rand():
        return torch.complex(torch.randn(1, f, generator=gen, dtype=torch.float64),
                             torch.randn(1, f, generator=gen, dtype=torch.float64))

    feats = {}
    for case in ("echo", "near"):
        state = model.initial_state(1, torch.float64)
        for _ in range(200):
            yhat = rand()
            e = (0.5 - 0.2j) * yhat if case == "echo" else rand()
            new = {}
            feats[case] = model._coherence_features(e, yhat, 2.0 * e, state, new)
            state.update(new)
    c_eh = {k: v[0, :f] for k, v in feats.items()}
    assert float(c_eh["echo"].min()) > 0.999
    assert float(c_eh["near"].mean()) < 0.2
    torch.testing.assert_close(feats["near"][0, 2 * f:],
                               torch.full((f,), math.log(0.25) / 4, dtype=torch.float64),
                               atol=1e-6, rtol=0)


def test_gradients_flow_through_the_adaptation():
    model = _random_model(hidden=16)
    mic, far = echo_clip(20 * 160 + 160, seed=4)
    y = model.stft(torch.from_numpy(mic)[None].float())
    x = model.stft(torch.from_numpy(far)[None].float())
    e, _, _, _ = model(y, x)
    # the step size enters only the weight update, so its gradient exists only through the
    # recursion of the adaptive filter
    (e[:, -1].real.square() + e[:, -1].imag.square()).sum().backward()
    assert model.mu_head.bias.grad is not None
    assert float(model.mu_head.bias.grad.abs().sum()) > 0


def test_loss_and_checkpoint_round_trip(tmp_path):
    z = torch.randn(2, 5, 9, dtype=torch.complex64)
    assert float(compressed_spectral_loss(z, z)) < 1e-10
    assert float(compressed_spectral_loss(z, torch.zeros_like(z))) > 0.1
    # frame weights: all ones is the plain mean; with weights an error in the active frame
    # costs more than without, an error in a silent frame less
    near = torch.zeros(2, 5, 9, dtype=torch.complex64)
    near[:, 2] = 1.0
    w = nearend_frame_weight(near, 4.0)
    assert w.tolist() == [[1.0, 1.0, 4.0, 1.0, 1.0]] * 2
    torch.testing.assert_close(compressed_spectral_loss(z, near, frame_weight=torch.ones(2, 5)),
                               compressed_spectral_loss(z, near))
    err = near.clone()
    err[:, 2] += 0.5
    quiet = near.clone()
    quiet[:, 0] += 0.5
    assert float(compressed_spectral_loss(err, near, frame_weight=w)) > float(
        compressed_spectral_loss(err, near))
    assert float(compressed_spectral_loss(quiet, near, frame_weight=w)) < float(
        compressed_spectral_loss(quiet, near))
    model = _random_model(hidden=16, taps=3)
    save_deep_adaptive(tmp_path / "m.pt", model, {"step": 3})
    back, payload = load_deep_adaptive(tmp_path / "m.pt")
    assert payload["model_args"]["taps"] == 3 and payload["training"]["step"] == 3
    for a, b in zip(model.state_dict().values(), back.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(ValueError, match="bad.pt"):
        load_deep_adaptive(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="no checkpoint at"):
        load(str(tmp_path / "missing.pt"))


def test_trainer_renders_trains_and_checkpoints(tmp_path):
    recordings = make_data_root(tmp_path / "rec")
    data = tmp_path / "train"  # rendered by the trainer (no meta.csv yet)
    cfg = load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
        f"path.root={data}", f"path.exp_folder={tmp_path / 'exp'}", "train.max_steps=2",
        "train.render_clips=3", f"train.render_data_root={recordings}", "train.render_clip_s=1.0",
        "train.batch=2", "train.segment_s=0.3", "train.model.hidden=8", "train.log_every=1"])
    path = train_deep_adaptive(cfg)
    assert (data / "meta.csv").is_file()
    again = tmp_path / "again"
    build_aec_dataset(again, n_clips=3, options=EchoRenderOptions(
        split="train", seed=1, clip_s=1.0), data_root=recordings)
    for name in ("nearend_mic_signal/nearend_mic_fileid_0.wav", "meta.csv"):
        assert (data / name).read_bytes() == (again / name).read_bytes()  # deterministic
    model, payload = load_deep_adaptive(path)
    assert payload["training"]["step"] == 2 and len(payload["training"]["history"]) == 2
    assert payload["training"]["config"]["train"]["model"]["hidden"] == 8
    assert all(np.isfinite(h["loss_out"]) for h in payload["training"]["history"])
    out = DeepAdaptive(model)(np.zeros(1000, np.float32), np.zeros(1000, np.float32)).output
    assert out.shape == (1000,) and np.all(np.isfinite(out))
    # fine-tuning starts from the given weights (zero steps: unchanged) and checks the shape
    common = [f"path.root={data}", "train.model.hidden=8", "train.batch=2",
              "train.segment_s=0.3", f"train.init_checkpoint={path}"]
    tuned = train_deep_adaptive(load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
        *common, f"path.exp_folder={tmp_path / 'ft'}", "train.minutes=0"]))
    start, _ = load_deep_adaptive(tuned)
    for a, b in zip(start.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="train.init_checkpoint"):
        train_deep_adaptive(load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
            *common, f"path.exp_folder={tmp_path / 'ft2'}", "train.model.hidden=16"]))
    # a longer NLMS filter may start from the same weights (no weight depends on taps)
    longer = train_deep_adaptive(load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
        *common, f"path.exp_folder={tmp_path / 'taps'}", "train.minutes=0",
        "train.model.taps=20"]))
    resized, resized_payload = load_deep_adaptive(longer)
    assert resized_payload["model_args"]["taps"] == 20 and resized.taps == 20
    for a, b in zip(resized.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # the refinement post-filter may be added to a checkpoint without it (the shared weights
    # kept, the new head at zero), but not resized once there
    refined = train_deep_adaptive(load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
        *common, f"path.exp_folder={tmp_path / 'refine'}", "train.minutes=0",
        "train.model.refine=4"]))
    grown, grown_payload = load_deep_adaptive(refined)
    assert grown_payload["model_args"]["refine"] == 4
    old = model.state_dict()
    for k, v in grown.state_dict().items():
        if k.startswith("refine_head"):
            assert not v.any()
        elif not k.startswith("refine_"):
            assert torch.equal(v, old[k])
    with pytest.raises(ValueError, match="train.init_checkpoint"):
        train_deep_adaptive(load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
            *common[:-1], f"train.init_checkpoint={refined}",
            f"path.exp_folder={tmp_path / 'refine2'}", "train.model.refine=8"]))
    # train.trainable: one step on the refinement alone moves it and nothing else
    frozen = train_deep_adaptive(load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
        *common, f"path.exp_folder={tmp_path / 'frozen'}", "train.max_steps=1",
        "train.model.refine=4", "train.model.coherence=0.8", "train.trainable=[refine_]"]))
    stepped = load_deep_adaptive(frozen)[0].state_dict()
    for k, v in stepped.items():
        if k.startswith("refine_"):
            continue
        assert torch.equal(v, old[k]), k
    assert stepped["refine_head.bias"].any()
    with pytest.raises(ValueError, match="train.trainable"):
        train_deep_adaptive(load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
            *common, f"path.exp_folder={tmp_path / 'frozen2'}", "train.trainable=[nope_]"]))
    # near-end frames weighted: trains; a negative weight is a config error
    weighted = train_deep_adaptive(load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
        *common, f"path.exp_folder={tmp_path / 'nw'}", "train.max_steps=1",
        "train.log_every=1", "train.nearend_weight=4"]))
    assert np.isfinite(load_deep_adaptive(weighted)[1]["training"]["history"][0]["loss_out"])
    with pytest.raises(ValueError, match="train.nearend_weight"):
        train_deep_adaptive(load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
            *common, f"path.exp_folder={tmp_path / 'nw2'}", "train.nearend_weight=-1"]))
    # the Kalman selection in the training forward pass: the post-filter alone learns on the
    # selected error (another loss on the same crop); the checkpoint stays an ordinary one
    losses = {}
    for select in ("0", "0.999"):
        run = train_deep_adaptive(load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
            *common, f"path.exp_folder={tmp_path / ('ks' + select)}", "train.max_steps=1",
            "train.log_every=1", "train.trainable=[res_]", f"train.kalman_selection={select}"]))
        tuned_model, tuned_payload = load_deep_adaptive(run)
        losses[select] = tuned_payload["training"]["history"][0]["loss_out"]
        assert tuned_model.kalman_selection == 0.0
        assert tuned_payload["model_args"] == dict(model.hparams)
        for k, v in tuned_model.state_dict().items():
            assert k.startswith("res_") or torch.equal(v, old[k]), k
    assert np.isfinite(losses["0.999"]) and losses["0.999"] != losses["0"]
    with pytest.raises(ValueError, match="train.kalman_selection"):
        train_deep_adaptive(load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
            *common, f"path.exp_folder={tmp_path / 'ks2'}", "train.kalman_selection=1.5"]))
    # the input-level normalisation in the training forward pass: another loss on the same
    # crop, an ordinary checkpoint; a bad target is a named config error
    leveled = train_deep_adaptive(load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
        *common, f"path.exp_folder={tmp_path / 'lv'}", "train.max_steps=1", "train.log_every=1",
        "train.trainable=[res_]", "train.level_target_db=-24"]))
    lv_model, lv_payload = load_deep_adaptive(leveled)
    assert lv_model.level_target_db == 0.0 and lv_payload["model_args"] == dict(model.hparams)
    assert np.isfinite(lv_payload["training"]["history"][0]["loss_out"])
    assert lv_payload["training"]["history"][0]["loss_out"] != losses["0"]
    for key in ("train.level_target_db=-3", "train.val_level_target_db=5"):
        with pytest.raises(ValueError, match=key.split("=")[0]):
            train_deep_adaptive(load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
                *common, f"path.exp_folder={tmp_path / 'lv2'}", key]))


def test_level_augmentation_scales_each_crop_as_a_whole(tmp_path):
    """``train.level_db``: every signal of a crop carries the same gain, within the range;
    gains differ between crops; 0 dB leaves the crops (and the draws) as without it."""
    recordings = make_data_root(tmp_path / "rec")
    data = tmp_path / "train"
    build_aec_dataset(data, n_clips=3, options=EchoRenderOptions(split="train", seed=1,
                                                                 clip_s=1.0),
                      data_root=recordings)  # fmt: skip
    plain = SegmentSampler(data, 3200, 160, np.random.default_rng(5)).batch(6)
    same = SegmentSampler(data, 3200, 160, np.random.default_rng(5), 0.0).batch(6)
    for key in plain:
        assert np.array_equal(plain[key], same[key])
    with pytest.raises(ValueError, match="level_db"):
        SegmentSampler(data, 3200, 160, np.random.default_rng(5), -1.0)
    sampler = SegmentSampler(data, 3200, 160, np.random.default_rng(5), 6.0)
    scaled = sampler.batch(6)
    # the same clips and starts are drawn before the gain: recover each crop's gain
    gains = []
    for i in range(6):
        ref = plain["mic"][i]
        g = float(scaled["mic"][i] @ ref / (ref @ ref))
        for key in plain:
            np.testing.assert_allclose(scaled[key][i], g * plain[key][i], rtol=1e-6, atol=1e-9)
        gains.append(20 * np.log10(g))
    assert all(abs(g) <= 6.0 for g in gains) and np.ptp(gains) > 0.5


def test_packaged_checkpoint_cancels_echo_on_rendered_clips(tmp_path):
    recordings = make_data_root(tmp_path / "rec")
    renderer = EchoSceneRenderer(recordings, EchoRenderOptions(
        clip_s=4.0, talk_mix=(1, 0, 0), p_nearend_noise=0.0, p_path_change=0.0, seed=5))
    aec = load()
    linear = load(post_filter=False)
    for fileid in range(2):
        clip = renderer.render(fileid)
        mic, far = clip.mic.astype(np.float32), clip.farend.astype(np.float32)
        # after one second of convergence; the unprocessed microphone has ERLE 0 dB. Measured
        # with the shipped checkpoint and the Kalman selection: 41.2 and 36.3 dB with the
        # post-filter, 5.0 and 15.9 dB for the linear error alone (without the selection 35.7,
        # 30.5, 4.7, 13.5 dB; clip 0: measured path through the nonlinear loudspeaker)
        assert _erle(mic[FS:], aec(mic, far).output[FS:]) > 25.0, clip.meta["echo_path"]
        assert _erle(mic[FS:], linear(mic, far).output[FS:]) > 3.0, clip.meta["echo_path"]


def test_trainer_validates_and_keeps_the_best_checkpoint(tmp_path):
    import csv

    from clarity_se.data.aec_challenge import load_aec_dataset
    from clarity_se.training.aec_validation import VAL_COLUMNS, validate

    recordings = make_data_root(tmp_path / "rec")
    train = tmp_path / "train"
    build_aec_dataset(train, n_clips=3, options=EchoRenderOptions(
        split="train", seed=1, clip_s=1.0), data_root=recordings)
    val = tmp_path / "val"  # rendered by the trainer: held-out split, val_seed
    common = [f"path.root={train}", f"path.exp_folder={tmp_path / 'exp'}", "train.batch=2",
              "train.segment_s=0.3", "train.model.hidden=8", f"train.val_root={val}",
              f"train.render_data_root={recordings}", "train.render_clip_s=2.0",
              "train.val_clips=6", "train.val_seed=3"]
    path = train_deep_adaptive(load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
        *common, "train.max_steps=3", "train.val_every=2"]))
    clips = load_aec_dataset(val)
    assert len(clips) == 6 and {c.split for c in clips} == {"test"}
    assert any(c.talk_type == "dt" for c in clips)
    with open(path.with_name("validation.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == VAL_COLUMNS
    ref, rows = rows[0], rows[1:]  # WebRTC AEC3 on the same clips, then the model
    assert ref["system"] == "webrtc_aec3" and ref["step"] == ""
    assert np.isfinite(float(ref["pesq_wb_dt"])) and np.isfinite(float(ref["aecmos_echo_dt"]))
    assert {r["system"] for r in rows} == {"deep_adaptive"}
    assert [int(r["step"]) for r in rows] == [2, 3]  # every val_every steps, and the last
    assert path.with_name("validation.png").read_bytes()[:4] == b"\x89PNG"
    scores = [float(r["score"]) for r in rows]
    assert all(np.isfinite(scores))
    for r in rows:
        assert float(r["score"]) == pytest.approx(
            float(r["pesq_wb_dt"]) + float(r["aecmos_echo_dt"]), abs=2e-4)
    best_model, best = load_deep_adaptive(path.with_name("deep_adaptive_best.pt"))
    assert best["training"]["step"] == int(rows[int(np.argmax(scores))]["step"])
    # the stored score is what validate() gives for the stored weights
    again = validate(best_model, [c for c in clips if c.talk_type != "nst"], progress=False)
    assert again["score"] == pytest.approx(max(scores), abs=2e-4)
    off = validate(best_model, [c for c in clips if c.talk_type != "nst"], progress=False,
                   kalman_selection=0.0)  # train.val_kalman_selection=0: the model alone
    assert np.isfinite(off["score"])
    leveled = validate(best_model, [c for c in clips if c.talk_type != "nst"], progress=False,
                       level_target_db=-24.0)  # train.val_level_target_db=-24
    assert np.isfinite(leveled["score"]) and leveled["erle_st_db"] != again["erle_st_db"]
    last, payload = load_deep_adaptive(path)
    assert [v["step"] for v in payload["training"]["validation"]] == [2, 3]
    # a fine-tune is validated at step 0 too: the score it starts from
    tuned = train_deep_adaptive(load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
        *common, f"path.exp_folder={tmp_path / 'ft'}", f"train.init_checkpoint={path}",
        "train.max_steps=1", "train.val_every=5"]))
    steps = [v["step"] for v in load_deep_adaptive(tuned)[1]["training"]["validation"]]
    assert steps == [0, 1]
    # a held-out folder without double talk cannot be scored: a config error naming the key
    st_only = tmp_path / "st_only"
    build_aec_dataset(st_only, n_clips=2, options=EchoRenderOptions(
        split="test", seed=3, clip_s=1.0, talk_mix=(1, 0, 0)), data_root=recordings)
    with pytest.raises(ValueError, match="train.val_root"):
        train_deep_adaptive(load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
            *common[:5], f"train.val_root={st_only}", "train.max_steps=1"]))


def test_validation_at_several_input_levels(tmp_path):
    """``train.val_gains_db``: every clip is scored once per gain with the whole scene scaled,
    the means pool them; ``(0,)`` is the clips as recorded."""
    from clarity_se.aec.base import EchoCancellerOutput
    from clarity_se.data.aec_challenge import load_aec_dataset, read_clip
    from clarity_se.training.aec_validation import score_system

    recordings = make_data_root(tmp_path / "rec")
    root = tmp_path / "val"  # far-end single talk: ERLE applies to every clip
    build_aec_dataset(root, n_clips=2, options=EchoRenderOptions(
        split="test", seed=3, clip_s=1.0, talk_mix=(1, 0, 0)), data_root=recordings)
    clips = load_aec_dataset(root)
    seen = []

    def half(mic, farend):  # a canceller that halves the mic, noting the level it was given
        seen.append(float(np.sqrt(np.mean(np.square(mic, dtype=np.float64)))))
        return EchoCancellerOutput(output=0.5 * mic, echo_estimate=np.zeros_like(mic))

    plain = score_system(half, clips, progress=False)
    again = score_system(half, clips, progress=False, gains_db=(0.0,))
    np.testing.assert_equal(list(again.values()), list(plain.values()))  # nan == nan here
    recorded = seen[: len(clips)]
    seen.clear()
    both = score_system(half, clips, progress=False, gains_db=(-20.0, 0.0))
    np.testing.assert_allclose(seen[0::2], 0.1 * np.array(recorded), rtol=1e-5)
    np.testing.assert_allclose(seen[1::2], recorded, rtol=1e-12)
    # a constant gain of 1/2 removes 6.02 dB at any level
    assert both["erle_st_db"] == pytest.approx(plain["erle_st_db"], abs=1e-6)
    assert plain["erle_st_db"] == pytest.approx(20 * np.log10(2), abs=1e-6)
    audio = read_clip(clips[0])
    louder = audio.scaled(6.0)
    np.testing.assert_allclose(louder.mic, 10 ** 0.3 * audio.mic, rtol=1e-6)
    cfg = load_aec_config("recipes/aec/deep_adaptive/config.yaml",
                          [f"path.root={root}", "train.val_gains_db=[-10,0]"])
    assert list(cfg.train.val_gains_db) == [-10.0, 0.0]


def test_forward_with_mask_is_the_post_filter_gain():
    model = _random_model(hidden=8).double()
    y = torch.randn(2, 7, model.n_bins, dtype=torch.complex128)
    x = torch.randn(2, 7, model.n_bins, dtype=torch.complex128)
    e, yhat, out, _ = model(y, x)
    e2, yhat2, mask, _ = model.forward_with_mask(y, x)
    assert not mask.is_complex() and bool(((mask > 0) & (mask < 1)).all())
    assert torch.equal(e, e2) and torch.equal(yhat, yhat2) and torch.equal(out, mask * e)


def test_distortion_term_trains_and_pulls_the_gain_up(tmp_path):
    recordings = make_data_root(tmp_path / "rec")
    train = tmp_path / "train"
    build_aec_dataset(train, n_clips=3, options=EchoRenderOptions(
        split="train", seed=1, clip_s=1.0, talk_mix=(0, 1, 0)), data_root=recordings)
    common = [f"path.root={train}", "train.batch=2", "train.segment_s=0.5",
              "train.model.hidden=8", "train.max_steps=8", "train.lr=0.01", "train.seed=3"]
    gains = {}
    for w in (0, 50):
        path = train_deep_adaptive(load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
            *common, f"path.exp_folder={tmp_path / str(w)}", f"train.distortion_weight={w}"]))
        model, _ = load_deep_adaptive(path)
        clip = EchoSceneRenderer(recordings, EchoRenderOptions(
            split="train", seed=1, clip_s=1.0, talk_mix=(0, 1, 0))).render(0)
        with torch.no_grad():
            spec = [model.stft(torch.from_numpy(np.concatenate([np.zeros(model.hop), s]))[None]
                               .float()) for s in (clip.mic, clip.farend)]
            gains[w] = float(model.forward_with_mask(*spec)[2].mean())
    # the same crops and steps; the distortion term alone differs: a higher mean gain
    assert gains[50] > gains[0] + 0.01, gains
    with pytest.raises(ValueError, match="train.distortion_weight"):
        train_deep_adaptive(load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
            *common, f"path.exp_folder={tmp_path / 'bad'}", "train.distortion_weight=-1"]))


def test_trainer_resumes_where_it_stopped(tmp_path):
    recordings = make_data_root(tmp_path / "rec")
    train = tmp_path / "train"
    build_aec_dataset(train, n_clips=3, options=EchoRenderOptions(
        split="train", seed=1, clip_s=1.0), data_root=recordings)
    common = [f"path.root={train}", "train.batch=2", "train.segment_s=0.3",
              "train.model.hidden=8", "train.checkpoint_every=2", "train.log_every=1"]

    def run(exp, *more):
        return train_deep_adaptive(load_aec_config("recipes/aec/deep_adaptive/config.yaml", [
            *common, f"path.exp_folder={tmp_path / exp}", *more]))

    straight, _ = load_deep_adaptive(run("straight", "train.max_steps=4"))
    run("resumed", "train.max_steps=2")
    path = run("resumed", "train.max_steps=4")  # a rerun continues from EXP/last.pt
    resumed, payload = load_deep_adaptive(path)
    assert [h["step"] for h in payload["training"]["history"]] == [1, 2, 3, 4]
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # same crops, same optimiser state: the same weights
    with pytest.raises(ValueError, match="last.pt"):
        run("resumed", "train.model.hidden=16")
    afresh, payload = load_deep_adaptive(run("resumed", "train.resume=false",
                                             "train.max_steps=1"))
    assert payload["training"]["step"] == 1
