"""CEC2 scene records: ``scenes.<split>.json`` and ``scenes_listeners.<split>.json``.

The CEC2 metadata files are read and written unchanged at the boundary and converted to
validated, frozen records inside. One entry of ``scenes.dev.json`` (as written by pyclarity's
``clarity.data.scene_builder_cec2.SceneBuilder.save_scenes``, ``json.dump(indent=2)`` with
floats rounded to 4 decimals)::

    {"dataset": "dev", "room": "R06001", "scene": "S06001",
     "target": {"name": "T024_BMR_00659", "time_start": 78260, "time_end": 243635},
     "duration": 287735,
     "interferers": [{"position": 1, "time_start": 0, "time_end": 287735, "type": "speech",
                      "name": "scf_04310.wav", "offset": 31593565}, ...],
     "SNR": 2.5580,
     "listener": {"rotation": [{"sample": 90952.7142, "angle": -125.8235}, ...],
                  "hrir_filename": ["VP_E4-ED", "VP_E4-BTE_fr", "VP_E4-BTE_mid", "VP_E4-BTE_rear"]}}

Times are integer samples at 44100 Hz in the file (``time_start``, ``duration``, ``offset``,
rotation ``sample``); every record also exposes them in seconds (``time_start_s`` ...).
``scenes_listeners.<split>.json`` maps a scene id to its listener ids::

    {"S06001": ["L0064", "L0068", "L0008"], ...}
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

logger = logging.getLogger(__name__)

#: Sample rate (Hz) of every CEC2 signal and of the sample counts in the scene metadata.
CEC2_SAMPLE_RATE = 44100
#: Allowed ``interferers[].type`` values (pyclarity ``InterfererType``).
INTERFERER_TYPES = ("speech", "noise", "music")
#: Key order of a CEC2 scene entry (``SceneBuilder``), used when writing.
SCENE_KEYS = ("dataset", "room", "scene", "target", "duration", "interferers", "SNR", "listener")
_TARGET_KEYS = ("name", "time_start", "time_end")
_INTERFERER_KEYS = ("position", "time_start", "time_end", "type", "name", "offset")
_LISTENER_KEYS = ("rotation", "hrir_filename")
_ROTATION_KEYS = ("sample", "angle")


# --------------------------------------------------------------------------- field checks
def _int_field(where: str, name: str, value: Any, minimum: int | None = 0) -> int:
    """An integer (sample count); bools and floats are rejected."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{where}: {name} must be an integer number of samples, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value}")
    return value


