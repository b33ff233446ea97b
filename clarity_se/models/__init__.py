"""Enhancement models and their registry (name -> class), used by self-describing checkpoints."""

from __future__ import annotations

from torch import nn

from clarity_se.models.conv_tasnet import CHANNEL_LAYOUT, MultichannelConvTasNet
from clarity_se.models.crced import CRCED, CRCEDHearingAid
from clarity_se.models.dtln import DTLN, DTLNHearingAid
from clarity_se.models.res_unet import RESUNet

#: Registry of model classes by the name stored in checkpoints.
MODELS: dict[str, type[nn.Module]] = {
    "convtasnet": MultichannelConvTasNet,
    "crced": CRCED,
    "crced_ha": CRCEDHearingAid,
    "dtln": DTLN,
    "dtln_ha": DTLNHearingAid,
    "res_unet": RESUNet,
}


def get_model_class(name: str) -> type[nn.Module]:
    """Model class registered under ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not registered (the message lists the known names).
    """
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}") from None


def model_name(model: nn.Module) -> str:
    """Registry name of a model instance (ValueError if its class is not registered)."""
    for name, cls in MODELS.items():
        if type(model) is cls:
            return name
    raise ValueError(f"model class {type(model).__name__} is not in the registry")


def build_model(name: str, **kwargs) -> nn.Module:
    """Instantiate the registered model ``name`` with constructor arguments ``kwargs``."""
    return get_model_class(name)(**kwargs)


__all__ = [
    "CHANNEL_LAYOUT",
    "CRCED",
    "CRCEDHearingAid",
    "DTLN",
    "DTLNHearingAid",
    "MODELS",
    "MultichannelConvTasNet",
    "RESUNet",
    "build_model",
    "get_model_class",
    "model_name",
]
