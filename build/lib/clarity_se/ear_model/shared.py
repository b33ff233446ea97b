"""Processed-signal half of the cochlear model, shared between HASPI and HASQI calls.

HASPI v2 and HASQI v2 run the ear model on the same processed signal with the same audiogram
and level: the two calls differ only in the reference (HASQI equalises it with NAL-R, itype 1,
*after* the bulk input alignment) and in the random draws.  So the processed path from the
middle-ear output through the control filter bank, the level-dependent bandwidths, the main
filter bank and the OHC compression is the same computation twice, about a tenth of a whole
``evaluate``.  :class:`ProcessedPathCache` keeps it from the first call for the second.

The same object also shares *reference* paths between the items of a batch.  In the ICASSP
2023 recipe the listeners of a scene have one reference, and HASPI's ear model passes it
through a normal ear (itype 0) without the BM path, where it draws no noise: its whole path,
from the middle ear to the group-delay-compensated dB SL envelope, is the same for every
listener.  A :class:`ReferencePath` entry keeps it (and the compressed envelope that the
processed signal is aligned to), found by content like the processed entries, and is used by
every later item with that reference until the cache goes.

Last, it remembers the 24 kHz resampling of each distinct input row (a scene's reference is
the same for every listener and both metrics), found by content, so that it is done once.

API
---
``ProcessedPathCache(max_bytes=768 MiB, basilar_membrane=True)``; give the same object as
``processed_cache=`` to :func:`~clarity_se.ear_model.ear_model` (or to ``haspi_v2*`` /
``hasqi_v2*``) for the calls that should share.  Entries are found by content (the item's
middle-ear output, compared exactly, plus its audiogram, level and model settings), not by
position, so the batch layout of the two calls may differ; an entry is used once and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

__all__ = ["ProcessedPath", "ProcessedPathCache", "ReferencePath"]


def _tensor_bytes(entry) -> int:
    """Bytes held by the tensor fields of a dataclass entry (None fields hold none)."""
    values = (getattr(entry, f.name) for f in fields(entry))
    return sum(t.numel() * t.element_size() for t in values if t is not None)


@dataclass
class ProcessedPath:
    """The processed-signal outputs of the cochlear stages before envelope alignment.

    Attributes
    ----------
    signal : Tensor [shape=(1, time)]
        Middle-ear output of the item (the key, compared exactly).
    control_rms : Tensor [shape=(1, nchan)]
        RMS of the control-path envelope per band (for the long-term spectrum in dB SL).
    average : Tensor [shape=(1, nchan)]
        RMS of the main-path envelope before compression per band.
    envelope : Tensor [shape=(1, nchan, time)]
        Main-path envelope after OHC compression (linear, RMS 1 == ``level_db_spl``).
    basilar_membrane : Tensor [shape=(1, nchan, time)] or None
        BM motion after OHC compression (None when the producing call did not compute it).
    """

    signal: Tensor
    control_rms: Tensor
    average: Tensor
    envelope: Tensor
    basilar_membrane: Tensor | None

    @property
    def nbytes(self) -> int:
        """Bytes held by the tensors."""
        return _tensor_bytes(self)


@dataclass
class ReferencePath:
    """The reference-signal outputs of the cochlear model without the BM path (HASPI).

    Attributes
    ----------
    signal : Tensor [shape=(1, time)]
        Middle-ear output of the reference (the key, compared exactly).
    bandwidth : Tensor [shape=(1, nchan)]
        Level-dependent auditory filter bandwidths (also set the group delay of both signals).
    control_rms, average : Tensor [shape=(1, nchan)]
        RMS of the control-path envelope and of the main-path envelope before compression.
    envelope : Tensor [shape=(1, nchan, time)]
        Main-path envelope after OHC compression (what the processed envelope is aligned to).
    output : Tensor [shape=(1, nchan, time)], dB SL
        The reference output of the model: after IHC adaptation and group-delay compensation.
    """

    signal: Tensor
    bandwidth: Tensor
    control_rms: Tensor
    average: Tensor
    envelope: Tensor
    output: Tensor

    @property
    def nbytes(self) -> int:
        """Bytes held by the tensors."""
        return _tensor_bytes(self)


class _KeptByContent:
    """Values kept for every later lookup (never used up), found by a settings key and an exact
    comparison of their source signal, within a byte budget; counts its hits."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._entries: dict[tuple, list[tuple[Tensor, object]]] = {}
        self.nbytes = 0
        self.hits = 0

    def find(self, key: tuple, signal: Tensor):
        """The value stored under ``key`` for a source equal to ``signal``, or None."""
        for source, value in self._entries.get(key, []):
            if source.shape == signal.shape and torch.equal(source, signal):
                self.hits += 1
                return value
        return None

    def fits(self, nbytes: int) -> bool:
        """Whether ``nbytes`` more bytes may still be stored."""
        return self.nbytes + int(nbytes) <= self.max_bytes

    def put(self, key: tuple, signal: Tensor, value, nbytes: int) -> bool:
        """Store ``value`` (``nbytes`` bytes) for ``signal`` under ``key`` if it fits."""
        if not self.fits(nbytes):
            return False
        self._entries.setdefault(key, []).append((signal, value))
        self.nbytes += int(nbytes)
        return True

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()
        self.nbytes = 0