def _real_field(where: str, name: str, value: Any) -> int | float:
    """A finite real number; ints stay ints (so a file round-trips unchanged)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{where}: {name} must be a number, got {value!r}")
    value = int(value) if isinstance(value, numbers.Integral) else float(value)
    if not math.isfinite(value):
        raise ValueError(f"{where}: {name} must be finite, got {value!r}")
    return value


def _str_field(where: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: {name} must be a non-empty string, got {value!r}")
    return value


def _check_keys(where: str, entry: Any, keys: Sequence[str], *, allow_extra: bool = False) -> None:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type(entry).__name__}")
    for key in keys:
        if key not in entry:
            raise ValueError(f"{where}: missing field {key!r}")
    if not allow_extra:
        unknown = [k for k in entry if k not in keys]
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown} (expected {list(keys)})")


def _seconds(samples: float) -> float:
    return samples / CEC2_SAMPLE_RATE


# --------------------------------------------------------------------------- records
_R = TypeVar("_R", bound="_IntervalRecord")


class _IntervalRecord:
    """Shared behaviour of the CEC2 objects with ``time_start``/``time_end`` in samples
    (``Target``, ``Interferer``): interval checks, seconds, and the JSON round trip over the
    class's ``_KEYS`` (the CEC2 key order). Subclasses are frozen dataclasses."""

    _KEYS: ClassVar[tuple[str, ...]] = ()
    _WHERE: ClassVar[str] = ""
    time_start: int
    time_end: int

    def _check_interval(self, where: str, *, allow_empty: bool) -> None:
        """Check and normalise ``time_start``/``time_end`` (``ValueError`` names ``where``)."""
        start = _int_field(where, "time_start", self.time_start)
        end = _int_field(where, "time_end", self.time_end)
        if end < start or (end == start and not allow_empty):
            relation = ">=" if allow_empty else ">"
            raise ValueError(f"{where}: time_end ({end}) must be {relation} time_start ({start})")
        object.__setattr__(self, "time_start", start)
        object.__setattr__(self, "time_end", end)

    @property
    def time_start_s(self) -> float:
        """Onset in seconds."""
        return _seconds(self.time_start)

    @property
    def time_end_s(self) -> float:
        """Offset in seconds."""
        return _seconds(self.time_end)

    @classmethod
    def from_dict(cls: type[_R], entry: Mapping[str, Any], *, where: str = "") -> _R:
        """Build from the CEC2 JSON object (``scene["target"]``, an ``scene["interferers"]``
        entry); raises ``ValueError`` naming ``where`` (default: the object's key) and the
        field."""
        where = where or cls._WHERE
        _check_keys(where, entry, cls._KEYS)
        try:
            return cls(**{k: entry[k] for k in cls._KEYS})
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The CEC2 JSON object (key order as in the CEC2 files)."""
        return {k: getattr(self, k) for k in self._KEYS}


@dataclass(frozen=True, kw_only=True)
class Target(_IntervalRecord):
    """The target talker of a scene (``scene["target"]``).

    Parameters
    ----------
    name : str
        Target utterance id (``"T024_BMR_00659"``; the file is ``<name>.wav``).
    time_start, time_end : int
        Onset and offset of the target in the scene, in samples at 44100 Hz;
        ``time_end > time_start >= 0``.

    Raises
    ------
    ValueError
        Naming ``Target`` and the bad field.

    References
    ----------
    pyclarity ``clarity.data.scene_builder_cec2.add_this_target_to_scene``.
    """

    name: str
    time_start: int
    time_end: int

    _KEYS: ClassVar[tuple[str, ...]] = _TARGET_KEYS
    _WHERE: ClassVar[str] = "target"

    def __post_init__(self) -> None:
        where = f"Target {self.name!r}"
        _str_field(where, "name", self.name)
        self._check_interval(where, allow_empty=False)


@dataclass(frozen=True, kw_only=True)
class Interferer(_IntervalRecord):
    """One interferer of a scene (an entry of ``scene["interferers"]``).

    Parameters
    ----------
    position : int
        1-based index of the interferer position in the room (``rooms.<split>.json``).
    time_start, time_end : int
        Interval of the scene the interferer plays in, samples at 44100 Hz;
        ``0 <= time_start <= time_end``.
    type : {"speech", "noise", "music"}
        Interferer class.
    name : str
        Masker file name (``"CIN_washing_013.wav"``).
    offset : int
        Sample in the masker file at which the excerpt starts (samples at 44100 Hz).

    Raises
    ------
    ValueError
        Naming ``Interferer`` and the bad field.

    References
    ----------
    pyclarity ``clarity.data.scene_builder_cec2.add_interferer_to_scene_inner``.
    """

    position: int
    time_start: int
    time_end: int
    type: str
    name: str
    offset: int

    _KEYS: ClassVar[tuple[str, ...]] = _INTERFERER_KEYS
    _WHERE: ClassVar[str] = "interferer"

    def __post_init__(self) -> None:
        where = f"Interferer {self.name!r}"
        _str_field(where, "name", self.name)
        object.__setattr__(self, "position", _int_field(where, "position", self.position, 1))
        self._check_interval(where, allow_empty=True)
        if self.type not in INTERFERER_TYPES:
            raise ValueError(f"{where}: type must be one of {INTERFERER_TYPES}, got {self.type!r}")
        object.__setattr__(self, "offset", _int_field(where, "offset", self.offset))

    @property
    def offset_s(self) -> float:
        """Start of the excerpt within the masker file, in seconds."""
        return _seconds(self.offset)


@dataclass(frozen=True, kw_only=True)
class RotationPoint:
    """A control point of the listener's head rotation (``listener["rotation"][i]``).

    Parameters
    ----------
    sample : int or float
        Time in samples at 44100 Hz (fractional in CEC2: ``target.time_start + uniform``).
    angle : float
        Head azimuth in degrees, room axes (pyclarity ``generate_rotation``).

    Raises
    ------
    ValueError
        If a value is not a finite number.
    """

    sample: float
    angle: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "sample", _real_field("RotationPoint", "sample", self.sample))
        object.__setattr__(self, "angle", _real_field("RotationPoint", "angle", self.angle))

    @property
    def sample_s(self) -> float:
        """Time of the control point in seconds."""
        return _seconds(self.sample)

    @property
    def angle_deg(self) -> float:
        """Alias of ``angle`` with its unit (degrees)."""
        return float(self.angle)

    def to_dict(self) -> dict[str, Any]:
        """The CEC2 ``{"sample": ..., "angle": ...}`` object."""
        return {"sample": self.sample, "angle": self.angle}


@dataclass(frozen=True, kw_only=True)
class SceneListenerInfo:
    """The listener behaviour of a scene (``scene["listener"]``): head turn and HRIR set.

    Parameters
    ----------
    rotation : sequence of RotationPoint (or dicts with ``sample``/``angle``)
        Head-rotation control points, at least one (two in CEC2: start and end of the turn).
    hrir_filename : sequence of str
        HRIR names, one per microphone pair, channel 0..3 in CEC2:
        ``["VP_E4-ED", "VP_E4-BTE_fr", "VP_E4-BTE_mid", "VP_E4-BTE_rear"]``.

    Raises
    ------
    ValueError
        Naming ``SceneListenerInfo`` and the bad field.

    References
    ----------
    pyclarity ``SceneBuilder.add_listener_details_to_scene``.
    """

    rotation: tuple[RotationPoint, ...]
    hrir_filename: tuple[str, ...]

    def __post_init__(self) -> None:
        where = "SceneListenerInfo"
        if isinstance(self.rotation, (str, bytes, Mapping)) or not isinstance(
            self.rotation, Iterable
        ):
            raise ValueError(f"{where}: rotation must be a list, got {self.rotation!r}")
        points = []
        for i, point in enumerate(self.rotation):
            if isinstance(point, Mapping):
                _check_keys(f"{where}: rotation[{i}]", point, _ROTATION_KEYS)
                try:
                    point = RotationPoint(sample=point["sample"], angle=point["angle"])
                except ValueError as exc:
                    raise ValueError(f"{where}: rotation[{i}]: {exc}") from None
            if not isinstance(point, RotationPoint):
                raise ValueError(f"{where}: rotation[{i}] must be a RotationPoint, got {point!r}")
            points.append(point)
        if not points:
            raise ValueError(f"{where}: rotation is empty")
        if isinstance(self.hrir_filename, (str, bytes)) or not isinstance(
            self.hrir_filename, Iterable
        ):
            raise ValueError(f"{where}: hrir_filename must be a list, got {self.hrir_filename!r}")
        names = tuple(self.hrir_filename)
        if not names:
            raise ValueError(f"{where}: hrir_filename is empty")
        for i, name in enumerate(names):
            _str_field(where, f"hrir_filename[{i}]", name)
        object.__setattr__(self, "rotation", tuple(points))
        object.__setattr__(self, "hrir_filename", names)

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any], *, where: str = "listener") -> SceneListenerInfo:
        """Build from ``scene["listener"]`` (``ValueError`` names ``where`` and the field)."""
        _check_keys(where, entry, _LISTENER_KEYS)
        try:
            return cls(rotation=entry["rotation"], hrir_filename=entry["hrir_filename"])
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The CEC2 ``scene["listener"]`` object."""
        return {
            "rotation": [p.to_dict() for p in self.rotation],
            "hrir_filename": list(self.hrir_filename),
        }


