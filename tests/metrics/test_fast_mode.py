"""``fast`` evaluation mode (float32 + torch-generator noise) against pyclarity's seed spread.

Golden: ``tests/fixtures/fast_mode_golden.json`` (``tests/golden/make_fast_mode_golden.py``, run
with the pyclarity venv): for 8 of the HASPI whole-metric cases, the recipe's per-pair sequence
(``haspi_v2_be`` then ``hasqi_v2_better_ear``) under 5 seeds.  ``fast`` draws other noise than
pyclarity, so a per-pair score can only be expected within pyclarity's own seed-to-seed spread:
we require ``|fast - mean_seeds(pyclarity)| <= max(1e-3, 3 * spread)`` per pair and ear, with
``spread = max - min`` of pyclarity's 5 seeds, and the set means (HASPI, HASQI, combined) within
1e-3 (this catches any bias).  (``3 * std`` of 5 seeds is too noisy an estimate for 32
comparisons: e.g. c17 right-ear HASPI is 0.3831 with our fast seed, 0.3831-0.3879 over 12 fast
seeds, mean 0.3858 = compat-mode mean over 8 other seeds, while pyclarity's 5 seeds average
0.3872 with std 0.0013.)  float32 with the
``compat`` streams must stay within 5e-4 of pyclarity's score for the same seed (float64 compat
matches it to ~1e-9, see test_haspi / test_hasqi).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import (
    FIXTURES,  # noqa: E402
    GOLDEN_F32_SCORE_ABS,
)

from clarity_se.data.audiogram import Audiogram, Listener
from clarity_se.metrics.haspi import haspi_v2_better_ear
from clarity_se.metrics.hasqi import hasqi_v2_better_ear
from clarity_se.random import PairRandom

FIX = FIXTURES

import haspi_inputs  # noqa: E402

pytestmark = pytest.mark.golden

KEYS = ("haspi_left", "haspi_right", "hasqi_left", "hasqi_right")


_clips = haspi_inputs.clips
_mix = haspi_inputs.mix


def _golden():
    gold = json.loads((FIX / "fast_mode_golden.json").read_text())
    whole = {c["id"]: c for c in json.loads((FIX / "haspi_whole.json").read_text())["cases"]}
    return gold, [whole[g["id"]] for g in gold["cases"]]


def _score(cases: list[dict], mode: str, dtype: torch.dtype) -> dict[str, np.ndarray]:
    """The recipe's per-pair sequence (HASPI better ear, then HASQI better ear, one stream per
    pair), batched by (sample rate, level); returns ``KEYS`` -> ``[len(cases)]``."""
    out = {k: np.full(len(cases), np.nan) for k in KEYS}
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(cases):
        groups.setdefault((c["sample_rate"], c["level_db_spl"]), []).append(i)
    for (sr, level), idx in groups.items():
        sig = [_mix(_clips(sr), cases[i]) for i in idx]
        x = {k: torch.as_tensor(np.stack([s[k] for s in sig]), dtype=dtype) for k in sig[0]}
        listeners = []
        for i in idx:
            f = np.asarray(cases[i]["audiogram_frequencies"], dtype=float)
            listeners.append(Listener(
                cases[i]["id"],
                Audiogram(f, np.asarray(cases[i]["audiogram_left"], dtype=float)),
                Audiogram(f, np.asarray(cases[i]["audiogram_right"], dtype=float)),
            ))
        seeds = [cases[i]["seed"] for i in idx]
        rng = PairRandom.compat(seeds) if mode == "compat" else PairRandom.fast(seeds)
        kw = dict(**x, sample_rate=sr, listener=listeners, level_db_spl=level, rng=rng)
        h = haspi_v2_better_ear(**kw)
        q = hasqi_v2_better_ear(**kw)
        assert h.left.score.dtype == dtype and q.left.score.dtype == dtype
        for k, v in (("haspi_left", h.left.score), ("haspi_right", h.right.score),
                     ("hasqi_left", q.left.score), ("hasqi_right", q.right.score)):
            out[k][idx] = v.double().numpy()
    return out


@pytest.fixture(scope="module")
def golden():
    gold, cases = _golden()
    py = {k: np.array([g[k] for g in gold["cases"]]) for k in KEYS}  # [cases, seeds]
    assert all(v.shape == (len(cases), 5) for v in py.values())
    return cases, py


def test_fast_mode_within_pyclarity_seed_spread(golden):
    cases, py = golden
    ours = _score(cases, "fast", torch.float32)
    mean = {k: v.mean(1) for k, v in py.items()}
    for k in KEYS:
        tol = np.maximum(1e-3, 3.0 * np.ptp(py[k], axis=1))
        err = np.abs(ours[k] - mean[k])
        bad = [(cases[i]["id"], ours[k][i], mean[k][i], tol[i]) for i in np.flatnonzero(err > tol)]
        assert not bad, f"{k}: fast mode outside 3x pyclarity's seed spread: {bad}"

    def summary(d):
        h = np.maximum(d["haspi_left"], d["haspi_right"])
        q = np.maximum(d["hasqi_left"], d["hasqi_right"])
        return {"haspi": h, "hasqi": q, "combined": 0.5 * (h + q)}

    s_ours = summary(ours)
    s_py = summary({k: v for k, v in mean.items()})
    for k in s_ours:
        assert abs(s_ours[k].mean() - s_py[k].mean()) <= 1e-3, (k, s_ours[k], s_py[k])
    # ... and the mean of the per-seed better-ear maxima (what the recipe reports) too
    h_seed = np.maximum(py["haspi_left"], py["haspi_right"]).mean(1)
    assert abs(s_ours["haspi"].mean() - h_seed.mean()) <= 1e-3


def test_fast_mode_draws_other_noise_than_compat(golden):
    """Sanity: the tolerance above is needed (fast != compat) but the scores are seeded."""
    cases, _ = golden
    sub = cases[:3]  # one group: 16 kHz, 100 dB SPL
    assert len({(c["sample_rate"], c["level_db_spl"]) for c in sub}) == 1
    a = _score(sub, "fast", torch.float32)
    b = _score(sub, "fast", torch.float32)
    for k in KEYS:
        np.testing.assert_array_equal(a[k], b[k])
    c = _score(sub, "compat", torch.float32)
    assert max(np.abs(a[k] - c[k]).max() for k in KEYS) > 1e-7


def test_float32_compat_streams_match_pyclarity_seed(golden):
    cases, py = golden
    ours = _score(cases, "compat", torch.float32)
    for k in KEYS:
        np.testing.assert_allclose(
            ours[k], py[k][:, 0], rtol=0, atol=GOLDEN_F32_SCORE_ABS, err_msg=k
        )
