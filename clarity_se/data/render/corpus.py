"""Talkers, noises and music for domain-randomised mixtures, read from a configurable data root.

The root holds the layout of the shared data set (``speech/``, ``noise/``, ``music/``,
``rir/``; provenance and licences in its ``README.md``). It is *not* part of the repository:
pass it as ``data_root`` or set the environment variable ``CLARITY_SE_DATA_ROOT``; without
either, the small embedded demo sources (``clarity_se/assets/demo_sources``, same layout) are
used, so tests and examples run anywhere.

Talkers
-------
Every ``speech/**/*.flac`` is an utterance; its talker id comes from the file name:
``p225_003`` -> ``p225`` (VCTK), ``cmu_arctic_us_aew_a0001`` -> ``aew`` (CMU ARCTIC),
``1034-121119-0000`` -> ``1034`` (LibriSpeech, also ``speech/librispeech_extra/*/``),
anything else -> its stem up to the first ``_`` or ``-`` (``xmas``). With the shared root
that is 256 talkers: the 15 of the demo catalogue and the 241 LibriSpeech readers of
``speech/librispeech_extra`` (``manifest.csv`` there gives their sex).

``VALIDATION_SPEAKERS`` (20 talkers, 10 F / 10 M) are never used by the ``train`` split:

* the 6 dev talkers of the demo catalogue (``p226`` M, ``p228`` F, ``201`` M, ``1088`` F,
  ``1034`` M, ``axb`` F), so a model trained here can still be validated on
  ``clarity-se demo-data`` dev scenes;
* 14 readers of ``librispeech_extra``: from ``train-clean-100`` the 6 F and 6 M readers with
  the smallest SHA-256 of ``"validation/<reader>"`` (``8975 250 5688 5514 887 1553`` F,
  ``3723 2952 8797 1040 3436 8095`` M), and from ``test-other`` by the same rule ``3331`` F and
  ``2033`` M (ten utterances each, noisier recordings).

The ``train`` split has every other talker (236 with the shared root).

Noises and music
----------------
``noise/**`` and ``music/**`` recordings. Three recordings are cut in time as the demo
catalogue cuts them (``VALIDATION_SEGMENTS_S``: the ``validation`` split reads only that
segment, ``train`` everything outside it with a ``GUARD_S`` margin); the other recordings are
train-only; files whose stem ends in ``_dev`` (the embedded demo segments) are
validation-only. Babble (several talkers of the split summed) and coloured Gaussian noise are
built by :mod:`.randomised`.

All audio is served mono (channel mean), float32, at 44.1 kHz: a crop is read at the file's
own rate and resampled with ``scipy.signal.resample_poly`` (16 kHz -> 44.1 kHz: up 441,
down 160). Decoded files are kept in a bounded LRU cache (``CACHE_FILES`` files, int16).
"""

from __future__ import annotations

import csv
import functools
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from numpy.lib.array_utils import byte_bounds
from scipy.signal import resample_poly

from clarity_se.data.render import sources as demo_sources

logger = logging.getLogger(__name__)

SAMPLE_RATE = 44100
#: Environment variable naming the data root (the shared data set).
DATA_ROOT_ENV = "CLARITY_SE_DATA_ROOT"
SPLITS = ("train", "validation")
#: Talkers held out of the ``train`` split (see the module docstring for the rule).
VALIDATION_SPEAKERS: tuple[str, ...] = (
    "p226", "p228", "201", "1088", "1034", "axb",
    "8975", "250", "5688", "5514", "887", "1553",
    "3723", "2952", "8797", "1040", "3436", "8095",
    "3331", "2033",
)  # fmt: skip
#: (start_s, stop_s) of the validation segment of a recording (path relative to the root);
#: the same segments as the demo catalogue's ``*_dev.flac`` files.
VALIDATION_SEGMENTS_S: dict[str, tuple[float, float]] = {
    "noise/speech_commands/doing_the_dishes.flac": (40.0, 52.0),
    "noise/speech_commands/running_tap.flac": (30.0, 42.0),
    "music/Kevin_MacLeod_-_Vibe_Ace.flac": (30.0, 42.0),
}
#: Margin (s) around a validation segment that the train split does not read either.
GUARD_S = 2.0
#: Decoded files kept in memory per process.
CACHE_FILES = 128
_SEX = {e.group: e.sex for e in demo_sources.CATALOGUE if e.kind == "speech"}


