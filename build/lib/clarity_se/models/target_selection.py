"""Which of the ``n_src = 2`` outputs is the target? A frontal-coherence criterion.

In CEC2 the listener faces the target talker (head turned towards it, small error), so the
target reaches both ears almost simultaneously: its left/right ear signals are strongly
correlated at interaural lags near zero. The residual (one to three interferers at other
azimuths, plus reverberation) has a larger interaural time difference and/or lower
coherence. :func:`frontal_coherence` scores each output by the largest normalised
left/right cross-correlation over lags ``|tau| <= max_lag_ms`` (default 0.1 ms, i.e. the ITD of a
source within about +-10 degrees of the front); :func:`select_target` picks the best.

:func:`selection_accuracy` measures how often the criterion agrees with the oracle choice
(the output with the higher SI-SDR against the reference target) over a set of scenes; with
``model=None`` it tests the criterion itself on the oracle pair (target, mixture - target).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor

from clarity_se.losses.sisdr import si_sdr

logger = logging.getLogger(__name__)


def frontal_coherence(est_sources: Tensor, sample_rate: int, max_lag_ms: float = 0.1) -> Tensor:
    """Peak normalised interaural cross-correlation near zero lag, per source.

    Parameters
    ----------
    est_sources : Tensor [shape=(batch, n_src, 2, time)], float
        Left/right ear signals of each source.
    sample_rate : int
        Hz.
    max_lag_ms : float
        Largest interaural lag considered, ms (0.1 ms = 4 samples at 44.1 kHz).

    Returns
    -------
    Tensor [shape=(batch, n_src)]
        Score in [-1, 1]; higher = more frontal/coherent. Not meant for gradients.

    Raises
    ------
    ValueError
        If ``est_sources`` is not ``[batch, n_src, 2, time]``.
    """
    if est_sources.dim() != 4 or est_sources.shape[2] != 2:
        raise ValueError(
            f"est_sources: expected [batch, n_src, 2, time], got {tuple(est_sources.shape)}"
        )
    x = est_sources - est_sources.mean(-1, keepdim=True)
    left, right = x[:, :, 0], x[:, :, 1]
    n_time = x.shape[-1]
    max_lag = min(int(round(max_lag_ms * 1e-3 * sample_rate)), n_time - 1)
    norm = torch.sqrt((left**2).sum(-1) * (right**2).sum(-1)) + 1e-12
    best = torch.full(norm.shape, -1.0, dtype=x.dtype, device=x.device)
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            corr = (left[..., lag:] * right[..., : n_time - lag]).sum(-1)
        else:
            corr = (left[..., : n_time + lag] * right[..., -lag:]).sum(-1)
        best = torch.maximum(best, corr / norm)
    return best


def select_target(est_sources: Tensor, sample_rate: int, max_lag_ms: float = 0.1) -> Tensor:
    """Index of the target among the model outputs (the most frontal-coherent one).

    Parameters
    ----------
    est_sources : Tensor [shape=(batch, n_src, 2, time)]
    sample_rate : int
        Hz.
    max_lag_ms : float
        See :func:`frontal_coherence`.

    Returns
    -------
    Tensor [shape=(batch,)], long
        0 when ``n_src == 1``.
    """
    if est_sources.dim() == 4 and est_sources.shape[1] == 1:
        return torch.zeros(est_sources.shape[0], dtype=torch.long, device=est_sources.device)
    return frontal_coherence(est_sources, sample_rate, max_lag_ms).argmax(dim=1)


def pick_target(est_sources: Tensor, sample_rate: int, max_lag_ms: float = 0.1) -> Tensor:
    """The selected target's ear signals ``[batch, 2, time]`` (see :func:`select_target`)."""
    idx = select_target(est_sources, sample_rate, max_lag_ms)
    return est_sources[torch.arange(est_sources.shape[0], device=est_sources.device), idx]


@torch.no_grad()
def selection_accuracy(
    scenes: Iterable[tuple[str, np.ndarray, np.ndarray]],
    sample_rate: int,
    model: torch.nn.Module | None = None,
    max_lag_ms: float = 0.1,
) -> dict:
    """Agreement of :func:`select_target` with the oracle choice over a set of scenes.

    Parameters
    ----------
    scenes : iterable of (scene_id, mixture, target)
        ``mixture`` np.ndarray [shape=(6, time)] (CEC2 channel order) and ``target``
        np.ndarray [shape=(2, time)] (reference at the front mics, ``target_CH1``).
    sample_rate : int
        Hz.
    model : nn.Module, optional
        A 2-source model; ``None`` scores the oracle pair ``(target, CH1 mix - target)``.
    max_lag_ms : float
        See :func:`frontal_coherence`.

    Returns
    -------
    dict
        ``accuracy`` (fraction), ``n_scenes``, and ``per_scene`` list of
        ``{scene, chosen, oracle, scores}``.
    """
    rows = []
    for scene, mixture, target in scenes:
        mix = torch.as_tensor(np.asarray(mixture, dtype=np.float32))[None]
        ref = torch.as_tensor(np.asarray(target, dtype=np.float32))[None]
        if model is None:
            est = torch.stack([ref, mix[:, :2] - ref], dim=1)
        else:
            est = model(mix)
        scores = frontal_coherence(est, sample_rate, max_lag_ms)[0]
        quality = si_sdr(est, ref[:, None].expand_as(est)).mean(-1)[0]
        rows.append(
            {
                "scene": scene,
                "chosen": int(scores.argmax()),
                "oracle": int(quality.argmax()),
                "scores": [round(float(s), 4) for s in scores],
            }
        )
    n_ok = sum(r["chosen"] == r["oracle"] for r in rows)
    accuracy = n_ok / len(rows) if rows else float("nan")
    logger.info("target selection: %d/%d correct", n_ok, len(rows))
    return {"accuracy": accuracy, "n_scenes": len(rows), "per_scene": rows}


def selection_accuracy_on_split(
    root: str,
    split: str = "dev",
    checkpoint: str | None = None,
    max_scenes: int = 0,
    max_lag_ms: float = 0.1,
) -> dict:
    """:func:`selection_accuracy` over the scenes of a CEC2-layout split (e.g. the demo dev set).

    Parameters
    ----------
    root : str
        Folder holding ``clarity_data/``.
    split : str
        Split name (``dev``).
    checkpoint : str, optional
        A 2-source model checkpoint; ``None`` scores the oracle (target, residual) pair.
    max_scenes : int
        Only the first ``max_scenes`` scenes (0: all).
    max_lag_ms : float
        See :func:`frontal_coherence`.

    Returns
    -------
    dict
        As :func:`selection_accuracy`, plus ``root``, ``split`` and ``checkpoint``.

    Raises
    ------
    ValueError
        Missing scenes or files, or a checkpoint whose model does not have 2 sources.
    """
    from clarity_se.data.scene_segments import SceneSegmentDataset

    model = None
    if checkpoint:
        from clarity_se.models.checkpoint import load_model

        model, _ = load_model(checkpoint)
        if getattr(model, "n_src", 0) != 2:
            raise ValueError(f"{checkpoint}: target selection needs a 2-source model")
    data = SceneSegmentDataset(root, split, n_src=1, segment_s=0, max_scenes=max_scenes)

    def scenes():
        for scene in data.scene_ids:
            mixture, target = data.load_scene(scene)
            yield scene, mixture.numpy(), target.numpy()

    result = selection_accuracy(scenes(), data.sample_rate, model=model, max_lag_ms=max_lag_ms)
    result.update(root=str(root), split=split, checkpoint=checkpoint)
    return result
