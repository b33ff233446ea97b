"""Compare two ``bench_enhancer_quality.py`` runs of one system on the same scenes, per scene.

    python benchmarks/compare_quality.py q_default.json q_candidate.json --system dtln
    python benchmarks/compare_quality.py A1.json B1.json A2.json B2.json   # two sets, pooled

Each two JSONs (run A, run B) must hold the same pairs (scene and listener) for ``--system``
and for the pass-through, with the same pass-through scores (the same scenes). Printed as
Markdown, for each set:

1. per scene type (front / side): mean combined difference to pass-through of run A and of run
   B, their difference, and each run's worst pair;
2. per scene: the target's azimuth (degrees, from the scenes file under the JSON's ``root``
   when it is there), in front or not, the pass-through's combined score and the mean over the
   scene's listeners of A's and B's combined difference to pass-through, and ``B - A``;
3. the ``--worst`` pairs where B falls furthest below A;

and, given more than one set, the sets' pairs pooled per scene type: the mean combined
difference to pass-through of A and of B over all their pairs, each run's worst pair, how many
pairs lie below ``--below`` (default -0.01, the DTLN issue's bar), and the mean over all scenes
of each run's SI-SDR against the official reference minus the pass-through's (dB).

The combined score is the mean of HASPI and HASQI of the better ear, as
``bench_enhancer_quality.py`` stores it per pair (``per_pair``). Exit status 2 with one line
naming the file and field when a JSON lacks a field or the two runs' pairs differ.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clarity_se.data.scene import load_scenes

#: a pair "below pass-through" in the pooled counts: combined difference under this (the
#: hearing-aid DTLN's bar: no front pair worse than pass-through by more than 0.01)
BELOW = -0.01
#: largest difference between the two runs' pass-through combined scores of one pair: the same
#: scenes scored twice differ by rounding only (up to ~1e-4 for float32 scores from another CPU;
#: ``GOLDEN_F32_SCORE_ABS`` in ``tests/conftest.py`` allows 5e-4); another set's scenes with the
#: same ids differ by more than this in at least one of their pairs
PASSTHROUGH_ATOL = 1e-3


class CompareError(ValueError):
    """A JSON that cannot be compared: the message names the file and the field."""


def load_run(path: str | Path, system: str) -> dict:
    """One run's per-pair combined differences to pass-through, with its scene facts.

    Parameters
    ----------
    path : str or Path
        A ``bench_enhancer_quality.py`` JSON.
    system : str
        System name as the JSON's ``per_pair`` holds it (e.g. ``dtln``).

    Returns
    -------
    dict
        ``delta``: pair id -> combined score minus the pass-through's; ``passthrough``: pair id
        -> the pass-through's combined score; ``in_front``: scene id -> bool; ``root``: the
        scenes' root; ``si_sdr``: scene id -> SI-SDR against the official reference minus the
        pass-through's, dB (empty when the JSON has no ``per_scene_si_sdr_db``).

    Raises
    ------
    CompareError
        If the file is not JSON, or lacks ``per_pair`` for ``system`` or ``passthrough``, or
        ``target_in_front`` for a scene of its pairs.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CompareError(f"{path}: cannot read a JSON ({exc})") from None
    pairs = data.get("per_pair", {})
    for name in ("passthrough", system):
        if name not in pairs:
            raise CompareError(f"{path}: per_pair has no system {name!r} "
                               f"(has: {', '.join(sorted(pairs)) or 'none'})")
    in_front = data.get("target_in_front", {})
    base = pairs["passthrough"]
    delta, passthrough = {}, {}
    for pair, scores in pairs[system].items():
        if pair not in base:
            raise CompareError(f"{path}: per_pair.passthrough lacks pair {pair}")
        scene = pair.split("_")[0]
        if scene not in in_front:
            raise CompareError(f"{path}: target_in_front lacks scene {scene}")
        delta[pair] = scores["combined"] - base[pair]["combined"]
        passthrough[pair] = base[pair]["combined"]
    official = data.get("per_scene_si_sdr_db", {})
    si_sdr = {}
    if system in official and "passthrough" in official:
        mine = official[system].get("anechoic", {})
        base_db = official["passthrough"].get("anechoic", {})
        si_sdr = {scene: mine[scene] - base_db[scene] for scene in mine if scene in base_db}
    return {"delta": delta, "passthrough": passthrough, "in_front": in_front,
            "root": data.get("root", ""), "si_sdr": si_sdr}


