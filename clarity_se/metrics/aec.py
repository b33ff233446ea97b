"""Echo-cancellation metrics of the ICASSP AEC Challenge: ERLE, PESQ-WB, AECMOS, SI-SDR.

All functions take mono float signals at 16 kHz, keyword-only, as numpy arrays
(``[time]``, full scale 1.0); none is differentiable; CPU only.

- :func:`erle` / :func:`erle_over_time`: echo return loss enhancement, the AEC Challenge's
  far-end single-talk metric, ``10 log10(sum mic^2 / sum output^2)`` (Sridhar et al. 2021,
  sec. 4), per clip or per frame (for echo-path-change plots).
- :func:`pesq_wb`: wide-band PESQ (ITU-T P.862.2) of the output against the near-end speech,
  the challenge's double-talk metric, through the ``pesq`` package.
- :func:`aecmos`: AECMOS echo and degradation MOS (Purin et al. 2022) with the 16 kHz
  scenario-aware ONNX model shipped in the ``speechmos`` package
  (``aecmos_models/Run_1663915512_Stage_0.onnx``), run offline with onnxruntime. speechmos'
  own ``aecmos.py`` needs librosa for its features; :func:`aecmos_features` re-implements
  exactly that front end (librosa 0.9/0.10 ``melspectrogram(n_fft=513, hop_length=256,
  n_mels=160)``, ``power_to_db(ref=max)``, ``(dB + 40) / 40``) in numpy, checked against
  librosa by a golden test. Scenario markers (``st``, ``dt``, ``nst``) and the 20 s limit are
  speechmos'.
- :func:`si_sdr`: scale-invariant SDR (Le Roux et al. 2019) of the output against the
  near-end speech, dB.

References
----------
K. Sridhar et al., "ICASSP 2021 Acoustic Echo Cancellation Challenge", ICASSP 2021.
M. Purin, S. Sootla, M. Sponza, A. Saabas and R. Cutler, "AECMOS: A speech quality assessment
metric for echo impairment", ICASSP 2022. ITU-T P.862.2 (2007). J. Le Roux, S. Wisdom, H. Erdogan
and J. R. Hershey, "SDR - half-baked or well done?", ICASSP 2019.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: Hz.
SAMPLE_RATE = 16000
#: AECMOS: FFT size 513 (speechmos' ``dft_size + 1``), hop 256, 160 mel bands, 20 s at most.
AECMOS_N_FFT = 513
AECMOS_HOP = 256
AECMOS_N_MELS = 160
AECMOS_MAX_S = 20
#: The scenario-aware 16 kHz AECMOS model of speechmos, and its GRU state shape.
AECMOS_MODEL = "Run_1663915512_Stage_0.onnx"
AECMOS_HIDDEN = (4, 1, 64)
TALK_TYPES = ("st", "dt", "nst")


def _as_1d(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name}: expected a mono signal [time], got shape {tuple(x.shape)}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: contains NaN or Inf")
    return x


# --------------------------------------------------------------------------- ERLE
def erle(*, mic: np.ndarray, output: np.ndarray, skip_s: float = 0.0,
         sample_rate: int = SAMPLE_RATE) -> float:
    """Echo return loss enhancement of a clip, dB (far-end single talk).

    ``10 log10(sum mic^2 / sum output^2)`` over the clip after ``skip_s`` seconds.

    Parameters
    ----------
    mic : np.ndarray [shape=(time,)], float
        Microphone signal (echo, plus noise if any).
    output : np.ndarray [shape=(time,)], float
        Echo canceller output, time-aligned with ``mic``.
    skip_s : float
        Seconds left out at the start (convergence), s.
    sample_rate : int
        Hz.

    Returns
    -------
    float
        dB; ``inf`` for a silent output, ``nan`` for a silent microphone.

    Raises
    ------
    ValueError
        Not mono, NaN/Inf, or different lengths.
    """
    mic, output = _as_1d(mic, "mic"), _as_1d(output, "output")
    if mic.shape != output.shape:
        raise ValueError(f"erle: mic has {mic.size} samples, output {output.size}")
    start = int(round(skip_s * sample_rate))
    p_mic = float(np.sum(mic[start:] ** 2))
    p_out = float(np.sum(output[start:] ** 2))
    if p_mic <= 0:
        return float("nan")
    return float("inf") if p_out <= 0 else 10.0 * np.log10(p_mic / p_out)


def erle_over_time(*, mic: np.ndarray, output: np.ndarray, sample_rate: int = SAMPLE_RATE,
                   frame_s: float = 0.1, hop_s: float = 0.05,
                   min_level_db: float = -60.0) -> tuple[np.ndarray, np.ndarray]:
    """ERLE per frame, dB (for plots of convergence and echo-path changes).

    Parameters
    ----------
    mic, output : np.ndarray [shape=(time,)], float
        As in :func:`erle`.
    sample_rate : int
        Hz.
    frame_s, hop_s : float
        Frame length and hop, s.
    min_level_db : float
        Frames whose microphone power is below this level (dBFS) are ``nan`` (no echo to
        measure).

    Returns
    -------
    times_s : np.ndarray [shape=(frames,)]
        Frame centres, s.
    erle_db : np.ndarray [shape=(frames,)]
        dB (``nan`` for quiet frames).
    """
    mic, output = _as_1d(mic, "mic"), _as_1d(output, "output")
    if mic.shape != output.shape:
        raise ValueError(f"erle_over_time: mic has {mic.size} samples, output {output.size}")
    frame, hop = int(frame_s * sample_rate), int(hop_s * sample_rate)
    if mic.size < frame:
        return np.zeros(0), np.zeros(0)
    starts = np.arange(0, mic.size - frame + 1, hop)
    p_mic = np.array([np.mean(mic[s : s + frame] ** 2) for s in starts])
    p_out = np.array([np.mean(output[s : s + frame] ** 2) for s in starts])
    with np.errstate(divide="ignore", invalid="ignore"):
        values = 10.0 * np.log10(p_mic / np.maximum(p_out, 1e-20))
    values[p_mic < 10 ** (min_level_db / 10)] = np.nan
    return (starts + frame / 2) / sample_rate, values


# --------------------------------------------------------------------------- SI-SDR, PESQ
def si_sdr(*, reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR of ``estimate`` against ``reference``, dB (Le Roux et al. 2019).

    Raises
    ------
    ValueError
        Not mono, NaN/Inf, different lengths; ``nan`` for a silent reference.
    """
    reference, estimate = _as_1d(reference, "reference"), _as_1d(estimate, "estimate")
    if reference.shape != estimate.shape:
        raise ValueError(f"si_sdr: reference has {reference.size} samples, "
                         f"estimate {estimate.size}")
    energy = float(np.dot(reference, reference))
    if energy <= 0:
        return float("nan")
    target = np.dot(estimate, reference) / energy * reference
    noise = float(np.sum((estimate - target) ** 2))
    return float("inf") if noise <= 0 else 10.0 * np.log10(float(np.sum(target**2)) / noise)


