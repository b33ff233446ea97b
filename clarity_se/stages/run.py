"""``clarity-se run``: the main job (render if needed, then enhance, amplify, evaluate, report).

What ``make demo`` runs::

    clarity-se run -c recipes/icassp_2023/demo.yaml                      # default demo
    clarity-se run -c recipes/icassp_2023/demo.yaml run.systems=[passthrough] run.demo_scenes=8

Steps:

1. If ``run.render_demo`` is true and ``path.scenes_listeners_file`` does not exist, render the
   demo dataset into ``path.root`` with
   :func:`clarity_se.data.render.cli.build_dataset` (``run.demo_scenes`` scenes in all, 3/4
   train and 1/4 dev as ``clarity-se demo-data --scenes``; 0 means the renderer's default,
   ``run.demo_seed``, ``evaluate.workers`` processes). Existing metadata is never overwritten.
2. For each system of ``run.systems`` (an ``enhancer.name``: ``passthrough``, ``convtasnet``),
   with ``path.exp_folder = <run.results_folder>/<system>``:

   * write that system's resolved config to ``<exp>/config.yaml`` (so any single stage can be
     rerun with ``clarity-se <stage> -c <exp>/config.yaml``);
   * enhance (:mod:`clarity_se.stages.enhance`, run on that config) into
     ``<exp>/enhanced_signals/<scene>_<listener>_enhanced.wav``;
   * evaluate (:func:`clarity_se.stages.evaluate.run_evaluate`), which amplifies into
     ``<exp>/amplified_signals/<scene>_<listener>_HA-output.wav`` and writes ``<exp>/scores.csv``
     (official header ``scene,listener,combined,haspi,hasqi``) and ``scores_detail.csv``.

   A system that cannot start (e.g. ``convtasnet`` with a missing ``enhancer.checkpoint``)
   is reported with the reason and skipped;
   the other systems still run.
3. :func:`clarity_se.report.build_report` over every system with scores into
   ``run.results_folder`` (``report.csv``, ``report.html`` and the breakdown CSVs); it prints
   the official ``report_score.py`` summary per system.

``<run.results_folder>/run_info.json`` holds the command, the resolved config, the environment
(Python, platform, package versions, git commit and whether the tree was dirty), per-system and
per-stage counts, wall and CPU times, and the exit status; ``run.log`` holds the log.

Every stage resumes, so rerunning the same command after an interruption finishes the job
without redoing finished pairs. The exit status is 0 only if every pair of every system was
enhanced and scored; otherwise 1, after a summary of the failures per system and stage (details
in ``<exp>/errors.csv``); 2 for a bad config or missing dataset.

On a real CEC2 download, the same command with the official keys::

    clarity-se run -c recipes/icassp_2023/baseline/config.yaml path.root=/data/clarity_CEC2 \\
        run.results_folder=exp run.systems=[passthrough,convtasnet] evaluate.workers=8

(``run.render_demo`` is false there, so a missing ``scenes_listeners.dev.json`` is an error;
``evaluate.small_test=true`` keeps the official 1/15 subset; ``evaluate.shard`` is honoured
but the report then only covers that shard, so for SLURM arrays run ``clarity-se evaluate``
per shard and ``clarity-se report`` once.)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from clarity_se.config import add_config_arguments, load_config

logger = logging.getLogger(__name__)

@dataclass
class SystemResult:
    """Outcome of one system in :func:`run_pipeline`.

    Attributes
    ----------
    name : str
        System (``enhancer.name``).
    exp_folder : str
        Its experiment folder.
    n_pairs : int
        Expected (scene, listener) pairs.
    n_scored : int
        Pairs with a score in ``scores.csv``.
    failed : dict of str -> int
        Failed pairs per stage (``enhance``, ``evaluate``), from ``errors.csv``.
    error : str
        Why the system could not run at all (empty if it ran).
    seconds : dict of str -> dict
        ``{"enhance": {"wall_s": .., "cpu_s": ..}, "evaluate": {...}}``.
    """

    name: str
    exp_folder: str
    n_pairs: int = 0
    n_scored: int = 0
    failed: dict = field(default_factory=dict)
    error: str = ""
    seconds: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True if every pair was scored and nothing failed."""
        return not self.error and not any(self.failed.values()) and self.n_scored == self.n_pairs


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children, in seconds."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


