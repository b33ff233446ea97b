"""Recipe configuration: the official ICASSP 2023 keys, typed and checked (OmegaConf struct mode).

A config file written for the official pyclarity recipe
(``recipes/icassp_2023/baseline/config.yaml``) loads unchanged: the same ``path.*``, ``nalr.*``,
``compressor.*``, ``soft_clip`` and ``evaluate.*`` keys; its ``hydra:`` block is accepted and
ignored. clarity_se adds ``evaluate.rng|device|batch_size|shard|workers|level_db_spl``,
``enhancer.*`` and ``run.*``. Unknown keys are errors that name the key.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


@dataclass
class PathConfig:
    """``path.*``: where the CEC2 data live and where results go (official keys)."""

    root: str = MISSING
    metadata_dir: str = "${path.root}/clarity_data/metadata"
    scenes_listeners_file: str = "${path.metadata_dir}/scenes_listeners.dev.json"
    listeners_file: str = "${path.metadata_dir}/listeners.json"
    scenes_folder: str = "${path.root}/clarity_data/dev/scenes"
    exp_folder: str = "./exp"


@dataclass
class NALRConfig:
    """``nalr.*``: NAL-R FIR design (official keys; 220 taps at 44.1 kHz)."""

    nfir: int = 220
    sample_rate: int = 44100


@dataclass
class CompressorConfig:
    """``compressor.*``: the Clarity RMS compressor (official defaults)."""

    threshold: float = 0.35
    attenuation: float = 0.1
    attack: float = 50.0
    release: float = 1000.0
    rms_buffer_size: float = 0.064
    makeup_gain: float = 1.0


@dataclass
class EvaluateConfig:
    """``evaluate.*``: official ``set_random_seed``/``small_test`` plus clarity_se's options.

    ``rng`` is ``compat`` (replay the official numpy draws, per-pair equal to pyclarity) or
    ``fast`` (torch generator on the device). ``shard`` is ``"k/n"`` (1-based) or empty.
    """

    set_random_seed: bool = True
    small_test: bool = False
    rng: str = "compat"
    device: str = "cpu"
    batch_size: int = 4
    shard: str = ""
    workers: int = 0  #: 0: one worker process per usable CPU core (memory permitting)
    level_db_spl: float = 100.0
    #: ``local`` (``workers`` processes on this machine) or ``dask`` (the ``dask.*`` cluster)
    scheduler: str = "local"


@dataclass
class MVDRConfig:
    """``enhancer.mvdr.*``: the beamformer of ``enhancer.residual_source=mvdr``
    (:class:`clarity_se.dsp.mvdr.EstimateMVDR`); empty (null): the beamformer's default."""

    #: time constant of the covariance averages, s (default 2.0; the hearing-aid dtln 1.0)
    tau_s: Optional[float] = None  # noqa: UP045 (OmegaConf needs Optional)
    #: RTF estimator: ``column`` (default) or ``whitening``
    rtf: Optional[str] = None  # noqa: UP045
    #: share of each ear's front microphone added to its output, in [0, 1] (default 0)
    reference_mix: Optional[float] = None  # noqa: UP045
    #: online WPE dereverberation of the two outputs: taps per ear (default 16; 0: none),
    #: frames between taps (default 3), RLS time constant in s (default 1.0)
    wpe_taps: Optional[int] = None  # noqa: UP045
    wpe_stride: Optional[int] = None  # noqa: UP045
    wpe_tau_s: Optional[float] = None  # noqa: UP045
    #: frames between the WPE's updates (default 1: every frame)
    wpe_update_every: Optional[int] = None  # noqa: UP045
    #: highest frequency the WPE dereverberates, Hz (default 8000; 0: every bin)
    wpe_max_hz: Optional[float] = None  # noqa: UP045
    #: the WPE's power weights from the estimate instead of the output (default false)
    wpe_guided: Optional[bool] = None  # noqa: UP045
    #: post-filter: time constant of its spectra, s (default 0: none), least gain (0.1)
    postfilter_tau_s: Optional[float] = None  # noqa: UP045
    postfilter_floor: Optional[float] = None  # noqa: UP045
    #: gain on the estimate before it enters the beamformer's mask, dB (default 0)
    estimate_gain_db: Optional[float] = None  # noqa: UP045
    #: dtln: the network's estimate without its mask floor and output gain drives the
    #: beamformer (clarity_se/enhancers/dtln.py, ``RAW_ESTIMATE``; default false)
    raw_estimate: Optional[bool] = None  # noqa: UP045


