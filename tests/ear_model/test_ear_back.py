"""Back stages of the ear model against pyclarity 0.9.0 (fixtures from make_ear_back_golden.py)."""


import ear_back_inputs as inp  # noqa: E402
import numpy as np
import pytest
import torch
from conftest import (
    FIXTURES,  # noqa: E402
    GOLDEN_F32,
    GOLDEN_F64,
    GOLDEN_F64_CHAIN,
    GOLDEN_SCAN_RECURSION,
    assert_golden,
)

from clarity_se.ear_model.envelope import convert_rms_to_sl, envelope_align, envelope_sl
from clarity_se.ear_model.group_delay import group_delay_compensate
from clarity_se.ear_model.ihc import inner_hair_cell_adaptation
from clarity_se.ear_model.noise import basilar_membrane_add_noise
from clarity_se.random import PairRandom

pytestmark = pytest.mark.golden
FIX = np.load(FIXTURES / "ear_back_stages.npz")


def t(x):
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def close(actual, expected, tol=GOLDEN_F64):
    """Fixture comparison, relative to the fixture's scale (tolerances: tests/conftest.py)."""
    assert_golden(actual, expected, tol)


def test_envelope_align_matches_reference():
    ref, out = inp.align_inputs()
    got = envelope_align(t(ref)[None], t(out)[None])[0]
    close(got, FIX["align_out"])
    # the known delays are recovered: output shifted back by d samples, zero fill
    for i, d in enumerate(inp.ALIGN_DELAYS):
        expected = np.zeros(700)
        if d >= 0:
            expected[: 700 - d] = out[i, d:]
        else:
            expected[-d:] = out[i, : 700 + d]
        # pure data movement of in-process inputs: exact
        np.testing.assert_array_equal(got[i].numpy(), expected)
    ref_s, out_s = inp.align_short_inputs()
    close(envelope_align(t(ref_s), t(out_s)), FIX["align_short_out"])


def test_envelope_align_lengths_equal_unpadded():
    ref, out = inp.align_inputs()
    ref_s, out_s = inp.align_short_inputs()
    pad = np.zeros((2, 700))
    pad[0] = ref[1]
    pad[1, :150] = ref_s[0]
    pad_o = np.zeros((2, 700))
    pad_o[0] = out[1]
    pad_o[1, :150] = out_s[0]
    pad_o[1, 150:] = 5.0  # garbage in the padding must be ignored
    got = envelope_align(t(pad), t(pad_o), lengths=torch.tensor([700, 150]))
    close(got[0], FIX["align_out"][1])
    close(got[1, :150], FIX["align_short_out"][0])
    assert float(got[1, 150:].abs().max()) == 0.0


def test_envelope_align_verified_float32_search_equals_float64_search():
    """verify_lags: float32 nominates, float64 decides -> the float64 search's lags."""
    ref, out = inp.align_inputs()
    got = envelope_align(t(ref)[None], t(out)[None], search_dtype=torch.float32, verify_lags=True)
    close(got[0], FIX["align_out"])
    # smooth envelopes (many near-equal lags), BM-like carriers, a silent band, short items
    gen = torch.Generator().manual_seed(3)
    n = 30000
    t_s = torch.arange(n, dtype=torch.float64) / 24000
    env = 1.0 + torch.sin(2 * torch.pi * 3 * t_s)[None].repeat(3, 1)
    env = env + 0.01 * torch.randn(3, n, generator=gen, dtype=torch.float64)
    bm = torch.sin(2 * torch.pi * 150 * t_s)[None] * torch.randn(3, n, generator=gen,
                                                                 dtype=torch.float64).cumsum(-1)
    x = torch.stack([torch.cat([env, bm, torch.zeros(1, n, dtype=torch.float64)])] * 2)
    y = torch.roll(x, 37, dims=-1) + 1e-3 * torch.randn(x.shape, generator=gen,
                                                       dtype=torch.float64)
    lengths = torch.tensor([n, 20000])
    exact = envelope_align(x, y, lengths=lengths)
    verified = envelope_align(x, y, lengths=lengths, search_dtype=torch.float32,
                              verify_lags=True)  # fmt: skip
    # both computed here; the float64 decision makes them the same lags and samples: exact
    torch.testing.assert_close(verified, exact, rtol=0, atol=0)


