"""``clarity_se.models.onnx_stream`` FFT helpers: scipy.fft's numbers on both paths (the private
pocketfft calls where scipy ships them, the public functions otherwise)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
from conftest import REORDER_TOL

from clarity_se.models import onnx_stream


@pytest.fixture(params=["private", "public"])
def fft_path(request, monkeypatch):
    if request.param == "public":
        monkeypatch.setattr(onnx_stream, "_r2c", None)
        monkeypatch.setattr(onnx_stream, "_c2r", None)
    return request.param


def test_rfft_irfft_and_plans_match_scipy(fft_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 192)).astype(np.float32)
    ref = scipy.fft.rfft(x, axis=1)
    np.testing.assert_allclose(onnx_stream.rfft(x, axis=1), ref, atol=REORDER_TOL)
    out = np.empty((5, 97), np.complex64)
    plan = onnx_stream.rfft_plan(x, out, axis=1)
    x[...] = rng.standard_normal(x.shape)  # the plan reads the array as it is at the call
    assert plan() is out
    np.testing.assert_allclose(out, scipy.fft.rfft(x, axis=1), atol=REORDER_TOL)
    frames = np.empty((5, 192), np.float32)
    iplan = onnx_stream.irfft_plan(out, 192, frames, axis=1)
    assert iplan() is frames
    np.testing.assert_allclose(frames, x, atol=REORDER_TOL)
    np.testing.assert_allclose(onnx_stream.irfft(out, 192, axis=1), x, atol=REORDER_TOL)
    # along the first axis too
    y = np.ascontiguousarray(x.T)
    np.testing.assert_allclose(onnx_stream.rfft(y, axis=0), scipy.fft.rfft(y, axis=0),
                               atol=REORDER_TOL)


def test_private_path_is_used_only_when_it_works():
    assert onnx_stream._private_fft_works() == (onnx_stream._r2c is not None)
