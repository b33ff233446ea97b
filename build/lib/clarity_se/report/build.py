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
import html
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from clarity_se.data.audio_io import atomic_write_text

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


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
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
        return mean, mean, mean
    half = float(
        stats.t.ppf(0.5 + confidence / 2, values.size - 1)
        * values.std(ddof=1)
        / np.sqrt(values.size)
    )
    return mean, mean - half, mean + half


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


def plot_system_means(summary: pd.DataFrame):
    """Bar chart of each metric's mean with its 95 % CI, one group per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / max(len(summary), 1)
    x = np.arange(len(METRICS))
    for i, (_, row) in enumerate(summary.iterrows()):
        means = np.array([row[f"{m}_mean"] for m in METRICS])
        err = np.array(
            [
                [row[f"{m}_mean"] - row[f"{m}_ci_low"] for m in METRICS],
                [row[f"{m}_ci_high"] - row[f"{m}_mean"] for m in METRICS],
            ]
        )
        ax.bar(x + i * width, means, width, yerr=err, capsize=3, label=str(row["system"]))
    ax.set_xticks(x + width * (len(summary) - 1) / 2, METRICS)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score (mean, 95% CI)")
    ax.legend(fontsize=8)
    return fig


def plot_grouped(summary: pd.DataFrame, group: str, metric: str = "combined", title: str = ""):
    """Mean +/- 95 % CI of ``metric`` per ``group`` value, one line per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels = list(dict.fromkeys(summary[group].astype(str)))
    x = np.arange(len(labels))
    for system, sub in summary.groupby("system", sort=False):
        sub = sub.set_index(sub[group].astype(str)).reindex(labels)
        mean = sub[f"{metric}_mean"].to_numpy()
        err = np.vstack(
            [mean - sub[f"{metric}_ci_low"].to_numpy(), sub[f"{metric}_ci_high"].to_numpy() - mean]
        )
        ax.errorbar(x, mean, yerr=err, marker="o", capsize=3, label=str(system))
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel(f"{metric} (mean, 95% CI)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def plot_listener(listener, per_system: pd.DataFrame):
    """A listener's audiograms (dB HL, inverted axis) beside their mean scores per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_a, ax_s) = plt.subplots(1, 2, figsize=(8, 2.8))
    if listener is not None:
        ears = zip(listener.audiograms, ("left", "right"), ("x", "o"), strict=True)
        for audiogram, label, marker in ears:
            ax_a.semilogx(
                audiogram.frequencies_hz, audiogram.levels_db_hl, marker=marker, label=label
            )
        ax_a.invert_yaxis()
        ax_a.set_xlabel("frequency (Hz)")
        ax_a.set_ylabel("dB HL")
        ax_a.legend(fontsize=7)
    ax_a.set_title("audiogram")
    systems = per_system["system"].astype(str).tolist()
    ax_s.barh(
        systems,
        per_system["combined_mean"].to_numpy(),
        xerr=np.vstack(
            [
                per_system["combined_mean"] - per_system["combined_ci_low"],
                per_system["combined_ci_high"] - per_system["combined_mean"],
            ]
        ),
        capsize=3,
    )
    ax_s.set_xlim(0, 1)
    ax_s.set_xlabel("combined (mean, 95% CI)")
    fig.tight_layout()
    return fig


def plot_paired(paired: pd.DataFrame, baseline: str):
    """Histogram of per-pair combined-score improvement over the baseline, per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    for system, sub in paired.groupby("system"):
        ax.hist(sub["delta_combined"], bins=20, alpha=0.6, label=str(system))
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel(f"combined - combined[{baseline}] per pair")
    ax.set_ylabel("pairs")
    ax.legend(fontsize=8)
    return fig


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


def build_report(
    systems: dict[str, Path],
    out_folder: str | Path,
    *,
    baseline: str | None = None,
    scenes_listeners_file: str | Path | None = None,
    scenes_file: str | Path | None = None,
    listeners_file: str | Path | None = None,
    small_test: bool = False,
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
            print(f"[{name}] Scores based on {len(scores)} scenes.")
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
            mean, low, high = mean_ci(delta.to_numpy())
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

    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>clarity_se report</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}"
        "table.t{border-collapse:collapse;font-size:13px}table.t td,table.t th{padding:2px 8px;"
        "border-bottom:1px solid #ddd;text-align:right}img{max-width:100%}</style></head><body>",
        "<h1>clarity_se report</h1>",
        f"<p>Systems: {html.escape(', '.join(names))}; baseline for paired differences: "
        f"{html.escape(baseline)}. Scores: HASPI v2 and HASQI v2 better ear after NAL-R and "
        "compression; combined = their mean (ICASSP 2023). Intervals are 95% Student-t.</p>",
    ]
    if len(missing):
        parts.append(
            f"<p style='color:#b00'><b>{len(missing)} expected pair(s) missing</b> "
            "(see the table at the end).</p>"
        )
    def img(alt: str, fig) -> str:
        return f"<img alt='{html.escape(alt)}' src='{_figure_to_data_uri(fig)}'>"

    parts += ["<h2>Systems</h2>", _table(summary), img("means", plot_system_means(summary))]
    if len(paired):
        parts += [
            "<h2>Improvement over the baseline (paired)</h2>",
            _table(paired),
            img("paired", plot_paired(per_pair_delta, baseline)),
        ]
    if len(per_snr):
        snr_fig = plot_grouped(per_snr, "snr_bin", title="combined per SNR bin")
        parts += ["<h2>Per SNR</h2>", img("snr", snr_fig), _table(per_snr)]
    interferer_fig = plot_grouped(
        per_interferer, "interferers", title="combined per interferer types"
    )
    parts += [
        "<h2>Per interferer type</h2>",
        img("interferers", interferer_fig),
        _table(per_interferer),
        "<h2>Per listener</h2>",
    ]
    for listener_id, sub in per_listener.groupby("listener", sort=True):
        parts.append(f"<h3>{html.escape(str(listener_id))}</h3>")
        fig = plot_listener(listeners.get(listener_id), sub)
        parts.append(img(f"listener {listener_id}", fig))
        parts.append(_table(sub))
    if len(missing):
        parts += ["<h2>Missing pairs</h2>", _table(missing)]
    parts.append("</body></html>")
    atomic_write_text(out / "report.html", "\n".join(parts))
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
