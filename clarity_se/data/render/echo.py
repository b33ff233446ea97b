"""Echo scenes in the AEC Challenge synthetic layout, rendered from real recordings.

``clarity-se aec-data OUT`` (:func:`build_aec_dataset`) writes ``OUT/meta.csv`` and the four
signal folders of :mod:`clarity_se.data.aec_challenge` (16 kHz, 16-bit PCM). Each clip
(``fileid`` N) is drawn by :meth:`EchoSceneRenderer.render` from its own generator, seeded from
a SHA-256 of ``(seed, split, N)``, so a clip does not depend on the others, on their order or on
the number of worker processes.

Signal model (``x``: far-end signal = loopback file; ``s``: near-end speech; ``v``: noise)::

    x   = far-end talker speech (+ far-end noise when is_farend_noisy)
    u   = NL(x) when is_farend_nonlinear else x          loudspeaker / receiver
    d   = (h * u)(t - D)                                 echo (h may change at echo_path_change_s)
    mic = s + g d + v                                    g sets the SER

**Talkers.** Speech comes from ``DATA_ROOT/speech/**`` (the shared set: VCTK, CMU ARCTIC,
LibriSpeech and its 241 extra readers). The talker of a file is parsed from its name
(:func:`talker_of`); far-end and near-end talkers of a clip are distinct. ``split="test"``
draws only held-out talkers: those whose SHA-256 of ``"clarity_se.aec/<talker>"`` is 0 mod 5
(about one in five), ``"train"`` the others (:func:`talker_split`). Utterances are
silence-trimmed and concatenated with 0.2-0.8 s pauses.

**Talk types.** ``st``: the near-end talker is silent (``nearend_speech`` all zeros); ``dt``: a
near-end segment of 35-70 % of the clip overlaps the far-end speech; ``nst``: the far end is
silent (loopback and echo all zeros), the near-end talker fills the clip.

**Echo paths** (``echo_path`` column):

- ``room``: a shoebox room simulated with pyroomacoustics (image sources, Scheibler et al.
  2018), 3-8 x 3-7 x 2.4-3.5 m, RT60 0.15-0.7 s (Sabine inversion), the loudspeaker 5 cm to 1 m
  from the microphone (``loudspeaker_distance_m``); truncated at 1 s.
- ``measured``: a measured response of ``DATA_ROOT/rir`` (Rostock KEMAR BRIRs, each ear one
  response; the seminar-room clap RIR), resampled to 16 kHz and cut 1 ms before its onset
  (10 % of the peak): the propagation delay is replaced by the bulk delay below. Held out by
  file: ``test`` uses every third file from the second on (sorted), ``train`` the rest.
- ``hearing_aid``: the streaming path of a behind-the-ear hearing aid, receiver (in the ear
  canal) to the BTE microphone: a short, strong path, :func:`hearing_aid_path`.

The loudspeaker nonlinearity is the AEC Challenge's (Sridhar et al. 2021, after Zhang & Wang
2018): :func:`loudspeaker_nonlinearity`. The bulk delay ``D`` (``bulk_delay_samples``) is drawn
per clip in ``delay_ms`` (jitter across clips); with an echo-path change (``is_echo_path_change``,
at ``echo_path_change_s`` in the middle 40-60 % of the clip, 20 ms raised-cosine cross-fade) the
new path is another draw of the same kind and its bulk delay moves by up to +-40 samples.

**Levels.** The near-end speech level is -35 to -25 dBFS (RMS over its active segment). The
SER, ``ser`` in ``meta.csv``, is drawn in [-10, 10] dB: ``10 log10(P_s / P_d)`` with ``P_s``
the near-end power over its segment (``nearend_start_s``, ``nearend_duration_s``) and ``P_d``
the echo power over the clip (the far end talks throughout); far-end single talk clips scale
the echo against the near-end segment that was drawn but not added (nst clips record the drawn
value). Near-end noise (``is_nearend_noisy``, ``snr_nearend_db`` 5-35 dB
against the same segment) comes from ``DATA_ROOT/noise/**``: ``train`` uses the first 70 % of
each recording, ``test`` the last 30 %. A clip whose microphone would clip is scaled down as a
whole (all four files by the same factor).

Unlike the challenge's files, ``nearend_speech`` holds the clean near-end speech exactly as it
is in the microphone (no noise, ``nearend_scale`` = 1), so it is the PESQ / SI-SDR reference.

References
----------
K. Sridhar et al., "ICASSP 2021 Acoustic Echo Cancellation Challenge: Datasets, Testing
Framework, and Results", ICASSP 2021, sec. 2.2 (synthetic set, SER -10..10 dB, nonlinearity).
H. Zhang and D. L. Wang, "Deep learning for acoustic echo cancellation in noisy and double-talk
scenarios", Interspeech 2018, sec. 4, eqs. (5)-(7) (hard clipping + sigmoidal loudspeaker model).
R. Scheibler, E. Bezzam and I. Dokmanic, "Pyroomacoustics", ICASSP 2018.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import logging
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from clarity_se.data.aec_challenge import SAMPLE_RATE, TALK_TYPES, synthetic_path

logger = logging.getLogger(__name__)

#: Echo-path kinds (``echo_path`` column).
ECHO_PATH_KINDS = ("room", "measured", "hearing_aid")
#: Splits: ``train`` and the held-out ``test`` (distinct talkers, noise segments, measured paths).
SPLITS = ("train", "test")
#: ``meta.csv`` columns written, in order (the challenge's required ones first).
META_COLUMNS = (
    "nearend_speaker",
    "nearend_wav_path",
    "farend_speaker",
    "farend_wav_path",
    "ser",
    "is_farend_nonlinear",
    "is_farend_noisy",
    "is_nearend_noisy",
    "split",
    "fileid",
    "nearend_scale",
    "talk_type",
    "echo_path",
    "echo_path_detail",
    "loudspeaker_distance_m",
    "rt60_s",
    "bulk_delay_samples",
    "is_echo_path_change",
    "echo_path_change_s",
    "snr_nearend_db",
    "snr_farend_db",
    "nearend_start_s",
    "nearend_duration_s",
    "seed",
)
AUDIO_EXTENSIONS = (".flac", ".wav")
#: Default data root: ``$CLARITY_SE_SHARED_DATA`` or the project's shared data set.
DEFAULT_DATA_ROOT = os.environ.get("CLARITY_SE_SHARED_DATA", "/work/shared/data")
#: Cross-fade of an echo-path change, s.
PATH_CHANGE_FADE_S = 0.020
#: Largest bulk-delay move at an echo-path change, samples.
PATH_CHANGE_DELAY_JITTER = 40


# --------------------------------------------------------------------------- options
@dataclass(frozen=True)
class EchoRenderOptions:
    """What :class:`EchoSceneRenderer` draws (ranges are uniform, ``(low, high)``).

    Attributes
    ----------
    clip_s : float
        Clip length, s (the challenge's 10 s).
    split : {"train", "test"}
        Talker / noise / measured-path pool; ``test`` is held out from ``train``.
    seed : int
        Dataset seed.
    talk_mix : tuple of 3 float
        Probabilities of ``st``, ``dt``, ``nst`` (normalised).
    path_mix : tuple of 3 float
        Probabilities of ``room``, ``measured``, ``hearing_aid`` echo paths (normalised).
    ser_db : (float, float)
        Signal-to-echo ratio range, dB (the challenge's -10..10).
    p_nonlinear, p_path_change, p_nearend_noise, p_farend_noise : float
        Probabilities of the loudspeaker nonlinearity, an echo-path change, near-end noise and
        far-end noise.
    snr_nearend_db, snr_farend_db : (float, float)
        Noise SNR ranges, dB.
    delay_ms : (float, float)
        Bulk delay of the echo behind the loopback, ms.
    nearend_level_dbfs : (float, float)
        RMS level of the near-end speech over its segment, dBFS.
    loudspeaker_distance_m : (float, float)
        Loudspeaker-to-microphone distance of simulated rooms, m (5 cm to 1 m).
    """

    clip_s: float = 10.0
    split: str = "train"
    seed: int = 0
    talk_mix: tuple[float, float, float] = (0.3, 0.5, 0.2)
    path_mix: tuple[float, float, float] = (0.4, 0.3, 0.3)
    ser_db: tuple[float, float] = (-10.0, 10.0)
    p_nonlinear: float = 0.5
    p_path_change: float = 0.2
    p_nearend_noise: float = 0.5
    p_farend_noise: float = 0.1
    snr_nearend_db: tuple[float, float] = (5.0, 35.0)
    snr_farend_db: tuple[float, float] = (10.0, 40.0)
    delay_ms: tuple[float, float] = (0.0, 30.0)
    nearend_level_dbfs: tuple[float, float] = (-35.0, -25.0)
    loudspeaker_distance_m: tuple[float, float] = (0.05, 1.0)

    def __post_init__(self) -> None:
        if not 0.25 <= self.clip_s <= 60:
            raise ValueError(f"clip_s must be in [0.25, 60] s, got {self.clip_s}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        for name in ("talk_mix", "path_mix"):
            mix = getattr(self, name)
            if len(mix) != 3 or min(mix) < 0 or sum(mix) <= 0:
                raise ValueError(f"{name} must be 3 non-negative weights with a positive sum, "
                                 f"got {mix}")
        for name in ("p_nonlinear", "p_path_change", "p_nearend_noise", "p_farend_noise"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("ser_db", "snr_nearend_db", "snr_farend_db", "delay_ms",
                     "nearend_level_dbfs", "loudspeaker_distance_m"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"{name} must be (low, high) with low <= high, got "
                                 f"{getattr(self, name)}")
        if self.delay_ms[0] < 0:
            raise ValueError(f"delay_ms must be >= 0, got {self.delay_ms}")
        if not 0.05 <= self.loudspeaker_distance_m[0] <= self.loudspeaker_distance_m[1] <= 1.5:
            raise ValueError("loudspeaker_distance_m must lie in [0.05, 1.5] m, got "
                             f"{self.loudspeaker_distance_m}")


# --------------------------------------------------------------------------- RNG and sources
def clip_rng(seed: int, split: str, fileid: int) -> np.random.Generator:
    """Generator of one clip, seeded from SHA-256 of ``"aec/<seed>/<split>/<fileid>"``."""
    digest = hashlib.sha256(f"aec/{int(seed)}/{split}/{int(fileid)}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def talker_of(path: str | os.PathLike) -> str:
    """Talker id of a speech file from its name.

    ``1034-121119-0000`` (LibriSpeech) -> ``"ls1034"``; ``p225_003`` (VCTK) -> ``"p225"``;
    ``cmu_arctic_us_aew_a0001`` -> ``"arctic_aew"``; anything else -> its stem.
    """
    stem = Path(path).stem
    if m := re.fullmatch(r"(\d+)-\d+-\d+", stem):
        return f"ls{m[1]}"
    if m := re.fullmatch(r"(p\d+)_\d+", stem):
        return m[1]
    if m := re.fullmatch(r"cmu_arctic_\w+?_(\w+)_[ab]\d+", stem):
        return f"arctic_{m[1]}"
    return stem


def talker_split(talker: str) -> str:
    """``"test"`` for held-out talkers (SHA-256 of ``"clarity_se.aec/<talker>"`` = 0 mod 5)."""
    digest = hashlib.sha256(f"clarity_se.aec/{talker}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "little") % 5 == 0 else "train"


def _audio_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)


@functools.lru_cache(maxsize=128)
def read_mono_16k(path: str) -> np.ndarray:
    """A recording as mono float64 at 16 kHz (channels averaged, ``resample_poly``); the last
    128 files read are cached (read-only arrays).

    Raises
    ------
    ValueError
        Unreadable file (names it).
    """
    import soundfile as sf
    from scipy.signal import resample_poly

    try:
        x, sr = sf.read(path, dtype="float64", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise ValueError(f"{path}: unreadable audio ({exc})") from None
    x = x.mean(axis=1)
    if sr != SAMPLE_RATE:
        g = np.gcd(SAMPLE_RATE, int(sr))
        x = resample_poly(x, SAMPLE_RATE // g, int(sr) // g)
    x.setflags(write=False)
    return x


@dataclass(frozen=True)
class MeasuredPath:
    """A measured echo path: ``name`` (file[/channel]) and the 16 kHz response."""

    name: str
    response: np.ndarray = field(repr=False)


def _trim_response(h: np.ndarray, max_s: float = 1.0) -> np.ndarray:
    """Cut a measured response 1 ms before its onset (10 % of the peak) and at ``max_s``."""
    peak = np.max(np.abs(h))
    if peak <= 0:
        raise ValueError("all-zero response")
    onset = int(np.flatnonzero(np.abs(h) >= 0.1 * peak)[0])
    start = max(0, onset - int(0.001 * SAMPLE_RATE))
    h = h[start : start + int(max_s * SAMPLE_RATE)]
    fade = min(h.size // 4, int(0.05 * SAMPLE_RATE))
    if fade > 1:
        h = h.copy()
        h[-fade:] *= np.hanning(2 * fade)[fade:]
    return h / np.max(np.abs(h))


def load_measured_paths(rir_dir: str | os.PathLike) -> dict[str, list[MeasuredPath]]:
    """Measured responses of ``rir_dir`` by split.

    ``*.mat`` files in the Rostock format (struct ``data`` with ``ir [time, ears]`` and ``fs``)
    give one response per ear; mono or multi-channel ``*.flac``/``*.wav`` one per channel.
    SOFA HRIR sets are not echo paths and are ignored. Files sorted by path; ``test`` gets
    every third from the second on, ``train`` the others (a single file goes to both).

    Returns
    -------
    dict
        ``{"train": [...], "test": [...]}``.
    """
    import scipy.io
    from scipy.signal import resample_poly

    rir_dir = Path(rir_dir)
    files = sorted(p for p in rir_dir.rglob("*") if p.suffix.lower() in (".mat", *AUDIO_EXTENSIONS))
    out: dict[str, list[MeasuredPath]] = {"train": [], "test": []}
    for index, path in enumerate(files):
        name = path.relative_to(rir_dir).with_suffix("").as_posix()
        if path.suffix.lower() == ".mat":
            try:
                data = scipy.io.loadmat(str(path), struct_as_record=False, squeeze_me=True)["data"]
                ir, fs = np.atleast_2d(np.asarray(data.ir, dtype=np.float64)), int(data.fs)
            except (KeyError, AttributeError, ValueError, OSError) as exc:
                logger.warning("%s: skipped (not a Rostock BRIR .mat: %s)", path, exc)
                continue
            if ir.shape[0] < ir.shape[1]:
                ir = ir.T
        else:
            import soundfile as sf

            ir, fs = sf.read(str(path), dtype="float64", always_2d=True)
        if fs != SAMPLE_RATE:
            g = np.gcd(SAMPLE_RATE, fs)
            ir = resample_poly(ir, SAMPLE_RATE // g, fs // g, axis=0)
        paths = [
            MeasuredPath(f"{name}/{ch}" if ir.shape[1] > 1 else name, _trim_response(ir[:, ch]))
            for ch in range(ir.shape[1])
        ]
        splits = ("train", "test") if len(files) == 1 else (
            ("test",) if index % 3 == 1 else ("train",))
        for split in splits:
            out[split].extend(paths)
    return out


@dataclass
class SourceCatalogue:
    """Recordings of a data root, by split.

    Attributes
    ----------
    root : pathlib.Path
    talkers : dict of str to list of pathlib.Path
        Speech files per talker of the split.
    noises : list of (pathlib.Path, float, float)
        Noise recordings with the fraction range of the split (0-0.7 train, 0.7-1 test).
    measured : list of MeasuredPath
    """

    root: Path
    talkers: dict[str, list[Path]]
    noises: list[tuple[Path, float, float]]
    measured: list[MeasuredPath]

    @classmethod
    def scan(cls, root: str | os.PathLike, split: str) -> SourceCatalogue:
        """Scan ``root/speech``, ``root/noise``, ``root/rir``.

        Raises
        ------
        ValueError
            Unknown split, or fewer than two talkers in the split.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        root = Path(root)
        talkers: dict[str, list[Path]] = {}
        for path in _audio_files(root / "speech"):
            talker = talker_of(path)
            if talker_split(talker) == split:
                talkers.setdefault(talker, []).append(path)
        if len(talkers) < 2:
            raise ValueError(f"{root / 'speech'}: need at least 2 talkers of split {split!r} "
                             f"(far end and near end), found {len(talkers)}")
        span = (0.0, 0.7) if split == "train" else (0.7, 1.0)
        noises = [(p, *span) for p in _audio_files(root / "noise")]
        measured = load_measured_paths(root / "rir")[split] if (root / "rir").is_dir() else []
        return cls(root, dict(sorted(talkers.items())), noises, measured)


# --------------------------------------------------------------------------- signal models
def loudspeaker_nonlinearity(x: np.ndarray, *, clip_fraction: float = 0.8,
                             gamma: float = 4.0) -> np.ndarray:
    """The AEC Challenge loudspeaker model: hard clipping, then a sigmoid.

    Zhang & Wang (2018), eqs. (5)-(7), used for the AEC Challenge synthetic set::

        x_hard = clip(x, -x_max, x_max),  x_max = 0.8 max|x|
        b      = 1.5 x_hard - 0.3 x_hard^2
        x_nl   = gamma (2 / (1 + exp(-a b)) - 1),  a = 4 if b > 0 else 0.5,  gamma = 4

    Parameters
    ----------
    x : np.ndarray [shape=(time,)], float, full scale 1.0
        Loudspeaker input (the far-end signal). The sigmoid acts on absolute amplitude, so the
        result depends on the level of ``x``.
    clip_fraction : float
        ``x_max`` as a fraction of ``max|x|`` (0.8: "80 % of the maximum volume").
    gamma : float
        Sigmoid gain.

    Returns
    -------
    np.ndarray [shape=(time,)], float64
        Loudspeaker output (not normalised; the SER scaling sets the echo level).
    """
    x = np.asarray(x, dtype=np.float64)
    x_max = clip_fraction * float(np.max(np.abs(x))) if x.size else 0.0
    x_hard = np.clip(x, -x_max, x_max)
    b = 1.5 * x_hard - 0.3 * x_hard**2
    a = np.where(b > 0, 4.0, 0.5)
    return gamma * (2.0 / (1.0 + np.exp(-a * b)) - 1.0)


def fractional_delay(delay: float, n_taps: int, half_width: int = 8) -> np.ndarray:
    """Hann-windowed sinc delaying by ``delay`` samples (taps before 0 dropped), ``[n_taps]``."""
    k = np.arange(n_taps, dtype=np.float64)
    t = k - delay
    window = np.where(np.abs(t) <= half_width, 0.5 + 0.5 * np.cos(np.pi * t / half_width), 0.0)
    return np.sinc(t) * window


def hearing_aid_path(rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Receiver-to-BTE-microphone echo path of a streaming hearing aid (parametric model).

    In a phone call streamed to a hearing aid the far-end voice is played by the receiver in
    the ear canal and leaks out through the vent / open dome to the behind-the-ear microphone,
    2-4 cm away: the acoustic feedback path of hearing aids. Measured feedback paths are short
    and strong: a delay well under 1 ms, most energy within a few ms, a band-pass response that
    peaks at 2-5 kHz (receiver resonance; the vent passes little low-frequency energy out) and
    a weak room contribution (Kates 2008, ch. 7; van Waterschoot & Moonen 2011, sec. II; Spriet
    et al. 2010). This model draws (uniform ranges)::

        direct   fractional delay 0.15-0.5 ms (acoustic path + transducers)
        shaping  2nd-order Butterworth high-pass at 300-1000 Hz (vent / leak)
                 + resonance (scipy iirpeak) at 2-4.5 kHz, Q 1-3, 0-12 dB above broadband
        pinna    one reflection 0.1-0.6 ms later, amplitude +-0.1-0.4
        room     exponentially decaying Gaussian tail, RT60 0.2-0.5 s, 20-35 dB below the
                 direct part, from 2 ms on

    It is a model with literature-shaped parameters, not a fit to measured paths.

    Parameters
    ----------
    rng : numpy.random.Generator
    sample_rate : int
        Hz.

    Returns
    -------
    np.ndarray [shape=(taps,)], float64
        Impulse response, peak magnitude 1.

    References
    ----------
    J. M. Kates, *Digital Hearing Aids*, Plural, 2008, ch. 7 (feedback cancellation).
    T. van Waterschoot and M. Moonen, "Fifty years of acoustic feedback control: state of the
    art and future challenges", Proc. IEEE 99(2), 2011.
    A. Spriet et al., "Evaluation of feedback reduction techniques in hearing aids based on
    physical performance measures", J. Acoust. Soc. Am. 128(3), 2010.
    """
    from scipy.signal import butter, iirpeak, lfilter

    fs = float(sample_rate)
    n_direct = int(0.008 * fs)
    delay = rng.uniform(0.15e-3, 0.5e-3) * fs
    direct = fractional_delay(delay, n_direct)
    reflection = rng.uniform(0.1, 0.4) * rng.choice([-1.0, 1.0])
    direct += reflection * fractional_delay(delay + rng.uniform(0.1e-3, 0.6e-3) * fs, n_direct)
    b_hp, a_hp = butter(2, rng.uniform(300.0, 1000.0), btype="highpass", fs=fs)
    broadband = lfilter(b_hp, a_hp, direct)
    b_pk, a_pk = iirpeak(rng.uniform(2000.0, 4500.0), rng.uniform(1.0, 3.0), fs=fs)
    resonance = lfilter(b_pk, a_pk, broadband)
    h = broadband + 10 ** (rng.uniform(0.0, 12.0) / 20) * resonance
    h[-n_direct // 4 :] *= np.hanning(2 * (n_direct // 4))[n_direct // 4 :]
    rt60 = rng.uniform(0.2, 0.5)
    n_tail = int(rt60 * fs)
    t = np.arange(n_tail) / fs
    tail = rng.standard_normal(n_tail) * np.exp(-6.91 * t / rt60)
    tail *= np.sqrt(np.sum(h**2) / np.sum(tail**2)) * 10 ** (-rng.uniform(20.0, 35.0) / 20)
    start = int(0.002 * fs)
    out = np.zeros(start + n_tail)
    out[:n_direct] += h
    out[start:] += tail
    return out / np.max(np.abs(out))


def room_echo_path(
    rng: np.random.Generator,
    distance_m: tuple[float, float] = (0.05, 1.0),
    *,
    room: dict | None = None,
) -> tuple[np.ndarray, dict]:
    """Loudspeaker-to-microphone response of a simulated shoebox room (pyroomacoustics ISM).

    Parameters
    ----------
    rng : numpy.random.Generator
    distance_m : (float, float)
        Loudspeaker-microphone distance range, m.
    room : dict, optional
        ``{"dims", "rt60", "mic"}`` of an earlier draw: keep the room and microphone and move
        only the loudspeaker (an echo-path change).

    Returns
    -------
    h : np.ndarray [shape=(taps,)], float64
        Response at 16 kHz without pyroomacoustics' 40-sample filter offset (the direct path
        arrives after ``distance / c``), at most 1 s, peak magnitude 1.
    info : dict
        ``dims`` (m), ``rt60`` (s), ``mic``, ``source`` (m), ``distance_m``.
    """
    import pyroomacoustics as pra

    if room is None:
        dims = np.array([rng.uniform(3, 8), rng.uniform(3, 7), rng.uniform(2.4, 3.5)])
        rt60 = rng.uniform(0.15, 0.7)
        mic = np.array([rng.uniform(0.6, d - 0.6) for d in dims])
    else:
        dims, rt60, mic = np.asarray(room["dims"]), room["rt60"], np.asarray(room["mic"])
    for _ in range(100):
        distance = rng.uniform(*distance_m)
        direction = rng.standard_normal(3)
        direction /= np.linalg.norm(direction)
        source = mic + distance * direction
        if np.all(source > 0.1) and np.all(source < dims - 0.1):
            break
    else:  # pragma: no cover - the microphone is >= 0.6 m from every wall
        raise RuntimeError("could not place the loudspeaker inside the room")
    absorption, max_order = pra.inverse_sabine(rt60, dims)
    shoebox = pra.ShoeBox(dims, fs=SAMPLE_RATE, materials=pra.Material(absorption),
                          max_order=int(min(max_order, 60)), air_absorption=False)
    shoebox.add_source(source)
    shoebox.add_microphone(mic)
    shoebox.compute_rir()
    offset = pra.constants.get("frac_delay_length") // 2
    h = np.asarray(shoebox.rir[0][0], dtype=np.float64)[offset : offset + SAMPLE_RATE]
    info = {"dims": dims.tolist(), "rt60": float(rt60), "mic": mic.tolist(),
            "source": source.tolist(), "distance_m": float(distance)}
    return h / np.max(np.abs(h)), info


# --------------------------------------------------------------------------- clip assembly
@dataclass(frozen=True)
class RenderedClip:
    """One rendered clip: the four signals (float64, 16 kHz, equal length) and its meta row."""

    fileid: int
    farend: np.ndarray
    echo: np.ndarray
    nearend: np.ndarray
    mic: np.ndarray
    meta: dict[str, str]


def _power(x: np.ndarray) -> float:
    return float(np.mean(x**2)) if x.size else 0.0


def _fmt(value: float, nd: int = 4) -> str:
    return f"{value:.{nd}f}"


class EchoSceneRenderer:
    """Draw and render echo clips (usable on the fly, e.g. by a training data set).

    Parameters
    ----------
    data_root : path-like
        Folder with ``speech/``, ``noise/`` and ``rir/`` (the shared data set layout).
    options : EchoRenderOptions

    Raises
    ------
    ValueError
        Bad data root (fewer than two talkers in the split).
    """

    def __init__(self, data_root: str | os.PathLike, options: EchoRenderOptions) -> None:
        self.options = options
        self.catalogue = SourceCatalogue.scan(data_root, options.split)
        self.n = int(round(options.clip_s * SAMPLE_RATE))

    # -- sources
    def _speech(
        self, rng: np.random.Generator, talker: str, length: int
    ) -> tuple[np.ndarray, list]:
        """``length`` samples of a talker: trimmed utterances with 0.2-0.8 s pauses."""
        from clarity_se.data.render.sources import trim_silence

        files = self.catalogue.talkers[talker]
        order = rng.permutation(len(files))
        pieces, used, total, k = [], [], 0, 0
        while total < length:
            path = files[order[k % len(files)]]
            k += 1
            utterance = trim_silence(read_mono_16k(str(path)), SAMPLE_RATE)
            if k > 1:
                pause = np.zeros(int(rng.uniform(0.2, 0.8) * SAMPLE_RATE))
                pieces.append(pause)
                total += pause.size
            pieces.append(utterance)
            total += utterance.size
            used.append(path.relative_to(self.catalogue.root).as_posix())
            if k > 1000:  # pragma: no cover - guards against empty utterances
                raise ValueError(f"talker {talker}: utterances too short")
        return np.concatenate(pieces)[:length], used

    def _noise(self, rng: np.random.Generator, length: int) -> tuple[np.ndarray, str]:
        if not self.catalogue.noises:
            return rng.standard_normal(length), "gaussian"
        path, lo, hi = self.catalogue.noises[rng.integers(len(self.catalogue.noises))]
        x = read_mono_16k(str(path))
        segment = x[int(lo * x.size) : max(int(lo * x.size) + 1, int(hi * x.size))]
        if segment.size < length:
            segment = np.tile(segment, length // segment.size + 1)
        start = rng.integers(0, segment.size - length + 1)
        out = segment[start : start + length].copy()
        if _power(out) <= 0:
            out = rng.standard_normal(length)
        return out, path.relative_to(self.catalogue.root).as_posix()

    # -- echo paths
    def _echo_path(self, rng: np.random.Generator, kind: str, state: dict | None):
        """(response, detail, distance_m, rt60_s, state) of one draw of ``kind``."""
        if kind == "room":
            h, info = room_echo_path(rng, self.options.loudspeaker_distance_m, room=state)
            dims = "x".join(f"{d:.1f}" for d in info["dims"])
            detail = f"shoebox {dims} m, loudspeaker at {info['distance_m']:.2f} m"
            return h, detail, info["distance_m"], info["rt60"], info
        if kind == "measured":
            paths = self.catalogue.measured
            if state is not None and len(paths) > 1:
                choices = [p for p in paths if p.name != state["name"]]
            else:
                choices = paths
            path = choices[rng.integers(len(choices))]
            return path.response, path.name, float("nan"), float("nan"), {"name": path.name}
        return hearing_aid_path(rng), "receiver to BTE microphone", float("nan"), float("nan"), {}

    def render(self, fileid: int) -> RenderedClip:
        """Draw and render clip ``fileid`` (deterministic in (seed, split, fileid)).

        Returns
        -------
        RenderedClip
            Signals float64 at 16 kHz, ``mic = nearend + echo (+ noise)`` exactly (before the
            16-bit quantisation of :func:`write_clip`).
        """
        from scipy.signal import fftconvolve

        opt, n, fs = self.options, self.n, SAMPLE_RATE
        rng = clip_rng(opt.seed, opt.split, fileid)
        talk_type = TALK_TYPES[rng.choice(3, p=np.asarray(opt.talk_mix) / sum(opt.talk_mix))]
        kinds = list(ECHO_PATH_KINDS)
        weights = np.asarray(opt.path_mix, dtype=float)
        if not self.catalogue.measured:
            weights[kinds.index("measured")] = 0.0
        if weights.sum() <= 0:
            raise ValueError("path_mix: only 'measured' paths asked for but DATA_ROOT/rir has none")
        kind = kinds[rng.choice(3, p=weights / weights.sum())]
        names = list(self.catalogue.talkers)
        far_talker, near_talker = (names[i] for i in rng.choice(len(names), 2, replace=False))
        ser_db = rng.uniform(*opt.ser_db)
        level_dbfs = rng.uniform(*opt.nearend_level_dbfs)
        nonlinear = bool(rng.random() < opt.p_nonlinear) and talk_type != "nst"
        farend_noisy = bool(rng.random() < opt.p_farend_noise) and talk_type != "nst"
        nearend_noisy = bool(rng.random() < opt.p_nearend_noise)
        path_change = bool(rng.random() < opt.p_path_change) and talk_type != "nst"
        snr_near = rng.uniform(*opt.snr_nearend_db)
        snr_far = rng.uniform(*opt.snr_farend_db)
        delay = int(round(rng.uniform(*opt.delay_ms) * 1e-3 * fs))
        far_peak = rng.uniform(0.25, 0.99)

        # near-end segment (drawn for every talk type: it sets the SER reference)
        if talk_type == "nst":
            start = int(rng.uniform(0.0, 0.1) * n)
            length = n - start - int(rng.uniform(0.0, 0.1) * n)
        else:
            length = int(rng.uniform(0.35, 0.7) * n)
            start = int(rng.uniform(0.15 * n, max(0.15 * n, n - length)))
        length = max(1, min(length, n - start))
        near_seg, near_files = self._speech(rng, near_talker, length)
        near_seg = near_seg * 10 ** (level_dbfs / 20) / np.sqrt(max(_power(near_seg), 1e-20))
        nearend = np.zeros(n)
        nearend[start : start + length] = near_seg
        p_near = _power(near_seg)

        # far end, loudspeaker, echo path(s)
        lead = int(rng.uniform(0.0, 0.3) * fs)
        far_speech, far_files = self._speech(rng, far_talker, n - lead)
        farend = np.concatenate([np.zeros(lead), far_speech])
        farend *= far_peak / max(np.max(np.abs(farend)), 1e-12)
        noise_far_name = ""
        if farend_noisy:
            v, noise_far_name = self._noise(rng, n)
            farend = farend + v * np.sqrt(_power(farend) / _power(v)) * 10 ** (-snr_far / 20)
            farend *= far_peak / max(np.max(np.abs(farend)), 1e-12)
        speaker = loudspeaker_nonlinearity(farend) if nonlinear else farend
        h1, detail, distance, rt60, state = self._echo_path(rng, kind, None)
        echo = np.zeros(n)
        echo[delay:] = fftconvolve(speaker, h1)[: n - delay]
        change_s = float("nan")
        if path_change:
            h2, detail2, _, _, _ = self._echo_path(rng, kind, state)
            detail = f"{detail} -> {detail2}"
            delay2 = int(np.clip(delay + rng.integers(-PATH_CHANGE_DELAY_JITTER,
                                                      PATH_CHANGE_DELAY_JITTER + 1), 0, n - 1))
            echo2 = np.zeros(n)
            echo2[delay2:] = fftconvolve(speaker, h2)[: n - delay2]
            change = int(rng.uniform(0.4, 0.6) * n)
            fade = int(PATH_CHANGE_FADE_S * fs)
            weight = np.zeros(n)
            weight[change + fade :] = 1.0
            ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
            weight[change : change + fade] = ramp[: max(0, min(fade, n - change))]
            echo = (1 - weight) * echo + weight * echo2
            change_s = change / fs
        if talk_type == "nst":
            farend[:] = 0.0
            echo[:] = 0.0
        else:
            echo *= np.sqrt(p_near / max(_power(echo), 1e-20)) * 10 ** (-ser_db / 20)
        if talk_type == "st":
            nearend[:] = 0.0

        noise = np.zeros(n)
        noise_name = ""
        if nearend_noisy:
            v, noise_name = self._noise(rng, n)
            noise = v * np.sqrt(p_near / _power(v)) * 10 ** (-snr_near / 20)
        mic = nearend + echo + noise
        peak = max(np.max(np.abs(mic)), np.max(np.abs(farend)))
        if peak > 0.99:
            scale = 0.99 / peak
            farend, echo, nearend, mic = (farend * scale, echo * scale, nearend * scale,
                                          mic * scale)
        meta = {
            "nearend_speaker": near_talker if talk_type != "st" else "",
            "nearend_wav_path": ";".join(near_files) if talk_type != "st" else "",
            "farend_speaker": far_talker if talk_type != "nst" else "",
            "farend_wav_path": ";".join(far_files) if talk_type != "nst" else "",
            "ser": _fmt(ser_db, 3),
            "is_farend_nonlinear": str(int(nonlinear)),
            "is_farend_noisy": str(int(farend_noisy)),
            "is_nearend_noisy": str(int(nearend_noisy)),
            "split": opt.split,
            "fileid": str(fileid),
            "nearend_scale": "1.0",
            "talk_type": talk_type,
            "echo_path": kind if talk_type != "nst" else "",
            "echo_path_detail": detail if talk_type != "nst" else "",
            "loudspeaker_distance_m": "" if np.isnan(distance) or talk_type == "nst"
            else _fmt(distance, 3),
            "rt60_s": "" if np.isnan(rt60) or talk_type == "nst" else _fmt(rt60, 3),
            "bulk_delay_samples": str(delay) if talk_type != "nst" else "",
            "is_echo_path_change": str(int(path_change)),
            "echo_path_change_s": "" if np.isnan(change_s) else _fmt(change_s, 4),
            "snr_nearend_db": _fmt(snr_near, 2) if nearend_noisy else "",
            "snr_farend_db": _fmt(snr_far, 2) if farend_noisy else "",
            "nearend_start_s": _fmt(start / fs, 4),
            "nearend_duration_s": _fmt(length / fs, 4),
            "seed": str(opt.seed),
        }
        if noise_name or noise_far_name:
            logger.debug("clip %d: noise %s / %s", fileid, noise_name, noise_far_name)
        return RenderedClip(fileid, farend, echo, nearend, mic, meta)


def write_clip(clip: RenderedClip, out: str | os.PathLike) -> None:
    """Write the four signals of a clip (16 kHz, 16-bit PCM, atomic) in the synthetic layout."""
    from clarity_se.data.audio_io import write_audio

    for kind, signal in (("farend", clip.farend), ("echo", clip.echo),
                         ("nearend", clip.nearend), ("mic", clip.mic)):
        write_audio(synthetic_path(out, kind, clip.fileid), signal, SAMPLE_RATE, subtype="PCM_16")


def write_meta(path: str | os.PathLike, rows: list[dict[str, str]]) -> None:
    """Write ``meta.csv`` (:data:`META_COLUMNS`, rows sorted by fileid) atomically."""
    from clarity_se.data.audio_io import atomic_write_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(META_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: int(r["fileid"])):
        writer.writerow(row)
    atomic_write_text(path, buffer.getvalue())


_WORKER: dict = {}


def _render_job(job: tuple[str, EchoRenderOptions, str, int]) -> dict[str, str]:
    data_root, options, out, fileid = job
    key = (data_root, options)
    if key not in _WORKER:
        _WORKER.clear()
        _WORKER[key] = EchoSceneRenderer(data_root, options)
    clip = _WORKER[key].render(fileid)
    write_clip(clip, out)
    return clip.meta


def build_aec_dataset(
    out: str | os.PathLike,
    *,
    n_clips: int,
    options: EchoRenderOptions | None = None,
    data_root: str | os.PathLike = DEFAULT_DATA_ROOT,
    first_fileid: int = 0,
    workers: int = 1,
) -> dict:
    """Render ``n_clips`` echo clips into ``out`` in the AEC Challenge synthetic layout.

    Parameters
    ----------
    out : path-like
        Output folder (gets ``meta.csv`` and the four signal folders).
    n_clips : int
        Number of clips (fileids ``first_fileid ... first_fileid + n_clips - 1``).
    options : EchoRenderOptions, optional
        Defaults: 10 s clips, train split, seed 0.
    data_root : path-like
        Recordings (``speech/``, ``noise/``, ``rir/``).
    first_fileid : int
        First fileid.
    workers : int
        Processes; the output does not depend on it.

    Returns
    -------
    dict
        ``{"fileids": [...], "talk_types": {type: count}, "seconds": float}``.

    Raises
    ------
    ValueError
        Bad counts, options or data root.
    """
    from tqdm import tqdm

    options = options or EchoRenderOptions()
    if n_clips < 0 or first_fileid < 0:
        raise ValueError(f"n_clips and first_fileid must be >= 0, got {n_clips}, {first_fileid}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    EchoSceneRenderer(data_root, options)  # fail early on a bad data root
    jobs = [(str(data_root), options, str(out), i)
            for i in range(first_fileid, first_fileid + n_clips)]
    if workers == 1 or len(jobs) <= 1:
        rows = [_render_job(j) for j in tqdm(jobs, desc="aec-data", unit="clip", disable=None)]
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
            rows = list(tqdm(pool.map(_render_job, jobs), total=len(jobs), desc="aec-data",
                             unit="clip", disable=None))
    write_meta(out / "meta.csv", rows)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["talk_type"]] = counts.get(row["talk_type"], 0) + 1
    return {"fileids": [int(r["fileid"]) for r in rows], "talk_types": counts,
            "seconds": time.perf_counter() - t0}
