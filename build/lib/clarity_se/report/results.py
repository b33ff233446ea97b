"""A results folder of ``clarity-se run``, loaded for the notebook (no recomputation)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunResults", "load_results"]


@dataclass
class RunResults:
    """A results folder of :func:`run_pipeline`, loaded for the notebook (no recomputation).

    Attributes
    ----------
    folder : pathlib.Path
        The results folder (``run.results_folder``).
    info : dict
        ``run_info.json`` (empty if absent).
    systems : dict of str -> pathlib.Path
        System name -> folder holding its ``scores.csv`` (or shard files).
    baseline : str
        System the paired differences are taken against (``passthrough`` if present).
    scores : pandas.DataFrame
        Every pair of every system: ``system, scene, listener, combined, haspi, hasqi``.
    summary, per_listener, per_snr, per_interferer : pandas.DataFrame
        ``report.csv`` and the breakdown CSVs written by the report (empty if absent).
    paired_deltas : pandas.DataFrame
        ``system, scene, listener, delta_combined``: each non-baseline system minus the baseline
        on the pairs both scored.
    listeners : dict of str -> clarity_se.data.audiogram.Listener
        From the run's ``path.listeners_file`` (empty if not found).
    compressor : clarity_se.amplification.compressor.Compressor
        Built from the run's ``compressor.*`` and ``nalr.sample_rate``.
    """

    folder: Path
    info: dict
    systems: dict
    baseline: str
    scores: object
    summary: object
    per_listener: object
    per_snr: object
    per_interferer: object
    paired_deltas: object
    listeners: dict
    compressor: object


def load_results(results_folder: str | os.PathLike) -> RunResults:
    """Load what ``clarity-se run`` wrote into ``results_folder`` (see :class:`RunResults`).

    Parameters
    ----------
    results_folder : path-like
        E.g. ``results/demo``.

    Returns
    -------
    RunResults

    Raises
    ------
    ValueError
        If the folder holds no system with scores.
    """
    import pandas as pd

    from clarity_se.amplification.compressor import Compressor
    from clarity_se.config import RecipeConfig
    from clarity_se.data.audiogram import load_listeners
    from clarity_se.report.build import discover_systems, read_scores

    folder = Path(results_folder)
    info_path = folder / "run_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    systems = discover_systems(folder) if folder.is_dir() else {}
    if not systems:
        raise ValueError(f"{folder}: no system folder with scores.csv (run `clarity-se run` first)")
    baseline = "passthrough" if "passthrough" in systems else next(iter(systems))
    scores = pd.concat(
        [read_scores(path).assign(system=name) for name, path in systems.items()], ignore_index=True
    )[["system", "scene", "listener", "combined", "haspi", "hasqi"]]

    def table(name: str) -> pd.DataFrame:
        path = folder / name
        return pd.read_csv(path) if path.is_file() else pd.DataFrame()

    base = scores[scores["system"] == baseline].set_index(["scene", "listener"])["combined"]
    deltas = []
    for name in systems:
        if name == baseline:
            continue
        sub = scores[scores["system"] == name].set_index(["scene", "listener"])["combined"]
        common = sub.index.intersection(base.index)
        delta = (sub.loc[common] - base.loc[common]).rename("delta_combined").reset_index()
        deltas.append(delta.assign(system=name))
    paired = (
        pd.concat(deltas, ignore_index=True)
        if deltas
        else pd.DataFrame(columns=["scene", "listener", "delta_combined", "system"])
    )
    config = info.get("config", {})
    listeners_file = config.get("path", {}).get("listeners_file")
    listeners = (
        load_listeners(listeners_file) if listeners_file and Path(listeners_file).is_file() else {}
    )
    defaults = RecipeConfig()
    comp = {**vars(defaults.compressor), **config.get("compressor", {})}
    sample_rate = config.get("nalr", {}).get("sample_rate", defaults.nalr.sample_rate)
    return RunResults(
        folder=folder,
        info=info,
        systems=systems,
        baseline=baseline,
        scores=scores,
        summary=table("report.csv"),
        per_listener=table("report_per_listener.csv"),
        per_snr=table("report_per_snr.csv"),
        per_interferer=table("report_per_interferer.csv"),
        paired_deltas=paired,
        listeners=listeners,
        compressor=Compressor(sample_rate=sample_rate, **comp),
    )
