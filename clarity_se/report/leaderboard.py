"""Enhancer leaderboard: quality on held-out scenes against compute, from the benchmark JSONs.

Joins the files of two benchmarks per enhancer (``system``, e.g. ``crced``, ``dtln/published``):

- quality, ``benchmarks/bench_enhancer_quality.py --out Q.json``: the paired gain over
  pass-through of the combined score (mean of HASPI v2 and HASQI v2, better ear) with its
  95 % interval, the SI-SDR gain over the front microphones and the worst pair, per scene
  group (``front``, ``side``, ``all``);
- cost, ``benchmarks/bench_enhancer.py --output C.json``: parameters, multiply-accumulates per
  second of 44.1 kHz audio, algorithmic latency and real-time factors (PyTorch whole signal,
  onnxruntime block by block where the system has an ONNX form).

:func:`plot_quality_vs_compute` draws the combined-score gain against MACs per second (log
axis), one point per system with its interval. Pass-through (no MACs) is the zero line; the
quality benchmark's oracles (``oracle/KIND``: outputs built from the clean target, which have
no cost) are kept as rows without cost and drawn as dotted ceilings.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["figure_quality_vs_compute", "leaderboard", "plot_quality_vs_compute"]

GROUPS = ("front", "side", "all")
#: Prefix of the quality benchmark's oracle systems (``benchmarks/oracles.py``): ceilings.
ORACLE_PREFIX = "oracle/"


def _load(path: str | os.PathLike, key: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    if key not in data:
        kind = "quality" if key == "vs_passthrough" else "cost"
        raise ValueError(f"{path}: no {key!r} field (not a {kind} benchmark file)")
    return data


def leaderboard(quality_files: list[str | os.PathLike], cost_files: list[str | os.PathLike],
                group: str = "front"):
    """One row per enhancer found in both kinds of file, and one per oracle (cost NaN).

    Parameters
    ----------
    quality_files : list of path-like
        ``bench_enhancer_quality.py`` outputs; a system in several files is taken from the
        last one given.
    cost_files : list of path-like
        ``bench_enhancer.py`` outputs; the same rule.
    group : {"front", "side", "all"}
        Scene group of the quality figures.

    Returns
    -------
    pandas.DataFrame
        Columns ``system, combined_gain, combined_ci_low, combined_ci_high, worst_pair,
        si_sdr_gain_db, pairs, parameters, macs_per_s, latency_ms, rtf_pytorch, rtf_onnx,
        quality_file`` (``rtf_onnx`` NaN without an ONNX form), sorted by ``macs_per_s``;
        the ``oracle/...`` systems of the quality files last, their cost columns NaN.

    Raises
    ------
    ValueError
        A missing or malformed file, or an unknown ``group``.
    """
    import numpy as np
    import pandas as pd

    if group not in GROUPS:
        raise ValueError(f"group: expected one of {GROUPS}, got {group!r}")
    quality: dict[str, dict] = {}
    for path in quality_files:
        data = _load(path, "vs_passthrough")
        for system, groups in data["vs_passthrough"].items():
            if group in groups:
                quality[system] = dict(groups[group], quality_file=str(path))
    cost: dict[str, dict] = {}
    for path in cost_files:
        for row in _load(path, "results")["results"]:
            cost[row["system"]] = row
    rows = []
    oracles = {s for s in quality if s.startswith(ORACLE_PREFIX)}
    for system in sorted(set(quality) & set(cost)) + sorted(oracles - set(cost)):
        q, c = quality[system], cost.get(system, {})
        comb = q["combined_improvement"]
        onnx = c.get("onnxruntime") or {}
        rows.append({
            "system": system, "combined_gain": comb["mean"], "combined_ci_low": comb["ci_low"],
            "combined_ci_high": comb["ci_high"], "worst_pair": q["combined_worst_pair_delta"],
            "si_sdr_gain_db": q["si_sdr_target_CH1_improvement_db"]["mean"], "pairs": q["pairs"],
            "parameters": c.get("parameters", np.nan), "macs_per_s": c.get("macs_per_s", np.nan),
            "latency_ms": c.get("latency_ms", np.nan),
            "rtf_pytorch": (c.get("pytorch") or {}).get("rtf_whole", np.nan),
            "rtf_onnx": onnx.get("rtf", np.nan), "quality_file": q["quality_file"],
        })  # fmt: skip
    frame = pd.DataFrame(rows, columns=[
        "system", "combined_gain", "combined_ci_low", "combined_ci_high", "worst_pair",
        "si_sdr_gain_db", "pairs", "parameters", "macs_per_s", "latency_ms", "rtf_pytorch",
        "rtf_onnx", "quality_file"])  # fmt: skip
    return frame.sort_values("macs_per_s", ignore_index=True, kind="stable")


def figure_quality_vs_compute(board, group: str = "front"):
    """The figure of :func:`plot_quality_vs_compute` (a ``matplotlib.figure.Figure``); the
    ``oracle/...`` rows are dotted horizontal lines at their combined gain.

    Raises
    ------
    ValueError
        An empty table or no row with a MAC count.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    macs = pd.to_numeric(board["macs_per_s"], errors="coerce").to_numpy(dtype=float)
    ceilings = board[board["system"].str.startswith(ORACLE_PREFIX)]
    board = board[np.isfinite(macs) & (macs > 0)]
    if board.empty:
        raise ValueError("leaderboard: no system with both a quality and a MAC count")
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.axhline(0.0, color="#888888", lw=1, ls="--", label="pass-through")
    for j, row in enumerate(ceilings.itertuples()):
        ax.axhline(row.combined_gain, color=f"C{len(board) + j}", lw=1, ls=":",
                   label=f"{row.system} (ceiling)")  # fmt: skip
    for i, row in enumerate(board.itertuples()):
        err = [[row.combined_gain - row.combined_ci_low],
               [row.combined_ci_high - row.combined_gain]]
        ax.errorbar(row.macs_per_s, row.combined_gain, yerr=err, fmt="o", color=f"C{i}",
                    capsize=3, label=f"{row.system} ({row.latency_ms:.1f} ms)")
    ax.set_xscale("log")
    ax.set_xlabel("multiply-accumulates per second of 44.1 kHz audio")
    ax.set_ylabel("combined score gain over pass-through")
    ax.set_title(f"quality against compute ({group} scenes, 95 % intervals)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_quality_vs_compute(board, path: str | os.PathLike, group: str = "front") -> Path:
    """Combined-score gain over pass-through against MACs per second (log x), with intervals.

    Parameters
    ----------
    board : pandas.DataFrame
        :func:`leaderboard`'s table.
    path : path-like
        PNG to write (folders created).
    group : str
        Scene group named in the title.

    Returns
    -------
    pathlib.Path
        The PNG.

    Raises
    ------
    ValueError
        An empty table or no row with a MAC count.
    """
    import matplotlib.pyplot as plt

    fig = figure_quality_vs_compute(board, group)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
