"""Acoustic models for domain-randomised hearing-aid scenes: four ways from a talker to the mics.

Every model returns, per source, impulse responses ``[4, 2, taps]`` in the channel layout of
:mod:`.rooms` (channel ``ED, BTE_fr, BTE_mid, BTE_rear`` = CEC2 ``CH0..CH3``; ear left,
right), sampled at 44.1 kHz, tap 0 = emission time (up to a constant delay of the model).

Models (``ACOUSTIC_MODELS``)
----------------------------
``kemar_ism``
    The demo renderer's acoustics (:mod:`.rooms`): shoebox image sources (pyroomacoustics,
    Eyring absorption for the drawn RT60) up to the mixing time, each through the measured
    MIT KEMAR HRIR of its direction (Gardner & Martin 1995; normal pinna -- the SOFA set is
    mirror-symmetric, built from one ear, so there is no second pinna to draw), then a
    stochastic late tail. :func:`early_response` equals :func:`.rooms.early_response` for the
    default geometry (tested); the geometry is drawn per scene here.
``sphere_ism``
    The same image sources through a rigid-sphere head instead of KEMAR: the Brown & Duda
    (1998, Sec. III-A, eqs. 1-3) one-pole/one-zero head-shadow filter
    ``(1 + j alpha(theta) w / 2 w0) / (1 + j w / 2 w0)``, ``w0 = c / a``,
    ``alpha(theta) = (1 + alpha_min / 2) + (1 - alpha_min / 2) cos(theta / theta_min * 180 deg)``
    (``alpha_min = 0.1``, ``theta_min = 150 deg``) with the Woodworth delay
    ``-a cos(theta) / c`` (``theta < 90 deg``) or ``a (theta - pi / 2) / c``, ``theta`` the
    angle between the arrival direction and the ear axis; ears at +-100 degrees azimuth (Brown
    & Duda); radius ``a`` drawn per scene. No pinna, no torso.
``freefield_ism``
    The same image sources received by six (eight with ``ED``) omnidirectional microphones in
    free field, no head: exact spherical distance from every image to every microphone, ears
    (the ``ED`` points) ``+-ear_half_width_m`` from the head centre.
``rostock_brir``
    The measured BRIRs of a KEMAR 45BA with large pinnae in a seminar room
    (spatialaudio/communication-acoustics-exercises, University of Rostock, CC0; RT60 about
    0.6 s, loudspeaker 6.3 m away, head turned 0 / +40 / -40 degrees: sources at 0, -40, +40
    degrees azimuth, elevation 0). Only the eardrum BRIR is measured, so the BTE channels are
    synthesised: frames of 256 samples (periodic Hann, hop 128, overlap-add) each get the
    per-microphone plane-wave delays of one direction of arrival -- the measured direction for
    the frames of the direct sound, a random direction (uniform on the sphere) for every later
    frame, so the reverberation reaches the BTE array from everywhere. A scene may use the
    mirror image (ears swapped, azimuths negated).

Late reverberation (the three ``*_ism`` models)
------------------------------------------------
After the mixing time: Gaussian noise with the diffuse-field energy envelope of
:func:`.rooms.late_tail` (``c / (4 pi V) exp(-13.8 t / RT60)``, times the source's radiated
power), spectrally shaped by the model's diffuse-field ear response (KEMAR: RMS HRTF magnitude
over all 710 directions; sphere: RMS head-shadow magnitude over 256 directions; free field:
flat). Unlike :func:`.rooms.late_tail` (identical tail for an ear's four channels, independent
ears) the eight channels get the spatial coherence of a diffuse field: ``sin(kd) / kd`` between
microphones of one ear (Cook et al. 1955) and, across the head, the fit of Lindevald & Benade
(1986) ``sinc(2.2 kd) / sqrt(1 + (0.5 kd)^4)`` (free field: ``sinc(kd)``), imposed per
frequency bin by the matrix square root of the coherence matrix.

Microphones (all models)
------------------------
:func:`draw_bte_geometry`: per scene a random BTE array behind each ear (front-rear spacing,
position behind / above the ear-canal entrance, tilt, +-``jitter_mm`` per microphone and
coordinate, the two ears drawn independently around a common design).
:func:`microphone_response`: per microphone a gain (uniform +-``gain_db``), a first-order
high-pass (corner log-uniform in ``highpass_hz``; the low-frequency roll-off whose spread is
the main source of phase mismatch between hearing-aid microphones) and a small delay
(+-``delay_us``), and per ear a smooth minimum-phase colouration (three Gaussian bumps on a log
frequency axis, +-``colour_db``) standing in for the unknown BTE / ear-canal response
difference. Self-noise is added by the mixer.

Coordinates and angles as in :mod:`.rooms`: head frame x forward, y left, z up; azimuth
counter-clockwise (positive = left) in degrees.

References
----------
W. G. Gardner and K. D. Martin, "HRTF measurements of a KEMAR", JASA 97, 3907-3908 (1995).
C. P. Brown and R. O. Duda, "A structural model for binaural sound synthesis", IEEE Trans.
Speech Audio Process. 6(5), 476-488 (1998).
R. K. Cook et al., "Measurement of correlation coefficients in reverberant sound fields",
JASA 27, 1072-1077 (1955).
I. M. Lindevald and A. H. Benade, "Two-ear correlation in the statistical sound fields of
rooms", JASA 80, 661-664 (1986).
J. B. Allen and D. A. Berkley, "Image method for efficiently simulating small-room
acoustics", JASA 65, 943-950 (1979).
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import scipy.fft as sfft

from clarity_se.data.render import rooms

logger = logging.getLogger(__name__)

SAMPLE_RATE = 44100
SPEED_OF_SOUND = rooms.SPEED_OF_SOUND
ACOUSTIC_MODELS = ("kemar_ism", "sphere_ism", "freefield_ism", "rostock_brir")
#: Block size of the per-image responses (as :mod:`.rooms`).
NFFT = 1024
#: Delay (samples) built into the analytic ear models so their band-limited kernels are causal.
GUARD = 32
#: Brown & Duda (1998) head-shadow constants and ear azimuth.
ALPHA_MIN, THETA_MIN_DEG, EAR_AZIMUTH_DEG = 0.1, 150.0, 100.0
#: Lindevald & Benade (1986) two-ear coherence fit ``sinc(A kd) / sqrt(1 + (B kd)^4)``.
LB_ALPHA, LB_BETA = 2.2, 0.5
#: Direct sound of a measured BRIR: this long after its onset (s).
DIRECT_WINDOW_S = 0.0015
_FREQS = np.fft.rfftfreq(NFFT, 1.0 / SAMPLE_RATE)


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class BteGeometry:
    """Microphone positions of both hearing aids.

    Attributes
    ----------
    offsets_m : ndarray [shape=(2, 4, 3)], float64
        Position of channel ``c`` (``ED, BTE_fr, BTE_mid, BTE_rear``) of ear ``e`` (left,
        right) relative to that ear's canal entrance, head frame (m). ``ED`` is 0.
    ear_half_width_m : float
        Distance of each ear-canal entrance from the head centre (free-field and sphere
        models; the KEMAR and BRIR models carry their own head).
    """

    offsets_m: np.ndarray
    ear_half_width_m: float = rooms.EAR_HALF_WIDTH_M

    @classmethod
    def default(cls) -> BteGeometry:
        """The demo renderer's array (``rooms.CHANNEL_OFFSETS_M`` at both ears)."""
        return cls(np.stack([rooms.CHANNEL_OFFSETS_M, rooms.CHANNEL_OFFSETS_M]))

    def spacing_mm(self) -> float:
        """Mean front-rear microphone distance over the two ears (mm)."""
        d = np.linalg.norm(self.offsets_m[:, 1] - self.offsets_m[:, 3], axis=-1)
        return float(1000 * d.mean())

    def positions_m(self) -> np.ndarray:
        """Microphone positions relative to the head centre ``[2, 4, 3]`` (ears on the y axis)."""
        ears = np.array([[0.0, self.ear_half_width_m, 0.0], [0.0, -self.ear_half_width_m, 0.0]])
        return ears[:, None, :] + self.offsets_m


