"""Batched PyTorch port of the Kates (2013) cochlear ear model used by HASPI v2 / HASQI v2.

One module per physiological stage (middle ear, gammatone filterbank, cochlear compression,
inner hair cell adaptation, envelope conversion), an orchestrator :func:`ear_model` in
:mod:`clarity_se.ear_model.model`, and per-pair random streams in :mod:`clarity_se.ear_model.noise`.
"""

from clarity_se.ear_model.model import EarModelOutput, ear_model
from clarity_se.ear_model.noise import PairRandom, basilar_membrane_add_noise, scene_seed

__all__ = ["EarModelOutput", "PairRandom", "basilar_membrane_add_noise", "ear_model", "scene_seed"]
