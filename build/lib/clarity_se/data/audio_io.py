"""The one audio I/O module: dtype, scaling and atomic writes (soundfile underneath).

Scaling follows the official recipe exactly: 16-bit PCM is read as ``int16`` and divided by
32768 (``scipy.io.wavfile`` + ``/ 32768.0``); float WAVs are read unscaled, so an enhanced
signal written as float32 comes back sample-for-sample.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf


class AudioFileError(ValueError):
    """A WAV file is missing, unreadable, truncated or has the wrong format (names the file)."""


def audio_info(path: str | os.PathLike) -> sf._SoundFileInfo:
    """Header of an audio file without reading samples.

    Raises
    ------
    AudioFileError
        If the file is missing or its header cannot be parsed.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: file not found")
    try:
        return sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioFileError(f"{path}: unreadable audio header ({exc})") from None


def read_audio(
    path: str | os.PathLike,
    *,
    expected_sample_rate: int | None = None,
    expected_channels: int | None = None,
    dtype: str = "float64",
) -> tuple[np.ndarray, int]:
    """Read a WAV/FLAC file as float samples ``[time, channels]`` (or ``[time]`` if mono).

    Parameters
    ----------
    path : path-like
        The file.
    expected_sample_rate : int, optional
        Required sample rate in Hz; a mismatch raises.
    expected_channels : int, optional
        Required channel count; a mismatch raises.
    dtype : {"float64", "float32"}
        Output dtype.

    Returns
    -------
    samples : np.ndarray [shape=(time, channels) or (time,)]
        16-bit PCM divided by 32768 (the official ``/ 32768.0``); float files unscaled.
    sample_rate : int
        Hz.

    Raises
    ------
    AudioFileError
        Missing, unreadable or truncated file, or wrong sample rate / channel count; the
        message names the file and the field.
    """
    info = audio_info(path)
    if expected_sample_rate is not None and info.samplerate != expected_sample_rate:
        raise AudioFileError(
            f"{path}: sample_rate is {info.samplerate} Hz, expected {expected_sample_rate} Hz"
        )
    if expected_channels is not None and info.channels != expected_channels:
        raise AudioFileError(f"{path}: channels is {info.channels}, expected {expected_channels}")
    is_pcm16 = info.subtype == "PCM_16"
    try:
        data, sample_rate = sf.read(
            str(path), dtype="int16" if is_pcm16 else dtype, always_2d=False
        )
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioFileError(f"{path}: unreadable audio data ({exc})") from None
    if data.shape[0] != info.frames:
        raise AudioFileError(
            f"{path}: truncated: header says {info.frames} frames, read {data.shape[0]}"
        )
    if is_pcm16:
        data = data.astype(dtype) / 32768.0
    return np.ascontiguousarray(data, dtype=dtype), int(sample_rate)


def write_audio(
    path: str | os.PathLike,
    samples: np.ndarray,
    sample_rate: int,
    *,
    subtype: str = "FLOAT",
) -> Path:
    """Write audio atomically (temp file in the same folder, then ``os.replace``).

    Parameters
    ----------
    path : path-like
        Destination (``.wav``). Parent folders are created.
    samples : np.ndarray [shape=(time, channels) or (time,)]
        Float samples; for ``subtype="PCM_16"`` they are scaled by 32768, rounded and clipped
        to the int16 range (the CEC2 convention), otherwise written as given.
    sample_rate : int
        Hz.
    subtype : {"FLOAT", "PCM_16", "DOUBLE"}
        soundfile subtype; ``FLOAT`` (float32) is the challenge's enhanced-signal format.

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    ValueError
        If ``samples`` contain NaN or Inf (the file names the destination).
    """
    path = Path(path)
    samples = np.asarray(samples)
    if not np.all(np.isfinite(samples)):
        raise ValueError(f"{path}: refusing to write NaN or Inf samples")
    path.parent.mkdir(parents=True, exist_ok=True)
    if subtype == "PCM_16":
        data = np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)
    elif subtype == "FLOAT":
        data = samples.astype(np.float32)
    else:
        data = samples.astype(np.float64)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        sf.write(tmp, data, sample_rate, subtype=subtype, format="WAV")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically (temp file + ``os.replace``); parents are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
