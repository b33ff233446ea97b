"""The echo-track report page: HTML (jinja2) and PNG plots (matplotlib) from ``aec_scores.csv``.

:func:`build_aec_report` reads one or more ``aec_scores.csv`` files written by
``clarity-se aec-evaluate`` (one per evaluated system; the reference system, e.g. WebRTC AEC3,
and the unprocessed microphone ``input`` appear in each and are taken once) and the
``aec_erle_time.csv`` beside them, and writes into ``out_dir``:

- ``aec_report.html``: per talk type (far-end single talk ``st``, double talk ``dt``, near-end
  single talk ``nst``) a table of every system's mean, 95 % confidence interval and count per
  metric (ERLE, PESQ-WB, SI-SDR, DSML, RESL, AECMOS echo / degradation MOS), and the plots;
- ``aec_<talk type>.png``: bars of the means with their confidence intervals per metric;
- ``aec_erle_path_change.png``: ERLE over time around the echo-path change, averaged over the
  clips that have one (time 0 = the change), one line per system, and the individual clips;
- ``aec_tradeoff.png``: the distortion/suppression trade-off of Ivry et al. (2021): mean DSML
  against mean RESL in double talk, one point per system, the runs of one canceller with the
  residual-echo suppressor at several ``aec.res_alpha`` (system names
  ``<canceller>+res_unet@<alpha>``, :func:`clarity_se.aec.config.system_label`) joined
  into a curve labelled by alpha, and the reference system (WebRTC AEC3) marked with a star
  (the unprocessed mic, RESL 0 dB and DSML at its ceiling, is left out).

Means skip empty cells (a metric that does not apply to a talk type). The confidence interval
is Student's t on the clip values.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from clarity_se.metrics.aec_scores import METRICS

logger = logging.getLogger(__name__)

METRIC_LABELS = {
    "erle_db": "ERLE (dB)",
    "pesq_wb": "PESQ-WB",
    "si_sdr_db": "SI-SDR (dB)",
    "dsml_db": "DSML (dB)",
    "resl_db": "RESL (dB)",
    "aecmos_echo": "AECMOS echo",
    "aecmos_deg": "AECMOS degradation",
}
TALK_LABELS = {"st": "far-end single talk", "dt": "double talk", "nst": "near-end single talk"}

TEMPLATE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:sans-serif;max-width:1100px;margin:auto}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #bbb;padding:3px 8px;
text-align:right}th{background:#eee}td:first-child{text-align:left}</style></head>
<body><h1>{{ title }}</h1>
<p>{{ n_clips }} clips; systems: {{ systems|join(", ") }}. Mean [95 % CI] (n) per metric;
ERLE in far-end single talk, PESQ-WB, SI-SDR, DSML and RESL against the near-end speech in
double talk, AECMOS for every talk type (<code>input</code>: the unprocessed microphone).</p>
{% for talk in talks %}
<h2>{{ talk.label }} ({{ talk.name }}, {{ talk.n }} clips)</h2>
<table><tr><th>system</th>{% for m in talk.metrics %}<th>{{ labels[m] }}</th>{% endfor %}</tr>
{% for row in talk.rows %}<tr><td>{{ row.system }}</td>
{% for cell in row.cells %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table>
<img src="{{ talk.plot }}" alt="{{ talk.name }} means">
{% endfor %}
{% if tradeoff_plot %}<h2>Distortion / suppression trade-off (double talk)</h2>
<p>Mean desired-speech maintained level (DSML) against residual-echo suppression level (RESL)
over the double-talk clips; each curve is one canceller with the residual-echo suppressor at the
alphas given beside its points. Up and to the right is better.</p>
<img src="{{ tradeoff_plot }}" alt="DSML against RESL">{% endif %}
{% if path_change_plot %}<h2>Echo-path change: ERLE over time</h2>
<p>{{ n_changes }} clips with an echo-path change; time relative to the change.</p>
<img src="{{ path_change_plot }}" alt="ERLE over time around the echo-path change">{% endif %}
</body></html>
"""


def read_aec_scores(paths: list[str | os.PathLike]):
    """Long table ``id, talk_type, system, metric, value`` from ``aec_scores.csv`` files.

    The system's own columns carry no prefix (its name is in ``system``); ``<name>_<metric>``
    columns belong to system ``<name>`` (the reference, ``input``). A (clip, system) pair met
    in several files is taken once.

    Raises
    ------
    ValueError
        A file is missing or lacks the ``id``/``talk_type``/``system`` columns.
    """
    import pandas as pd

    frames = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: file not found")
        wide = pd.read_csv(path, dtype={"id": str, "system": str, "talk_type": str})
        missing = {"id", "talk_type", "system"} - set(wide.columns)
        if missing:
            raise ValueError(f"{path}: header: missing column(s) {', '.join(sorted(missing))}")
        for column in wide.columns:
            for metric in METRICS:
                if column == metric:
                    system = wide["system"]
                elif column.endswith("_" + metric):
                    system = pd.Series(column[: -len(metric) - 1], index=wide.index)
                else:
                    continue
                frames.append(pd.DataFrame({"id": wide["id"], "talk_type": wide["talk_type"],
                                            "system": system, "metric": metric,
                                            "value": pd.to_numeric(wide[column],
                                                                   errors="coerce")}))
    if not frames:
        return pd.DataFrame(columns=["id", "talk_type", "system", "metric", "value"])
    long = pd.concat(frames, ignore_index=True)
    return long.drop_duplicates(["id", "system", "metric"]).reset_index(drop=True)


