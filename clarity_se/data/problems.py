"""What ``clarity-se validate`` collects: one line per problem, ``<file>: <field>: <problem>``.

Shared by the CEC2 checks (:mod:`clarity_se.data.validate`) and the AEC Challenge checks
(:mod:`clarity_se.data.validate_aec`): the report base class and the WAV header checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clarity_se.data.audio_io import AudioFileError, audio_info, wav_data_frames


@dataclass
class ProblemReport:
    """Problems found by a validation run, each a line ``<file>: <field>: <problem>``.

    Parameters
    ----------
    problems : list of str
        The lines, in the order found.
    read_audio : bool
        Whether the audio was decoded (``--read-audio``) or only the headers checked.
    """

    problems: list[str] = field(default_factory=list)
    read_audio: bool = False

    def add(self, where: str | os.PathLike, field_name: str, message: str) -> None:
        """Record one problem about ``where`` (a file) and ``field_name``."""
        line = f"{where}: {field_name}: {message}" if field_name else f"{where}: {message}"
        self.problems.append(line)

    @property
    def ok(self) -> bool:
        """True if no problem was found."""
        return not self.problems

    @property
    def mode(self) -> str:
        """``"decoded"`` or ``"headers checked"``, for the summary line."""
        return "decoded" if self.read_audio else "headers checked"


def check_wav_header(path: Path, report: ProblemReport, *, sample_rate: int,
                     channels: int) -> tuple[Any, tuple[int, int] | None, bool] | None:
    """Check an existing WAV file's header against the expected format.

    Reports to ``report`` an unreadable header (field ``header``), another sample rate
    (``sample_rate``) or channel count (``channels``), and a file shorter than its header
    declares (``num_samples``).

    Parameters
    ----------
    path : Path
        The file (it must exist).
    report : ProblemReport
        Receives the problems.
    sample_rate : int
        Expected sample rate, Hz.
    channels : int
        Expected channel count.

    Returns
    -------
    (info, declared, format_ok) or None
        ``None`` when the file cannot be used further (unreadable or truncated); else its
        ``soundfile`` info, the ``(declared, held)`` frame counts of its ``data`` chunk (``None``
        for a non-WAV container) and whether rate and channel count are as expected.
    """
    try:
        info = audio_info(path, check_length=False)
    except AudioFileError as exc:
        report.add(path, "header", str(exc).removeprefix(f"{path}: "))
        return None
    ok = True
    if info.samplerate != sample_rate:
        report.add(path, "sample_rate", f"is {info.samplerate} Hz, expected {sample_rate} Hz")
        ok = False
    if info.channels != channels:
        report.add(path, "channels", f"is {info.channels}, expected {channels}")
        ok = False
    try:
        declared = wav_data_frames(path)
    except OSError as exc:
        report.add(path, "header", f"unreadable ({exc})")
        return None
    if declared is not None and declared[0] != declared[1]:
        report.add(path, "num_samples",
                   f"truncated: header declares {declared[0]} frames, file holds {declared[1]}")
        return None
    return info, declared, ok
