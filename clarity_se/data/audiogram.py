"""Audiograms and listeners, in the CEC2 ``listeners.json`` format.

A listener entry in ``listeners.json`` is read and written unchanged::

    {"name": "L0001", "audiogram_cfs": [250, 500, ...],
     "audiogram_levels_l": [...], "audiogram_levels_r": [...]}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: The eight centre frequencies (Hz) of the CEC2 audiograms.
CLARITY_AUDIOGRAM_CFS_HZ = (250, 500, 1000, 2000, 3000, 4000, 6000, 8000)
#: dB HL: the range of a clinical audiometer; levels outside it are data errors.
AUDIOMETER_RANGE_DB_HL = (-20.0, 120.0)
#: Hz: the six audiometric frequencies of the ear model, HASPI, HASQI and NAL-R (Kates 2013;
#: Byrne & Dillon 1986).
AUDIOMETRIC_FREQUENCIES_HZ = (250, 500, 1000, 2000, 4000, 6000)


def _check_numbers(where: str, field_name: str, values) -> None:
    """Refuse strings and booleans hidden in a list of levels or frequencies (numpy would
    parse ``"30"`` silently)."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "iuf":
            raise ValueError(f"{where}: {field_name} must be numbers, got dtype {values.dtype}")
        return
    items = values if isinstance(values, (list, tuple)) else [values]
    for item in items:
        if isinstance(item, (bool, str, bytes)) or not isinstance(item, (int, float, np.number)):
            raise ValueError(f"{where}: {field_name} must be numbers, got {item!r}")