@dataclass(frozen=True, kw_only=True)
class Scene:
    """One CEC2 scene (an entry of ``scenes.<split>.json``), validated.

    Parameters
    ----------
    dataset : str
        Split the scene belongs to (``"train"``, ``"dev"``, ``"eval"``; the folder
        ``clarity_data/<dataset>/scenes``).
    room : str
        Room id (``"R06001"``), a key of ``rooms.<split>.json``.
    scene : str
        Scene id (``"S06001"``), the stem of every signal file of the scene.
    target : Target
        Target talker and its onset/offset (samples).
    duration : int
        Scene length in samples at 44100 Hz (> 0). Rendered CEC2 signals are longer by the
        HRIR length minus one (full convolution in pyclarity's ``binaural_mixdown``).
    interferers : sequence of Interferer
        The interferers (2 or 3 in CEC2), distinct positions.
    snr_db : float
        Better-ear speech-weighted SNR of the mixture in dB (file key ``"SNR"``).
    listener : SceneListenerInfo
        Head rotation and HRIR names.
    extra : mapping, optional
        Unknown top-level keys of the file entry, kept (with their file position) so that a
        file round-trips unchanged. Copied into a plain dict; treat it as read-only.

    Raises
    ------
    ValueError
        Naming the scene id and the bad field, e.g. a target ending after ``duration``.

    References
    ----------
    pyclarity ``clarity.data.scene_builder_cec2.SceneBuilder`` (writer of the format).
    """

    dataset: str
    room: str
    scene: str
    target: Target
    duration: int
    interferers: tuple[Interferer, ...]
    snr_db: float
    listener: SceneListenerInfo
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        where = f"Scene {self.scene!r}"
        _str_field("Scene", "scene", self.scene)
        _str_field(where, "dataset", self.dataset)
        _str_field(where, "room", self.room)
        duration = _int_field(where, "duration", self.duration, 1)
        object.__setattr__(self, "duration", duration)
        if not isinstance(self.target, Target):
            raise ValueError(f"{where}: target must be a Target, got {type(self.target).__name__}")
        if self.target.time_end > duration:
            raise ValueError(
                f"{where}: target.time_end ({self.target.time_end}) is after duration ({duration})"
            )
        if isinstance(self.interferers, (str, bytes, Mapping)) or not isinstance(
            self.interferers, Iterable
        ):
            raise ValueError(f"{where}: interferers must be a list, got {self.interferers!r}")
        interferers = tuple(self.interferers)
        positions = set()
        for i, interferer in enumerate(interferers):
            if not isinstance(interferer, Interferer):
                raise ValueError(f"{where}: interferers[{i}] must be an Interferer")
            if interferer.time_end > duration:
                raise ValueError(
                    f"{where}: interferers[{i}].time_end ({interferer.time_end}) is after "
                    f"duration ({duration})"
                )
            if interferer.position in positions:
                raise ValueError(
                    f"{where}: interferers[{i}].position {interferer.position} is used twice"
                )
            positions.add(interferer.position)
        object.__setattr__(self, "interferers", interferers)
        object.__setattr__(self, "snr_db", _real_field(where, "SNR", self.snr_db))
        if not isinstance(self.listener, SceneListenerInfo):
            raise ValueError(
                f"{where}: listener must be a SceneListenerInfo, got {type(self.listener).__name__}"
            )
        if not isinstance(self.extra, Mapping):
            raise ValueError(f"{where}: extra must be a mapping")
        clash = [k for k in self.extra if k in SCENE_KEYS]
        if clash:
            raise ValueError(f"{where}: extra repeats CEC2 field(s) {clash}")
        object.__setattr__(self, "extra", dict(self.extra))

    # ------------------------------------------------------------------ derived values
    @property
    def id(self) -> str:
        """Scene id (same as ``scene``)."""
        return self.scene

    @property
    def sample_rate(self) -> int:
        """Sample rate of the sample counts, Hz (always 44100 in CEC2)."""
        return CEC2_SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        """Scene duration in seconds."""
        return _seconds(self.duration)

    # ------------------------------------------------------------------ (de)serialisation
    @classmethod
    def from_dict(cls, entry: Mapping[str, Any], *, source: str = "scenes.json") -> Scene:
        """Build from one CEC2 ``scenes.<split>.json`` entry.

        Parameters
        ----------
        entry : mapping
            The parsed JSON object.
        source : str
            File name used in error messages.

        Raises
        ------
        ValueError
            ``"<source>: scene 'S06001': <field>: <problem>"`` for a missing, unknown-type or
            out-of-range field.
        """
        if not isinstance(entry, Mapping):
            raise ValueError(f"{source}: scene entry must be an object, got {type(entry).__name__}")
        scene_id = entry.get("scene", "?")
        where = f"{source}: scene {scene_id!r}"
        _check_keys(where, entry, SCENE_KEYS, allow_extra=True)
        try:
            target = Target.from_dict(entry["target"], where="target")
            raw_interferers = entry["interferers"]
            if not isinstance(raw_interferers, list):
                raise ValueError(f"interferers must be a list, got {raw_interferers!r}")
            interferers = tuple(
                Interferer.from_dict(item, where=f"interferers[{i}]")
                for i, item in enumerate(raw_interferers)
            )
            listener = SceneListenerInfo.from_dict(entry["listener"], where="listener")
            extra = {k: v for k, v in entry.items() if k not in SCENE_KEYS}
            return cls(
                dataset=entry["dataset"],
                room=entry["room"],
                scene=entry["scene"],
                target=target,
                duration=entry["duration"],
                interferers=interferers,
                snr_db=entry["SNR"],
                listener=listener,
                extra=extra,
                _key_order=tuple(entry.keys()) if extra else (),
            )
        except ValueError as exc:
            message = str(exc).removeprefix(f"Scene {scene_id!r}: ")
            raise ValueError(f"{where}: {message}") from None

    def to_dict(self) -> dict[str, Any]:
        """The CEC2 ``scenes.<split>.json`` entry (CEC2 key order; extra keys where they were)."""
        known = {
            "dataset": self.dataset,
            "room": self.room,
            "scene": self.scene,
            "target": self.target.to_dict(),
            "duration": self.duration,
            "interferers": [i.to_dict() for i in self.interferers],
            "SNR": self.snr_db,
            "listener": self.listener.to_dict(),
        }
        if not self.extra:
            return known
        merged = {**known, **self.extra}
        order = [k for k in self._key_order if k in merged]
        order += [k for k in merged if k not in order]
        return {k: merged[k] for k in order}