def pesq_wb(*, reference: np.ndarray, processed: np.ndarray,
            sample_rate: int = SAMPLE_RATE) -> float:
    """Wide-band PESQ (P.862.2, MOS-LQO) of ``processed`` against ``reference``.

    Returns ``nan`` when PESQ finds no utterance (e.g. a silent reference).

    Raises
    ------
    ValueError
        Not mono, NaN/Inf, different lengths, or a sample rate other than 16 kHz.
    """
    from pesq import NoUtterancesError, PesqError, pesq

    reference, processed = _as_1d(reference, "reference"), _as_1d(processed, "processed")
    if reference.shape != processed.shape:
        raise ValueError(f"pesq_wb: reference has {reference.size} samples, "
                         f"processed {processed.size}")
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"pesq_wb: sample_rate must be {SAMPLE_RATE} Hz, got {sample_rate}")
    if not reference.any() or not processed.any():
        return float("nan")
    try:
        return float(pesq(sample_rate, reference, processed, "wb"))
    except (NoUtterancesError, PesqError) as exc:
        logger.debug("pesq: %s", exc)
        return float("nan")


# --------------------------------------------------------------------------- AECMOS
def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa ``hz_to_mel(htk=False)``)."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz,
                    min_log_mel + np.log(np.maximum(f, 1e-12) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=4)
def mel_filterbank(sample_rate: int = SAMPLE_RATE, n_fft: int = AECMOS_N_FFT,
                   n_mels: int = AECMOS_N_MELS) -> np.ndarray:
    """Slaney-normalised triangular mel filters ``[n_mels, n_fft // 2 + 1]`` (librosa
    ``filters.mel(sr, n_fft, n_mels)`` defaults: 0 Hz to Nyquist, ``norm="slaney"``)."""
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    weights.setflags(write=False)
    return weights