@dataclass(frozen=True)
class Audiogram:
    """A monaural pure-tone audiogram.

    Parameters
    ----------
    frequencies_hz : array-like [shape=(n,)]
        Centre frequencies in Hz, strictly increasing and positive.
    levels_db_hl : array-like [shape=(n,)]
        Hearing threshold levels in dB HL, numbers within the audiometer range
        :data:`AUDIOMETER_RANGE_DB_HL` (-20 to 120 dB HL).

    Raises
    ------
    ValueError
        If lengths differ, frequencies are not strictly increasing/unique/positive, a value is
        not a finite number (strings are refused, not parsed), or a level is outside the
        audiometer range. The message names ``Audiogram`` and the field.

    Notes
    -----
    Same semantics as pyclarity's ``clarity.utils.audiogram.Audiogram`` (resampling by linear
    interpolation on a log-frequency axis, held constant beyond the ends).
    """

    frequencies_hz: np.ndarray
    levels_db_hl: np.ndarray
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        where = f"Audiogram{' ' + repr(self.name) if self.name else ''}"
        for field_name, values in (("frequencies_hz", self.frequencies_hz),
                                   ("levels_db_hl", self.levels_db_hl)):  # fmt: skip
            _check_numbers(where, field_name, values)
        try:
            freqs = np.asarray(self.frequencies_hz, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: frequencies_hz must be numbers") from None
        try:
            levels = np.asarray(self.levels_db_hl, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: levels_db_hl must be numbers") from None
        if freqs.size == 0:
            raise ValueError(f"{where}: frequencies_hz is empty")
        if freqs.shape != levels.shape:
            raise ValueError(
                f"{where}: frequencies_hz has {freqs.size} values "
                f"but levels_db_hl has {levels.size}"
            )
        if not np.all(np.isfinite(freqs)) or np.any(freqs <= 0):
            raise ValueError(f"{where}: frequencies_hz must be finite and positive")
        if np.unique(freqs).size != freqs.size:
            raise ValueError(f"{where}: frequencies_hz must be unique")
        if np.any(np.diff(freqs) <= 0):
            raise ValueError(f"{where}: frequencies_hz must be in ascending order")
        if not np.all(np.isfinite(levels)):
            raise ValueError(f"{where}: levels_db_hl must be finite")
        low, high = AUDIOMETER_RANGE_DB_HL
        if np.any(levels < low) or np.any(levels > high):
            bad = levels[(levels < low) | (levels > high)]
            raise ValueError(
                f"{where}: levels_db_hl {bad.tolist()} outside the audiometer range "
                f"{low:g} to {high:g} dB HL"
            )
        freqs.setflags(write=False)
        levels.setflags(write=False)
        object.__setattr__(self, "frequencies_hz", freqs)
        object.__setattr__(self, "levels_db_hl", levels)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Audiogram):
            return NotImplemented
        return bool(
            np.array_equal(self.frequencies_hz, other.frequencies_hz)
            and np.array_equal(self.levels_db_hl, other.levels_db_hl)
        )

    def __hash__(self) -> int:
        return hash((self.frequencies_hz.tobytes(), self.levels_db_hl.tobytes()))

    def resample(self, frequencies_hz: np.ndarray, *, linear_frequency: bool = False) -> Audiogram:
        """Interpolate the audiogram onto new centre frequencies.

        Parameters
        ----------
        frequencies_hz : array-like [shape=(m,)]
            New centre frequencies in Hz.
        linear_frequency : bool
            Interpolate on a linear instead of a log-frequency axis.

        Returns
        -------
        Audiogram
            Levels in dB HL at ``frequencies_hz``; held at the end values outside the measured
            range (``np.interp`` with ``left``/``right``), as pyclarity's ``Audiogram.resample``.
        """
        new = np.asarray(frequencies_hz, dtype=np.float64)
        axis = (lambda x: x) if linear_frequency else np.log
        levels = np.interp(
            axis(new),
            axis(self.frequencies_hz),
            self.levels_db_hl,
            left=self.levels_db_hl[0],
            right=self.levels_db_hl[-1],
        )
        return Audiogram(new, levels, name=self.name)

    def has_frequencies(self, frequencies_hz: np.ndarray) -> bool:
        """True if every frequency in ``frequencies_hz`` (Hz) is measured in this audiogram."""
        return bool(np.all(np.isin(np.asarray(frequencies_hz, float), self.frequencies_hz)))


@dataclass(frozen=True)
class Listener:
    """A listener: left and right audiograms, as one ``listeners.json`` entry.

    Parameters
    ----------
    name : str
        Listener id (``"L0001"``).
    audiogram_left, audiogram_right : Audiogram
        Same centre frequencies for both ears (the CEC2 format stores one ``audiogram_cfs``).

    Raises
    ------
    ValueError
        If the name is empty or the ears' frequencies differ.
    """

    name: str
    audiogram_left: Audiogram
    audiogram_right: Audiogram

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Listener: name must be a non-empty string, got {self.name!r}")
        if not np.array_equal(
            self.audiogram_left.frequencies_hz, self.audiogram_right.frequencies_hz
        ):
            raise ValueError(f"Listener {self.name!r}: left and right audiogram_cfs differ")

    @property
    def audiograms(self) -> tuple[Audiogram, Audiogram]:
        """``(left, right)``: the ear order used everywhere in clarity_se."""
        return (self.audiogram_left, self.audiogram_right)

    @classmethod
    def from_dict(cls, entry: dict, *, source: str = "listeners.json") -> Listener:
        """Build from one CEC2 ``listeners.json`` entry.

        Raises
        ------
        ValueError
            Naming ``source``, the listener and the missing or bad field.
        """
        if not isinstance(entry, dict):
            raise ValueError(
                f"{source}: listener entry must be an object, got {type(entry).__name__}"
            )
        name = entry.get("name", "?")
        for key in ("name", "audiogram_cfs", "audiogram_levels_l", "audiogram_levels_r"):
            if key not in entry:
                raise ValueError(f"{source}: listener {name!r}: missing field {key!r}")
        try:
            left = Audiogram(
                entry["audiogram_cfs"], entry["audiogram_levels_l"], name=f"{name} left"
            )
            right = Audiogram(
                entry["audiogram_cfs"], entry["audiogram_levels_r"], name=f"{name} right"
            )
        except ValueError as exc:
            field_name = "audiogram_levels_r" if "right" in str(exc) else "audiogram_levels_l"
            if "frequencies_hz" in str(exc):
                field_name = "audiogram_cfs"
            raise ValueError(f"{source}: listener {name!r}: field {field_name!r}: {exc}") from None
        return cls(name=str(entry["name"]), audiogram_left=left, audiogram_right=right)

    def to_dict(self) -> dict:
        """The CEC2 ``listeners.json`` entry (numbers as ints where they are whole)."""

        def _plain(values: np.ndarray) -> list:
            return [int(v) if float(v).is_integer() else float(v) for v in values]

        return {
            "name": self.name,
            "audiogram_cfs": _plain(self.audiogram_left.frequencies_hz),
            "audiogram_levels_l": _plain(self.audiogram_left.levels_db_hl),
            "audiogram_levels_r": _plain(self.audiogram_right.levels_db_hl),
        }


def read_listeners(path: str | os.PathLike) -> tuple[dict[str, Listener], dict[str, str]]:
    """Read a CEC2 ``listeners.json``, keeping good entries apart from bad ones.

    Returns
    -------
    listeners : dict of str -> Listener
        The valid entries, by listener id.
    problems : dict of str -> str
        Listener id -> why its entry is refused (names the file, listener and field). A bad
        listener fails only the pairs that use it.

    Raises
    ------
    ValueError
        If the file is missing, not JSON, or not an object keyed by listener id.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: listeners file not found")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected an object keyed by listener id")
    listeners, problems = {}, {}
    for key, entry in raw.items():
        try:
            listener = Listener.from_dict(entry, source=str(path))
            if listener.name != key:
                raise ValueError(f"{path}: key {key!r} has name {listener.name!r}")
        except ValueError as exc:
            problems[str(key)] = str(exc)
            continue
        listeners[key] = listener
    return listeners, problems


def load_listeners(path: str | os.PathLike) -> dict[str, Listener]:
    """Read a CEC2 ``listeners.json`` (a dict keyed by listener id), every entry valid.

    Raises
    ------
    ValueError
        If the file is missing, not JSON, or an entry is bad (names file, listener, field).
    """
    listeners, problems = read_listeners(path)
    if problems:
        raise ValueError(next(iter(problems.values())))
    return listeners


def save_listeners(
    path: str | os.PathLike, listeners: dict[str, Listener] | list[Listener]
) -> Path:
    """Write a CEC2 ``listeners.json`` atomically (indent 4, as the CEC2 metadata)."""
    from clarity_se.data.audio_io import atomic_write_text

    items = listeners.values() if isinstance(listeners, dict) else listeners
    payload = {lis.name: lis.to_dict() for lis in items}
    return atomic_write_text(path, json.dumps(payload, indent=4) + "\n")
