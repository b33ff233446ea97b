"""How much does an echo canceller depend on the input level? Scores at several input gains.

    python benchmarks/aec_level.py ROOT [--systems deep_adaptive webrtc_aec3]
        [--checkpoint PT] [--kalman-selection A] [--level-target-db T [T ...]]
        [--gains-db -20 -10 0 6] [--out JSON]

``ROOT`` is a synthetic AEC Challenge folder (``clarity-se aec-data``). For every far-end
single-talk and double-talk clip and every gain ``G`` (dB), the microphone, far end, near-end
speech and echo are all scaled by ``10^(G/20)`` (the same scene recorded louder or softer;
no clipping is applied, AECMOS clips its inputs to [-1, 1] as ``aec-evaluate`` does), each
system runs on the scaled microphone and far end as ``clarity-se aec`` runs it, and the output
is scored as ``clarity-se aec-evaluate`` scores it
(:func:`clarity_se.metrics.aec_scores.score_output`). ``--checkpoint`` is a ``deep_adaptive``
checkpoint (default: the packaged one), ``--kalman-selection`` its
``aec.deep_adaptive.kalman_selection`` (default 0.999, the canceller's; 0: off),
``--level-target-db`` its ``aec.deep_adaptive.level_target_db`` (default 0: off): with several
values ``deep_adaptive`` runs once per value, named ``deep_adaptive`` for 0 and
``deep_adaptive@T`` for ``T``.

Printed per system and gain: ERLE and AECMOS echo MOS in far-end single talk; PESQ-WB, echo and
degradation MOS in double talk. Written as JSON (default
``results/benchmarks/aec_level.json``) with the per-clip scores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: (talk type, metric) columns of the table
COLUMNS = (("st", "erle_db"), ("st", "aecmos_echo"), ("dt", "pesq_wb"), ("dt", "aecmos_echo"),
           ("dt", "aecmos_deg"))


def build(name: str, checkpoint: str, kalman_selection: float = 0.999,
          level_target_db: float = 0.0):
    """An ``aec.name`` system with its recipe defaults (``checkpoint``,
    ``deep_adaptive.kalman_selection`` and ``.level_target_db`` for ``deep_adaptive``)."""
    from clarity_se.aec import build_aec_named

    if name != "deep_adaptive":
        return build_aec_named(name)
    return build_aec_named(name, checkpoint=checkpoint,
                           deep_adaptive={"kalman_selection": kalman_selection,
                                          "level_target_db": level_target_db})


def summarise(rows: list[dict]) -> dict:
    """``{system: {gain_db: {"<talk type>_<metric>": mean}}}`` over the per-clip rows."""
    out: dict = {}
    for system in dict.fromkeys(r["system"] for r in rows):
        for gain in dict.fromkeys(r["gain_db"] for r in rows):
            sel = [r for r in rows if r["system"] == system and r["gain_db"] == gain]
            means = {}
            for tt, m in COLUMNS:
                values = np.array([r[m] for r in sel if r["talk_type"] == tt], dtype=float)
                values = values[np.isfinite(values)]
                means[f"{tt}_{m}"] = float(values.mean()) if values.size else float("nan")
            out.setdefault(system, {})[str(gain)] = means
    return out


def main(argv: list[str] | None = None) -> int:
    """Print and write the table; 2 on a folder without st/dt clips or an unknown system."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--systems", nargs="+", default=["deep_adaptive", "webrtc_aec3"])
    parser.add_argument("--checkpoint", default="", help="deep_adaptive checkpoint (packaged)")
    parser.add_argument("--kalman-selection", type=float, default=0.999,
                        help="deep_adaptive's aec.deep_adaptive.kalman_selection (0: off)")
    parser.add_argument("--level-target-db", nargs="+", type=float, default=[0.0],
                        help="deep_adaptive's aec.deep_adaptive.level_target_db (0: off), one "
                             "run per value")
    parser.add_argument("--gains-db", nargs="+", type=float, default=[-20.0, -10.0, 0.0, 6.0])
    parser.add_argument("--out", type=Path,
                        default=REPO / "results" / "benchmarks" / "aec_level.json")
    args = parser.parse_args(argv)

    import warnings

    from tqdm import tqdm

    from clarity_se.data.aec_challenge import read_clip, read_synthetic_meta
    from clarity_se.metrics.aec_scores import score_output

    try:
        clips = [c for c in read_synthetic_meta(args.root) if c.talk_type in ("st", "dt")]
        systems = {}
        for name in args.systems:
            levels = args.level_target_db if name == "deep_adaptive" else [0.0]
            for level in levels:
                key = f"{name}@{level:g}" if level else name
                systems[key] = build(name, args.checkpoint, args.kalman_selection, level)
    except ValueError as exc:
        print(f"aec_level: {exc}")
        return 2
    if not clips:
        print(f"aec_level: {args.root}: no far-end single-talk or double-talk clip")
        return 2
    rows = []
    for clip in tqdm(clips, desc="clips"):
        audio = read_clip(clip)
        for gain in args.gains_db:
            a = audio.scaled(gain)
            for name, system in systems.items():
                with warnings.catch_warnings():  # a loud clip may exceed full scale
                    warnings.simplefilter("ignore")
                    out = np.asarray(system(a.mic, a.farend).output, dtype=np.float64)
                rows.append({"id": clip.id, "talk_type": clip.talk_type, "system": name,
                             "gain_db": gain, **score_output(a, out, clip.talk_type)})
    table = summarise(rows)
    print(f"{len(clips)} clips of {args.root}; input gain in dB")
    print(f"{'system':16s} {'gain':>6s}  ERLE st  echo st  PESQ dt  echo dt  deg dt")
    for system, per_gain in table.items():
        for gain, m in per_gain.items():
            print(f"{system:16s} {float(gain):+6.0f}  {m['st_erle_db']:7.1f}  "
                  f"{m['st_aecmos_echo']:7.3f}  {m['dt_pesq_wb']:7.3f}  "
                  f"{m['dt_aecmos_echo']:7.3f}  {m['dt_aecmos_deg']:6.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"root": str(args.root), "checkpoint": args.checkpoint or
                                    "packaged", "kalman_selection": args.kalman_selection,
                                    "level_target_db": args.level_target_db,
                                    "gains_db": args.gains_db, "mean": table,
                                    "clips": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
