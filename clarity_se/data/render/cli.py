"""``clarity-se demo-data OUT``: render a small CEC2-layout dataset from real recordings.

Writes::

    OUT/clarity_data/metadata/{scenes.train.json, scenes.dev.json, scenes_listeners.dev.json,
                               listeners.json, rooms.train.json, rooms.dev.json}
    OUT/clarity_data/{train,dev}/scenes/S?????_{mix,target,interferer}_CH{0,1,2,3}.wav
    OUT/clarity_data/{train,dev}/scenes/S?????_target_anechoic_CH1.wav

Same seed -> byte-identical files (every scene has its own generator, seeded from a hash of
(seed, scene id); parallel workers do not change the result).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

logger = logging.getLogger(__name__)

#: Default number of scenes: 3/4 train, 1/4 dev (24 + 8).
DEFAULT_SCENES = 32
LISTENERS_PER_SCENE = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``clarity-se demo-data``."""
    parser.add_argument("out", type=Path, help="output root (gets clarity_data/ inside)")
    parser.add_argument(
        "--scenes",
        type=int,
        default=DEFAULT_SCENES,
        help=f"total number of scenes, 3/4 train and 1/4 dev (default {DEFAULT_SCENES})",
    )
    parser.add_argument(
        "--train-scenes", type=int, default=None, help="override the number of train scenes"
    )
    parser.add_argument(
        "--dev-scenes", type=int, default=None, help="override the number of dev scenes"
    )
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="rendering processes (default min(2, CPUs)); the output does not depend on it",
    )
    held = parser.add_argument_group(
        "held-out sets (clarity_se.data.render.heldout): one acoustic model, validation talkers"
    )
    held.add_argument(
        "--acoustic-model",
        default=None,
        help="render only a dev split of --scenes scenes with this model "
        "(kemar_ism, sphere_ism, freefield_ism, rostock_brir) and validation talkers",
    )
    held.add_argument(
        "--data-root",
        default=None,
        help="data root with speech/, noise/, music/, rir/ (default $CLARITY_SE_DATA_ROOT, "
        "else the embedded demo sources)",
    )
    held.add_argument(
        "--validation-speakers",
        default=None,
        help="comma-separated talker ids (default: corpus.VALIDATION_SPEAKERS)",
    )
    held.add_argument(
        "--not-in-front-share",
        type=float,
        default=0.25,
        help="share of scenes whose target is not in front (default 0.25)",
    )


def _render_one(job: tuple[dict, dict, int, str]) -> str:
    from clarity_se.data.render.renderer import render_scene, write_scene

    scene, room, seed, out_dir = job
    write_scene(render_scene(scene, room, seed=seed), scene["scene"], out_dir)
    return scene["scene"]


