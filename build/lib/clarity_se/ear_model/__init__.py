"""Batched PyTorch port of the Kates (2013) cochlear ear model used by HASPI v2 / HASQI v2.

One module per physiological stage (middle ear, gammatone filterbank, cochlear compression,
inner hair cell adaptation, envelope conversion, threshold noise) and an orchestrator
:func:`ear_model` in :mod:`clarity_se.ear_model.model`. The per-pair random streams it draws
from are :class:`clarity_se.random.PairRandom`.
"""

from clarity_se.ear_model.model import EarModelOutput, ear_model
from clarity_se.ear_model.noise import basilar_membrane_add_noise

__all__ = ["EarModelOutput", "basilar_membrane_add_noise", "ear_model"]