class ProcessedPathCache:
    """Hand the processed path of one ear-model call to a later call on the same signal.

    Parameters
    ----------
    max_bytes : int
        Largest total size of the held entries, bytes (default 768 MiB: three 10 s pairs, both
        ears, in float64).  An item that does not fit is simply computed again by the later call.
    basilar_membrane : bool
        Producing calls that do not need the BM motion themselves (HASPI) still compute and keep
        the processed one, so that a later call that needs it (HASQI) can use the entry.
    max_reference_bytes : int
        Largest total size of the reference entries, bytes (default 256 MiB: both ears of a
        10 s reference in float64); a reference that does not fit is computed per item.

    Raises
    ------
    ValueError
        If ``max_bytes`` is negative.

    Notes
    -----
    Exactness: the cached tensors are the ones the later call would compute (the same kernels on
    the same inputs, bit for bit), so sharing changes no score in either random mode; the random
    draws happen after this part of the model and keep their order.  Only the per-item CPU path
    of :func:`~clarity_se.ear_model.ear_model` uses the cache (the batched CUDA path ignores it).

    Examples
    --------
    >>> cache = ProcessedPathCache()
    >>> # haspi = haspi_v2_better_ear(..., processed_cache=cache)
    >>> # hasqi = hasqi_v2_better_ear(..., processed_cache=cache)  # reuses the processed path
    >>> cache.hits, cache.misses
    (0, 0)
    """

    def __init__(self, max_bytes: int = 768 << 20, *, basilar_membrane: bool = True,
                 max_reference_bytes: int = 256 << 20) -> None:  # fmt: skip
        for name, value in (("max_bytes", max_bytes), ("max_reference_bytes", max_reference_bytes)):
            if int(value) < 0:
                raise ValueError(f"ProcessedPathCache: {name} must be >= 0, got {value!r}")
        self.max_bytes = int(max_bytes)
        self.max_reference_bytes = int(max_reference_bytes)
        self.basilar_membrane = bool(basilar_membrane)
        self._entries: dict[tuple, list[ProcessedPath]] = {}
        self._references = _KeptByContent(max_reference_bytes)
        self._resampled = _KeptByContent(64 << 20)  # 24 kHz resamplings: ~3 MB per 5 s row
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    @property
    def reference_hits(self) -> int:
        """Lookups that found a reference entry."""
        return self._references.hits

    @property
    def resampled_hits(self) -> int:
        """Lookups that found a resampled row."""
        return self._resampled.hits

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())

    def take(self, key: tuple, signal: Tensor, *, need_bm: bool) -> ProcessedPath | None:
        """Remove and return the entry for ``signal`` under ``key``, or None.

        Parameters
        ----------
        key : tuple
            Hashable model settings of the item (audiogram, level, rates, bands, dtype, ...).
        signal : Tensor [shape=(1, time)]
            The item's middle-ear output; must equal the entry's exactly.
        need_bm : bool
            Only an entry with the processed BM motion qualifies.
        """
        bucket = self._entries.get(key, [])
        for k, entry in enumerate(bucket):
            if need_bm and entry.basilar_membrane is None:
                continue
            if entry.signal.shape == signal.shape and torch.equal(entry.signal, signal):
                del bucket[k]
                if not bucket:
                    del self._entries[key]
                self.nbytes -= entry.nbytes
                self.hits += 1
                return entry
        self.misses += 1
        return None

    def fits(self, nbytes: int) -> bool:
        """Whether an entry of ``nbytes`` bytes may still be stored."""
        return self.nbytes + int(nbytes) <= self.max_bytes

    def put(self, key: tuple, entry: ProcessedPath) -> bool:
        """Store ``entry`` under ``key`` if it fits; returns whether it was stored."""
        if not self.fits(entry.nbytes):
            return False
        self._entries.setdefault(key, []).append(entry)
        self.nbytes += entry.nbytes
        return True

    def find_reference(self, key: tuple, signal: Tensor) -> ReferencePath | None:
        """The reference entry for ``signal`` under ``key`` (kept for later items), or None.

        Parameters
        ----------
        key : tuple
            Hashable settings of the reference path (its loss, level, rates, bands, dtype, ...).
        signal : Tensor [shape=(1, time)]
            The item's reference middle-ear output; must equal the entry's exactly.
        """
        return self._references.find(key, signal)

    def fits_reference(self, nbytes: int) -> bool:
        """Whether a reference entry of ``nbytes`` bytes may still be stored."""
        return self._references.fits(nbytes)

    def put_reference(self, key: tuple, entry: ReferencePath) -> bool:
        """Store a reference ``entry`` under ``key`` if it fits; returns whether it was stored."""
        return self._references.put(key, entry.signal, entry, entry.nbytes)

    @staticmethod
    def _resampled_key(signal: Tensor, rate: float, length: int) -> tuple:
        shape, dtype, device = tuple(signal.shape), str(signal.dtype), str(signal.device)
        return (float(rate), int(length), shape, dtype, device)

    def find_resampled(self, signal: Tensor, rate: float, length: int) -> Tensor | None:
        """The 24 kHz resampling of ``signal [1, time]`` (``length`` valid samples at ``rate``
        Hz) stored by :meth:`put_resampled`, or None."""
        return self._resampled.find(self._resampled_key(signal, rate, length), signal)

    def put_resampled(self, signal: Tensor, rate: float, length: int, resampled: Tensor) -> bool:
        """Keep ``resampled`` for later rows equal to ``signal`` (copies both) if it fits."""
        size = (signal.numel() + resampled.numel()) * signal.element_size()
        if not self._resampled.fits(size):
            return False
        key = self._resampled_key(signal, rate, length)
        return self._resampled.put(key, signal.clone(), resampled.clone(), size)

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()
        self._references.clear()
        self._resampled.clear()
        self.nbytes = 0
