"""Training the RES U-Net (:mod:`clarity_se.models.res_unet`) behind echo cancellers.

``clarity-se res-train -c recipes/aec/res_unet/config.yaml [key=value ...]``:

1. every clip of ``data.root`` (an AEC Challenge synthetic folder with ``nearend_speech``, e.g.
   one written by ``clarity-se aec-data``) is run through each canceller of ``data.aec``; its
   output ``e`` and echo estimate are cached in ``<train.exp_dir>/cache/<system>/`` (atomic
   ``.npz``, reused by a rerun);
2. the STFT features of ``e`` and the echo estimate, and the magnitudes of the near-end speech
   ``s`` and of the residual ``r = e - s`` (echo plus noise) are kept in memory;
3. each step draws ``train.batch_size`` (clip, frame) pairs and an ``alpha`` uniform in
   ``[0, 1]`` per pair, and minimises :func:`~clarity_se.models.res_unet.res_objective` on the
   windows' last frames (Adam, gradient clipping);
4. every ``train.val_every`` steps the objective at ``alpha`` = 0 and 1 on the clips of
   ``data.val_root`` is logged to ``log.csv``; the best (their mean) is ``best.pt``, exported to
   ``train.export``. ``last.pt`` resumes a killed run.
"""

from __future__ import annotations

import csv
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from clarity_se.config import merge_config
from clarity_se.data.aec_challenge import load_aec_dataset, read_clip
from clarity_se.data.audio_io import atomic_path
from clarity_se.models.checkpoint import atomic_torch_save, save_checkpoint
from clarity_se.models.res_unet import RESUNet, res_objective

logger = logging.getLogger(__name__)


@dataclass
class RESDataConfig:
    """``data.*``: training and validation folders and the cancellers in front."""

    root: str = "???"
    val_root: str = "???"
    #: echo cancellers whose outputs are the training inputs (``aec.name`` values)
    aec: list[str] = field(default_factory=lambda: ["pbfdaf", "nlms"])
    max_clips: int = 0  #: 0 = every clip
    max_val_clips: int = 24
    #: ``deep_adaptive``'s post-filter in front of the suppressor (``aec.deep_adaptive
    #: .post_filter``); false: the suppressor learns on the canceller's linear error, the
    #: paper's set-up (run it with ``aec.deep_adaptive.post_filter=false aec.res=unet``)
    post_filter: bool = True


@dataclass
class RESModelConfig:
    """``model.*``: :class:`~clarity_se.models.res_unet.RESUNet` arguments."""

    context: int = 32
    channels: list[int] = field(default_factory=lambda: [24, 48, 72, 96, 128])
    out_channels: int = 16
    #: STFT, samples at 16 kHz: 320/64/128 is the low-delay default (127-sample latency, any
    #: canceller); 320/160/320 is deep_adaptive's own framing (trained on its frames, no
    #: added latency after it: :class:`clarity_se.aec.res.FramewiseResidualEchoChain`)
    win_length: int = 320
    hop_length: int = 64
    synth_length: int = 128


@dataclass
class RESLossConfig:
    """``loss.*``: :func:`~clarity_se.models.res_unet.res_objective` weights."""

    leak_weight: float = 4.0
    nullification_db: float = 6.0
    nullification_weight: float = 0.1
    #: "none", "bin" or "frame": weight the leakage by the residual's share (``res_objective``)
    leak_gate: str = "none"
    #: weight of the PESQ-like term on contiguous crops (:func:`perceptual_crops_loss`; 0: off;
    #: needs the 10 ms hop of ``deep_adaptive``'s framing)
    perceptual_weight: float = 0.0
    #: weight of its asymmetric disturbance (``clarity_se.training.aec_train.perceptual_term``)
    perceptual_asymmetry: float = 0.001
    #: crops per step and their length in frames (each needs 50 frames of near-end speech)
    perceptual_crops: int = 2
    perceptual_frames: int = 150


