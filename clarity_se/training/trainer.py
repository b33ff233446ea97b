"""Training loop of the enhancement models: single process or DistributedDataParallel.

* Model: any registered model (:data:`clarity_se.models.MODELS`, ``model.name`` and its
  constructor arguments). It maps ``mixture [batch, channels, time]`` to ``est_sources
  [batch, n_src, 2, time]`` (Conv-TasNet), or to ``[batch, 2, time]`` (one estimate per ear,
  read as ``n_src = 1``: DTLN). ``data.view=front_ears`` feeds mono models the resampled
  front-microphone pair (:class:`~clarity_se.data.views.FrontEarsView`).
* Loss (``train.loss``): negative SI-SDR (Le Roux et al. 2019) or negative SNR (the DTLN loss)
  of the target averaged over both ears for ``n_src = 1``; uPIT (Kolbaek et al. 2017) over
  (target, residual) for ``n_src = 2``; with ``train.preemphasis_weight > 0`` part of the SI-SDR
  is on pre-emphasised signals (:mod:`clarity_se.losses.emphasis`); with
  ``train.envelope_weight > 0`` each signal's loss adds that many dB per unit of lost slow
  band-envelope correlation (:mod:`clarity_se.losses.envelope`); with ``train.mask_weight > 0``
  it adds that many times the dB error of the MVDR mask that the estimate gives
  (:mod:`clarity_se.losses.mvdr_mask`; one-source models).
* Adam, global-norm gradient clipping, ReduceLROnPlateau on validation SI-SDR or cosine decay.
* Validation: SI-SDR and SI-SDR improvement over the front-mic mixture (``CH1``) on the dev
  split, on the output chosen by :func:`~clarity_se.models.target_selection.select_target`.
* ``<exp_dir>/``: ``config.yaml`` (resolved), ``log.csv`` (one row per epoch), ``last.pt``
  (everything needed to resume: model, optimiser, scheduler, RNG, epoch) and ``best.pt`` (best
  validation SI-SDR), both self-describing (:mod:`clarity_se.models.checkpoint`) and written
  atomically, so a run killed at any moment resumes from the last finished epoch; with
  ``train.keep_epochs`` also ``epoch_NNN.pt`` (weights) after every epoch.
* DDP: the same command under ``torchrun --nproc_per_node=K`` (``WORLD_SIZE > 1``): NCCL on
  CUDA, gloo on CPU; a :class:`~torch.utils.data.distributed.DistributedSampler` splits the
  scenes; rank 0 validates, logs and writes checkpoints, the metric is broadcast.
"""

from __future__ import annotations

import csv
import logging
import os
import random
import shutil
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from clarity_se.data.scene_segments import SceneSegmentDataset
from clarity_se.data.views import FrontEarsView
from clarity_se.losses import neg_si_sdr_emphasised, pit_loss, si_sdr, snr
from clarity_se.losses.envelope import EnvelopeCorrelation
from clarity_se.losses.mvdr_mask import MVDRMaskError
from clarity_se.models import build_model
from clarity_se.models.checkpoint import read_checkpoint, save_checkpoint
from clarity_se.models.target_selection import pick_target

logger = logging.getLogger(__name__)

LOG_FIELDS = (
    "epoch",
    "step",
    "train_loss",
    "val_si_sdr",
    "val_si_sdri",
    "lr",
    "epoch_time_s",
    "n_train_items",
)


