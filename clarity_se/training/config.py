"""Training config schema (OmegaConf struct mode) for ``clarity-se train``.

Sections: ``data.*`` (CEC2-layout root and splits, segment length, target, input view),
``model.*`` (registry name + constructor arguments of the model), ``optim.*`` (Adam, gradient
clipping, LR schedule) and ``train.*`` (epochs, batch, device, seed, loss, experiment folder).
Unknown keys are errors; ``???`` marks required values.

``model.*`` depends on ``model.name``: :class:`ModelConfig` for ``convtasnet``; for any other
model of :data:`clarity_se.models.MODELS` a schema built from its constructor's signature
(:func:`model_schema`), so every registered model trains with its own arguments.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from clarity_se.data.render.randomised import MixerOptions

#: training losses (``train.loss``)
LOSSES = ("si_sdr", "neg_snr")
#: where training items come from (``data.source``)
DATA_SOURCES = ("scenes", "randomised")
#: what the model reads (``data.view``)
DATA_VIEWS = ("six_mics", "front_ears")


@dataclass
class DataConfig:
    """``data.*``: where the training items come from.

    ``source=scenes``: segments of rendered or CEC2 scenes under ``root``
    (:class:`~clarity_se.data.scene_segments.SceneSegmentDataset`). ``source=randomised``:
    items mixed on the fly by the domain-randomised mixer with the options ``randomised.*``
    (:class:`~clarity_se.data.render.randomised.MixerOptions`); validation on ``dev_root``'s
    rendered dev scenes if given, else on the mixer's validation split (held-out talkers).
    """

    source: str = "scenes"  #: scenes | randomised
    root: str = ""  #: folder holding clarity_data/ (same as path.root of the recipe)
    train_split: str = "train"
    dev_split: str = "dev"
    #: or target_anechoic_CH1 (rescaled to the reverberant RMS); source=randomised also
    #: target_early_CH1 (direct path + reflections up to data.randomised.early_ms)
    target: str = "target_CH1"
    segment_s: float = 2.0  #: training segment, seconds
    dev_segment_s: float = 4.0  #: validation crop at the target onset, seconds (0: whole)
    max_train_scenes: int = 0  #: 0 = all
    max_dev_scenes: int = 50  #: 0 = all
    cache: bool = False  #: keep decoded scenes in memory (small demo sets)
    remix_prob: float = 0.0  #: dynamic remixing: swap in another scene's interferers (training)
    remix_gain_db: float = 6.0  #: +- range of the remixed interferer gain, dB
    num_workers: int = 0
    #: validation scenes from another render (its clarity_data/<dev_split>); empty: data.root
    dev_root: str = ""
    #: six_mics: mixture [6, T] at 44.1 kHz (as rendered); front_ears: the CH1 left/right pair
    #: resampled to model.sample_rate, mixture [2, T'] and sources [n_src, 2, T'] (mono models
    #: such as the published 16 kHz DTLN, run once per ear)
    view: str = "six_mics"
    #: the mixer's options (source=randomised); n_src, segment_s, target and seed come from
    #: model.n_src, data.segment_s, data.target and train.seed
    randomised: MixerOptions = field(default_factory=MixerOptions)
    #: validation items of the mixer's validation split (source=randomised, no dev_root)
    dev_items: int = 64


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
    output_gain_db: float = 0.0  #: gain on every estimate, dB (set after training)


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
    #: fine-tune: start from this checkpoint's weights (same model.*; a Conv-TasNet n_src 1
    #: checkpoint also starts an n_src 2 model: adapt_state_dict) when there is no last.pt;
    #: weights only: model arguments come from model.* (each one that differs is warned about)
    init_from: Optional[str] = ""  # noqa: UP045 (OmegaConf needs Optional)
    #: si_sdr: negative SI-SDR (Le Roux et al. 2019); neg_snr: negative SNR, the DTLN loss
    #: (Westhausen & Meyer 2020), not scale-invariant
    loss: str = "si_sdr"
    #: share of SI-SDR on pre-emphasised signals in the loss (0: plain SI-SDR; si_sdr only); see
    #: clarity_se.losses.emphasis
    preemphasis_weight: float = 0.0
    #: dB added to each signal's loss per unit of 1 - rho, rho the correlation of the slow
    #: (below ~8 Hz) log 1/3-octave band envelopes of estimate and target (0: none); see
    #: clarity_se.losses.envelope
    envelope_weight: float = 0.0
    #: weight of the dB error of the MVDR mask that the estimate gives, added to the loss (0:
    #: none; one-source models); see clarity_se.losses.mvdr_mask
    mask_weight: float = 0.0
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
    #: a ModelConfig, or the model_schema() of model.name
    model: Any = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)


def model_schema(name: str) -> type:
    """The ``model.*`` schema of the registered model ``name``.

    ``convtasnet``: :class:`ModelConfig`. Otherwise a dataclass generated from the model
    class's ``__init__``: one field per keyword argument, with its annotation (int, float,
    bool, str) and default (``???`` if none), plus ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not in :data:`clarity_se.models.MODELS`, or an argument's type cannot be
        expressed in the config.
    """
    if name == "convtasnet":
        return ModelConfig
    from clarity_se.models import get_model_class

    cls = get_model_class(name)
    hints = typing.get_type_hints(cls.__init__)
    fields: list[tuple] = [("name", str, field(default=name))]
    for pname, param in inspect.signature(cls.__init__).parameters.items():
        if pname == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        hint = hints.get(pname, Any)
        if hint not in (int, float, bool, str, Any):
            raise ValueError(f"model.{pname}: type {hint} of {cls.__name__} is not configurable")
        default = MISSING if param.default is inspect.Parameter.empty else param.default
        fields.append((pname, hint, field(default=default)))
    return dataclasses.make_dataclass(f"{cls.__name__}Config", fields)


def _model_name(path: str | Path | None, overrides: list[str] | None) -> str:
    """``model.name`` from the YAML file and the overrides (the last one wins)."""
    name = "convtasnet"
    try:
        if path is not None and Path(path).is_file():
            node = OmegaConf.load(path)
            name = str(OmegaConf.select(node, "model.name", default=name))
    except OmegaConfBaseException as exc:
        raise ValueError(f"bad training config in {path}: {exc}") from None
    for item in overrides or []:
        key, _, value = item.partition("=")
        if key.strip() == "model.name":
            name = value.strip()
    return name


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

    name = _model_name(path, overrides)
    try:
        schema = TrainConfig(model=model_schema(name)())
    except ValueError as exc:
        raise ValueError(f"training config: model.name: {exc}") from None
    merged = merge_config(schema, path, overrides, what="training config")
    if merged.data.source not in DATA_SOURCES:
        raise ValueError(
            f"data.source: expected one of {DATA_SOURCES}, got {merged.data.source!r}"
        )
    if merged.data.source == "scenes" and not merged.data.root:
        raise ValueError("training config: data.root is required (or data.source=randomised)")
    if merged.optim.scheduler not in ("plateau", "cosine", "none"):
        raise ValueError(
            f"optim.scheduler: expected plateau|cosine|none, got {merged.optim.scheduler!r}"
        )
    if merged.train.loss not in LOSSES:
        raise ValueError(f"train.loss: expected one of {LOSSES}, got {merged.train.loss!r}")
    if not merged.train.mask_weight >= 0:
        raise ValueError(f"train.mask_weight: expected >= 0, got {merged.train.mask_weight}")
    if not merged.train.envelope_weight >= 0:
        raise ValueError(f"train.envelope_weight: expected >= 0, got "
                         f"{merged.train.envelope_weight}")
    if merged.data.view not in DATA_VIEWS:
        raise ValueError(f"data.view: expected one of {DATA_VIEWS}, got {merged.data.view!r}")
    return merged
