"""Does an enhancer help? SI-SDR and ICASSP 2023 scores of registered enhancers vs pass-through.

Renders a held-out dev set with the demo renderer (``--seed`` different from the demo's 0, so
new rooms, SNRs, source positions and utterance segments; dev speakers are disjoint from the
training speakers), then for ``passthrough`` (the front microphones, always run as the baseline)
and every system of ``--systems`` (a registered enhancer name, or ``name/variant``, e.g.
``convtasnet dtln dtln/published``; or ``oracle/target_CH1``, ``oracle/reference``,
``oracle/irm``, ``oracle/irm_lowdelay``, ``oracle/mvdr``, ``oracle/mvdr_wpe``,
``oracle/mvdr_anechoic_wpe``: ceilings that know the target,
:mod:`oracles`, written in place of step 1):

1. ``clarity-se enhance`` (subprocess) with ``enhancer.name`` / ``enhancer.variant`` and any
   ``--set SYSTEM:KEY=VALUE`` overrides of ``enhancer.*``;
2. SI-SDR of the enhanced left/right signals over the target's active span
   (``target.time_start``..``time_end``), mean of the two ears, per scene, against
   ``<scene>_target_CH1.wav`` (the reverberant target at the front microphones) and against
   the official reference, ``<scene>_target_anechoic_CH1.wav`` rescaled to ``target_CH1``'s RMS
   per ear (SI-SDR is scale-invariant, so the rescaling only documents the convention);
3. unless ``--no-evaluate``: ``clarity-se evaluate`` (NAL-R + compressor, HASPI v2 / HASQI v2
   better ear; ``--rng``).

Writes ``--out`` (default ``results/benchmarks/enhancer_quality.json``) with per-system means
and paired differences to pass-through (mean, 95 % t-interval, scenes/pairs improved, worst
pair) -- one leaderboard over the same scenes -- for all scenes and, where the scene metadata
say so (held-out sets of ``clarity-se demo-data --acoustic-model``), separately for scenes
whose target is in front and to the side, with how often the do-no-harm rule fired
(``guard_fired_share``: mean share of 10 ms blocks; ``guard_fired_scenes``: scenes where it
fired at all; from the ``guard_fired`` field of the enhance journal), and the per-pair scores
(``per_pair``: combined, HASPI, HASQI per ``<scene>_<listener>``) for paired comparisons
between runs. ``--root`` may point at such a pre-rendered set.

    .venv/bin/python benchmarks/bench_enhancer_quality.py [--systems convtasnet dtln]
        [--dev-scenes 12] [--seed 1] [--rng fast] [--no-evaluate]
        [--set dtln:checkpoint=PATH] [--checkpoint PATH] [--residual-mix A]
        [--mirror-average true|false] [--out JSON]

(``--checkpoint``, ``--residual-mix`` and ``--mirror-average`` are shorthands for
``--set convtasnet:...``.)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
BASELINE = "passthrough"
#: ``--systems oracle/KIND``: outputs that know the target (:mod:`oracles`), scored as systems.
ORACLE = "oracle"

sys.path.insert(0, str(Path(__file__).resolve().parent))
import oracles  # noqa: E402 (this folder's module)


def lock_root(root: Path):
    """Hold ``ROOT/bench_enhancer_quality.lock`` (an exclusive ``flock``) for this run, so a
    second run on the same root, which would rewrite the same ``exp_<system>`` folders, stops
    at once with a clear error instead of failing half-way or mixing outputs.

    Returns
    -------
    file object
        Keep it open for the run; the lock goes with it (and with the process).

    Raises
    ------
    RuntimeError
        Another process holds the lock (the message names the file).
    """
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    path = root / "bench_enhancer_quality.lock"
    handle = open(path, "a")  # noqa: SIM115 (held for the run)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise RuntimeError(f"{path}: another bench_enhancer_quality.py run uses this root; "
                           "wait for it or use another --root") from None
    return handle


def si_sdr_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR (zero-mean, Le Roux et al. 2019) of 1-D signals, in dB."""
    import torch

    from clarity_se.losses.sisdr import si_sdr

    return float(si_sdr(torch.as_tensor(estimate)[None], torch.as_tensor(reference)[None])[0])


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> dict:
    """Mean and two-sided Student-t confidence interval of ``values``."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    mean = float(values.mean()) if values.size else float("nan")
    if values.size < 2:
        return {"mean": mean, "ci_low": mean, "ci_high": mean, "n": int(values.size)}
    half = float(stats.t.ppf(0.5 + confidence / 2, values.size - 1) * values.std(ddof=1)
                 / np.sqrt(values.size))  # fmt: skip
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": int(values.size)}


def parse_sets(items: list[str], systems: list[str]) -> dict[str, list[str]]:
    """``SYSTEM:KEY=VALUE`` items -> ``{system: ["enhancer.KEY=VALUE", ...]}``.

    Raises
    ------
    ValueError
        A malformed item or a system not in ``systems``.
    """
    out: dict[str, list[str]] = {s: [] for s in systems}
    for item in items:
        system, sep, assignment = item.partition(":")
        if not sep or "=" not in assignment:
            raise ValueError(f"--set: expected SYSTEM:KEY=VALUE, got {item!r}")
        if system not in out:
            raise ValueError(f"--set: system {system!r} is not in --systems {systems}")
        out[system].append(f"enhancer.{assignment}")
    return out


def system_overrides(system: str) -> list[str]:
    """``enhancer.name`` (and ``enhancer.variant``) of ``name`` or ``name/variant``."""
    name, _, variant = system.partition("/")
    out = [f"enhancer.name={name}"]
    if variant:
        out.append(f"enhancer.variant={variant}")
    return out


def scene_si_sdr(exp: Path, scenes: dict, scenes_folder: Path) -> dict[str, dict[str, float]]:
    """Per scene: SI-SDR (dB, mean of the ears) vs ``target_CH1`` and vs the official reference."""
    from clarity_se.data.audio_io import read_audio

    values: dict[str, dict[str, float]] = {"target_CH1": {}, "anechoic": {}}
    for name, scene in scenes.items():
        enhanced = sorted((exp / "enhanced_signals").glob(f"{name}_*_enhanced.wav"))[0]
        est, _ = read_audio(enhanced)
        ref, _ = read_audio(scenes_folder / f"{name}_target_CH1.wav")
        anechoic, _ = read_audio(scenes_folder / f"{name}_target_anechoic_CH1.wav")
        rms = np.sqrt(np.mean(ref**2, axis=0)) / np.maximum(
            np.sqrt(np.mean(anechoic**2, axis=0)), 1e-12
        )
        anechoic = anechoic * rms
        span = slice(scene.target.time_start, scene.target.time_end)
        for key, reference in (("target_CH1", ref), ("anechoic", anechoic)):
            values[key][name] = float(
                np.mean([si_sdr_db(est[span, ear], reference[span, ear]) for ear in (0, 1)])
            )
    return values


def guard_fired(exp: Path) -> dict[str, float]:
    """Per scene: share of 10 ms blocks in which the do-no-harm rule fired (mean over the
    passes), from the ``guard_fired`` field of ``enhance_manifest.jsonl``; empty if the
    enhancer has no such rule."""
    path = exp / "enhance_manifest.jsonl"
    out: dict[str, float] = {}
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line) if line.strip() else {}
        if record.get("guard_fired"):
            out[record["scene"]] = float(np.mean(list(record["guard_fired"].values())))
    return out


def write_oracle(root: Path, exp: Path, system: str, overrides: list[str]) -> None:
    """Write the outputs of ``oracle/KIND`` (:mod:`oracles`) into ``exp``; the only option is
    ``enhancer.residual_mix``.

    Raises
    ------
    StageFailed
        Another option, or the oracle failed (the message says why).
    """
    mix = 0.0
    for item in overrides:
        key, _, value = item.partition("=")
        if key != "enhancer.residual_mix":
            raise StageFailed(f"{system}: the only option of an oracle is residual_mix, "
                              f"got {key.removeprefix('enhancer.')!r}")  # fmt: skip
        mix = float(value)
    try:
        oracles.write_oracle(root, exp, system.partition("/")[2], mix)
    except (ValueError, OSError) as exc:
        raise StageFailed(f"{system}: {exc}") from exc


class StageFailed(RuntimeError):
    """A ``clarity-se`` stage run by the benchmark exited with an error (its message is above)."""


def run_stage(command: list[str], env: dict[str, str]) -> None:
    """Run ``python -m clarity_se.cli COMMAND...`` in the caller's working directory.

    Relative paths of the caller (``--root``, a ``--set ...:checkpoint=``) mean the same to the
    stage as to the caller; the repository is put on ``PYTHONPATH`` so the stage imports this
    checkout's package.

    Raises
    ------
    StageFailed
        The stage exited with a non-zero status (it has printed its own error).
    """
    env = dict(env, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), env.get("PYTHONPATH", "")) if p))
    status = subprocess.run([sys.executable, "-m", "clarity_se.cli", *command], env=env,
                            check=False).returncode
    if status != 0:
        raise StageFailed(f"`clarity-se {' '.join(command)}` exited with status {status}")


def main(argv: list[str] | None = None) -> int:
    """Run the quality benchmark and write its JSON; 1 if a stage fails (its error printed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=REPO / "results" / "benchmarks" / "enhancer_quality_data"
    )
    parser.add_argument("--systems", nargs="+", default=["convtasnet"],
                        help="registered enhancers, NAME or NAME/VARIANT")  # fmt: skip
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        metavar="SYSTEM:KEY=VALUE", help="enhancer.* override of one system")
    parser.add_argument("--dev-scenes", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rng", default="fast")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-evaluate", action="store_true", help="SI-SDR only (no HASPI/HASQI)")
    parser.add_argument("--checkpoint", default="", help="shorthand: --set convtasnet:checkpoint=")
    parser.add_argument("--residual-mix", type=float, default=None,
                        help="shorthand: --set convtasnet:residual_mix= (default: 1.0 with the "
                             "mvdr residual, 0.25 with mixture)")
    parser.add_argument("--mirror-average", choices=("true", "false"), default=None,
                        help="shorthand: --set convtasnet:mirror_average= (default true)")
    parser.add_argument(
        "--out", type=Path, default=REPO / "results" / "benchmarks" / "enhancer_quality.json"
    )
    args = parser.parse_args(argv)

    from clarity_se.data.scene import load_scenes
    from clarity_se.enhancers import enhancer_names

    systems = [BASELINE] + [s for s in args.systems if s != BASELINE]
    for system in systems:
        name, _, kind = system.partition("/")
        if name == ORACLE:
            if kind not in oracles.ORACLES:
                parser.error(f"unknown oracle {system!r}; choose from "
                             f"{[f'{ORACLE}/{k}' for k in oracles.ORACLES]}")  # fmt: skip
        elif name not in enhancer_names():
            parser.error(f"unknown enhancer {system!r}; registered: {enhancer_names()}")
    sets = list(args.sets)
    if args.checkpoint:
        sets.append(f"convtasnet:checkpoint={args.checkpoint}")
    if args.residual_mix is not None:
        sets.append(f"convtasnet:residual_mix={args.residual_mix}")
    if args.mirror_average is not None:
        sets.append(f"convtasnet:mirror_average={args.mirror_average}")
    try:
        extra = parse_sets(sets, systems)
    except ValueError as exc:
        parser.error(str(exc))

    root = args.root.resolve()
    try:
        lock = lock_root(root)  # noqa: F841 (held until the process ends)
    except RuntimeError as exc:
        parser.error(str(exc))
    if not (root / "clarity_data" / "metadata" / "scenes.dev.json").is_file():
        from clarity_se.data.render.cli import build_dataset

        build_dataset(root, n_train=0, n_dev=args.dev_scenes, seed=args.seed, workers=args.workers)
    scenes = {
        s.scene: s for s in load_scenes(root / "clarity_data" / "metadata" / "scenes.dev.json")
    }
    scenes_folder = root / "clarity_data" / "dev" / "scenes"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result: dict = {
        "root": str(root),
        "seed": args.seed,
        "dev_scenes": len(scenes),
        "rng": None if args.no_evaluate else args.rng,
        "overrides": {s: v for s, v in extra.items() if v},
        "systems": {},
    }
    per_scene: dict[str, dict] = {}
    fired_by_system: dict[str, dict[str, float]] = {}
    scores: dict[str, pd.DataFrame] = {}
    for system in systems:
        exp = root / f"exp_{system.replace('/', '_')}"
        if system != BASELINE:  # checkpoint / options may differ from the last run
            shutil.rmtree(exp, ignore_errors=True)
        common = [f"path.root={root}", f"path.exp_folder={exp}"]
        entry: dict = {}
        try:
            t0 = time.perf_counter()
            if system.partition("/")[0] == ORACLE:
                write_oracle(root, exp, system, extra[system])
            else:
                run_stage(["enhance", *common, *system_overrides(system), *extra[system]], env)
            entry["enhance_s"] = time.perf_counter() - t0
            if not args.no_evaluate:
                t0 = time.perf_counter()
                run_stage(["evaluate", *common, f"evaluate.rng={args.rng}",
                           f"evaluate.workers={args.workers}"], env)
                entry["evaluate_s"] = time.perf_counter() - t0
        except StageFailed as exc:
            print(f"bench_enhancer_quality: {system}: {exc}", file=sys.stderr)
            return 1
        per_scene[system] = scene_si_sdr(exp, scenes, scenes_folder)
        fired_by_system[system] = guard_fired(exp)
        for key, values in per_scene[system].items():
            entry[f"si_sdr_{key}_db"] = float(np.mean(list(values.values())))
        if not args.no_evaluate:
            scores[system] = pd.read_csv(exp / "scores.csv")
            for metric in ("combined", "haspi", "hasqi"):
                entry[metric] = float(scores[system][metric].mean())
            entry["pairs"] = len(scores[system])
        result["systems"][system] = entry
    # scene types: the held-out sets of `clarity-se demo-data --acoustic-model` mark whether
    # the target is in front of the listener (CEC2 scenes always are)
    in_front = {s: bool(scene.extra.get("target_in_front", True)) for s, scene in scenes.items()}
    groups = {"all": set(scenes), "front": {s for s in scenes if in_front[s]},
              "side": {s for s in scenes if not in_front[s]}}  # fmt: skip
    result["scene_types"] = {k: len(v) for k, v in groups.items()}
    result["target_in_front"] = in_front
    result["vs_passthrough"] = {}
    for system in systems[1:]:
        by_group: dict = {}
        for group, members in groups.items():
            if not members:
                continue
            paired: dict = {"scenes": len(members)}
            fired = fired_by_system[system]
            if fired:  # do-no-harm rule: mean share of blocks, scenes where it fired at all
                shares = [fired[s] for s in members if s in fired]
                paired["guard_fired_share"] = float(np.mean(shares))
                paired["guard_fired_scenes"] = int(sum(v > 0 for v in shares))
            for key in ("target_CH1", "anechoic"):
                delta = np.array([per_scene[system][key][s] - per_scene[BASELINE][key][s]
                                  for s in scenes if s in members])  # fmt: skip
                paired[f"si_sdr_{key}_improvement_db"] = mean_ci(delta)
                paired[f"si_sdr_{key}_improved_scenes"] = int((delta > 0).sum())
                paired[f"si_sdr_{key}_worst_scene_delta_db"] = float(delta.min())
            if not args.no_evaluate:
                merged = scores[system].merge(
                    scores[BASELINE], on=["scene", "listener"], suffixes=("", "_base")
                )
                merged = merged[merged["scene"].isin(members)]
                for metric in ("combined", "haspi", "hasqi"):
                    delta = (merged[metric] - merged[f"{metric}_base"]).to_numpy()
                    paired[f"{metric}_improvement"] = mean_ci(delta)
                delta = (merged["combined"] - merged["combined_base"]).to_numpy()
                paired["pairs"] = int(delta.size)
                paired["combined_improved_pairs"] = int((delta > 0).sum())
                paired["combined_worst_pair_delta"] = float(delta.min()) if delta.size else None
            by_group[group] = paired
        result["vs_passthrough"][system] = by_group
    result["per_scene_si_sdr_db"] = per_scene
    # per (scene, listener) scores, for paired comparisons between runs of this benchmark
    result["per_pair"] = {
        system: {f"{r.scene}_{r.listener}": {m: float(getattr(r, m))
                                               for m in ("combined", "haspi", "hasqi")}
                 for r in frame.itertuples()}
        for system, frame in scores.items()
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items()
                      if k not in ("per_scene_si_sdr_db", "per_pair")}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
