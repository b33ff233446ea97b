"""Golden AECMOS values from speechmos' own ``aecmos.py`` (needs librosa; not run by the tests).

Writes ``tests/fixtures/aecmos_golden.npz``: the speechmos/librosa mel features of one signal
and speechmos' echo / degradation MOS of three (loopback, mic, enhanced, talk type) cases, all
built from :func:`aecmos_inputs` (seeded, recomputed by ``tests/metrics/test_aec_metrics.py``).
Run once with librosa importable::

    PYTHONPATH=$PWD:<librosa> python tests/golden/make_aecmos_golden.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests._aec_tree import speech_like

OUT = Path(__file__).resolve().parents[1] / "fixtures" / "aecmos_golden.npz"
CASES = ("st", "dt", "nst")


def aecmos_inputs(talk_type: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(loopback, mic, enhanced), float32, 1.5 s at 16 kHz, for one talk type."""
    far = np.concatenate([speech_like(1, 1.2, 120), speech_like(2, 0.3, 150)]) * 0.6
    near = np.concatenate([speech_like(3, 0.3, 210), speech_like(4, 1.2, 190)]) * 0.4
    echo = 0.5 * np.convolve(far, np.exp(-np.arange(200) / 20.0) * np.cos(np.arange(200)))[
        : far.size] / 4
    if talk_type == "st":
        lpb, mic, enh = far, echo, 0.1 * echo
    elif talk_type == "dt":
        lpb, mic, enh = far, echo + near, near + 0.2 * echo
    else:
        lpb, mic, enh = np.zeros_like(near), near, 0.9 * near
    return tuple(np.clip(s, -1, 1).astype(np.float32) for s in (lpb, mic, enh))


def main() -> None:
    from speechmos import aecmos

    model = aecmos.AECMOS("aecmos_16kHz")
    lpb, mic, enh = aecmos_inputs("dt")
    features = model._mel_transform(mic, 16000).astype(np.float32)
    scores = np.array([model({"lpb": lp, "mic": m, "enh": e}, t)[k]
                       for t in CASES for (lp, m, e) in [aecmos_inputs(t)]
                       for k in ("echo_mos", "deg_mos")]).reshape(len(CASES), 2)
    np.savez_compressed(OUT, features=features, scores=scores)
    print(OUT, features.shape, scores)


if __name__ == "__main__":
    main()
