"""Shared plumbing of the stages: the (scene, listener) pair list, sharding and ``errors.csv``.

The pair list follows the official recipe's ``make_scene_listener_list`` exactly (file order of
``scenes_listeners.<split>.json``; ``small_test`` keeps every 15th pair; both functions are
:mod:`clarity_se.data.scene`'s, re-exported here for the stages), then ``evaluate.shard``
``k/n`` keeps pairs ``k-1, k-1+n, ...`` so that shards are disjoint, cover every pair and do not
depend on the machine that runs them.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path

from clarity_se.config import parse_shard
from clarity_se.data.scene import make_scene_listener_list, read_scenes_listeners

__all__ = [
    "ERRORS_HEADER",
    "ErrorLog",
    "make_scene_listener_list",
    "pairs_from_config",
    "read_scenes_listeners",
    "select_shard",
    "shard_suffix",
]

logger = logging.getLogger(__name__)

ERRORS_HEADER = ("stage", "scene", "listener", "error")


def group_by_scene(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Listeners of each scene, scenes in first-appearance order (a scene's signals share a length)."""
    grouped: dict[str, list[str]] = {}
    for scene, listener in pairs:
        grouped.setdefault(scene, []).append(listener)
    return grouped


def select_shard(pairs: list[tuple[str, str]], shard: str) -> list[tuple[str, str]]:
    """Keep shard ``k/n`` (1-based) of ``pairs``: items ``k-1, k-1+n, ...``; all if empty."""
    parsed = parse_shard(shard)
    if parsed is None:
        return list(pairs)
    k, n = parsed
    return list(pairs[k - 1 :: n])


def shard_suffix(shard: str) -> str:
    """File-name suffix of a shard: ``""`` or ``".shard-k-of-n"``."""
    parsed = parse_shard(shard)
    return "" if parsed is None else f".shard-{parsed[0]}-of-{parsed[1]}"


def pairs_from_config(cfg, *, apply_shard: bool = True) -> list[tuple[str, str]]:
    """The pair list a stage processes: official order, ``small_test``, then ``evaluate.shard``."""
    pairs = make_scene_listener_list(
        read_scenes_listeners(cfg.path.scenes_listeners_file), bool(cfg.evaluate.small_test)
    )
    return select_shard(pairs, cfg.evaluate.shard) if apply_shard else pairs


class ErrorLog:
    """``<exp>/errors.csv``: one row per failed pair (``stage,scene,listener,error``).

    Opening the log for a stage drops that stage's rows from an earlier run (they are retried),
    keeping other stages' rows. Each new row is flushed and fsynced, so a kill loses nothing
    that was reported.

    Parameters
    ----------
    exp_folder : path-like
        Experiment folder.
    stage : str
        Stage name written in the ``stage`` column.
    suffix : str
        File-name suffix (used by shards: ``errors.shard-1-of-4.csv``).
    """

    def __init__(self, exp_folder: str | os.PathLike, stage: str, suffix: str = "") -> None:
        from clarity_se.data.audio_io import atomic_write_text

        self.path = Path(exp_folder) / f"errors{suffix}.csv"
        self.stage = stage
        self.count = 0
        kept = [row for row in self.read(self.path) if row["stage"] != stage]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(ERRORS_HEADER)
        for row in kept:
            writer.writerow([row[k] for k in ERRORS_HEADER])
        atomic_write_text(self.path, buffer.getvalue())

    @staticmethod
    def read(path: str | os.PathLike) -> list[dict[str, str]]:
        """Rows of an ``errors.csv`` (empty list if absent); a torn last line is ignored."""
        path = Path(path)
        if not path.is_file():
            return []
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        return [r for r in rows if all(r.get(k) is not None for k in ERRORS_HEADER)]

    def add(self, scene: str, listener: str, error: BaseException | str) -> None:
        """Record one failed pair (and log it as a warning)."""
        message = " ".join(str(error).split()) or type(error).__name__
        if isinstance(error, BaseException):
            message = f"{type(error).__name__}: {message}"
        logger.warning("%s failed for %s/%s: %s", self.stage, scene, listener, message)
        with open(self.path, "a", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerow([self.stage, scene, listener, message])
            handle.flush()
            os.fsync(handle.fileno())
        self.count += 1
