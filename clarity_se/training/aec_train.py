r"""``clarity-se aec-train -c recipes/aec/deep_adaptive/config.yaml path.root=DATA``: train the
Deep Adaptive AEC end to end.

Data: the clips of ``path.root`` (AEC Challenge synthetic layout). If the folder has no
``meta.csv``, ``train.render_clips`` clips are first rendered there by the echo renderer of
``clarity-se aec-data`` (``split="train"``, ``seed=train.render_seed``: same options, same
files). Each step draws ``train.batch`` clips and a random ``train.segment_s`` crop of each (the
generator seeded by ``train.seed``), computes the STFTs and runs
:class:`~clarity_se.models.deep_adaptive.DeepAdaptiveAEC` over the crop from a zero filter, so the
gradients flow through every NLMS update of the crop (backpropagation through the adaptation).

Loss (on spectra, :func:`compressed_spectral_loss`): the power-law compressed spectral distance
of Braun & Tashev (2021) with exponent ``c = train.compress`` (0.3) and complex-term weight
``train.complex_weight`` (0.3)::

    L(S_hat, S) = (1 - a) mean (|S_hat|^c - |S|^c)^2 + a mean |S_hat^c - S^c|^2,
    S^c = |S|^c S / |S|
    loss = L_w(M E, S_near) + train.linear_weight L(E, S_mic - S_echo)
           + train.distortion_weight L(M S_near, S_near)

``S_near`` is the clean near-end speech (the post-filtered output should hold it and nothing
else), ``S_mic - S_echo`` the microphone without its echo (near end plus noise: what a perfect
linear canceller leaves). Why this loss: far-end single talk has an all-zero target, for which
scale-invariant losses (SI-SDR) are undefined; a scale-dependent spectral distance penalises
residual echo there; the compression makes quiet residual echo count (it is audible and it is
what ERLE and AECMOS measure), and the complex term keeps the phase of the linear part right.
``L_w`` weighs the frames where the near-end speech is active (within 30 dB of the crop's
loudest near-end frame) ``train.nearend_weight`` times the others (1: the plain mean): a weight
above 1 moves the post-filter's effort from far-end single talk, where any residual is already
tens of dB down, to the frames that double-talk quality (PESQ, AECMOS degradation) measures.
The last term (``train.distortion_weight``, default 0) is the post-filter gain applied to the
near-end speech alone against that speech: the speech distortion, apart from the residual echo
and noise that ``M E - S_near = (M - 1) S_near + M (E - S_near)`` mixes in (the split of the
DSML / RESL measures of Ivry et al. 2021); a weight above 0 trades residual echo for less
near-end suppression in double talk.

Every ``train.checkpoint_every`` steps and at the end, ``EXP/deep_adaptive.pt`` is written
(:func:`~clarity_se.models.deep_adaptive.save_deep_adaptive`: model arguments, weights, the
resolved config, step, loss history) and, with the optimiser state, the sampler's generator
state, the minutes done and the validations, ``EXP/last.pt`` (atomic writes); the log goes to
the console. Training stops after ``train.minutes`` minutes (in all, over resumed runs) or
``train.max_steps`` steps. With ``train.resume`` (default true) a rerun in the same folder
continues from ``EXP/last.pt``: a killed run loses at most ``checkpoint_every`` steps, and a run
stopped and resumed draws the same crops and reaches the same weights as one that was not.
``train.init_checkpoint`` fine-tunes from a checkpoint (the same model arguments, except
``taps`` and ``cross_bands``: no weight depends on the filter's size; and ``refine`` when the
checkpoint has none: the refinement post-filter, with or without ``coherence``, is added,
starting from the identity) instead of a random initialisation. With ``train.val_root``, a
held-out folder is scored every ``train.val_every`` steps and at the end (and at step 0 when
fine-tuning from ``train.init_checkpoint``), and the best checkpoint by PESQ-WB plus AECMOS echo
MOS in double talk is kept in ``EXP/deep_adaptive_best.pt``, with ``EXP/validation.csv`` and
``EXP/validation.png`` (WebRTC AEC3 scored once beside it;
:mod:`clarity_se.training.aec_validation`), at the input gains of ``train.val_gains_db``
(the whole scene scaled; pooled). ``train.level_db`` scales each training crop as a whole by
a random gain (level augmentation). ``train.trainable`` (parameter-name prefixes, e.g.
``[refine_]``) trains those parameters alone and freezes the rest. ``train.kalman_selection``
(default 0: off) runs the Kalman selection of :mod:`clarity_se.models.deep_adaptive` in the
training forward pass, so the post-filter learns on the selected error it is given at inference
(with ``train.trainable=[res_]`` the canceller stays as it is; the linear term then scores the
selected error, which carries no gradient to the post-filter). ``train.level_target_db``
(default 0: off) runs the input-level normalisation of :mod:`clarity_se.models.deep_adaptive`
in the training forward pass (the network learns on inputs brought to that level) and
``train.val_level_target_db`` in the validation; neither is stored in the checkpoint.

``train.perceptual_weight`` (default 0: none) adds a PESQ-like term on the crops with at least
:data:`PERCEPTUAL_MIN_FRAMES` frames of near-end speech (:func:`perceptual_term`,
:class:`~clarity_se.training.perceptual_loss.PesqLikeLoss`: P.862's symmetric disturbance plus
``train.perceptual_asymmetry`` times its asymmetric one, after PMSQE): the compressed spectral
distance weighs speech removed and residual echo left alike, where PESQ-WB in double talk
forgives a little residual more readily than speech taken away. ``train.post_filter_cache``
(with ``train.trainable=[res_]``, ``train.init_checkpoint``, ``train.linear_weight=0``, no level
augmentation and no distortion term) runs the frozen canceller once over the training clips and
trains the post-filter on the cached frames (:mod:`clarity_se.training.post_filter_cache`);
the crops are drawn from the same generator, so such a run resumes like any other.

References
----------
S. Braun and I. Tashev, "A consolidated view of loss functions for supervised deep
learning-based speech enhancement", TSP 2021 (compressed spectral loss).
H. Zhang et al., "Deep adaptive AEC", ICASSP 2022 (end-to-end training through the adaptive
layer).
A. Ivry, I. Cohen, B. Berdugo, "Deep residual echo suppression with a tunable tradeoff between
signal distortion and echo suppression", ICASSP 2021 (the distortion / suppression split).
J. M. Martin-Donas et al., "A deep learning loss function based on the perceptual evaluation of
the speech quality", IEEE SPL 2018 (PMSQE: the perceptual term).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


def compressed_spectral_loss(est, target, compress: float = 0.3, complex_weight: float = 0.3,
                             frame_weight=None):
    """Power-law compressed spectral distance (see the module docstring).

    Parameters
    ----------
    est, target : Tensor [shape=(batch, frames, F)], complex
    compress : float
        Exponent ``c`` applied to the magnitudes.
    complex_weight : float
        Weight ``a`` of the compressed complex term.
    frame_weight : Tensor [shape=(batch, frames)], optional
        Non-negative weights of the frames: the loss is the weighted mean of the per-frame
        distances (None: every frame weighs the same).

    Returns
    -------
    Tensor
        Scalar loss.
    """
    import torch

    def compressed(z):
        p = z.real.square() + z.imag.square() + 1e-12
        mag = p ** (compress / 2)
        return mag, z * (mag / torch.sqrt(p))

    m_e, c_e = compressed(est)
    m_t, c_t = compressed(target)
    cplx = c_e - c_t
    per_frame = ((1 - complex_weight) * (m_e - m_t).square().mean(-1)
                 + complex_weight * (cplx.real.square() + cplx.imag.square()).mean(-1))
    if frame_weight is None:
        return per_frame.mean()
    return (frame_weight * per_frame).sum() / frame_weight.sum().clamp_min(1e-12)


#: crops with fewer frames of near-end speech than this add no perceptual term
PERCEPTUAL_MIN_FRAMES = 50


def perceptual_term(loss_fn, est, near, asymmetry: float):
    """The PESQ-like term of the loss: ``0.1 d_sym + asymmetry d_asym``
    (:class:`~clarity_se.training.perceptual_loss.PesqLikeLoss`) of each crop with at least
    :data:`PERCEPTUAL_MIN_FRAMES` frames of near-end speech (the active frames of
    :func:`nearend_frame_weight`), summed and divided by the number of crops (a crop without
    near-end speech adds 0: PESQ scores speech).

    Parameters
    ----------
    loss_fn : PesqLikeLoss
    est, near : Tensor [shape=(batch, frames, F)], complex
        The output and the clean near-end speech.
    asymmetry : float
        Weight of the asymmetric disturbance.

    Returns
    -------
    Tensor
        Scalar.
    """
    from clarity_se.training.perceptual_loss import SYMMETRIC_WEIGHT

    active = nearend_frame_weight(near, 2.0) > 1.0
    ok = active.sum(-1) >= PERCEPTUAL_MIN_FRAMES
    if not bool(ok.any()):
        return est.real.new_zeros(())
    d_sym, d_asym = loss_fn(est[ok], near[ok], active[ok])
    return (SYMMETRIC_WEIGHT * d_sym + asymmetry * d_asym).sum() / est.shape[0]


#: model arguments an initialising checkpoint may differ in: no weight depends on them (``taps``
#: and ``cross_bands`` set only the size of the NLMS filter state)
RESIZABLE_ARGS = frozenset({"taps", "cross_bands"})
#: prefix of the weights of the refinement post-filter, which a checkpoint without it lacks
REFINE_PREFIX = "refine_"


def nearend_frame_weight(near, weight: float, active_db: float = 30.0):
    """Frame weights ``weight`` where the near-end speech is active, 1 elsewhere.

    Parameters
    ----------
    near : Tensor [shape=(batch, frames, F)], complex
        Clean near-end speech spectra.
    weight : float
        Weight of the active frames (1: all frames equal).
    active_db : float
        A frame is active when its energy is within this of the crop's loudest frame, dB.

    Returns
    -------
    Tensor [shape=(batch, frames)]
    """
    energy = (near.real.square() + near.imag.square()).sum(-1)
    loudest = energy.amax(dim=1, keepdim=True)
    active = (energy > loudest * 10 ** (-active_db / 10)) & (loudest > 0)
    return 1.0 + (float(weight) - 1.0) * active.to(energy.dtype)


def ensure_training_data(root: Path, clips: int, seed: int, data_root: str = "",
                         clip_s: float = 10.0, split: str = "train") -> None:
    """Render ``clips`` clips of ``clip_s`` s into ``root`` (``clarity-se aec-data root --split
    split --seed seed [--data-root data_root]``) unless it has a ``meta.csv``."""
    if (root / "meta.csv").is_file():
        return
    from clarity_se.data.render.echo import DEFAULT_DATA_ROOT, EchoRenderOptions, build_aec_dataset

    logger.warning("rendering %d %s clips (seed %d) into %s", clips, split, seed, root)
    build_aec_dataset(root, n_clips=clips,
                      options=EchoRenderOptions(split=split, seed=seed, clip_s=clip_s),
                      data_root=data_root or DEFAULT_DATA_ROOT)


class SegmentSampler:
    """Random crops of the clips of a synthetic AEC folder.

    Parameters
    ----------
    root : Path
        AEC Challenge synthetic folder with near-end and echo references.
    segment : int
        Samples per crop (a multiple of ``hop``; the hop of history is added).
    hop : int
        STFT hop of the model, samples.
    rng : np.random.Generator
    level_db : float
        Each crop's signals are scaled together by a gain drawn uniformly in
        ``[-level_db, +level_db]`` dB (level augmentation: the features are log powers, so
        without it the network learns the training set's levels); 0 draws nothing (the crops,
        and the generator's sequence, are those of earlier versions).

    Raises
    ------
    ValueError
        If the folder holds no clips with references, or ``level_db`` is negative.
    """

    def __init__(self, root: Path, segment: int, hop: int, rng: np.random.Generator,
                 level_db: float = 0.0) -> None:
        from clarity_se.data.aec_challenge import load_aec_dataset

        self.clips = [c for c in load_aec_dataset(root) if c.nearend is not None
                      and c.echo is not None]
        if not self.clips:
            raise ValueError(f"{root}: no synthetic clips with nearend_speech and echo_signal")
        if level_db < 0:
            raise ValueError(f"train.level_db must be >= 0 dB, got {level_db}")
        self.segment, self.hop, self.rng, self.level_db = segment, hop, rng, float(level_db)

    def batch(self, size: int) -> dict[str, np.ndarray]:
        """``{"mic", "far", "near", "noecho"}`` each ``[size, hop + segment]`` float64 (``hop``
        zeros of history first)."""
        from clarity_se.data.aec_challenge import read_clip

        out: dict[str, list] = {"mic": [], "far": [], "near": [], "noecho": []}
        for i in self.rng.integers(0, len(self.clips), size):
            audio = read_clip(self.clips[int(i)])
            n = audio.mic.shape[0]
            start = int(self.rng.integers(0, max(1, n - self.segment)))
            sig = {"mic": audio.mic, "far": audio.farend, "near": audio.nearend,
                   "noecho": audio.mic - audio.echo}
            for key, x in sig.items():
                seg = np.zeros(self.hop + self.segment)
                piece = x[start : start + self.segment]
                seg[self.hop : self.hop + piece.size] = piece
                out[key].append(seg)
        batch = {k: np.stack(v) for k, v in out.items()}
        if self.level_db:  # drawn after the crops: the same crops as without, scaled
            gains = 10 ** (self.rng.uniform(-self.level_db, self.level_db, size) / 20)
            batch = {k: v * gains[:, None] for k, v in batch.items()}
        return batch


def train_deep_adaptive(cfg) -> Path:
    """Train :class:`~clarity_se.models.deep_adaptive.DeepAdaptiveAEC` as ``cfg.train`` says.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        Echo-track recipe config (:func:`clarity_se.aec.config.load_aec_config`).

    Returns
    -------
    Path
        The checkpoint ``EXP/deep_adaptive.pt``.

    Raises
    ------
    ValueError
        Bad data folder or options.
    """
    import torch
    from omegaconf import OmegaConf

    from clarity_se.models.deep_adaptive import (
        DeepAdaptiveAEC,
        check_kalman_selection,
        check_level_target,
        save_deep_adaptive,
    )

    t = cfg.train
    torch.set_num_threads(int(t.threads))
    torch.manual_seed(int(t.seed))
    rng = np.random.default_rng(int(t.seed))
    root = Path(cfg.path.root)
    ensure_training_data(root, int(t.render_clips), int(t.render_seed),
                         str(t.render_data_root), float(t.render_clip_s))
    model = DeepAdaptiveAEC(**OmegaConf.to_container(t.model))
    check_kalman_selection(float(t.kalman_selection), "train.kalman_selection")
    model.kalman_selection = float(t.kalman_selection)  # not stored in the checkpoint
    check_level_target(float(t.level_target_db), "train.level_target_db")
    check_level_target(float(t.val_level_target_db), "train.val_level_target_db")
    model.level_target_db = float(t.level_target_db)  # not stored in the checkpoint either
    if t.init_checkpoint:
        from clarity_se.models.deep_adaptive import load_deep_adaptive

        init, payload = load_deep_adaptive(t.init_checkpoint)
        differ = {k for k in set(payload["model_args"]) | set(model.hparams)
                  if payload["model_args"].get(k) != model.hparams.get(k)}
        extend = "refine" in differ and not payload["model_args"].get("refine")
        if differ - RESIZABLE_ARGS - ({"refine", "coherence"} if extend else set()):
            raise ValueError(f"train.init_checkpoint: {t.init_checkpoint} has model arguments "
                             f"{payload['model_args']}, train.model is {model.hparams} (only "
                             f"{sorted(RESIZABLE_ARGS)} may differ, and refine where the "
                             f"checkpoint has none)")
        missing, _ = model.load_state_dict(init.state_dict(), strict=not extend)
        if any(not k.startswith(REFINE_PREFIX) for k in missing):
            raise ValueError(f"train.init_checkpoint: {t.init_checkpoint} lacks {missing}")
        model.train()
        logger.warning("initialised from %s", t.init_checkpoint)
    hop = model.hop
    segment = int(round(t.segment_s * 16000 / hop)) * hop
    if segment < 4 * hop or t.batch < 1:
        raise ValueError(f"train.segment_s must give >= 4 frames and train.batch >= 1, got "
                         f"{t.segment_s}, {t.batch}")
    if not t.nearend_weight >= 0:
        raise ValueError(f"train.nearend_weight must be >= 0, got {t.nearend_weight}")
    if not t.distortion_weight >= 0:
        raise ValueError(f"train.distortion_weight must be >= 0, got {t.distortion_weight}")
    if not (t.perceptual_weight >= 0 and t.perceptual_asymmetry >= 0):
        raise ValueError(f"train.perceptual_weight and train.perceptual_asymmetry must be >= 0, "
                         f"got {t.perceptual_weight}, {t.perceptual_asymmetry}")
    perceptual = None
    if t.perceptual_weight:
        from clarity_se.training.perceptual_loss import PesqLikeLoss

        perceptual = PesqLikeLoss(model.n_bins)
    sampler = SegmentSampler(root, segment, hop, rng, float(t.level_db))
    out = Path(cfg.path.exp_folder) / "deep_adaptive.pt"
    val_clips = None
    if t.val_root:
        from clarity_se.training.aec_validation import load_validation_clips

        if t.val_every < 1:
            raise ValueError(f"train.val_every must be >= 1 step, got {t.val_every}")
        ensure_training_data(Path(t.val_root), int(t.val_clips), int(t.val_seed),
                             str(t.render_data_root), float(t.render_clip_s), split="test")
        val_clips = load_validation_clips(Path(t.val_root))
    validations: list[dict] = []
    val_gains = tuple(float(g) for g in t.val_gains_db)
    val_reference: list[dict] = []
    prefixes = tuple(str(p) for p in t.trainable)
    if prefixes:
        for name, param in model.named_parameters():
            param.requires_grad_(name.startswith(prefixes))
        if not any(p.requires_grad for p in model.parameters()):
            raise ValueError(f"train.trainable: no parameter name starts with {list(prefixes)}")
    cache = replay = None
    if t.post_filter_cache:
        from clarity_se.training.post_filter_cache import (
            PostFilterReplay,
            build_post_filter_cache,
            cache_key,
        )

        frozen_ok = prefixes and all(n.startswith("res_") for n, p in model.named_parameters()
                                     if p.requires_grad)
        if not (t.init_checkpoint and frozen_ok):
            raise ValueError("train.post_filter_cache needs train.init_checkpoint and "
                             "train.trainable=[res_] (the canceller frozen)")
        if t.level_db or t.linear_weight or t.distortion_weight:
            raise ValueError("train.post_filter_cache: set train.level_db=0, "
                             "train.linear_weight=0 and train.distortion_weight=0 (the cached "
                             "frames hold one level and no echo-free reference)")
        replay = PostFilterReplay(model)
        cache = build_post_filter_cache(
            model, sampler.clips, Path(cfg.path.exp_folder) / "post_filter_cache",
            cache_key(str(t.init_checkpoint), float(t.kalman_selection),
                      [c.id for c in sampler.clips]))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=float(t.lr))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    history: list[dict] = []
    step, done_minutes = 0, 0.0
    last = out.with_name("last.pt")
    if t.resume and last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=False)
        if state.get("model_args") != dict(model.hparams):
            raise ValueError(f"{last}: saved with model arguments {state.get('model_args')}, "
                             f"train.model is {model.hparams} (another run's folder? remove "
                             "it, or set train.resume=false to start afresh)")
        model.load_state_dict(state["state_dict"])
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]  # the sampler's generator
        step, done_minutes, history = state["step"], state["minutes"], state["history"]
        validations[:], val_reference[:] = state["validations"], state["val_reference"]
        logger.warning("resumed from %s at step %d (%.1f min done)", last, step, done_minutes)
    t0 = time.monotonic()
    running = []

    def minutes_done() -> float:
        return done_minutes + (time.monotonic() - t0) / 60

    def save_state() -> None:
        from clarity_se.models.checkpoint import atomic_torch_save

        atomic_torch_save({"model_args": dict(model.hparams), "state_dict": model.state_dict(),
                           "optimizer": opt.state_dict(), "rng": rng.bit_generator.state,
                           "step": step, "minutes": minutes_done(), "history": history,
                           "validations": validations, "val_reference": val_reference}, last)
    logger.warning("training deep_adaptive (%d parameters) on %d clips of %s -> %s",
                   sum(p.numel() for p in model.parameters()), len(sampler.clips), root, out)

    def checkpoint_payload() -> dict:
        payload = {"config": resolved, "step": step, "history": history}
        if validations:
            payload["validation"] = validations
        return payload

    def run_validation(elapsed: float) -> None:
        from clarity_se.training.aec_validation import (
            REFERENCE_SYSTEM,
            plot_validation,
            validate,
            validate_reference,
            write_validation_csv,
        )

        if not val_reference:
            val_reference.append({"system": REFERENCE_SYSTEM,
                                  **validate_reference(val_clips, gains_db=val_gains)})
        row = {"system": "deep_adaptive", "step": step, "minutes": elapsed,
               **validate(model, val_clips, gains_db=val_gains,
                          kalman_selection=float(t.val_kalman_selection),
                          level_target_db=float(t.val_level_target_db))}
        best = max((v["score"] for v in validations if np.isfinite(v["score"])),
                   default=-np.inf)
        validations.append(row)
        write_validation_csv(out.with_name("validation.csv"), val_reference + validations)
        plot_validation(out.with_name("validation.png"), val_reference + validations)
        logger.warning("step %d validation: PESQ-WB dt %.3f  echo MOS dt %.3f  deg MOS dt %.3f"
                       "  ERLE st %.1f dB  score %.3f", step, row["pesq_wb_dt"],
                       row["aecmos_echo_dt"], row["aecmos_deg_dt"], row["erle_st_db"],
                       row["score"])
        if np.isfinite(row["score"]) and row["score"] > best:
            save_deep_adaptive(out.with_name("deep_adaptive_best.pt"), model,
                               checkpoint_payload())

    if val_clips is not None and step == 0 and t.init_checkpoint:
        run_validation(0.0)  # the starting point a fine-tune has to beat
    while True:
        elapsed = minutes_done()
        if elapsed >= t.minutes or (t.max_steps and step >= t.max_steps):
            break
        if cache is not None:
            r_in, e, near = cache.batch(rng, int(t.batch), segment // hop)
            mask = replay(r_in)
            loss_lin = torch.zeros(())
        else:
            b = sampler.batch(int(t.batch))
            spec = {k: model.stft(torch.from_numpy(v).float()) for k, v in b.items()}
            e, _, mask, _ = model.forward_with_mask(spec["mic"], spec["far"])
            near = spec["near"]
            loss_lin = compressed_spectral_loss(e, spec["noecho"], t.compress, t.complex_weight)
        est = mask * e
        weight = (nearend_frame_weight(near, t.nearend_weight)
                  if t.nearend_weight != 1.0 else None)  # fmt: skip
        loss_out = compressed_spectral_loss(est, near, t.compress, t.complex_weight, weight)
        loss = loss_out + t.linear_weight * loss_lin
        if t.distortion_weight:
            # the post-filter's gain on the near-end speech alone: what it takes from the speech
            loss = loss + t.distortion_weight * compressed_spectral_loss(
                mask * near, near, t.compress, t.complex_weight)
        if perceptual is not None:
            loss = loss + t.perceptual_weight * perceptual_term(
                perceptual, est, near, float(t.perceptual_asymmetry))
        opt.zero_grad()
        loss.backward()
        grad = float(torch.nn.utils.clip_grad_norm_(model.parameters(), float(t.grad_clip)))
        if not np.isfinite(grad):
            logger.warning("step %d: non-finite gradient, skipped", step)
            continue
        opt.step()
        step += 1
        running.append((loss_out.item(), loss_lin.item()))
        if step % t.log_every == 0:
            lo, ll = np.mean(running, axis=0)
            running = []
            history.append({"step": step, "minutes": round(elapsed, 2), "loss_out": float(lo),
                            "loss_linear": float(ll)})
            logger.warning("step %d  %.1f min  loss out %.4f  linear %.4f  grad %.2f", step,
                           elapsed, lo, ll, grad)
        if val_clips is not None and step % t.val_every == 0:
            run_validation(elapsed)
        if step % t.checkpoint_every == 0:
            save_deep_adaptive(out, model, checkpoint_payload())
            save_state()
    if val_clips is not None and (not validations or validations[-1]["step"] != step):
        run_validation(minutes_done())
    save_deep_adaptive(out, model, checkpoint_payload())
    save_state()
    logger.warning("done: %d steps in %.1f min -> %s", step, minutes_done(), out)
    if validations:
        best = max(validations, key=lambda v: v["score"] if np.isfinite(v["score"]) else -np.inf)
        logger.warning("best validation score %.3f at step %d -> %s", best["score"],
                       best["step"], out.with_name("deep_adaptive_best.pt"))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``-c/--config`` and dotlist overrides (:func:`clarity_se.aec.config.load_aec_config`)."""
    parser.add_argument("-c", "--config", default=None,
                        help="recipe config (recipes/aec/deep_adaptive/config.yaml)")
    parser.add_argument("overrides", nargs="*", default=[],
                        help="e.g. path.root=data/aec_train train.minutes=5")


def main(args: argparse.Namespace) -> int:
    """Run ``clarity-se aec-train``; 0 on success, 2 on a config or data error."""
    from clarity_se.aec.config import load_aec_config

    try:
        cfg = load_aec_config(args.config, args.overrides)
        train_deep_adaptive(cfg)
    except ValueError as exc:
        logger.error("aec-train: %s", exc)
        return 2
    return 0