# --------------------------------------------------------------------------- JSON I/O
def _format_float(value: float) -> str:
    """CEC2 float style: 4 decimals (pyclarity's ``RoundingFloat``) unless that loses digits."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"cannot write non-finite number {value!r} to CEC2 JSON")
    if round(value, 4) == value:
        return format(value, ".4f")
    return repr(value)


def dumps_cec2_json(obj: Any, *, indent: int = 2) -> str:
    """Serialise like ``json.dump(obj, indent=indent)`` of the CEC2 builder.

    Same layout and escaping as Python's ``json`` with ``indent`` (separators ``", "`` /
    ``": "``, ASCII escapes, no trailing newline), except floats: written with 4 decimals
    as pyclarity's ``RoundingFloat`` (``2.5580``, ``-0.0000``) when that is exact, else
    with ``repr`` (lossless). Ints stay ints.

    Raises
    ------
    ValueError
        For NaN/Inf or an object JSON cannot represent.

    Examples
    --------
    >>> print(dumps_cec2_json({"SNR": 2.558, "sample": 0, "angle": 1.23456789}))
    {
      "SNR": 2.5580,
      "sample": 0,
      "angle": 1.23456789
    }
    """

    def encode(value: Any, level: int) -> str:
        if value is None or isinstance(value, bool):
            return json.dumps(value)
        if isinstance(value, str):
            return json.dumps(value)
        if isinstance(value, numbers.Integral):
            return str(int(value))
        if isinstance(value, numbers.Real):
            return _format_float(float(value))
        inner = "\n" + " " * (indent * (level + 1))
        outer = "\n" + " " * (indent * level)
        if isinstance(value, Mapping):
            if not value:
                return "{}"
            items = [f"{json.dumps(str(k))}: {encode(v, level + 1)}" for k, v in value.items()]
            return "{" + inner + ("," + inner).join(items) + outer + "}"
        if isinstance(value, (list, tuple)):
            if not value:
                return "[]"
            items = [encode(v, level + 1) for v in value]
            return "[" + inner + ("," + inner).join(items) + outer + "]"
        raise ValueError(f"cannot write {type(value).__name__} to CEC2 JSON")

    return encode(obj, 0)


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise ValueError(f"{path}: {what} file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc})") from None


def load_scenes(path: str | os.PathLike) -> list[Scene]:
    """Read a CEC2 ``scenes.<split>.json`` (a JSON list of scene objects).

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    list of Scene
        In file order.

    Raises
    ------
    ValueError
        Missing file, invalid JSON, not a list, a bad entry (names file, scene id and field)
        or a scene id used twice.
    """
    path = Path(path)
    raw = _read_json(path, "scenes")
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a JSON list of scenes, got {type(raw).__name__}")
    scenes: list[Scene] = []
    seen: set[str] = set()
    for entry in raw:
        scene = Scene.from_dict(entry, source=str(path))
        if scene.scene in seen:
            raise ValueError(f"{path}: scene {scene.scene!r}: scene id appears twice")
        seen.add(scene.scene)
        scenes.append(scene)
    return scenes


def save_scenes(path: str | os.PathLike, scenes: Iterable[Scene], *, indent: int = 2) -> Path:
    """Write a CEC2 ``scenes.<split>.json`` atomically.

    The layout is the CEC2 one (``json.dump(indent=2)``, 4-decimal floats, no trailing
    newline), so ``save_scenes(p, load_scenes(q))`` reproduces a CEC2 file byte for byte
    (modulo indentation if the source used another indent).

    Raises
    ------
    ValueError
        If an item is not a ``Scene`` or a scene id appears twice.
    """
    from clarity_se.data.audio_io import atomic_write_text

    items = list(scenes)
    seen: set[str] = set()
    for i, scene in enumerate(items):
        if not isinstance(scene, Scene):
            raise ValueError(f"{path}: scenes[{i}] is a {type(scene).__name__}, not a Scene")
        if scene.scene in seen:
            raise ValueError(f"{path}: scene {scene.scene!r}: scene id appears twice")
        seen.add(scene.scene)
    return atomic_write_text(path, dumps_cec2_json([s.to_dict() for s in items], indent=indent))


def read_scenes_listeners(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read ``scenes_listeners.<split>.json``: ``{scene_id: [listener_id, ...]}`` in file order.

    Raises
    ------
    ValueError
        Missing file, invalid JSON, not an object of lists of non-empty strings, or a listener
        repeated within a scene (names file, scene and field).
    """
    path = Path(path)
    raw = _read_json(path, "scenes_listeners")
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected an object mapping scene id to listener ids")
    out: dict[str, list[str]] = {}
    for scene_id, listeners in raw.items():
        if not scene_id:
            raise ValueError(f"{path}: empty scene id")
        if not isinstance(listeners, list):
            raise ValueError(f"{path}: scene {scene_id!r}: listeners must be a list")
        for i, name in enumerate(listeners):
            if not isinstance(name, str) or not name:
                raise ValueError(
                    f"{path}: scene {scene_id!r}: listeners[{i}] must be a non-empty string, "
                    f"got {name!r}"
                )
        if len(set(listeners)) != len(listeners):
            raise ValueError(f"{path}: scene {scene_id!r}: a listener id is repeated")
        out[scene_id] = list(listeners)
    return out


