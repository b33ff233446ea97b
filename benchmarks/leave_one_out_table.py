"""Leave-one-acoustic-model-out table and uPIT comparison from ``bench_enhancer_quality.py`` JSONs.

    python benchmarks/leave_one_out_table.py QUALITY_DIR [--json OUT.json] [--base RUN]

``QUALITY_DIR`` holds files ``RUN@MODEL.json`` (``recipes/icassp_2023/convtasnet/
leave_one_out.sh`` writes them): ``RUN`` is ``all`` (trained on every acoustic model),
``no_MODEL`` (trained without ``MODEL``) or another run name (e.g. ``upit_no_rostock_brir``),
``MODEL`` the acoustic model of the held-out scenes. Printed (Markdown):

1. **Leave one out**: per held-out acoustic model and scene type (front / side), the mean
   paired difference to pass-through of SI-SDR against the official reference and against
   ``target_CH1`` (dB), HASPI, HASQI and the combined score, for the run trained with that
   model (``all``) and the run trained without it (``no_MODEL``), and the generalisation gap
   (without minus with) of SI-SDR (official) and combined.
2. **Runs on one set**: every run scored on a model's held-out scenes when other runs than the
   two above were (the uPIT comparison: ``no_rostock_brir`` against ``upit_no_rostock_brir``),
   with the 95 % interval of the combined difference, the pairs improved, the worst pair, and
   the paired differences to the ``no_MODEL`` run (``--base``: another run) of the combined
   score (per pair, when both JSONs have ``per_pair`` scores) and of SI-SDR against the official
   reference (per scene).

``--json`` also writes the rows as JSON (a list of dicts).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

METRICS = (
    ("si_sdr_anechoic_improvement_db", "SI-SDR off."),
    ("si_sdr_target_CH1_improvement_db", "SI-SDR CH1"),
    ("haspi_improvement", "HASPI"),
    ("hasqi_improvement", "HASQI"),
    ("combined_improvement", "combined"),
)


def load(folder: Path) -> dict[tuple[str, str], dict]:
    """``{(run, model): JSON}`` of every ``RUN@MODEL.json`` in ``folder``.

    Raises
    ------
    ValueError
        A file without a ``convtasnet`` entry in ``vs_passthrough`` (names the file).
    """
    out = {}
    for path in sorted(folder.glob("*@*.json")):
        run, _, model = path.stem.partition("@")
        data = json.loads(path.read_text(encoding="utf-8"))
        if "convtasnet" not in data.get("vs_passthrough", {}):
            raise ValueError(f"{path}: no vs_passthrough.convtasnet entry")
        out[(run, model)] = data
    return out


def summaries(raw: dict[tuple[str, str], dict]) -> dict[tuple[str, str], dict]:
    """``{(run, model): vs_passthrough["convtasnet"]}``: the per-scene-type summaries."""
    return {key: data["vs_passthrough"]["convtasnet"] for key, data in raw.items()}


def paired_difference(a: dict, b: dict, kind: str, metric: str = "combined") -> dict | None:
    """Mean and 95 % t-interval of run ``a`` minus run ``b`` on the scenes of ``kind`` (front /
    side), paired.

    ``metric="combined"``: over the (scene, listener) pairs both scored (``per_pair`` of the
    two JSONs); ``metric="anechoic"``: SI-SDR against the official reference, dB, over the
    scenes (``per_scene_si_sdr_db``). ``None`` when either file lacks those values or fewer
    than two remain.
    """
    import numpy as np
    from scipy import stats

    front = a.get("target_in_front", {})
    if metric == "combined":
        pa = a.get("per_pair", {}).get("convtasnet")
        pb = b.get("per_pair", {}).get("convtasnet")
        if not pa or not pb:
            return None
        keys = [k for k in pa if k in pb
                and front.get(k.rsplit("_", 1)[0], True) == (kind == "front")]  # fmt: skip
        values = [pa[k]["combined"] - pb[k]["combined"] for k in keys]
    else:
        sa = a.get("per_scene_si_sdr_db", {}).get("convtasnet", {}).get(metric)
        sb = b.get("per_scene_si_sdr_db", {}).get("convtasnet", {}).get(metric)
        if not sa or not sb or not front:
            return None
        values = [sa[k] - sb[k] for k in sa if k in sb and front.get(k) == (kind == "front")]
    if len(values) < 2:
        return None
    delta = np.array(values)
    half = float(stats.t.ppf(0.975, delta.size - 1) * delta.std(ddof=1) / np.sqrt(delta.size))
    mean = float(delta.mean())
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": int(delta.size)}


def _mean(entry: dict, key: str) -> float:
    value = entry.get(key)
    return float("nan") if value is None else float(value["mean"])


def leave_one_out_rows(results: dict[tuple[str, str], dict]) -> list[dict]:
    """One row per (held-out model, scene type) with both ``all`` and ``no_MODEL`` scored."""
    rows = []
    models = sorted({m for (_, m) in results})
    for model in models:
        with_it, without = results.get(("all", model)), results.get((f"no_{model}", model))
        if with_it is None or without is None:
            continue
        for kind in ("front", "side"):
            if kind not in with_it or kind not in without:
                continue
            row = {"model": model, "scenes": kind, "n_scenes": with_it[kind]["scenes"]}
            for key, _ in METRICS:
                row[f"with_{key}"] = _mean(with_it[kind], key)
                row[f"without_{key}"] = _mean(without[kind], key)
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print both tables; 2 if the folder has no usable file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--base", default="no_{model}",
                        help="run the others are compared with ({model}: the held-out model)")
    args = parser.parse_args(argv)
    try:
        raw = load(args.folder)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = summaries(raw)
    if not results:
        print(f"error: {args.folder}: no RUN@MODEL.json files", file=sys.stderr)
        return 2
    rows = leave_one_out_rows(results)
    names = " | ".join(f"{label} with / without" for _, label in METRICS)
    if rows:
        print(f"| held-out model | scenes | {names} | gap SI-SDR off. | gap combined |")
        print("|---|---|" + "---|" * len(METRICS) + "---|---|")
    for r in rows:
        cells = []
        for key, label in METRICS:
            fmt = "+.2f" if label.startswith("SI-SDR") else "+.4f"
            cells.append(f"{r[f'with_{key}']:{fmt}} / {r[f'without_{key}']:{fmt}}")
        key = "si_sdr_anechoic_improvement_db"
        gap_sdr = r[f"without_{key}"] - r[f"with_{key}"]
        gap_comb = r["without_combined_improvement"] - r["with_combined_improvement"]
        print(f"| {r['model']} | {r['scenes']} ({r['n_scenes']}) | " + " | ".join(cells)
              + f" | {gap_sdr:+.2f} | {gap_comb:+.4f} |")
    models = sorted({m for (_, m) in results})
    for model in models:
        runs = sorted(run for (run, m) in results if m == model)
        base = args.base.format(model=model)
        if len(runs) < 2 or (len(runs) == 2 and base == f"no_{model}" and "all" in runs):
            continue  # the leave-one-out table above has them
        print(f"\nRuns on the {model} held-out scenes (differences to pass-through; last "
              f"column: combined minus {base}'s, paired):\n")
        print("| run | scenes | SI-SDR off. (dB) | SI-SDR CH1 (dB) | HASPI | HASQI | combined "
              f"[95 % CI] | pairs better | worst pair | vs {base} [95 % CI] "
              f"| SI-SDR off. vs {base} [95 % CI] |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for run in runs:
            for kind, v in results[(run, model)].items():
                if kind == "all":
                    continue
                c = v["combined_improvement"]
                cells = []
                for metric, fmt in (("combined", "+.4f"), ("anechoic", "+.2f")):
                    diff = (paired_difference(raw[(run, model)], raw[(base, model)], kind, metric)
                            if run != base and (base, model) in raw else None)  # fmt: skip
                    cells.append("-" if diff is None else f"{diff['mean']:{fmt}} "
                                 f"[{diff['ci_low']:{fmt}}, {diff['ci_high']:{fmt}}]")
                vs = " | ".join(cells)
                print(f"| {run} | {kind} ({v['scenes']}) "
                      f"| {_mean(v, METRICS[0][0]):+.2f} | {_mean(v, METRICS[1][0]):+.2f} "
                      f"| {_mean(v, 'haspi_improvement'):+.4f} "
                      f"| {_mean(v, 'hasqi_improvement'):+.4f} "
                      f"| {c['mean']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] "
                      f"| {v['combined_improved_pairs']}/{v['pairs']} "
                      f"| {v['combined_worst_pair_delta']:+.4f} | {vs} |")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