def test_envelope_sl_matches_reference():
    env, bm, attn = inp.envelope_sl_inputs()
    env_db, bm_sl = envelope_sl(t(env)[None], t(bm)[None], t(attn)[None], 65.0)
    close(env_db[0], FIX["sl_env_db"], GOLDEN_F64_CHAIN)
    close(bm_sl[0], FIX["sl_bm"], GOLDEN_F64_CHAIN)


@pytest.mark.parametrize("backend", ["numba", "scan"])
def test_ihc_adaptation_matches_reference(backend):
    env_db, bm = inp.ihc_inputs()
    out_db, out_bm = inner_hair_cell_adaptation(
        t(env_db)[None], t(bm)[None], 2, 24000.0, backend=backend
    )
    if backend == "numba":  # same operations in the same order as pyclarity's @njit loop
        close(out_db[0], FIX["ihc_db"])
        close(out_bm[0], FIX["ihc_bm"])
    else:
        close(out_db[0], FIX["ihc_db"], GOLDEN_SCAN_RECURSION)
        # silence (exact zeros in, state decaying) must keep the reference's clipped zeros
        silent = FIX["ihc_db"] == 0
        assert silent.sum() > 100
        assert float(out_db[0].numpy()[silent].max()) < 1e-9
        close(out_bm[0], FIX["ihc_bm"], GOLDEN_SCAN_RECURSION)


def test_ihc_lengths_and_float32():
    env_db, bm = inp.ihc_inputs()
    x = t(env_db)[None].repeat(2, 1, 1)
    b = t(bm)[None].repeat(2, 1, 1)
    x[1, :, 1000:] = 77.0
    out_db, _ = inner_hair_cell_adaptation(x, b, 2, 24000.0, lengths=torch.tensor([1500, 1000]))
    close(out_db[0], FIX["ihc_db"])
    close(out_db[1, :, :1000], FIX["ihc_db"][:, :1000])
    for backend in ("scan", "numba"):
        out32, bm32 = inner_hair_cell_adaptation(x.float(), b.float(), 2, 24000.0,
                                                 backend=backend)  # fmt: skip
        assert out32.dtype == torch.float32 and bm32.dtype == torch.float32
        close(out32[0].double(), FIX["ihc_db"], GOLDEN_F32)
    # envelope only (HASPI): the same envelope, rows interleaved four at a time or not
    env_only, none = inner_hair_cell_adaptation(x, None, 2, 24000.0,
                                                lengths=torch.tensor([1500, 1000]))  # fmt: skip
    assert none is None
    # both computed here by the same kernel, rows grouped differently: exact
    np.testing.assert_array_equal(env_only.numpy(), out_db.numpy())


def test_group_delay_compensate_matches_reference():
    bws = inp.group_delay_inputs()
    cf = t(FIX["gd_center_freq"])
    ramp = torch.arange(1.0, 1001.0, dtype=torch.float64).expand(2, 32, 1000).clone()
    got = group_delay_compensate(ramp, t(bws), cf, 24000.0)
    leading = (got == 0).sum(dim=-1).numpy()
    # integer delays (rounded group delays of fixed bandwidths, far from .5 ties): exact
    np.testing.assert_array_equal(leading, FIX["gd_correct"])
    for b in range(2):
        for c in range(32):
            k = FIX["gd_correct"][b, c]
            np.testing.assert_array_equal(got[b, c, k:].numpy(), np.arange(1.0, 1001.0 - k))


def test_convert_rms_to_sl_matches_reference():
    ref, ctl = inp.rms_sl_inputs()
    params = [np.stack([FIX[f"rms_{k}_{i}"] for i in range(2)])
              for k in ["attn_ohc", "low_knee", "cr", "attn_ihc"]]
    got = convert_rms_to_sl(t(ref), t(ctl), *[t(p) for p in params], 65.0)
    close(got, np.stack([FIX["rms_sl_0"], FIX["rms_sl_1"]]), GOLDEN_F64_CHAIN)


