"""The embedded catalogue of real recordings used to render the demo dataset.

The recordings live in ``clarity_se/assets/demo_sources/`` (provenance and licences in
``ATTRIBUTION.md`` there; built by ``scripts/make_demo_sources.py`` from the shared data set).
Every entry is a *real* recording; nothing is synthesised.

Train / dev split (speakers are disjoint between the splits):

=========  ===========================================  ====================================
split      target speakers                              speech-masker speakers
=========  ===========================================  ====================================
train      VCTK p225 (F), p227 (M); LibriSpeech 1363 F,  all train speakers + ``xmas`` (M)
           1963 F, 4214 F, 1455 M, 2518 M; ARCTIC aew M
dev        VCTK p226 (M), p228 (F); LibriSpeech 201 (M)  all dev speakers + LibriSpeech 1088 F,
                                                         1034 M; ARCTIC axb F
=========  ===========================================  ====================================

Noise and music: ``doing_the_dishes`` and ``running_tap`` (Speech Commands) and ``Vibe Ace``
(music) are used by both splits but from *different, non-overlapping segments* of the
recordings (``*_train.flac`` / ``*_dev.flac``); ``vinyl_hiss`` (noise) and the solo trumpet loop
(music) are train-only.

As in CEC2, a speech masker is one long file per speaker (``<speaker>.wav`` in the scene
metadata): here the speaker's utterances, silence-trimmed, concatenated in catalogue order. A
masker is only eligible for a scene if it has at least ``duration`` samples (pyclarity
``select_random_interferer``), so short maskers (a single LibriSpeech utterance) only appear in
short scenes.

All signals are served mono, float64, at 44.1 kHz (``scipy.signal.resample_poly`` from 16 kHz,
up 441 / down 160); results are cached in memory.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

logger = logging.getLogger(__name__)

#: Sample rate of every rendered signal (Hz), the CEC2 rate.
SAMPLE_RATE = 44100
SPLITS = ("train", "dev")


@dataclass(frozen=True)
class SourceFile:
    """One recording of the catalogue.

    Attributes
    ----------
    path : str
        Path relative to ``clarity_se/assets/demo_sources``.
    kind : {"speech", "noise", "music"}
        Source type (CEC2 interferer ``type``).
    split : {"train", "dev"}
        Split that may use it.
    group : str
        Speaker id for speech, noise class / music piece otherwise (CEC2 draws a group first,
        then a file of the group).
    sex : str
        ``"F"``/``"M"`` for speech, ``""`` otherwise.
    """

    path: str
    kind: str
    split: str
    group: str
    sex: str = ""


def _speech(split: str, speaker: str, sex: str, paths: list[str]) -> list[SourceFile]:
    return [SourceFile(p, "speech", split, speaker, sex) for p in paths]


_V = "speech/vctk/"
_L = "speech/librispeech/"
_A = "speech/cmu_arctic/cmu_arctic_us_"
CATALOGUE: tuple[SourceFile, ...] = tuple(
    _speech(
        "train",
        "p225",
        "F",
        [f"{_V}p225_{u}.flac" for u in ("003", "011", "016", "020", "022", "024")],
    )
    + _speech(
        "train",
        "p227",
        "M",
        [f"{_V}p227_{u}.flac" for u in ("003", "005", "011", "016", "022", "024")],
    )
    + _speech("train", "1363", "F", [f"{_L}1363-135842-0000.flac"])
    + _speech("train", "1963", "F", [f"{_L}1963-142393-0000.flac"])
    + _speech("train", "4214", "F", [f"{_L}4214-7146-0000.flac"])
    + _speech("train", "1455", "M", [f"{_L}1455-134435-0000.flac"])
    + _speech("train", "2518", "M", [f"{_L}2518-154825-0000.flac"])
    + _speech("train", "aew", "M", [f"{_A}aew_a000{i}.flac" for i in (1, 2, 3)])
    + _speech("train", "xmas", "M", ["speech/freesound/xmas.flac"])
    + _speech(
        "dev",
        "p226",
        "M",
        [f"{_V}p226_{u}.flac" for u in ("003", "005", "011", "016", "022", "024")],
    )
    + _speech(
        "dev",
        "p228",
        "F",
        [f"{_V}p228_{u}.flac" for u in ("005", "011", "016", "019", "022", "024")],
    )
    + _speech("dev", "201", "M", [f"{_L}201-122255-0000.flac"])
    + _speech("dev", "1088", "F", [f"{_L}1088-129236-0000.flac"])
    + _speech("dev", "1034", "M", [f"{_L}1034-121119-0000.flac"])
    + _speech("dev", "axb", "F", [f"{_A}axb_a000{i}.flac" for i in (4, 5, 6)])
    + [
        SourceFile("noise/doing_the_dishes_train.flac", "noise", "train", "dishes"),
        SourceFile("noise/running_tap_train.flac", "noise", "train", "tap"),
        SourceFile("noise/vinyl_hiss_mono.flac", "noise", "train", "vinyl"),
        SourceFile("noise/doing_the_dishes_dev.flac", "noise", "dev", "dishes"),
        SourceFile("noise/running_tap_dev.flac", "noise", "dev", "tap"),
        SourceFile("music/vibe_ace_train.flac", "music", "train", "vibe_ace"),
        SourceFile("music/solo_trumpet_06_loop3.flac", "music", "train", "trumpet"),
        SourceFile("music/vibe_ace_dev.flac", "music", "dev", "vibe_ace"),
    ]
)

#: Speakers whose utterances are used as targets, per split.
TARGET_SPEAKERS: dict[str, tuple[str, ...]] = {
    "train": ("p225", "p227", "1363", "1963", "4214", "1455", "2518", "aew"),
    "dev": ("p226", "p228", "201"),
}

#: Silence trimming of target utterances: 10 ms frames, threshold below the loudest frame (dB),
#: margin kept around the first / last frame above threshold (s).
TRIM_FRAME_S = 0.010
TRIM_THRESHOLD_DB = 40.0
TRIM_MARGIN_S = 0.05


def assets_dir() -> Path:
    """Folder holding the embedded recordings (``clarity_se/assets/demo_sources``).

    Returns
    -------
    pathlib.Path
        Existing directory.
    """
    return Path(str(resources.files("clarity_se") / "assets" / "demo_sources"))


def hrir_path() -> Path:
    """Path of the embedded MIT KEMAR SOFA file (Gardner & Martin 1995)."""
    return assets_dir() / "rir" / "mit_kemar_normal_pinna.sofa"


def target_name(entry: SourceFile) -> str:
    """CEC2 target name of an utterance: its file stem (CEC2 target names carry no extension)."""
    return Path(entry.path).stem


def masker_name(entry_or_speaker: SourceFile | str) -> str:
    """CEC2 interferer name: ``<speaker>.wav`` for speech, the file name for noise / music."""
    if isinstance(entry_or_speaker, str):
        return f"{entry_or_speaker}.wav"
    if entry_or_speaker.kind == "speech":
        return f"{entry_or_speaker.group}.wav"
    return Path(entry_or_speaker.path).name


@functools.cache
def _read_44k(path: str) -> np.ndarray:
    """Read one catalogue file as mono float64 at 44.1 kHz (``[time]``, full scale 1.0)."""
    full = assets_dir() / path
    if not full.is_file():
        raise FileNotFoundError(f"{full}: demo source missing (reinstall clarity_se)")
    x, sr = sf.read(str(full), dtype="float64", always_2d=True)
    x = x.mean(axis=1)
    if sr != SAMPLE_RATE:
        g = np.gcd(SAMPLE_RATE, sr)
        x = resample_poly(x, SAMPLE_RATE // g, sr // g)
    x.setflags(write=False)
    return x


def trim_silence(x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Cut leading and trailing silence from an utterance.

    Frames of ``TRIM_FRAME_S`` whose energy is more than ``TRIM_THRESHOLD_DB`` below the loudest
    frame count as silence; ``TRIM_MARGIN_S`` is kept on both sides.

    Parameters
    ----------
    x : ndarray [shape=(time,)], float
        Utterance.
    sample_rate : int
        Sample rate in Hz.

    Returns
    -------
    ndarray [shape=(time',)]
        A view of ``x``.
    """
    frame = max(1, int(TRIM_FRAME_S * sample_rate))
    n_frames = x.size // frame
    if n_frames == 0:
        return x
    energy = (x[: n_frames * frame].reshape(n_frames, frame) ** 2).mean(axis=1)
    level_db = 10 * np.log10(energy + 1e-20)
    active = np.flatnonzero(level_db > level_db.max() - TRIM_THRESHOLD_DB)
    margin = int(TRIM_MARGIN_S * sample_rate)
    start = max(0, active[0] * frame - margin)
    stop = min(x.size, (active[-1] + 1) * frame + margin)
    return x[start:stop]