@dataclass(frozen=True)
class GeometryRanges:
    """Ranges of :func:`draw_bte_geometry` (all uniform).

    Attributes
    ----------
    spacing_mm : (float, float)
        Front-rear microphone distance; the middle one sits 40-60 % of the way.
        Commercial BTE arrays: about 8-16 mm (the demo renderer: 15.2 mm).
    behind_mm, above_mm : (float, float)
        Middle microphone behind / above the ear-canal entrance (demo renderer: 10, 20 mm).
    tilt_deg : (float, float)
        Pitch of the array (positive: front microphone higher).
    jitter_mm : float
        Per microphone, per coordinate, per ear: +- this (left and right differ).
    ear_half_width_m : (float, float)
        Half the distance between the ear-canal entrances (head width).
    """

    spacing_mm: tuple[float, float] = (8.0, 16.0)
    behind_mm: tuple[float, float] = (4.0, 16.0)
    above_mm: tuple[float, float] = (10.0, 30.0)
    tilt_deg: tuple[float, float] = (-15.0, 25.0)
    jitter_mm: float = 1.5
    ear_half_width_m: tuple[float, float] = (0.068, 0.082)


def draw_bte_geometry(
    rng: np.random.Generator, ranges: GeometryRanges | None = None
) -> BteGeometry:
    """Draw the BTE arrays of one scene.

    Parameters
    ----------
    rng : numpy.random.Generator
    ranges : GeometryRanges, optional

    Returns
    -------
    BteGeometry
    """
    r = ranges or GeometryRanges()
    spacing = rng.uniform(*r.spacing_mm) / 1000
    frac = rng.uniform(0.4, 0.6)
    behind, above = rng.uniform(*r.behind_mm) / 1000, rng.uniform(*r.above_mm) / 1000
    tilt = np.radians(rng.uniform(*r.tilt_deg))
    axis = np.array([np.cos(tilt), 0.0, np.sin(tilt)])  # rear -> front
    mid = np.array([-behind, 0.0, above])
    design = np.stack(
        [np.zeros(3), mid + frac * spacing * axis, mid, mid - (1 - frac) * spacing * axis]
    )
    offsets = (
        np.stack([design, design]) + rng.uniform(-r.jitter_mm, r.jitter_mm, size=(2, 4, 3)) / 1000
    )
    offsets[:, 0] = 0.0
    return BteGeometry(offsets, float(rng.uniform(*r.ear_half_width_m)))


# --------------------------------------------------------------------------- ear models


