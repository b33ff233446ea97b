"""Quality against compute of the enhancers, from the two enhancer benchmarks' JSON files.

    python benchmarks/plot_quality_compute.py --quality Q1.json [Q2.json ...] \
        --cost C.json [--group front] [--out results/benchmarks/quality_vs_compute.png]

``--quality``: ``bench_enhancer_quality.py`` outputs (a system in several files is taken from
the last); ``--cost``: ``bench_enhancer.py`` outputs. Writes the PNG (combined-score gain over
pass-through against MACs per second, log axis; :mod:`clarity_se.report.leaderboard`), the
joined table as JSON beside it, and prints the table as Markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Plot and print; 2 on a missing or malformed file."""
    from clarity_se.report.leaderboard import leaderboard, plot_quality_vs_compute

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quality", nargs="+", required=True)
    parser.add_argument("--cost", nargs="+", required=True)
    parser.add_argument("--group", default="front", choices=("front", "side", "all"))
    parser.add_argument("--out", type=Path,
                        default=Path("results/benchmarks/quality_vs_compute.png"))
    args = parser.parse_args(argv)
    try:
        board = leaderboard(args.quality, args.cost, args.group)
        png = plot_quality_vs_compute(board, args.out, args.group)
    except ValueError as exc:
        print(f"plot_quality_compute: {exc}", file=sys.stderr)
        return 2
    png.with_suffix(".json").write_text(json.dumps(board.to_dict(orient="records"), indent=1))
    print(f"| system | combined gain ({args.group}) [95 % CI] | worst pair | GMAC/s | "
          "latency (ms) | RTF PyTorch | RTF onnxruntime |")
    print("|---|---|---|---|---|---|---|")
    for r in board.itertuples():
        print(f"| {r.system} | {r.combined_gain:+.4f} [{r.combined_ci_low:+.4f}, "
              f"{r.combined_ci_high:+.4f}] | {r.worst_pair:+.4f} | {r.macs_per_s / 1e9:.2f} | "
              f"{r.latency_ms:.2f} | {r.rtf_pytorch:.3f} | {r.rtf_onnx:.3f} |")
    print(f"plot: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