#: Written into ``path.root`` by :func:`ensure_dataset` around a demo rendering.
DEMO_MARKER = "clarity_se_demo.json"


def ensure_dataset(cfg) -> dict | None:
    """Render the demo dataset into ``path.root`` if ``run.render_demo`` and it is absent.

    ``<path.root>/clarity_se_demo.json`` records the rendering (``scenes``, ``seed``,
    ``complete``): it is written with ``complete: false`` before rendering and set true after,
    so a run killed while rendering re-renders on the next call (the renderer is
    deterministic). A dataset without that file (a real CEC2 tree) is never rendered over.

    Returns
    -------
    dict or None
        :func:`clarity_se.data.render.cli.build_dataset`'s result if it rendered, else ``None``.

    Raises
    ------
    ValueError
        If the metadata is absent and ``run.render_demo`` is false (names the file), or the
        scene count is negative.
    """
    from clarity_se.data.audio_io import atomic_write_text

    listeners_file = Path(cfg.path.scenes_listeners_file)
    marker = Path(cfg.path.root) / DEMO_MARKER
    state = json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else None
    interrupted = bool(cfg.run.render_demo) and state is not None and not state.get("complete")
    if listeners_file.is_file() and not interrupted:
        return None
    if not cfg.run.render_demo:
        raise ValueError(
            f"{listeners_file} not found: point path.root at a CEC2 dataset "
            "(or set run.render_demo=true to render the demo there)"
        )
    from clarity_se.data.render.cli import DEFAULT_SCENES, build_dataset
    from clarity_se.execution import resolve_workers

    n = int(cfg.run.demo_scenes) or DEFAULT_SCENES
    if n < 0:
        raise ValueError(f"run.demo_scenes must be >= 0, got {n}")
    if interrupted:
        logger.warning(
            "run: the demo rendering into %s was interrupted; rendering again", cfg.path.root
        )
    logger.info("run: rendering the demo dataset (%d scenes) into %s", n, cfg.path.root)
    record = {"scenes": n, "seed": int(cfg.run.demo_seed), "complete": False}
    Path(cfg.path.root).mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, json.dumps(record))
    result = build_dataset(
        cfg.path.root,
        n_train=n - n // 4,
        n_dev=n // 4,
        seed=int(cfg.run.demo_seed),
        workers=resolve_workers(cfg.evaluate.workers, "cpu"),
    )
    if not listeners_file.is_file():
        raise ValueError(
            f"rendered the demo into {cfg.path.root} but {listeners_file} is still "
            "missing: path.metadata_dir / scenes_listeners_file do not point into path.root"
        )
    atomic_write_text(marker, json.dumps(record | {"complete": True}))
    return result


def system_config(cfg, system: str):
    """One system's config: ``enhancer.name = system``, ``path.exp_folder = results/system``."""
    from omegaconf import OmegaConf

    sys_cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    OmegaConf.set_struct(sys_cfg, True)
    sys_cfg.enhancer.name = system
    sys_cfg.path.exp_folder = str(Path(cfg.run.results_folder) / system)
    resolved = OmegaConf.create(OmegaConf.to_container(sys_cfg, resolve=True))
    OmegaConf.set_struct(resolved, True)
    return resolved


