"""clarity_se: hearing-aid speech enhancement for the Clarity CEC2 / ICASSP 2023 challenge.

Stages (each reads and writes a manifest):

1. ``scenes``   -- :mod:`clarity_se.data` (CEC2 loader, demo renderer, manifests)
2. ``enhance``  -- :mod:`clarity_se.models` (causal multi-channel Conv-TasNet, uPIT)
3. ``amplify``  -- :mod:`clarity_se.amplification` (NAL-R, Clarity compressor)
4. ``evaluate`` -- :mod:`clarity_se.ear_model`, :mod:`clarity_se.metrics` (HASPI v2, HASQI v2)
5. ``report``   -- :mod:`clarity_se.stages` (CSVs, HTML report, submission)
"""

__version__ = "0.1.0"
