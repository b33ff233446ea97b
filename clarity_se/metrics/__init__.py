"""Hearing-aid speech metrics: HASPI v2, HASQI v2 and the ICASSP 2023 scene scorer.

Public API (batched, PyTorch, CPU or CUDA; equal to pyclarity 0.9.0 within float rounding in
``compat`` mode):

* :func:`haspi_v2`, :func:`haspi_v2_better_ear` -- Kates & Arehart (2021) HASPI v2;
* :func:`hasqi_v2`, :func:`hasqi_v2_better_ear` -- Kates & Arehart (2014) HASQI v2;
* :func:`make_reference`, :func:`score_scene_pairs` -- the official recipe's reference and
  the scores of one scene's listeners, sharing their common work.

The echo track's metrics live in :mod:`clarity_se.metrics.aec` (ERLE, PESQ-WB, SI-SDR, AECMOS)
and :mod:`clarity_se.metrics.dsml_resl` (DSML, RESL).

Heavy modules (the ear model and its compiled kernels) are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clarity_se.metrics.scene import EarScores, make_reference, score_scene_pairs

if TYPE_CHECKING:
    from clarity_se.metrics.haspi import haspi_v2, haspi_v2_better_ear
    from clarity_se.metrics.hasqi import hasqi_v2, hasqi_v2_better_ear

_LAZY = {
    "haspi_v2": "clarity_se.metrics.haspi",
    "haspi_v2_better_ear": "clarity_se.metrics.haspi",
    "hasqi_v2": "clarity_se.metrics.hasqi",
    "hasqi_v2_better_ear": "clarity_se.metrics.hasqi",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'clarity_se.metrics' has no attribute {name!r}")


__all__ = [
    "EarScores",
    "haspi_v2",
    "haspi_v2_better_ear",
    "hasqi_v2",
    "hasqi_v2_better_ear",
    "make_reference",
    "score_scene_pairs",
]
