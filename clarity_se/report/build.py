"""The report of one or more systems: CSV tables and a self-contained HTML page with plots.

Reads each system's ``scores.csv`` (and shard files ``scores.shard-k-of-n.csv``), merges them,
checks the pair count against ``scenes_listeners`` (as the official ``report_score.py``), and
writes, into the results folder:

- ``report.csv``: mean and 95 % confidence interval (Student t) of combined, HASPI and HASQI per
  system;
- ``report_per_listener.csv``, ``report_per_snr.csv``, ``report_per_interferer.csv``,
  ``report_paired.csv`` (improvement over the baseline, paired per (scene, listener));
- ``report.html`` with tables and matplotlib plots embedded as base64 PNG (no external files).

The official summary (pair count and the three means) is printed per system.
"""

from __future__ import annotations

import base64
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from clarity_se.data.audio_io import atomic_write_text
from clarity_se.report.plots import (
    plot_grouped,
    plot_listener,
    plot_paired,
    plot_system_means,
    system_colours,
)

logger = logging.getLogger(__name__)

METRICS = ("combined", "haspi", "hasqi")
SCORE_COLUMNS = ("scene", "listener", "combined", "haspi", "hasqi")
SNR_BINS_DB = (-np.inf, -6.0, 0.0, 6.0, np.inf)
SNR_BIN_LABELS = ("< -6 dB", "-6..0 dB", "0..6 dB", ">= 6 dB")


