"""Domain-randomised training mixtures for the six hearing-aid microphones, made on the fly.

:class:`RandomisedMixtures` is a torch ``Dataset`` whose item ``index`` is a fresh scene drawn
from a generator seeded with ``(seed, epoch, index)``: the same triple gives the same item in
any process, worker or order. Each item::

    {"mixture":  Tensor [6, T] float32, 44.1 kHz, rows CH1-L, CH1-R, CH2-L, CH2-R, CH3-L, CH3-R
                 (front, middle, rear BTE microphones), file scale (RMS 1 == 100 dB SPL),
     "sources":  Tensor [n_src, 2, T] float32: source 0 the target at the CH1 (front) mics
                 (``off_front_target="talkers"``, target not in front: plus each talker),
                 then (n_src == 2) the residual mixture[:2] - source 0, or (n_src >= 3) each
                 interferer at CH1 (extra interferers summed into the last row, missing ones
                 zero; microphone self-noise in none of them),
     "metadata": dict of scalars / strings / fixed-size tensors (collates with the default
                 collate_fn): acoustic_model, room, rt60_s, snr_db, target_level_dbfs,
                 target_azimuth_deg, target_in_front, target_distance_m, ...}

What is randomised, and the source of each range
------------------------------------------------
* **Acoustic model** per item (so every batch mixes them): ``kemar_ism``, ``sphere_ism``,
  ``freefield_ism``, ``rostock_brir`` (:mod:`.acoustics`; the issue-17 list: the HRIR
  image-source renderer, free-field BTE arrays without a head, the measured BRIRs with
  synthetic BTE delays; the MIT KEMAR SOFA has a single (mirrored) pinna, the Rostock KEMAR
  the large one). Leave one out with ``acoustic_models``.
* **Room** (shoebox models): size, RT60 uniform in ``rt60_s`` (issue 17: 0.1-1.0 s), listener
  ear height, source distances and heights (:class:`.acoustics.RoomRanges`).
* **BTE geometry**: spacing, position, tilt and +-1.5 mm per-microphone jitter
  (:func:`.acoustics.draw_bte_geometry`).
* **Microphones**: gain +-``mic_gain_db`` (issue 17: +-2 dB), high-pass corner (phase
  mismatch), delay, per-ear colouration (:func:`.acoustics.microphone_response`); white
  self-noise at an equivalent input level uniform in ``self_noise_db_spl`` (20-35 dB SPL:
  hearing-aid microphones' equivalent input noise is about 25-30 dB SPL).
* **Target direction**: with probability ``1 - not_in_front_prob`` the target is in front,
  azimuth uniform in +-10 degrees (half of these: the CEC2 final head offsets, ``U(0, 10)``
  degrees either side) or in +-``front_azimuth_deg`` (35: CEC2's initial head offset
  ``25 + N(0, 5)`` clipped at 2 sigma); otherwise (default 20 %) uniform in
  ``front_azimuth_deg + 10 .. 180`` degrees either side; the measured BRIRs (0 and +-40
  degrees only) take a measured direction on the drawn side. ``target_in_front`` is
  ``|azimuth| <= front_azimuth_deg``. The head is static within an item.
* **Talkers**: target and speech interferers from the split's talkers
  (:class:`.corpus.SourceCorpus`), never the same talker twice in a scene.
* **Interferers**: 1-3 (CEC2: 2-3), each of type speech, noise, music, babble (3-8 talkers
  of the split summed, one position) or coloured Gaussian noise (spectral slope uniform
  -6..0 dB/octave); dry levels within ``interferer_gain_db`` of each other.
* **SNR**: uniform in ``snr_db`` (issue 17: -12..+12 dB), the CEC2 definition
  (:func:`.renderer.better_ear_speechweighted_snr` at CH1 over the samples where the target
  utterance is present), measured on the microphone signals.
* **Level**: the reverberant target at CH1 has RMS ``target_level_dbfs`` (uniform -50..-30
  dBFS: 50-70 dB SPL with the ICASSP 2023 calibration RMS 1 == 100 dB SPL; the demo renderer
  uses -40).

Each source is convolved (one FFT per signal, the microphone responses applied in the same
frequency domain) after a pre-roll as long as its impulse response, so the segment is in
reverberant steady state. The target utterance (silence-trimmed) is placed so that it covers
at least ``min(length, 3/4 T)`` of the segment, like :class:`~clarity_se.data.scene_segments.
SceneSegmentDataset`'s crops.

Target definition (``target``): ``"target_CH1"`` (default, the reverberant target at the
front microphones, as the demo data's ``target_CH1``) or ``"target_anechoic_CH1"``: the
direct path only at CH1 (through the same microphones), rescaled per ear to the RMS of the
reverberant target over the segment -- the reference of the official ICASSP 2023 evaluation
(``target_anechoic_CH1`` rescaled to ``target_CH1``'s RMS); or ``"target_early_CH1"``: the
direct path and the early reflections at CH1, the target's full response cut ``early_ms``
(default 50 ms) after each ear's direct-path peak with a 2 ms half-cosine fade, rescaled the
same way. The 50 ms boundary is that of the speech definition D50 and clarity C50 of ISO
3382-1:2009, Annex A: reflections within it add to the direct sound's intelligibility (Bradley,
Sato and Picard 2003, JASA 113(6)), later ones mask it. An enhancer trained on this target is
asked to remove the late reverberation and the interferers, not to undo the early reflections,
which a real-valued mask can hardly do.

Reference when the target is not in front (``off_front_target``): ``"target"`` (default) keeps
the definition above. ``"talkers"`` adds each speech interferer's reference, same definition
(its direct path at CH1 from :attr:`.acoustics.SceneAcoustics.interferers_direct`, rescaled to
its reverberant RMS; babble stays noise), when ``|target azimuth| > front_azimuth_deg``. The
CEC2 listener faces the target at the end of the head turn; when nobody talks in front, which
talker is the target cannot be told from the signals, so this reference asks the enhancer to
keep every talker and remove the noise there: issue 17's do-no-harm requirement as a training
target rather than a fallback rule. ``metadata["reference_talkers"]`` counts the talkers in the
reference.

Training / validation: ``split="validation"`` uses only ``corpus.VALIDATION_SPEAKERS`` and the
validation noise segments and ignores :meth:`RandomisedMixtures.set_epoch` (a fixed set).

Speed: see :func:`items_per_second` (measured numbers in the report / recipe README).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import scipy.fft as sfft
import torch
from torch.utils.data import Dataset

from clarity_se.data.render import acoustics, corpus, renderer

logger = logging.getLogger(__name__)

SAMPLE_RATE = 44100
TARGET_KINDS = ("target_CH1", "target_anechoic_CH1", "target_early_CH1")
OFF_FRONT_TARGETS = ("target", "talkers")
INTERFERER_TYPES = ("speech", "noise", "music", "babble", "coloured")
#: Mixture rows as (channel, ear): CH1-L, CH1-R, CH2-L, CH2-R, CH3-L, CH3-R.
MIXTURE_ROWS = tuple((c, e) for c in (1, 2, 3) for e in (0, 1))


#: Draws of a scene's interferers before an item whose interferers stay silent over the
#: target's span (SNR undefined) is an error.
MAX_INTERFERER_DRAWS = 10


@dataclass
class MixerOptions:
    """Options of :class:`RandomisedMixtures` (OmegaConf-compatible: lists, scalars, strings).

    Ranges are ``[low, high]`` and drawn uniformly; see the module docstring for their sources.
    """

    data_root: str = ""  #: "" -> $CLARITY_SE_DATA_ROOT, else the embedded demo sources
    split: str = "train"  #: train | validation
    n_items: int = 1000  #: items per epoch (the dataset's length)
    segment_s: float = 4.0
    n_src: int = 1
    target: str = "target_CH1"  #: or target_anechoic_CH1 (ICASSP 2023 reference definition)
    early_ms: float = 50.0  #: boundary of target_early_CH1 after the direct path, ms
    #: reference when the target is not in front: "target", or "talkers" (the target plus
    #: each speech interferer, same definition; n_src <= 2)
    off_front_target: str = "target"
    seed: int = 0
    #: [] -> every model available at the data root (rostock_brir needs rir/rostock_kemar_brir)
    acoustic_models: list[str] = field(default_factory=list)
    model_weights: list[float] = field(default_factory=list)  #: [] -> equal
    validation_speakers: list[str] = field(default_factory=list)  #: [] -> the default 20
    rt60_s: list[float] = field(default_factory=lambda: [0.1, 1.0])
    snr_db: list[float] = field(default_factory=lambda: [-12.0, 12.0])
    target_level_dbfs: list[float] = field(default_factory=lambda: [-50.0, -30.0])
    not_in_front_prob: float = 0.2
    front_azimuth_deg: float = 35.0
    n_interferers: list[int] = field(default_factory=lambda: [1, 3])
    interferer_types: list[str] = field(default_factory=lambda: list(INTERFERER_TYPES))
    interferer_weights: list[float] = field(default_factory=lambda: [0.35, 0.2, 0.1, 0.2, 0.15])
    interferer_gain_db: float = 6.0  #: dry interferer levels within this of each other
    babble_talkers: list[int] = field(default_factory=lambda: [3, 8])
    mic_gain_db: float = 2.0
    mic_highpass_hz: list[float] = field(default_factory=lambda: [10.0, 100.0])
    mic_delay_us: float = 5.0
    mic_colour_db: float = 4.0
    self_noise_db_spl: list[float] = field(default_factory=lambda: [20.0, 35.0])
    bte_spacing_mm: list[float] = field(default_factory=lambda: [8.0, 16.0])
    bte_jitter_mm: float = 1.5

    def check(self) -> None:
        """Validate the values.

        Raises
        ------
        ValueError
            A bad value (names the field).
        """

        def rng2(name: str) -> None:
            v = getattr(self, name)
            if len(v) != 2 or v[0] > v[1]:
                raise ValueError(f"mixer option {name}: expected [low, high], got {list(v)}")

        for f in fields(self):
            if isinstance(getattr(self, f.name), list) and f.name in (
                "rt60_s",
                "snr_db",
                "target_level_dbfs",
                "n_interferers",
                "babble_talkers",
                "mic_highpass_hz",
                "self_noise_db_spl",
                "bte_spacing_mm",
            ):
                rng2(f.name)
        if self.split not in corpus.SPLITS:
            raise ValueError(f"mixer option split: one of {corpus.SPLITS}, got {self.split!r}")
        if self.target not in TARGET_KINDS:
            raise ValueError(f"mixer option target: one of {TARGET_KINDS}, got {self.target!r}")
        if not 0.0 <= self.early_ms <= 500.0:
            raise ValueError(f"mixer option early_ms: in [0, 500] ms, got {self.early_ms}")
        if self.n_src < 1:
            raise ValueError(f"mixer option n_src: must be >= 1, got {self.n_src}")
        if self.off_front_target not in OFF_FRONT_TARGETS:
            raise ValueError(
                f"mixer option off_front_target: one of {OFF_FRONT_TARGETS}, "
                f"got {self.off_front_target!r}"
            )
        if self.off_front_target == "talkers" and self.n_src > 2:
            raise ValueError(
                "mixer option off_front_target=talkers needs n_src <= 2 (with n_src >= 3 each "
                "interferer has its own row)"
            )
        if self.n_items < 1 or self.segment_s <= 0:
            raise ValueError("mixer options n_items and segment_s must be > 0")
        if self.rt60_s[0] <= 0:
            raise ValueError(f"mixer option rt60_s: must be > 0, got {self.rt60_s}")
        if self.n_interferers[0] < 1:
            raise ValueError(f"mixer option n_interferers: at least 1, got {self.n_interferers}")
        if not 0.0 <= self.not_in_front_prob <= 1.0:
            raise ValueError(
                f"mixer option not_in_front_prob: in [0, 1], got {self.not_in_front_prob}"
            )
        if not 0 < self.front_azimuth_deg < 170:
            raise ValueError(
                f"mixer option front_azimuth_deg: in (0, 170), got {self.front_azimuth_deg}"
            )
        unknown = set(self.interferer_types) - set(INTERFERER_TYPES)
        if unknown or not self.interferer_types:
            raise ValueError(f"mixer option interferer_types: subset of {INTERFERER_TYPES}")
        if len(self.interferer_weights) != len(self.interferer_types):
            raise ValueError(
                "mixer options interferer_weights and interferer_types differ in length"
            )
        if self.model_weights and len(self.model_weights) != len(self.acoustic_models):
            raise ValueError("mixer option model_weights: one weight per acoustic_models entry")
        bad = set(self.acoustic_models) - set(acoustics.ACOUSTIC_MODELS)
        if bad:
            raise ValueError(
                f"mixer option acoustic_models: unknown {sorted(bad)}; "
                f"choose from {acoustics.ACOUSTIC_MODELS}"
            )

    @classmethod
    def from_mapping(cls, options: Mapping | MixerOptions | None) -> MixerOptions:
        """Options from a dict / OmegaConf ``DictConfig`` (unknown keys are errors).

        Raises
        ------
        ValueError
            Unknown key or bad value.
        """
        if isinstance(options, MixerOptions):
            opts = MixerOptions(**asdict(options))
        else:
            given = dict(options or {})
            if hasattr(options, "_metadata"):  # OmegaConf container
                from omegaconf import OmegaConf

                given = OmegaConf.to_container(options, resolve=True)  # type: ignore[assignment]
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(given) - known)
            if unknown:
                raise ValueError(f"mixer options: unknown keys {unknown}")
            given = {k: list(v) if isinstance(v, tuple) else v for k, v in given.items()}
            opts = cls(**given)
        opts.check()
        return opts


# --------------------------------------------------------------------------- helpers


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Generator of one item: PCG64 seeded from SHA-256 of ``"<seed>/<epoch>/<index>"``."""
    digest = hashlib.sha256(f"randomised/{int(seed)}/{int(epoch)}/{int(index)}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / max(_rms(x), 1e-9)


def coloured_noise(rng: np.random.Generator, n: int, slope_db_per_octave: float) -> np.ndarray:
    """Gaussian noise with a power spectrum sloping ``slope_db_per_octave`` above 50 Hz, RMS 1.

    Parameters
    ----------
    rng : numpy.random.Generator
    n : int
        Samples.
    slope_db_per_octave : float
        0: white, -3: pink, -6: brown (red).

    Returns
    -------
    ndarray [shape=(n,)], float32
    """
    n_fft = sfft.next_fast_len(n, real=True)
    spec = sfft.rfft(rng.standard_normal(n_fft))
    f = np.maximum(np.fft.rfftfreq(n_fft, 1.0 / SAMPLE_RATE), 50.0)
    spec *= (f / 1000.0) ** (slope_db_per_octave / (20 * np.log10(2)))
    return _normalise(sfft.irfft(spec, n=n_fft)[:n]).astype(np.float32)


class DrySources:
    """Draws dry (unspatialised) signals at 44.1 kHz from a :class:`.corpus.SourceCorpus`.

    Parameters
    ----------
    source_corpus : corpus.SourceCorpus
    """

    def __init__(self, source_corpus: corpus.SourceCorpus) -> None:
        self.corpus = source_corpus
        self.speaker_ids = source_corpus.speaker_ids()
        self.clips = {
            k: [c for c in source_corpus.clips if c.kind == k] for k in ("noise", "music")
        }

    def utterance(
        self, rng: np.random.Generator, exclude: set[str]
    ) -> tuple[corpus.Utterance, np.ndarray]:
        """A random utterance (silence-trimmed) of a random talker not in ``exclude``."""
        speakers = [s for s in self.speaker_ids if s not in exclude] or self.speaker_ids
        spk = speakers[int(rng.integers(len(speakers)))]
        utts = self.corpus.speakers[spk]
        utt = utts[int(rng.integers(len(utts)))]
        return utt, corpus.read_utterance(self.corpus.path(utt.path))

    def speech_stream(self, rng: np.random.Generator, n: int, speaker: str) -> np.ndarray:
        """``n`` samples of one talker: random utterances back to back, random start."""
        utts = self.corpus.speakers[speaker]
        parts, total = [], 0
        first = True
        while total < n:
            u = utts[int(rng.integers(len(utts)))]
            x = corpus.read_utterance(self.corpus.path(u.path))
            if first:
                x = x[int(rng.integers(0, max(1, x.size // 2))) :]
                first = False
            parts.append(x)
            total += x.size
        return np.concatenate(parts)[:n]

    def clip(self, rng: np.random.Generator, kind: str, n: int) -> tuple[str, np.ndarray]:
        """``n`` samples of a noise / music clip (random offset; tiled if the clip is short)."""
        clips = self.clips[kind] or self.clips["noise"] or self.clips["music"]
        c = clips[int(rng.integers(len(clips)))]
        avail = c.stop_s - c.start_s
        need = n / SAMPLE_RATE
        path = self.corpus.path(c.path)
        if avail >= need:
            start = c.start_s + rng.uniform(0.0, avail - need)
            return c.path, corpus.read_segment(path, start, n)
        seg = corpus.read_segment(path, c.start_s, int(avail * SAMPLE_RATE))
        seg = np.roll(seg, int(rng.integers(seg.size)))
        return c.path, np.tile(seg, n // seg.size + 1)[:n]

    def interferer(
        self,
        rng: np.random.Generator,
        kind: str,
        n: int,
        used_speakers: set[str],
        babble: tuple[int, int],
    ) -> tuple[str, np.ndarray]:
        """One dry interferer of ``kind`` (RMS 1) and a name describing it.

        Speech / babble talkers are taken from outside ``used_speakers``, which is updated.
        """
        if kind == "speech":
            free = [s for s in self.speaker_ids if s not in used_speakers] or self.speaker_ids
            spk = free[int(rng.integers(len(free)))]
            used_speakers.add(spk)
            return f"speech:{spk}", _normalise(self.speech_stream(rng, n, spk))
        if kind == "babble":
            k = int(rng.integers(babble[0], babble[1] + 1))
            free = [s for s in self.speaker_ids if s not in used_speakers] or self.speaker_ids
            chosen = [free[int(i)] for i in rng.permutation(len(free))[:k]]
            used_speakers.update(chosen)
            x = sum(_normalise(self.speech_stream(rng, n, s)) for s in chosen)
            return f"babble:{'+'.join(chosen)}", _normalise(x)
        if kind == "coloured":
            slope = float(rng.uniform(-6.0, 0.0))
            return f"coloured:{slope:.1f}dB/oct", coloured_noise(rng, n, slope)
        name, x = self.clip(rng, kind, n)
        return f"{kind}:{Path(name).stem}", _normalise(x)


def spatialise(
    dry: np.ndarray,
    response: acoustics.SourceResponse | np.ndarray,
    mic: np.ndarray,
    rows: tuple[tuple[int, int], ...],
    n_fft: int,
    *,
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """Convolve a dry signal with a source's responses and the microphone responses.

    Parameters
    ----------
    dry : ndarray [shape=(time,)]
    response : SourceResponse or ndarray [shape=(4, 2, taps)]
        With two head orientations (``len(response.early) == 2``) the early parts are
        cross-faded with ``weight`` (0: first, 1: second), as :mod:`.renderer` does; the tail is
        shared.
    mic : ndarray [shape=(4, 2, n_fft // 2 + 1)], complex
        :func:`.acoustics.microphone_response` on the same grid.
    rows : tuple of (channel, ear)
        Output rows.
    n_fft : int
        Circular convolution length (>= ``time``; samples past ``n_fft - taps`` alias).
    weight : ndarray [shape=(time,)], optional
        Head-turn progress, required with two orientations.

    Returns
    -------
    ndarray [shape=(len(rows), time)], float32
    """
    n = dry.shape[-1]
    x = sfft.rfft(dry.astype(np.float32), n=n_fft)
    m = np.stack([mic[c, e] for c, e in rows]).astype(np.complex64)

    def conv(ir: np.ndarray) -> np.ndarray:
        h = sfft.rfft(np.stack([ir[c, e] for c, e in rows]).astype(np.float32), n=n_fft, axis=-1)
        return sfft.irfft(x * h * m, n=n_fft, axis=-1)[:, :n]

    if isinstance(response, np.ndarray):
        return conv(response)
    if len(response.early) == 1:
        return conv(response.combined(0))
    if weight is None:
        raise ValueError("two head orientations need the head-turn weight")
    out = conv(response.early[0]) * (1.0 - weight) + conv(response.early[1]) * weight
    if response.tail is not None:
        tail = np.zeros((4, 2, response.tail_start + response.tail.shape[-1]))
        tail[..., response.tail_start :] = response.tail
        out += conv(tail)
    return out.astype(np.float32)


def early_response(
    response: np.ndarray, direct: np.ndarray, early_samples: float, fade_samples: int = 88
) -> np.ndarray:
    """The direct path and early reflections of a response (``target_early_CH1``).

    Parameters
    ----------
    response : ndarray [shape=(4, 2, taps)]
        A source's full response (channel, ear, taps), e.g. ``SourceResponse.combined(0)``.
    direct : ndarray [shape=(2, taps_direct)]
        Its direct path at CH1 (left, right); each ear's boundary is counted from the peak of
        its ``|direct|``.
    early_samples : float
        Boundary after the direct-path peak, samples (50 ms: 2205 at 44.1 kHz; ISO 3382-1
        D50/C50).
    fade_samples : int
        Half-cosine fade-out starting at the boundary (88: 2 ms at 44.1 kHz), so the cut adds
        no click.

    Returns
    -------
    ndarray [shape=(4, 2, taps)]
        ``response`` times the window, every channel of an ear cut at that ear's boundary
        (the microphone channels of an ear are within a millisecond of each other).

    Raises
    ------
    ValueError
        ``direct`` not of shape ``(2, n)`` or ``early_samples < 0``.
    """
    direct = np.asarray(direct)
    if direct.ndim != 2 or direct.shape[0] != 2:
        raise ValueError(f"early_response: direct must be [2, taps], got {direct.shape}")
    if early_samples < 0:
        raise ValueError(f"early_response: early_samples must be >= 0, got {early_samples}")
    taps = response.shape[-1]
    n = np.arange(taps)
    out = np.array(response, dtype=np.float64, copy=True)
    for ear in range(2):
        cut = float(np.argmax(np.abs(direct[ear]))) + float(early_samples)
        ramp = np.clip((n - cut) / max(fade_samples, 1), 0.0, 1.0)
        out[:, ear] *= 0.5 * (1.0 + np.cos(np.pi * ramp))
    return out


def draw_target_azimuth(
    rng: np.random.Generator,
    in_front: bool,
    front_azimuth_deg: float,
    available_deg: tuple[float, ...] | None = None,
) -> float:
    """Target azimuth relative to the head (degrees, + = left); see the module docstring.

    Parameters
    ----------
    rng : numpy.random.Generator
    in_front : bool
        In front: uniform in +-10 degrees or (half of the draws) +-``front_azimuth_deg``;
        otherwise uniform in ``front_azimuth_deg + 10 .. 180`` degrees either side.
    front_azimuth_deg : float
    available_deg : tuple of float, optional
        Measured directions only (BRIR models): a random one of those on the requested side
        of ``front_azimuth_deg`` (any of them if none is).

    Returns
    -------
    float
    """
    if available_deg is not None:
        side = [a for a in available_deg if (abs(a) <= front_azimuth_deg) == in_front]
        pool = side or list(available_deg)
        return float(pool[int(rng.integers(len(pool)))])
    if in_front:
        half = 10.0 if rng.random() < 0.5 else front_azimuth_deg
        return float(rng.uniform(-half, half))
    lo = min(front_azimuth_deg + 10.0, 179.0)
    return float(rng.choice([-1.0, 1.0]) * rng.uniform(lo, 180.0))


def snr_gain(target_ch1: np.ndarray, interferer_ch1: np.ndarray, snr_db: float,
             where: str = "mixture") -> float:
    """Interferer gain giving ``snr_db`` (CEC2 better-ear speech-weighted SNR).

    Parameters
    ----------
    target_ch1, interferer_ch1 : ndarray [shape=(2, time)]
        Left / right at CH1 over the samples where the target is present.
    snr_db : float
    where : str
        Names the item in the error.

    Returns
    -------
    float
        Multiply the interferers by it.

    Raises
    ------
    ValueError
        Interferers silent over the target (:func:`.renderer.interferer_gain`).
    """
    return float(renderer.interferer_gain(target_ch1.T.astype(np.float64),
                                          interferer_ch1.T.astype(np.float64), snr_db, where))


# --------------------------------------------------------------------------- the dataset


class RandomisedMixtures(Dataset):
    """On-the-fly domain-randomised hearing-aid mixtures (see the module docstring).

    Parameters
    ----------
    options : MixerOptions, dict or DictConfig, optional
        See :class:`MixerOptions`; unknown keys are errors.

    Attributes
    ----------
    sample_rate : int
        44100 Hz.
    models : dict of str to acoustic model
        The acoustic models drawn from, with ``weights``.
    segment : int
        Samples per item.

    Raises
    ------
    ValueError
        Bad options, a data root without talkers / noises, or a requested acoustic model whose
        files are missing.
    """

    def __init__(self, options: Mapping | MixerOptions | None = None) -> None:
        self.options = opts = MixerOptions.from_mapping(options)
        self.sample_rate = SAMPLE_RATE
        self.segment = int(round(opts.segment_s * SAMPLE_RATE))
        root = Path(opts.data_root) if opts.data_root else corpus.default_data_root()
        self.data_root = root
        self.corpus = corpus.SourceCorpus(root, opts.split, tuple(opts.validation_speakers) or None)
        self.dry = DrySources(self.corpus)
        names = list(opts.acoustic_models)
        if not names:
            names = [n for n in acoustics.ACOUSTIC_MODELS if n != "rostock_brir"]
            if (root / "rir" / "rostock_kemar_brir").is_dir():
                names.append("rostock_brir")
        self.models = {n: acoustics.build_acoustic_model(n, root) for n in names}
        w = np.array(opts.model_weights or [1.0] * len(names), dtype=np.float64)
        if np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"mixer option model_weights: non-negative, not all 0, got {list(w)}")
        self.weights = w / w.sum()
        iw = np.array(opts.interferer_weights, dtype=np.float64)
        self.interferer_weights = iw / iw.sum()
        self.room_ranges = acoustics.RoomRanges(rt60_s=tuple(opts.rt60_s))
        self.geometry_ranges = acoustics.GeometryRanges(
            spacing_mm=tuple(opts.bte_spacing_mm), jitter_mm=opts.bte_jitter_mm
        )
        self.mic_ranges = acoustics.MicRanges(
            gain_db=opts.mic_gain_db,
            highpass_hz=tuple(opts.mic_highpass_hz),
            delay_us=opts.mic_delay_us,
            colour_db=opts.mic_colour_db,
        )
        self.epoch = 0

    def __len__(self) -> int:
        return self.options.n_items

    def set_epoch(self, epoch: int) -> None:
        """New items each epoch (training); the validation split keeps its fixed items."""
        if self.options.split == "train":
            self.epoch = int(epoch)

    def manifest(self) -> dict:
        """Description stored in checkpoints: the options, talkers, clips and models."""
        return {
            "kind": "randomised",
            "options": asdict(self.options),
            "acoustic_models": list(self.models),
            "model_weights": self.weights.tolist(),
            "corpus": self.corpus.manifest(),
            "segment_samples": self.segment,
            "sample_rate": self.sample_rate,
        }

    def _place_target(self, rng: np.random.Generator, n_utt: int) -> int:
        """Start of the segment in utterance samples (may be negative)."""
        t = self.segment
        lo = -(t // 4)
        hi = max(lo, n_utt - 3 * t // 4)
        return int(rng.integers(lo, hi + 1))

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        opts = self.options
        rng = item_rng(opts.seed, self.epoch, index)
        names = list(self.models)
        model_name = names[int(rng.choice(len(names), p=self.weights))]
        model = self.models[model_name]
        geometry = acoustics.draw_bte_geometry(rng, self.geometry_ranges)
        in_front = bool(rng.random() >= opts.not_in_front_prob)
        azimuth = draw_target_azimuth(
            rng, in_front, opts.front_azimuth_deg, model.available_azimuths_deg
        )
        n_int = int(rng.integers(opts.n_interferers[0], opts.n_interferers[1] + 1))
        types = [
            opts.interferer_types[int(i)]
            for i in rng.choice(len(opts.interferer_types), size=n_int, p=self.interferer_weights)
        ]
        scene = model.draw(
            rng,
            target_azimuth_deg=azimuth,
            n_interferers=n_int,
            geometry=geometry,
            ranges=self.room_ranges,
        )
        azimuth = float(scene.info.get("target_azimuth_snapped_deg", azimuth))

        t = self.segment
        pre = max([scene.target.length()] + [r.length() for r in scene.interferers])
        n_total = pre + t
        n_fft = sfft.next_fast_len(n_total, real=True)

        utt, speech = self.dry.utterance(rng, set())
        start = self._place_target(rng, speech.size)
        dry_t = np.zeros(n_total, dtype=np.float32)
        # dry sample j plays utterance sample j - pre + start
        lo, hi = max(0, start - pre), min(speech.size, start + t)
        if hi > lo:
            dry_t[lo - start + pre : hi - start + pre] = speech[lo:hi]
        active = (max(0, -start), min(t, speech.size - start))

        a0, a1 = active
        crop = slice(pre, pre + t)
        # A noise clip's crop can be digital silence over the target's span (clips padded with
        # zeros): the SNR is then undefined. Redraw the interferers (this item only).
        for attempt in range(MAX_INTERFERER_DRAWS):
            used = {utt.speaker}
            interferer_names, dry_i = [], []
            for kind in types:
                name, x = self.dry.interferer(rng, kind, n_total, used,
                                              tuple(opts.babble_talkers))  # fmt: skip
                gain = 10 ** (-rng.uniform(0.0, opts.interferer_gain_db) / 20)
                interferer_names.append(name)
                dry_i.append(x * gain)
            if attempt == 0:
                mic, mic_params = acoustics.microphone_response(
                    rng, n_fft, self.mic_ranges, channels=(1, 2, 3)
                )
                target6 = spatialise(dry_t, scene.target, mic, MIXTURE_ROWS, n_fft)[:, crop]
            interf = [
                spatialise(x, r, mic, MIXTURE_ROWS, n_fft)[:, crop]
                for x, r in zip(dry_i, scene.interferers, strict=True)
            ]
            interf_sum = np.sum(interf, axis=0)
            if attempt == 0:
                snr = float(rng.uniform(*opts.snr_db))
            try:
                g_i = snr_gain(target6[:2, a0:a1], interf_sum[:2, a0:a1], snr)
                break
            except ValueError:  # silent over the target's span
                continue
        else:
            raise ValueError(
                f"mixer item {index} (seed {opts.seed}, epoch {self.epoch}): interferers "
                f"{', '.join(interferer_names)} silent over the target in "
                f"{MAX_INTERFERER_DRAWS} draws"
            )
        level = float(rng.uniform(*opts.target_level_dbfs))
        g = 10 ** (level / 20) / max(_rms(target6[:2, a0:a1]), 1e-12)
        target6 = target6 * g
        interf = [x * (g * g_i) for x in interf]
        interf_sum = interf_sum * (g * g_i)
        ein = float(rng.uniform(*opts.self_noise_db_spl))
        noise = rng.standard_normal((6, t)).astype(np.float32) * 10 ** ((ein - 100.0) / 20)
        mixture = (target6 + interf_sum + noise).astype(np.float32)

        def reference_of(dry, response, direct, reverberant_ch1):
            """A source's reference at CH1 by ``opts.target`` (see the module docstring)."""
            if opts.target == "target_CH1":
                return reverberant_ch1
            if opts.target == "target_anechoic_CH1":
                ir = np.zeros((4, 2, direct.shape[-1]))
                ir[1] = direct
            else:
                ir = early_response(response.combined(0), direct,
                                    opts.early_ms * 1e-3 * SAMPLE_RATE)  # fmt: skip
            anech = spatialise(dry, ir, mic, MIXTURE_ROWS[:2], n_fft)[:, crop]
            scale = np.sqrt(np.mean(reverberant_ch1**2, axis=-1, keepdims=True)) / np.maximum(
                np.sqrt(np.mean(anech**2, axis=-1, keepdims=True)), 1e-12
            )
            return anech * scale

        reference = reference_of(dry_t, scene.target, scene.target_direct[0], target6[:2])
        target_in_front = bool(abs(azimuth) <= opts.front_azimuth_deg)
        talkers = 1
        if opts.off_front_target == "talkers" and not target_in_front:
            for k, kind in enumerate(types):
                if kind == "speech":  # babble is noise: kept out of the reference
                    reference = reference + reference_of(
                        dry_i[k], scene.interferers[k],
                        scene.interferers_direct[k], interf[k][:2],
                    )  # fmt: skip
                    talkers += 1
        rows = [reference]
        if opts.n_src == 2:
            rows.append(mixture[:2] - reference)
        elif opts.n_src >= 3:
            slots = [np.zeros((2, t), dtype=np.float32) for _ in range(opts.n_src - 1)]
            for k, x in enumerate(interf):
                slots[min(k, opts.n_src - 2)] += x[:2]
            rows.extend(slots)
        sources = np.stack(rows).astype(np.float32)

        metadata = {
            "acoustic_model": model_name,
            "room": scene.info["room"],
            "rt60_s": float(scene.info["rt60_s"]),
            "snr_db": snr,
            "target_level_dbfs": level,
            "target_azimuth_deg": azimuth,
            "target_in_front": target_in_front,
            "reference_talkers": talkers,
            "target_distance_m": float(scene.info["target_distance_m"]),
            "target_elevation_deg": float(scene.info["target_elevation_deg"]),
            "target_speaker": utt.speaker,
            "target_file": utt.path,
            "target_start": int(a0),
            "target_end": int(a1),
            "n_interferers": n_int,
            "interferers": ",".join(interferer_names),
            "self_noise_db_spl": ein,
            "mic_gain_db": torch.tensor(
                [mic_params["gain_db"][c, e] for c, e in MIXTURE_ROWS], dtype=torch.float32
            ),
            "bte_spacing_mm": geometry.spacing_mm(),
            "head_radius_m": float(scene.info.get("head_radius_m", float("nan"))),
            "target": opts.target,
            "split": opts.split,
            "seed": int(opts.seed),
            "epoch": int(self.epoch),
            "index": int(index),
        }
        return {
            "mixture": torch.from_numpy(mixture),
            "sources": torch.from_numpy(sources),
            "metadata": metadata,
        }


def build_training_dataset(
    options: Mapping | MixerOptions | None = None, **overrides
) -> RandomisedMixtures:
    """The trainer's entry point: a :class:`RandomisedMixtures` from options.

    Parameters
    ----------
    options : MixerOptions, dict or DictConfig, optional
        See :class:`MixerOptions`.
    **overrides
        Keys of :class:`MixerOptions` that replace those of ``options`` (e.g. ``split=``,
        ``n_src=``, ``seed=``).

    Returns
    -------
    RandomisedMixtures

    Raises
    ------
    ValueError
        Unknown keys or bad values.

    Examples
    --------
    How the trainer uses it (one dataset for training, a fixed one for validation)::

        train_set = build_training_dataset(cfg.data.randomised, split="train",
                                           n_src=cfg.model.n_src, seed=cfg.train.seed)
        dev_set = build_training_dataset(cfg.data.randomised, split="validation",
                                         n_src=cfg.model.n_src, n_items=64)
        # per epoch: train_set.set_epoch(epoch); items: batch["mixture"], batch["sources"]
    """
    base = asdict(MixerOptions.from_mapping(options))
    unknown = sorted(set(overrides) - set(base))
    if unknown:
        raise ValueError(f"mixer options: unknown keys {unknown}")
    base.update(overrides)
    return RandomisedMixtures(base)


def items_per_second(
    options: Mapping | MixerOptions | None = None, n_items: int = 20, *, warmup: int = 2
) -> dict:
    """Measure the item rate of :class:`RandomisedMixtures` in this process (one thread).

    Parameters
    ----------
    options : MixerOptions or dict, optional
    n_items : int
        Items timed (after ``warmup`` untimed ones, which fill the file caches).
    warmup : int

    Returns
    -------
    dict
        ``items_per_s``, ``seconds``, ``n_items``, ``audio_s_per_s`` (seconds of mixture made
        per second) and ``per_model_s`` (mean seconds per item of each acoustic model).
    """
    torch.set_num_threads(1)
    ds = build_training_dataset(options, n_items=max(n_items + warmup, 1))
    for i in range(warmup):
        ds[i]
    per_model: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    for i in range(warmup, warmup + n_items):
        t = time.perf_counter()
        item = ds[i]
        per_model.setdefault(item["metadata"]["acoustic_model"], []).append(time.perf_counter() - t)
    seconds = time.perf_counter() - t0
    return {
        "items_per_s": n_items / seconds,
        "seconds": seconds,
        "n_items": n_items,
        "audio_s_per_s": n_items * ds.segment / SAMPLE_RATE / seconds,
        "per_model_s": {k: float(np.mean(v)) for k, v in sorted(per_model.items())},
        "segment_s": ds.segment / SAMPLE_RATE,
        "data_root": str(ds.data_root),
        "pid": os.getpid(),
    }