@dataclass
class EnhancerConfig:
    """``enhancer.*``: which enhancer ``clarity-se enhance`` runs."""

    name: str = "passthrough"
    #: empty: the packaged default checkpoint of the enhancer
    checkpoint: str = ""
    #: model variant of enhancers that have several (e.g. dtln: ``""`` hearing-aid, ``published``);
    #: ``enhancer.variant=`` (empty on the command line) is the default variant too
    variant: Optional[str] = ""  # noqa: UP045 (OmegaConf needs Optional)
    device: str = "cpu"
    chunk_s: float = 0.0
    #: convtasnet: output = (1 - residual_mix) * estimate + residual_mix * residual, in [0, 1];
    #: empty (null): 1.0 with the mvdr residual (the beamformer alone), 0.25 with mixture
    residual_mix: Optional[float] = None  # noqa: UP045 (OmegaConf needs Optional)
    #: the residual: ``mvdr``, the causal MVDR beamformer that the estimate drives
    #: (clarity_se/dsp/mvdr.py), or ``mixture``, the front microphones; for dtln and crced
    #: ``mvdr`` replaces the output with that beamformer's and ``mixture`` leaves it as it is;
    #: empty: the enhancer's default (convtasnet and the hearing-aid dtln and crced mvdr, the
    #: published variants mixture)
    residual_source: str = ""
    #: the beamformer's options (``residual_source=mvdr``)
    mvdr: MVDRConfig = field(default_factory=MVDRConfig)
    #: also run the left/right-mirrored microphones and average the two estimates (convtasnet)
    mirror_average: bool = True
    #: do-no-harm fallback to the front mics when no output is frontal (convtasnet; off by
    #: default: recipes/icassp_2023/convtasnet/README.md)
    guard: bool = False
    #: dtln: what runs the network: ``pytorch``, ``onnxruntime`` (the two-sub-model export,
    #: frame by frame) or ``onnxruntime_int8`` (the same with 8-bit weights: the DTLN recipe
    #: README, "the int8 export"); the other enhancers take ``pytorch`` only
    runtime: str = "pytorch"


@dataclass
class DaskConfig:
    """``dask.*``: the Dask cluster of ``evaluate.scheduler=dask`` (docs/cluster.md).

    ``address`` connects to a running scheduler (``tcp://host:8786``); otherwise ``cluster``
    starts one for the command and closes it at the end: ``local`` (a ``LocalCluster`` of
    ``n_workers`` processes), ``slurm`` or ``pbs`` (``dask-jobqueue``: ``n_workers`` jobs of
    ``cores`` cores and ``memory`` each, on ``queue``, for ``walltime``).
    """

    address: str = ""
    cluster: str = "local"
    n_workers: int = 2
    queue: str = ""
    cores: int = 1
    memory: str = "4GB"
    walltime: str = "01:00:00"
    #: extra scheduler directives of each job (e.g. ``["--account=abc"]``)
    job_extra_directives: list[str] = field(default_factory=list)
    #: resubmissions of a job whose function raised (a lost worker is retried by the scheduler)
    retries: int = 2


@dataclass
class RunConfig:
    """``run.*``: the main job (``clarity-se run``)."""

    systems: list[str] = field(default_factory=lambda: ["passthrough"])
    demo_scenes: int = 0
    demo_seed: int = 0
    render_demo: bool = False
    results_folder: str = "results/demo"


@dataclass
class RecipeConfig:
    """The whole recipe config: official ICASSP 2023 keys plus clarity_se extensions."""

    path: PathConfig = field(default_factory=PathConfig)
    nalr: NALRConfig = field(default_factory=NALRConfig)
    compressor: CompressorConfig = field(default_factory=CompressorConfig)
    soft_clip: bool = True
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    enhancer: EnhancerConfig = field(default_factory=EnhancerConfig)
    dask: DaskConfig = field(default_factory=DaskConfig)
    run: RunConfig = field(default_factory=RunConfig)
    hydra: Any = None


