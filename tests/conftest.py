"""Shared test configuration: the tolerances for stored fixtures, set once here.

Why tolerances at all
---------------------
The golden fixtures under ``tests/fixtures/`` were produced by pyclarity 0.9.0 (or by this
package) on one machine. Floating-point results of the same code differ by a few units in the last
place (ULP) across CPUs (fused multiply-add, vector width), libm, FFT/BLAS builds and thread
counts. A comparison with a stored fixture therefore never asks for bit equality; it allows an
error that such differences can produce, with margin, and that a real bug (a wrong coefficient, an
off-by-one sample, a float32 cast) exceeds by orders of magnitude.

Bit equality stays where both sides are computed in the same process by two code paths that must
agree exactly by construction (a vector kernel against its scalar kernel, batched against one at a
time, resumed against uninterrupted); those tests say so where they compare.

All tolerances are *relative to the scale of the compared array* (``max |expected|``), unless the
name ends in ``_ABS`` (absolute, in the unit of the compared quantity) -- see
:func:`assert_golden`.

Environment
-----------
``CLARITY_SE_TEST_THREADS=N`` sets torch's intra-op thread count for the session (the golden pass
of ``.ci/run`` uses 1 and 2; the result of a summation can depend on it).
``NUMBA_CPU_NAME=generic`` (numba's own variable) compiles the kernels for a generic x86-64 target
(no FMA, no AVX): ``.ci/run`` runs the ``golden`` tests that way too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

#: tests/, its fixtures, the scripts that made the goldens, and the repository root. The test
#: files live in sub-folders that mirror the package (tests/ear_model/ for clarity_se/ear_model/);
#: the shared helpers (``_cec2_tree``, ``enhancer_contract``, ...) and the golden-input scripts
#: are importable from all of them.
TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures"
GOLDEN_SCRIPTS = TESTS / "golden"
REPO = TESTS.parent
for _path in (TESTS, GOLDEN_SCRIPTS):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# -- float64 faithful ports ------------------------------------------------------------------
#: Stages that run the reference's arithmetic in float64 (centre frequencies, loss parameters,
#: middle ear, direct-form filters, envelope alignment, IHC adaptation, level conversions).
#: Observed differences: 0 on the machine that made the fixtures, up to 1.1e-15 relative
#: (7.1e-14 dB on 60 dB values; 2.2e-16 on unit-scale envelopes) on an AMD EPYC with FMA. A
#: 1e-12 bound leaves three orders of margin; a wrong coefficient or sample is >= 1e-6.
GOLDEN_F64 = 1e-12
#: float64 recursions and multi-stage chains where rounding is amplified by the recursion
#: (the 44.1 kHz RMS-matching IIR pair, polyphase conv1d with another summation order,
#: the ear model's back end through several stages). Observed up to ~5e-15.
GOLDEN_F64_CHAIN = 1e-10
#: Gammatone bands: the level-adjusted bandwidth comes from a torch RMS (another summation order
#: than numpy's pairwise mean, so the last bit can differ) and the reference's direct-form filter
#: with a 4-fold pole near z = 1 turns a 1-ulp bandwidth change into ~2e-10 relative change of the
#: 80 Hz band (observed 1.8e-10).
GOLDEN_GAMMATONE = 2e-9
#: The torch-native gammatone (exact cascade of four one-pole sections) against scipy's direct
#: form, which itself carries rounding errors up to ~5e-8 relative in the 80 Hz band.
GOLDEN_SCAN = 1e-6
#: Closed-form carriers against the reference's rotation recursion after 5 s.
GOLDEN_DRIFT = 1e-9

#: The IHC adaptation as a parallel scan (associative recombination of the recursion) against
#: the reference's sequential loop: reassociation errors accumulate over the signal (observed
#: ~1e-12 relative on the dB output, ~1e-10 on the BM output).
GOLDEN_SCAN_RECURSION = 1e-9
#: float32 paths against float64 fixtures: float32 epsilon is 1.2e-7; through a recursion of a
#: few thousand steps the relative error stays below ~1e-6 (observed ~2e-7).
GOLDEN_F32 = 1e-5

# -- amplification (absolute, in signal units of full scale 1) ---------------------------------
#: NAL-R FIR taps against pyclarity (firwin2 design; float64).
GOLDEN_FIR_ABS = 1e-10
#: Compressor output (float64 recursion over a whole signal).
GOLDEN_COMPRESSOR_ABS = 1e-9
#: Hearing-aid output written as a float32 WAV: float32 rounding (6e-8 of full scale) plus margin.
GOLDEN_PAIR_ABS = 1e-6

# -- metrics (absolute, in score units 0..1) ---------------------------------------------------
#: HASPI/HASQI back-end functions on fixed ear-model outputs (float64).
GOLDEN_BACKEND_ABS = 1e-9
#: A whole score through the ear model against pyclarity, compat mode: what this package aims
#: for per pair (observed below 1e-7).
GOLDEN_SCORE_AIM_ABS = 1e-6
#: The contract with users: per-pair compat scores within 1e-4 of the official recipe.
GOLDEN_SCORE_ABS = 1e-4

#: The whole ear model against pyclarity when a signal is resampled on the way in (44.1 kHz or
#: other rates to 24 kHz): the polyphase resampler sums in another order and the gammatone's
#: poles near z = 1 amplify it (observed ~1e-9 relative).
GOLDEN_EAR_RESAMPLED = 1e-7
#: Whole ``clarity-se evaluate`` compat scores against the official recipe run on the same tree
#: (same noise draws, float64; observed ~1e-9).
GOLDEN_STAGE_SCORE_ABS = 1e-6
#: float32 compat scores against pyclarity's seeds: float32 ear model (observed ~1e-4).
GOLDEN_F32_SCORE_ABS = 5e-4
#: AECMOS (onnxruntime float32 network): its log-mel features and MOS against speechmos's.
GOLDEN_AECMOS_FEATURES_ABS = 1e-4
GOLDEN_AECMOS_MOS_ABS = 1e-3
#: 16-bit PCM from float: a last-bit change of the float can move a sample across a rounding
#: boundary, one least significant bit.
GOLDEN_PCM_LSB = 1

# -- streaming -----------------------------------------------------------------------------------
#: Block-by-block output against whole-signal output (float32 models, different reduction
#: orders): the project's streaming contract.
STREAM_TOL = 1e-5
#: The same float32 function computed in one process by two layouts of the same weights (e.g. a
#: mask layer widened from one source to two: other GEMM blocking, other summation order).
REORDER_TOL = 1e-5
#: One float64 linear-algebra result computed two ways in one process (e.g. a compiled Cholesky
#: solve against ``np.linalg.solve``'s LU, other summation orders): rounding (~1e-16) amplified
#: by the condition number of the loaded covariance (at most ~6e6 with the MVDR's 1e-6 loading;
#: observed 1.2e-10 relative to the output's largest value, on a scene with a silent start;
#: the online WPE's packed recursive least squares against full complex matrices: 3e-14).
FACTORISATION_TOL = 1e-8
#: Whole ``clarity-se evaluate`` scores (float64) of the same pairs computed in other processes
#: (spawned workers, a killed and resumed run, Dask workers) whose thread counts differ
#: (``OMP_NUM_THREADS``): reduction order changes the last digits (observed: the 16th
#: significant digit). Far below any score difference that matters (1e-4).
PROCESS_SCORE_ABS = 1e-9
#: The mixer's float32 training items rendered in another process of the same run (a
#: ``DataLoader`` worker, which torch limits to one thread): the same numpy/scipy calls, whose
#: FFT and BLAS reductions may take another order with another thread count, a few float32 ulps
#: of items of unit scale (observed: equal); another epoch's draw differs by more than 100 times it.
PROCESS_ITEM_ABS = 1e-6


def assert_golden(actual, expected, tol: float, *, absolute: bool = False, err_msg: str = ""):
    """Assert ``actual`` equals a stored fixture ``expected`` within ``tol``.

    Parameters
    ----------
    actual : array_like or torch.Tensor
        Computed values (a tensor is moved to the CPU and converted).
    expected : array_like
        The fixture, same shape.
    tol : float
        One of this module's ``GOLDEN_*`` tolerances.
    absolute : bool
        False: ``tol`` is relative to ``max |expected|`` (the ``GOLDEN_*`` without ``_ABS``);
        True: ``tol`` is absolute (the ``*_ABS`` ones).
    err_msg : str
        Added to the failure message.

    Raises
    ------
    AssertionError
        When a value differs by more than the tolerance, or the shapes differ.
    """
    if hasattr(actual, "detach"):
        actual = actual.detach().cpu().numpy()
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape} {err_msg}"
    scale = 1.0 if absolute else float(np.max(np.abs(expected), initial=0.0)) + 1e-300
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tol * scale, err_msg=err_msg)


def pytest_configure(config):
    """Register the ``golden`` marker and apply ``CLARITY_SE_TEST_THREADS``."""
    config.addinivalue_line(
        "markers", "golden: compares with fixtures made elsewhere (run again by .ci/run under "
        "NUMBA_CPU_NAME=generic and other thread counts)"
    )
    threads = os.environ.get("CLARITY_SE_TEST_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))

