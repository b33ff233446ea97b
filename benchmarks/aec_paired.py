"""Two echo-track runs on the same clips, compared clip by clip: paired differences with 95 % CIs.

    python benchmarks/aec_paired.py BASE/aec_scores.csv NEW/aec_scores.csv
        [--metrics pesq_wb aecmos_echo aecmos_deg erle_db si_sdr_db] [--out JSON]

Both files are ``clarity-se aec-evaluate`` outputs for the same AEC Challenge folder (for example
one canceller with two checkpoints). For each talk type and metric: the clips both runs scored,
the mean of ``new - base`` with its 95 % t-interval (Student's t, ``n - 1`` degrees of freedom)
and how many clips got better. Clips whose value is missing or infinite in either run (ERLE of a
noiseless clip, a metric that does not apply to the talk type) are left out of that cell.
Printed and written as JSON (default ``results/benchmarks/aec_paired.json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
METRICS = ("erle_db", "aecmos_echo", "aecmos_deg", "pesq_wb", "si_sdr_db")


def paired_differences(base, new, metrics=METRICS) -> list[dict]:
    """Per talk type and metric: ``n``, mean of ``new - base``, 95 % t-interval, clips better.

    Parameters
    ----------
    base, new : pandas.DataFrame
        ``aec_scores.csv`` tables (columns ``id``, ``talk_type`` and the metrics).
    metrics : sequence of str
        Metric columns to compare.

    Returns
    -------
    list of dict
        ``talk_type, metric, n, mean, low, high, better`` (``low``/``high`` NaN for ``n < 2``).

    Raises
    ------
    ValueError
        If a table lacks ``id``/``talk_type`` or a metric column, or the two share no clip.
    """
    from scipy import stats

    for name, table in (("base", base), ("new", new)):
        missing = [c for c in ("id", "talk_type", *metrics) if c not in table.columns]
        if missing:
            raise ValueError(f"{name}: aec_scores.csv lacks column(s) {missing}")
    merged = base.merge(new, on=["id", "talk_type"], suffixes=("_base", "_new"))
    if merged.empty:
        raise ValueError("the two runs share no clip (id, talk_type)")
    rows = []
    for talk in ("st", "dt", "nst"):
        part = merged[merged["talk_type"] == talk]
        for metric in metrics:
            diff = (part[f"{metric}_new"] - part[f"{metric}_base"]).to_numpy(dtype=float)
            diff = diff[np.isfinite(diff)]
            if diff.size == 0:
                continue
            mean = float(diff.mean())
            if diff.size > 1:
                half = float(stats.t.ppf(0.975, diff.size - 1) * diff.std(ddof=1)
                             / np.sqrt(diff.size))
            else:
                half = float("nan")
            rows.append({"talk_type": talk, "metric": metric, "n": int(diff.size), "mean": mean,
                         "low": mean - half, "high": mean + half,
                         "better": int((diff > 0).sum())})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print and write the table; 2 on unreadable or incompatible files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--metrics", nargs="+", default=list(METRICS))
    parser.add_argument("--out", type=Path,
                        default=REPO / "results" / "benchmarks" / "aec_paired.json")
    args = parser.parse_args(argv)

    import pandas as pd

    try:
        tables = [pd.read_csv(p) for p in (args.base, args.new)]
        rows = paired_differences(*tables, metrics=args.metrics)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        print(f"aec_paired: {exc}")
        return 2
    print(f"new - base: {args.new} - {args.base}")
    print(f"{'talk':4s} {'metric':12s} {'n':>3s} {'mean':>8s} {'95 % CI':>20s} {'better':>7s}")
    for r in rows:
        print(f"{r['talk_type']:4s} {r['metric']:12s} {r['n']:3d} {r['mean']:+8.3f} "
              f"[{r['low']:+8.3f}, {r['high']:+8.3f}] {r['better']:4d}/{r['n']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"base": str(args.base), "new": str(args.new), "rows": rows},
                                   indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
