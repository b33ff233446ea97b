"""Echo cancellers and residual-echo suppressors by name: the registry behind ``aec.name``.

Each system module registers ``factory(options) -> EchoCanceller`` with
:func:`register_aec`; ``options`` is the ``aec.*`` config node. Modules are imported on first
use of their name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from clarity_se.aec.base import (
    MAX_LATENCY_S,
    SAMPLE_RATE,
    EchoCanceller,
    EchoCancellerOutput,
    EchoStreamer,
    check_clip,
)

#: aec.name -> module that registers it (imported on first use); systems add themselves here.
AEC_MODULES: dict[str, str] = {
    "deep_adaptive": "clarity_se.aec.deep_adaptive",
    "nlms": "clarity_se.aec.nlms",
    "pbfdaf": "clarity_se.aec.pbfdaf",
    "webrtc_aec3": "clarity_se.aec.webrtc_aec3",
}

_FACTORIES: dict[str, Callable[[Any], EchoCanceller]] = {}


def register_aec(name: str) -> Callable:
    """Decorator registering ``factory(options) -> EchoCanceller`` under ``name``."""

    def decorate(factory: Callable[[Any], EchoCanceller]) -> Callable[[Any], EchoCanceller]:
        _FACTORIES[name] = factory
        return factory

    return decorate


def aec_names() -> list[str]:
    """Names accepted by ``aec.name``, sorted."""
    return sorted(AEC_MODULES)


def build_aec(options: Any) -> EchoCanceller:
    """The echo canceller named ``options.name``, built from the ``aec.*`` options.

    Raises
    ------
    ValueError
        If the name is unknown (the message lists the known ones) or the options are bad.
    """
    name = options.name
    if name not in AEC_MODULES:
        raise ValueError(f"aec.name: expected one of {aec_names()}, got {name!r}")
    if name not in _FACTORIES:
        importlib.import_module(AEC_MODULES[name])
    return _FACTORIES[name](options)


def build_aec_named(name: str, **overrides: Any) -> EchoCanceller:
    """:func:`build_aec` with every ``aec.*`` option at its schema default
    (:class:`~clarity_se.aec.config.AECOptions`; packaged checkpoints for learned systems) but
    ``name`` and the given top-level ``overrides`` (e.g. ``checkpoint=...``).

    Raises
    ------
    ValueError
        As :func:`build_aec`.
    """
    from omegaconf import OmegaConf

    from clarity_se.aec.config import AECOptions

    return build_aec(OmegaConf.merge(OmegaConf.structured(AECOptions),
                                     {"name": name, **overrides}))


__all__ = [
    "AEC_MODULES",
    "MAX_LATENCY_S",
    "SAMPLE_RATE",
    "EchoCanceller",
    "EchoCancellerOutput",
    "EchoStreamer",
    "aec_names",
    "build_aec",
    "build_aec_named",
    "check_clip",
    "register_aec",
]