@dataclass
class RESTrainOptions:
    """``train.*``."""

    exp_dir: str = "exp/res_unet"
    export: str = ""
    steps: int = 4000
    batch_size: int = 128
    lr: float = 1e-3
    grad_clip: float = 5.0
    val_every: int = 250
    seed: int = 0
    num_threads: int = 2
    max_time_s: float = 0.0  #: 0 = no limit
    #: a RES U-Net checkpoint to start from (the same model arguments); empty: random weights
    init_checkpoint: str = ""


@dataclass
class RESTrainConfig:
    """The whole ``res-train`` config."""

    data: RESDataConfig = field(default_factory=RESDataConfig)
    model: RESModelConfig = field(default_factory=RESModelConfig)
    loss: RESLossConfig = field(default_factory=RESLossConfig)
    train: RESTrainOptions = field(default_factory=RESTrainOptions)


def load_res_config(config=None, overrides=None) -> DictConfig:
    """Load a ``res-train`` config (schema :class:`RESTrainConfig`) with dotlist overrides.

    Raises
    ------
    ValueError
        Unknown key, wrong type or a required value (``data.root``, ``data.val_root``) unset;
        the message names the file and key.
    """
    cfg = merge_config(RESTrainConfig, config, overrides, what="res-train config")
    for key in ("root", "val_root"):
        if OmegaConf.is_missing(cfg.data, key):
            raise ValueError(f"res-train config: data.{key} is required")
    return cfg


