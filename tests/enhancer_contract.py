"""The checks every enhancer passes: latency, streaming == whole signal, shapes.

``check_latency`` perturbs the input after ``t + latency`` and requires that no output before
``t`` moves; ``check_streaming`` runs the enhancer's streamer with irregular block sizes and
compares with the whole-signal output (tolerance 1e-5, the brief's streaming bound).
"""

from __future__ import annotations

import json

import numpy as np
from conftest import STREAM_TOL

from clarity_se.enhancers.base import N_MICS, Enhancer, run_streamer


def random_mixture(n_time: int, seed: int = 0) -> np.ndarray:
    """Speech-like noise ``[6, n_time]`` float32 at about -20 dBFS."""
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((N_MICS, n_time))).astype(np.float32)


def check_shapes(enhancer, n_time: int = 3001) -> np.ndarray:
    """The :class:`Enhancer` protocol; ``[6, n] -> [2, n]`` float32, finite; its diagnostics
    a JSON-serialisable dict (the enhance journal stores them)."""
    assert isinstance(enhancer, Enhancer)
    out = enhancer(random_mixture(n_time))
    assert out.shape == (2, n_time) and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    diagnostics = enhancer.diagnostics()
    assert isinstance(diagnostics, dict)
    json.dumps(diagnostics)
    return out


def check_latency(enhancer, n_time: int = 8000, cut: int = 4000, seed: int = 1) -> None:
    """Changing the input after ``cut + latency`` changes no output before ``cut``, and the
    stated latency is tight to within one frame only if the enhancer says so (not checked)."""
    lat = int(enhancer.latency_samples)
    x = random_mixture(n_time, seed)
    y = x.copy()
    y[:, cut + lat + 1 :] = random_mixture(n_time - cut - lat - 1, seed + 1)
    a, b = enhancer(x), enhancer(y)
    np.testing.assert_array_equal(a[:, :cut], b[:, :cut])
    assert not np.allclose(a[:, cut + lat + 1 :], b[:, cut + lat + 1 :])


def check_streaming(enhancer, n_time: int = 9000, seed: int = 2) -> None:
    """Block-by-block output equals whole-signal output within :data:`STREAM_TOL`."""
    x = random_mixture(n_time, seed)
    whole = enhancer(x)
    streamer = enhancer.streamer()
    for block in (1, 37, 441, 4096):
        got = run_streamer(streamer, x, block)
        assert got.shape == whole.shape, (block, got.shape)
        np.testing.assert_allclose(got, whole, atol=STREAM_TOL, rtol=0, err_msg=f"block {block}")