def _taper(freqs: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Raised-cosine roll-off from 0.8 x Nyquist to Nyquist (band-limits analytic kernels)."""
    nyq = sample_rate / 2
    f1 = 0.8 * nyq
    x = np.clip((freqs - f1) / (nyq - f1), 0.0, 1.0)
    return 0.5 * (1 + np.cos(np.pi * x))


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


class EarModel:
    """Directional response of the two ears (base class).

    Attributes
    ----------
    name : str
    lead : float
        Samples subtracted from every arrival (the HRIR bulk delay; 0 for analytic models).
    arrival_offset : int
        Approximate samples between the physical arrival and the response onset (aligns the
        late tail).
    exact_positions : bool
        Delays from exact microphone distances (free field) instead of the plane-wave
        projection of the offsets from the ear (head models).
    head : bool
        A head separates the ears (two-ear coherence model).
    diffuse_magnitude : ndarray [shape=(2, NFFT // 2 + 1)]
        Diffuse-field (RMS over directions) magnitude per ear.
    """

    name = "ears"
    lead = 0.0
    arrival_offset = 0
    exact_positions = False
    head = True
    diffuse_magnitude: np.ndarray

    def spectra(self, unit: np.ndarray) -> np.ndarray:
        """Ear transfer functions for arrival directions.

        Parameters
        ----------
        unit : ndarray [shape=(n, 3)]
            Unit vectors from the head centre towards the (image) sources, head frame.

        Returns
        -------
        ndarray [shape=(n, 2, NFFT // 2 + 1)], complex128
        """
        raise NotImplementedError


class KemarEars(EarModel):
    """Measured HRIRs, nearest measured direction (exactly as :func:`.rooms.early_response`)."""

    name = "kemar"

    def __init__(self, hrirs: rooms.HrirSet) -> None:
        self.hrirs = hrirs
        self.lead = float(hrirs.bulk_delay)
        self.arrival_offset = 4 - int(hrirs.bulk_delay)  # onset sits ~4 taps into a block
        self.diffuse_magnitude = np.sqrt(np.mean(np.abs(hrirs.spectra) ** 2, axis=0))

    def spectra(self, unit: np.ndarray) -> np.ndarray:
        """Measured HRIR spectra of the nearest measured direction (no interpolation).

        Parameters
        ----------
        unit : np.ndarray [shape=(n, 3)]
            Unit arrival directions (head frame).

        Returns
        -------
        np.ndarray [shape=(n, 2, bins)], complex
            Left/right transfer functions on the renderer's frequency grid.
        """
        idx = np.argmax(unit @ self.hrirs.directions.T, axis=1)
        return self.hrirs.spectra[idx]


class SphereEars(EarModel):
    """Rigid-sphere head of Brown & Duda (1998): head shadow + Woodworth delay, no pinna.

    Parameters
    ----------
    radius_m : float
        Head radius ``a`` (m), > 0.
    """

    name = "sphere"

    def __init__(self, radius_m: float) -> None:
        if not radius_m > 0:
            raise ValueError(f"radius_m must be > 0, got {radius_m}")
        self.radius_m = float(radius_m)
        self.arrival_offset = GUARD
        az = np.radians(EAR_AZIMUTH_DEG)
        self.ear_axes = np.array([[np.cos(az), np.sin(az), 0.0], [np.cos(az), -np.sin(az), 0.0]])
        self._taper = _taper(_FREQS)
        mags = np.abs(self.spectra(_fibonacci_sphere(256)))
        self.diffuse_magnitude = np.sqrt(np.mean(mags**2, axis=0))

    def spectra(self, unit: np.ndarray) -> np.ndarray:
        """Rigid-sphere ear transfer functions (Brown & Duda 1998: one-pole/one-zero head
        shadow, Woodworth delay), with the renderer's guard delay and taper.

        Parameters
        ----------
        unit : np.ndarray [shape=(n, 3)]
            Unit arrival directions (head frame).

        Returns
        -------
        np.ndarray [shape=(n, 2, bins)], complex
        """
        a, c = self.radius_m, SPEED_OF_SOUND
        theta = np.arccos(np.clip(unit @ self.ear_axes.T, -1.0, 1.0))  # [n, 2]
        alpha = (1 + ALPHA_MIN / 2) + (1 - ALPHA_MIN / 2) * np.cos(
            theta / np.radians(THETA_MIN_DEG) * np.pi
        )
        delay_s = np.where(theta < np.pi / 2, -a / c * np.cos(theta), a / c * (theta - np.pi / 2))
        w = 2 * np.pi * _FREQS
        w0 = c / a
        shadow = (1 + 1j * alpha[..., None] * w / (2 * w0)) / (1 + 1j * w / (2 * w0))
        phase = np.exp(-1j * w * (delay_s[..., None] + GUARD / SAMPLE_RATE))
        return shadow * phase * self._taper


class FreeFieldEars(EarModel):
    """No head: omnidirectional microphones; every delay from the exact distance."""

    name = "freefield"
    exact_positions = True
    head = False

    def __init__(self) -> None:
        self.arrival_offset = GUARD
        self._block = _taper(_FREQS) * np.exp(-2j * np.pi * _FREQS * GUARD / SAMPLE_RATE)
        self.diffuse_magnitude = np.ones((2, _FREQS.size))

    def spectra(self, unit: np.ndarray) -> np.ndarray:
        """Direction-independent responses (omnidirectional microphones): the guard delay and
        taper only, ``[n, 2, bins]`` complex (a read-only broadcast view) for ``unit [n, 3]``."""
        return np.broadcast_to(self._block, (unit.shape[0], 2, _FREQS.size))


def early_response(
    images: rooms.ImageSources,
    listener,
    head_azimuth_deg: float,
    ears: EarModel,
    geometry: BteGeometry | None = None,
    *,
    direct_only: bool = False,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Direct path + early reflections at the 4 x 2 microphones for any ear model.

    Generalises :func:`.rooms.early_response` (same gain ``damping / (4 pi r)``, nearest-HRIR
    lookup, per-channel fractional delay by a linear phase on ``NFFT`` points) to per-ear
    microphone offsets, analytic ear models and, for :class:`FreeFieldEars`, exact
    image-to-microphone distances (spherical spreading per microphone).

    Parameters
    ----------
    images : rooms.ImageSources
    listener : array [shape=(3,)]
        Head centre, room frame (m).
    head_azimuth_deg : float
        View direction of the head (degrees, room frame).
    ears : EarModel
    geometry : BteGeometry, optional
        Default :meth:`BteGeometry.default`.
    direct_only : bool
        Only the direct path (the anechoic reference).
    sample_rate : int
        Hz (44.1 kHz: the ear models' rate).

    Returns
    -------
    ndarray [shape=(4, 2, n_taps)], float64

    Raises
    ------
    ValueError
        A source too close to the head (negative delay).
    """
    geometry = BteGeometry.default() if geometry is None else geometry
    lis = np.asarray(listener, dtype=np.float64)
    sel = images.orders == 0 if direct_only else slice(None)
    pos, gains = images.positions[sel], images.gains[sel]
    vec = (pos - lis) @ rooms.head_rotation(head_azimuth_deg).T  # [n, 3] head frame
    dist = np.linalg.norm(vec, axis=1)
    unit = vec / dist[:, None]
    spec = ears.spectra(unit)  # [n, 2, nf]
    if ears.exact_positions:
        mics = geometry.positions_m()  # [2, 4, 3]
        d_mic = np.linalg.norm(vec[:, None, None, :] - mics[None], axis=-1)  # [n, 2, 4]
        amp = gains[:, None, None] / (4 * np.pi * d_mic)
        delay = d_mic / SPEED_OF_SOUND * sample_rate - ears.lead
    else:
        proj = np.einsum("nk,eck->nec", unit, geometry.offsets_m)  # [n, 2, 4]
        amp = np.broadcast_to((gains / (4 * np.pi * dist))[:, None, None], proj.shape)
        delay = (dist[:, None, None] - proj) / SPEED_OF_SOUND * sample_rate - ears.lead
    if np.any(delay < 0):
        raise ValueError("source closer to the head than the ear model's bulk delay allows")
    start = np.floor(delay).astype(np.int64)  # [n, 2, 4]
    frac = delay - start
    k = np.arange(NFFT // 2 + 1)
    phase = np.exp(-2j * np.pi * frac[..., None] * k / NFFT)  # [n, 2, 4, nf]
    blocks = np.fft.irfft(amp[..., None] * spec[:, :, None, :] * phase, n=NFFT, axis=-1)
    n_taps = int(start.max()) + NFFT
    out = np.zeros((4, 2, n_taps))
    taps = np.arange(NFFT)
    for e in range(2):
        for c in range(4):
            idx = (start[:, e, c, None] + taps).ravel()
            out[c, e] = np.bincount(idx, weights=blocks[:, e, c].ravel(), minlength=n_taps)
    return out


# --------------------------------------------------------------------------- late tail


def coherence_matrix(freqs: np.ndarray, geometry: BteGeometry, *, head: bool = True) -> np.ndarray:
    """Diffuse-field coherence of the 8 microphones per frequency.

    Parameters
    ----------
    freqs : ndarray [shape=(n_freq,)]
        Hz.
    geometry : BteGeometry
    head : bool
        Across the ears: Lindevald & Benade (1986) ``sinc(2.2 kd) / sqrt(1 + (0.5 kd)^4)``
        (True) or free-field ``sinc(kd)``; within an ear always ``sinc(kd)``.

    Returns
    -------
    ndarray [shape=(n_freq, 8, 8)], float64
        Rows / columns ordered ``ear * 4 + channel``.
    """
    pos = geometry.positions_m().reshape(8, 3)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)  # [8, 8]
    same_ear = np.equal.outer(np.arange(8) // 4, np.arange(8) // 4)
    kd = 2 * np.pi * freqs[:, None, None] / SPEED_OF_SOUND * d[None]
    gamma = np.sinc(kd / np.pi)
    if head:
        across = np.sinc(LB_ALPHA * kd / np.pi) / np.sqrt(1 + (LB_BETA * kd) ** 4)
        gamma = np.where(same_ear[None], gamma, across)
    return gamma


def coherence_mixing(geometry: BteGeometry, *, head: bool = True) -> np.ndarray:
    """Matrix square root of :func:`coherence_matrix` on the ``NFFT`` grid.

    Parameters
    ----------
    geometry : BteGeometry
    head : bool

    Returns
    -------
    ndarray [shape=(NFFT // 2 + 1, 8, 8)], float64
        ``M`` with ``M M^T`` = the coherence (negative eigenvalues clipped, rows renormalised
        to unit variance): mixing 8 independent unit-variance noises with it gives the
        diffuse-field coherence.
    """
    lam, vec = np.linalg.eigh(coherence_matrix(_FREQS, geometry, head=head))
    mix = vec * np.sqrt(np.clip(lam, 0.0, None))[:, None, :]  # [nf0, 8, 8]
    return mix / np.maximum(np.linalg.norm(mix, axis=-1, keepdims=True), 1e-12)


def _coherent_noise(
    rng: np.random.Generator, n: int, mix: np.ndarray, magnitude: np.ndarray
) -> np.ndarray:
    """8 channels of Gaussian noise mixed by ``mix [nf0, 8, 8]``, ear magnitude ``[2, nf0]``."""
    nf0 = mix.shape[0]
    n_fft = sfft.next_fast_len(n, real=True)
    w = sfft.rfft(rng.standard_normal((8, n_fft)), axis=-1)  # [8, nf]
    nf = w.shape[-1]
    coarse = np.minimum(np.round(np.arange(nf) * (nf0 - 1) / max(nf - 1, 1)).astype(int), nf0 - 1)
    x = np.einsum("fij,jf->if", mix[coarse], w)
    mag = np.repeat(magnitude, 4, axis=0)  # [8, nf0]
    grid = np.linspace(0, 1, nf0)
    fine = np.linspace(0, 1, nf)
    x *= np.stack([np.interp(fine, grid, m) for m in mag])
    return sfft.irfft(x, n=n_fft, axis=-1)[:, :n]


def diffuse_tail(
    rng: np.random.Generator,
    *,
    dimensions,
    rt60_s: float,
    t_mix_s: float,
    ears: EarModel,
    geometry: BteGeometry,
    radiated_power: float = 1.0,
    mixing: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> tuple[np.ndarray, int]:
    """Stochastic late reverberation with diffuse-field coherence across the 8 microphones.

    Same energy envelope as :func:`.rooms.late_tail` (image-source model's asymptotic energy
    density ``c / (4 pi V) exp(-13.8 t / RT60)`` per second for the ``1 / (4 pi r)`` gain
    convention, times ``radiated_power``), shaped by ``ears.diffuse_magnitude``, coherence
    :func:`coherence_matrix`, 64-sample fade-in.

    Parameters
    ----------
    rng : numpy.random.Generator
    dimensions : array [shape=(3,)]
        Room size (m).
    rt60_s, t_mix_s : float
        Reverberation time and start of the tail (s after emission).
    ears : EarModel
    geometry : BteGeometry
    radiated_power : float
    mixing : ndarray, optional
        :func:`coherence_mixing` of ``geometry`` (computed if omitted; pass it to reuse).
    sample_rate : int

    Returns
    -------
    tail : ndarray [shape=(4, 2, n_taps)], float64
    start : int
        Sample after emission at which ``tail[..., 0]`` plays.
    """
    volume = float(np.prod(np.asarray(dimensions, dtype=np.float64)))
    start = int(np.ceil(t_mix_s * sample_rate)) + int(ears.arrival_offset)
    n = int(np.ceil(rt60_s * sample_rate)) + 1
    t = (start + np.arange(n)) / sample_rate
    energy = radiated_power * SPEED_OF_SOUND / (4 * np.pi * volume)
    envelope = np.sqrt(energy * np.exp(-13.8155 * t / rt60_s) / sample_rate)
    envelope[:64] *= np.sin(np.linspace(0, np.pi / 2, 64)) ** 2
    if mixing is None:
        mixing = coherence_mixing(geometry, head=ears.head)
    noise = _coherent_noise(rng, n, mixing, ears.diffuse_magnitude) * envelope
    return noise.reshape(2, 4, n).transpose(1, 0, 2).copy(), start


# --------------------------------------------------------------------------- scene responses


@dataclass
class SourceResponse:
    """Impulse responses of one source.

    Attributes
    ----------
    early : list of ndarray [shape=(4, 2, taps)]
        Direct path + early reflections, one per head orientation (1 or 2).
    tail : ndarray [shape=(4, 2, taps)] or None
        Late reverberation, shared by the orientations.
    tail_start : int
        Sample at which the tail starts.
    """

    early: list[np.ndarray]
    tail: np.ndarray | None = None
    tail_start: int = 0

    def length(self) -> int:
        """Taps of the longest part."""
        n = max(e.shape[-1] for e in self.early)
        if self.tail is not None:
            n = max(n, self.tail_start + self.tail.shape[-1])
        return n

    def combined(self, orientation: int = 0) -> np.ndarray:
        """Early part of one orientation plus the tail, ``[4, 2, length()]``."""
        out = np.zeros((4, 2, self.length()))
        e = self.early[orientation]
        out[..., : e.shape[-1]] += e
        if self.tail is not None:
            out[..., self.tail_start : self.tail_start + self.tail.shape[-1]] += self.tail
        return out


@dataclass
class SceneAcoustics:
    """Everything one scene needs from an acoustic model.

    Attributes
    ----------
    model : str
    target : SourceResponse
    target_direct : list of ndarray [shape=(2, taps)]
        Direct path at CH1 (left, right) per head orientation: the anechoic reference.
    interferers : list of SourceResponse
    info : dict
        Scalars describing the scene (``rt60_s``, ``room``, ``target_distance_m``,
        ``target_elevation_deg``, ``interferer_azimuths_deg``...).
    interferers_direct : list of ndarray [shape=(2, taps)]
        Direct path at CH1 (left, right) of each interferer, in the final head orientation
        (the mixer's ``off_front_target="talkers"`` reference of a speech interferer).
    """

    model: str
    target: SourceResponse
    target_direct: list[np.ndarray]
    interferers: list[SourceResponse]
    info: dict = field(default_factory=dict)
    interferers_direct: list[np.ndarray] = field(default_factory=list)


@dataclass(frozen=True)
class RoomRanges:
    """Ranges of the shoebox scenes (uniform unless stated).

    Attributes
    ----------
    length_m, width_m, height_m : (float, float)
        Room size (CEC2 / demo rooms: 3.5-8 x 3-6 x 2.4-3.2 m; wider here).
    rt60_s : (float, float)
        Reverberation time (issue 17: 0.1-1.0 s).
    ear_height_m : (float, float)
        Listener ear height (seated to standing).
    target_distance_m, interferer_distance_m : (float, float)
    source_height_offset_m : (float, float)
        Source height relative to the ears.
    min_interferer_separation_deg : float
        Smallest azimuth difference between an interferer and the target.
    talker_yaw_deg : float
        The target talker faces the listener +- this (degrees).
    head_radius_m : (float, float)
        Sphere model head radius (adult heads 7.5-9.5 cm).
    """

    length_m: tuple[float, float] = (3.0, 10.0)
    width_m: tuple[float, float] = (2.5, 8.0)
    height_m: tuple[float, float] = (2.4, 4.0)
    rt60_s: tuple[float, float] = (0.1, 1.0)
    ear_height_m: tuple[float, float] = (1.1, 1.8)
    target_distance_m: tuple[float, float] = (0.6, 3.0)
    interferer_distance_m: tuple[float, float] = (0.6, 4.0)
    source_height_offset_m: tuple[float, float] = (-0.3, 0.4)
    min_interferer_separation_deg: float = 20.0
    talker_yaw_deg: float = 30.0
    head_radius_m: tuple[float, float] = (0.075, 0.095)


def _direction(azimuth_deg: float) -> np.ndarray:
    a = np.radians(azimuth_deg)
    return np.array([np.cos(a), np.sin(a), 0.0])


class ShoeboxModel:
    """Image-source shoebox scenes through a head (KEMAR HRIRs, sphere) or none (free field).

    Parameters
    ----------
    name : {"kemar_ism", "sphere_ism", "freefield_ism"}
    hrir_path : path-like, optional
        SOFA file for ``kemar_ism`` (default: the embedded MIT KEMAR set).

    Raises
    ------
    ValueError
        Unknown name.
    """

    available_azimuths_deg = None  # any direction

    def __init__(self, name: str, hrir_path: str | os.PathLike | None = None) -> None:
        if name not in ("kemar_ism", "sphere_ism", "freefield_ism"):
            raise ValueError(f"not a shoebox model: {name!r}")
        self.name = name
        self._hrir_path = None if hrir_path is None else str(hrir_path)

    def _ears(self, rng: np.random.Generator, ranges: RoomRanges) -> EarModel:
        if self.name == "kemar_ism":
            return KemarEars(rooms.load_hrir_set(self._hrir_path))
        if self.name == "sphere_ism":
            return SphereEars(float(rng.uniform(*ranges.head_radius_m)))
        return FreeFieldEars()

    def draw(
        self,
        rng: np.random.Generator,
        *,
        target_azimuth_deg: float,
        n_interferers: int,
        geometry: BteGeometry,
        ranges: RoomRanges | None = None,
        head_turn_deg: float = 0.0,
    ) -> SceneAcoustics:
        """Draw a room, place the head, the target and the interferers, compute the responses.

        Parameters
        ----------
        rng : numpy.random.Generator
        target_azimuth_deg : float
            Target direction relative to the (final) view direction of the head.
        n_interferers : int
            >= 0.
        geometry : BteGeometry
        ranges : RoomRanges, optional
        head_turn_deg : float
            If non-zero, a second (initial) head orientation turned by ``-head_turn_deg``
            (target at ``target_azimuth_deg + head_turn_deg`` from it) is also rendered; the
            early parts are then ``[initial, final]``.

        Returns
        -------
        SceneAcoustics
        """
        r = ranges or RoomRanges()
        ears = self._ears(rng, r)
        if isinstance(ears, SphereEars):  # the ears sit on the sphere
            geometry = replace(geometry, ear_half_width_m=ears.radius_m)
        dims = np.array([rng.uniform(*r.length_m), rng.uniform(*r.width_m), 0.0])
        dims[2] = rng.uniform(*r.height_m)
        rt60 = float(rng.uniform(*r.rt60_s))
        ear_z = min(float(rng.uniform(*r.ear_height_m)), dims[2] - 0.4)
        margin = 0.5
        lis = np.array(
            [rng.uniform(margin, dims[0] - margin), rng.uniform(margin, dims[1] - margin), ear_z]
        )

        def inside(p: np.ndarray, m: float = 0.25) -> bool:
            return bool(np.all(p > m) and np.all(p < dims - m))

        def place(az_room: float, dist_range, height_range) -> np.ndarray | None:
            for attempt in range(60):
                d = rng.uniform(*dist_range) * (1.0 if attempt < 30 else 0.5)
                dz = rng.uniform(*height_range)
                p = lis + d * _direction(az_room) + np.array([0.0, 0.0, dz])
                p[2] = np.clip(p[2], 0.3, dims[2] - 0.3)
                if inside(p):
                    return p
            return None

        for _ in range(100):
            head_az = float(rng.uniform(0.0, 360.0))
            tgt = place(head_az + target_azimuth_deg, r.target_distance_m, r.source_height_offset_m)
            if tgt is not None:
                break
        else:  # pragma: no cover - 100 head orientations all failing is geometrically unlikely
            raise ValueError(f"could not place the target in room {dims.tolist()}")
        interferer_pos, interferer_az = [], []
        for _ in range(n_interferers):
            for _attempt in range(100):
                rel = float(rng.uniform(-180.0, 180.0))
                sep = abs((rel - target_azimuth_deg + 180.0) % 360.0 - 180.0)
                if sep < r.min_interferer_separation_deg:
                    continue
                p = place(head_az + rel, r.interferer_distance_m, (-0.5, 0.5))
                if p is not None:
                    interferer_pos.append(p)
                    interferer_az.append(rel)
                    break
            else:
                raise ValueError(f"could not place an interferer in room {dims.tolist()}")

        orientations = [head_az] if head_turn_deg == 0 else [head_az - head_turn_deg, head_az]
        yaw = np.radians(rng.uniform(-r.talker_yaw_deg, r.talker_yaw_deg))
        to_lis = lis - tgt
        view = np.array(
            [
                np.cos(yaw) * to_lis[0] - np.sin(yaw) * to_lis[1],
                np.sin(yaw) * to_lis[0] + np.cos(yaw) * to_lis[1],
                to_lis[2],
            ]
        )
        im_t = rooms.image_sources(dims, rt60, tgt, lis, view_vector=view)
        mixing = coherence_mixing(geometry, head=ears.head)
        args = (lis, orientations, ears, geometry, dims, rt60, mixing)
        target = self._response(rng, im_t, *args)
        direct = [
            early_response(im_t, lis, a, ears, geometry, direct_only=True)[1] for a in orientations
        ]
        interferers, interferers_direct = [], []
        for p in interferer_pos:
            im_i = rooms.image_sources(dims, rt60, p, lis)
            interferers.append(self._response(rng, im_i, *args))
            interferers_direct.append(
                early_response(im_i, lis, orientations[-1], ears, geometry, direct_only=True)[1]
            )
        vec = tgt - lis
        info = {
            "room": "shoebox {:.2f}x{:.2f}x{:.2f}".format(*dims),
            "rt60_s": rt60,
            "target_distance_m": float(np.linalg.norm(vec)),
            "target_elevation_deg": float(np.degrees(np.arcsin(vec[2] / np.linalg.norm(vec)))),
            "interferer_azimuths_deg": interferer_az,
            "head_radius_m": getattr(ears, "radius_m", float("nan")),
            "listener_m": lis.tolist(),
            "target_m": tgt.tolist(),
            "interferers_m": [p.tolist() for p in interferer_pos],
            "room_dimensions_m": dims.tolist(),
            "head_azimuths_deg": orientations,
        }
        return SceneAcoustics(self.name, target, direct, interferers, info, interferers_direct)

    @staticmethod
    def _response(
        rng, images, lis, orientations, ears, geometry, dims, rt60, mixing
    ) -> SourceResponse:
        early = [early_response(images, lis, a, ears, geometry) for a in orientations]
        tail, start = diffuse_tail(
            rng,
            dimensions=dims,
            rt60_s=rt60,
            t_mix_s=images.t_mix_s,
            ears=ears,
            geometry=geometry,
            radiated_power=images.radiated_power,
            mixing=mixing,
        )
        return SourceResponse(early, tail, start)


# --------------------------------------------------------------------------- measured BRIRs


@dataclass(frozen=True)
class Brir:
    """One measured BRIR, trimmed.

    Attributes
    ----------
    azimuth_deg : float
        Source direction relative to the head (positive: left).
    ir : ndarray [shape=(2, taps)], float64
        Left / right, starting ``GUARD`` samples before the direct sound.
    onset : int
        Sample of the direct sound in ``ir``.
    """

    azimuth_deg: float
    ir: np.ndarray
    onset: int


@functools.lru_cache(maxsize=4)
def load_rostock_brirs(folder: str, max_length_s: float = 0.9) -> tuple[Brir, ...]:
    """Read the Rostock KEMAR BRIRs (MATLAB v5 struct ``data``: ``ir [taps, 2]``, ``fs``,
    ``apparent_azimuth`` in radians).

    Each BRIR is cut ``GUARD`` samples before its onset (first sample above 5 % of the peak,
    earlier ear) and after ``max_length_s`` (10 ms half-Hann fade; the measured decay is below
    -70 dB there for the 0.6 s RT60).

    Parameters
    ----------
    folder : str
        Folder with ``brir_sweep*.mat`` (``<data_root>/rir/rostock_kemar_brir``).
    max_length_s : float

    Returns
    -------
    tuple of Brir
        Sorted by azimuth.

    Raises
    ------
    ValueError
        Missing folder / files, or a file that is not a 2-ear BRIR at 44.1 kHz (names it).
    """
    from scipy.io import loadmat

    files = sorted(Path(folder).glob("brir_sweep*.mat"))
    if not files:
        raise ValueError(f"{folder}: no brir_sweep*.mat (the rostock_brir model needs them)")
    out = []
    n_max = int(round(max_length_s * SAMPLE_RATE))
    for path in files:
        try:
            data = loadmat(str(path), struct_as_record=False, squeeze_me=True)["data"]
            ir = np.asarray(data.ir, dtype=np.float64)
            fs = int(data.fs)
            az = float(np.degrees(float(data.apparent_azimuth)))
        except (KeyError, AttributeError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{path}: not a BRIR struct 'data' with ir/fs/apparent_azimuth ({exc})"
            ) from None
        if ir.ndim != 2 or ir.shape[1] != 2 or fs != SAMPLE_RATE:
            raise ValueError(
                f"{path}: expected ir [taps, 2] at {SAMPLE_RATE} Hz, got {ir.shape} at {fs} Hz"
            )
        peak = np.abs(ir).max(axis=0)
        onset = int(min(np.argmax(np.abs(ir[:, e]) > 0.05 * peak[e]) for e in range(2)))
        start = max(onset - GUARD, 0)
        seg = ir[start : start + n_max].T.copy()
        fade = int(0.010 * SAMPLE_RATE)
        seg[:, -fade:] *= np.cos(np.linspace(0, np.pi / 2, fade)) ** 2
        out.append(Brir(round(az, 3) + 0.0, seg, onset - start))
    return tuple(sorted(out, key=lambda b: b.azimuth_deg))


_MAX_Q = 32 * 4  # +-4 samples in 1/32 steps


@functools.lru_cache(maxsize=4)
def _delay_table(n_fft: int, shift: int) -> np.ndarray:
    """``exp(-2 pi j f (shift + q / 32))`` for ``q = -_MAX_Q.._MAX_Q``, ``[2 _MAX_Q + 1, nf]``."""
    f = np.arange(n_fft // 2 + 1) / n_fft
    d = shift + np.arange(-_MAX_Q, _MAX_Q + 1) / 32
    return np.exp(-2j * np.pi * d[:, None] * f).astype(np.complex64)


def random_unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` directions uniform on the sphere, ``[n, 3]``."""
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def bte_from_brir(
    brir: np.ndarray,
    direct_end: int,
    azimuth_deg: float,
    geometry: BteGeometry,
    rng: np.random.Generator,
    *,
    frame: int = 256,
) -> np.ndarray:
    """Synthesise the 4 channels of each ear from a measured eardrum BRIR.

    Frames of ``frame`` samples (periodic Hann, hop ``frame / 2``: the windows sum to 1) are
    delayed per microphone (linear phase, delay rounded to 1/32 sample, at most +-4 samples)
    by the plane-wave delay ``-u . offset / c`` of one arrival
    direction ``u`` (the measured source direction for frames starting before
    ``direct_end``, a random direction per frame after) and overlap-added. ``ED`` (offset 0)
    reproduces the BRIR exactly.

    Parameters
    ----------
    brir : ndarray [shape=(2, taps)]
    direct_end : int
        End of the direct sound (samples).
    azimuth_deg : float
        Measured source direction (head frame, elevation 0).
    geometry : BteGeometry
    rng : numpy.random.Generator
    frame : int
        Frame length (even).

    Returns
    -------
    ndarray [shape=(4, 2, taps)], float64
    """
    hop = frame // 2
    n = brir.shape[-1]
    pad = np.zeros((2, n + 2 * frame))
    pad[:, frame : frame + n] = brir
    n_frames = (pad.shape[-1] - frame) // hop + 1
    win = np.hanning(frame + 1)[:-1]  # periodic
    idx = np.arange(n_frames)[:, None] * hop + np.arange(frame)
    frames = (pad[:, idx] * win).astype(np.float32)  # [2, K, frame]
    starts = np.arange(n_frames) * hop - frame  # in brir samples
    dirs = random_unit_vectors(rng, n_frames)
    dirs[starts < direct_end] = _direction(azimuth_deg)
    delay = -np.einsum("kx,ecx->kec", dirs, geometry.offsets_m) / SPEED_OF_SOUND * SAMPLE_RATE
    n_fft = 2 * frame
    spec = sfft.rfft(frames, n=n_fft, axis=-1)  # [2, K, nf]; frame sits at [0, frame)
    # shift by hop // 2 + delay inside the zero-padded block, so negative delays stay causal;
    # delays quantised to 1/32 sample (0.7 us) and looked up in a table of linear phases
    q = np.clip(np.round(delay * 32).astype(np.int64), -_MAX_Q, _MAX_Q) + _MAX_Q
    ph = _delay_table(n_fft, hop // 2)[q]  # [K, 2, 4, nf]
    y = sfft.irfft(spec.transpose(1, 0, 2)[:, :, None, :] * ph, n=n_fft, axis=-1)  # [K,2,4,nfft]
    out = np.zeros((4, 2, pad.shape[-1] + n_fft))
    for k in range(n_frames):
        out[:, :, k * hop : k * hop + n_fft] += y[k].transpose(1, 0, 2)
    first = frame + hop // 2
    return out[:, :, first : first + n]


class RostockBrirModel:
    """Measured KEMAR BRIRs (one room, three directions) with synthetic BTE channels.

    Parameters
    ----------
    folder : path-like
        ``<data_root>/rir/rostock_kemar_brir``.

    Raises
    ------
    ValueError
        See :func:`load_rostock_brirs`.
    """

    name = "rostock_brir"

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = str(folder)
        self.brirs = load_rostock_brirs(self.folder)
        self.available_azimuths_deg = tuple(b.azimuth_deg for b in self.brirs)
        self.rt60_s = _rt60_from_edc([b.ir for b in self.brirs])

    def draw(
        self,
        rng: np.random.Generator,
        *,
        target_azimuth_deg: float,
        n_interferers: int,
        geometry: BteGeometry,
        ranges: RoomRanges | None = None,
        head_turn_deg: float = 0.0,
    ) -> SceneAcoustics:
        """Responses of a scene whose sources are at the measured directions.

        ``target_azimuth_deg`` is snapped to the nearest measured (or mirrored) direction;
        interferers take the other directions (cycled when there are more interferers than
        directions). With probability 1/2 the whole scene is mirrored (ears swapped). The head
        does not turn (``head_turn_deg`` must be 0). ``ranges`` is ignored.

        Raises
        ------
        ValueError
            ``head_turn_deg != 0``.
        """
        if head_turn_deg != 0:
            raise ValueError("rostock_brir: the measured head orientations allow no head turn")
        mirror = bool(rng.random() < 0.5)
        sign = -1.0 if mirror else 1.0
        azs = np.array(self.available_azimuths_deg) * sign
        t_idx = int(np.argmin(np.abs(azs - target_azimuth_deg)))
        others = [i for i in range(len(azs)) if i != t_idx]
        order = [others[int(j)] for j in rng.permutation(len(others))]
        i_idx = [order[k % len(order)] for k in range(n_interferers)]
        window = int(round(DIRECT_WINDOW_S * SAMPLE_RATE))

        def response(i: int) -> tuple[SourceResponse, np.ndarray]:
            """The BTE responses of measured direction ``i`` and their direct path at CH1."""
            b = self.brirs[i]
            ir = b.ir[::-1] if mirror else b.ir
            irs = bte_from_brir(ir, b.onset + window, azs[i], geometry, rng)
            taper = np.zeros(irs.shape[-1])
            end = b.onset + window
            taper[:end] = 1.0
            taper[end : end + 16] = np.cos(np.linspace(0, np.pi / 2, 16)) ** 2
            return SourceResponse([irs]), (irs[1] * taper)[:, : end + 16]

        target, direct = response(t_idx)
        drawn = [response(i) for i in i_idx]
        interferers = [r for r, _ in drawn]
        info = {
            "room": "rostock seminar room (measured)",
            "rt60_s": self.rt60_s,
            "target_distance_m": 6.3,
            "target_elevation_deg": 0.0,
            "interferer_azimuths_deg": [float(azs[i]) for i in i_idx],
            "head_radius_m": float("nan"),
            "mirrored": mirror,
            "head_azimuths_deg": [0.0],
            "target_azimuth_snapped_deg": float(azs[t_idx]),
        }
        return SceneAcoustics(
            self.name, target, [direct], interferers, info, [d for _, d in drawn]
        )


def _rt60_from_edc(irs: list[np.ndarray]) -> float:
    """RT60 from the Schroeder decay of each row of each ``[rows, taps]`` array, mean.

    T20 (line fit from -5 to -25 dB, extrapolated to -60 dB); a response that does not decay
    to -25 dB (a truncated one) is fitted down to 1 dB above its lowest level.
    """
    out = []
    for arr in irs:
        for ir in np.atleast_2d(arr):
            e = np.cumsum(ir[::-1] ** 2)[::-1]
            edc = 10 * np.log10(e / e[0] + 1e-30)[:-1]
            lo = max(-25.0, float(edc.min()) + 1.0)
            sel = (edc <= -5.0) & (edc >= lo)
            if sel.sum() < 2:
                continue
            t = np.flatnonzero(sel) / SAMPLE_RATE
            slope = np.polyfit(t, edc[sel], 1)[0]  # dB / s
            out.append(-60.0 / slope)
    return float(np.mean(out)) if out else float("nan")


# --------------------------------------------------------------------------- microphones


@dataclass(frozen=True)
class MicRanges:
    """Ranges of :func:`microphone_response`.

    Attributes
    ----------
    gain_db : float
        Per-microphone gain, uniform +- this (issue 17: +-2 dB, the sensitivity tolerance of
        hearing-aid microphones).
    highpass_hz : (float, float)
        Corner of each microphone's first-order low-frequency roll-off (log-uniform).
    delay_us : float
        Per-microphone delay, uniform +- this (port / tubing differences), microseconds.
    colour_db : float
        Peak amplitude of each of the 3 per-ear colouration bumps (uniform +-).
    """

    gain_db: float = 2.0
    highpass_hz: tuple[float, float] = (10.0, 100.0)
    delay_us: float = 5.0
    colour_db: float = 4.0


def _minimum_phase(log_mag: np.ndarray, n_fft: int) -> np.ndarray:
    """Minimum-phase spectrum (homomorphic method) from ``log|H|`` on ``n_fft // 2 + 1`` bins."""
    cep = np.fft.irfft(log_mag, n=n_fft, axis=-1)
    fold = np.zeros_like(cep)
    fold[..., 0] = cep[..., 0]
    fold[..., 1 : n_fft // 2] = 2 * cep[..., 1 : n_fft // 2]
    fold[..., n_fft // 2] = cep[..., n_fft // 2]
    return np.exp(np.fft.rfft(fold, axis=-1))


def microphone_response(
    rng: np.random.Generator,
    n_fft: int,
    ranges: MicRanges | None = None,
    *,
    channels: tuple[int, ...] = (0, 1, 2, 3),
) -> tuple[np.ndarray, dict]:
    """Random transfer function of each of the 8 microphones on an ``n_fft`` grid.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_fft : int
        FFT length of the convolution it is applied in (44.1 kHz).
    ranges : MicRanges, optional
    channels : tuple of int
        Channels whose response is computed (the others are left 0); the random draws do not
        depend on it.

    Returns
    -------
    response : ndarray [shape=(4, 2, n_fft // 2 + 1)], complex64
        Channel (``ED, BTE_fr, BTE_mid, BTE_rear``), ear.
    params : dict
        ``gain_db [4, 2]``, ``highpass_hz [4, 2]``, ``delay_us [4, 2]``.
    """
    r = ranges or MicRanges()
    gain_db = rng.uniform(-r.gain_db, r.gain_db, size=(4, 2))
    lo, hi = np.log(r.highpass_hz[0]), np.log(r.highpass_hz[1])
    corner = np.exp(rng.uniform(lo, hi, size=(4, 2)))
    delay_us = rng.uniform(-r.delay_us, r.delay_us, size=(4, 2))
    # per-ear colouration on a 4096 grid, minimum phase, then onto the n_fft grid
    n_c = 4096
    fc = np.maximum(np.fft.rfftfreq(n_c, 1.0 / SAMPLE_RATE), 20.0)
    octave = np.log2(fc / 1000.0)
    log_mag = np.zeros((2, fc.size))
    for e in range(2):
        for _ in range(3):
            centre = rng.uniform(np.log2(0.2), np.log2(8.0))
            width = rng.uniform(0.3, 1.0)
            amp_db = rng.uniform(-r.colour_db, r.colour_db)
            log_mag[e] += amp_db / 20 * np.log(10) * np.exp(-0.5 * ((octave - centre) / width) ** 2)
    fir = np.fft.irfft(_minimum_phase(log_mag, n_c), n=n_c, axis=-1)
    if n_fft < n_c:
        fir = fir[:, :n_fft]
    colour = sfft.rfft(fir.astype(np.float32), n=n_fft, axis=-1)  # [2, nf] complex64
    f = np.fft.rfftfreq(n_fft, 1.0 / SAMPLE_RATE).astype(np.float32)
    response = np.zeros((4, 2, f.size), dtype=np.complex64)
    for c in channels:
        for e in range(2):
            x = f / np.float32(corner[c, e])
            hp = (x * x + 1j * x) / (1 + x * x)  # jx / (1 + jx), first-order high-pass
            phi = np.float32(-2 * np.pi * delay_us[c, e] * 1e-6) * f
            delay = np.cos(phi) + 1j * np.sin(phi)
            gain = np.float32(10 ** (gain_db[c, e] / 20))
            response[c, e] = gain * hp * delay * colour[e]
    return response, {"gain_db": gain_db, "highpass_hz": corner, "delay_us": delay_us}


# --------------------------------------------------------------------------- registry


def build_acoustic_model(name: str, data_root: str | os.PathLike | None = None):
    """An acoustic model by name.

    Parameters
    ----------
    name : str
        One of ``ACOUSTIC_MODELS``.
    data_root : path-like, optional
        Data root: ``rir/mit_kemar_normal_pinna.sofa`` (``kemar_ism``; default the embedded
        copy) and ``rir/rostock_kemar_brir/`` (``rostock_brir``, required).

    Returns
    -------
    ShoeboxModel or RostockBrirModel

    Raises
    ------
    ValueError
        Unknown name, or ``rostock_brir`` without its BRIR files (names the folder).
    """
    if name not in ACOUSTIC_MODELS:
        raise ValueError(f"acoustic model must be one of {ACOUSTIC_MODELS}, got {name!r}")
    root = Path(data_root) if data_root else None
    if name == "rostock_brir":
        if root is None:
            raise ValueError("rostock_brir needs a data root with rir/rostock_kemar_brir/")
        return RostockBrirModel(root / "rir" / "rostock_kemar_brir")
    sofa = None
    if name == "kemar_ism" and root is not None:
        candidate = root / "rir" / "mit_kemar_normal_pinna.sofa"
        sofa = candidate if candidate.is_file() else None
    return ShoeboxModel(name, sofa)
