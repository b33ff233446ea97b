"""Training config schema (OmegaConf struct mode) for ``clarity-se train``.

Sections: ``data.*`` (CEC2-layout root and splits, segment length, target), ``model.*``
(registry name + constructor arguments of
:class:`~clarity_se.models.conv_tasnet.MultichannelConvTasNet`), ``optim.*`` (Adam, gradient
clipping, LR schedule) and ``train.*`` (epochs, batch, device, seed, experiment folder).
Unknown keys are errors; ``???`` marks required values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from omegaconf import MISSING, DictConfig, OmegaConf


@dataclass
class DataConfig:
    """``data.*``: where the training scenes are."""

    root: str = MISSING  #: folder holding clarity_data/ (same as path.root of the recipe)
    train_split: str = "train"
    dev_split: str = "dev"
    target: str = "target_CH1"  #: or target_anechoic_CH1 (rescaled to the reverberant RMS)
    segment_s: float = 2.0  #: training segment, seconds
    dev_segment_s: float = 4.0  #: validation crop at the target onset, seconds (0: whole)
    max_train_scenes: int = 0  #: 0 = all
    max_dev_scenes: int = 50  #: 0 = all
    cache: bool = False  #: keep decoded scenes in memory (small demo sets)
    remix_prob: float = 0.0  #: dynamic remixing: swap in another scene's interferers (training)
    remix_gain_db: float = 6.0  #: +- range of the remixed interferer gain, dB
    num_workers: int = 0


@dataclass
class ModelConfig:
    """``model.*``: registry name and constructor arguments (see MultichannelConvTasNet)."""

    name: str = "convtasnet"
    n_src: int = 1
    n_filters: int = 128  # N
    kernel_size: int = 128  # L (samples at sample_rate); latency (L-1)/fs
    bn_chan: int = 128  # B
    hid_chan: int = 256  # H
    skip_chan: int = 128  # Sc
    conv_kernel_size: int = 3  # P
    n_blocks: int = 6  # X
    n_repeats: int = 2  # R
    n_mics: int = 6
    causal: bool = True
    norm_type: str = "cLN"
    mask_act: str = "sigmoid"
    sample_rate: int = 44100


@dataclass
class OptimConfig:
    """``optim.*``: Adam, gradient clipping and LR schedule."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 5.0  #: max global L2 norm of gradients (0: off)
    scheduler: str = "plateau"  #: plateau (ReduceLROnPlateau on val SI-SDR) | cosine | none
    patience: int = 3
    factor: float = 0.5
    min_lr: float = 1e-5


@dataclass
class TrainLoopConfig:
    """``train.*``: the loop."""

    exp_dir: str = "exp/convtasnet"
    epochs: int = 20
    batch_size: int = 4
    steps_per_epoch: int = 0  #: 0 = one pass over the training scenes
    device: str = "cpu"  #: cpu | cuda | cuda:N (under torchrun: the local rank's GPU)
    seed: int = 0
    num_threads: int = 0  #: torch.set_num_threads (0: leave as is)
    resume: bool = True  #: continue from <exp_dir>/last.pt if present
    #: fine-tune: start from this checkpoint's weights (same model.*) when there is no last.pt
    init_from: Optional[str] = ""  # noqa: UP045 (OmegaConf needs Optional)
    #: share of SI-SDR on pre-emphasised signals in the loss (0: plain SI-SDR); see
    #: clarity_se.losses.emphasis
    preemphasis_weight: float = 0.0
    #: also keep each epoch's weights as <exp_dir>/epoch_NNN.pt (checkpoint selection on a
    #: separate tuning split, weight averaging)
    keep_epochs: bool = False
    max_time_s: float = 0.0  #: stop cleanly after this wall time (0: no limit)
    progress: bool = True  #: tqdm bars
    #: also copy the best checkpoint here at the end (e.g. recipes/.../checkpoint.pt); empty: no
    export: Optional[str] = ""  # noqa: UP045 (OmegaConf needs Optional)


@dataclass
class TrainConfig:
    """The whole training config."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)


def load_train_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> DictConfig:
    """Load a training config onto :class:`TrainConfig` and apply dotlist overrides.

    Raises
    ------
    ValueError
        Missing file, unknown key, wrong type, or ``data.root`` unset (names the file and key).
    """
    from clarity_se.config import merge_config

    merged = merge_config(TrainConfig, path, overrides, what="training config")
    if OmegaConf.is_missing(merged.data, "root"):
        raise ValueError("training config: data.root is required")
    if merged.optim.scheduler not in ("plateau", "cosine", "none"):
        raise ValueError(
            f"optim.scheduler: expected plateau|cosine|none, got {merged.optim.scheduler!r}"
        )
    return merged
