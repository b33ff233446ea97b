"""``clarity-se validate ROOT``: check a CEC2-layout dataset and list every problem.

Cheap by default (seconds for the whole CEC2 dev set): every metadata file is parsed and every
field of every record validated (:class:`~clarity_se.data.scene.Scene`,
:class:`~clarity_se.data.audiogram.Listener`, ``scenes_listeners``), every expected signal
file must exist, and its header must say 44100 Hz, 2 channels and a ``data`` chunk that the
file really holds (a WAV cut short, e.g. by ``truncate``, is reported: libsndfile silently
shortens such files). With ``--read-audio`` every file is also decoded completely.

Expected files per scene (``clarity_data/<split>/scenes/<scene>_...``):

- always: ``mix_CH1``, ``mix_CH2``, ``mix_CH3`` (the enhancer's input), ``target_CH1`` and
  ``target_anechoic_CH1`` (the ICASSP 2023 ``evaluate.py`` reads both: the anechoic reference
  rescaled to the RMS of ``target_CH1``); with ``--mix-only`` the three mixtures only (e.g. an
  eval set);
- ``mix_CH0``, ``target_CH0/2/3`` and ``interferer_CH0..3`` when the split provides them, i.e.
  when that file exists for at least one scene of the split; then it is required for all.

Within a scene all files must have the same length, at least the metadata ``duration``. When
``rooms.<split>.json`` exists, every scene's room must be in it and every interferer position
must be one of the room's. ``--read-audio`` also rejects NaN/Inf samples (float WAVs).

Every problem is printed as one line ``<file>: <field>: <problem>`` (exit status 1); with none,
a summary is printed (exit status 0).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clarity_se.data.audio_io import AudioFileError, read_audio
from clarity_se.data.audiogram import Listener
from clarity_se.data.cec2 import ALL_CHANNELS, ANECHOIC_CHANNEL, MIX_CHANNELS, CEC2Dataset
from clarity_se.data.problems import ProblemReport, check_wav_header
from clarity_se.data.scene import CEC2_SAMPLE_RATE, Scene

logger = logging.getLogger(__name__)

#: Files the ICASSP 2023 recipe needs for every scene.
REQUIRED_SIGNALS = (
    *(f"mix_CH{ch}" for ch in MIX_CHANNELS),
    "target_CH1",
    f"target_anechoic_CH{ANECHOIC_CHANNEL}",
)
#: Files required only when the split provides them.
OPTIONAL_SIGNALS = tuple(
    f"{kind}_CH{ch}"
    for kind in ("mix", "target", "interferer")
    for ch in ALL_CHANNELS
    if f"{kind}_CH{ch}" not in REQUIRED_SIGNALS
)


@dataclass
class ValidationReport(ProblemReport):
    """Result of :func:`validate_dataset`: the problems (:class:`ProblemReport`) and what was
    checked."""

    splits: list[str] = field(default_factory=list)
    n_scenes: int = 0
    n_pairs: int = 0
    n_listeners: int = 0
    n_files: int = 0

    def summary(self) -> str:
        """One-line summary."""
        status = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        return (
            f"validate: {status}: splits {', '.join(self.splits) or '-'}; {self.n_scenes} scenes, "
            f"{self.n_pairs} scene-listener pairs, {self.n_listeners} listeners, "
            f"{self.n_files} audio files ({self.mode})"
        )


# --------------------------------------------------------------------------- metadata checks
def _load_json(path: Path, report: ValidationReport, what: str) -> object | None:
    if not path.is_file():
        report.add(path, "", f"missing {what} file")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        report.add(path, "", f"not valid JSON ({exc})")
        return None


def _check_scenes(data: CEC2Dataset, report: ValidationReport) -> tuple[list[Scene], set[str]]:
    """Valid scenes, and every scene id named in the file (valid or not)."""
    raw = _load_json(data.scenes_file, report, "scenes")
    if raw is None:
        return [], set()
    if not isinstance(raw, list):
        report.add(
            data.scenes_file, "", f"expected a JSON list of scenes, got {type(raw).__name__}"
        )
        return [], set()
    named = {e["scene"] for e in raw if isinstance(e, dict) and isinstance(e.get("scene"), str)}
    scenes: list[Scene] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        try:
            scene = Scene.from_dict(entry, source=str(data.scenes_file))
        except ValueError as exc:
            message = str(exc)
            prefix = f"{data.scenes_file}: "
            report.problems.append(
                message if message.startswith(prefix) else f"{prefix}[{i}]: {message}"
            )
            continue
        if scene.scene in seen:
            report.add(data.scenes_file, f"scene {scene.scene!r}", "scene id appears twice")
            continue
        seen.add(scene.scene)
        scenes.append(scene)
    return scenes, named


def _check_listeners(data: CEC2Dataset, report: ValidationReport) -> set[str]:
    raw = _load_json(data.listeners_file, report, "listeners")
    if raw is None:
        return set()
    if not isinstance(raw, dict):
        report.add(data.listeners_file, "", "expected an object keyed by listener id")
        return set()
    names = set()
    for key, entry in raw.items():
        try:
            listener = Listener.from_dict(entry, source=str(data.listeners_file))
        except ValueError as exc:
            report.problems.append(str(exc))
            continue
        if listener.name != key:
            report.add(data.listeners_file, f"listener {key!r}", f"name is {listener.name!r}")
            continue
        names.add(key)
    return names


def _check_scenes_listeners(
    data: CEC2Dataset,
    scene_ids: set[str],
    listener_ids: set[str] | None,
    report: ValidationReport,
) -> int:
    path = data.scenes_listeners_file
    if not path.is_file():
        if data.split == "train":
            logger.info("%s: absent (normal for a training split)", path)
        else:
            report.add(path, "", "missing scenes_listeners file")
        return 0
    raw = _load_json(path, report, "scenes_listeners")
    if raw is None:
        return 0
    if not isinstance(raw, dict):
        report.add(path, "", "expected an object mapping scene id to listener ids")
        return 0
    n_pairs = 0
    for scene_id, listeners in raw.items():
        where = f"scene {scene_id!r}"
        if scene_id not in scene_ids:
            report.add(path, where, f"scene is not in {data.scenes_file.name}")
        if not isinstance(listeners, list):
            report.add(path, where, f"listeners must be a list, got {listeners!r}")
            continue
        for i, name in enumerate(listeners):
            if not isinstance(name, str) or not name:
                report.add(path, f"{where}: listeners[{i}]", f"must be a listener id, got {name!r}")
            elif listener_ids is not None and name not in listener_ids:
                report.add(
                    path, f"{where}: listeners[{i}]", f"listener {name!r} is not in listeners.json"
                )
            else:
                n_pairs += 1
        if len(set(map(str, listeners))) != len(listeners):
            report.add(path, where, "a listener id is repeated")
    return n_pairs


def _check_rooms(data: CEC2Dataset, scenes: list[Scene], report: ValidationReport) -> None:
    """If ``rooms.<split>.json`` exists: every scene's room is in it and every interferer
    ``position`` indexes one of the room's interferer positions (1-based)."""
    path = data.rooms_file
    if not path.is_file():
        return
    raw = _load_json(path, report, "rooms")
    if raw is None:
        return
    if not isinstance(raw, list):
        report.add(path, "", "expected a JSON list of rooms")
        return
    n_positions: dict[str, int] = {}
    for i, room in enumerate(raw):
        name = room.get("name") if isinstance(room, dict) else None
        if not isinstance(name, str) or not name:
            report.add(path, f"rooms[{i}]", "field 'name' must be a non-empty string")
            continue
        interferers = room.get("interferers")
        if not isinstance(interferers, list):
            report.add(path, f"room {name!r}", "field 'interferers' must be a list")
            continue
        n_positions[name] = len(interferers)
    for scene in scenes:
        if scene.room not in n_positions:
            report.add(
                data.scenes_file,
                f"scene {scene.scene!r}: room",
                f"{scene.room!r} is not in {path.name}",
            )
            continue
        for k, interferer in enumerate(scene.interferers):
            if interferer.position > n_positions[scene.room]:
                report.add(
                    data.scenes_file,
                    f"scene {scene.scene!r}: interferers[{k}].position",
                    f"{interferer.position} but room {scene.room!r} has "
                    f"{n_positions[scene.room]} interferer positions",
                )