def init_args_differences(
    checkpoint_args: dict, config_args: dict, adapted: tuple[str, ...] = ()
) -> list[str]:
    """What the config's ``model.*`` changes in a ``train.init_from`` checkpoint's arguments.

    ``train.init_from`` loads the checkpoint's weights only; the model is built from the
    config. Arguments set after training with ``clarity-se set-args`` (a mask floor, an output
    gain) are therefore dropped unless the config repeats them; the trainer logs each
    difference as a warning.

    Parameters
    ----------
    checkpoint_args : dict
        ``model_args`` of the ``init_from`` checkpoint.
    config_args : dict
        ``hparams`` of the model built from the config.
    adapted : tuple of str
        Arguments whose change the model's ``adapt_state_dict`` turned into weights (a
        Conv-TasNet ``n_src`` 1 -> 2 widening for uPIT): intended, so not listed.

    Returns
    -------
    list of str
        One line per argument whose values differ, e.g. ``"model.mask_floor=0.0 (the
        checkpoint has 0.4; add model.mask_floor=0.4 to keep it)"``; empty if none differ.
        Arguments present on one side only are not listed.
    """
    out = []
    for key in sorted((set(checkpoint_args) & set(config_args)) - set(adapted)):
        old, new = checkpoint_args[key], config_args[key]
        if old != new:
            out.append(f"model.{key}={new} (the checkpoint has {old}; add model.{key}={old} "
                       "to keep it)")
    return out


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def setup_distributed(device: str) -> tuple[int, int, torch.device]:
    """Initialise the process group when launched by torchrun (``WORLD_SIZE > 1``).

    Parameters
    ----------
    device : str
        ``cpu``, ``cuda`` or ``cuda:N``; under DDP ``cuda`` becomes ``cuda:<LOCAL_RANK>``.

    Returns
    -------
    rank, world_size : int
    device : torch.device

    Raises
    ------
    ValueError
        If CUDA is requested but not available.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = str(device).startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise ValueError(f"train.device={device} but CUDA is not available")
    if world > 1:
        if use_cuda:
            torch.cuda.set_device(local_rank)
            dev = torch.device("cuda", local_rank)
        else:
            dev = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        return rank, world, dev
    return 0, 1, torch.device(device)


def _neg_snr(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return -snr(est, ref)


def _with_envelope(loss_fn, envelope, weight: float, est: torch.Tensor,
                   ref: torch.Tensor) -> torch.Tensor:
    return loss_fn(est, ref) + weight * (1.0 - envelope(est, ref))


def compute_loss(
    est_sources: torch.Tensor,
    sources: torch.Tensor,
    preemphasis_weight: float = 0.0,
    loss: str = "si_sdr",
    envelope: EnvelopeCorrelation | None = None,
    envelope_weight: float = 0.0,
    mask_error: MVDRMaskError | None = None,
    mask_weight: float = 0.0,
    mixture: torch.Tensor | None = None,
) -> torch.Tensor:
    """Training loss in dB (lower is better).

    Parameters
    ----------
    est_sources, sources : Tensor [shape=(batch, n_src, 2, time)]
    preemphasis_weight : float
        Share of SI-SDR on pre-emphasised signals (``train.preemphasis_weight``; see
        :func:`clarity_se.losses.neg_si_sdr_emphasised`); 0 is plain SI-SDR.
    loss : {"si_sdr", "neg_snr"}
        Per-signal loss: negative SI-SDR (with the pre-emphasis share) or negative SNR
        (Westhausen & Meyer 2020, the DTLN loss; ``preemphasis_weight`` must be 0).
    envelope : EnvelopeCorrelation, optional
        The slow band-envelope correlation at the model's sampling rate
        (:mod:`clarity_se.losses.envelope`); needed when ``envelope_weight > 0``.
    envelope_weight : float
        ``train.envelope_weight``: dB added to the per-signal loss per unit of
        ``1 - rho`` (0: none).
    mask_error : MVDRMaskError, optional
        The beamformer-mask error (:mod:`clarity_se.losses.mvdr_mask`); needed when
        ``mask_weight > 0``.
    mask_weight : float
        ``train.mask_weight``: weight of the mask error (dB) added to the mean loss (0: none).
    mixture : Tensor [shape=(batch, channels, time)], optional
        The input in the Clarity layout at the sources' scale: rows 0 and 1 (the ears' front
        microphones, CH1-L and CH1-R) are the mask's reference. Needed when
        ``mask_weight > 0``.

    Returns
    -------
    Tensor []
        ``n_src == 1``: mean per-signal loss over batch and ears (plus ``mask_weight`` times the
        mean mask error); otherwise the uPIT loss with the same per-signal loss.

    Raises
    ------
    ValueError
        Unknown ``loss``, a pre-emphasis share with ``neg_snr``, a negative
        ``envelope_weight``, or a positive one without ``envelope``; a negative
        ``mask_weight``, or a positive one without ``mask_error`` and ``mixture``, with
        ``n_src > 1`` or with an estimate that is not two-ear.
    """
    if loss == "si_sdr":
        loss_fn = partial(neg_si_sdr_emphasised, weight=float(preemphasis_weight))
    elif loss == "neg_snr":
        if preemphasis_weight:
            raise ValueError("train.preemphasis_weight applies to train.loss=si_sdr only")
        loss_fn = _neg_snr
    else:
        raise ValueError(f"train.loss: expected si_sdr or neg_snr, got {loss!r}")
    if envelope_weight < 0 or (envelope_weight > 0 and envelope is None):
        raise ValueError(f"train.envelope_weight: expected >= 0 with an envelope measure, got "
                         f"{envelope_weight} ({'with' if envelope is not None else 'without'})")
    if envelope_weight > 0:
        loss_fn = partial(_with_envelope, loss_fn, envelope, float(envelope_weight))
    if mask_weight < 0 or (mask_weight > 0 and (
            mask_error is None or mixture is None or est_sources.shape[1] != 1
            or est_sources.shape[2] != 2 or mixture.shape[1] < 2)):  # fmt: skip
        raise ValueError(f"train.mask_weight: expected >= 0, and > 0 only for one-source, "
                         f"two-ear models with the mask error and a Clarity-layout mixture, got "
                         f"{mask_weight} (estimate {tuple(est_sources.shape)}, mixture "
                         f"{None if mixture is None else tuple(mixture.shape)})")  # fmt: skip
    if est_sources.shape[1] == 1:
        total = loss_fn(est_sources, sources).mean()
        if mask_weight > 0:
            total = total + float(mask_weight) * mask_error(
                est_sources[:, 0], sources[:, 0], mixture[:, :2]).mean()  # fmt: skip
        return total
    loss, _ = pit_loss(est_sources, sources, loss_fn)
    return loss


#: Steps with a non-finite loss skipped in one run before training stops with an error.
MAX_SKIPPED_STEPS = 10


def _all_finite(loss: torch.Tensor, world: int) -> bool:
    """Whether the loss is finite on every process (all skip a step together under DDP)."""
    finite = torch.isfinite(loss.detach()).to(torch.float32).reshape(1)
    if world > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item() > 0)


def forward_sources(net: nn.Module, mixture: torch.Tensor) -> torch.Tensor:
    """``net(mixture)`` as ``est_sources [batch, n_src, 2, time]``.

    A model returning ``[batch, 2, time]`` (one estimate per ear, e.g. DTLN) is read as one
    source.
    """
    out = net(mixture)
    return out.unsqueeze(1) if out.dim() == 3 else out


@torch.no_grad()
def validate(
    model: nn.Module, dataset: SceneSegmentDataset, device: torch.device, progress: bool = False
) -> dict[str, float]:
    """Mean SI-SDR (dB) of the selected target output and its improvement over ``CH1``.

    Parameters
    ----------
    model : nn.Module
        The (unwrapped) model.
    dataset : SceneSegmentDataset
        Validation items (one at a time, so whole scenes of any length work).
    device : torch.device
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    dict
        ``si_sdr``, ``si_sdr_input``, ``si_sdri`` (dB, averaged over ears and scenes), ``n``.
    """
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    values, inputs = [], []
    for i in tqdm(range(len(dataset)), desc="validate", disable=not progress, leave=False):
        item = dataset[i]
        mixture = item["mixture"][None].to(device)
        target = item["sources"][None, 0].to(device)
        est = pick_target(forward_sources(model, mixture), model.sample_rate)
        values.append(si_sdr(est, target).mean().item())
        inputs.append(si_sdr(mixture[:, :2], target).mean().item())
    model.train(was_training)
    mean = float(np.mean(values)) if values else float("nan")
    mean_in = float(np.mean(inputs)) if inputs else float("nan")
    return {"si_sdr": mean, "si_sdr_input": mean_in, "si_sdri": mean - mean_in, "n": len(values)}


def _make_scheduler(cfg: DictConfig, optimizer: torch.optim.Optimizer):
    if cfg.optim.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="max",
            factor=cfg.optim.factor,
            patience=cfg.optim.patience,
            min_lr=cfg.optim.min_lr,
        )
    if cfg.optim.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(cfg.train.epochs, 1), eta_min=cfg.optim.min_lr
        )
    return None


def _append_csv(path: Path, row: dict) -> None:
    new = not path.is_file()
    with open(path, "a", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in LOG_FIELDS})
        handle.flush()
        os.fsync(handle.fileno())


def _rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def build_datasets(cfg: DictConfig) -> tuple:
    """Training and validation datasets of ``cfg`` (``data.*``, ``model.*``).

    Items are ``{"mixture": [channels, T], "sources": [n_src, 2, T]}``; any dataset yielding
    that dict (with ``set_epoch`` and ``manifest`` if it has them) can stand in.

    Returns
    -------
    train_set, dev_set : Dataset

    Raises
    ------
    ValueError
        No scenes, or a model sample rate the data view cannot provide.
    """
    n_src = int(cfg.model.get("n_src", 1))
    if cfg.data.source == "randomised":
        from clarity_se.data.render.randomised import build_training_dataset

        common = dict(n_src=n_src, target=cfg.data.target)
        train_set = build_training_dataset(
            cfg.data.randomised, split="train", seed=int(cfg.train.seed),
            segment_s=float(cfg.data.segment_s), **common,
        )  # fmt: skip
        if not cfg.data.dev_root:
            dev_set = build_training_dataset(
                cfg.data.randomised, split="validation", n_items=int(cfg.data.dev_items),
                segment_s=float(cfg.data.dev_segment_s) or 4.0, **common,
            )  # fmt: skip
    else:
        if not cfg.data.root:
            raise ValueError("data.root is required with data.source=scenes")
        train_set = SceneSegmentDataset(
            cfg.data.root,
            cfg.data.train_split,
            n_src=n_src,
            segment_s=cfg.data.segment_s,
            target=cfg.data.target,
            random_crop=True,
            max_scenes=cfg.data.max_train_scenes,
            seed=cfg.train.seed,
            cache=cfg.data.cache,
            remix_prob=cfg.data.remix_prob,
            remix_gain_db=cfg.data.remix_gain_db,
        )
    if cfg.data.source == "scenes" or cfg.data.dev_root:
        dev_set = SceneSegmentDataset(
            cfg.data.dev_root or cfg.data.root,
            cfg.data.dev_split,
            n_src=n_src,
            segment_s=cfg.data.dev_segment_s,
            target=cfg.data.target,
            random_crop=False,
            max_scenes=cfg.data.max_dev_scenes,
            cache=cfg.data.cache,
        )
    if cfg.data.view == "front_ears":
        train_set = FrontEarsView(train_set, int(cfg.model.sample_rate))
        dev_set = FrontEarsView(dev_set, int(cfg.model.sample_rate))
    if train_set.sample_rate != cfg.model.sample_rate:
        raise ValueError(
            f"model.sample_rate={cfg.model.sample_rate} but the data are {train_set.sample_rate} Hz"
            " (data.view=front_ears resamples the front pair)"
        )
    return train_set, dev_set


def train(cfg: DictConfig) -> tuple[nn.Module, list[dict]]:
    """Train (or resume training) the enhancer described by ``cfg``.

    Parameters
    ----------
    cfg : DictConfig
        A :class:`~clarity_se.training.config.TrainConfig`.

    Returns
    -------
    model : nn.Module
        The trained model (unwrapped from DDP), on ``train.device``.
    history : list of dict
        One row per epoch run by this call (the ``log.csv`` fields).

    Raises
    ------
    ValueError
        Bad config values, no training scenes, or an unreadable/incompatible ``last.pt``.
    """
    from tqdm import tqdm

    rank, world, device = setup_distributed(cfg.train.device)
    is_main = rank == 0
    if cfg.train.num_threads > 0:
        torch.set_num_threads(cfg.train.num_threads)
    seed_everything(cfg.train.seed)
    exp_dir = Path(cfg.train.exp_dir)
    if is_main:
        exp_dir.mkdir(parents=True, exist_ok=True)
        from clarity_se.data.audio_io import atomic_write_text

        atomic_write_text(exp_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    model_args = {
        k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "name"
    }
    model = build_model(cfg.model.name, **model_args).to(device)
    train_set, dev_set = build_datasets(cfg)
    sampler = DistributedSampler(
        train_set, num_replicas=world, rank=rank, shuffle=True, seed=cfg.train.seed, drop_last=True
    )
    if len(sampler) == 0:
        raise ValueError(f"{len(train_set)} training scenes are too few for {world} processes")
    loader = DataLoader(
        train_set,
        batch_size=cfg.train.batch_size,
        sampler=sampler,
        num_workers=cfg.data.num_workers,
        drop_last=False,
    )
    optimizer = torch.optim.Adam(
        model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
    )
    scheduler = _make_scheduler(cfg, optimizer)
    start_epoch, best, step = 0, -float("inf"), 0
    last_path, best_path = exp_dir / "last.pt", exp_dir / "best.pt"
    if cfg.train.resume and last_path.is_file():
        payload = read_checkpoint(last_path)
        try:
            model.load_state_dict(payload["state_dict"])
        except RuntimeError as exc:
            raise ValueError(f"{last_path}: does not match model.* of the config ({exc})") from None
        optimizer.load_state_dict(payload["optimizer"])
        if scheduler is not None and payload.get("scheduler") is not None:
            scheduler.load_state_dict(payload["scheduler"])
        start_epoch = int(payload["epoch"]) + 1
        best = float(payload["best_val_si_sdr"])
        step = int(payload["step"])
        _set_rng_state(payload["rng"])
        logger.info("resumed from %s at epoch %d (best %.2f dB)", last_path, start_epoch, best)
    elif cfg.train.init_from:
        init_path = Path(cfg.train.init_from)
        payload = read_checkpoint(init_path)
        try:
            state = payload["state_dict"]
            adapted: tuple[str, ...] = ()
            if hasattr(model, "adapt_state_dict"):  # e.g. Conv-TasNet n_src 1 -> 2
                state = model.adapt_state_dict(state)
                if state is not payload["state_dict"]:
                    adapted = tuple(model.adapted_args)
                    for key in adapted:
                        logger.info("train.init_from=%s: %s %s -> %s (weights adapted)", init_path,
                                    key, payload["model_args"].get(key), model.hparams.get(key))
            model.load_state_dict(state)
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"{init_path}: does not match model.* of the config ({exc})") from None
        for line in init_args_differences(payload["model_args"], model.hparams, adapted):
            logger.warning("train.init_from=%s: %s", init_path, line)
        logger.info("fine-tuning from the weights of %s", init_path)
    net: nn.Module = model
    if world > 1:
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    steps_per_epoch = cfg.train.steps_per_epoch or len(loader)
    training_info = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "train_manifest": train_set.manifest(),
        "dev_manifest": {k: v for k, v in dev_set.manifest().items()},
        "world_size": world,
    }
    history: list[dict] = []
    t_start = time.monotonic()
    stop = False
    n_skipped = 0
    envelope = None
    if cfg.train.envelope_weight:
        envelope = EnvelopeCorrelation(int(train_set.sample_rate)).to(device)
    mask_error = MVDRMaskError().to(device) if cfg.train.mask_weight else None
    for epoch in range(start_epoch, cfg.train.epochs):
        t_epoch = time.monotonic()
        net.train()
        losses: list[float] = []
        n_items = 0
        sub_epoch = 0
        bar = tqdm(
            total=steps_per_epoch,
            desc=f"epoch {epoch}",
            disable=not (is_main and cfg.train.progress),
            leave=False,
        )
        while len(losses) < steps_per_epoch and not stop:
            sampler.set_epoch(epoch * 1000 + sub_epoch)
            train_set.set_epoch(epoch * 1000 + sub_epoch)
            sub_epoch += 1
            for batch in loader:
                mixture = batch["mixture"].to(device, non_blocking=True)
                sources = batch["sources"].to(device, non_blocking=True)
                loss = compute_loss(
                    forward_sources(net, mixture),
                    sources,
                    cfg.train.preemphasis_weight,
                    cfg.train.loss,
                    envelope,
                    cfg.train.envelope_weight,
                    mask_error,
                    cfg.train.mask_weight,
                    mixture,
                )
                if not _all_finite(loss, world):  # a bad item must not poison the weights
                    n_skipped += 1
                    meta = batch.get("metadata", {}) if isinstance(batch, dict) else {}
                    where = meta.get("index") if isinstance(meta, dict) else None
                    logger.warning("epoch %d step %d: non-finite loss, step skipped (items %s)",
                                   epoch, step, where)  # fmt: skip
                    if n_skipped > MAX_SKIPPED_STEPS:
                        raise ValueError(f"training: {n_skipped} steps with a non-finite loss "
                                         f"(last items {where}); check the data")  # fmt: skip
                    continue
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.optim.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                optimizer.step()
                step += 1
                n_items += mixture.shape[0]
                losses.append(loss.item())
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.2f}")
                if cfg.train.max_time_s > 0 and time.monotonic() - t_start > cfg.train.max_time_s:
                    stop = True
                if len(losses) >= steps_per_epoch or stop:
                    break
        bar.close()
        if stop and len(losses) < steps_per_epoch:
            logger.info("train.max_time_s reached inside epoch %d: not saved, stopping", epoch)
            break
        train_loss = torch.tensor(float(np.mean(losses)), device=device)
        val = torch.zeros(2, device=device)
        if world > 1:
            dist.all_reduce(train_loss)
            train_loss /= world
        if is_main:
            metrics = validate(model, dev_set, device, progress=cfg.train.progress)
            val = torch.tensor([metrics["si_sdr"], metrics["si_sdri"]], device=device)
        if world > 1:
            dist.broadcast(val, src=0)
        val_si_sdr, val_si_sdri = float(val[0]), float(val[1])
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(val_si_sdr)
        elif scheduler is not None:
            scheduler.step()
        improved = val_si_sdr > best
        best = max(best, val_si_sdr)
        row = {
            "epoch": epoch,
            "step": step,
            "train_loss": round(float(train_loss), 4),
            "val_si_sdr": round(val_si_sdr, 4),
            "val_si_sdri": round(val_si_sdri, 4),
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_time_s": round(time.monotonic() - t_epoch, 2),
            "n_train_items": n_items * world,
        }
        history.append(row)
        if is_main:
            logger.info("epoch %d: %s", epoch, row)
            _append_csv(exp_dir / "log.csv", row)
            info = dict(
                training_info,
                epoch=epoch,
                step=step,
                val_si_sdr=val_si_sdr,
                val_si_sdri=val_si_sdri,
            )
            if improved:
                save_checkpoint(best_path, model, training=info)
            if cfg.train.keep_epochs:
                save_checkpoint(exp_dir / f"epoch_{epoch:03d}.pt", model, training=info)
            save_checkpoint(
                last_path,
                model,
                training=info,
                extra={
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "epoch": epoch,
                    "step": step,
                    "best_val_si_sdr": best,
                    "rng": _rng_state(),
                },
            )
        if world > 1:
            dist.barrier()
        if stop:
            break
    if is_main and cfg.train.export and best_path.is_file():
        from clarity_se.data.audio_io import atomic_path

        with atomic_path(cfg.train.export) as tmp:
            shutil.copyfile(best_path, tmp)
        logger.info("exported %s -> %s", best_path, cfg.train.export)
    return model, history
