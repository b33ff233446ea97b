"""The (scene, listener) pairs a stage processes: official order, ``small_test``, shards.

The pair list follows the official recipe's ``make_scene_listener_list`` exactly (file order
of ``scenes_listeners.<split>.json``; ``small_test`` keeps every 15th pair); ``evaluate.shard``
``k/n`` then keeps pairs ``k-1, k-1+n, ...`` so that shards are disjoint, cover every pair and
do not depend on the machine that runs them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from clarity_se.config import parse_shard

__all__ = ["ScenePair", "group_by_scene", "select_shard", "shard_suffix"]


class ScenePair(NamedTuple):
    """One (scene, listener) pair, the unit every stage processes and records.

    Attributes
    ----------
    scene : str
        Scene id (``S06001``).
    listener : str
        Listener id (``L0001``).
    """

    scene: str
    listener: str

    @property
    def id(self) -> str:
        """``<scene>_<listener>``: the record id in journals and the stem of official names."""
        return f"{self.scene}_{self.listener}"


def group_by_scene(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Listeners of each scene, scenes in first-appearance order (a scene's signals share a
    length, so its listeners can be processed together)."""
    grouped: dict[str, list[str]] = {}
    for scene, listener in pairs:
        grouped.setdefault(scene, []).append(listener)
    return grouped


def select_shard(pairs: list[tuple[str, str]], shard: str) -> list[ScenePair]:
    """Keep shard ``k/n`` (1-based) of ``pairs``: items ``k-1, k-1+n, ...``; all if empty.

    Raises
    ------
    ValueError
        If ``shard`` is not ``k/n`` with ``1 <= k <= n``.
    """
    pairs = [ScenePair(*p) for p in pairs]
    parsed = parse_shard(shard)
    if parsed is None:
        return pairs
    k, n = parsed
    return pairs[k - 1 :: n]


def shard_suffix(shard: str) -> str:
    """File-name suffix of a shard: ``""`` or ``".shard-k-of-n"``."""
    parsed = parse_shard(shard)
    return "" if parsed is None else f".shard-{parsed[0]}-of-{parsed[1]}"
