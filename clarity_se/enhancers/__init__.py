"""Enhancers by name: the registry behind ``enhancer.name``.

Each enhancer module registers a factory ``factory(options) -> Enhancer`` with
:func:`register_enhancer`; ``options`` is the ``enhancer.*`` config node (attribute access:
``name``, ``checkpoint``, ``device``, ``variant``, ...). Modules are imported lazily, on first
use of their name, so that importing the registry stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from clarity_se.enhancers.base import (
    MAX_LATENCY_S,
    N_MICS,
    SAMPLE_RATE,
    BlockStreamer,
    Enhancer,
    check_mixture,
    run_streamer,
)

#: enhancer name -> module that registers it (imported on first use).
ENHANCER_MODULES: dict[str, str] = {
    "passthrough": "clarity_se.enhancers.passthrough",
    "convtasnet": "clarity_se.enhancers.convtasnet",
    "dtln": "clarity_se.enhancers.dtln",
    "crced": "clarity_se.enhancers.crced",
}

#: enhancers that take ``enhancer.runtime`` other than ``pytorch`` (onnxruntime)
ONNX_RUNTIME_ENHANCERS = ("dtln",)

_FACTORIES: dict[str, Callable[[Any], Enhancer]] = {}


Factory = Callable[[Any], Enhancer]


def register_enhancer(name: str) -> Callable[[Factory], Factory]:
    """Decorator registering ``factory(options) -> Enhancer`` under ``name``."""

    def decorate(factory: Callable[[Any], Enhancer]) -> Callable[[Any], Enhancer]:
        _FACTORIES[name] = factory
        return factory

    return decorate


def enhancer_names() -> list[str]:
    """Names accepted by ``enhancer.name``, sorted."""
    return sorted(ENHANCER_MODULES)


def build_enhancer(options: Any) -> Enhancer:
    """The enhancer named ``options.name``, built from the ``enhancer.*`` options.

    Raises
    ------
    ValueError
        If the name is unknown (the message lists the known ones) or the options are bad
        (e.g. ``enhancer.runtime`` other than ``pytorch`` for an enhancer not in
        :data:`ONNX_RUNTIME_ENHANCERS`).
    """
    name = options.name
    if name not in ENHANCER_MODULES:
        raise ValueError(f"enhancer.name: expected one of {enhancer_names()}, got {name!r}")
    runtime = str(options.get("runtime") or "pytorch")
    if runtime != "pytorch" and name not in ONNX_RUNTIME_ENHANCERS:
        raise ValueError(f"enhancer.runtime={runtime}: only {list(ONNX_RUNTIME_ENHANCERS)} run "
                         f"with another runtime than pytorch, not {name!r}")  # fmt: skip
    if name not in _FACTORIES:
        importlib.import_module(ENHANCER_MODULES[name])
    return _FACTORIES[name](options)


__all__ = [
    "ENHANCER_MODULES",
    "MAX_LATENCY_S",
    "N_MICS",
    "ONNX_RUNTIME_ENHANCERS",
    "SAMPLE_RATE",
    "BlockStreamer",
    "Enhancer",
    "build_enhancer",
    "check_mixture",
    "enhancer_names",
    "register_enhancer",
    "run_streamer",
]
