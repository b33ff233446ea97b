"""HASQI v2: back-end functions and the whole metric against pyclarity 0.9.0 golden values.

Fixtures come from ``tests/golden/make_hasqi_golden.py`` (pyclarity venv); the inputs are rebuilt
here by ``tests/golden/hasqi_inputs.py`` (seeded RandomState + /work/shared/data recordings).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from conftest import (
    GOLDEN_BACKEND_ABS,
    GOLDEN_SCORE_AIM_ABS,
    TESTS,  # noqa: E402
)

from clarity_se.data.audiogram import Audiogram, Listener
from clarity_se.metrics import quality as q
from clarity_se.metrics.hasqi import hasqi_v2, hasqi_v2_better_ear
from clarity_se.random import PairRandom

HERE = TESTS
sys.path.insert(0, str(HERE / "golden"))
import hasqi_inputs as hi  # noqa: E402

pytestmark = pytest.mark.golden

FIXTURES = HERE / "fixtures"
FS = 24000
#: back-end functions on fixed ear-model outputs (tolerances: tests/conftest.py)
BACKEND_ATOL = GOLDEN_BACKEND_ABS
#: whole metric (through the ear model) per score; the contract's limit is 1e-4
METRIC_ATOL = GOLDEN_SCORE_AIM_ABS

torch.set_num_threads(1)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))[None]


@pytest.fixture(scope="module", params=[c["name"] for c in hi.BACKEND_CASES])
def backend_case(request):
    case = next(c for c in hi.BACKEND_CASES if c["name"] == request.param)
    inputs = {k: _t(v) for k, v in hi.backend_inputs(case["seed"], silent=case["silent"]).items()}
    golden = dict(np.load(FIXTURES / f"hasqi_backend_{case['name']}.npz"))
    return case, inputs, golden


# --------------------------------------------------------------------------------------------
# back-end golden
# --------------------------------------------------------------------------------------------


def test_env_smooth_golden(backend_case):
    _, x, g = backend_case
    for key, seg, name in [("reference_db", 16, "smooth16_ref"), ("processed_db", 16,
                                                                  "smooth16_proc"),
                           ("reference_db", 8, "smooth8_ref")]:
        out = q.env_smooth(x[key], seg, FS)
        assert out.shape[1:] == g[name].shape
        np.testing.assert_allclose(out[0].numpy(), g[name], rtol=1e-12, atol=BACKEND_ATOL)


def test_mel_cepstrum_correlation_golden_and_stream(backend_case):
    case, x, g = backend_case
    rs = q.env_smooth(x["reference_db"], 16, FS)
    ps = q.env_smooth(x["processed_db"], 16, FS)
    rng = PairRandom.compat([case["seed"]])
    out = q.mel_cepstrum_correlation(rs, ps, 2.5, case["add_noise"], rng)
    np.testing.assert_allclose(out.average.numpy(), [g["melcep_average"]], atol=BACKEND_ATOL)
    np.testing.assert_allclose(out.individual[0].numpy(), g["melcep_individual"],
                               atol=BACKEND_ATOL)
    # the stream is left exactly where pyclarity's global generator is
    nxt = rng.standard_normal((3,))[0].numpy()
    np.testing.assert_array_equal(nxt, g["melcep_next_draw"])


def test_melcor9_golden_and_stream(backend_case):
    case, x, g = backend_case
    r8 = q.env_smooth(x["reference_db"], 8, FS)
    p8 = q.env_smooth(x["processed_db"], 8, FS)
    rng = PairRandom.compat([case["seed"] + 1])
    out = q.melcor9(r8, p8, 2.5, case["add_noise"], 8, rng)
    got = torch.stack([out.average, out.low, out.high], dim=-1)[0].numpy()
    np.testing.assert_allclose(got, g["melcor9"], atol=BACKEND_ATOL)
    np.testing.assert_allclose(out.modulation[0].numpy(), g["melcor9_modulation"],
                               atol=BACKEND_ATOL)
    np.testing.assert_array_equal(rng.standard_normal((3,))[0].numpy(), g["melcor9_next_draw"])


def test_spectrum_diff_golden(backend_case):
    _, x, g = backend_case
    out = q.spectrum_diff(x["reference_sl"][:, :], x["processed_sl"])
    got = torch.stack([out.dloud, out.dnorm, out.dslope], dim=1)[0].numpy()
    np.testing.assert_allclose(got, g["spectrum_diff"], rtol=1e-12, atol=BACKEND_ATOL)


def test_bm_covary_and_ave_covary2_golden(backend_case):
    _, x, g = backend_case
    out = q.bm_covary(x["reference_bm"], x["processed_bm"], 16, FS)
    np.testing.assert_allclose(out.signal_cross_covariance[0].numpy(), g["bm_cov"],
                               atol=BACKEND_ATOL)
    np.testing.assert_allclose(out.reference_mean_square[0].numpy(), g["bm_ref_ms"],
                               rtol=1e-12, atol=BACKEND_ATOL)
    np.testing.assert_allclose(out.processed_mean_square[0].numpy(), g["bm_proc_ms"],
                               rtol=1e-12, atol=BACKEND_ATOL)
    ave = q.ave_covary2(_t(g["bm_cov"]), _t(g["bm_ref_ms"]), 2.5)
    got = np.concatenate([ave.average_covariance.numpy(), ave.ihc_sync_covariance[0].numpy()])
    np.testing.assert_allclose(got, g["ave_covary2"], atol=BACKEND_ATOL)


# --------------------------------------------------------------------------------------------
# back-end batching, modes, dtypes
# --------------------------------------------------------------------------------------------


def _stacked_backend_inputs():
    cases = hi.BACKEND_CASES
    raw = [hi.backend_inputs(c["seed"], silent=c["silent"]) for c in cases]
    return cases, {k: torch.as_tensor(np.stack([r[k] for r in raw])) for k in raw[0]}


def test_backend_batch_equals_one_at_a_time():
    cases, x = _stacked_backend_inputs()  # includes a below-threshold item
    seeds = [c["seed"] for c in cases]
    rs = q.env_smooth(x["reference_db"], 16, FS)
    ps = q.env_smooth(x["processed_db"], 16, FS)
    batch_cep = q.mel_cepstrum_correlation(rs, ps, 2.5, 1.0, PairRandom.compat(seeds))
    r8 = q.env_smooth(x["reference_db"], 8, FS)
    p8 = q.env_smooth(x["processed_db"], 8, FS)
    batch_m9 = q.melcor9(r8, p8, 2.5, 1.0, 8, PairRandom.compat(seeds))
    batch_bm = q.bm_covary(x["reference_bm"], x["processed_bm"], 16, FS, max_chunk_elements=5000)
    batch_av = q.ave_covary2(batch_bm[0], batch_bm[1], 2.5)
    for i, s in enumerate(seeds):
        one = q.mel_cepstrum_correlation(rs[i : i + 1], ps[i : i + 1], 2.5, 1.0,
                                         PairRandom.compat([s]))
        torch.testing.assert_close(one.individual[0], batch_cep.individual[i], rtol=0, atol=1e-13)
        m9 = q.melcor9(r8[i : i + 1], p8[i : i + 1], 2.5, 1.0, 8, PairRandom.compat([s]))
        torch.testing.assert_close(m9.modulation[0], batch_m9.modulation[i], rtol=0, atol=1e-13)
        bm = q.bm_covary(x["reference_bm"][i : i + 1], x["processed_bm"][i : i + 1], 16, FS)
        torch.testing.assert_close(bm[0][0], batch_bm[0][i], rtol=0, atol=1e-13)
        av = q.ave_covary2(bm[0], bm[1], 2.5)
        torch.testing.assert_close(av[1][0], batch_av[1][i], rtol=0, atol=1e-13)
    assert float(batch_cep.average[2]) == 0.0 and float(batch_cep.average[0]) > 0.5


def test_backend_variable_lengths_equal_truncated_items():
    """Zero-padded items with ``lengths`` give exactly the one-at-a-time results."""
    cases, x = _stacked_backend_inputs()
    lengths = torch.tensor([7200, 6111, 4000])  # in samples at 24 kHz
    seeds = [c["seed"] for c in cases]
    padded = {k: v.clone() for k, v in x.items()}
    for i, n in enumerate(lengths.tolist()):
        for k in ("reference_db", "processed_db", "reference_bm", "processed_bm"):
            padded[k][i, :, n:] = 0.0
    nseg = q.segment_counts(lengths, 7200, 16, FS)
    rs = q.env_smooth(padded["reference_db"], 16, FS, lengths)
    ps = q.env_smooth(padded["processed_db"], 16, FS, lengths)
    cep = q.mel_cepstrum_correlation(rs, ps, 2.5, 0.7, PairRandom.compat(seeds), lengths=nseg)
    bm = q.bm_covary(padded["reference_bm"], padded["processed_bm"], 16, FS, lengths)
    av = q.ave_covary2(bm[0], bm[1], 2.5, lengths=nseg)
    for i, n in enumerate(lengths.tolist()):
        k = int(nseg[i])
        r1 = q.env_smooth(x["reference_db"][i : i + 1, :, :n], 16, FS)
        p1 = q.env_smooth(x["processed_db"][i : i + 1, :, :n], 16, FS)
        assert r1.shape[-1] == k
        torch.testing.assert_close(rs[i, :, :k], r1[0], rtol=0, atol=1e-12)
        assert bool((rs[i, :, k:] == 0).all())
        c1 = q.mel_cepstrum_correlation(r1, p1, 2.5, 0.7, PairRandom.compat([seeds[i]]))
        torch.testing.assert_close(cep.individual[i], c1.individual[0], rtol=0, atol=1e-12)
        b1 = q.bm_covary(x["reference_bm"][i : i + 1, :, :n], x["processed_bm"][i : i + 1, :, :n],
                         16, FS)
        for j in range(3):
            torch.testing.assert_close(bm[j][i, :, :k], b1[j][0], rtol=1e-12, atol=1e-12)
        a1 = q.ave_covary2(b1[0], b1[1], 2.5)
        torch.testing.assert_close(av[1][i], a1[1][0], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="lengths"):
        q.env_smooth(padded["reference_db"], 16, FS, torch.tensor([7200, 100, 4000]))


def test_backend_fast_mode_deterministic_and_seeded():
    _, x = _stacked_backend_inputs()
    rs = q.env_smooth(x["reference_db"][:2], 16, FS)
    ps = q.env_smooth(x["processed_db"][:2], 16, FS)
    a = q.mel_cepstrum_correlation(rs, ps, 2.5, 3.0, PairRandom.fast([5, 6]))
    b = q.mel_cepstrum_correlation(rs, ps, 2.5, 3.0, PairRandom.fast([5, 6]))
    c = q.mel_cepstrum_correlation(rs, ps, 2.5, 3.0, PairRandom.fast([7, 8]))
    torch.testing.assert_close(a.individual, b.individual, rtol=0, atol=0)
    assert not torch.equal(a.individual, c.individual)


def test_backend_float32_close_to_float64():
    _, x = _stacked_backend_inputs()
    bm64 = q.bm_covary(x["reference_bm"][:2], x["processed_bm"][:2], 16, FS)
    bm32 = q.bm_covary(x["reference_bm"][:2].float(), x["processed_bm"][:2].float(), 16, FS)
    assert bm32[0].dtype == torch.float32
    torch.testing.assert_close(bm32[0].double(), bm64[0], rtol=0, atol=1e-4)


def test_backend_rejects_bad_shapes_and_short_signals():
    x = torch.zeros(1, 32, 100, dtype=torch.float64)
    with pytest.raises(ValueError, match="envelopes"):
        q.env_smooth(x, 16, FS)
    with pytest.raises(ValueError, match="reference_basilar_membrane"):
        q.bm_covary(x, x, 16, FS)
    with pytest.raises(ValueError, match="same shape"):
        q.spectrum_diff(torch.zeros(1, 32), torch.zeros(2, 32))
    with pytest.raises(ValueError, match="rng"):
        q.mel_cepstrum_correlation(torch.zeros(2, 32, 9), torch.zeros(2, 32, 9), 2.5, 0.0,
                                   PairRandom.compat([1]))


# --------------------------------------------------------------------------------------------
# whole metric (needs the ear model)
# --------------------------------------------------------------------------------------------

GOLDEN = json.loads((FIXTURES / "hasqi_metric.json").read_text())


def _audiogram(name: str) -> Audiogram:
    f, lv = hi.audiogram_arrays(name)
    return Audiogram(f, lv, name=name)


def _groups():
    """Metric cases grouped by (sample rate, level, equalisation, length): one batch each."""
    groups: dict[tuple, list[dict]] = {}
    for c in hi.METRIC_CASES:
        key = (c["sample_rate"], c["level_db_spl"], c["equalisation"], c["duration_s"])
        groups.setdefault(key, []).append(c)
    return list(groups.values())


@pytest.fixture(scope="module")
def metric_batches():
    """Run every group of golden cases as one batch (compat streams seeded per case)."""
    results = {}
    for cases in _groups():
        pairs = [hi.make_pair(c) for c in cases]
        ref = torch.as_tensor(np.stack([p[0] for p in pairs]))
        proc = torch.as_tensor(np.stack([p[1] for p in pairs]))
        c0 = cases[0]
        out = hasqi_v2(reference=ref, processed=proc, sample_rate=c0["sample_rate"],
                       audiogram=[_audiogram(c["audiogram"]) for c in cases],
                       level_db_spl=c0["level_db_spl"], equalisation=c0["equalisation"],
                       rng=PairRandom.compat([c["seed"] for c in cases]))
        for i, c in enumerate(cases):
            results[c["name"]] = (out.score[i], out.nonlinear[i], out.linear[i], out.raw[i])
    return results


@pytest.mark.parametrize("name", [c["name"] for c in hi.METRIC_CASES])
def test_hasqi_v2_matches_pyclarity(metric_batches, name):
    g = GOLDEN["cases"][name]
    score, nonlin, linear, raw = metric_batches[name]
    got = np.array([float(score), float(nonlin), float(linear), *raw.tolist()])
    want = np.array([g["combined"], g["nonlinear"], g["linear"], *g["raw"]])
    np.testing.assert_allclose(got, want, rtol=0, atol=METRIC_ATOL)


def test_hasqi_v2_one_at_a_time_equals_batch(metric_batches):
    group = next(g for g in _groups() if len(g) >= 2)
    for c in group[1:2]:  # an item that is not first in its batch
        ref, proc, fs = hi.make_pair(c)
        one = hasqi_v2(reference=ref, processed=proc, sample_rate=fs,
                       hearing_loss_db_hl=_audiogram(c["audiogram"]).resample(
                           hi.HASQI_FREQS).levels_db_hl,
                       level_db_spl=c["level_db_spl"], equalisation=c["equalisation"],
                       rng=PairRandom.compat([c["seed"]]))
        assert one.score.shape == (1,)
        # rounding differences only (FFT/BLAS blocking depends on the batch shape)
        np.testing.assert_allclose(one.raw[0].numpy(), metric_batches[c["name"]][3].numpy(),
                                   rtol=0, atol=1e-9)


def test_hasqi_v2_batch_with_different_aligned_lengths():
    """The ear model prunes each reference's leading/trailing near-silence, so items of one
    batch end up with different lengths; each must still equal its one-at-a-time score."""
    c = hi.METRIC_CASES[0]
    ref, proc, fs = hi.make_pair(c)
    n = int(0.4 * fs)
    ref, proc = ref[:n], proc[:n]
    ref_b = ref.copy()
    ref_b[: int(0.08 * fs)] = 0.0  # leading silence: pruned by the alignment
    ref_b[-int(0.05 * fs) :] = 0.0  # trailing silence too
    hl = np.array([[10.0, 20, 30, 40, 50, 60], [30.0, 30, 35, 40, 45, 50]])
    both = hasqi_v2(reference=np.stack([ref, ref_b]), processed=np.stack([proc, proc]),
                    sample_rate=fs, hearing_loss_db_hl=hl, rng=PairRandom.compat([7, 8]))
    one = hasqi_v2(reference=ref_b, processed=proc, sample_rate=fs, hearing_loss_db_hl=hl[1],
                   rng=PairRandom.compat([8]))
    np.testing.assert_allclose(both.raw[1].numpy(), one.raw[0].numpy(), rtol=0, atol=1e-9)
    assert abs(float(both.score[0]) - float(both.score[1])) > 1e-3


def test_hasqi_v2_fast_mode_deterministic():
    """Fast streams: same seed -> same score, whatever the batch position; default rng too."""
    c = hi.METRIC_CASES[1]
    ref, proc, fs = hi.make_pair(c)
    n = int(0.3 * fs)
    ref2 = np.stack([ref[:n], ref[:n]])
    proc2 = np.stack([proc[:n], proc[:n]])
    ag = _audiogram(c["audiogram"])
    two = hasqi_v2(reference=ref2, processed=proc2, sample_rate=fs, audiogram=[ag, ag],
                   rng=PairRandom.fast([3, 3]))
    torch.testing.assert_close(two.raw[0], two.raw[1], rtol=0, atol=1e-12)
    one = hasqi_v2(reference=ref[:n], processed=proc[:n], sample_rate=fs, audiogram=ag)
    again = hasqi_v2(reference=ref[:n], processed=proc[:n], sample_rate=fs, audiogram=ag)
    torch.testing.assert_close(one.raw, again.raw, rtol=0, atol=0)
    assert 0.0 < float(one.score) < 1.0


@pytest.mark.parametrize("case", hi.BETTER_EAR_CASES, ids=lambda c: c["name"])
def test_hasqi_v2_better_ear_matches_pyclarity(case):
    ref_l, proc_l, fs = hi.make_pair(case)
    ref_r, proc_r, _ = hi.make_pair(dict(case, snr_db=case["snr_db"] + 6))
    listener = Listener(case["name"], _audiogram(case["left"]), _audiogram(case["right"]))
    out = hasqi_v2_better_ear(reference_left=ref_l, reference_right=ref_r,
                              processed_left=proc_l, processed_right=proc_r, sample_rate=fs,
                              listener=listener, rng=PairRandom.compat([case["seed"]]))
    g = GOLDEN["better_ear"][case["name"]]
    np.testing.assert_allclose(
        [float(out.score), float(out.left.score), float(out.right.score)],
        [g["score"], g["left"], g["right"]], rtol=0, atol=METRIC_ATOL)


# --------------------------------------------------------------------------------------------
# edge cases and input checks (cheap: they fail before the ear model)
# --------------------------------------------------------------------------------------------


def _signals(n=4000):
    rs = np.random.RandomState(0)
    x = 0.1 * rs.standard_normal(n)
    return x, x + 0.05 * rs.standard_normal(n)


@pytest.mark.parametrize("arg", ["reference", "processed"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_hasqi_v2_rejects_non_finite_signals(arg, bad):
    x, y = _signals()
    kw = {"reference": x, "processed": y}
    kw[arg] = kw[arg].copy()
    kw[arg][100] = bad
    with pytest.raises(ValueError, match=arg):
        hasqi_v2(**kw, sample_rate=16000, hearing_loss_db_hl=np.zeros(6))


def test_hasqi_v2_rejects_bad_hearing_loss_and_options():
    x, y = _signals()
    kw = {"reference": x, "processed": y, "sample_rate": 16000}
    with pytest.raises(ValueError, match="hearing_loss_db_hl"):
        hasqi_v2(**kw, hearing_loss_db_hl=[0, 0, np.nan, 0, 0, 0])
    with pytest.raises(ValueError, match="hearing_loss_db_hl"):
        hasqi_v2(**kw, hearing_loss_db_hl=np.zeros(5))
    with pytest.raises(ValueError, match="exactly one"):
        hasqi_v2(**kw)
    with pytest.raises(ValueError, match="exactly one"):
        hasqi_v2(**kw, hearing_loss_db_hl=np.zeros(6), audiogram=_audiogram("normal"))
    with pytest.raises(ValueError, match="equalisation"):
        hasqi_v2(**kw, hearing_loss_db_hl=np.zeros(6), equalisation=0)
    with pytest.raises(ValueError, match="rng"):
        hasqi_v2(**kw, hearing_loss_db_hl=np.zeros(6), rng=PairRandom.compat([1, 2]))
    with pytest.raises(ValueError, match="items"):
        hasqi_v2(reference=np.stack([x, x]), processed=y[None], sample_rate=16000,
                 hearing_loss_db_hl=np.zeros(6))
    with pytest.raises(ValueError, match="audiogram"):
        hasqi_v2(**kw, audiogram=["not an audiogram"])


@pytest.mark.parametrize("arg", ["reference", "processed"])
def test_hasqi_v2_rejects_all_zero_signal(arg):
    x, y = _signals()
    kw = {"reference": x, "processed": y}
    kw[arg] = np.zeros_like(kw[arg])
    with pytest.raises(ValueError, match=f"{arg}.*silent"):
        hasqi_v2(**kw, sample_rate=16000, hearing_loss_db_hl=np.zeros(6))


def test_better_ear_names_the_bad_argument():
    x, y = _signals()
    bad = y.copy()
    bad[5] = np.nan
    with pytest.raises(ValueError, match="processed_right"):
        hasqi_v2_better_ear(reference_left=x, reference_right=x, processed_left=y,
                            processed_right=bad, sample_rate=16000,
                            hearing_loss_left_db_hl=np.zeros(6),
                            hearing_loss_right_db_hl=np.zeros(6))
    with pytest.raises(ValueError, match="exactly one"):
        hasqi_v2_better_ear(reference_left=x, reference_right=x, processed_left=y,
                            processed_right=y, sample_rate=16000)