def build_dataset(
    out: str | os.PathLike, *, n_train: int, n_dev: int, seed: int = 0, workers: int = 1
) -> dict:
    """Draw, render and write the demo dataset.

    Parameters
    ----------
    out : path-like
        Output root; ``clarity_data/`` is created inside.
    n_train, n_dev : int
        Number of scenes per split (>= 0; train ids from S00001, dev from S06001).
    seed : int
        Dataset seed.
    workers : int
        Processes used for rendering (>= 1).

    Returns
    -------
    dict
        ``{"train": [scene ids], "dev": [scene ids], "seconds": float}``.

    Raises
    ------
    ValueError
        Negative counts or ``workers < 1``.
    """
    import numpy as np
    from tqdm import tqdm

    from clarity_se.data.audio_io import atomic_write_text
    from clarity_se.data.audiogram import save_listeners
    from clarity_se.data.render.listeners import bisgaard_listeners
    from clarity_se.data.render.scene_sampler import SCENE_START_INDEX, sample_scene, scene_rng
    from clarity_se.data.scene import Scene, dumps_cec2_json, save_scenes, save_scenes_listeners

    if n_train < 0 or n_dev < 0:
        raise ValueError(f"scene counts must be >= 0, got train={n_train}, dev={n_dev}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    t0 = time.perf_counter()
    root = Path(out) / "clarity_data"
    meta = root / "metadata"
    meta.mkdir(parents=True, exist_ok=True)
    listeners = bisgaard_listeners()
    names = sorted(listeners)
    jobs = []
    result: dict = {}
    scenes_listeners: dict[str, list[str]] = {}
    for split, count in (("train", n_train), ("dev", n_dev)):
        scenes, rooms = [], []
        for index in range(SCENE_START_INDEX[split], SCENE_START_INDEX[split] + count):
            sid = f"S{index:05d}"
            rng = scene_rng(seed, sid)
            scene, room = sample_scene(rng, split, sid)
            scenes.append(scene)
            rooms.append(room)
            if split == "dev":
                pick = np.random.default_rng(scene_rng(seed, f"{sid}/listeners").integers(0, 2**63))
                chosen = pick.choice(len(names), size=LISTENERS_PER_SCENE, replace=False)
                scenes_listeners[sid] = [names[i] for i in chosen]
            jobs.append((scene, room, seed, str(root / split / "scenes")))
        save_scenes(meta / f"scenes.{split}.json", [Scene.from_dict(s) for s in scenes])
        atomic_write_text(meta / f"rooms.{split}.json", dumps_cec2_json(rooms))
        result[split] = [s["scene"] for s in scenes]
    save_scenes_listeners(meta / "scenes_listeners.dev.json", scenes_listeners)
    save_listeners(meta / "listeners.json", listeners)

    if workers == 1 or len(jobs) <= 1:
        for job in tqdm(jobs, desc="rendering scenes", unit="scene"):
            _render_one(job)
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
            for _ in tqdm(
                pool.map(_render_one, jobs), total=len(jobs), desc="rendering scenes", unit="scene"
            ):
                pass
    result["seconds"] = time.perf_counter() - t0
    return result


def main(args: argparse.Namespace) -> int:
    """Run ``clarity-se demo-data``; returns the exit status."""
    if args.scenes < 0:
        logger.error("--scenes must be >= 0")
        return 2
    if getattr(args, "acoustic_model", None):
        return _main_heldout(args)
    n_train = args.train_scenes if args.train_scenes is not None else args.scenes - args.scenes // 4
    n_dev = args.dev_scenes if args.dev_scenes is not None else args.scenes // 4
    try:
        result = build_dataset(
            args.out, n_train=n_train, n_dev=n_dev, seed=args.seed, workers=args.workers
        )
    except ValueError as exc:
        logger.error("%s", exc)
        return 1
    logger.info(
        "wrote %d train + %d dev scenes to %s in %.1f s",
        len(result["train"]),
        len(result["dev"]),
        Path(args.out) / "clarity_data",
        result["seconds"],
    )
    return 0


def _main_heldout(args: argparse.Namespace) -> int:
    """``demo-data --acoustic-model NAME``: a held-out dev split (see :mod:`.heldout`)."""
    from clarity_se.data.render.heldout import build_heldout_dataset

    speakers = None
    if args.validation_speakers:
        speakers = tuple(s.strip() for s in args.validation_speakers.split(",") if s.strip())
    n = args.dev_scenes if args.dev_scenes is not None else args.scenes
    try:
        result = build_heldout_dataset(
            args.out,
            acoustic_model=args.acoustic_model,
            n_scenes=n,
            seed=args.seed,
            data_root=args.data_root,
            validation_speakers=speakers,
            not_in_front_share=args.not_in_front_share,
            workers=args.workers,
        )
    except ValueError as exc:
        logger.error("%s", exc)
        return 1
    logger.info(
        "wrote %d %s scenes (%d with the target not in front) to %s in %.1f s",
        len(result["dev"]),
        args.acoustic_model,
        result["n_not_in_front"],
        Path(args.out) / "clarity_data",
        result["seconds"],
    )
    return 0
