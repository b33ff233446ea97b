"""Utterance-level permutation invariant training (uPIT).

References
----------
M. Kolbaek, D. Yu, Z.-H. Tan and J. Jensen, "Multitalker speech separation with
utterance-level permutation invariant training of deep recurrent neural networks",
IEEE/ACM TASLP 25(10), 1901-1913, 2017, Eq. 8-9 (one permutation per utterance).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from clarity_se.losses.sisdr import neg_si_sdr

#: Largest number of sources solved by trying every permutation; above it, Hungarian.
MAX_EXHAUSTIVE_SRC = 3


def pairwise_loss(
    est_sources: Tensor, sources: Tensor, loss_fn: Callable[[Tensor, Tensor], Tensor] = neg_si_sdr
) -> Tensor:
    """Loss of every (estimate, target) pair, averaged over any middle dims (e.g. ears).

    Parameters
    ----------
    est_sources : Tensor [shape=(batch, n_src, ..., time)]
    sources : Tensor [shape=(batch, n_src, ..., time)], same shape
    loss_fn : callable
        Per-signal loss ``(est [..., time], ref [..., time]) -> [...]`` (default: negative
        SI-SDR in dB).

    Returns
    -------
    Tensor [shape=(batch, n_src_est, n_src_target)]

    Raises
    ------
    ValueError
        If the shapes differ or have fewer than 3 dims.
    """
    if est_sources.shape != sources.shape:
        raise ValueError(
            f"pit: est_sources {tuple(est_sources.shape)} and sources {tuple(sources.shape)} differ"
        )
    if est_sources.dim() < 3:
        raise ValueError(f"pit: expected [batch, n_src, ..., time], got {tuple(sources.shape)}")
    n_src = sources.shape[1]
    est = est_sources[:, :, None].expand(-1, -1, n_src, *est_sources.shape[2:])
    ref = sources[:, None, :].expand(-1, n_src, -1, *sources.shape[2:])
    losses = loss_fn(est, ref)  # [batch, est, target, ...]
    return losses.flatten(start_dim=3).mean(dim=-1) if losses.dim() > 3 else losses


def best_permutation(pair_losses: Tensor) -> Tensor:
    """Permutation minimising the summed pair loss, per batch item.

    Parameters
    ----------
    pair_losses : Tensor [shape=(batch, n_src_est, n_src_target)]

    Returns
    -------
    Tensor [shape=(batch, n_src)], long
        ``perm[b, j]`` is the estimate assigned to target ``j``. Exhaustive search up to
        :data:`MAX_EXHAUSTIVE_SRC` sources, Hungarian algorithm
        (``scipy.optimize.linear_sum_assignment``) above; both give the optimum.
    """
    batch, n_src, _ = pair_losses.shape
    if n_src <= MAX_EXHAUSTIVE_SRC:
        perms = torch.tensor(
            list(itertools.permutations(range(n_src))), device=pair_losses.device
        )  # [n_perm, n_src]: perms[p, j] = estimate for target j
        tgt = torch.arange(n_src, device=pair_losses.device)
        totals = pair_losses[:, perms, tgt].sum(-1)  # [batch, n_perm]
        return perms[totals.argmin(dim=1)]
    costs = pair_losses.detach().cpu().double().numpy()
    out = np.empty((batch, n_src), dtype=np.int64)
    for b in range(batch):
        est_idx, tgt_idx = linear_sum_assignment(costs[b])
        out[b, tgt_idx] = est_idx
    return torch.from_numpy(out).to(pair_losses.device)


def pit_loss(
    est_sources: Tensor,
    sources: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = neg_si_sdr,
) -> tuple[Tensor, Tensor]:
    """uPIT loss: the mean pair loss under the best permutation of each utterance.

    Parameters
    ----------
    est_sources : Tensor [shape=(batch, n_src, time) or (batch, n_src, ears, time)]
    sources : Tensor, same shape
    loss_fn : callable
        Per-signal loss (default: negative SI-SDR in dB); with ears, averaged over ears.

    Returns
    -------
    loss : Tensor []
        Mean over batch and sources of the best-permutation loss (differentiable).
    perm : Tensor [shape=(batch, n_src)], long
        ``est_sources[b, perm[b]]`` is aligned with ``sources[b]``.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    pair = pairwise_loss(est_sources, sources, loss_fn)
    perm = best_permutation(pair)
    n_src = pair.shape[1]
    tgt = torch.arange(n_src, device=pair.device)
    chosen = pair[torch.arange(pair.shape[0], device=pair.device)[:, None], perm, tgt]
    return chosen.mean(), perm


def reorder_sources(est_sources: Tensor, perm: Tensor) -> Tensor:
    """Apply a permutation from :func:`pit_loss`: ``out[b, j] = est_sources[b, perm[b, j]]``."""
    index = perm.view(perm.shape + (1,) * (est_sources.dim() - 2)).expand(
        perm.shape + est_sources.shape[2:]
    )
    return torch.gather(est_sources, 1, index)
