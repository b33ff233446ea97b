"""``enhancer.name=crced``: the CR-CED enhancers (Park & Lee 2017), two variants.

* ``enhancer.variant=""`` (default): the hearing-aid variant
  (:class:`~clarity_se.models.crced.CRCEDHearingAid`): the six microphones at 44.1 kHz on the
  low-delay STFT, both ears' masks from one network, **191 samples = 4.33 ms** look-ahead
  (within the Clarity 5 ms), 18 k parameters, 0.28 GMAC per second of audio. Shipped
  checkpoint ``clarity_se/assets/checkpoints/crced.pt``. By default (``enhancer.residual_source``
  empty or ``mvdr``) its estimate drives the MVDR beamformer of
  :mod:`clarity_se.enhancers.beamformed`, whose output is the enhancer's (latency unchanged);
  ``residual_source=mixture`` gives the network's own output.
* ``enhancer.variant=published``: the published 16 kHz CR-CED
  (:class:`~clarity_se.models.crced.CRCED`) run once per ear on the front microphone pair,
  resampled 44.1 -> 16 -> 44.1 kHz; look-ahead the resamplers' plus the 256-sample window's,
  **757 samples = 17.2 ms at 44.1 kHz** (:func:`~clarity_se.enhancers.dtln.chained_latency`),
  over the Clarity limit: a reference point. No shipped checkpoint: give
  ``enhancer.checkpoint`` (a ``crced`` checkpoint from
  ``clarity-se train -c recipes/icassp_2023/crced/config_published.yaml``).

The adapter is the DTLN one (:class:`~clarity_se.enhancers.dtln.DTLNEnhancer`: the same
``[batch, 6, time] -> [batch, 2, time]`` model interface, the same block streamer with carried
state, equal to the whole-signal output within 1e-5).
"""

from __future__ import annotations

from typing import Any

from clarity_se.enhancers import register_enhancer
from clarity_se.enhancers.dtln import DTLNEnhancer

#: enhancer.variant -> (model registry name, packaged checkpoint name)
VARIANTS = {"": ("crced_ha", "crced"), "published": ("crced", "crced_published")}
#: ``enhancer.residual_source`` when empty, per variant: the hearing-aid CR-CED's estimate
#: drives the MVDR beamformer (recipe README, "The MVDR residual"); the published one cannot
#: (17.2 ms look-ahead)
DEFAULT_RESIDUAL_SOURCE = {"": "mvdr", "published": "mixture"}


class CRCEDEnhancer(DTLNEnhancer):
    """Run a CR-CED checkpoint: ``mixture [6, time] -> [2, time]`` at 44.1 kHz.

    Parameters
    ----------
    checkpoint : str
        Checkpoint path; ``""`` is the packaged checkpoint of the variant.
    variant : {"", "published"}
        ``""``: hearing-aid variant (``crced_ha`` model); ``"published"``: 16 kHz CR-CED per ear.
    device : str
        ``cpu`` or ``cuda[:N]``.

    Notes
    -----
    ``block_samples``: one hop, 96 samples (published: 64 at 16 kHz = 177 at 44.1 kHz).

    Raises
    ------
    ValueError
        Unknown variant, missing/bad checkpoint (the published variant has no packaged one), a
        checkpoint of another model than the variant needs, or CUDA requested but absent.
    """

    name = "crced"
    variants = VARIANTS


@register_enhancer("crced")
def _build(options: Any):
    from clarity_se.enhancers.beamformed import apply_residual_source, mvdr_options

    enhancer = CRCEDEnhancer(str(options.checkpoint), str(options.variant or ""),
                             str(options.device))
    source = str(options.get("residual_source") or DEFAULT_RESIDUAL_SOURCE[enhancer.variant])
    return apply_residual_source(enhancer, source, mvdr_options(options))
