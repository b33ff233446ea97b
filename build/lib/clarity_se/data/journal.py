"""The journal of a stage: one record per finished item, the single resume mechanism.

Every per-pair stage (enhance, amplify, evaluate) keeps a journal in its experiment folder
(:meth:`clarity_se.data.experiment.Experiment.journal_path`): a JSON-lines manifest written
through :class:`clarity_se.data.manifest.ManifestWriter` (one fsynced line per record, a torn
last line from a kill repaired on opening). An item is *done* when its record is in the
journal and every file the record names (``path``, relative to the folder) still exists; a
rerun does only the items that are not done.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from clarity_se.data.manifest import ManifestWriter, write_manifest

__all__ = ["Journal"]


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