# --------------------------------------------------------------------------- audio checks
def expected_signals(
    data: CEC2Dataset, scenes: list[Scene], *, mix_only: bool = False
) -> tuple[str, ...]:
    """Signal keys (``"mix_CH1"``...) required for every scene of the split.

    The required set plus every optional kind that exists for at least one scene (one
    directory listing, no per-file stat).
    """
    required = tuple(f"mix_CH{ch}" for ch in MIX_CHANNELS) if mix_only else REQUIRED_SIGNALS
    try:
        names = set(os.listdir(data.scenes_dir))
    except OSError:
        return required
    ids = {s.scene for s in scenes}
    present = set()
    for name in names:
        stem, dot, ext = name.partition(".")
        scene_id, _, key = stem.partition("_")
        if dot and ext == "wav" and scene_id in ids:
            present.add(key)
    optional = [k for k in OPTIONAL_SIGNALS if k in present]
    if mix_only:
        optional += [k for k in REQUIRED_SIGNALS if k in present and k not in required]
    return required + tuple(optional)


def _signal_path(data: CEC2Dataset, scene: Scene, key: str) -> Path:
    kind, _, ch = key.rpartition("_CH")
    return data.signal_path(scene, kind, int(ch))


def _check_file(path: Path, report: ValidationReport, read_audio_data: bool) -> int | None:
    """Check one signal file; return its length in frames if it could be determined."""
    if not path.is_file():
        report.add(path, "file", "missing")
        return None
    checked = check_wav_header(path, report, sample_rate=CEC2_SAMPLE_RATE, channels=2)
    if checked is None:
        return None
    info, declared, ok = checked
    frames = int(info.frames)
    if read_audio_data and ok:
        try:
            samples, _ = read_audio(path, dtype="float32")
        except AudioFileError as exc:
            report.add(path, "data", str(exc).removeprefix(f"{path}: "))
            return None
        if not np.all(np.isfinite(samples)):
            report.add(path, "data", "contains NaN or Inf samples")
            return None
        read_frames = samples.shape[0]
        expected = declared[0] if declared is not None else info.frames
        if read_frames != expected:
            report.add(
                path,
                "num_samples",
                f"truncated: header declares {expected} frames, read {read_frames}",
            )
            return None
    return frames


