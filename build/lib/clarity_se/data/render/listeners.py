"""The Bisgaard et al. (2010) standard audiograms as CEC2 listeners.

Ten standard audiograms chosen by vector quantisation of 28,244 clinical audiograms for the
IEC 60118-15 hearing-aid measurement procedure: N1-N7 flat and moderately sloping (very mild
to profound), S1-S3 steep sloping (very mild to moderate/severe). Values (dB HL) are Table 1
of the paper, at its ten frequencies; both ears get the same audiogram (the standard
audiograms are symmetric by construction).

=====  ====  ====  ====  ====  =====  =====  =====  =====  =====  =====
Hz     250   375   500   750   1000   1500   2000   3000   4000   6000
=====  ====  ====  ====  ====  =====  =====  =====  =====  =====  =====
N1     10    10    10    10    10     10     15     20     30     40
N2     20    20    20    22.5  25     30     35     40     45     50
N3     35    35    35    35    40     45     50     55     60     65
N4     55    55    55    55    55     60     65     70     75     80
N5     65    67.5  70    72.5  75     80     80     80     80     80
N6     75    77.5  80    82.5  85     90     90     95     100    100
N7     90    92.5  95    100   105    105    105    105    105    105
S1     10    10    10    10    10     10     15     30     55     70
S2     20    20    20    22.5  25     35     55     75     95     95
S3     30    30    35    47.5  60     70     75     80     80     85
=====  ====  ====  ====  ====  =====  =====  =====  =====  =====  =====

The table has no 8 kHz value (CEC2 listeners have one): consumers resample with
:meth:`clarity_se.data.audiogram.Audiogram.resample`, which (like pyclarity) holds the last
value beyond 6 kHz.

References
----------
N. Bisgaard, M. S. M. G. Vlaming and M. Dahlquist, "Standard audiograms for the IEC 60118-15
measurement procedure", Trends in Amplification 14(2), 113-120 (2010), Table 1.
"""

from __future__ import annotations

import numpy as np

from clarity_se.data.audiogram import Audiogram, Listener

BISGAARD_FREQUENCIES_HZ = (250, 375, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000)
BISGAARD_LEVELS_DB_HL: dict[str, tuple[float, ...]] = {
    "N1": (10, 10, 10, 10, 10, 10, 15, 20, 30, 40),
    "N2": (20, 20, 20, 22.5, 25, 30, 35, 40, 45, 50),
    "N3": (35, 35, 35, 35, 40, 45, 50, 55, 60, 65),
    "N4": (55, 55, 55, 55, 55, 60, 65, 70, 75, 80),
    "N5": (65, 67.5, 70, 72.5, 75, 80, 80, 80, 80, 80),
    "N6": (75, 77.5, 80, 82.5, 85, 90, 90, 95, 100, 100),
    "N7": (90, 92.5, 95, 100, 105, 105, 105, 105, 105, 105),
    "S1": (10, 10, 10, 10, 10, 10, 15, 30, 55, 70),
    "S2": (20, 20, 20, 22.5, 25, 35, 55, 75, 95, 95),
    "S3": (30, 30, 35, 47.5, 60, 70, 75, 80, 80, 85),
}


def bisgaard_listeners() -> dict[str, Listener]:
    """The ten Bisgaard standard listeners, named ``N1``..``N7``, ``S1``..``S3``.

    Returns
    -------
    dict of str to Listener
        Same audiogram (dB HL at ``BISGAARD_FREQUENCIES_HZ``) for both ears.

    References
    ----------
    Bisgaard, Vlaming & Dahlquist (2010), Table 1.
    """
    freqs = np.array(BISGAARD_FREQUENCIES_HZ, dtype=np.float64)
    out = {}
    for name, levels in BISGAARD_LEVELS_DB_HL.items():
        gram = Audiogram(freqs, np.array(levels, dtype=np.float64), name=name)
        out[name] = Listener(name, gram, gram)
    return out
