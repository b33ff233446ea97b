"""Binaural room impulse responses of a hearing-aid wearer in a shoebox room.

Acoustic model (what it does and what it leaves out)
----------------------------------------------------
CEC2 renders each scene with RAVEN higher-order-ambisonic room responses decoded through
measured HRIRs of 4 microphone pairs (eardrum ``ED`` and the front / middle / rear
behind-the-ear mics ``BTE_fr/mid/rear``). We have no such measurements, so the demo data
approximates them with a *hybrid image-source + stochastic-tail model*:

1. **Room geometry and early reflections** -- ``pyroomacoustics`` (Scheibler et al. 2018)
   computes the image sources of a shoebox room (``ShoeBox.image_source_model``) with a
   frequency-independent energy absorption ``alpha`` chosen with Eyring's formula so that the
   image-source energy decay matches the requested RT60:
   ``alpha = 1 - exp(-24 ln(10) V / (c S RT60))``. No air absorption, no scattering.
2. **Head and ears for the direct path and early reflections** -- every image source up to
   the mixing time ``t_mix`` (the earliest arrival of any image of order ``EARLY_ORDER + 2``,
   i.e. 15-40 ms after emission; everything earlier is complete) is rendered through the
   *measured* MIT KEMAR HRIR (Gardner & Martin 1995; SOFA, 710 directions, 44.1 kHz, nearest
   measured direction, no interpolation) of its direction of arrival relative to the head
   (with the listener's head orientation), scaled by the image-source gain
   ``damping / (4 pi r)``. The HRIR supplies the interaural time and level differences (head
   shadow) and the pinna colouration. The four channels of one ear share that ear's HRIR
   (only KEMAR *eardrum* HRIRs exist; the BTE mics' own directivity is not modelled) but get
   their own fractional-sample delay from their position: BTE mics sit 1 cm behind and 2 cm
   above the ear-canal entrance, 7.6 mm apart fore-aft (``CHANNEL_OFFSETS_M``), so the
   fore-aft array sees the correct inter-mic delays for every early arrival.
   The target talker is directional (CEC2 gives it a ``view_vector``, facing the listener):
   each image is weighted by the broadband pattern ``0.6 + 0.4 cos(theta)`` of the direction
   in which its ray leaves the talker (directivity index 3.8 dB, ``TALKER_DIRECTIVITY``);
   interferers are omnidirectional, as in CEC2.
3. **Late reverberation** -- after ``t_mix`` a Gaussian-noise tail with the exponential
   energy envelope of the diffuse field, ``e(t) = c / (4 pi V) exp(-13.8 t / RT60)`` per
   second (the image-source model's own asymptotic energy density for the ``1/(4 pi r)`` gain
   convention, times the source's relative radiated power), filtered per ear by the KEMAR
   *diffuse-field* ear response (RMS magnitude over all 710 directions). The tail is
   independent between the two ears but identical for the four channels of one ear (the
   theoretical diffuse-field coherence ``sinc(k d)`` at the 7.6 mm BTE spacing is > 0.9 below
   5 kHz; at the ~2 cm ED-BTE distance the coherence is overstated).

Deliberate deviations from CEC2: no HOA encoding / decoding; one measured head (KEMAR) instead
of 19; ED and BTE channels share the eardrum HRIR, so the CEC2 level difference between
eardrum and BTE channels (hence its ``/12`` vs ``/3`` write norms) is not reproduced; the head
turn is rendered as a cross-fade between the responses at the initial and final head
orientations (see ``renderer``), not as a continuous ambisonic rotation.

Coordinates: room frame of pyroomacoustics (metres, origin in a floor corner, ``x`` along the
first dimension). Head frame: ``x`` forward (view direction), ``y`` to the left, ``z`` up;
azimuth counter-clockwise from ``x`` in degrees (SOFA convention).

References
----------
W. G. Gardner and K. D. Martin, "HRTF measurements of a KEMAR", J. Acoust. Soc. Am. 97,
3907-3908 (1995).
J. B. Allen and D. A. Berkley, "Image method for efficiently simulating small-room
acoustics", J. Acoust. Soc. Am. 65, 943-950 (1979).
C. F. Eyring, "Reverberation time in 'dead' rooms", J. Acoust. Soc. Am. 1, 217-241 (1930).
R. Scheibler, E. Bezzam and I. Dokmanic, "Pyroomacoustics: A Python package for audio room
simulations and array processing algorithms", ICASSP 2018.
W. T. Chu and A. C. C. Warnock, "Detailed directivity of sound fields around human talkers",
NRC Canada report IRC-RR-104 (2002).
E. A. Lehmann and A. M. Johansson, "Diffuse reverberation model for efficient image-source
simulation of room impulse responses", IEEE TASLP 18(6), 1429-1439 (2010) (hybrid ISM + noise
tail idea).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

#: Speed of sound (m/s), as pyclarity's CEC2 renderer (21 degrees C).
SPEED_OF_SOUND = 344.0
#: Half the distance between the two ear-canal entrances (m).
EAR_HALF_WIDTH_M = 0.075
#: Channel names in CEC2 order (CH0..CH3).
CHANNEL_NAMES = ("ED", "BTE_fr", "BTE_mid", "BTE_rear")
#: Position of each channel relative to its ear-canal entrance, head frame (x fwd, y left, z up), m.
CHANNEL_OFFSETS_M = np.array(
    [
        [0.0, 0.0, 0.0],  # ED: eardrum (the HRIR's own reference point)
        [-0.010 + 0.0076, 0.0, 0.020],  # BTE front
        [-0.010, 0.0, 0.020],  # BTE middle
        [-0.010 - 0.0076, 0.0, 0.020],  # BTE rear
    ]
)
#: Highest image-source order rendered through HRIRs is chosen so that the early part is complete
#: up to the first arrival of order EARLY_ORDER + 2.
EARLY_ORDER = 3
#: Broadband amplitude pattern ``a + (1 - a) cos(theta)`` of the (target) talker, ``a = 0.6``:
#: directivity index 10 log10(1 / (a^2 + (1 - a)^2 / 3)) = 3.8 dB, within the 2-6 dB of human
#: talkers over the speech band (Chu & Warnock 2002).
TALKER_DIRECTIVITY = 0.6
_NFFT = 1024
_TAIL_FADE = 64


@dataclass(frozen=True)
class HrirSet:
    """A measured HRIR set on a sphere of directions.

    Attributes
    ----------
    directions : ndarray [shape=(n_dir, 3)]
        Unit vectors of the measured source directions, head frame.
    spectra : ndarray [shape=(n_dir, 2, 513)], complex128
        ``rfft`` (n = 1024) of the left / right HRIRs shifted ``bulk_delay`` samples earlier.
    bulk_delay : int
        Samples removed from the start of every HRIR (all HRIRs are silent before it).
    diffuse_fir : ndarray [shape=(2, 512)]
        Zero-phase diffuse-field ear filters (RMS magnitude over all directions), centred at
        tap 256.
    sample_rate : int
        Hz.
    """

    directions: np.ndarray
    spectra: np.ndarray
    bulk_delay: int
    diffuse_fir: np.ndarray
    sample_rate: int


@functools.lru_cache(maxsize=2)
def load_hrir_set(path: str | None = None) -> HrirSet:
    """Read a SOFA ``SimpleFreeFieldHRIR`` file (HDF5) with h5py.

    Parameters
    ----------
    path : str, optional
        SOFA file; the embedded MIT KEMAR normal-pinna set by default.

    Returns
    -------
    HrirSet

    Raises
    ------
    ValueError
        The file is not a 2-receiver HRIR set at 44.1 kHz.
    """
    import h5py

    from clarity_se.data.render.sources import SAMPLE_RATE, hrir_path

    path = str(hrir_path() if path is None else path)
    with h5py.File(path, "r") as f:
        ir = np.asarray(f["Data.IR"][:], dtype=np.float64)
        pos = np.asarray(f["SourcePosition"][:], dtype=np.float64)
        sr = int(np.asarray(f["Data.SamplingRate"][:]).ravel()[0])
    if ir.ndim != 3 or ir.shape[1] != 2 or sr != SAMPLE_RATE or pos.shape[0] != ir.shape[0]:
        raise ValueError(
            f"{path}: expected Data.IR [n_dir, 2, taps] at {SAMPLE_RATE} Hz, "
            f"got {ir.shape} at {sr} Hz"
        )
    az, el = np.radians(pos[:, 0]), np.radians(pos[:, 1])
    directions = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=1)
    peak = np.abs(ir).max(axis=2, keepdims=True)
    onset = np.argmax(np.abs(ir) > 0.05 * peak, axis=2)
    bulk = max(int(onset.min()) - 4, 0)
    shifted = ir[:, :, bulk:]
    spectra = np.fft.rfft(shifted, n=_NFFT, axis=-1)
    # diffuse-field ear response: RMS magnitude over directions, zero phase, 512 taps, Hann window
    mag = np.sqrt(np.mean(np.abs(np.fft.rfft(ir, n=512, axis=-1)) ** 2, axis=0))  # [2, 257]
    fir = np.roll(np.fft.irfft(mag, n=512, axis=-1), 256, axis=-1) * np.hanning(512)
    return HrirSet(directions, spectra, bulk, fir, sr)


def head_rotation(azimuth_deg: float) -> np.ndarray:
    """Matrix [3, 3] taking room-frame vectors to the frame of a head turned to ``azimuth_deg``."""
    a = np.radians(azimuth_deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def eyring_absorption(dimensions: np.ndarray, rt60_s: float) -> float:
    """Energy absorption coefficient giving ``rt60_s`` by Eyring's formula.

    Parameters
    ----------
    dimensions : array [shape=(3,)]
        Room length, width, height (m).
    rt60_s : float
        Reverberation time (s), > 0.

    Returns
    -------
    float
        ``alpha`` in (0, 1).

    References
    ----------
    Eyring (1930): ``RT60 = -24 ln(10) V / (c S ln(1 - alpha))``.
    """
    lx, ly, lz = (float(d) for d in dimensions)
    volume = lx * ly * lz
    surface = 2 * (lx * ly + lx * lz + ly * lz)
    return float(1.0 - np.exp(-24 * np.log(10) * volume / (SPEED_OF_SOUND * surface * rt60_s)))


@dataclass(frozen=True)
class ImageSources:
    """Image sources of one source in one room, truncated at the mixing time.

    Attributes
    ----------
    positions : ndarray [shape=(n, 3)]
        Image positions, room frame (m).
    gains : ndarray [shape=(n,)]
        Wall damping (amplitude) of each image.
    orders : ndarray [shape=(n,)], int
        Reflection order (0 = direct path).
    t_mix_s : float
        Mixing time (s after emission): every image arriving earlier is included.
    radiated_power : float
        Power radiated by the source relative to an omnidirectional one of the same on-axis
        gain (``1 / 10 ** (DI / 10)``); scales the diffuse late tail.
    """

    positions: np.ndarray
    gains: np.ndarray
    orders: np.ndarray
    t_mix_s: float
    radiated_power: float = 1.0


def image_sources(
    dimensions,
    rt60_s: float,
    source,
    listener,
    early_order: int = EARLY_ORDER,
    *,
    view_vector=None,
    directivity: float = TALKER_DIRECTIVITY,
) -> ImageSources:
    """Image sources (pyroomacoustics shoebox ISM) arriving at the head before the mixing time.

    Parameters
    ----------
    dimensions : array [shape=(3,)]
        Room size (m).
    rt60_s : float
        Reverberation time (s).
    source, listener : array [shape=(3,)]
        Source and head-centre positions, room frame (m); inside the room.
    early_order : int
        See ``EARLY_ORDER``.
    view_vector : array [shape=(3,)], optional
        Facing direction of a directional source (the CEC2 target's ``view_vector``); ``None``
        for an omnidirectional source (CEC2 interferers).
    directivity : float
        ``a`` of the amplitude pattern ``a + (1 - a) cos(theta)`` of a directional source
        (``theta`` from ``view_vector``); each image gets the gain of the direction in which
        its ray leaves the real source (image direction mirrored on every axis with an odd
        number of reflections).

    Returns
    -------
    ImageSources

    Raises
    ------
    ValueError
        A position outside the room or a non-positive RT60.
    """
    import pyroomacoustics as pra

    dims = np.asarray(dimensions, dtype=np.float64)
    src = np.asarray(source, dtype=np.float64)
    lis = np.asarray(listener, dtype=np.float64)
    if rt60_s <= 0:
        raise ValueError(f"rt60_s must be > 0, got {rt60_s}")
    for name, p in (("source", src), ("listener", lis)):
        if np.any(p <= 0) or np.any(p >= dims):
            raise ValueError(f"{name} position {p.tolist()} is outside the room {dims.tolist()}")
    alpha = eyring_absorption(dims, rt60_s)
    room = pra.ShoeBox(
        dims,
        fs=44100,
        materials=pra.Material(alpha),
        max_order=early_order + 2,
        air_absorption=False,
    )
    room.add_source(src)
    room.add_microphone(lis)
    room.image_source_model()
    s = room.sources[0]
    pos = np.asarray(s.images, dtype=np.float64).T
    gains = np.asarray(s.damping, dtype=np.float64)[0]
    orders = np.asarray(s.orders, dtype=np.int64)
    dist = np.linalg.norm(pos - lis, axis=1)
    t_mix = float(dist[orders == early_order + 2].min() / SPEED_OF_SOUND)
    keep = dist / SPEED_OF_SOUND < t_mix
    power = 1.0
    if view_vector is not None:
        view = np.asarray(view_vector, dtype=np.float64)
        norm = np.linalg.norm(view)
        if not np.isfinite(norm) or norm == 0:
            raise ValueError(f"view_vector {view.tolist()} is not a direction")
        # parity of the number of reflections per axis: image = 2 k L + s (even) or 2 k L - s
        q = (pos - src) / (2 * dims)
        odd = np.abs(q - np.round(q)) > 1e-6
        emitted = lis - pos
        emitted = np.where(odd, -emitted, emitted) / np.linalg.norm(emitted, axis=1, keepdims=True)
        cos = emitted @ (view / norm)
        a = float(directivity)
        gains = gains * (a + (1 - a) * cos)
        power = a * a + (1 - a) ** 2 / 3  # mean square of the pattern over the sphere
    order = np.lexsort((np.arange(keep.sum()), dist[keep]))  # deterministic: by arrival time
    return ImageSources(pos[keep][order], gains[keep][order], orders[keep][order], t_mix, power)


def early_response(
    images: ImageSources,
    listener,
    head_azimuth_deg: float,
    *,
    hrirs: HrirSet | None = None,
    direct_only: bool = False,
    sample_rate: int = 44100,
) -> np.ndarray:
    """Direct path + early reflections at the 4 x 2 hearing-aid microphones.

    Parameters
    ----------
    images : ImageSources
        From :func:`image_sources`.
    listener : array [shape=(3,)]
        Head centre, room frame (m).
    head_azimuth_deg : float
        View direction of the head, degrees counter-clockwise from the room ``x`` axis.
    hrirs : HrirSet, optional
        Default: the embedded MIT KEMAR set.
    direct_only : bool
        Only the direct path (order 0): the anechoic reference.
    sample_rate : int
        Hz (must equal the HRIR rate).

    Returns
    -------
    ndarray [shape=(4, 2, n_taps)], float64
        Impulse responses ``[channel (ED, BTE_fr, BTE_mid, BTE_rear), ear (left, right), tap]``,
        tap 0 = emission time, gain ``damping / (4 pi r)`` times the HRIR.
    """
    hrirs = load_hrir_set() if hrirs is None else hrirs
    lis = np.asarray(listener, dtype=np.float64)
    sel = images.orders == 0 if direct_only else slice(None)
    pos, gains = images.positions[sel], images.gains[sel]
    vec = (pos - lis) @ head_rotation(head_azimuth_deg).T  # head frame, [n, 3]
    dist = np.linalg.norm(vec, axis=1)
    unit = vec / dist[:, None]
    idx = np.argmax(unit @ hrirs.directions.T, axis=1)  # nearest measured direction
    amp = gains / (4 * np.pi * dist)
    # arrival time at each channel: distance to head centre minus the projection of the
    # channel's offset from its ear onto the direction of arrival (plane-wave approximation)
    delay = (
        dist[:, None] - unit @ CHANNEL_OFFSETS_M.T
    ) / SPEED_OF_SOUND * sample_rate - hrirs.bulk_delay
    if np.any(delay < 0):
        raise ValueError("source closer to the head than the HRIR bulk delay allows")
    start = np.floor(delay).astype(np.int64)  # [n, 4]
    frac = delay - start
    k = np.arange(_NFFT // 2 + 1)
    phase = np.exp(-2j * np.pi * frac[:, :, None] * k / _NFFT)  # [n, 4, nf]
    spec = amp[:, None, None, None] * hrirs.spectra[idx][:, None, :, :] * phase[:, :, None, :]
    blocks = np.fft.irfft(spec, n=_NFFT, axis=-1)  # [n, 4, 2, NFFT]
    out = np.zeros((4, 2, int(start.max()) + _NFFT))
    for i in range(blocks.shape[0]):
        for c in range(4):
            out[c, :, start[i, c] : start[i, c] + _NFFT] += blocks[i, c]
    return out


def late_tail(
    dimensions,
    rt60_s: float,
    t_mix_s: float,
    rng: np.random.Generator,
    *,
    hrirs: HrirSet | None = None,
    radiated_power: float = 1.0,
    sample_rate: int = 44100,
) -> tuple[np.ndarray, int]:
    """Stochastic late reverberation per ear.

    Parameters
    ----------
    dimensions : array [shape=(3,)]
        Room size (m).
    rt60_s : float
        Reverberation time (s).
    t_mix_s : float
        Start of the tail (s after emission).
    rng : numpy.random.Generator
        Noise source (the caller seeds it per scene and source).
    hrirs : HrirSet, optional
        For the diffuse-field ear filters.
    radiated_power : float
        Relative radiated power of the source (``ImageSources.radiated_power``).
    sample_rate : int
        Hz.

    Returns
    -------
    tail : ndarray [shape=(2, n_taps)], float64
        Left / right tail, same gain convention as :func:`early_response`.
    start : int
        Sample (after emission) at which ``tail[:, 0]`` plays.
    """
    hrirs = load_hrir_set() if hrirs is None else hrirs
    volume = float(np.prod(np.asarray(dimensions, dtype=np.float64)))
    start = int(np.ceil(t_mix_s * sample_rate))
    n = int(np.ceil(rt60_s * sample_rate)) + 1
    t = (start + np.arange(n)) / sample_rate
    energy_per_sample = (
        radiated_power
        * SPEED_OF_SOUND
        / (4 * np.pi * volume)
        * np.exp(-13.8155 * t / rt60_s)
        / sample_rate
    )
    noise = rng.standard_normal((2, n)) * np.sqrt(energy_per_sample)
    noise[:, :_TAIL_FADE] *= np.sin(np.linspace(0, np.pi / 2, _TAIL_FADE)) ** 2
    half = hrirs.diffuse_fir.shape[1] // 2
    tail = np.stack([np.convolve(noise[e], hrirs.diffuse_fir[e]) for e in range(2)])
    # zero-phase filter centred at `half`: the filtered tail starts `half` samples earlier
    return tail, start - half
