"""Batched PyTorch port of the Kates (2013) cochlear ear model used by HASPI v2 / HASQI v2.

One module per physiological stage (middle ear, gammatone filterbank, cochlear compression,
inner hair cell adaptation, envelope conversion), an orchestrator :func:`ear_model` in
:mod:`clarity_se.ear_model.model`, and per-pair random streams in :mod:`clarity_se.ear_model.noise`.
"""

from clarity_se.ear_model.noise import PairRandom, scene_seed

__all__ = ["PairRandom", "scene_seed"]
