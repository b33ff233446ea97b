"""Inputs of the HASPI whole-metric golden cases, shared by the golden scripts and the tests.

Pure numpy (importable from the pyclarity oracle venv and from the project venv): the stored
speech/interferer clips (``tests/fixtures/haspi_clips_*.npz``) and the mixing recipe that turns a
case of ``haspi_whole.json`` into the four better-ear signals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FIX = Path(__file__).resolve().parents[1] / "fixtures"


def clips(sr: int) -> dict[str, np.ndarray]:
    """The int16 clips at ``sr`` Hz (16000 or 44100), keyed by name (``speech``, interferers)."""
    if sr == 16000:
        return dict(np.load(FIX / "haspi_clips_16k.npz"))
    return {**np.load(FIX / "haspi_clips_44k_a.npz"), **np.load(FIX / "haspi_clips_44k_b.npz")}


def mix(clip: dict, case: dict) -> dict[str, np.ndarray]:
    """Reference/processed signals of one case: speech vs interferer at ``case['snr_db']``.

    The right ear gets the speech delayed by ``case['delay_right']`` samples and scaled by 0.8,
    and the time-reversed interferer 1.4 times louder (so the two ears differ).
    """
    tgt = clip["speech"].astype(np.float64) / 32768.0
    intf = clip[case["interferer"]].astype(np.float64) / 32768.0
    g = np.sqrt(np.mean(tgt**2) / np.mean(intf**2)) * 10.0 ** (-case["snr_db"] / 20.0)
    d = case["delay_right"]
    ref_l = tgt
    ref_r = 0.8 * np.concatenate([np.zeros(d), tgt[: len(tgt) - d]])
    return {
        "reference_left": ref_l,
        "reference_right": ref_r,
        "processed_left": ref_l + g * intf,
        "processed_right": ref_r + 1.4 * g * intf[::-1],
    }