@dataclass(frozen=True)
class Utterance:
    """One speech recording.

    Attributes
    ----------
    path : str
        Path relative to the data root (POSIX separators).
    speaker : str
        Talker id.
    sex : str
        ``"F"``, ``"M"`` or ``""`` (unknown).
    """

    path: str
    speaker: str
    sex: str = ""


@dataclass(frozen=True)
class Clip:
    """A usable time range of a noise or music recording.

    Attributes
    ----------
    path : str
        Path relative to the data root.
    kind : {"noise", "music"}
    start_s, stop_s : float
        Range in seconds; ``stop_s`` may be ``inf`` (to the end of the file).
    """

    path: str
    kind: str
    start_s: float = 0.0
    stop_s: float = float("inf")


def default_data_root() -> Path:
    """``$CLARITY_SE_DATA_ROOT`` if set, else the embedded demo sources folder."""
    env = os.environ.get(DATA_ROOT_ENV, "")
    return Path(env) if env else demo_sources.assets_dir()


def speaker_of_path(path: str | os.PathLike) -> str:
    """Talker id of a speech file from its name (rules in the module docstring).

    Parameters
    ----------
    path : path-like
        File path; only the stem is used.

    Returns
    -------
    str
    """
    stem = Path(path).stem
    m = re.match(r"^cmu_arctic_\w+?_([a-z]+)_[ab]\d+$", stem)
    if m:
        return m.group(1)
    m = re.match(r"^(\d+)-\d+-\d+$", stem)
    if m:
        return m.group(1)
    return re.split(r"[_-]", stem, maxsplit=1)[0]


def _extra_sexes(root: Path) -> dict[str, str]:
    manifest = root / "speech" / "librispeech_extra" / "manifest.csv"
    if not manifest.is_file():
        return {}
    with open(manifest, newline="") as f:
        return {row["reader"]: row["sex"] for row in csv.DictReader(f)}


