"""Render CEC2 scenes from metadata, in memory (:func:`render_scene`) or to disk.

Reproduces pyclarity's ``clarity.data.scene_renderer_cec2.SceneRenderer`` except for the room
acoustics (see :mod:`clarity_se.data.render.rooms`):

* target and interferers are convolved with the room responses and placed with
  ``pad_signal_start_end`` semantics: the convolved signal starts at ``time_start`` and is cut
  at ``duration`` (the reverberant tail beyond the end of the scene is dropped);
* the head turns from ``rotation[0].angle`` to ``rotation[1].angle`` between the two
  ``sample`` marks with pyclarity's ``smoothstep`` (N = 1) profile; we cross-fade the
  responses at the two head orientations with that weight;
* SNR (``better_ear_speechweighted_snr``): at the reference channel CH1, over the target
  samples ``[time_start, time_end)``, per ear the ratio of RMS values after the CEC2 speech
  weighting filter (``speech_weight.mat``, full convolution), the better (larger) ear; every
  interferer channel is multiplied by ``sw_snr * 10 ** (-SNR / 20)`` so that the better-ear
  speech-weighted SNR equals ``scene["SNR"]`` exactly;
* ``mix = target + interferer`` per channel; written as 16-bit PCM via ``signal / norm``,
  clipped to +-1, ``(32767 * signal).astype(int16)`` (truncation toward zero, as
  ``save_signal_16bit``), norms ``[12, 3, 3, 3]`` for CH0..CH3 (``channel_norms``);
* the anechoic reference ``target_anechoic_CH1`` is the direct path only at CH1 (HRIR of the
  source direction, propagation delay ``distance / c``), peak-normalised to 1 before writing.

Deliberate differences: no ``_hr.wav`` head-rotation file; the dry interferer segments are
RMS-normalised before spatialisation (CEC2's masker files were level-normalised in its database
and it renders with ``equalise_loudness=False``); the whole scene gets one gain so that the
reverberant target at CH1 has RMS ``TARGET_LEVEL_DBFS`` in the written file (both ears pooled,
over the target samples) -- with the ICASSP 2023 recipe's HASPI/HASQI calibration (RMS 1 ==
100 dB SPL) that is 60 dB SPL, a conversational level. CEC2 sets no such level.
"""

from __future__ import annotations

import functools
import logging
import os
from importlib import resources
from pathlib import Path

import numpy as np
from scipy.io import loadmat, wavfile
from scipy.signal import fftconvolve, oaconvolve

from clarity_se.data.render import rooms, sources

logger = logging.getLogger(__name__)

#: Write norms of CH0..CH3 (pyclarity CEC2 ``render_params.channel_norms``).
CHANNEL_NORMS = (12.0, 3.0, 3.0, 3.0)
#: Channel at which the SNR is set and of the anechoic reference (``reference_channel``).
REFERENCE_CHANNEL = 1
#: RMS of the reverberant target at CH1 in the written file, dBFS
#: (60 dB SPL with the recipe's 100 dB SPL == RMS 1).
TARGET_LEVEL_DBFS = -40.0
SAMPLE_RATE = sources.SAMPLE_RATE


@functools.lru_cache(maxsize=1)
def speech_weighting_filter() -> np.ndarray:
    """The CEC2 speech-weighting FIR (``clarity/data/params/speech_weight.mat``, 512 taps).

    Returns
    -------
    ndarray [shape=(512,)], float64, read-only

    References
    ----------
    pyclarity 0.9.0 ``clarity.data.utils.SPEECH_FILTER`` (MIT licence; file copied unchanged
    to ``clarity_se/assets/clarity/speech_weight.mat``).
    """
    path = Path(str(resources.files("clarity_se") / "assets" / "clarity" / "speech_weight.mat"))
    filt = np.array(loadmat(str(path), squeeze_me=True)["filt"], dtype=np.float64)
    filt.setflags(write=False)
    return filt


def speechweighted_snr(target: np.ndarray, noise: np.ndarray) -> float:
    """Speech-weighted SNR as an amplitude ratio (not dB).

    Parameters
    ----------
    target, noise : ndarray [shape=(time,)], float
        One ear.

    Returns
    -------
    float
        ``rms(filt * target) / rms(filt * noise)`` with full convolution.

    References
    ----------
    pyclarity ``clarity.data.utils.speechweighted_snr``.
    """
    filt = speech_weighting_filter()
    t = fftconvolve(target, filt, mode="full")
    n = fftconvolve(noise, filt, mode="full")
    return float(np.sqrt(np.mean(t**2)) / np.sqrt(np.mean(n**2)))


