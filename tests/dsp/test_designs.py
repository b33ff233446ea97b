"""Cached scipy.signal filter designs: bit-identical, persisted, robust to a bad cache."""

import json

import numpy as np
import pytest
import scipy.signal

from clarity_se.dsp import designs


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CLARITY_SE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(designs, "_memory", None)
    return tmp_path


CASES = [
    ("butter", (1, 800 / 12000), {}),
    ("butter", (2, 350 / 12000, "high"), {}),
    ("cheby2", (7, 30, 21 / 44), {}),
    ("firwin", (8821, 1 / 441), {"window": ("kaiser", 5.0)}),
    ("firwin", (31, (0.1, 0.2)), {"window": "hann", "pass_zero": "bandpass"}),
    ("tf2sos", ((1.0, 2.0, 1.0, 0.5), (1.0, -0.5, 0.25, -0.1)), {}),
    ("windows.hamming", (257,), {}),
]


@pytest.mark.parametrize("name,args,kwargs", CASES)
def test_designs_equal_scipy_and_persist(cache_dir, name, args, kwargs):
    func = scipy.signal
    for part in name.split("."):
        func = getattr(func, part)
    expected = func(*args, **kwargs)
    first = designs.scipy_design(name, *args, **kwargs)
    designs._memory = None  # a new process: read back from disk
    second = designs.scipy_design(name, *args, **kwargs)
    assert (cache_dir / "filter_designs.json").is_file()
    for got in (first, second):
        if isinstance(expected, tuple):
            assert isinstance(got, tuple) and len(got) == len(expected)
            for g, e in zip(got, expected, strict=True):
                assert np.array_equal(g, e) and g.dtype == np.float64
        else:
            assert np.array_equal(got, expected) and got.shape == expected.shape
    second_again = designs.scipy_design(name, *args, **kwargs)
    np.asarray(second_again if not isinstance(second_again, tuple) else second_again[0])[...] = 0
    # callers get fresh arrays: zeroing one does not corrupt the cache
    again = designs.scipy_design(name, *args, **kwargs)
    ref = expected if not isinstance(expected, tuple) else expected[0]
    assert np.array_equal(again if not isinstance(again, tuple) else again[0], ref)


def test_corrupt_or_disabled_cache_falls_back(cache_dir, monkeypatch):
    (cache_dir / "filter_designs.json").write_text("{not json")
    b, a = designs.scipy_design("butter", 1, 0.1)
    assert np.array_equal(b, scipy.signal.butter(1, 0.1)[0])
    assert json.loads((cache_dir / "filter_designs.json").read_text())  # rewritten
    monkeypatch.setenv("CLARITY_SE_CACHE_DIR", "")
    monkeypatch.setattr(designs, "_memory", None)
    assert designs.cache_path() is None
    assert np.array_equal(designs.scipy_design("butter", 1, 0.2)[1], scipy.signal.butter(1, 0.2)[1])
    with pytest.raises(ValueError, match="lfilter"):
        designs.scipy_design("lfilter", [1.0], [1.0], [0.0])


@pytest.mark.parametrize("n", [240, 384, 385, 441])
def test_window_correlation_equals_scipy(n):
    """HASQI's BM-covariance window normalisation (np.correlate) equals the reference's call."""
    w = np.hanning(n)
    assert np.array_equal(np.correlate(w, w, "full"), scipy.signal.correlate(w, w, "full"))