def summarise_aec(long):
    """Mean, 95 % CI half-width (Student's t) and count per (talk_type, system, metric)."""
    import pandas as pd
    from scipy import stats

    rows = []
    for (talk, system, metric), group in long.dropna(subset=["value"]).groupby(
            ["talk_type", "system", "metric"], sort=False):
        values = group["value"].to_numpy(dtype=float)
        n = values.size
        half = (float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n))
                if n > 1 else float("nan"))
        rows.append({"talk_type": talk, "system": system, "metric": metric,
                     "mean": float(values.mean()), "ci95": half, "n": n})
    return pd.DataFrame(rows, columns=["talk_type", "system", "metric", "mean", "ci95", "n"])


def _system_order(systems) -> list[str]:
    rest = sorted(s for s in systems if s != "input")
    return rest + (["input"] if "input" in systems else [])


def _plot_talk(summary, talk: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    part = summary[summary["talk_type"] == talk]
    metrics = [m for m in METRICS if m in set(part["metric"])]
    systems = _system_order(set(part["system"]))
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(3.2 * max(1, len(metrics)), 3.2),
                             squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=False):
        sub = part[part["metric"] == metric].set_index("system")
        names = [s for s in systems if s in sub.index]
        ax.bar(range(len(names)), [sub.loc[s, "mean"] for s in names],
               yerr=[np.nan_to_num(sub.loc[s, "ci95"]) for s in names], capsize=3,
               color=["#888888" if s == "input" else f"C{i}" for i, s in enumerate(names)])
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(METRIC_LABELS[metric], fontsize=9)
    fig.suptitle(f"{TALK_LABELS.get(talk, talk)} ({talk})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_label(system: str) -> tuple[str, float | None]:
    """Split a system name into its chain and residual-echo suppressor trade-off.

    Parameters
    ----------
    system : str
        A ``system`` value of ``aec_scores.csv`` (:func:`clarity_se.aec.config.system_label`).

    Returns
    -------
    tuple of (str, float or None)
        ``("pbfdaf+res_unet", 0.5)`` for ``"pbfdaf+res_unet@0.5"``; ``(system, None)`` for a
        name without ``@<alpha>``.
    """
    base, sep, alpha = system.rpartition("@")
    if sep and base:
        try:
            return base, float(alpha)
        except ValueError:
            pass
    return system, None


def _plot_tradeoff(summary, path: Path, reference: str = "webrtc_aec3") -> bool:
    """DSML against RESL in double talk; returns False (nothing drawn) without both metrics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    part = summary[(summary["talk_type"] == "dt") & summary["metric"].isin(["dsml_db", "resl_db"])]
    table = part.pivot_table(index="system", columns="metric", values="mean")
    if table.empty or {"dsml_db", "resl_db"} - set(table.columns):
        return False
    table = table.dropna(subset=["dsml_db", "resl_db"])
    if table.empty:
        return False
    curves: dict[str, list[tuple[float, float, float]]] = {}
    points = []
    for system, row in table.iterrows():
        if system == "input":  # the mic: RESL 0 dB, DSML at the metric's ceiling
            continue
        base, alpha = parse_label(str(system))
        if alpha is None:
            points.append((str(system), row["resl_db"], row["dsml_db"]))
        else:
            curves.setdefault(base, []).append((alpha, row["resl_db"], row["dsml_db"]))
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for i, (base, pts) in enumerate(sorted(curves.items())):
        pts.sort()
        ax.plot([p[1] for p in pts], [p[2] for p in pts], "o-", color=f"C{i}", label=base)
        for alpha, x, y in pts:
            ax.annotate(f"{alpha:g}", (x, y), textcoords="offset points", xytext=(4, 4),
                        fontsize=7, color=f"C{i}")
    for j, (system, x, y) in enumerate(sorted(points)):
        if system == reference:
            ax.plot(x, y, "*", ms=14, color="k", label=f"{system} (reference)")
        else:
            ax.plot(x, y, "D", ms=7, color=f"C{len(curves) + j}", label=system)
    ax.set_xlabel("RESL, residual-echo suppression level (dB)")
    ax.set_ylabel("DSML, desired-speech maintained level (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _plot_path_change(curves, changes: dict[str, float], path: Path) -> int:
    """Mean ERLE over time aligned at the change; returns the number of clips drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = curves[curves["id"].isin(changes)].copy()
    if curves.empty:
        return 0
    curves["t_rel"] = curves["time_s"] - curves["id"].map(changes)
    grid = np.round(np.arange(-2.0, 2.0 + 1e-9, 0.05), 3)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for i, system in enumerate(_system_order(set(curves["system"]))):
        sub = curves[curves["system"] == system]
        stacked = []
        for _, clip in sub.groupby("id"):
            stacked.append(np.interp(grid, clip["t_rel"], clip["erle_db"], left=np.nan,
                                     right=np.nan))
            ax.plot(clip["t_rel"], clip["erle_db"], color="#888888" if system == "input"
                    else f"C{i}", alpha=0.15, lw=0.8)
        with warnings.catch_warnings():  # grid points no clip reaches are nan
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(np.vstack(stacked), axis=0) if stacked else grid * np.nan
        ax.plot(grid, mean, color="#888888" if system == "input" else f"C{i}", lw=2,
                label=system)
    ax.axvline(0.0, color="k", ls="--", lw=1)
    ax.set_xlabel("time relative to the echo-path change (s)")
    ax.set_ylabel("ERLE (dB)")
    ax.set_xlim(grid[0], grid[-1])
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return curves["id"].nunique()


def build_aec_report(score_files: list[str | os.PathLike], out_dir: str | os.PathLike,
                     *, title: str = "Echo cancellation") -> Path:
    """Write ``aec_report.html`` and its PNG plots into ``out_dir``.

    Parameters
    ----------
    score_files : list of path-like
        ``aec_scores.csv`` files (an ``aec_erle_time.csv`` beside one is used if present).
    out_dir : path-like
        Output folder (created).
    title : str
        Page title.

    Returns
    -------
    pathlib.Path
        The HTML file.

    Raises
    ------
    ValueError
        A missing or malformed score file.
    """
    import jinja2
    import pandas as pd

    from clarity_se.data.audio_io import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    long = read_aec_scores(score_files)
    summary = summarise_aec(long)
    talks = []
    for talk in ("st", "dt", "nst"):
        part = summary[summary["talk_type"] == talk]
        if part.empty:
            continue
        metrics = [m for m in METRICS if m in set(part["metric"])]
        rows = []
        for system in _system_order(set(part["system"])):
            cells = []
            for metric in metrics:
                hit = part[(part["system"] == system) & (part["metric"] == metric)]
                if hit.empty:
                    cells.append("")
                    continue
                r = hit.iloc[0]
                ci = "" if not np.isfinite(r["ci95"]) else f" [±{r['ci95']:.2f}]"
                cells.append(f"{r['mean']:.2f}{ci} ({r['n']})")
            rows.append({"system": system, "cells": cells})
        plot = f"aec_{talk}.png"
        _plot_talk(summary, talk, out_dir / plot)
        n_clips = long[long["talk_type"] == talk]["id"].nunique()
        talks.append({"name": talk, "label": TALK_LABELS[talk], "n": n_clips,
                      "metrics": metrics, "rows": rows, "plot": plot})
    changes: dict[str, float] = {}
    curves = []
    for path in score_files:
        wide = pd.read_csv(path, dtype={"id": str})
        if "echo_path_change_s" in wide.columns:
            for clip_id, t in zip(wide["id"], pd.to_numeric(wide["echo_path_change_s"],
                                                            errors="coerce"), strict=True):
                if np.isfinite(t):
                    changes[clip_id] = float(t)
        time_file = Path(path).with_name("aec_erle_time.csv")
        if time_file.is_file():
            curves.append(pd.read_csv(time_file, dtype={"id": str, "system": str}))
    tradeoff_plot = "aec_tradeoff.png" if _plot_tradeoff(summary,
                                                         out_dir / "aec_tradeoff.png") else ""
    path_change_plot, n_changes = "", 0
    if curves and changes:
        frame = pd.concat(curves).dropna(subset=["erle_db"]).drop_duplicates(
            ["id", "system", "time_s"])
        n_changes = _plot_path_change(frame, changes, out_dir / "aec_erle_path_change.png")
        path_change_plot = "aec_erle_path_change.png" if n_changes else ""
    html = jinja2.Template(TEMPLATE).render(
        title=title, n_clips=long["id"].nunique(), systems=_system_order(set(long["system"])),
        talks=talks, labels=METRIC_LABELS, path_change_plot=path_change_plot,
        tradeoff_plot=tradeoff_plot,
        n_changes=n_changes)
    return atomic_write_text(out_dir / "aec_report.html", html)