def better_ear_speechweighted_snr(target: np.ndarray, noise: np.ndarray) -> float:
    """Better-ear speech-weighted SNR (amplitude ratio) of stereo signals.

    Parameters
    ----------
    target, noise : ndarray [shape=(time, 2)], float
        Left / right ear.

    Returns
    -------
    float
        ``max`` over the ears of :func:`speechweighted_snr`; ``20 log10`` of it is the SNR in dB.

    References
    ----------
    pyclarity ``clarity.data.utils.better_ear_speechweighted_snr``.
    """
    return max(
        speechweighted_snr(target[:, 0], noise[:, 0]), speechweighted_snr(target[:, 1], noise[:, 1])
    )


#: An interferer below this RMS relative to the target over the target's span (-120 dB) is
#: silent there: no gain can give it an SNR.
SILENT_INTERFERER_RATIO = 1e-6


def interferer_gain(target: np.ndarray, noise: np.ndarray, snr_db: float, where: str) -> float:
    """Gain on the interferers that gives ``snr_db`` (better-ear speech-weighted).

    Parameters
    ----------
    target, noise : ndarray [shape=(time, 2)], float
        Left / right at the reference channel over the target's span.
    snr_db : float
        The wanted SNR, dB.
    where : str
        Names the scene in the error.

    Returns
    -------
    float
        ``better_ear_speechweighted_snr(target, noise) * 10 ** (-snr_db / 20)``.

    Raises
    ------
    ValueError
        The interferers are silent over the target's span (below
        :data:`SILENT_INTERFERER_RATIO` of its RMS, e.g. a noise clip cropped in its zero
        padding): the SNR is undefined and the gain would be infinite.
    """
    rms_t = float(np.sqrt(np.mean(np.square(target, dtype=np.float64))))
    rms_n = float(np.sqrt(np.mean(np.square(noise, dtype=np.float64))))
    if not rms_n > SILENT_INTERFERER_RATIO * rms_t:
        raise ValueError(f"{where}: interferers silent over the target (RMS {rms_n:.3g} against "
                         f"{rms_t:.3g}); SNR undefined")  # fmt: skip
    return better_ear_speechweighted_snr(target, noise) * 10 ** (-snr_db / 20)


