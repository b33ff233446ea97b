"""The ICASSP AEC Challenge data layouts, read unchanged, as typed clip records.

Two layouts exist (Sridhar et al. 2021; Cutler et al. 2022, the Microsoft AEC Challenge):

**Synthetic** (``datasets/synthetic/``; also what ``clarity-se aec-data`` writes)::

    ROOT/meta.csv
    ROOT/farend_speech/farend_speech_fileid_<N>.wav        far-end reference (loopback)
    ROOT/echo_signal/echo_fileid_<N>.wav                    echo at the microphone
    ROOT/nearend_speech/nearend_speech_fileid_<N>.wav       near-end talker at the microphone
    ROOT/nearend_mic_signal/nearend_mic_fileid_<N>.wav      microphone = echo + near end (+ noise)

``meta.csv`` has one row per clip with at least ``fileid`` (int), ``ser`` (signal-to-echo ratio,
dB), ``is_farend_nonlinear``, ``is_farend_noisy``, ``is_nearend_noisy`` (0/1) and ``split``;
the challenge's own file also has ``nearend_speaker``, ``farend_speaker``, ``*_wav_path``,
``nearend_scale``. Other columns are kept verbatim in :attr:`AECClip.meta`. The talk type comes
from a ``talk_type`` column (``st``, ``dt``, ``nst``) when present; without one every clip is
double talk (``dt``): every microphone clip of the challenge's synthetic set holds near-end
speech and echo. clarity_se's renderer also writes ``talk_type``, ``is_echo_path_change`` and
``echo_path_change_s`` (read into :attr:`AECClip.echo_path_change_s`).

**Real / blind test** (``datasets/real/``, ``datasets/blind_test_set/{clean,noisy}/``)::

    ROOT/[sub/]<id>_<scenario>_lpb.wav     loopback (far-end reference)
    ROOT/[sub/]<id>_<scenario>_mic.wav     microphone

with ``<scenario>`` one of ``farend_singletalk``, ``nearend_singletalk``, ``doubletalk``, each
optionally ``_with_movement`` (hyphens instead of underscores are accepted, as in later blind
test sets: ``farend-singletalk``). The scenario gives the talk type (far-end single talk ``st``,
double talk ``dt``, near-end single talk ``nst``); when the file name carries none, the nearest
parent folder named after a scenario does. Near-end single talk clips may lack the loopback (the
far end is silent: read as zeros). ``sweep`` recordings are not speech clips and are skipped.

Files are 16 kHz mono WAV. Records pair files by clip id (``fileid`` or the stem), never by sort
order. Bad metadata raises :class:`ValueError` naming the file, line and field; a bad audio file
raises :class:`~clarity_se.data.audio_io.AudioFileError` naming the file and field.

References
----------
K. Sridhar et al., "ICASSP 2021 Acoustic Echo Cancellation Challenge: Datasets, Testing
Framework, and Results", ICASSP 2021 (arXiv:2009.04972); R. Cutler et al., "ICASSP 2022 Acoustic
Echo Cancellation Challenge", ICASSP 2022; github.com/microsoft/AEC-Challenge ``datasets/``.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from clarity_se.data.audio_io import AudioFileError, read_audio

logger = logging.getLogger(__name__)

#: Hz, the AEC Challenge's sample rate.
SAMPLE_RATE = 16000
#: Talk types: far-end single talk, double talk, near-end single talk (AECMOS's names).
TALK_TYPES = ("st", "dt", "nst")
#: Schema of :meth:`AECClip.to_record`.
CLIP_SCHEMA = "clarity_se.aec_clip/1"
#: ``meta.csv`` columns the synthetic layout requires.
REQUIRED_META_COLUMNS = (
    "fileid",
    "ser",
    "is_farend_nonlinear",
    "is_farend_noisy",
    "is_nearend_noisy",
    "split",
)
#: Synthetic layout: signal kind -> (folder, file-name prefix).
SYNTHETIC_FILES = {
    "farend": ("farend_speech", "farend_speech_fileid_"),
    "echo": ("echo_signal", "echo_fileid_"),
    "nearend": ("nearend_speech", "nearend_speech_fileid_"),
    "mic": ("nearend_mic_signal", "nearend_mic_fileid_"),
}
#: Real-layout scenario (underscores) -> talk type.
SCENARIO_TALK_TYPES = {
    "farend_singletalk": "st",
    "doubletalk": "dt",
    "nearend_singletalk": "nst",
}
_SCENARIO_RE = re.compile(
    r"^(?P<prefix>.*?)_?(?P<scenario>farend_singletalk|nearend_singletalk|doubletalk|sweep)"
    r"(?P<movement>_with_movement)?$"
)


@dataclass(frozen=True)
class AECClip:
    """One clip of an AEC Challenge layout.

    Attributes
    ----------
    id : str
        Unique key: ``fileid_<N>`` (synthetic) or the path of the clip stem relative to the
        root without ``_mic``, e.g. ``clean/abc_doubletalk`` (real).
    layout : {"synthetic", "real"}
    talk_type : {"st", "dt", "nst"}
        Far-end single talk, double talk or near-end single talk.
    mic : pathlib.Path
        Microphone signal (the canceller's input).
    farend : pathlib.Path or None
        Far-end reference (loopback); ``None`` when a real near-end single-talk clip has none.
    nearend : pathlib.Path or None
        Near-end speech at the microphone (synthetic only): the reference of PESQ / SI-SDR.
    echo : pathlib.Path or None
        Echo at the microphone (synthetic only).
    fileid : int or None
        Synthetic ``fileid``.
    split : str
        ``meta.csv`` ``split`` (``train``/``test``); ``""`` for the real layout.
    ser_db : float or None
        Signal-to-echo ratio, dB (synthetic).
    is_farend_nonlinear, is_farend_noisy, is_nearend_noisy : bool or None
        ``meta.csv`` flags (synthetic).
    scenario : str
        Real layout: ``doubletalk``, ``farend_singletalk_with_movement``...; ``""`` otherwise.
    echo_path_change_s : float or None
        Time of an echo-path change inside the clip, s (clarity_se renders); ``None`` if none.
    meta : dict of str to str
        Every ``meta.csv`` column of the row, verbatim.
    """

    id: str
    layout: str
    talk_type: str
    mic: Path
    farend: Path | None
    nearend: Path | None = None
    echo: Path | None = None
    fileid: int | None = None
    split: str = ""
    ser_db: float | None = None
    is_farend_nonlinear: bool | None = None
    is_farend_noisy: bool | None = None
    is_nearend_noisy: bool | None = None
    scenario: str = ""
    echo_path_change_s: float | None = None
    meta: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.layout not in ("synthetic", "real"):
            raise ValueError(f"clip {self.id}: layout must be 'synthetic' or 'real', "
                             f"got {self.layout!r}")
        if self.talk_type not in TALK_TYPES:
            raise ValueError(f"clip {self.id}: talk_type must be one of {TALK_TYPES}, "
                             f"got {self.talk_type!r}")
        if self.farend is None and self.talk_type != "nst":
            raise ValueError(f"clip {self.id}: farend (loopback) is required for talk type "
                             f"{self.talk_type!r}")

    @property
    def enhanced_name(self) -> str:
        """Relative path of the enhanced signal under ``enhanced_signals/``.

        ``nearend_mic_fileid_<N>_enhanced.wav`` (synthetic) or ``[sub/]<stem>_enhanced.wav``
        (real; ``<stem>`` is the mic file name without ``_mic.wav``).
        """
        if self.layout == "synthetic":
            return f"nearend_mic_fileid_{self.fileid}_enhanced.wav"
        return f"{self.id}_enhanced.wav"

    def to_record(self, root: str | os.PathLike | None = None) -> dict:
        """The clip as a manifest record (schema ``clarity_se.aec_clip/1``).

        Paths are relative to ``root`` when given (``{data_root}``), else absolute.
        """

        def rel(path: Path | None) -> str | None:
            if path is None:
                return None
            return Path(os.path.relpath(path, root)).as_posix() if root is not None else str(path)

        return {
            "id": self.id,
            "schema": CLIP_SCHEMA,
            "layout": self.layout,
            "talk_type": self.talk_type,
            "sample_rate": SAMPLE_RATE,
            "mic": rel(self.mic),
            "farend": rel(self.farend),
            "nearend": rel(self.nearend),
            "echo": rel(self.echo),
            "fileid": self.fileid,
            "split": self.split,
            "ser_db": self.ser_db,
            "is_farend_nonlinear": self.is_farend_nonlinear,
            "is_farend_noisy": self.is_farend_noisy,
            "is_nearend_noisy": self.is_nearend_noisy,
            "scenario": self.scenario,
            "echo_path_change_s": self.echo_path_change_s,
        }


@dataclass(frozen=True)
class ClipAudio:
    """The signals of one clip, float32 mono at 16 kHz, all of the microphone's length.

    Attributes
    ----------
    mic : np.ndarray [shape=(time,)], float32
    farend : np.ndarray [shape=(time,)], float32
        Zeros when the clip has no loopback; cut or zero-padded to the mic's length (real
        recordings differ by a few samples).
    nearend : np.ndarray [shape=(time,)] or None
    echo : np.ndarray [shape=(time,)] or None
    """

    mic: np.ndarray
    farend: np.ndarray
    nearend: np.ndarray | None
    echo: np.ndarray | None

    def scaled(self, gain_db: float) -> ClipAudio:
        """The same scene recorded ``gain_db`` dB louder: every signal (references too) times
        ``10^(gain_db / 20)``, no clipping."""
        g = 10 ** (gain_db / 20)
        return ClipAudio(**{f.name: None if getattr(self, f.name) is None
                            else getattr(self, f.name) * g for f in fields(self)})


# --------------------------------------------------------------------------- layout detection
def detect_layout(root: str | os.PathLike) -> str | None:
    """``"synthetic"`` if ROOT holds ``meta.csv`` and ``nearend_mic_signal/``, ``"real"`` if it
    holds ``*_mic.wav`` files (at any depth), else ``None``."""
    root = Path(root)
    if (root / "meta.csv").is_file() and (root / "nearend_mic_signal").is_dir():
        return "synthetic"
    if root.is_dir() and next(root.rglob("*_mic.wav"), None) is not None:
        return "real"
    return None


def load_aec_dataset(root: str | os.PathLike, split: str | None = None) -> list[AECClip]:
    """Clip records of an AEC Challenge folder (either layout, detected).

    Parameters
    ----------
    root : path-like
        The synthetic folder (holding ``meta.csv``) or a real / blind-test folder.
    split : str, optional
        Keep only clips of this ``meta.csv`` split (synthetic layout).

    Returns
    -------
    list of AECClip
        Synthetic: in ``meta.csv`` order; rows whose microphone file does not exist are left
        out (the challenge's ``meta.csv`` lists clips that a partial download lacks), see
        :func:`read_synthetic_meta` for all rows. Real: sorted by id.

    Raises
    ------
    ValueError
        ROOT is neither layout, or its metadata / file names are bad (names file and field).
    """
    layout = detect_layout(root)
    if layout == "synthetic":
        clips = [c for c in read_synthetic_meta(root) if c.mic.is_file()]
        return [c for c in clips if split is None or c.split == split]
    if layout == "real":
        return scan_real(root)
    raise ValueError(
        f"{root}: not an AEC Challenge folder (expected meta.csv + nearend_mic_signal/, "
        "or *_mic.wav / *_lpb.wav files)"
    )


# --------------------------------------------------------------------------- synthetic
def synthetic_path(root: str | os.PathLike, kind: str, fileid: int) -> Path:
    """Path of signal ``kind`` (``farend``, ``echo``, ``nearend``, ``mic``) of a synthetic clip.

    Raises
    ------
    ValueError
        Unknown ``kind``.
    """
    if kind not in SYNTHETIC_FILES:
        raise ValueError(f"kind must be one of {sorted(SYNTHETIC_FILES)}, got {kind!r}")
    folder, prefix = SYNTHETIC_FILES[kind]
    return Path(root) / folder / f"{prefix}{int(fileid)}.wav"


def _parse_flag(value: str, where: str, name: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "true", "1.0"):
        return True
    if text in ("0", "false", "0.0"):
        return False
    raise ValueError(f"{where}: {name}: expected 0 or 1, got {value!r}")


def _parse_float(value: str, where: str, name: str, *, optional: bool = False) -> float | None:
    text = value.strip()
    if optional and text in ("", "nan", "NaN", "none", "None"):
        return None
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{where}: {name}: expected a number, got {value!r}") from None
    if not np.isfinite(number):
        raise ValueError(f"{where}: {name}: expected a finite number, got {value!r}")
    return number


def read_synthetic_meta(root: str | os.PathLike) -> list[AECClip]:
    """Every row of ``ROOT/meta.csv`` as an :class:`AECClip` (files need not exist).

    Raises
    ------
    ValueError
        Missing or unreadable ``meta.csv``, a missing required column, a duplicate ``fileid``
        or a bad value; the message names the file, the line and the field.
    """
    root = Path(root)
    path = root / "meta.csv"
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None
    missing = [c for c in REQUIRED_META_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"{path}: header: missing column(s) {', '.join(missing)}")
    clips: list[AECClip] = []
    seen: dict[int, int] = {}
    for line, row in enumerate(rows, start=2):
        where = f"{path}: line {line}"
        if None in row or any(v is None for v in row.values()):
            raise ValueError(f"{where}: row has {len(columns)} columns expected, got a different "
                             "number")
        try:
            fileid = int(row["fileid"].strip())
        except ValueError:
            raise ValueError(
                f"{where}: fileid: expected an integer, got {row['fileid']!r}"
            ) from None
        if fileid < 0:
            raise ValueError(f"{where}: fileid: must be >= 0, got {fileid}")
        if fileid in seen:
            raise ValueError(f"{where}: fileid: {fileid} already on line {seen[fileid]}")
        seen[fileid] = line
        talk_type = row.get("talk_type", "").strip() or "dt"
        if talk_type not in TALK_TYPES:
            raise ValueError(f"{where}: talk_type: expected one of {TALK_TYPES}, got {talk_type!r}")
        change = None
        if "is_echo_path_change" in row and row["is_echo_path_change"].strip():
            if _parse_flag(row["is_echo_path_change"], where, "is_echo_path_change"):
                change = _parse_float(row.get("echo_path_change_s", ""), where,
                                      "echo_path_change_s")
        clips.append(
            AECClip(
                id=f"fileid_{fileid}",
                layout="synthetic",
                talk_type=talk_type,
                mic=synthetic_path(root, "mic", fileid),
                farend=synthetic_path(root, "farend", fileid),
                nearend=synthetic_path(root, "nearend", fileid),
                echo=synthetic_path(root, "echo", fileid),
                fileid=fileid,
                split=row["split"].strip(),
                ser_db=_parse_float(row["ser"], where, "ser", optional=True),
                is_farend_nonlinear=_parse_flag(row["is_farend_nonlinear"], where,
                                                "is_farend_nonlinear"),
                is_farend_noisy=_parse_flag(row["is_farend_noisy"], where, "is_farend_noisy"),
                is_nearend_noisy=_parse_flag(row["is_nearend_noisy"], where, "is_nearend_noisy"),
                echo_path_change_s=change,
                meta=dict(row),
            )
        )
    return clips


# --------------------------------------------------------------------------- real
def parse_scenario(stem: str) -> tuple[str, str, bool] | None:
    """Split a real-layout stem (without ``_mic``/``_lpb``) into (prefix, scenario, movement).

    ``"abc_doubletalk_with_movement"`` -> ``("abc", "doubletalk", True)``; hyphens count as
    underscores; ``None`` if no scenario is named.
    """
    match = _SCENARIO_RE.match(stem.replace("-", "_").lower())
    if match is None:
        return None
    return match["prefix"], match["scenario"], match["movement"] is not None


def _real_talk_type(root: Path, mic: Path, stem: str) -> tuple[str, str] | None:
    """(talk type, scenario) of a real clip from its stem, else from its parent folders."""
    parsed = parse_scenario(stem)
    if parsed is None:
        for parent in mic.parent.relative_to(root).parts[::-1]:
            parsed = parse_scenario(parent)
            if parsed is not None:
                break
    if parsed is None:
        return None
    _, scenario, movement = parsed
    if scenario == "sweep":
        return "sweep", scenario
    return SCENARIO_TALK_TYPES[scenario], scenario + ("_with_movement" if movement else "")


def scan_real(root: str | os.PathLike) -> list[AECClip]:
    """Clip records of a real / blind-test folder (``*_mic.wav`` + ``*_lpb.wav``, any depth).

    Raises
    ------
    ValueError
        A file whose name (or folder) names no talk type, a loopback without microphone file,
        or a far-end / double-talk microphone without loopback; the message names the file.
    """
    root = Path(root)
    mics = {p.relative_to(root).as_posix()[: -len("_mic.wav")]: p for p in root.rglob("*_mic.wav")}
    lpbs = {p.relative_to(root).as_posix()[: -len("_lpb.wav")]: p for p in root.rglob("*_lpb.wav")}
    clips: list[AECClip] = []
    skipped = 0
    for key in sorted(set(lpbs) - set(mics)):
        info = _real_talk_type(root, lpbs[key], Path(key).name)
        if info is not None and info[0] == "sweep":
            continue
        raise ValueError(f"{lpbs[key]}: mic: no matching {Path(key).name}_mic.wav")
    for key in sorted(mics):
        mic = mics[key]
        info = _real_talk_type(root, mic, Path(key).name)
        if info is None:
            raise ValueError(
                f"{mic}: talk_type: the file name names no scenario (farend_singletalk, "
                "doubletalk, nearend_singletalk, optionally _with_movement) and no parent "
                "folder does"
            )
        talk_type, scenario = info
        if talk_type == "sweep":
            skipped += 1
            continue
        farend = lpbs.get(key)
        if farend is None and talk_type != "nst":
            raise ValueError(f"{mic}: farend: no loopback {Path(key).name}_lpb.wav for a "
                             f"{scenario} clip")
        clips.append(AECClip(id=key, layout="real", talk_type=talk_type, mic=mic, farend=farend,
                             scenario=scenario))
    if skipped:
        logger.info("%s: skipped %d sweep recording(s)", root, skipped)
    return clips


# --------------------------------------------------------------------------- audio
def read_signal(path: str | os.PathLike, field_name: str = "signal") -> np.ndarray:
    """Read one 16 kHz mono WAV as float32 ``[time]`` (16-bit PCM / 32768).

    Raises
    ------
    AudioFileError
        Missing, unreadable or truncated file, not 16 kHz, not mono, or NaN/Inf samples; the
        message names the file and ``field_name``.
    """
    try:
        samples, _ = read_audio(path, expected_sample_rate=SAMPLE_RATE, dtype="float32")
    except AudioFileError as exc:
        raise AudioFileError(f"{field_name}: {exc}") from None
    if samples.ndim != 1:
        raise AudioFileError(f"{field_name}: {path}: channels is {samples.shape[1]}, expected 1")
    if not np.all(np.isfinite(samples)):
        raise AudioFileError(f"{field_name}: {path}: contains NaN or Inf samples")
    return samples


def read_clip(clip: AECClip, *, references: bool = True) -> ClipAudio:
    """Read the signals of a clip.

    Parameters
    ----------
    clip : AECClip
    references : bool
        Also read ``nearend`` and ``echo`` when the clip has them (synthetic).

    Returns
    -------
    ClipAudio
        float32 mono 16 kHz, every signal of the microphone's length (the loopback cut or
        zero-padded; zeros without one).

    Raises
    ------
    AudioFileError
        A file is missing or bad (names the file and the field), or a synthetic reference has
        another length than the microphone.
    """
    mic = read_signal(clip.mic, "mic")
    n = mic.shape[0]
    if clip.farend is None:
        farend = np.zeros(n, dtype=np.float32)
    else:
        farend = read_signal(clip.farend, "farend")
        farend = farend[:n] if farend.shape[0] >= n else np.pad(farend, (0, n - farend.shape[0]))
    out: dict[str, np.ndarray | None] = {"nearend": None, "echo": None}
    if references:
        for name in ("nearend", "echo"):
            path = getattr(clip, name)
            if path is None:
                continue
            signal = read_signal(path, name)
            if signal.shape[0] != n:
                raise AudioFileError(
                    f"{name}: {path}: num_samples is {signal.shape[0]}, mic has {n}"
                )
            out[name] = signal
    return ClipAudio(mic=mic, farend=np.ascontiguousarray(farend, dtype=np.float32), **out)
