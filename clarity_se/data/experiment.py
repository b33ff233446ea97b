"""An experiment folder: the official file names of what the stages write, and ``errors.csv``.

::

    <exp>/enhanced_signals/<scene>_<listener>_enhanced.wav     (enhance; official name)
    <exp>/amplified_signals/<scene>_<listener>_HA-output.wav   (amplify; official name)
    <exp>/scores.csv, scores_detail.csv                        (evaluate; official header)
    <exp>/enhance_manifest.jsonl, amplify_manifest.jsonl, scores.jsonl   (journals, resume)
    <exp>/errors.csv                                           (failed pairs of every stage)

A shard ``k/n`` of a job array writes ``<name>.shard-k-of-n.<ext>`` for the CSVs and
journals, so that shards never write the same file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from clarity_se.data.audio_io import atomic_write_text
from clarity_se.data.pairs import shard_suffix

logger = logging.getLogger(__name__)

__all__ = ["ERRORS_HEADER", "ErrorLog", "Experiment", "FolderBusy"]


class FolderBusy(ValueError):
    """Another run holds the experiment folder's lock (the message names the holder)."""

ERRORS_HEADER = ("stage", "scene", "listener", "error")


class Experiment:
    """The layout of one system's experiment folder (``path.exp_folder``).

    Parameters
    ----------
    folder : path-like
        The experiment folder (created on first write).
    shard : str
        ``evaluate.shard`` (``"k/n"`` or ``""``): suffix of CSVs and journals.

    Examples
    --------
    >>> exp = Experiment("exp/baseline")
    >>> exp.enhanced_path("S06001", "L0001").as_posix()
    'exp/baseline/enhanced_signals/S06001_L0001_enhanced.wav'
    >>> Experiment("exp", shard="2/4").journal_path("scores").name
    'scores.shard-2-of-4.jsonl'
    """

    ENHANCED_DIR = "enhanced_signals"
    AMPLIFIED_DIR = "amplified_signals"

    def __init__(self, folder: str | os.PathLike, shard: str = "") -> None:
        self.folder = Path(folder)
        self.shard = str(shard or "")
        self.suffix = shard_suffix(self.shard)

    def __repr__(self) -> str:
        return f"Experiment({str(self.folder)!r}, shard={self.shard!r})"

    def enhanced_path(self, scene: str, listener: str) -> Path:
        """``<exp>/enhanced_signals/<scene>_<listener>_enhanced.wav`` (the official name)."""
        return self.folder / self.ENHANCED_DIR / f"{scene}_{listener}_enhanced.wav"

    def amplified_path(self, scene: str, listener: str) -> Path:
        """``<exp>/amplified_signals/<scene>_<listener>_HA-output.wav`` (the official name)."""
        return self.folder / self.AMPLIFIED_DIR / f"{scene}_{listener}_HA-output.wav"

    def journal_path(self, name: str) -> Path:
        """``<exp>/<name><suffix>.jsonl``: a stage's journal (``scores``, ``amplify_manifest``,
        ``enhance_manifest``)."""
        return self.folder / f"{name}{self.suffix}.jsonl"

    def csv_path(self, name: str) -> Path:
        """``<exp>/<name><suffix>.csv`` (``scores``, ``scores_detail``, ``errors``)."""
        return self.folder / f"{name}{self.suffix}.csv"

    def relative(self, path: str | os.PathLike) -> str:
        """``path`` relative to the folder, ``/``-separated (what journals store)."""
        return Path(path).relative_to(self.folder).as_posix()

    @contextlib.contextmanager
    def lock(self, *, wait: bool = False) -> Iterator[None]:
        """Hold the folder's lock (one writer per folder and shard) for the ``with`` block.

        ``<exp>/.clarity_se<suffix>.lock`` (the ``filelock`` package; advisory, released when
        the process ends, even by ``kill -9``) and ``<exp>/.clarity_se<suffix>.owner.json``
        (pid, host, command, start time) to name the holder.

        Parameters
        ----------
        wait : bool
            Wait for the holder to finish instead of failing.

        Raises
        ------
        FolderBusy
            If another run holds the lock and ``wait`` is false.
        """
        from filelock import FileLock, Timeout

        self.folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.folder / f".clarity_se{self.suffix}.lock"))
        owner = self.folder / f".clarity_se{self.suffix}.owner.json"
        try:
            lock.acquire(timeout=-1 if wait else 0)
        except Timeout:
            try:
                holder = json.loads(owner.read_text(encoding="utf-8"))
                who = (f"pid {holder.get('pid')} on {holder.get('host')}, started "
                       f"{holder.get('started')}: {holder.get('command')}")  # fmt: skip
            except (OSError, ValueError):
                who = "another process"
            raise FolderBusy(
                f"{self.folder}: in use by {who}; wait for it to finish, or rerun with --wait"
            ) from None
        try:
            atomic_write_text(owner, json.dumps({
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": " ".join(sys.argv),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            }))  # fmt: skip
            yield
        finally:
            owner.unlink(missing_ok=True)
            lock.release()

    def errors(self, stage: str) -> ErrorLog:
        """The :class:`ErrorLog` of ``stage`` (its rows of an earlier run are dropped)."""
        return ErrorLog(self.folder, stage, self.suffix)


class ErrorLog:
    """``<exp>/errors.csv``: one row per failed item (``stage,<keys...>,error``).

    The keys are ``scene,listener`` for the enhancement stages and ``clip`` for the echo track.
    Opening the log for a stage drops that stage's rows from an earlier run (they are retried),
    keeping other stages' rows. Each new row is flushed and fsynced, so a kill loses nothing
    that was reported.

    Parameters
    ----------
    exp_folder : path-like
        Experiment folder (created if missing).
    stage : str
        Stage name written in the ``stage`` column.
    suffix : str
        File-name suffix (used by shards: ``errors.shard-1-of-4.csv``).
    keys : tuple of str
        Columns naming the failed item.
    """

    def __init__(
        self,
        exp_folder: str | os.PathLike,
        stage: str,
        suffix: str = "",
        keys: tuple[str, ...] = ("scene", "listener"),
    ) -> None:
        self.path = Path(exp_folder) / f"errors{suffix}.csv"
        self.stage = stage
        self.header = ("stage", *keys, "error")
        self.count = 0
        kept = [row for row in self.read(self.path, self.header) if row["stage"] != stage]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(self.header)
        for row in kept:
            writer.writerow([row[k] for k in self.header])
        atomic_write_text(self.path, buffer.getvalue())

    @staticmethod
    def read(path: str | os.PathLike, header: tuple[str, ...] = ERRORS_HEADER) -> list[dict]:
        """Rows of an ``errors.csv`` (empty list if absent); a torn last line is ignored."""
        path = Path(path)
        if not path.is_file():
            return []
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        return [r for r in rows if all(r.get(k) is not None for k in header)]

    def add(self, *item: str | BaseException) -> None:
        """Record one failed item: ``add(scene, listener, error)`` (or ``add(clip, error)``
        for a ``clip`` log), and log it as a warning."""
        *keys, error = item
        if len(keys) != len(self.header) - 2:
            raise TypeError(f"ErrorLog.add takes {self.header[1:-1]} and the error")
        message = " ".join(str(error).split()) or type(error).__name__
        if isinstance(error, BaseException):
            message = f"{type(error).__name__}: {message}"
        logger.warning("%s failed for %s: %s", self.stage, "/".join(keys), message)
        with open(self.path, "a", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerow([self.stage, *keys, message])
            handle.flush()
            os.fsync(handle.fileno())
        self.count += 1
