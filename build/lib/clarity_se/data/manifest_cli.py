"""``clarity-se manifest ROOT --split dev``: write the scene manifest of a CEC2-layout dataset.

Writes ``<out>/<dataset>_scenes_<split>.jsonl`` (``--gzip``: ``.jsonl.gz``), one
``clarity_se.scene/1`` record per scene (:func:`clarity_se.data.manifest.scene_record`), in the
order of ``scenes.<split>.json``. A rerun resumes: scenes already in the manifest are skipped.
A scene whose files are missing or inconsistent is reported (one line naming the file and
field) and left out; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clarity-se manifest``."""
    parser.add_argument("root", help="dataset root (the folder holding clarity_data/)")
    parser.add_argument("--split", nargs="+", default=["dev"], help="split(s) (default: dev)")
    parser.add_argument(
        "--out", default="data_manifests", help="output folder (default: data_manifests/)"
    )
    parser.add_argument(
        "--dataset", default="cec2", help="dataset name in the file name and records"
    )
    parser.add_argument("--gzip", action="store_true", help="write .jsonl.gz")
    parser.add_argument("--overwrite", action="store_true", help="start afresh instead of resuming")


def write_scene_manifest(
    root: str,
    split: str,
    out_dir: str,
    *,
    dataset: str = "cec2",
    compress: bool = False,
    resume: bool = True,
) -> tuple[Path, int, int, list[str]]:
    """Write (or complete) the scene manifest of one split.

    Returns
    -------
    (path, n_written, n_skipped, problems)
        The manifest path, records written now, records already present, and one line per
        scene that could not be recorded.

    Raises
    ------
    ValueError
        If the split's metadata cannot be read (names the file and field).
    """
    from tqdm import tqdm

    from clarity_se.data.cec2 import CEC2Dataset
    from clarity_se.data.manifest import SCENE_SCHEMA, ManifestWriter, manifest_path, scene_record

    data = CEC2Dataset(root, split)
    scenes = data.scenes
    pairs = data.scenes_listeners if data.scenes_listeners_file.is_file() else None
    path = manifest_path(out_dir, dataset, "scenes", split, compress=compress)
    problems: list[str] = []
    written = skipped = 0
    with ManifestWriter(path, schema=SCENE_SCHEMA, resume=resume) as writer:
        for scene in tqdm(scenes, desc=f"manifest {split}", unit="scene", disable=None):
            if scene.scene in writer:
                skipped += 1
                continue
            try:
                listeners = None if pairs is None else pairs.get(scene.scene, [])
                record = scene_record(data, scene, dataset=dataset, listeners=listeners)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            writer.write(record)
            written += 1
    return path, written, skipped, problems


def main(args: argparse.Namespace) -> int:
    """Run ``clarity-se manifest``; exit 1 if a scene could not be recorded."""
    failed = False
    for split in args.split:
        try:
            path, written, skipped, problems = write_scene_manifest(
                args.root,
                split,
                args.out,
                dataset=args.dataset,
                compress=args.gzip,
                resume=not args.overwrite,
            )
        except ValueError as exc:
            print(exc)
            failed = True
            continue
        for line in problems:
            print(line)
        failed = failed or bool(problems)
        print(
            f"manifest: {path}: {written} scene(s) written, {skipped} already present, "
            f"{len(problems)} failed"
        )
    return 1 if failed else 0