@functools.lru_cache(maxsize=CACHE_FILES)
def _read_int16(path: str) -> tuple[np.ndarray, int]:
    """Whole file as mono int16 ``[time]`` and its rate (channel mean, rounded)."""
    try:
        x, sr = sf.read(path, dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise ValueError(f"{path}: cannot read audio ({exc})") from None
    if x.shape[1] > 1:
        x = np.round(x.astype(np.float32).mean(axis=1)).astype(np.int16)
    else:
        x = x[:, 0]
    x.setflags(write=False)
    return x, int(sr)


@functools.lru_cache(maxsize=4096)
def _active_range(path: str) -> tuple[int, int]:
    """Samples (at the file's rate) of the utterance after ``sources.trim_silence``."""
    x, sr = _read_int16(path)
    xf = x.astype(np.float64)
    trimmed = demo_sources.trim_silence(xf, sr)  # a view of xf
    if trimmed.size == 0:
        return 0, x.size
    start = (byte_bounds(trimmed)[0] - byte_bounds(xf)[0]) // xf.itemsize
    return start, start + trimmed.size


def read_segment(path: str | os.PathLike, start_s: float, n_samples: int) -> np.ndarray:
    """A crop of a recording, mono float32 at 44.1 kHz, zero-padded past the end of the file.

    Parameters
    ----------
    path : path-like
        Audio file (any rate; read whole once and cached).
    start_s : float
        Start in seconds (may be negative: leading zeros).
    n_samples : int
        Output length at 44.1 kHz.

    Returns
    -------
    ndarray [shape=(n_samples,)], float32, full scale 1.0

    Raises
    ------
    ValueError
        Unreadable file (names it).
    """
    x, sr = _read_int16(str(path))
    out = np.zeros(n_samples, dtype=np.float32)
    if sr == SAMPLE_RATE:
        i0 = int(round(start_s * sr))
        lo, hi = max(i0, 0), min(i0 + n_samples, x.size)
        if hi > lo:
            out[lo - i0 : hi - i0] = x[lo:hi] / 32768.0
        return out
    g = np.gcd(SAMPLE_RATE, sr)
    up, down = SAMPLE_RATE // g, sr // g
    margin = 64  # input samples of filter context on both sides
    k0 = int(round(start_s * SAMPLE_RATE))  # first output sample on the file's 44.1 kHz grid
    # start the input block on a multiple of `down`, so that output sample j of the block
    # is sample (i0 * up / down + j) of the whole file resampled
    i0 = int(np.floor((k0 * down / up - margin) / down)) * down
    n_in = int(np.ceil(n_samples * down / up)) + 2 * margin + down
    seg = np.zeros(n_in, dtype=np.float32)
    lo, hi = max(i0, 0), min(i0 + n_in, x.size)
    if hi > lo:
        seg[lo - i0 : hi - i0] = x[lo:hi] / 32768.0
    y = resample_poly(seg, up, down).astype(np.float32)
    first = k0 - i0 * up // down
    y = y[first : first + n_samples]
    out[: y.size] = y
    return out


def read_utterance(path: str | os.PathLike) -> np.ndarray:
    """Silence-trimmed utterance (``sources.trim_silence`` rule), mono float32 at 44.1 kHz.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    ndarray [shape=(time,)], float32
    """
    start, stop = _active_range(str(path))
    sr = _read_int16(str(path))[1]
    n = int(round((stop - start) * SAMPLE_RATE / sr))
    return read_segment(path, start / sr, n)


def duration_s(path: str | os.PathLike) -> float:
    """Length of a recording in seconds (from the file header)."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise ValueError(f"{path}: cannot read audio ({exc})") from None
    return info.frames / info.samplerate


class SourceCorpus:
    """Talkers and noise / music clips of one split of a data root.

    Parameters
    ----------
    root : path-like, optional
        Data root (see the module docstring); default :func:`default_data_root`.
    split : {"train", "validation"}
    validation_speakers : sequence of str, optional
        Talkers reserved for validation; default ``VALIDATION_SPEAKERS``.

    Attributes
    ----------
    speakers : dict of str to list of Utterance
        Talker id -> utterances (sorted by path) of this split.
    clips : list of Clip
        Noise and music ranges of this split.

    Raises
    ------
    ValueError
        Unknown split, missing root, or a split without talkers or without noise / music
        (names the root).
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str = "train",
        validation_speakers: tuple[str, ...] | list[str] | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root = Path(root) if root else default_data_root()
        if not (self.root / "speech").is_dir():
            raise ValueError(f"data root {self.root}: no speech/ folder")
        self.split = split
        held = set(VALIDATION_SPEAKERS if validation_speakers is None else validation_speakers)
        self.validation_speakers = tuple(sorted(held))
        sexes = {**_SEX, **_extra_sexes(self.root)}
        speakers: dict[str, list[Utterance]] = {}
        for p in sorted((self.root / "speech").rglob("*.flac")):
            rel = p.relative_to(self.root).as_posix()
            spk = speaker_of_path(p)
            if (spk in held) == (split == "validation"):
                speakers.setdefault(spk, []).append(Utterance(rel, spk, sexes.get(spk, "")))
        if not speakers:
            raise ValueError(f"data root {self.root}: no {split} talkers under speech/")
        self.speakers = dict(sorted(speakers.items()))
        self.clips = self._find_clips()
        if not self.clips:
            raise ValueError(f"data root {self.root}: no {split} noise/music under noise/, music/")

    def _find_clips(self) -> list[Clip]:
        clips: list[Clip] = []
        for kind in ("noise", "music"):
            folder = self.root / kind
            if not folder.is_dir():
                continue
            for p in sorted(folder.rglob("*.flac")):
                rel = p.relative_to(self.root).as_posix()
                is_dev = p.stem.endswith("_dev")
                if rel in VALIDATION_SEGMENTS_S:
                    a, b = VALIDATION_SEGMENTS_S[rel]
                    if self.split == "validation":
                        clips.append(Clip(rel, kind, a, b))
                    else:
                        clips.append(Clip(rel, kind, 0.0, max(a - GUARD_S, 0.0)))
                        clips.append(Clip(rel, kind, b + GUARD_S, duration_s(p)))
                elif is_dev == (self.split == "validation"):
                    clips.append(Clip(rel, kind, 0.0, duration_s(p)))
        return [c for c in clips if c.stop_s - c.start_s >= 1.0]

    def path(self, rel: str) -> Path:
        """Absolute path of a corpus file."""
        return self.root / rel

    def speaker_ids(self) -> list[str]:
        """Talkers of this split, sorted."""
        return list(self.speakers)

    def manifest(self) -> dict:
        """Description for checkpoints: root, split, talkers, clips."""
        return {
            "data_root": str(self.root),
            "split": self.split,
            "n_speakers": len(self.speakers),
            "n_utterances": sum(len(v) for v in self.speakers.values()),
            "validation_speakers": list(self.validation_speakers),
            "clips": [f"{c.path}[{c.start_s:g},{c.stop_s:g}]" for c in self.clips],
        }
