"""The one audio I/O module: dtype, scaling, integrity checks and atomic writes.

Scaling follows the official recipe exactly: 16-bit PCM is read as ``int16`` and divided by
32768 (``scipy.io.wavfile`` + ``/ 32768.0``); float WAVs are read unscaled, so an enhanced
signal written as float32 comes back sample-for-sample.

Integrity: libsndfile quietly reads what a file holds, so a WAV whose header promises more
frames than the file contains (a copy cut short) would come back short. Every read here
compares the ``data`` chunk size the header declares with the bytes present and raises
:class:`AudioFileError` naming the file.

Writes are atomic (a temporary file in the destination folder, then ``os.replace``) and the
result gets the permissions the user's umask gives new files (``0o666 & ~umask``), not the
temporary file's 0600, so that colleagues can read shared results.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf


class AudioFileError(ValueError):
    """A WAV file is missing, unreadable, truncated or has the wrong format (names the file)."""


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask (read without changing it for longer than two system calls)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, mode: int = 0o666) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success give it the umask's permissions
    (``mode & ~umask``) and move it onto ``path`` atomically; on failure remove it.

    Parents are created. Whoever writes the temporary file must close it before the block ends.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def wav_data_frames(path: str | os.PathLike) -> tuple[int, int] | None:
    """Frames a WAV header declares and frames the file actually holds.

    Parses the RIFF chunks (``fmt `` block align, ``data`` size) without libsndfile, which
    silently shortens a truncated file so that its ``frames`` matches what is there.

    Returns
    -------
    (declared, available) : tuple of int, or None
        ``None`` when the file is not a RIFF/RIFX WAVE or the ``data`` size is a streaming
        placeholder (0 or 0xFFFFFFFF).
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        endian = "<" if head[:4] == b"RIFF" else ">"
        block_align = 0
        pos = 12
        while pos + 8 <= size:
            handle.seek(pos)
            chunk = handle.read(8)
            chunk_id = chunk[:4]
            (chunk_size,) = struct.unpack(endian + "I", chunk[4:8])
            if chunk_id == b"fmt ":
                fmt = handle.read(min(chunk_size, 16))
                if len(fmt) >= 14:
                    (block_align,) = struct.unpack(endian + "H", fmt[12:14])
            elif chunk_id == b"data":
                if not block_align or chunk_size in (0, 0xFFFFFFFF):
                    return None
                available = max(0, min(chunk_size, size - pos - 8))
                return chunk_size // block_align, available // block_align
            pos += 8 + chunk_size + (chunk_size & 1)
    return None


def audio_info(path: str | os.PathLike, *, check_length: bool = True) -> sf._SoundFileInfo:
    """Header of an audio file without reading samples, checked against the file's size.

    Parameters
    ----------
    path : path-like
        The file.
    check_length : bool
        Refuse a WAV whose header declares more frames than the file holds (default).

    Raises
    ------
    AudioFileError
        If the file is missing, its header cannot be parsed, or (``check_length``) it is a
        truncated WAV: ``<file>: num_samples: truncated: header declares N frames, file holds M``.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: file not found")
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioFileError(f"{path}: unreadable audio header ({exc})") from None
    if check_length:
        declared = wav_data_frames(path)
        if declared is not None and declared[0] != declared[1]:
            raise AudioFileError(
                f"{path}: num_samples: truncated: header declares {declared[0]} frames, file "
                f"holds {declared[1]}"
            )
    return info


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
    with atomic_path(path) as tmp:
        sf.write(str(tmp), data, sample_rate, subtype=subtype, format="WAV")
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically (:func:`atomic_path`); parents are created."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return path
