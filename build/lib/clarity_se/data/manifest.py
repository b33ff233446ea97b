"""Typed JSONL manifests: one JSON record per line, resumable by ``id``.

Every stage reads a manifest and writes one, ``data_manifests/<dataset>_<type>_<split>.jsonl``
(gzip-compressed when the name ends in ``.gz``). Each record is a JSON object with at least

- ``id``: unique key within the file (a scene id, or ``<scene>_<listener>``);
- ``schema``: record type and version, e.g. ``"clarity_se.scene/1"``;

and audio records carry ``sample_rate`` (Hz), ``num_samples`` and ``duration_s`` so validation
can cross-check them; audio paths are relative to the data root (``{data_root}``), never
rebuilt from file-name rules.

:class:`ManifestWriter` appends one line per record, flushed and fsynced, and on opening skips
ids already present, so a killed run resumes where it stopped; a torn last line left by a kill
is cut off (plain files) or the file is rewritten without it (gzip). :func:`read_manifest`
streams records lazily; :func:`write_manifest` rewrites a whole manifest atomically.

References
----------
lhotse ``SequentialJsonlWriter`` (append-only JSONL manifest with resume by id); pyclarity's CEC3
``report_score.py`` (check the rows against the expected scene-listener pairs).
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from clarity_se.data.audio_io import AudioFileError, audio_info
from clarity_se.data.cec2 import ALL_CHANNELS, ANECHOIC_CHANNEL, MIX_CHANNELS, CEC2Dataset
from clarity_se.data.scene import Scene

logger = logging.getLogger(__name__)

#: Schema of a scene record (:func:`scene_record`).
SCENE_SCHEMA = "clarity_se.scene/1"


class ManifestError(ValueError):
    """A manifest line is not a valid record (names the file, line and field)."""


def manifest_path(
    out_dir: str | os.PathLike, dataset: str, type_: str, split: str, *, compress: bool = False
) -> Path:
    """``<out_dir>/<dataset>_<type>_<split>.jsonl`` (``.jsonl.gz`` when ``compress``).

    Raises
    ------
    ValueError
        If a name part is empty or contains ``_``/``/`` (it would make the name ambiguous).
    """
    for name, part in (("dataset", dataset), ("type", type_), ("split", split)):
        if not part or "/" in part or "_" in part:
            raise ValueError(
                f"manifest_path: {name} must be non-empty without '_' or '/', got {part!r}"
            )
    suffix = ".jsonl.gz" if compress else ".jsonl"
    return Path(out_dir) / f"{dataset}_{type_}_{split}{suffix}"


def _is_gzip(path: str | os.PathLike) -> bool:
    return str(path).endswith(".gz")


def check_record(record: Any, *, where: str = "record", schema: str | None = None) -> dict:
    """Check that ``record`` is a manifest record (dict with ``id`` and ``schema``).

    Raises
    ------
    ManifestError
        Naming ``where`` and the bad field.
    """
    if not isinstance(record, dict):
        raise ManifestError(f"{where}: a record must be a JSON object, got {type(record).__name__}")
    rid = record.get("id")
    if not isinstance(rid, str) or not rid:
        raise ManifestError(f"{where}: field 'id' must be a non-empty string, got {rid!r}")
    rschema = record.get("schema")
    if not isinstance(rschema, str) or "/" not in rschema:
        raise ManifestError(
            f"{where}: record {rid!r}: field 'schema' must look like 'name/version', "
            f"got {rschema!r}"
        )
    if schema is not None and rschema != schema:
        raise ManifestError(f"{where}: record {rid!r}: schema is {rschema!r}, expected {schema!r}")
    return record


_CHUNK = 1 << 16


def _iter_raw_lines(path: Path, state: dict | None = None) -> Iterator[tuple[int, bytes, bool]]:
    """``(byte_end, line, complete)`` per line of a plain or gzip manifest.

    For gzip the stream is decompressed member by member with ``zlib`` so that every complete
    line written before a kill is recovered even when the last member has no trailer (a
    writer killed, or still open) or is followed by garbage; ``state["clean"]`` is then set to
    False. ``byte_end`` is the offset in the *plain* file (meaningless for gzip).
    """
    if state is None:
        state = {}
    state["clean"] = True
    if not _is_gzip(path):
        offset = 0
        with open(path, "rb") as handle:
            for line in handle:
                offset += len(line)
                yield offset, line, line.endswith(b"\n")
        return
    pending = b""
    offset = 0
    with open(path, "rb") as handle:
        decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
        in_member = False
        data = handle.read(_CHUNK)
        while data:
            in_member = True
            try:
                pending += decomp.decompress(data)
            except zlib.error as exc:
                logger.debug("%s: gzip stream corrupt (%s)", path, exc)
                state["clean"] = False
                in_member = False
                break
            *lines, pending = pending.split(b"\n")
            for line in lines:
                offset += len(line) + 1
                yield offset, line + b"\n", True
            if decomp.eof:
                in_member = False
                data = decomp.unused_data or handle.read(_CHUNK)
                decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                data = handle.read(_CHUNK)
        if in_member:
            logger.debug("%s: last gzip member has no end (interrupted or open writer)", path)
            state["clean"] = False
    if pending:
        yield offset + len(pending), pending, False


def _scan(path: Path, schema: str | None) -> tuple[list[tuple[int, dict]], int, bool]:
    """Good records with their end offsets, the end offset of the good prefix, torn tail?"""
    good: list[tuple[int, dict]] = []
    good_end = 0
    torn = False
    pending_error: str | None = None
    state: dict = {}
    for lineno, (end, line, complete) in enumerate(_iter_raw_lines(path, state), start=1):
        if pending_error is not None:
            raise ManifestError(pending_error)
        text = line.strip()
        if not text:
            if complete:
                good_end = end
            continue
        try:
            record = check_record(
                json.loads(text.decode("utf-8")), where=f"{path}:{lineno}", schema=schema
            )
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if complete:
                # Not the last line? decided when the next line arrives.
                pending_error = f"{path}:{lineno}: not a JSON line ({exc})"
                torn = True
                continue
            torn = True
            return good, good_end, torn
        if not complete:
            # A parsable line without its newline was cut exactly at the end: keep it, the
            # writer adds the missing newline.
            torn = True
        good.append((end, record))
        good_end = end
    return good, good_end, torn or not state["clean"]


def read_manifest(path: str | os.PathLike, *, schema: str | None = None) -> Iterator[dict]:
    """Stream the records of a manifest lazily (plain or ``.gz``).

    Parameters
    ----------
    path : path-like
        The manifest.
    schema : str, optional
        Require every record to have this ``schema``.

    Yields
    ------
    dict
        One record per non-empty line, in file order.

    Raises
    ------
    ValueError
        Missing file (``FileNotFoundError`` is not raised: the message names the path).
    ManifestError
        A line in the middle of the file is not JSON, or a record lacks ``id``/``schema`` or
        has another schema (names file, line and field). A torn *last* line (a killed writer)
        is skipped with a warning.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: manifest not found")
    pending: tuple[int, str] | None = None
    for lineno, (_, line, complete) in enumerate(_iter_raw_lines(path), start=1):
        if pending is not None:
            raise ManifestError(f"{path}:{pending[0]}: not a JSON line ({pending[1]})")
        text = line.strip()
        if not text:
            continue
        try:
            record = json.loads(text.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if complete:
                pending = (lineno, str(exc))
                continue
            logger.warning("%s:%d: ignoring a torn last line (interrupted writer)", path, lineno)
            return
        yield check_record(record, where=f"{path}:{lineno}", schema=schema)
    if pending is not None:
        logger.warning("%s:%d: ignoring an unparsable last line", path, pending[0])


def _dump_line(record: dict) -> bytes:
    return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


def write_manifest(
    path: str | os.PathLike, records: Iterable[dict], *, schema: str | None = None
) -> int:
    """Rewrite a whole manifest atomically (temp file in the same folder, fsync, rename).

    Parameters
    ----------
    path : path-like
        Destination; gzip-compressed if it ends in ``.gz``. Parent folders are created.
    records : iterable of dict
        Records with ``id`` and ``schema``; ids must be unique.
    schema : str, optional
        Require this schema for every record.

    Returns
    -------
    int
        Number of records written.

    Raises
    ------
    ManifestError
        A bad record or a repeated id (the file is left untouched).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    count = 0
    seen: set[str] = set()
    try:
        with os.fdopen(fd, "wb") as raw:
            sink: io.BufferedIOBase = (
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
                if _is_gzip(path)
                else raw
            )
            for i, record in enumerate(records):
                check_record(record, where=f"{path}: records[{i}]", schema=schema)
                if record["id"] in seen:
                    raise ManifestError(f"{path}: records[{i}]: id {record['id']!r} appears twice")
                seen.add(record["id"])
                sink.write(_dump_line(record))
                count += 1
            if sink is not raw:
                sink.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


class ManifestWriter:
    """Append records to a manifest, one fsynced line each, resuming by ``id``.

    Parameters
    ----------
    path : path-like
        The manifest (``.jsonl`` or ``.jsonl.gz``). Parent folders are created.
    schema : str, optional
        Require this schema for every record written (and found on resume).
    resume : bool
        Keep the records already in the file and skip their ids (default). ``False`` starts
        an empty file.
    updates : bool
        Append a record even if its id is present (a newer version of it; readers keep the
        last record of each id, :class:`clarity_se.data.journal.Journal`). Default False: a
        present id is skipped.

    Notes
    -----
    On opening, a torn last line (a kill during a write) is removed: a plain file is truncated
    after its last complete record, a gzip file is rewritten atomically with its good records.
    Each :meth:`write` flushes (gzip: ``Z_SYNC_FLUSH``) and fsyncs, so a record reported
    written survives a kill. Use as a context manager or call :meth:`close`.

    Raises
    ------
    ManifestError
        If the existing file has a bad line in the middle, or a record of another schema.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        schema: str | None = None,
        resume: bool = True,
        updates: bool = False,
    ) -> None:
        self.path = Path(path)
        self.schema = schema
        self.updates = bool(updates)
        self._ids: set[str] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and resume:
            self._recover()
        elif self.path.exists():
            write_manifest(self.path, [])
        self._raw = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        self._gz = (
            gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0)
            if _is_gzip(self.path)
            else None
        )

    def _recover(self) -> None:
        good, good_end, torn = _scan(self.path, self.schema)
        self._ids = {record["id"] for _, record in good}
        if not torn:
            return
        logger.warning("%s: repairing a torn last line left by an interrupted run", self.path)
        if _is_gzip(self.path):
            write_manifest(self.path, [record for _, record in good])
            return
        with open(self.path, "r+b") as handle:
            handle.truncate(good_end)
            if good_end:
                handle.seek(good_end - 1)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    # ------------------------------------------------------------------ queries
    @property
    def ids(self) -> frozenset[str]:
        """Ids present in the manifest (resumed and written)."""
        return frozenset(self._ids)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def records(self) -> Iterator[dict]:
        """Stream every record now in the file (resumed and written), in file order."""
        if self._gz is not None and not self._gz.closed:
            self._gz.flush(zlib.Z_SYNC_FLUSH)
        self._raw.flush()
        return read_manifest(self.path, schema=self.schema)

    # ------------------------------------------------------------------ writing
    def write(self, record: dict) -> bool:
        """Append ``record`` unless its id is already present.

        Returns
        -------
        bool
            True if written, False if skipped (id present and ``updates`` is False).

        Raises
        ------
        ManifestError
            If ``record`` lacks ``id``/``schema`` or has another schema.
        ValueError
            If the writer is closed.
        """
        check_record(record, where=str(self.path), schema=self.schema)
        if self._raw.closed:
            raise ValueError(f"{self.path}: manifest writer is closed")
        if record["id"] in self._ids and not self.updates:
            return False
        line = _dump_line(record)
        if self._gz is not None:
            self._gz.write(line)
            self._gz.flush(zlib.Z_SYNC_FLUSH)
        else:
            self._raw.write(line)
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._ids.add(record["id"])
        return True

    def close(self) -> None:
        """Finish the gzip member (if any) and close the file."""
        if self._gz is not None and not self._gz.closed:
            self._gz.close()
        if not self._raw.closed:
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- scene records
def scene_audio_paths(data: CEC2Dataset, scene: str | Scene) -> dict[str, Path]:
    """Every signal file of a scene that exists: ``{"mix_CH1": path, ...}``.

    Keys are ``<kind>_CH<n>`` for kind in mix/target/interferer, channels 0..3, then
    ``target_anechoic_CH1``; in that order.
    """
    found: dict[str, Path] = {}
    for kind in ("mix", "target", "interferer"):
        for ch in ALL_CHANNELS:
            path = data.signal_path(scene, kind, ch)
            if path.is_file():
                found[f"{kind}_CH{ch}"] = path
    anechoic = data.target_anechoic_path(scene, ANECHOIC_CHANNEL)
    if anechoic.is_file():
        found[f"target_anechoic_CH{ANECHOIC_CHANNEL}"] = anechoic
    return found