def aecmos_features(x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """speechmos' AECMOS front end: normalised log-mel spectrogram ``[frames, 160]``.

    librosa ``melspectrogram(y, sr, n_fft=513, hop_length=256, n_mels=160)`` (centred frames,
    zero padding of 256 samples, periodic Hann window, power 2), then
    ``(power_to_db(S, ref=max, amin=1e-10, top_db=80) + 40) / 40``, transposed.

    Parameters
    ----------
    x : np.ndarray [shape=(time,)], float, full scale 1.0
    sample_rate : int
        Hz.

    Returns
    -------
    np.ndarray [shape=(1 + time // 256, 160)], float64
    """
    from scipy.signal import get_window

    x = _as_1d(x, "signal")
    pad = AECMOS_N_FFT // 2
    y = np.pad(x, (pad, pad))
    if y.size < AECMOS_N_FFT:
        y = np.pad(y, (0, AECMOS_N_FFT - y.size))
    frames = np.lib.stride_tricks.sliding_window_view(y, AECMOS_N_FFT)[::AECMOS_HOP]
    window = get_window("hann", AECMOS_N_FFT, fftbins=True)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    mel = power @ mel_filterbank(sample_rate).T
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    db -= 10.0 * np.log10(max(float(mel.max()), 1e-10))
    db = np.maximum(db, db.max() - 80.0)
    return (db + 40.0) / 40.0


def _model_path() -> Path:
    spec = importlib.util.find_spec("speechmos")
    if spec is None or spec.origin is None:
        raise RuntimeError("AECMOS needs the speechmos package (its ONNX models)")
    path = Path(spec.origin).parent / "aecmos_models" / AECMOS_MODEL
    if not path.is_file():
        raise RuntimeError(f"{path}: AECMOS model missing from the speechmos package")
    return path


@functools.lru_cache(maxsize=1)
def _session():
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(os.environ.get("CLARITY_SE_ORT_THREADS", "1"))
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(_model_path()), options,
                                providers=["CPUExecutionProvider"])


def aecmos(*, loopback: np.ndarray, mic: np.ndarray, enhanced: np.ndarray, talk_type: str,
           sample_rate: int = SAMPLE_RATE) -> tuple[float, float]:
    """AECMOS echo MOS and other-degradation MOS of an echo canceller's output.

    Runs speechmos' scenario-aware 16 kHz model (``Run_1663915512_Stage_0.onnx``) the way its
    ``aecmos.py`` does: the three signals cut to the shortest and to 20 s, mel features
    (:func:`aecmos_features`), 20 frames of scenario marker appended (loopback marker 0 for
    near-end single talk, microphone marker 0 for far-end single talk, ones otherwise) and 20
    frames of zeros, one ONNX run with a zero GRU state.

    Parameters
    ----------
    loopback : np.ndarray [shape=(time,)], float in [-1, 1]
        Far-end reference (zeros for near-end single talk without one).
    mic : np.ndarray [shape=(time,)], float in [-1, 1]
        Microphone signal.
    enhanced : np.ndarray [shape=(time,)], float in [-1, 1]
        Echo canceller output.
    talk_type : {"st", "dt", "nst"}
        Far-end single talk, double talk, near-end single talk.
    sample_rate : int
        Must be 16 kHz.

    Returns
    -------
    (echo_mos, deg_mos) : tuple of float
        1 (bad) to 5 (excellent).

    Raises
    ------
    ValueError
        Unknown talk type, sample rate not 16 kHz, samples outside [-1, 1], not mono, NaN/Inf.
    RuntimeError
        speechmos or its model missing.
    """
    if talk_type not in TALK_TYPES:
        raise ValueError(f"aecmos: talk_type must be one of {TALK_TYPES}, got {talk_type!r}")
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"aecmos: sample_rate must be {SAMPLE_RATE} Hz, got {sample_rate}")
    signals = []
    for name, x in (("loopback", loopback), ("mic", mic), ("enhanced", enhanced)):
        x = _as_1d(x, name)
        if x.size and np.max(np.abs(x)) > 1.0:
            raise ValueError(f"aecmos: {name} must be in [-1, 1]")
        signals.append(x)
    n = min(s.size for s in signals)
    n = min(n, AECMOS_MAX_S * sample_rate)
    lpb, mic_f, enh = (aecmos_features(s[:n].astype(np.float32)) for s in signals)
    ne_st = 1.0 if talk_type == "nst" else 0.0
    fe_st = 1.0 if talk_type == "st" else 0.0

    def marked(feat: np.ndarray, marker: float) -> np.ndarray:
        return np.concatenate([feat, np.full((20, feat.shape[1]), marker),
                               np.zeros((20, feat.shape[1]))])

    feats = np.stack([marked(lpb, 1.0 - ne_st), marked(mic_f, 1.0 - fe_st), marked(enh, 1.0)])
    session = _session()
    result = session.run(None, {session.get_inputs()[0].name: feats[None].astype(np.float32),
                                "h0": np.zeros(AECMOS_HIDDEN, dtype=np.float32)})[0]
    return float(np.ravel(result)[0]), float(np.ravel(result)[1])
