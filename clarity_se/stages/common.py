"""What every per-pair stage starts from: the dataset, the experiment folder, the pair list.

:func:`stage_inputs` turns a recipe config into typed inputs: the
:class:`~clarity_se.data.cec2.CEC2Dataset` its ``path.*`` keys point at, the
:class:`~clarity_se.data.experiment.Experiment` folder (with the ``evaluate.shard`` suffix)
and the (scene, listener) pairs in the official order (``evaluate.small_test``, then the
shard). File names come from these objects only.
"""

from __future__ import annotations

from typing import NamedTuple

from clarity_se.data.cec2 import CEC2Dataset
from clarity_se.data.experiment import Experiment
from clarity_se.data.pairs import ScenePair, select_shard

__all__ = ["StageInputs", "check_scheduler", "pairs_from_config", "stage_executor", "stage_inputs"]


class StageInputs(NamedTuple):
    """Typed inputs of a per-pair stage."""

    dataset: CEC2Dataset
    experiment: Experiment
    pairs: list[ScenePair]


def pairs_from_config(cfg, *, apply_shard: bool = True) -> list[ScenePair]:
    """The pair list a stage processes: official order, ``small_test``, then ``evaluate.shard``.

    Raises
    ------
    ValueError
        Missing or bad ``scenes_listeners`` file, or a bad ``evaluate.shard``.
    """
    dataset = CEC2Dataset.from_recipe(cfg.path)
    pairs = dataset.scene_listener_pairs(bool(cfg.evaluate.small_test))
    return select_shard(pairs, cfg.evaluate.shard if apply_shard else "")


def stage_inputs(cfg) -> StageInputs:
    """Dataset, experiment folder and pair list of a recipe config.

    Raises
    ------
    ValueError
        As :func:`pairs_from_config`.
    """
    dataset = CEC2Dataset.from_recipe(cfg.path)
    pairs = select_shard(dataset.scene_listener_pairs(bool(cfg.evaluate.small_test)),
                         cfg.evaluate.shard)
    return StageInputs(dataset, Experiment(cfg.path.exp_folder, cfg.evaluate.shard), pairs)


def check_scheduler(cfg) -> None:
    """Fail early on a bad ``evaluate.scheduler`` or ``dask.*`` setting.

    ``evaluate.scheduler`` applies to every per-pair stage, as ``evaluate.small_test`` and
    ``evaluate.shard`` do.

    Raises
    ------
    ValueError
        Unknown scheduler or cluster kind, or ``dask.n_workers < 1``.
    """
    from clarity_se.execution import CLUSTERS, SCHEDULERS

    if cfg.evaluate.scheduler not in SCHEDULERS:
        raise ValueError(
            f"evaluate.scheduler must be one of {SCHEDULERS}, got {cfg.evaluate.scheduler!r}"
        )
    if cfg.evaluate.scheduler == "dask" and not cfg.dask.address:
        if cfg.dask.cluster not in CLUSTERS:
            raise ValueError(f"dask.cluster must be one of {CLUSTERS}, got {cfg.dask.cluster!r}")
        if int(cfg.dask.n_workers) < 1:
            raise ValueError(f"dask.n_workers must be >= 1, got {cfg.dask.n_workers}")


def stage_executor(cfg, workers: int, n_jobs: int, warm=None):
    """The executor of a per-pair stage: ``workers`` local processes, or the ``dask.*``
    cluster when ``evaluate.scheduler=dask`` (:func:`clarity_se.execution.make_executor`).

    Raises
    ------
    ValueError
        As :func:`check_scheduler`.
    """
    from omegaconf import OmegaConf

    from clarity_se.execution import make_executor

    check_scheduler(cfg)
    return make_executor(
        workers, n_jobs, scheduler=str(cfg.evaluate.scheduler),
        dask_options=OmegaConf.to_container(cfg.dask, resolve=True), warm=warm,
    )  # fmt: skip


def stage_main(name: str, run) -> int:
    """Run ``run() -> (n_done, n_failed, summary)`` with the stages' exit-status contract.

    Parameters
    ----------
    name : str
        Stage name for messages.
    run : callable
        Does the work; returns the number of items done (including reused ones), the number
        that failed this time, and a one-line summary.

    Returns
    -------
    int
        0 all done; 1 some items failed (see ``errors.csv``); 2 bad config, input tree or
        environment: a ``ValueError`` (bad config, missing metadata, folder in use) or an
        ``OSError`` (unwritable folder, full disk), printed as one line without a traceback.
    """
    import sys

    try:
        n_done, n_failed, summary = run()
    except ValueError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(
            f"{name}: error: {where}{exc.strerror or exc} (check that the folder exists and "
            "that you may write to it)",
            file=sys.stderr,
        )
        return 2
    print(f"{name}: {summary}")
    return 1 if n_failed else 0
