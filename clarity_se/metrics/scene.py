"""Score the listeners of one scene together: the official reference, HASPI v2 and HASQI v2.

This is the science of the ICASSP 2023 ``evaluate.py`` per scene, apart from any file or
process handling: build the reference (:func:`make_reference`), then score the hearing-aid
outputs of the scene's listeners as one batch (:func:`score_scene_pairs`).

Sharing is explicit here. The recipe seeds every pair of a scene with the scene's seed, so
the pairs draw the same threshold noise (:class:`~clarity_se.random.PairRandom` items with one
seed share one sequence); one :class:`~clarity_se.ear_model.shared.ProcessedPathCache` serves
HASPI and HASQI of the scene, so HASQI reuses the processed half of HASPI's ear model and
HASPI's reference path (normal ear, no BM noise) is computed once for all listeners. Scores
are bit-identical with or without the sharing (tested).

References
----------
pyclarity 0.9.0 ``recipes/icassp_2023/baseline/evaluate.py::run_calculate_si``;
Kates & Arehart (2014) HASPI v2 and HASQI v2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from clarity_se.data.audiogram import Listener

#: ``evaluate.rng`` values: replay the official numpy draws, or torch generators in float32.
RNG_MODES = ("compat", "fast")


class EarScores(NamedTuple):
    """HASPI v2 and HASQI v2 of each ear of one pair (better ear: the larger of the two)."""

    haspi_left: float
    haspi_right: float
    hasqi_left: float
    hasqi_right: float

    @property
    def haspi(self) -> float:
        """Better-ear HASPI (``max(left, right)``)."""
        return max(self.haspi_left, self.haspi_right)

    @property
    def hasqi(self) -> float:
        """Better-ear HASQI (``max(left, right)``)."""
        return max(self.hasqi_left, self.hasqi_right)

    @property
    def combined(self) -> float:
        """The ICASSP 2023 score: the mean of better-ear HASPI and HASQI."""
        return 0.5 * (self.hasqi + self.haspi)


def make_reference(anechoic: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The official reference: anechoic target rescaled per ear to the RMS of ``target_CH1``.

    Parameters
    ----------
    anechoic, target : np.ndarray [shape=(time, 2)]
        ``<scene>_target_anechoic_CH1.wav`` and ``<scene>_target_CH1.wav``, int16 / 32768.

    Returns
    -------
    np.ndarray [shape=(time, 2)]
        ``anechoic * rms(target) / rms(anechoic)`` per channel (pyclarity ``evaluate.py``).

    Raises
    ------
    ValueError
        If the anechoic target is silent in an ear (the official code would divide by zero),
        or the two differ in shape.
    """
    if anechoic.shape != target.shape:
        raise ValueError(
            f"target_anechoic_CH1 has shape {anechoic.shape}, target_CH1 {target.shape}"
        )
    rms_target = np.mean(target**2, axis=0) ** 0.5
    rms_anechoic = np.mean(anechoic**2, axis=0) ** 0.5
    if np.any(rms_anechoic == 0):
        raise ValueError("target_anechoic_CH1 is silent in an ear: cannot rescale the reference")
    return anechoic * rms_target / rms_anechoic


def score_scene_pairs(
    *,
    scene_seed: int,
    reference: np.ndarray,
    amplified: Sequence[np.ndarray],
    listeners: Sequence[Listener],
    sample_rate: int,
    level_db_spl: float = 100.0,
    rng: str = "compat",
    device: str = "cpu",
) -> list[EarScores]:
    """HASPI v2 and HASQI v2 of each ear for the pairs of one scene, scored as one batch.

    Parameters
    ----------
    scene_seed : int
        The scene's seed (:func:`clarity_se.random.scene_seed`): every pair's random stream
        starts from it, as the official ``set_scene_seed``.
    reference : np.ndarray [shape=(time, 2)], float
        The scene's reference (:func:`make_reference`), RMS 1 == ``level_db_spl`` dB SPL.
    amplified : sequence of np.ndarray [shape=(time + nfir, 2)]
        Hearing-aid outputs, one per pair (equal lengths).
    listeners : sequence of Listener
        One per pair.
    sample_rate : int
        Hz, of the reference and the outputs.
    level_db_spl : float
        dB SPL of RMS 1 (the recipe's 100).
    rng : {"compat", "fast"}
        ``compat``: float64, the official numpy draws (per-pair equality with pyclarity);
        ``fast``: float32 and torch generators (``tests/metrics/test_fast_mode.py``).
    device : str
        ``cpu`` or ``cuda[:N]``.

    Returns
    -------
    list of EarScores
        One per pair, in order.

    Raises
    ------
    ValueError
        Unknown ``rng``, mismatched lengths, or an error of the metrics (silent reference,
        bad audiogram, ...); the caller attributes it to the pairs.
    """
    import torch

    from clarity_se.ear_model.shared import ProcessedPathCache
    from clarity_se.metrics.haspi import haspi_v2_better_ear
    from clarity_se.metrics.hasqi import hasqi_v2_better_ear
    from clarity_se.random import PairRandom

    if rng not in RNG_MODES:
        raise ValueError(f"evaluate.rng must be one of {RNG_MODES}, got {rng!r}")
    if len(amplified) != len(listeners):
        raise ValueError(f"{len(amplified)} hearing-aid outputs for {len(listeners)} listeners")
    n = len(amplified)
    streams = (PairRandom.compat([scene_seed] * n) if rng == "compat"
               else PairRandom.fast([scene_seed] * n, device=torch.device(device)))
    dtype = torch.float64 if rng == "compat" else torch.float32
    processed = torch.as_tensor(np.stack(amplified), dtype=dtype, device=device)  # [n, T, 2]
    ref = torch.as_tensor(
        np.broadcast_to(reference, (n,) + reference.shape).copy(), dtype=dtype, device=device
    )
    common = dict(
        reference_left=ref[..., 0],
        reference_right=ref[..., 1],
        processed_left=processed[..., 0],
        processed_right=processed[..., 1],
        sample_rate=int(sample_rate),
        listener=list(listeners),
        level_db_spl=float(level_db_spl),
        rng=streams,
    )
    shared = ProcessedPathCache()
    haspi = haspi_v2_better_ear(**common, processed_cache=shared)
    hasqi = hasqi_v2_better_ear(**common, processed_cache=shared)
    return [
        EarScores(
            float(haspi.left.score[i]),
            float(haspi.right.score[i]),
            float(hasqi.left.score[i]),
            float(hasqi.right.score[i]),
        )
        for i in range(n)
    ]
