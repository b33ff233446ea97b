"""Print the leaderboard of a ``bench_enhancer_quality.py`` JSON as a Markdown table.

    python benchmarks/show_quality.py results/benchmarks/enhancer_quality.json

One row per system and scene type (all / front / side): mean paired difference to pass-through
of SI-SDR against the official reference (dB), against ``target_CH1`` (dB), and of the combined
score, with the 95 % interval of the combined difference, the pairs improved and the worst pair.
"""

from __future__ import annotations

import json
import sys


def main(path: str) -> int:
    """Print the table of one JSON file."""
    data = json.loads(open(path, encoding="utf-8").read())
    print("| system | scenes | SI-SDR official (dB) | SI-SDR target_CH1 (dB) | combined "
          "[95 % CI] | pairs better | worst pair |")
    print("|---|---|---|---|---|---|---|")
    for system, types in data["vs_passthrough"].items():
        for kind, v in types.items():
            c = v.get("combined_improvement")
            comb = (f"{c['mean']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]" if c else "-")
            print(f"| {system} | {kind} ({v['scenes']}) "
                  f"| {v['si_sdr_anechoic_improvement_db']['mean']:+.2f} "
                  f"| {v['si_sdr_target_CH1_improvement_db']['mean']:+.2f} | {comb} "
                  f"| {v.get('combined_improved_pairs', '-')}/{v.get('pairs', '-')} "
                  f"| {v.get('combined_worst_pair_delta', float('nan')):+.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