def run_system(cfg, system: str, *, force: bool = False, wait: bool = False) -> SystemResult:
    """Enhance and evaluate one system (resuming); never raises for a system-level failure.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        The run's config.
    system : str
        ``enhancer.name`` of the system.
    force, wait : bool
        As the stages' ``--force`` and ``--wait``.

    Returns
    -------
    SystemResult
        Counts, failures per stage, and ``error`` if the system could not run.
    """
    from omegaconf import OmegaConf

    from clarity_se.data.audio_io import atomic_write_text
    from clarity_se.data.experiment import ErrorLog
    from clarity_se.enhancers import build_enhancer
    from clarity_se.stages.common import stage_inputs
    from clarity_se.stages.enhance import run_enhance
    from clarity_se.stages.evaluate import run_evaluate

    sys_cfg = system_config(cfg, system)
    result = SystemResult(name=system, exp_folder=str(sys_cfg.path.exp_folder))
    try:
        _, exp, pairs = stage_inputs(sys_cfg)
        result.n_pairs = len(pairs)
        enhancer = build_enhancer(sys_cfg.enhancer)  # fails early: unknown name, no checkpoint
    except ValueError as exc:
        result.error = str(exc)
        logger.error("run: system %s cannot run: %s", system, exc)
        return result
    exp.folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(exp.folder / "config.yaml", OmegaConf.to_yaml(sys_cfg))

    stages = (("enhance", lambda: run_enhance(sys_cfg, enhancer, force=force, wait=wait)),
              ("evaluate", lambda: run_evaluate(sys_cfg, force=force, wait=wait)))
    for stage, call in stages:
        t_wall, t_cpu = time.perf_counter(), _cpu_seconds()
        try:
            n_done, _, _ = call()
        except ValueError as exc:
            result.error = f"{stage}: {exc}"
            logger.error("run: system %s: %s", system, result.error)
        except Exception as exc:  # noqa: BLE001 - one system's crash must not stop the others
            result.error = f"{stage} crashed: {type(exc).__name__}: {exc}"
            logger.exception("run: system %s: %s crashed", system, stage)
        result.seconds[stage] = {
            "wall_s": time.perf_counter() - t_wall,
            "cpu_s": _cpu_seconds() - t_cpu,
        }
        if result.error:
            break
        if stage == "evaluate":
            result.n_scored = n_done
    rows = ErrorLog.read(exp.csv_path("errors"))
    result.failed = {
        stage: sum(1 for r in rows if r["stage"] == stage) for stage in ("enhance", "evaluate")
    }
    return result


class _RunLog:
    """``run.log``: INFO and above of ``clarity_se.*`` to a file, console verbosity unchanged."""

    def __init__(self, path: Path) -> None:
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setLevel(logging.INFO)
        self.handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        root = logging.getLogger()
        # Console handlers keep their current threshold although clarity_se now logs INFO.
        self.saved = [(h, h.level) for h in root.handlers]
        for handler, level in self.saved:
            if level == logging.NOTSET:
                handler.setLevel(root.getEffectiveLevel())
        self.package = logging.getLogger("clarity_se")
        self.package_level = self.package.level
        if self.package.getEffectiveLevel() > logging.INFO:
            self.package.setLevel(logging.INFO)
        self.package.addHandler(self.handler)

    def detach(self) -> None:
        """Remove the run.log handler and restore the logging levels saved at attach time."""
        self.package.removeHandler(self.handler)
        self.package.setLevel(self.package_level)
        for handler, level in self.saved:
            handler.setLevel(level)
        self.handler.close()


def _attach_log(path: Path) -> _RunLog:
    return _RunLog(path)