def entries(kind: str | None = None, split: str | None = None) -> list[SourceFile]:
    """Catalogue entries filtered by type and split (catalogue order)."""
    return [
        e
        for e in CATALOGUE
        if (kind is None or e.kind == kind) and (split is None or e.split == split)
    ]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def targets(split: str) -> list[SourceFile]:
    """Target utterances of a split (speakers in ``TARGET_SPEAKERS[split]``).

    Raises
    ------
    ValueError
        Unknown split.
    """
    _check_split(split)
    return [e for e in entries("speech", split) if e.group in TARGET_SPEAKERS[split]]


@functools.cache
def _target_by_name() -> dict[str, SourceFile]:
    return {target_name(e): e for e in entries("speech")}


def load_target(name: str) -> np.ndarray:
    """Target utterance by CEC2 target name: silence-trimmed, mono, 44.1 kHz.

    Parameters
    ----------
    name : str
        File stem, e.g. ``"p226_005"``.

    Returns
    -------
    ndarray [shape=(time,)], float64, read-only
        The utterance (full scale 1.0 as in the recording).

    Raises
    ------
    ValueError
        Unknown target name.
    """
    entry = _target_by_name().get(name)
    if entry is None:
        raise ValueError(f"target {name!r}: not in the demo source catalogue")
    return _trimmed(entry.path)