def read_scores(system_folder: str | Path) -> pd.DataFrame:
    """Merge a system's ``scores.csv`` and ``scores.shard-*.csv`` into one table.

    Parameters
    ----------
    system_folder : path-like
        Folder holding the official ``scores.csv`` (and/or shard files).

    Returns
    -------
    pandas.DataFrame
        Columns ``scene, listener, combined, haspi, hasqi``; one row per pair (duplicates across
        shard files are dropped, keeping the first).

    Raises
    ------
    ValueError
        If no scores file exists or a file lacks the official header.
    """
    folder = Path(system_folder)
    files = sorted(folder.glob("scores.csv")) + sorted(folder.glob("scores.shard-*.csv"))
    if not files:
        raise ValueError(f"{folder}: no scores.csv (run `clarity-se evaluate` first)")
    frames = []
    for path in files:
        frame = pd.read_csv(path)
        missing = [c for c in SCORE_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; expected {list(SCORE_COLUMNS)}")
        frames.append(frame[list(SCORE_COLUMNS)])
    merged = pd.concat(frames, ignore_index=True)
    merged = merged.drop_duplicates(subset=["scene", "listener"], keep="first")
    return merged.reset_index(drop=True)


def mean_ci(
    values: np.ndarray, confidence: float = 0.95, bounds: tuple[float, float] | None = (0.0, 1.0)
) -> tuple[float, float, float]:
    """Mean and two-sided Student-t confidence interval of the mean.

    Returns
    -------
    (mean, low, high) : tuple of float
        ``low == high == mean`` for a single value; NaN for none.
    """
    from scipy import stats

    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (float("nan"),) * 3
    mean = float(values.mean())
    if values.size == 1:
        return mean, float("nan"), float("nan")
    half = float(
        stats.t.ppf(0.5 + confidence / 2, values.size - 1)
        * values.std(ddof=1)
        / np.sqrt(values.size)
    )
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return mean, low, high


def summarise(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean, 95 % CI and count of each metric, grouped by ``by`` columns."""
    rows = []
    for key, group in frame.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key, strict=True))
        row["n"] = len(group)
        for metric in METRICS:
            mean, low, high = mean_ci(group[metric].to_numpy())
            row[f"{metric}_mean"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = (
                mean,
                low,
                high,
            )
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class SceneInfo:
    """What the report needs of a scene: its SNR (dB) and interferer types."""

    snr_db: float
    interferer_types: str


def read_scene_info(scenes_file: str | Path | None) -> dict[str, SceneInfo]:
    """SNR (dB) and sorted interferer types (``"music+speech"``) per scene of a CEC2 scenes JSON.

    Returns an empty mapping if ``scenes_file`` is None or absent (those plots are skipped).
    """
    if scenes_file is None or not Path(scenes_file).is_file():
        return {}
    from clarity_se.data.scene import load_scenes

    info = {}
    for scene in load_scenes(scenes_file):
        types = sorted({i.type for i in scene.interferers})
        info[scene.scene] = SceneInfo(float(scene.snr_db), "+".join(types) or "none")
    return info


def _figure_to_data_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _table(frame: pd.DataFrame, float_format: str = "{:.4f}") -> str:
    """HTML table; ``<metric>_mean/_ci_low/_ci_high`` triples shown as ``mean [low, high]``."""
    frame = frame.copy()
    for metric in METRICS:
        cols = [f"{metric}_mean", f"{metric}_ci_low", f"{metric}_ci_high"]
        if all(c in frame.columns for c in cols):
            frame[metric] = [
                f"{m:.4f} [{lo:.4f}, {hi:.4f}]" for m, lo, hi in frame[cols].to_numpy()
            ]
            frame = frame.drop(columns=cols)
    return frame.to_html(
        index=False, float_format=lambda v: float_format.format(v), border=0, classes="t", na_rep=""
    )


def _template():
    """The page template ``report/templates/report.html.j2`` (autoescaped; tables are HTML)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("clarity_se.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )
    return env.get_template("report.html.j2")


def build_report(
    systems: dict[str, Path],
    out_folder: str | Path,
    *,
    baseline: str | None = None,
    scenes_listeners_file: str | Path | None = None,
    scenes_file: str | Path | None = None,
    listeners_file: str | Path | None = None,
    small_test: bool = False,
    leaderboard: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Write ``report.csv``, the breakdown CSVs and ``report.html`` for ``systems``.

    Parameters
    ----------
    systems : dict of str -> path
        System name -> folder with its ``scores.csv``.
    out_folder : path-like
        Where the report files go.
    baseline : str, optional
        System the paired improvements are computed against (default: the first system).
    scenes_listeners_file, scenes_file, listeners_file : path-like, optional
        CEC2 metadata for the completeness check, SNR / interferer breakdowns and audiograms.
    small_test : bool
        Expect the official ``small_test`` subset.
    leaderboard : pandas.DataFrame, optional
        :func:`clarity_se.report.leaderboard.leaderboard`'s table: adds the section "Quality
        against compute" (table and plot) and ``leaderboard.csv``.

    Returns
    -------
    dict of str -> pandas.DataFrame
        The tables written (``summary``, ``per_listener``, ``per_snr``, ``per_interferer``,
        ``paired``, ``missing``).

    Raises
    ------
    ValueError
        If a system has no scores.
    """
    from clarity_se.data.audiogram import load_listeners
    from clarity_se.data.scene import make_scene_listener_list, read_scenes_listeners

    out = Path(out_folder)
    out.mkdir(parents=True, exist_ok=True)
    names = list(systems)
    baseline = baseline if baseline in systems else names[0]
    names = [baseline] + [n for n in names if n != baseline]
    frames = []
    missing_rows = []
    expected = None
    if scenes_listeners_file is not None and Path(scenes_listeners_file).is_file():
        expected = make_scene_listener_list(
            read_scenes_listeners(scenes_listeners_file), small_test
        )
    for name in names:
        scores = read_scores(systems[name])
        if expected is not None:
            expected_df = pd.DataFrame(expected, columns=["scene", "listener"])
            scores = scores.merge(expected_df, on=["scene", "listener"])
            found = set(zip(scores["scene"], scores["listener"], strict=True))
            for scene, lis in expected:
                if (scene, lis) not in found:
                    missing_rows.append({"system": name, "scene": scene, "listener": lis})
        scores.insert(0, "system", name)
        frames.append(scores)
        # The official report_score.py summary.
        if expected is not None and len(scores) != len(expected):
            print(
                f"[{name}] {len(expected) - len(scores)} of {len(expected)} expected results "
                "were not found"
            )
        else:
            print(f"[{name}] Scores based on {len(scores)} pairs.")
        print(scores[["haspi", "hasqi", "combined"]].mean(axis=0).to_string())
    allscores = pd.concat(frames, ignore_index=True)
    info = read_scene_info(scenes_file)
    allscores["snr_db"] = allscores["scene"].map(lambda s: info[s].snr_db if s in info else np.nan)
    allscores["interferers"] = allscores["scene"].map(
        lambda s: info[s].interferer_types if s in info else "?"
    )
    bins = pd.cut(allscores["snr_db"], SNR_BINS_DB, labels=list(SNR_BIN_LABELS), right=False)
    allscores["snr_bin"] = bins.astype(str)

    summary = summarise(allscores, ["system"])
    summary = summary.set_index("system").loc[names].reset_index()
    per_listener = summarise(allscores, ["listener", "system"])
    per_snr = summarise(allscores[allscores["snr_bin"] != "nan"], ["snr_bin", "system"])
    if len(per_snr):
        order = {label: i for i, label in enumerate(SNR_BIN_LABELS)}
        per_snr = per_snr.sort_values(
            "snr_bin", key=lambda c: c.map(order), kind="stable"
        ).reset_index(drop=True)
    per_interferer = summarise(allscores, ["interferers", "system"])

    base = allscores[allscores["system"] == baseline].set_index(["scene", "listener"])
    paired_rows = []
    for name in names:
        if name == baseline:
            continue
        sub = allscores[allscores["system"] == name].set_index(["scene", "listener"])
        common = sub.index.intersection(base.index)
        for metric in METRICS:
            delta = sub.loc[common, metric] - base.loc[common, metric]
            mean, low, high = mean_ci(delta.to_numpy(), bounds=(-1.0, 1.0))
            paired_rows.append(
                {
                    "system": name,
                    "baseline": baseline,
                    "metric": metric,
                    "n": len(common),
                    "delta_mean": mean,
                    "delta_ci_low": low,
                    "delta_ci_high": high,
                    "fraction_improved": float((delta > 0).mean()) if len(common) else np.nan,
                }
            )
    paired = pd.DataFrame(paired_rows)
    per_pair_delta = []
    for name in names:
        if name == baseline:
            continue
        sub = allscores[allscores["system"] == name].set_index(["scene", "listener"])
        common = sub.index.intersection(base.index)
        delta = (sub.loc[common, "combined"] - base.loc[common, "combined"]).rename(
            "delta_combined"
        )
        per_pair_delta.append(delta.reset_index().assign(system=name))
    per_pair_delta = (
        pd.concat(per_pair_delta, ignore_index=True) if per_pair_delta else pd.DataFrame()
    )
    missing = pd.DataFrame(missing_rows, columns=["system", "scene", "listener"])

    atomic_write_text(out / "report.csv", summary.to_csv(index=False))
    atomic_write_text(out / "report_per_listener.csv", per_listener.to_csv(index=False))
    atomic_write_text(out / "report_per_snr.csv", per_snr.to_csv(index=False))
    atomic_write_text(out / "report_per_interferer.csv", per_interferer.to_csv(index=False))
    atomic_write_text(out / "report_paired.csv", paired.to_csv(index=False))

    listeners = {}
    if listeners_file is not None and Path(listeners_file).is_file():
        listeners = load_listeners(listeners_file)

    warnings = []
    if len(missing):
        warnings.append(f"{len(missing)} expected pair(s) missing (see the table at the end).")
    if not info:
        warnings.append(
            "No scene metadata (clarity-se report --metadata META): the per-SNR and "
            "per-interferer breakdowns are missing."
        )
        logger.warning("report: no scene metadata given; per-SNR / interferer plots skipped")
    colours = system_colours(names)

    def image(alt: str, fig) -> dict:
        return {"alt": alt, "src": _figure_to_data_uri(fig)}

    sections = [{"level": 2, "title": "Systems", "table": _table(summary),
                 "images": [image("means", plot_system_means(summary, colours))]}]
    if len(paired):
        sections.append({"level": 2, "title": "Improvement over the baseline (paired)",
                         "table": _table(paired),
                         "images": [image("paired", plot_paired(per_pair_delta, baseline,
                                                                colours))]})
    if len(per_snr):
        fig = plot_grouped(per_snr, "snr_bin", title="combined per SNR bin", colours=colours)
        sections.append({"level": 2, "title": "Per SNR", "table": _table(per_snr),
                         "images": [image("snr", fig)]})
    if info:
        fig = plot_grouped(per_interferer, "interferers", title="combined per interferer types",
                           colours=colours)
        sections.append({"level": 2, "title": "Per interferer type",
                         "table": _table(per_interferer), "images": [image("interferers", fig)]})
    sections.append({"level": 2, "title": "Per listener", "table": "", "images": []})
    for listener_id, sub in per_listener.groupby("listener", sort=True):
        fig = plot_listener(listeners.get(listener_id), sub, colours)
        sections.append({"level": 3, "title": str(listener_id), "table": _table(sub),
                         "images": [image(f"listener {listener_id}", fig)]})
    if leaderboard is not None and len(leaderboard):
        from clarity_se.report.leaderboard import figure_quality_vs_compute

        atomic_write_text(out / "leaderboard.csv", leaderboard.to_csv(index=False))
        images = []
        if (pd.to_numeric(leaderboard["macs_per_s"], errors="coerce") > 0).any():
            images = [image("quality against compute", figure_quality_vs_compute(leaderboard))]
        sections.append({"level": 2, "title": "Quality against compute (held-out scenes)",
                         "table": _table(leaderboard.drop(columns=["quality_file"])),
                         "images": images})
    if len(missing):
        sections.append({"level": 2, "title": "Missing pairs", "table": _table(missing),
                         "images": []})
    page = _template().render(systems=names, baseline=baseline, warnings=warnings,
                              sections=sections)  # fmt: skip
    atomic_write_text(out / "report.html", page)
    logger.info("report written to %s", out / "report.html")
    return {
        "summary": summary,
        "per_listener": per_listener,
        "per_snr": per_snr,
        "per_interferer": per_interferer,
        "paired": paired,
        "missing": missing,
    }


def discover_systems(results_folder: str | Path) -> dict[str, Path]:
    """Sub-folders of ``results_folder`` that hold ``scores.csv`` (or shards), by name."""
    folder = Path(results_folder)
    found = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if any(sub.glob("scores.csv")) or any(sub.glob("scores.shard-*.csv")):
            found[sub.name] = sub
    if (folder / "scores.csv").is_file() or any(folder.glob("scores.shard-*.csv")):
        found.setdefault(folder.name, folder)
    return found