def _file_digest(path: Path) -> str:
    """First 12 hex digits of the SHA-256 of a file (names a cache of a learned canceller's
    outputs, so that new weights never reuse another checkpoint's outputs)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def canceller_outputs(system_name: str, root: str, cache_dir: Path, max_clips: int = 0,
                      frames_for: RESUNet | None = None, post_filter: bool = True):
    """Run the canceller ``system_name`` over the clips of ``root`` that have near-end speech.

    Parameters
    ----------
    system_name : str
        ``aec.name`` (packaged weights for learned systems).
    root : str
        AEC Challenge synthetic folder with ``nearend_speech``.
    cache_dir : Path
        Outputs are cached there, one ``.npz`` per clip (atomic); for a canceller with
        weights, in a subfolder named by the weights file's SHA-256 (first 12 hex digits),
        followed by ``_kalman<A>`` when its Kalman selection is on (``deep_adaptive``) and by
        ``_linear`` without its post-filter, so outputs of one configuration are never reused
        for another.
    max_clips : int
        The first N clips (0: all).
    frames_for : RESUNet, optional
        When the canceller has its own STFT frames and this model's framing is theirs
        (``deep_adaptive``, :meth:`RESUNet.frame_synchronous`), its output and echo-estimate
        frames are returned as well (``error_spec``, ``echo_spec``), so that the suppressor
        learns on the frames it will mask.
    post_filter : bool
        ``aec.deep_adaptive.post_filter`` of the canceller (false: its linear error; no effect
        on a canceller without a post-filter).

    Returns
    -------
    list of dict
        Per clip: ``id``, ``error``, ``echo_estimate``, ``nearend`` (float32 ``[time]``) and,
        with ``frames_for``, ``error_spec``, ``echo_spec`` (complex64 ``[frames, bins]``).

    Raises
    ------
    ValueError
        A folder without ``nearend_speech`` references, or an unknown system.
    """
    from clarity_se.aec import build_aec_named

    clips = [c for c in load_aec_dataset(root) if c.nearend is not None]
    if not clips:
        raise ValueError(f"{root}: no clips with nearend_speech (a synthetic layout is needed)")
    clips = clips[:max_clips] if max_clips else clips
    system = build_aec_named(system_name, deep_adaptive={"post_filter": bool(post_filter)})
    weights = getattr(system, "checkpoint_path", None)
    if weights is not None:  # a learned canceller: one cache per weights file (and options)
        select = float(getattr(system, "kalman_selection", 0.0) or 0.0)
        linear = getattr(system, "post_filter", True) is False
        cache_dir = cache_dir / (_file_digest(Path(weights))
                                 + (f"_kalman{select:g}" if select else "")
                                 + ("_linear" if linear else ""))
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = []
    from tqdm import tqdm

    frames = (frames_for is not None and hasattr(system, "frame_spectra")
              and frames_for.frame_synchronous(system.model.n_fft, system.model.hop))
    if frames_for is not None and not frames:
        raise ValueError(f"res-train: model.win_length/hop_length/synth_length "
                         f"{frames_for.hparams['win_length']}/{frames_for.hparams['hop_length']}/"
                         f"{frames_for.hparams['synth_length']} are not the frames of "
                         f"{system_name!r}")  # fmt: skip
    for clip in tqdm(clips, desc=f"{system_name} on {Path(root).name}", unit="clip"):
        path = cache_dir / f"{clip.id.replace('/', '__')}{'.frames' if frames else ''}.npz"
        audio = read_clip(clip)
        if path.is_file():
            with np.load(path) as z:
                item = {k: z[k] for k in z.files}
        else:
            result = system(audio.mic, audio.farend)
            item = dict(error=np.asarray(result.output, dtype=np.float32),
                        echo_estimate=np.asarray(result.echo_estimate, dtype=np.float32))
            if frames:
                item["error_spec"], item["echo_spec"] = system.frame_spectra(audio.mic,
                                                                             audio.farend)
            with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                np.savez(handle, **item)
        out.append(dict(id=clip.id, nearend=audio.nearend, **item))
    return out


class FrameBank:
    """Features and magnitudes of many clips, indexable by (clip, frame) windows.

    Parameters
    ----------
    model : RESUNet
        Supplies the STFT, the feature function and the context length.
    clips : list of dict
        From :func:`canceller_outputs`; a clip's ``error_spec``/``echo_spec`` frames, if
        present, are used instead of an analysis of ``error``/``echo_estimate``.
    """

    def __init__(self, model: RESUNet, clips: list[dict]) -> None:
        stft, ctx = model.stft, model.context
        self.context = ctx
        self.windows, self.e_mag, self.s_mag, self.r_mag = [], [], [], []
        pad_value = model.silence_feature()
        with torch.no_grad():
            for c in clips:
                s_spec = stft.analysis(torch.from_numpy(c["nearend"]))
                if "error_spec" in c:
                    e_spec = torch.from_numpy(c["error_spec"])
                    y_spec = torch.from_numpy(c["echo_spec"])
                    n = min(e_spec.shape[0], s_spec.shape[0])
                    e_spec, y_spec, s_spec = e_spec[:n], y_spec[:n], s_spec[:n]
                else:
                    e_spec = stft.analysis(torch.from_numpy(c["error"]))
                    y_spec = stft.analysis(torch.from_numpy(c["echo_estimate"]))
                feats = model.features(e_spec, y_spec).float()
                pad = pad_value.expand(2, ctx - 1, feats.shape[-1])
                self.windows.append(torch.cat([pad, feats], dim=1).contiguous())
                self.e_mag.append(e_spec.abs().float())
                self.s_mag.append(s_spec.abs().float())
                self.r_mag.append((e_spec - s_spec).abs().float())
        self.n_frames = np.array([m.shape[0] for m in self.e_mag])

    def sample(self, rng: np.random.Generator, n: int):
        """``n`` random windows: features ``[n, 2, context, bins]`` and the last frames'
        ``|E|, |S|, |R|`` ``[n, bins]``."""
        clip = rng.integers(0, len(self.e_mag), n)
        frame = (rng.random(n) * self.n_frames[clip]).astype(int)
        return self.gather(clip, frame)

    def gather(self, clip, frame):
        """Windows and magnitudes of the given (clip, frame) pairs."""
        ctx = self.context
        feats = torch.stack([self.windows[c][:, f : f + ctx] for c, f in zip(clip, frame,
                                                                             strict=True)])
        e = torch.stack([self.e_mag[c][f] for c, f in zip(clip, frame, strict=True)])
        s = torch.stack([self.s_mag[c][f] for c, f in zip(clip, frame, strict=True)])
        r = torch.stack([self.r_mag[c][f] for c, f in zip(clip, frame, strict=True)])
        return feats, e, s, r

    def crops(self, clips, starts, length: int):
        """Contiguous crops: windows ``[n * length, 2, context, bins]`` and ``|E|, |S|``
        ``[n, length, bins]`` of ``length`` frames of each ``(clip, start)``."""
        clip = np.repeat(np.asarray(clips), length)
        frame = (np.asarray(starts)[:, None] + np.arange(length)[None]).reshape(-1)
        feats, e, s, _ = self.gather(clip, frame)
        return feats, e.reshape(len(clips), length, -1), s.reshape(len(clips), length, -1)

    def random_crops(self, rng: np.random.Generator, n: int, length: int):
        """``n`` random ``(clip, start)`` pairs among the clips of at least ``length`` frames.

        Raises
        ------
        ValueError
            No clip has ``length`` frames.
        """
        long_enough = np.flatnonzero(self.n_frames >= length)
        if long_enough.size == 0:
            raise ValueError(f"loss.perceptual_frames: {length} frames, longer than every clip "
                             f"({int(self.n_frames.max())} frames at most)")
        clips = rng.choice(long_enough, n)
        starts = (rng.random(n) * (self.n_frames[clips] - length + 1)).astype(int)
        return clips, starts

    def all_pairs(self, stride: int = 1):
        """Every ``stride``-th (clip, frame) pair, as two arrays."""
        clip = np.concatenate([np.full(len(range(0, n, stride)), i)
                               for i, n in enumerate(self.n_frames)])  # fmt: skip
        frame = np.concatenate([np.arange(0, n, stride) for n in self.n_frames])
        return clip, frame


def _objective(model, bank, cfg, clip, frame, alpha_value=None, rng=None):
    feats, e, s, r = bank.gather(clip, frame)
    if alpha_value is None:
        alpha = torch.from_numpy(rng.random(len(clip)).astype(np.float32))
    else:
        alpha = torch.full((len(clip),), float(alpha_value))
    mask = model.window_mask(feats, alpha)
    return res_objective(mask, e, s, r, alpha, cfg.loss.leak_weight, cfg.loss.nullification_db,
                         cfg.loss.nullification_weight, cfg.loss.leak_gate)  # fmt: skip


def perceptual_crops_loss(model, bank, cfg, loss_fn, clips, starts, alpha) -> torch.Tensor:
    """The PESQ-like term of the suppressor's output on contiguous crops.

    The network masks every frame of each crop (one window per frame, as it runs), and
    ``0.1 d_sym + loss.perceptual_asymmetry d_asym`` of the masked error magnitudes against the
    near-end speech (:func:`clarity_se.training.aec_train.perceptual_term`, the term
    ``aec-train`` fine-tunes ``deep_adaptive``'s post-filter with; phase-blind) is averaged
    over the crops.

    Parameters
    ----------
    model : RESUNet
    bank : FrameBank
    cfg : DictConfig
        The ``res-train`` config (``loss.perceptual_*``).
    loss_fn : clarity_se.training.perceptual_loss.PesqLikeLoss
    clips, starts : np.ndarray [shape=(n,)], int
        The crops (:meth:`FrameBank.random_crops`).
    alpha : Tensor [shape=(n,)]
        The trade-off fed to the network, one per crop.

    Returns
    -------
    Tensor
        Scalar (0 when no crop holds 50 frames of near-end speech).
    """
    from clarity_se.training.aec_train import perceptual_term

    length = int(cfg.loss.perceptual_frames)
    feats, e, s = bank.crops(clips, starts, length)
    mask = model.window_mask(feats, alpha.repeat_interleave(length)).reshape(e.shape)
    est = torch.complex(mask * e, torch.zeros_like(e))
    near = torch.complex(s, torch.zeros_like(s))
    return perceptual_term(loss_fn, est, near, float(cfg.loss.perceptual_asymmetry))


def _perceptual_check(model: RESUNet, cfg) -> None:
    if cfg.loss.perceptual_weight < 0 or cfg.loss.perceptual_crops < 1:
        raise ValueError("loss.perceptual_weight must be >= 0 and loss.perceptual_crops >= 1, "
                         f"got {cfg.loss.perceptual_weight} and {cfg.loss.perceptual_crops}")
    if cfg.loss.perceptual_weight > 0 and model.stft.hop_length != 160:
        raise ValueError("loss.perceptual_weight: the PESQ-like term needs 10 ms frames "
                         f"(model.hop_length=160), got model.hop_length={model.stft.hop_length}")


def _validation_crops(bank, length: int):
    """Every whole ``length``-frame crop of every validation clip, back to back."""
    pairs = [(i, start) for i, n in enumerate(bank.n_frames)
             for start in range(0, int(n) - length + 1, length)]
    return np.array([p[0] for p in pairs], dtype=int), np.array([p[1] for p in pairs], dtype=int)


@torch.no_grad()
def validate(model, bank, cfg, perceptual_fn=None) -> dict[str, float]:
    """Objective at ``alpha`` 0 and 1 over every 4th frame of the validation clips; with
    ``loss.perceptual_weight``, also the PESQ-like term at ``alpha`` 0.5 over back-to-back
    crops of every clip (``val_perceptual``; ``perceptual_fn``: the trainer's
    :class:`~clarity_se.training.perceptual_loss.PesqLikeLoss`, built here if not given)."""
    model.eval()
    clip, frame = bank.all_pairs(stride=4)
    out = {}
    for a in (0.0, 1.0):
        losses, weights = [], []
        for i in range(0, len(clip), 512):
            losses.append(float(_objective(model, bank, cfg, clip[i:i + 512], frame[i:i + 512],
                                           alpha_value=a)))  # fmt: skip
            weights.append(len(clip[i:i + 512]))
        out[f"val_alpha{a:g}"] = float(np.average(losses, weights=weights))
    if cfg.loss.perceptual_weight > 0:
        from clarity_se.training.perceptual_loss import PesqLikeLoss

        loss_fn = perceptual_fn or PesqLikeLoss(model.stft.n_bins)
        clips, starts = _validation_crops(bank, int(cfg.loss.perceptual_frames))
        total = 0.0
        for i in range(0, len(clips), 8):
            part, first = clips[i:i + 8], starts[i:i + 8]
            term = perceptual_crops_loss(model, bank, cfg, loss_fn, part, first,
                                         torch.full((len(part),), 0.5))
            total += float(term) * len(part)  # the term is a mean over its crops
        out["val_perceptual"] = total / max(len(clips), 1)
    model.train()
    return out


def train_res(cfg: DictConfig) -> Path:
    """Train the RES U-Net as configured; returns the path of ``best.pt``.

    Raises
    ------
    ValueError
        Bad data folders or systems (see :func:`canceller_outputs`); a
        ``train.init_checkpoint`` that is no RES U-Net of the configured arguments; the
        PESQ-like term with another hop than 10 ms or a crop longer than every clip.
    """
    torch.set_num_threads(cfg.train.num_threads)
    torch.manual_seed(cfg.train.seed)
    rng = np.random.default_rng(cfg.train.seed)
    exp = Path(cfg.train.exp_dir)
    exp.mkdir(parents=True, exist_ok=True)
    model = RESUNet(context=cfg.model.context, channels=tuple(cfg.model.channels),
                    out_channels=cfg.model.out_channels, win_length=cfg.model.win_length,
                    hop_length=cfg.model.hop_length,
                    synth_length=cfg.model.synth_length)  # fmt: skip
    _perceptual_check(model, cfg)
    if cfg.train.init_checkpoint:
        from clarity_se.models.checkpoint import load_model

        init, _ = load_model(cfg.train.init_checkpoint)
        if not isinstance(init, RESUNet):
            raise ValueError(f"train.init_checkpoint: {cfg.train.init_checkpoint} holds "
                             f"{type(init).__name__}, not a RESUNet")
        try:
            model.load_state_dict(init.state_dict())
        except RuntimeError as exc:
            raise ValueError(f"train.init_checkpoint: {cfg.train.init_checkpoint}: other model "
                             f"arguments than model.* ({str(exc).splitlines()[0]})") from exc
    perceptual_fn = None
    if cfg.loss.perceptual_weight > 0:
        from clarity_se.training.perceptual_loss import PesqLikeLoss

        perceptual_fn = PesqLikeLoss(model.stft.n_bins)
    # a frame-synchronous model learns on the canceller's own frames
    st = model.stft
    frames_for = model if st.win_length == st.synth_length == 2 * st.hop_length else None
    train_clips, val_clips = [], []
    for name in cfg.data.aec:
        train_clips += canceller_outputs(name, cfg.data.root, exp / "cache" / name / "train",
                                         cfg.data.max_clips, frames_for,
                                         cfg.data.post_filter)  # fmt: skip
        val_clips += canceller_outputs(name, cfg.data.val_root, exp / "cache" / name / "val",
                                       cfg.data.max_val_clips, frames_for,
                                       cfg.data.post_filter)  # fmt: skip
    bank, val_bank = FrameBank(model, train_clips), FrameBank(model, val_clips)
    if perceptual_fn is not None:
        length = int(cfg.loss.perceptual_frames)
        for name, b in (("data.root", bank), ("data.val_root", val_bank)):
            if b.n_frames.max() < length:
                raise ValueError(f"loss.perceptual_frames: {length} frames, longer than every "
                                 f"clip of {name} ({int(b.n_frames.max())} frames at most)")
    logger.info("res-train: %d training frames, %d validation frames",
                int(bank.n_frames.sum()), int(val_bank.n_frames.sum()))
    optim = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, cfg.train.steps,
                                                       eta_min=cfg.train.lr * 0.05)
    step, best = 0, math.inf
    last = exp / "last.pt"
    if last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(state["state_dict"])
        optim.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, best = state["step"], state["best"]
        rng = np.random.default_rng([cfg.train.seed, step])
        logger.info("res-train: resumed at step %d", step)
    log_path = exp / "log.csv"
    start = time.monotonic()
    model.train()
    from tqdm import tqdm

    bar = tqdm(total=cfg.train.steps, initial=step, desc="res-train", unit="step")
    running = []
    while step < cfg.train.steps:
        clip = rng.integers(0, len(bank.n_frames), cfg.train.batch_size)
        frame = (rng.random(cfg.train.batch_size) * bank.n_frames[clip]).astype(int)
        loss = _objective(model, bank, cfg, clip, frame, rng=rng)
        if perceptual_fn is not None:
            crops, starts = bank.random_crops(rng, cfg.loss.perceptual_crops,
                                              cfg.loss.perceptual_frames)
            alpha = torch.from_numpy(rng.random(len(crops)).astype(np.float32))
            loss = loss + cfg.loss.perceptual_weight * perceptual_crops_loss(
                model, bank, cfg, perceptual_fn, crops, starts, alpha)
        optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        optim.step()
        sched.step()
        step += 1
        running.append(loss.item())
        bar.update(1)
        timed_out = cfg.train.max_time_s and time.monotonic() - start > cfg.train.max_time_s
        if step % cfg.train.val_every == 0 or step == cfg.train.steps or timed_out:
            metrics = validate(model, val_bank, cfg, perceptual_fn)
            score = 0.5 * (metrics["val_alpha0"] + metrics["val_alpha1"])
            score += cfg.loss.perceptual_weight * metrics.get("val_perceptual", 0.0)
            row = dict(step=step, train_loss=float(np.mean(running)), **metrics,
                       lr=sched.get_last_lr()[0], elapsed_s=round(time.monotonic() - start, 1))
            running = []
            new = not log_path.is_file()
            with open(log_path, "a", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(row))
                if new:
                    writer.writeheader()
                writer.writerow(row)
            bar.set_postfix(val=f"{score:.4f}")
            training = dict(config=OmegaConf.to_container(cfg), step=step, **metrics)
            if score < best:
                best = score
                model.eval()
                save_checkpoint(exp / "best.pt", model, training=training)
                model.train()
            atomic_torch_save(dict(state_dict=model.state_dict(), optimizer=optim.state_dict(),
                                   scheduler=sched.state_dict(), step=step, best=best), last)
            if timed_out:
                logger.info("res-train: train.max_time_s reached at step %d", step)
                break
    bar.close()
    best_path = exp / "best.pt"
    if cfg.train.export and best_path.is_file():
        with atomic_path(cfg.train.export) as tmp:
            shutil.copyfile(best_path, tmp)
    return best_path
