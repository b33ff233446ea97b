"""``clarity-se report``: CSV and self-contained HTML report of one or more systems.

Enhancement systems (folders with ``scores.csv``) get ``report.html``; echo-cancellation
experiments (folders with ``aec_scores.csv``, from ``clarity-se aec-evaluate``) get
``aec_report.html`` (:func:`clarity_se.report.aec.build_aec_report`); a results folder may
hold both.

Reads each system's ``scores.csv`` (and shard files ``scores.shard-k-of-n.csv``), merges them,
checks the pair count against ``scenes_listeners`` (as the official ``report_score.py``) and
writes the tables and ``report.html`` of :func:`clarity_se.report.build_report`. The official
summary (pair count and the three means) is printed per system.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clarity-se report``."""
    parser.add_argument(
        "results",
        type=Path,
        help="results folder: one sub-folder per system, or one system's exp folder",
    )
    parser.add_argument(
        "--system",
        action="append",
        default=[],
        metavar="NAME=FOLDER",
        help="explicit system folders (repeatable); default: discovered under RESULTS",
    )
    parser.add_argument("--baseline", default="passthrough", help="system for paired differences")
    parser.add_argument(
        "--metadata",
        type=Path,
        default=None,
        help="CEC2 metadata folder (scenes_listeners/scenes/listeners JSON)",
    )
    parser.add_argument("--split", default="dev")
    parser.add_argument(
        "--small-test", action="store_true", help="expect the official small_test subset"
    )
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: RESULTS)")
    parser.add_argument("--quality", nargs="+", type=Path, default=[], metavar="JSON",
                        help="bench_enhancer_quality.py outputs: with --cost, adds the "
                             "quality-against-compute section (front scenes)")
    parser.add_argument("--cost", nargs="+", type=Path, default=[], metavar="JSON",
                        help="bench_enhancer.py outputs (MACs, latency, RTF)")


def main(args: argparse.Namespace) -> int:
    """Run ``clarity-se report``: exit 1 if expected pairs are missing, 2 if nothing to report
    or a bad score file."""
    import sys

    from clarity_se.report import build_report, discover_systems
    from clarity_se.report.aec import build_aec_report

    results = Path(args.results)
    aec_files = sorted(results.glob("aec_scores.csv")) + sorted(results.glob("*/aec_scores.csv"))
    try:
        if aec_files:
            page = build_aec_report(aec_files, args.out or results)
            print(f"report: {page}")
        systems = (
            dict(item.split("=", 1) for item in args.system)
            if args.system
            else discover_systems(results)
            if results.is_dir()
            else {}
        )
    except ValueError as exc:
        print(f"report: error: {exc}", file=sys.stderr)
        return 2
    systems = {k: Path(v) for k, v in systems.items()}
    if not systems:
        if aec_files:
            return 0
        print(f"report: error: no scores.csv or aec_scores.csv under {results}", file=sys.stderr)
        return 2
    meta = args.metadata
    try:
        board = None
        if args.quality or args.cost:
            from clarity_se.report.leaderboard import leaderboard

            if not (args.quality and args.cost):
                raise ValueError("--quality and --cost go together")
            board = leaderboard(args.quality, args.cost)
        tables = build_report(
            systems,
            args.out or args.results,
            baseline=args.baseline,
            scenes_listeners_file=meta / f"scenes_listeners.{args.split}.json" if meta else None,
            scenes_file=meta / f"scenes.{args.split}.json" if meta else None,
            listeners_file=meta / "listeners.json" if meta else None,
            small_test=args.small_test,
            leaderboard=board,
        )
    except ValueError as exc:
        print(f"report: error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {Path(args.out or args.results) / 'report.html'}")
    return 1 if len(tables["missing"]) else 0