def target_azimuths(root: str) -> dict[str, float]:
    """Scene id -> ``target_azimuth_deg`` from ``<root>/clarity_data/metadata/scenes.dev.json``.

    Read with :func:`clarity_se.data.scene.load_scenes` (the renderer keeps the field in each
    scene's ``extra``). Empty when the file is not there or unreadable (a moved root); scenes
    without the field (another renderer's) are left out.
    """
    path = Path(root) / "clarity_data" / "metadata" / "scenes.dev.json"
    try:
        scenes = load_scenes(path)
    except ValueError:
        return {}
    return {s.scene: float(s.extra["target_azimuth_deg"]) for s in scenes
            if "target_azimuth_deg" in s.extra}


def compare(a: dict, b: dict, path_a: str = "A", path_b: str = "B") -> dict:
    """Per scene type, per scene and per pair comparison of two runs from :func:`load_run`.

    Parameters
    ----------
    a, b : dict
        Runs A and B as :func:`load_run` returns them (combined scores, 0..1).
    path_a, path_b : str
        Their files' names, for the error messages.

    Returns
    -------
    dict
        ``types``: type -> {``a``, ``b``, ``b_minus_a`` (means), ``worst_a``, ``worst_b``,
        ``pairs`` (count), and :func:`pool`'s other fields for this one set};
        ``scenes``: list of {``scene``, ``in_front``, ``passthrough``, ``a``, ``b``,
        ``b_minus_a``} (means over the scene's pairs), in scene order; ``pairs``: list of
        (``b_minus_a``, pair, ``a``, ``b``) sorted from B's largest loss.

    Raises
    ------
    CompareError
        If the two runs do not hold the same pairs (names the first pair missing and where), or
        their pass-through scores of a pair differ by more than :data:`PASSTHROUGH_ATOL`
        (another set whose scenes have the same ids).
    """
    only_a = sorted(set(a["delta"]) - set(b["delta"]))
    only_b = sorted(set(b["delta"]) - set(a["delta"]))
    if only_a or only_b:
        missing, where = (only_a[0], path_b) if only_a else (only_b[0], path_a)
        raise CompareError(f"{where}: per_pair lacks pair {missing} (the two runs must score "
                           f"the same scenes and listeners; {len(only_a) + len(only_b)} differ)")
    for pair in sorted(a["passthrough"]):
        if abs(a["passthrough"][pair] - b["passthrough"][pair]) > PASSTHROUGH_ATOL:
            raise CompareError(
                f"{path_b}: per_pair.passthrough of {pair} is {b['passthrough'][pair]:.6f}, "
                f"{a['passthrough'][pair]:.6f} in {path_a}: not the same scenes")

    def mean(values):
        return sum(values) / len(values)

    types = _type_stats([(a, b)])
    scenes = []
    for scene in sorted({p.split("_")[0] for p in a["delta"]}):
        keys = [p for p in a["delta"] if p.split("_")[0] == scene]
        ma, mb = mean([a["delta"][p] for p in keys]), mean([b["delta"][p] for p in keys])
        scenes.append({"scene": scene, "in_front": bool(a["in_front"][scene]),
                       "passthrough": mean([a["passthrough"][p] for p in keys]),
                       "a": ma, "b": mb, "b_minus_a": mb - ma})
    pairs = sorted((b["delta"][p] - a["delta"][p], p, a["delta"][p], b["delta"][p])
                   for p in a["delta"])
    return {"types": types, "scenes": scenes, "pairs": pairs}


def pool(sets: list[tuple[dict, dict]], below: float = BELOW) -> dict:
    """Scene types over the pairs of several sets, each a (run A, run B) from :func:`load_run`.

    Parameters
    ----------
    sets : list of (dict, dict)
        Per set, runs A and B of the same scenes (checked by :func:`compare` first).
    below : float
        Combined difference to pass-through under which a pair counts as below it.

    Returns
    -------
    dict
        type (``front``, ``side``) -> {``pairs``, ``a``, ``b``, ``b_minus_a`` (means over all
        pairs of all sets), ``worst_a``, ``worst_b``, ``below_a``, ``below_b`` (counts),
        ``scenes``, ``si_sdr_a``, ``si_sdr_b`` (mean over the scenes of the SI-SDR differences
        to pass-through, dB; ``None`` when a run lacks them)}.

    Raises
    ------
    CompareError
        As :func:`compare`, for any set.
    """
    for i, (a, b) in enumerate(sets, 1):
        compare(a, b, f"set {i} A", f"set {i} B")
    return _type_stats(sets, below)