def run_pipeline(
    cfg, *, command: list[str] | None = None, force: bool = False, wait: bool = False
) -> tuple[int, list[SystemResult]]:
    """The whole main job (see the module docstring); returns ``(exit_status, results)``.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        Recipe config with ``run.*``.
    command : list of str, optional
        Command line recorded in ``run_info.json``.
    force, wait : bool
        Passed to every stage (recompute everything; wait for a folder in use).

    Returns
    -------
    exit_status : int
        0 if every pair of every system was scored, 1 otherwise.
    results : list of SystemResult
        One per system of ``run.systems``.

    Raises
    ------
    ValueError
        If the dataset is missing (and not rendered) or the config is bad.
    """
    from omegaconf import OmegaConf

    from clarity_se.data.audio_io import atomic_write_text
    from clarity_se.provenance import environment
    from clarity_se.report import build_report

    results_folder = Path(cfg.run.results_folder)
    results_folder.mkdir(parents=True, exist_ok=True)
    log_handler = _attach_log(results_folder / "run.log")
    info = {
        "command": command or [],
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "environment": environment(),
    }
    info_path = results_folder / "run_info.json"
    atomic_write_text(info_path, json.dumps(info, indent=2))
    t_wall, t_cpu = time.perf_counter(), _cpu_seconds()
    results: list[SystemResult] = []
    try:
        t_render = time.perf_counter()
        rendered = ensure_dataset(cfg)
        if rendered is not None:
            info["render"] = {
                "train": len(rendered["train"]),
                "dev": len(rendered["dev"]),
                "wall_s": time.perf_counter() - t_render,
            }
        for system in cfg.run.systems:
            logger.info("run: system %s", system)
            results.append(run_system(cfg, str(system), force=force, wait=wait))
        with_scores = {
            r.name: Path(r.exp_folder)
            for r in results
            if (Path(r.exp_folder) / "scores.csv").is_file() and r.n_scored
        }
        missing = 0
        if with_scores:
            scenes_file = Path(cfg.path.scenes_listeners_file)
            scenes_file = scenes_file.with_name(
                scenes_file.name.replace("scenes_listeners.", "scenes.", 1)
            )
            tables = build_report(
                with_scores,
                results_folder,
                baseline="passthrough" if "passthrough" in with_scores else None,
                scenes_listeners_file=None
                if cfg.evaluate.shard
                else cfg.path.scenes_listeners_file,
                scenes_file=scenes_file,
                listeners_file=cfg.path.listeners_file,
                small_test=bool(cfg.evaluate.small_test),
            )
            missing = len(tables["missing"])
            info["summary"] = tables["summary"].to_dict(orient="records")
        status = 0 if results and all(r.ok for r in results) and not missing else 1
    finally:
        info["systems"] = [asdict(r) | {"ok": r.ok} for r in results]
        info["finished_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        info["wall_s"] = time.perf_counter() - t_wall
        info["cpu_s"] = _cpu_seconds() - t_cpu
        log_handler.detach()
    info["exit_status"] = status
    atomic_write_text(info_path, json.dumps(info, indent=2))
    return status, results


def format_summary(results: list[SystemResult]) -> str:
    """One line per system: pairs scored, failures per stage, or why it did not run."""
    lines = []
    for r in results:
        if r.error:
            lines.append(f"{r.name}: FAILED: {r.error}")
            continue
        failed = ", ".join(f"{stage} {n}" for stage, n in r.failed.items())
        lines.append(
            f"{r.name}: {r.n_scored} of {r.n_pairs} pairs scored; failed: {failed}"
            + (f" (see {Path(r.exp_folder) / 'errors.csv'})" if any(r.failed.values()) else "")
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clarity-se run``: the recipe config and dotlist overrides."""
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run ``clarity-se run``.

    Returns
    -------
    int
        0 if everything was scored, 1 if any pair or system failed, 2 on a bad config or
        missing dataset.
    """
    from clarity_se.stages.common import stage_main

    def run():
        cfg = load_config(args.config, args.overrides)
        command = (
            ["clarity-se", "run"]
            + (["-c", str(args.config)] if args.config else [])
            + list(args.overrides)
        )
        status, results = run_pipeline(cfg, command=command, force=args.force, wait=args.wait)
        summary = (
            format_summary(results)
            + f"\nrun: report in {Path(cfg.run.results_folder) / 'report.html'}"
            + ("" if status == 0 else "; some pairs or systems FAILED (exit status 1)")
        )
        return len(results), status, summary

    return stage_main("run", run)
