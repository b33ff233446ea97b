"""Reports: per-system tables, paired comparisons and a self-contained HTML page with plots.

:func:`build_report` writes ``report.csv``, the breakdown CSVs and ``report.html`` from the
``scores.csv`` of each system; :func:`load_results` reads a ``clarity-se run`` results folder
back for the notebook.
"""

from clarity_se.report.build import build_report, discover_systems, mean_ci, read_scores
from clarity_se.report.plots import (
    plot_grouped,
    plot_listener,
    plot_paired,
    plot_system_means,
    system_colours,
)
from clarity_se.report.results import RunResults, load_results

__all__ = [
    "RunResults",
    "build_report",
    "discover_systems",
    "load_results",
    "mean_ci",
    "plot_grouped",
    "plot_listener",
    "plot_paired",
    "plot_system_means",
    "read_scores",
    "system_colours",
]
