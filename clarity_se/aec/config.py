"""Configuration of the echo track (``clarity-se aec``, ``clarity-se aec-evaluate``).

An OmegaConf struct schema like :mod:`clarity_se.config` (unknown keys and wrong types are
errors naming the key), for the recipes ``recipes/aec/<system>/config.yaml``::

    path.root        AEC Challenge folder (synthetic: meta.csv + signal folders; or real)
    path.exp_folder  experiment folder (enhanced_signals/, aec_scores.csv, ...)
    path.split       synthetic meta.csv split to process ("" = all)
    sample_rate      16000 (the AEC Challenge rate; the only one accepted)
    aec.name         echo canceller (registry: nlms, pbfdaf, webrtc_aec3, deep_adaptive, ...)
    aec.*            its options, one sub-node per system, plus checkpoint / device for
                     learned systems and res / res_alpha for a residual-echo suppressor
    evaluate.*       aec-evaluate: the reference system scored beside it, metric switches
    train.*          aec-train: learned systems (deep_adaptive)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from clarity_se.config import merge_config


@dataclass
class AECPathConfig:
    """``path.*``: data and experiment folders."""

    root: str = MISSING
    exp_folder: str = "./exp"
    #: synthetic layout: only clips of this meta.csv split ("" = every clip)
    split: str = ""


@dataclass
class NLMSOptions:
    """``aec.nlms.*`` (:class:`clarity_se.aec.nlms.NLMSConfig`)."""

    taps: int = 1024
    hop: int = 64
    lookahead: int = 64
    pre_delay: int = 64
    mu_max: float = 0.5
    mu_init: float = 0.25
    max_delay: int = 960


@dataclass
class PBFDAFOptions:
    """``aec.pbfdaf.*`` (:class:`clarity_se.aec.pbfdaf.PBFDAFConfig`)."""

    block: int = 128
    partitions: int = 16
    lookahead: int = 64
    pre_delay: int = 64
    mu_max: float = 0.5
    mu_init: float = 0.25
    max_delay: int = 960


@dataclass
class WebRTCAEC3Options:
    """``aec.webrtc_aec3.*``."""

    noise_suppression: bool = False


@dataclass
class DeepAdaptiveOptions:
    """``aec.deep_adaptive.*`` (:mod:`clarity_se.aec.deep_adaptive`)."""

    #: output the post-filtered estimate (true) or the NLMS error alone (the paper's output)
    post_filter: bool = True
    #: forgetting factor of the Kalman selection's second filter (0: off)
    kalman_selection: float = 0.999
    #: input-level normalisation: target microphone level, dBFS RMS (0: off)
    level_target_db: float = 0.0


@dataclass
class AECOptions:
    """``aec.*``: which echo canceller runs and its options."""

    name: str = "pbfdaf"
    #: learned systems: checkpoint path ("" = the packaged one)
    checkpoint: str = ""
    device: str = "cpu"
    #: classical systems: track the bulk delay by GCC-PHAT
    estimate_delay: bool = True
    #: residual-echo suppressor after the canceller ("" = none, "unet": the RES U-Net)
    res: str = ""
    #: residual-echo suppressor trade-off (0: least speech distortion, 1: most suppression)
    res_alpha: float = 0.5
    #: residual-echo suppressor checkpoint ("" = the packaged one)
    res_checkpoint: str = ""
    nlms: NLMSOptions = field(default_factory=NLMSOptions)
    pbfdaf: PBFDAFOptions = field(default_factory=PBFDAFOptions)
    webrtc_aec3: WebRTCAEC3Options = field(default_factory=WebRTCAEC3Options)
    deep_adaptive: DeepAdaptiveOptions = field(default_factory=DeepAdaptiveOptions)


@dataclass
class AECEvaluateConfig:
    """``evaluate.*`` of ``clarity-se aec-evaluate``."""

    #: echo canceller scored beside the system (columns ``<name>_<metric>``; "" = none)
    reference_system: str = "webrtc_aec3"
    aecmos: bool = True
    pesq: bool = True
    #: seconds left out at the start of each clip for ERLE (convergence)
    erle_skip_s: float = 0.0
    #: score only the first N clips (0 = all)
    max_clips: int = 0
    #: also score the oracle canceller, mic minus the true echo (synthetic clips with
    #: echo_signal): every echo removed, the near-end speech and noise untouched (columns
    #: ``oracle_<metric>``); an upper bound for any canceller. Where the near-end speech is
    #: known, also that speech alone (``oracle_clean_<metric>``: echo and noise removed)
    oracle: bool = False
    #: DSML and RESL over the double-talk frames only (both the near-end speech and the
    #: residual within 40 dB of their loudest frame), as Ivry et al. evaluate them; false: over
    #: the whole double-talk clip
    dsml_double_talk: bool = False


@dataclass
class DeepAdaptiveModelOptions:
    """``train.model.*``: :class:`clarity_se.models.deep_adaptive.DeepAdaptiveAEC` arguments."""

    n_fft: int = 320
    hop: int = 160
    taps: int = 10
    hidden: int = 128
    layers: int = 2
    #: neighbouring bins on either side in each bin's NLMS filter (0: per-bin filters)
    cross_bands: int = 0
    #: units of the refinement post-filter (0: none)
    refine: int = 0
    #: smoothing factor of the refinement's coherence features (0: none; needs refine)
    coherence: float = 0.0


@dataclass
class AECTrainConfig:
    """``train.*`` of ``clarity-se aec-train`` (:mod:`clarity_se.training.aec_train`).

    The training clips are ``path.root`` (AEC Challenge synthetic layout); when it holds no
    ``meta.csv`` yet, ``render_clips`` clips are rendered there first with
    ``clarity-se aec-data``'s renderer (``--split train --seed render_seed``).
    """

    render_clips: int = 1000
    render_seed: int = 1
    #: recordings the renderer draws from ("" = its default, the shared data set)
    render_data_root: str = ""
    render_clip_s: float = 10.0
    #: stop after this many minutes of wall time, or steps (0 = no step limit)
    minutes: float = 38.0
    max_steps: int = 0
    batch: int = 8
    #: seconds per training segment (random crop of a clip); the filter starts from zero
    segment_s: float = 4.0
    lr: float = 1e-3
    grad_clip: float = 3.0
    seed: int = 0
    #: weight of the loss on the NLMS error against mic - echo (near end + noise)
    linear_weight: float = 0.5
    #: weight of the frames with near-end speech in the output loss (1 = plain mean)
    nearend_weight: float = 1.0
    #: weight of the speech-distortion term (the post-filter gain on the near-end speech alone)
    distortion_weight: float = 0.0
    #: level augmentation: each crop scaled by a gain uniform in +-level_db dB (0 = none)
    level_db: float = 0.0
    #: train only the parameters whose names start with one of these prefixes (e.g.
    #: ``[refine_]``: the refinement post-filter alone, the rest frozen); empty = all
    trainable: list[str] = field(default_factory=list)
    #: power-law compression of the spectral loss and its complex-term weight
    compress: float = 0.3
    complex_weight: float = 0.3
    threads: int = 1
    log_every: int = 10
    checkpoint_every: int = 50
    #: start from these weights (a deep_adaptive checkpoint whose model arguments equal
    #: ``train.model`` except perhaps ``taps``, ``cross_bands`` and an added ``refine`` (with its
    #: ``coherence``); "" = random initialisation); the optimiser starts afresh
    init_checkpoint: str = ""
    #: continue from ``EXP/last.pt`` when the folder holds one (false: start afresh)
    resume: bool = True
    #: held-out AEC folder scored every ``val_every`` steps and at the end
    #: (:mod:`clarity_se.training.aec_validation`; "" = no validation); when it has no
    #: ``meta.csv``, ``val_clips`` clips are rendered there (``--split test --seed val_seed``)
    val_root: str = ""
    val_every: int = 250
    val_clips: int = 40
    val_seed: int = 11
    #: input gains (dB) at which the validation scores every clip, the whole scene scaled;
    #: its means pool them (``[0]``: the clips as recorded)
    val_gains_db: list[float] = field(default_factory=lambda: [0.0])
    #: the validation's ``aec.deep_adaptive.kalman_selection`` (0: off; the default is the
    #: canceller's, so the validation scores what ``clarity-se aec`` runs)
    val_kalman_selection: float = 0.999
    #: the Kalman selection's forgetting factor in the training forward pass (0: off, the
    #: model alone): the post-filter then learns on the selected error it sees at inference
    kalman_selection: float = 0.0
    #: the validation's ``aec.deep_adaptive.level_target_db`` (0: off, as the canceller's
    #: default)
    val_level_target_db: float = 0.0
    #: the input-level normalisation's target (dBFS RMS) in the training forward pass (0: off):
    #: the network then learns on inputs brought to that level
    level_target_db: float = 0.0
    #: weight of the PESQ-like perceptual term on the crops with near-end speech (0: none;
    #: :mod:`clarity_se.training.perceptual_loss`)
    perceptual_weight: float = 0.0
    #: weight of its asymmetric disturbance against 0.1 for the symmetric one
    perceptual_asymmetry: float = 0.001
    #: fine-tune the post-filter alone on cached canceller frames (needs
    #: ``trainable=[res_]`` and ``init_checkpoint``; :mod:`clarity_se.training.post_filter_cache`)
    post_filter_cache: bool = False
    model: DeepAdaptiveModelOptions = field(default_factory=DeepAdaptiveModelOptions)


@dataclass
class AECRecipeConfig:
    """The whole echo-track recipe config."""

    path: AECPathConfig = field(default_factory=AECPathConfig)
    sample_rate: int = 16000
    aec: AECOptions = field(default_factory=AECOptions)
    evaluate: AECEvaluateConfig = field(default_factory=AECEvaluateConfig)
    train: AECTrainConfig = field(default_factory=AECTrainConfig)
    hydra: Any = None


def system_label(options) -> str:
    """The name under which a configured system's outputs and scores are recorded.

    ``aec.name`` alone, or ``<aec.name>+res_unet@<alpha>`` when a residual-echo suppressor
    follows it (``aec.res``), so that the runs of an alpha sweep stay apart in the journals,
    ``aec_scores.csv`` and the report (which draws a trade-off curve through them,
    :func:`clarity_se.report.aec.parse_label`).

    Parameters
    ----------
    options : omegaconf.DictConfig
        The ``aec.*`` node.

    Returns
    -------
    str
        E.g. ``"pbfdaf"``, ``"deep_adaptive+res_unet@0.5"``.
    """
    if not options.res:
        return str(options.name)
    return f"{options.name}+res_{options.res}@{float(options.res_alpha):g}"


def load_aec_config(config: Path | str | None = None,
                    overrides: list[str] | None = None) -> DictConfig:
    """Load an echo-track recipe config onto :class:`AECRecipeConfig` with dotlist overrides.

    Parameters
    ----------
    config : path-like, optional
        YAML file (``recipes/aec/<system>/config.yaml``).
    overrides : list of str, optional
        ``key=value`` items, e.g. ``path.root=/data/synthetic aec.name=nlms``.

    Returns
    -------
    omegaconf.DictConfig
        Struct-mode config; ``path.root`` set.

    Raises
    ------
    ValueError
        Missing/unreadable file, unknown key, wrong type, ``path.root`` unset, or
        ``sample_rate`` other than 16000; the message names the file and key.
    """
    merged = merge_config(AECRecipeConfig, config, overrides, what="aec config")
    where = f"config {config}" if config else "config"
    if OmegaConf.is_missing(merged.path, "root"):
        raise ValueError(f"{where}: path.root is required")
    if merged.sample_rate != 16000:
        raise ValueError(f"{where}: sample_rate must be 16000 (the AEC Challenge rate), got "
                         f"{merged.sample_rate}")
    if not 0.0 <= merged.aec.res_alpha <= 1.0:
        raise ValueError(f"{where}: aec.res_alpha must be in [0, 1], got {merged.aec.res_alpha}")
    return merged