def make_scene_listener_list(
    scenes_listeners: Mapping[str, Sequence[str]], small_test: bool = False
) -> list[tuple[str, str]]:
    """The (scene, listener) pairs to process, exactly as the official recipe.

    Parameters
    ----------
    scenes_listeners : mapping
        ``{scene_id: [listener_id, ...]}`` (``scenes_listeners.<split>.json``).
    small_test : bool
        Keep every 15th pair (``pairs[::15]``), the official ``evaluate.small_test``.

    Returns
    -------
    list of (str, str)
        In file order: scenes in key order, listeners in list order.

    References
    ----------
    pyclarity ``recipes.icassp_2023.baseline.evaluate.make_scene_listener_list``.

    Examples
    --------
    >>> pairs = {"S06001": ["L0064", "L0068"], "S06002": ["L0044"]}
    >>> make_scene_listener_list(pairs)
    [('S06001', 'L0064'), ('S06001', 'L0068'), ('S06002', 'L0044')]
    >>> make_scene_listener_list(pairs, small_test=True)
    [('S06001', 'L0064')]
    """
    pairs = [
        (scene, listener) for scene in scenes_listeners for listener in scenes_listeners[scene]
    ]
    if small_test:
        pairs = pairs[::15]
    return pairs


def load_scenes_listeners(
    path: str | os.PathLike, *, small_test: bool = False
) -> list[tuple[str, str]]:
    """Read ``scenes_listeners.<split>.json`` as (scene, listener) pairs in file order.

    ``small_test=True`` keeps every 15th pair as the official recipe
    (:func:`make_scene_listener_list`).

    Raises
    ------
    ValueError
        See :func:`read_scenes_listeners`.
    """
    return make_scene_listener_list(read_scenes_listeners(path), small_test)


def save_scenes_listeners(
    path: str | os.PathLike, scenes_listeners: Mapping[str, Sequence[str]], *, indent: int = 2
) -> Path:
    """Write ``scenes_listeners.<split>.json`` atomically (CEC2 layout, indent 2).

    Raises
    ------
    ValueError
        If a listener list is not a list of non-empty strings.
    """
    from clarity_se.data.audio_io import atomic_write_text

    payload: dict[str, list[str]] = {}
    for scene_id, listeners in scenes_listeners.items():
        if isinstance(listeners, str) or any(not isinstance(x, str) or not x for x in listeners):
            raise ValueError(f"{path}: scene {scene_id!r}: listeners must be non-empty strings")
        payload[str(scene_id)] = list(listeners)
    return atomic_write_text(path, dumps_cec2_json(payload, indent=indent))
