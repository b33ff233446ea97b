"""The checks every echo canceller passes: shapes, latency, streaming == whole clip.

``check_latency`` perturbs the microphone and the far end after ``t + latency`` and requires
that no output before ``t`` moves, and that the latency is within the AEC Challenge's 20 ms;
``check_streaming`` runs the canceller's streamer with irregular block sizes and compares with
the whole-clip output (tolerance 1e-5, the brief's streaming bound).
"""

from __future__ import annotations

import numpy as np
from conftest import STREAM_TOL

from clarity_se.aec import MAX_LATENCY_S, SAMPLE_RATE
from clarity_se.aec.framing import run_streamer


def echo_clip(n_time: int, seed: int = 0, delay: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """(mic, far end): noise far end, a short decaying echo path, near-end noise."""
    rng = np.random.default_rng(seed)
    far = 0.1 * rng.standard_normal(n_time)
    path = rng.standard_normal(200) * np.exp(-np.arange(200) / 30.0)
    echo = np.zeros(n_time)
    echo[delay:] = np.convolve(far, path)[: n_time - delay]
    mic = 0.5 * echo + 0.01 * rng.standard_normal(n_time)
    return mic.astype(np.float32), far.astype(np.float32)


def check_shapes(aec, n_time: int = 3001) -> np.ndarray:
    """``(mic [n], far [n]) -> output [n], echo_estimate [n]`` float32, finite."""
    mic, far = echo_clip(n_time)
    out = aec(mic, far)
    for x in (out.output, out.echo_estimate):
        assert x.shape == (n_time,) and x.dtype == np.float32
        assert np.all(np.isfinite(x))
    return out.output


def check_latency(aec, n_time: int = 8000, cut: int = 4000, seed: int = 1) -> None:
    """Changing both inputs after ``cut + latency`` changes no output before ``cut``."""
    lat = int(aec.latency_samples)
    assert 0 <= lat <= MAX_LATENCY_S * SAMPLE_RATE
    mic, far = echo_clip(n_time, seed)
    mic2, far2 = mic.copy(), far.copy()
    other_mic, other_far = echo_clip(n_time, seed + 1)
    mic2[cut + lat + 1 :] = other_mic[cut + lat + 1 :]
    far2[cut + lat + 1 :] = other_far[cut + lat + 1 :]
    a, b = aec(mic, far).output, aec(mic2, far2).output
    np.testing.assert_array_equal(a[:cut], b[:cut])
    assert not np.allclose(a[cut + lat + 1 :], b[cut + lat + 1 :])


def check_streaming(aec, n_time: int = 9000, seed: int = 2, blocks=(1, 37, 441, 4096)) -> None:
    """Block-by-block output equals whole-clip output within :data:`STREAM_TOL`."""
    mic, far = echo_clip(n_time, seed)
    whole = aec(mic, far)
    streamer = aec.streamer()
    for block in blocks:
        got = run_streamer(streamer, mic, far, block)
        assert got.output.shape == whole.output.shape, (block, got.output.shape)
        np.testing.assert_allclose(got.output, whole.output, atol=STREAM_TOL, rtol=0,
                                   err_msg=f"block {block}")
        np.testing.assert_allclose(got.echo_estimate, whole.echo_estimate, atol=STREAM_TOL,
                                   rtol=0, err_msg=f"block {block}")
