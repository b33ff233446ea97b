"""``clarity-se validate ROOT`` for an AEC Challenge folder (synthetic or real layout).

:mod:`clarity_se.data.validate` hands a ROOT that
:func:`~clarity_se.data.aec_challenge.detect_layout` recognises to :func:`validate_aec_dataset`.
Cheap by default: ``meta.csv`` is parsed and every field of every row checked, every expected
file must exist and its header must say 16 kHz mono with a ``data`` chunk the file really holds;
the four signals of a synthetic clip must have the same length; a synthetic folder may hold no
clip that ``meta.csv`` lacks. With ``--read-audio``
every file is decoded and NaN/Inf samples are reported. Every problem is one line
``<file>: <field>: <problem>``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from clarity_se.data.aec_challenge import (
    SAMPLE_RATE,
    SYNTHETIC_FILES,
    AECClip,
    detect_layout,
    read_signal,
    read_synthetic_meta,
    scan_real,
)
from clarity_se.data.audio_io import AudioFileError
from clarity_se.data.problems import ProblemReport, check_wav_header


@dataclass
class AECValidationReport(ProblemReport):
    """Result of :func:`validate_aec_dataset`: the problems (:class:`ProblemReport`) and what
    was checked."""

    layout: str = ""
    n_clips: int = 0
    n_files: int = 0
    talk_types: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One-line summary."""
        status = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        types = ", ".join(f"{k} {v}" for k, v in sorted(self.talk_types.items())) or "-"
        return (
            f"validate: {status}: AEC Challenge {self.layout or '?'} layout; {self.n_clips} clips "
            f"({types}), {self.n_files} audio files ({self.mode})"
        )


def _check_file(path: Path, field_name: str, report: AECValidationReport, read: bool) -> int | None:
    """Check one 16 kHz mono WAV; return its length in samples if known."""
    report.n_files += 1
    if not path.is_file():
        report.add(path, field_name, "file missing")
        return None
    checked = check_wav_header(path, report, sample_rate=SAMPLE_RATE, channels=1)
    if checked is None:
        return None
    info, _, ok = checked
    if read and ok:
        try:
            samples = read_signal(path, field_name)
        except AudioFileError as exc:
            report.add(path, "data", str(exc).split(f"{path}: ", 1)[-1])
            return None
        return int(samples.shape[0])
    return int(info.frames)


def _check_synthetic(root: Path, report: AECValidationReport, read: bool) -> None:
    try:
        clips = read_synthetic_meta(root)
    except ValueError as exc:
        report.problems.append(str(exc))
        return
    report.n_clips = len(clips)
    for clip in clips:
        report.talk_types[clip.talk_type] = report.talk_types.get(clip.talk_type, 0) + 1
        lengths = {}
        for kind in ("mic", "farend", "nearend", "echo"):
            path = getattr(clip, kind)
            n = _check_file(path, kind, report, read)
            if n is not None:
                lengths[path] = n
        if lengths:
            ref_path, ref = next(iter(lengths.items()))
            for path, n in lengths.items():
                if n != ref:
                    report.add(path, "num_samples", f"is {n} but {ref_path.name} has {ref}")
    known = {c.fileid for c in clips}
    for kind, (folder, prefix) in SYNTHETIC_FILES.items():
        pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.wav$")
        directory = root / folder
        if not directory.is_dir():
            report.add(directory, kind, "missing folder")
            continue
        for name in sorted(os.listdir(directory)):
            match = pattern.match(name)
            if match is None:
                continue
            if int(match[1]) not in known:
                report.add(directory / name, "fileid", f"{match[1]} is not in meta.csv")


def _check_real(root: Path, report: AECValidationReport, read: bool) -> None:
    try:
        clips: list[AECClip] = scan_real(root)
    except ValueError as exc:
        report.problems.append(str(exc))
        return
    report.n_clips = len(clips)
    for clip in clips:
        report.talk_types[clip.talk_type] = report.talk_types.get(clip.talk_type, 0) + 1
        _check_file(clip.mic, "mic", report, read)
        if clip.farend is not None:
            _check_file(clip.farend, "farend", report, read)


def validate_aec_dataset(
    root: str | os.PathLike, *, read_audio_data: bool = False
) -> AECValidationReport:
    """Validate an AEC Challenge folder and collect every problem.

    Parameters
    ----------
    root : path-like
        Synthetic folder (``meta.csv`` + signal folders) or real / blind-test folder.
    read_audio_data : bool
        Decode every file completely (also reports NaN/Inf samples).

    Returns
    -------
    AECValidationReport
        ``problems`` (one line each, naming the file and field) and counts.
    """
    root = Path(root)
    report = AECValidationReport(read_audio=read_audio_data)
    layout = detect_layout(root)
    if layout is None:
        report.add(root, "", "not an AEC Challenge folder (no meta.csv + nearend_mic_signal/, "
                   "no *_mic.wav)")
        return report
    report.layout = layout
    if layout == "synthetic":
        _check_synthetic(root, report, read_audio_data)
    else:
        _check_real(root, report, read_audio_data)
    return report