def _type_stats(sets: list[tuple[dict, dict]], below: float = BELOW) -> dict:
    """:func:`pool`'s result for sets already checked by :func:`compare`."""
    types = {}
    for kind, front in (("front", True), ("side", False)):
        da, db, sa, sb, n_scenes = [], [], [], [], 0
        for a, b in sets:
            keys = [p for p in a["delta"] if a["in_front"][p.split("_")[0]] == front]
            da += [a["delta"][p] for p in keys]
            db += [b["delta"][p] for p in keys]
            scenes = sorted({p.split("_")[0] for p in keys})
            n_scenes += len(scenes)
            for run, out in ((a, sa), (b, sb)):
                out += [run["si_sdr"][s] for s in scenes if s in run["si_sdr"]]
        if not da:
            continue
        types[kind] = {
            "pairs": len(da), "a": sum(da) / len(da), "b": sum(db) / len(db),
            "b_minus_a": (sum(db) - sum(da)) / len(da), "worst_a": min(da), "worst_b": min(db),
            "below_a": sum(d < below for d in da), "below_b": sum(d < below for d in db),
            "scenes": n_scenes,
            "si_sdr_a": sum(sa) / len(sa) if len(sa) == n_scenes else None,
            "si_sdr_b": sum(sb) / len(sb) if len(sb) == n_scenes else None,
        }
    return types


def _print_set(result: dict, azimuth: dict, worst: int) -> None:
    """The three tables of one set (module docstring, 1-3)."""
    print("| scenes | A | B | B - A | worst pair A | worst pair B |\n|---|---|---|---|---|---|")
    for kind, t in result["types"].items():
        print(f"| {kind} ({t['pairs']} pairs) | {t['a']:+.4f} | {t['b']:+.4f} "
              f"| {t['b_minus_a']:+.4f} | {t['worst_a']:+.4f} | {t['worst_b']:+.4f} |")
    print("\n| scene | target azimuth | in front | pass-through | A | B | B - A |")
    print("|---|---|---|---|---|---|---|")
    for s in result["scenes"]:
        az = f"{azimuth[s['scene']]:.0f}" if s["scene"] in azimuth else "-"
        print(f"| {s['scene']} | {az} | {'yes' if s['in_front'] else 'no'} "
              f"| {s['passthrough']:.3f} | {s['a']:+.4f} | {s['b']:+.4f} "
              f"| {s['b_minus_a']:+.4f} |")
    print("\n| pair | A | B | B - A |\n|---|---|---|---|")
    for diff, pair, da, db in result["pairs"][: max(worst, 0)]:
        print(f"| {pair} | {da:+.4f} | {db:+.4f} | {diff:+.4f} |")


def main(argv: list[str] | None = None) -> int:
    """Print the comparison (see the module docstring); 2 on unusable JSONs or arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+",
                        help="run A then run B of a set (e.g. the default, a candidate); "
                             "more sets: A2 B2 ...")
    parser.add_argument("--system", default="dtln", help="system in all JSONs (default dtln)")
    parser.add_argument("--worst", type=int, default=5, help="pairs listed where B loses most")
    parser.add_argument("--below", type=float, default=BELOW,
                        help=f"pooled counts: pairs under this difference (default {BELOW})")
    args = parser.parse_args(argv)
    if len(args.runs) % 2:
        print(f"compare_quality: {len(args.runs)} runs given; expected pairs of runs "
              "(A then B of each set)", file=sys.stderr)
        return 2
    files = list(zip(args.runs[0::2], args.runs[1::2], strict=True))
    try:
        sets = [(load_run(fa, args.system), load_run(fb, args.system)) for fa, fb in files]
        results = [compare(a, b, fa, fb) for (a, b), (fa, fb) in zip(sets, files, strict=True)]
        pooled = _type_stats(sets, args.below) if len(sets) > 1 else None
    except CompareError as exc:
        print(f"compare_quality: {exc}", file=sys.stderr)
        return 2
    for (fa, fb), (a, _), result in zip(files, sets, results, strict=True):
        print(f"A: {fa}\nB: {fb}\nsystem: {args.system}; combined, difference to "
              "pass-through\n")
        _print_set(result, target_azimuths(a["root"]), args.worst)
        print()
    if pooled is not None:
        print(f"Pooled over {len(sets)} sets; pairs below {args.below:+.4f}; SI-SDR official: "
              "mean over scenes, difference to pass-through\n")
        print("| scenes | A | B | B - A | worst pair A | worst pair B | below A | below B "
              "| SI-SDR A (dB) | SI-SDR B (dB) |\n|---|---|---|---|---|---|---|---|---|---|")
        for kind, t in pooled.items():
            db_a = "-" if t["si_sdr_a"] is None else f"{t['si_sdr_a']:+.2f}"
            db_b = "-" if t["si_sdr_b"] is None else f"{t['si_sdr_b']:+.2f}"
            print(f"| {kind} ({t['pairs']} pairs, {t['scenes']} scenes) | {t['a']:+.4f} "
                  f"| {t['b']:+.4f} | {t['b_minus_a']:+.4f} | {t['worst_a']:+.4f} "
                  f"| {t['worst_b']:+.4f} | {t['below_a']} | {t['below_b']} | {db_a} | {db_b} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