def add_config_arguments(parser: argparse.ArgumentParser, *, resumable: bool = True) -> None:
    """Add ``-c/--config`` and trailing ``key=value`` overrides to a stage's parser.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand parser to extend.
    resumable : bool
        Also add ``--force`` (recompute everything) and ``--wait`` (wait for the folder's
        lock), for the stages that keep a journal.
    """
    parser.add_argument("-c", "--config", type=Path, default=None, help="recipe config.yaml")
    parser.add_argument(
        "overrides", nargs="*", default=[], help="dotlist overrides, e.g. path.root=/data/cec2"
    )
    if not resumable:
        return
    parser.add_argument(
        "--force",
        action="store_true",
        help="recompute every pair, even those whose inputs and config are unchanged",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="if another run holds the experiment folder, wait for it instead of exiting",
    )


def merge_config(
    schema: type,
    config: Path | str | None = None,
    overrides: list[str] | None = None,
    *,
    what: str = "config",
) -> DictConfig:
    """Merge a YAML file and dotlist overrides onto a dataclass ``schema``, in struct mode.

    Parameters
    ----------
    schema : dataclass type
        The typed schema (unknown keys and wrong types become errors).
    config : path-like, optional
        YAML file.
    overrides : list of str, optional
        ``key=value`` items.
    what : str
        Name used in error messages (``"config"``, ``"training config"``).

    Raises
    ------
    ValueError
        If the file is missing or unreadable, a key is unknown, or a value has the wrong type;
        the message names the file and key.
    """
    merged = OmegaConf.structured(schema)
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise ValueError(f"{what} file {path} does not exist")
        try:
            merged = OmegaConf.merge(merged, OmegaConf.load(path))
        except (OmegaConfBaseException, OSError, ValueError) as exc:
            raise ValueError(f"bad {what} in {path}: {_first_line(exc)}") from None
    for item in overrides or []:
        key, sep, _ = str(item).partition("=")
        if not sep or not key:
            raise ValueError(f"bad override {item!r}: expected key=value (e.g. path.root=/data)")
        if not str(item)[len(key) + 1 :]:
            # `key=` means the empty string (a path or name left empty), as on a shell command
            # line; OmegaConf's dotlist would read it as null and refuse it for a str field
            item = f"{key}=''"
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([str(item)]))
        except OmegaConfBaseException as exc:
            raise ValueError(f"bad override {item!r}: {_first_line(exc)}") from None
    OmegaConf.set_struct(merged, True)
    return merged


def _first_line(exc: BaseException) -> str:
    """OmegaConf messages end with a multi-line context dump; keep the first line."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def load_config(config: Path | str | None = None, overrides: list[str] | None = None) -> DictConfig:
    """Load a recipe config onto the typed schema and apply dotlist overrides.

    Parameters
    ----------
    config : path-like, optional
        YAML file (an official pyclarity ``config.yaml`` works unchanged).
    overrides : list of str, optional
        ``key=value`` items, as on the official recipe's hydra command line.

    Returns
    -------
    omegaconf.DictConfig
        Struct-mode config, interpolations resolved lazily; ``path.root`` must be set.

    Raises
    ------
    ValueError
        If the file is missing or unreadable, a key is unknown, or a value has the wrong type;
        the message names the file and key.
    """
    merged = merge_config(RecipeConfig, config, overrides)
    if OmegaConf.is_missing(merged.path, "root"):
        raise ValueError(f"config{' ' + str(config) if config else ''}: path.root is required")
    return merged


def parse_shard(shard: str) -> tuple[int, int] | None:
    """Parse ``"k/n"`` (1-based shard k of n) into ``(k, n)``; empty means no sharding.

    Raises
    ------
    ValueError
        If the text is not ``k/n`` with ``1 <= k <= n``.
    """
    if not shard:
        return None
    try:
        k_text, n_text = str(shard).split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise ValueError(f"evaluate.shard: expected 'k/n', got {shard!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"evaluate.shard: need 1 <= k <= n, got {shard!r}")
    return k, n