def smoothstep_weight(duration: int, start: float, end: float) -> np.ndarray:
    """Head-turn progress per sample, 0 before ``start``, 1 after ``end``.

    Parameters
    ----------
    duration : int
        Number of samples.
    start, end : float
        Rotation marks (samples).

    Returns
    -------
    ndarray [shape=(duration,)]
        ``3x^2 - 2x^3`` of the clipped linear ramp (pyclarity ``smoothstep`` with N = 1, as used
        by ``rotation_control_vector``).

    Raises
    ------
    ValueError
        ``start > end``.
    """
    if start > end:
        raise ValueError(f"rotation start ({start}) > end ({end})")
    x = np.arange(duration, dtype=np.float64)
    x = np.clip((x - start) / max(end - start, 1e-9), 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def parse_dimensions(room: dict) -> np.ndarray:
    """Room size (m) from a CEC2 ``dimensions`` string ``"LxWxH"``.

    Raises
    ------
    ValueError
        Malformed string.
    """
    try:
        dims = np.array([float(v) for v in str(room["dimensions"]).split("x")])
    except (KeyError, ValueError):
        raise ValueError(
            f"room {room.get('name')!r}: bad 'dimensions' {room.get('dimensions')!r}"
        ) from None
    if dims.shape != (3,) or np.any(dims <= 0):
        raise ValueError(f"room {room.get('name')!r}: bad 'dimensions' {room['dimensions']!r}")
    return dims


def _spatialise(
    x,
    images,
    listener,
    angles,
    weight,
    start,
    duration,
    tail,
    tail_start,
    *,
    direct_only=False,
    channels=None,
):
    """Convolve a dry signal with the rotating-head response; returns ``[C, 2, duration]``."""
    sel = slice(None) if channels is None else channels
    irs = [rooms.early_response(images, listener, a, direct_only=direct_only)[sel] for a in angles]
    n_ch = irs[0].shape[0]
    out = np.zeros((n_ch, 2, duration))
    avail = duration - start
    if avail <= 0:
        return out
    x = x[:avail]
    w = weight[start:duration]
    # Only the output samples with a non-zero cross-fade gain are computed for each head
    # orientation (exactly: the input is cut to what those samples depend on).
    active = [np.flatnonzero(w < 1.0), np.flatnonzero(w > 0.0)]
    for k, ir in enumerate(irs):
        if active[k].size == 0:
            continue
        n0, n1 = int(active[k][0]), int(active[k][-1]) + 1  # local output range [n0, n1)
        lo = max(0, n0 - (ir.shape[-1] - 1))
        y = oaconvolve(x[None, None, lo:n1], ir, axes=-1)[:, :, n0 - lo : n1 - lo]
        gain = (1.0 - w[n0:n1]) if k == 0 else w[n0:n1]
        out[:, :, start + n0 : start + n0 + y.shape[-1]] += y * gain[: y.shape[-1]]
    if tail is not None:
        yt = fftconvolve(x[None, :], tail, axes=-1)  # [2, n + Lt - 1]
        t0 = start + tail_start
        if t0 < duration:
            seg = yt[:, : duration - t0]
            out[:, :, t0 : t0 + seg.shape[-1]] += seg[None, :, :]
    return out


def _tail_rng(seed: int, scene_id: str, index: int) -> np.random.Generator:
    from clarity_se.data.render.scene_sampler import scene_rng

    return scene_rng(seed, f"{scene_id}/tail/{index}")


def render_scene(scene: dict, room: dict, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Render one scene in memory.

    Parameters
    ----------
    scene : dict
        CEC2 ``scenes.json`` entry whose target / interferer names are in the demo catalogue
        (:mod:`clarity_se.data.render.sources`).
    room : dict
        Its ``rooms.json`` entry with ``rt60_s`` (:func:`~.scene_sampler.sample_room`).
    seed : int
        Seeds the late-reverberation noise (with the scene id), so equal inputs give equal
        outputs.

    Returns
    -------
    dict
        ``"target"``, ``"interferer"``, ``"mix"``: ndarray [shape=(4, duration, 2)], float64,
        channels CH0..CH3, ears (left, right), scaled as before the write norms (divide by
        ``CHANNEL_NORMS`` to get the file values); ``"target_anechoic"``: [shape=(duration, 2)],
        not normalised; ``"snr_db"``: the better-ear speech-weighted SNR measured at CH1 after
        scaling (equals ``scene["SNR"]`` up to rounding); ``"interferer_gain"``: the scale applied
        to the interferers.

    Raises
    ------
    ValueError
        Inconsistent metadata (target length vs ``time_end - time_start``, unknown source,
        interferer segment beyond its recording, position outside the room).
    """
    sid = scene.get("scene", "?")
    try:
        duration = int(scene["duration"])
        t_start, t_end = int(scene["target"]["time_start"]), int(scene["target"]["time_end"])
        rotation = scene["listener"]["rotation"]
        rt60 = float(room["rt60_s"])
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"scene {sid}: missing field {exc}") from None
    dims = parse_dimensions(room)
    listener = np.asarray(room["listener"]["position"], dtype=np.float64)
    angles = (float(rotation[0]["angle"]), float(rotation[1]["angle"]))
    weight = smoothstep_weight(duration, float(rotation[0]["sample"]), float(rotation[1]["sample"]))

    target = sources.load_target(scene["target"]["name"])
    if target.size != t_end - t_start:
        raise ValueError(
            f"scene {sid}: target {scene['target']['name']} has {target.size} samples, "
            f"time_end - time_start = {t_end - t_start}"
        )
    im = rooms.image_sources(
        dims, rt60, room["target"]["position"], listener, view_vector=room["target"]["view_vector"]
    )
    tail, tail_start = rooms.late_tail(
        dims, rt60, im.t_mix_s, _tail_rng(seed, sid, 0), radiated_power=im.radiated_power
    )
    tgt = _spatialise(target, im, listener, angles, weight, t_start, duration, tail, tail_start)
    anechoic = _spatialise(
        target,
        im,
        listener,
        angles,
        weight,
        t_start,
        duration,
        None,
        0,
        direct_only=True,
        channels=slice(REFERENCE_CHANNEL, REFERENCE_CHANNEL + 1),
    )[0]

    interf = np.zeros_like(tgt)
    for k, spec in enumerate(scene["interferers"], start=1):
        i0, i1, offset = int(spec["time_start"]), int(spec["time_end"]), int(spec["offset"])
        masker = sources.load_masker(spec["type"], spec["name"])
        seg = masker[offset : offset + (i1 - i0)]
        if seg.size != i1 - i0:
            raise ValueError(
                f"scene {sid}: interferer {spec['name']} too short for offset {offset} + {i1 - i0}"
            )
        seg = seg / max(float(np.sqrt(np.mean(seg**2))), 1e-12)
        pos_index = int(spec["position"]) - 1
        if not 0 <= pos_index < len(room["interferers"]):
            raise ValueError(
                f"scene {sid}: interferer position {spec['position']} not in room {room['name']}"
            )
        im_i = rooms.image_sources(dims, rt60, room["interferers"][pos_index]["position"], listener)
        tail_i, ts_i = rooms.late_tail(dims, rt60, im_i.t_mix_s, _tail_rng(seed, sid, k))
        interf += _spatialise(seg, im_i, listener, angles, weight, i0, duration, tail_i, ts_i)

    ref = REFERENCE_CHANNEL
    gain_i = interferer_gain(tgt[ref, :, t_start:t_end].T, interf[ref, :, t_start:t_end].T,
                             float(scene["SNR"]), f"scene {sid}")  # fmt: skip
    interf *= gain_i
    level = np.sqrt(np.mean(tgt[ref, :, t_start:t_end] ** 2)) / CHANNEL_NORMS[ref]
    g = 10 ** (TARGET_LEVEL_DBFS / 20) / max(float(level), 1e-20)
    tgt *= g
    interf *= g
    target_out = np.ascontiguousarray(tgt.transpose(0, 2, 1))
    interf_out = np.ascontiguousarray(interf.transpose(0, 2, 1))
    snr_db = 20 * np.log10(
        better_ear_speechweighted_snr(
            target_out[ref, t_start:t_end], interf_out[ref, t_start:t_end]
        )
    )
    return {
        "target": target_out,
        "interferer": interf_out,
        "mix": target_out + interf_out,
        "target_anechoic": np.ascontiguousarray(anechoic.T),
        "snr_db": float(snr_db),
        "interferer_gain": float(gain_i * g),
    }


def to_pcm16(signal: np.ndarray, norm: float = 1.0) -> tuple[np.ndarray, int]:
    """Convert as pyclarity's ``save_signal_16bit``: ``/ norm``, clip to +-1, ``int16(32767 x)``.

    Parameters
    ----------
    signal : ndarray [shape=(time, 2)], float
    norm : float
        Write norm.

    Returns
    -------
    pcm : ndarray [shape=(time, 2)], int16
        Truncated toward zero, like ``astype(np.int16)``.
    n_clipped : int
        Samples beyond full scale (clipped).
    """
    x = signal / norm
    n_clipped = int(np.sum(np.abs(x) > 1.0))
    x = np.clip(x, -1.0, 1.0)
    return (32767 * x).astype(np.int16), n_clipped


def _write_wav(path: Path, pcm: np.ndarray) -> None:
    from clarity_se.data.audio_io import atomic_path

    with atomic_path(path) as tmp:
        wavfile.write(str(tmp), SAMPLE_RATE, pcm)


def write_scene(
    signals: dict[str, np.ndarray], scene_id: str, out_dir: str | os.PathLike
) -> list[Path]:
    """Write one rendered scene in the CEC2 layout (16-bit PCM stereo WAV, 44.1 kHz).

    Files: ``<id>_{mix,target,interferer}_CH{0..3}.wav`` and ``<id>_target_anechoic_CH1.wav``.

    Parameters
    ----------
    signals : dict
        From :func:`render_scene`.
    scene_id : str
    out_dir : path-like
        ``<root>/clarity_data/<split>/scenes``; created if missing.

    Returns
    -------
    list of pathlib.Path
        The files written (atomically: temp file + rename).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for ch, norm in enumerate(CHANNEL_NORMS):
        for kind in ("target", "interferer", "mix"):
            pcm, n_clipped = to_pcm16(signals[kind][ch], norm)
            if n_clipped:
                logger.warning("%s %s CH%d: %d samples clipped", scene_id, kind, ch, n_clipped)
            path = out / f"{scene_id}_{kind}_CH{ch}.wav"
            _write_wav(path, pcm)
            written.append(path)
    anechoic = signals["target_anechoic"]
    pcm, _ = to_pcm16(anechoic, float(np.max(np.abs(anechoic))) or 1.0)
    path = out / f"{scene_id}_target_anechoic_CH{REFERENCE_CHANNEL}.wav"
    _write_wav(path, pcm)
    written.append(path)
    return written