def _check_scene_audio(
    data: CEC2Dataset, scene: Scene, keys: tuple[str, ...], report: ValidationReport, read: bool
) -> None:
    lengths: dict[Path, int] = {}
    for key in keys:
        path = _signal_path(data, scene, key)
        report.n_files += 1
        frames = _check_file(path, report, read)
        if frames is not None:
            lengths[path] = frames
    if not lengths:
        return
    reference_path, reference = next(iter(lengths.items()))
    for path, frames in lengths.items():
        if frames != reference:
            report.add(
                path, "num_samples", f"is {frames} but {reference_path.name} has {reference}"
            )
        elif frames < scene.duration:
            report.add(
                path,
                "num_samples",
                f"is {frames}, shorter than the scene duration {scene.duration}",
            )


def validate_split(
    data: CEC2Dataset,
    report: ValidationReport,
    *,
    read_audio_data: bool = False,
    mix_only: bool = False,
    listener_ids: set[str] | None = None,
) -> None:
    """Validate one split into ``report`` (metadata, then every scene's files)."""
    from tqdm import tqdm

    scenes, named = _check_scenes(data, report)
    report.n_scenes += len(scenes)
    report.n_pairs += _check_scenes_listeners(data, named, listener_ids, report)
    _check_rooms(data, scenes, report)
    if not data.scenes_dir.is_dir():
        report.add(data.scenes_dir, "", "missing scenes folder")
        return
    keys = expected_signals(data, scenes, mix_only=mix_only)
    logger.info("%s: expecting %s per scene", data.split, ", ".join(keys))
    for scene in tqdm(scenes, desc=f"validate {data.split}", unit="scene", disable=None):
        _check_scene_audio(data, scene, keys, report, read_audio_data)


