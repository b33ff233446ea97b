"""``enhancer.name=passthrough``: the official ICASSP 2023 baseline (the front microphones).

References
----------
pyclarity 0.9.0 ``recipes/icassp_2023/baseline/enhance.py::enhance``: the output is
``<scene>_mix_CH1.wav`` read as ``int16 / 32768.0`` and written as float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clarity_se.enhancers import register_enhancer
from clarity_se.enhancers.base import BlockStreamer, WholeSignalStreamer, check_mixture


class Passthrough:
    """The front-microphone pair (``CH1-L, CH1-R``) unchanged; zero latency.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(12, dtype=np.float32).reshape(6, 2)
    >>> Passthrough()(x).tolist()
    [[0.0, 1.0], [2.0, 3.0]]
    """

    name = "passthrough"
    latency_samples = 0

    def __call__(self, mixture: np.ndarray) -> np.ndarray:
        """``mixture [6, time]`` -> rows 0 and 1, ``[2, time]`` float32."""
        return check_mixture(mixture)[:2].copy()

    def streamer(self) -> BlockStreamer:
        """Block-wise pass-through (no state)."""
        return WholeSignalStreamer(self)

    def diagnostics(self) -> dict:
        """Nothing to report: ``{}``."""
        return {}


@register_enhancer("passthrough")
def _build(options: Any) -> Passthrough:
    return Passthrough()