def scene_record(
    data: CEC2Dataset,
    scene: str | Scene,
    *,
    dataset: str = "cec2",
    listeners: list[str] | None = None,
) -> dict[str, Any]:
    """The manifest record of one scene (schema ``clarity_se.scene/1``).

    Parameters
    ----------
    data : CEC2Dataset
        The dataset (paths are stored relative to ``data.root``, the ``{data_root}``).
    scene : str or Scene
        Scene id or record.
    dataset : str
        Dataset name stored in the record.
    listeners : list of str, optional
        The scene's listener ids (from ``scenes_listeners.<split>.json``), stored if given.

    Returns
    -------
    dict
        ``id``, ``schema``, ``dataset``, ``split``, ``sample_rate`` (Hz), ``num_samples`` and
        ``duration_s`` of the signal files (from their headers), ``scene_duration_s`` (the
        metadata ``duration``), ``room``, ``snr_db``, ``target`` / ``interferers`` (times in
        seconds), ``rotation`` (``time_s``, ``angle_deg``), ``hrir_filename``, optional
        ``listeners`` and ``audio`` ``{"mix_CH1": "clarity_data/dev/scenes/S06001_mix_CH1.wav",
        ...}`` relative to the data root.

    Raises
    ------
    AudioFileError
        A mixture file (CH1..CH3) is missing, a header is unreadable, or the files of the
        scene differ in sample rate, channel count or length (names the file and field).
    """
    scene = data.get_scene(scene)
    audio = scene_audio_paths(data, scene)
    for ch in MIX_CHANNELS:
        if f"mix_CH{ch}" not in audio:
            raise AudioFileError(f"{data.mix_path(scene, ch)}: file not found")
    first = data.mix_path(scene, MIX_CHANNELS[0])
    num_samples = -1
    for path in audio.values():
        info = audio_info(path)
        if info.samplerate != data.sample_rate:
            raise AudioFileError(
                f"{path}: sample_rate is {info.samplerate} Hz, expected {data.sample_rate} Hz"
            )
        if info.channels != 2:
            raise AudioFileError(f"{path}: channels is {info.channels}, expected 2")
        if num_samples < 0:
            num_samples, first = int(info.frames), path
        elif info.frames != num_samples:
            raise AudioFileError(
                f"{path}: num_samples is {info.frames} but {first} has {num_samples}"
            )
    sr = data.sample_rate
    record: dict[str, Any] = {
        "id": scene.scene,
        "schema": SCENE_SCHEMA,
        "dataset": dataset,
        "split": data.split,
        "sample_rate": sr,
        "num_samples": num_samples,
        "duration_s": num_samples / sr,
        "scene_duration_s": scene.duration_s,
        "room": scene.room,
        "snr_db": scene.snr_db,
        "target": {
            "name": scene.target.name,
            "time_start_s": scene.target.time_start_s,
            "time_end_s": scene.target.time_end_s,
        },
        "interferers": [
            {
                "position": i.position,
                "type": i.type,
                "name": i.name,
                "time_start_s": i.time_start_s,
                "time_end_s": i.time_end_s,
                "offset_s": i.offset_s,
            }
            for i in scene.interferers
        ],
        "rotation": [
            {"time_s": p.sample_s, "angle_deg": p.angle_deg} for p in scene.listener.rotation
        ],
        "hrir_filename": list(scene.listener.hrir_filename),
    }
    if listeners is not None:
        record["listeners"] = list(listeners)
    record["audio"] = {key: data.relative(path) for key, path in audio.items()}
    return record


def resolve_audio(record: dict, key: str, data_root: str | os.PathLike) -> Path:
    """Absolute path of ``record["audio"][key]`` under ``data_root``.

    Raises
    ------
    ManifestError
        If the record has no such audio entry (names the record and key).
    """
    audio = record.get("audio")
    if not isinstance(audio, dict) or key not in audio:
        raise ManifestError(f"record {record.get('id')!r}: no audio entry {key!r}")
    return Path(data_root) / audio[key]
