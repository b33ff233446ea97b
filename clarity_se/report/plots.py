"""The report's plots (matplotlib, Agg backend): one colour per system everywhere.

Conventions: a system keeps its colour in every figure (:func:`system_colours`, baseline
first); categorical axes (SNR bins, interferer types) show points with 95 % intervals, not
lines; intervals are drawn only where they exist (two or more values) and are clipped to the
score range; audiograms share one dB HL scale (-10 to 120, inverted, the audiometric
frequencies as ticks).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "plot_grouped",
    "plot_listener",
    "plot_paired",
    "plot_system_means",
    "system_colours",
]

METRICS = ("combined", "haspi", "hasqi")
#: dB HL range of every audiogram plot (the audiometer's, with a little margin).
AUDIOGRAM_YLIM_DB_HL = (-10.0, 120.0)
AUDIOGRAM_TICKS_HZ = (250, 500, 1000, 2000, 4000, 8000)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def system_colours(systems: list[str]) -> dict[str, tuple]:
    """One colour per system (matplotlib's ``tab10`` in the given order, baseline first)."""
    plt = _pyplot()
    cmap = plt.get_cmap("tab10")
    return {str(name): cmap(i % 10) for i, name in enumerate(systems)}


def _yerr(frame: pd.DataFrame, metric: str) -> np.ndarray:
    """``[2, n]`` error-bar lengths; zero where there is no interval (n < 2)."""
    mean = frame[f"{metric}_mean"].to_numpy(float)
    low = frame[f"{metric}_ci_low"].to_numpy(float)
    high = frame[f"{metric}_ci_high"].to_numpy(float)
    err = np.vstack([mean - low, high - mean])
    return np.nan_to_num(err, nan=0.0).clip(min=0.0)


def plot_system_means(summary: pd.DataFrame, colours: dict | None = None):
    """Bars of each metric's mean with its 95 % interval, one colour per system."""
    plt = _pyplot()
    colours = colours or system_colours(summary["system"].astype(str).tolist())
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / max(len(summary), 1)
    x = np.arange(len(METRICS))
    for i, (_, row) in enumerate(summary.iterrows()):
        row_frame = pd.DataFrame([row])
        means = [row[f"{m}_mean"] for m in METRICS]
        err = np.hstack([_yerr(row_frame, m) for m in METRICS])
        ax.bar(x + i * width, means, width, yerr=err, capsize=3, label=str(row["system"]),
               color=colours[str(row["system"])])  # fmt: skip
    ax.set_xticks(x + width * (len(summary) - 1) / 2, METRICS)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score (mean, 95% CI)")
    ax.legend(fontsize=8)
    return fig


def plot_grouped(
    summary: pd.DataFrame,
    group: str,
    metric: str = "combined",
    title: str = "",
    colours: dict | None = None,
):
    """Mean and 95 % interval of ``metric`` per category of ``group``: points, no lines,
    systems side by side within a category."""
    plt = _pyplot()
    systems = list(dict.fromkeys(summary["system"].astype(str)))
    colours = colours or system_colours(systems)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels = list(dict.fromkeys(summary[group].astype(str)))
    x = np.arange(len(labels))
    step = 0.6 / max(len(systems), 1)
    for i, system in enumerate(systems):
        sub = summary[summary["system"].astype(str) == system]
        sub = sub.set_index(sub[group].astype(str)).reindex(labels)
        offset = (i - (len(systems) - 1) / 2) * step
        ax.errorbar(x + offset, sub[f"{metric}_mean"].to_numpy(float), yerr=_yerr(sub, metric),
                    fmt="o", linestyle="none", capsize=3, label=system,
                    color=colours[system])  # fmt: skip
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"{metric} (mean, 95% CI)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def plot_listener(listener, per_system: pd.DataFrame, colours: dict | None = None):
    """A listener's audiograms (shared dB HL scale, inverted) beside their mean combined score
    per system (bars in the systems' colours)."""
    plt = _pyplot()
    systems = per_system["system"].astype(str).tolist()
    colours = colours or system_colours(systems)
    fig, (ax_a, ax_s) = plt.subplots(1, 2, figsize=(8, 2.8))
    if listener is not None:
        ears = zip(listener.audiograms, ("left", "right"), ("x", "o"), strict=True)
        for audiogram, label, marker in ears:
            ax_a.semilogx(audiogram.frequencies_hz, audiogram.levels_db_hl, marker=marker,
                          label=label, color="tab:blue" if label == "left" else "tab:red")
        ax_a.legend(fontsize=7)
    ax_a.set_xscale("log")
    ax_a.set_xlim(180, 11000)
    ax_a.set_xticks(AUDIOGRAM_TICKS_HZ,
                    [f"{f // 1000}k" if f >= 1000 else str(f) for f in AUDIOGRAM_TICKS_HZ])
    ax_a.minorticks_off()
    ax_a.set_ylim(AUDIOGRAM_YLIM_DB_HL[1], AUDIOGRAM_YLIM_DB_HL[0])  # inverted: loss downwards
    ax_a.set_xlabel("frequency (Hz)")
    ax_a.set_ylabel("dB HL")
    ax_a.set_title("audiogram")
    ax_a.grid(True, alpha=0.3)
    ax_s.barh(systems, per_system["combined_mean"].to_numpy(float),
              xerr=_yerr(per_system, "combined"), capsize=3,
              color=[colours[s] for s in systems])  # fmt: skip
    ax_s.set_xlim(0, 1)
    ax_s.set_xlabel("combined (mean, 95% CI)")
    fig.tight_layout()
    return fig


def plot_paired(paired: pd.DataFrame, baseline: str, colours: dict | None = None):
    """Histogram of the per-pair combined-score improvement over the baseline, per system."""
    plt = _pyplot()
    systems = list(dict.fromkeys(paired["system"].astype(str))) if len(paired) else []
    colours = colours or system_colours(systems)
    fig, ax = plt.subplots(figsize=(7, 3))
    for system, sub in paired.groupby("system", sort=False):
        ax.hist(sub["delta_combined"], bins=20, alpha=0.6, label=str(system),
                color=colours[str(system)])  # fmt: skip
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel(f"combined - combined[{baseline}] per pair")
    ax.set_ylabel("pairs")
    ax.legend(fontsize=8)
    return fig
