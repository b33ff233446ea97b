"""scipy.signal filter designs, cached on disk so evaluator workers skip importing scipy.signal.

Importing ``scipy.signal`` costs 1.5-2 s per process on the 2-core CI machine (``python -X
importtime``), about a third of an evaluator worker's start-up, while the ear model, HASQI and
NAL-R only need a handful of fixed designs from it (Butterworth, Chebyshev II, ``firwin``,
``tf2sos``, the Hamming window). :func:`scipy_design` returns exactly what scipy returns (the
values are stored as ``float.hex``, so a cached design is bit-identical), computing it with
scipy on the first call for given arguments and scipy version and reading it back from
``<cache dir>/filter_designs.json`` afterwards.

Cache dir: ``$CLARITY_SE_CACHE_DIR``, else ``$XDG_CACHE_HOME/clarity_se``, else
``~/.cache/clarity_se``. An unwritable or corrupt cache only costs the scipy import (logged at
debug level); set ``CLARITY_SE_CACHE_DIR=`` (empty) to disable it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["cache_path", "scipy_design"]

#: scipy.signal functions that may be cached (pure functions of their arguments)
DESIGNS = ("butter", "cheby2", "firwin", "tf2sos", "windows.hamming")

_memory: dict[str, object] | None = None


@lru_cache(maxsize=1)
def _scipy_version() -> str:
    """Installed scipy version (read once: ``importlib.metadata`` takes ~5 ms per call)."""
    return version("scipy")


def cache_path() -> Path | None:
    """Path of the on-disk cache file, or None when disabled (``CLARITY_SE_CACHE_DIR=``)."""
    explicit = os.environ.get("CLARITY_SE_CACHE_DIR")
    if explicit is not None:
        return Path(explicit) / "filter_designs.json" if explicit else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "clarity_se" / "filter_designs.json"


def _encode(value) -> dict:
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    arr = np.asarray(value, dtype=np.float64)
    return {"shape": list(arr.shape), "hex": [float(v).hex() for v in arr.ravel()]}


def _decode(entry: dict):
    if "tuple" in entry:
        return tuple(_decode(v) for v in entry["tuple"])
    arr = np.array([float.fromhex(v) for v in entry["hex"]], dtype=np.float64)
    return arr.reshape(entry["shape"])


def _load() -> dict[str, object]:
    global _memory
    if _memory is None:
        _memory = {}
        path = cache_path()
        if path is not None and path.is_file():
            try:
                loaded = json.loads(path.read_text())
                _memory = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError) as err:
                logger.debug("filter design cache %s unreadable (%s): recomputing", path, err)
    return _memory


def _store(key: str, entry: dict) -> None:
    path = cache_path()
    if path is None:
        return
    try:
        on_disk = json.loads(path.read_text())
    except (OSError, ValueError):
        on_disk = {}  # missing or corrupt: start afresh
    if not isinstance(on_disk, dict):
        on_disk = {}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        on_disk[key] = entry
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".filter_designs.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(on_disk, f)
        os.replace(tmp, path)  # atomic: concurrent workers never see a partial file
    except (OSError, ValueError) as err:
        logger.debug("filter design cache %s not written (%s)", path, err)


def scipy_design(name: str, *args, **kwargs):
    """``scipy.signal.<name>(*args, **kwargs)``, from the disk cache when available.

    Parameters
    ----------
    name : str
        One of :data:`DESIGNS` (``"windows.hamming"`` is ``scipy.signal.windows.hamming``).
    *args, **kwargs
        Passed to the scipy function; must have a stable ``repr`` (numbers, strings, tuples).

    Returns
    -------
    numpy.ndarray or tuple of numpy.ndarray
        Bit-identical to scipy's float64 result (fresh arrays the caller may modify).

    Raises
    ------
    ValueError
        If ``name`` is not a cached design; scipy's own errors for bad arguments.
    """
    if name not in DESIGNS:
        raise ValueError(f"scipy_design: {name!r} is not one of {DESIGNS}")
    key = repr((_scipy_version(), name, args, sorted(kwargs.items())))
    memory = _load()
    entry = memory.get(key)
    if entry is None:
        import scipy.signal

        func = scipy.signal
        for part in name.split("."):
            func = getattr(func, part)
        entry = _encode(func(*args, **kwargs))
        memory[key] = entry
        _store(key, entry)
    return _decode(entry)