def test_basilar_membrane_add_noise_replays_reference_draws():
    base = torch.outer(torch.arange(4.0, dtype=torch.float64), torch.ones(50, dtype=torch.float64))
    rng = PairRandom.compat([7, 7])
    first = basilar_membrane_add_noise(base[None].repeat(2, 1, 1), -10, 65.0, rng)
    close(first[0], FIX["noise_first"])
    close(first[1], FIX["noise_first"])
    # second call, item 1 padded to 50 samples with lengths=30: same draws as an unpadded call
    padded = base[None].repeat(2, 1, 1)
    second = basilar_membrane_add_noise(padded, -10, 65.0, rng, lengths=[50, 30])
    close(second[1, :, :30], FIX["noise_second"])
    np.testing.assert_array_equal(second[1, :, 30:].numpy(), padded[1, :, 30:].numpy())
    with pytest.raises(ValueError):
        basilar_membrane_add_noise(base[None], -10, 65.0, rng)


def test_shift_rows_torch_and_numpy_paths_agree():
    from clarity_se.ear_model.envelope import shift_rows

    x = torch.arange(2 * 3 * 10, dtype=torch.float64).reshape(2, 3, 10) + 1
    delay = torch.tensor([[2, -3, 0], [11, -11, 9]])
    npts = torch.tensor([10, 7])
    fast = shift_rows(x, delay, npts)  # numpy views (CPU, no grad)
    slow = shift_rows(x.clone().requires_grad_(True), delay, npts)  # torch slices (CUDA path)
    torch.testing.assert_close(slow.detach(), fast, rtol=0, atol=0)
    np.testing.assert_array_equal(fast[0, 0].numpy(), np.r_[x[0, 0, 2:].numpy(), 0, 0])
    np.testing.assert_array_equal(fast[0, 1].numpy(), np.r_[0, 0, 0, x[0, 1, :7].numpy()])
    assert float(fast[1].abs().sum()) == 0.0  # shifts of at least the valid length: all zero
    out = torch.full_like(x, 7.0)
    assert shift_rows(x, delay, npts, out=out) is out
    torch.testing.assert_close(out, fast, rtol=0, atol=0)


@pytest.mark.parametrize("n_time, lags", [(5000, 100), (70001, 300), (3000, 100)])
def test_correlation_window_equals_full_correlation(n_time, lags):
    """Overlap-save (long signals) and single-FFT (short) paths equal scipy's correlation."""
    from scipy.signal import correlate

    from clarity_se.ear_model.envelope import correlation_window

    g = np.random.default_rng(n_time)
    x = g.standard_normal((2, n_time)).cumsum(-1) + 50.0  # positive, envelope-like
    y = np.roll(x, 37, -1) + g.standard_normal((2, n_time))
    got = correlation_window(torch.from_numpy(x), torch.from_numpy(y), lags).numpy()
    want = np.stack([
        correlate(a, b, mode="full", method="fft")[n_time - lags : n_time + lags]
        for a, b in zip(x, y, strict=True)
    ])
    assert got.shape == (2, 2 * lags)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())
    np.testing.assert_array_equal(got.argmax(-1), want.argmax(-1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ihc_vector_lanes_equal_scalar_rows(dtype):
    """Groups of 8 equal-length rows run as LLVM vector code: bit-identical to the scalar
    kernel on each row alone (a group with unequal lengths and the leftover rows stay scalar;
    the sample count is not a multiple of 8)."""
    from clarity_se.ear_model import ihc

    c = ihc.ihc_circuit_coefficients(2.0, 24000.0)
    consts = [c[k] for k in ("r_2", "p1", "p2", "a11", "a12", "a21", "a22", "denom", "r_1_inv")]
    rng = np.random.default_rng(7)
    rows, n = 19, 1005
    x = (rng.standard_normal((rows, n)) * 20 + 30).astype(dtype)
    x[:, 100:200] = -5.0  # clipped at 0 dB SL
    bm = rng.standard_normal((rows, n)).astype(dtype)
    lengths = np.full(rows, n, dtype=np.int64)
    lengths[9] = n - 3  # rows 8-15: unequal lengths, scalar path
    out, bm_out = ihc._ihc_rows(x, bm, *consts, lengths)
    for r in range(rows):
        one, one_bm = ihc._ihc_rows(x[r : r + 1].copy(), bm[r : r + 1].copy(), *consts,
                                    lengths[r : r + 1])  # fmt: skip
        np.testing.assert_array_equal(one[0], out[r])
        np.testing.assert_array_equal(one_bm[0], bm_out[r])
    env_only, _ = ihc._ihc_rows(x, np.zeros((0, 1), dtype=dtype), *consts, lengths)
    np.testing.assert_array_equal(env_only, out)