def available_splits(root: str | os.PathLike) -> list[str]:
    """Splits with a ``metadata/scenes.<split>.json`` file, sorted."""
    meta = Path(root) / "clarity_data" / "metadata"
    if not meta.is_dir():
        return []
    splits = []
    for path in meta.glob("scenes.*.json"):
        split = path.name[len("scenes.") : -len(".json")]
        if split and "." not in split:
            splits.append(split)
    return sorted(splits)


def validate_dataset(
    root: str | os.PathLike,
    splits: list[str] | None = None,
    *,
    read_audio_data: bool = False,
    mix_only: bool = False,
) -> ValidationReport:
    """Validate a CEC2-layout dataset and collect every problem.

    Parameters
    ----------
    root : path-like
        Folder holding ``clarity_data/``.
    splits : list of str, optional
        Splits to check; default every split with a ``scenes.<split>.json``.
    read_audio_data : bool
        Decode every file completely (slow) in addition to the header checks.
    mix_only : bool
        Require only the mixtures (CH1..CH3) per scene, e.g. for an eval set.

    Returns
    -------
    ValidationReport
        ``problems`` (one line each, naming the file and field) and counts.
    """
    report = ValidationReport(read_audio=read_audio_data)
    root = Path(root)
    if not (root / "clarity_data").is_dir():
        report.add(root / "clarity_data", "", "missing folder (ROOT must hold clarity_data/)")
        return report
    splits = list(splits) if splits else available_splits(root)
    if not splits:
        report.add(root / "clarity_data" / "metadata", "", "no scenes.<split>.json found")
        return report
    report.splits = splits
    first = CEC2Dataset(root, splits[0])
    listener_ids = _check_listeners(first, report)
    report.n_listeners = len(listener_ids)
    listeners_ok = first.listeners_file.is_file()
    for split in splits:
        validate_split(
            CEC2Dataset(root, split),
            report,
            read_audio_data=read_audio_data,
            mix_only=mix_only,
            listener_ids=listener_ids if listeners_ok else None,
        )
    return report


# --------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clarity-se validate``."""
    parser.add_argument(
        "root",
        help="dataset root (the folder holding clarity_data/), or an AEC Challenge folder "
        "(synthetic: meta.csv + nearend_mic_signal/; real: *_mic.wav + *_lpb.wav)",
    )
    parser.add_argument(
        "--split",
        nargs="+",
        default=None,
        help="split(s) to check (default: every metadata/scenes.<split>.json)",
    )
    parser.add_argument(
        "--read-audio",
        action="store_true",
        help="decode every audio file completely (slow), not only the headers",
    )
    parser.add_argument(
        "--mix-only",
        action="store_true",
        help="require only mix_CH1..3 per scene (data without reference signals)",
    )


def main(args: argparse.Namespace) -> int:
    """Run ``clarity-se validate``: print each problem on one line; exit 1 if any.

    A ROOT in an AEC Challenge layout (synthetic or real) is checked by
    :func:`clarity_se.data.validate_aec.validate_aec_dataset` instead.
    """
    from clarity_se.data.aec_challenge import detect_layout

    if not (Path(args.root) / "clarity_data").is_dir() and detect_layout(args.root) is not None:
        from clarity_se.data.validate_aec import validate_aec_dataset

        report = validate_aec_dataset(args.root, read_audio_data=args.read_audio)
    else:
        report = validate_dataset(
            args.root, args.split, read_audio_data=args.read_audio, mix_only=args.mix_only
        )
    for line in report.problems:
        print(line)
    print(report.summary())
    return 0 if report.ok else 1