@functools.cache
def _trimmed(path: str) -> np.ndarray:
    x = np.array(trim_silence(_read_44k(path)))
    x.setflags(write=False)
    return x


@functools.cache
def _masker_index() -> dict[tuple[str, str], tuple[str, str, tuple[str, ...]]]:
    """(type, name) -> (split, group, files) for every interferer of the catalogue."""
    index: dict[tuple[str, str], tuple[str, str, tuple[str, ...]]] = {}
    for e in CATALOGUE:
        key = (e.kind, masker_name(e))
        split, group, files = index.get(key, (e.split, e.group, ()))
        index[key] = (split, group, files + (e.path,))
    return index


@functools.cache
def load_masker(kind: str, name: str) -> np.ndarray:
    """Interferer signal by CEC2 (type, name): mono, 44.1 kHz, read-only.

    Speech maskers are the speaker's silence-trimmed utterances concatenated in catalogue
    order (CEC2 uses one long file per masker speaker).

    Parameters
    ----------
    kind : {"speech", "noise", "music"}
        CEC2 interferer ``type``.
    name : str
        CEC2 interferer ``name`` (e.g. ``"p228.wav"``, ``"running_tap_dev.flac"``).

    Returns
    -------
    ndarray [shape=(time,)], float64

    Raises
    ------
    ValueError
        Unknown (type, name).
    """
    info = _masker_index().get((kind, name))
    if info is None:
        raise ValueError(f"interferer ({kind!r}, {name!r}): not in the demo source catalogue")
    _, _, files = info
    if kind == "speech":
        x = np.concatenate([_trimmed(p) for p in files])
    else:
        x = np.array(_read_44k(files[0]))
    x.setflags(write=False)
    return x


def maskers(kind: str, split: str) -> dict[str, list[tuple[str, int]]]:
    """Interferers of one type and split grouped as CEC2 does (list of lists).

    Parameters
    ----------
    kind : {"speech", "noise", "music"}
    split : {"train", "dev"}

    Returns
    -------
    dict
        group -> list of (name, n_samples at 44.1 kHz), groups and names in catalogue order.
    """
    _check_split(split)
    out: dict[str, list[tuple[str, int]]] = {}
    for (k, name), (s, group, _) in _masker_index().items():
        if k == kind and s == split:
            out.setdefault(group, []).append((name, int(load_masker(k, name).size)))
    return out


def speaker_of(kind: str, name: str) -> str:
    """Group (speaker id for speech) of a CEC2 interferer or target name."""
    if kind == "target":
        entry = _target_by_name().get(name)
        if entry is None:
            raise ValueError(f"target {name!r}: not in the demo source catalogue")
        return entry.group
    info = _masker_index().get((kind, name))
    if info is None:
        raise ValueError(f"interferer ({kind!r}, {name!r}): not in the demo source catalogue")
    return info[1]


def speakers(split: str) -> set[str]:
    """All speakers (targets and speech maskers) a split may use."""
    _check_split(split)
    return {e.group for e in entries("speech", split)}
