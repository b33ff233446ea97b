"""The journal of a stage: one record per finished item, the single resume mechanism.

Every per-pair stage (enhance, amplify, evaluate) keeps a journal in its experiment folder
(:meth:`clarity_se.data.experiment.Experiment.journal_path`): a JSON-lines manifest written
through :class:`clarity_se.data.manifest.ManifestWriter` (one fsynced line per record, a torn
last line from a kill repaired on opening). An item is *done* when its record is in the
journal and every file the record names (``path``, relative to the folder) still exists; a
rerun does only the items that are not done.

Records carry a fingerprint (:mod:`clarity_se.data.fingerprint`) of the config and input
files that produced them; :meth:`Journal.plan` sorts a stage's items into up to date (reused),
stale (inputs or config changed: recomputed) and new, and ``force`` recomputes everything.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from clarity_se.data.fingerprint import FileFingerprints
from clarity_se.data.manifest import ManifestWriter, write_manifest

__all__ = ["Journal", "Plan"]


@dataclass
class Plan:
    """What a stage will do: ``todo`` ids, and how many are ``reused``, ``stale``, ``new``."""

    todo: list[str] = field(default_factory=list)
    reused: int = 0
    stale: int = 0
    new: int = 0
    forced: bool = False

    def summary(self) -> str:
        """``"12 reused, 1 recomputed (inputs or config changed), 3 new"``."""
        changed = "recomputed (--force)" if self.forced else "recomputed (inputs or config changed)"
        return f"{self.reused} reused, {self.stale} {changed}, {self.new} new"


class Journal:
    """Resumable record of one stage's finished items.

    Parameters
    ----------
    path : path-like
        The journal file (``.jsonl``).
    schema : str
        Schema of its records (e.g. ``clarity_se.score/1``).
    folder : path-like, optional
        Folder that records' ``path`` fields are relative to (default: the journal's folder).

    Raises
    ------
    clarity_se.data.manifest.ManifestError
        If the file holds a bad line or a record of another schema.
    """

    def __init__(
        self, path: str | os.PathLike, schema: str, folder: str | os.PathLike | None = None
    ) -> None:
        self.path = Path(path)
        self.schema = schema
        self.folder = Path(folder) if folder is not None else self.path.parent
        self._writer = ManifestWriter(self.path, schema=schema, updates=True)
        self._superseded = False
        # the last record of an id wins (a redone item appends a newer record)
        self._records = {r["id"]: r for r in self._writer.records()}

    def done(self, record_id: str) -> dict | None:
        """The record of ``record_id`` if it is finished (its output files exist), else None."""
        record = self._records.get(record_id)
        if record is None:
            return None
        path = record.get("path")
        if isinstance(path, str) and not (self.folder / path).is_file():
            return None
        return record

    def plan(
        self,
        ids: list[str],
        config_hash: str | Callable[[str], str],
        inputs: Callable[[str], Mapping[str, str | os.PathLike]],
        files: FileFingerprints,
        *,
        force: bool = False,
    ) -> Plan:
        """Sort ``ids`` into reused, stale and new.

        Parameters
        ----------
        ids : list of str
            Record ids the stage is asked to produce.
        config_hash : str or callable
            :func:`~clarity_se.data.fingerprint.config_hash` of what affects the results, or
            ``config_hash(id)`` when it differs per item (e.g. the listener's audiogram).
        inputs : callable
            ``inputs(id) -> {role: path}``: the files an item reads.
        files : FileFingerprints
            Hash cache.
        force : bool
            Recompute every item.

        Returns
        -------
        Plan
            ``todo`` in the order of ``ids``.
        """
        plan = Plan(forced=force)
        for record_id in ids:
            record = self.done(record_id)
            if record is None:
                plan.new += 1
                plan.todo.append(record_id)
                continue
            fingerprint = record.get("fingerprint") or {}
            wanted = config_hash(record_id) if callable(config_hash) else config_hash
            if (
                force
                or fingerprint.get("config") != wanted
                or not files.unchanged(fingerprint.get("inputs", {}), inputs(record_id))
            ):
                plan.stale += 1
                plan.todo.append(record_id)
            else:
                plan.reused += 1
        return plan

    def records(self) -> dict[str, dict]:
        """Every record by id (finished or not), in file order."""
        return dict(self._records)

    def __iter__(self) -> Iterator[dict]:
        return iter(self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    def write(self, record: dict) -> None:
        """Append ``record``; it replaces an earlier record of the same id (the last wins).

        Raises
        ------
        clarity_se.data.manifest.ManifestError
            If the record lacks ``id``/``schema`` or has another schema.
        """
        self._superseded |= record["id"] in self._records
        self._writer.write(record)
        self._records[record["id"]] = record

    def close(self) -> None:
        """Flush and close the file; if records were superseded, rewrite it (atomically) with
        the last record of each id, so that a journal at rest holds one line per id."""
        self._writer.close()
        if self._superseded:
            write_manifest(self.path, list(self._records.values()))
            self._superseded = False

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
