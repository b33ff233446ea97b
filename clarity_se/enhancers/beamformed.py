"""``enhancer.residual_source=mvdr`` for the DTLN and CR-CED enhancers (the hearing-aid variants'
default): their estimate drives the causal binaural MVDR beamformer
(:class:`clarity_se.dsp.mvdr.EstimateMVDR`), whose output replaces theirs.

The network's two-ear estimate only weights the six microphones' covariances; what comes out is
a linear filter of the microphones, without the network's separation artefacts. The latency is
the beamformer's 191 samples (4.33 ms) provided that the network's own look-ahead is within the
beamformer's lag (191 samples): true of the hearing-aid variants (191), not of the 16 kHz
published ones (refused). The Conv-TasNet enhancer has the same option with a mix
(``enhancer.residual_mix``, :mod:`clarity_se.enhancers.convtasnet`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clarity_se.dsp.mvdr import EstimateMVDR, mvdr
from clarity_se.enhancers.base import SAMPLE_RATE, BlockStreamer, Enhancer, check_mixture

#: ``enhancer.mvdr.*`` keys, passed to :class:`EstimateMVDR` when set
MVDR_OPTIONS = ("tau_s", "rtf", "reference_mix", "wpe_taps", "wpe_stride", "wpe_tau_s",
                "wpe_update_every", "wpe_max_hz", "wpe_guided", "postfilter_tau_s",
                "postfilter_floor", "estimate_gain_db")
#: the enhancers' beamformer options where ``enhancer.mvdr.*`` is empty: the beamformer's
#: defaults plus the online WPE dereverberation of its outputs with 16 taps per ear on the bins
#: up to 8 kHz (each chosen under a rule fixed before scoring, for the Conv-TasNet, DTLN and
#: CR-CED alike: ``recipes/icassp_2023/convtasnet/README.md``, "Dereverberation of the
#: outputs" and "The WPE's band")
ENHANCER_DEFAULTS = {"wpe_taps": 16, "wpe_max_hz": 8000.0}


def _mvdr_node(options: Any) -> Any:
    """The ``enhancer.mvdr`` node of ``options`` (``None`` where there is none)."""
    return options.get("mvdr") if hasattr(options, "get") else None


def mvdr_options(options: Any, defaults: dict | None = None) -> dict:
    """The enhancer's beamformer options as :class:`EstimateMVDR` keyword arguments: the
    ``enhancer.mvdr.*`` options that are set, over ``defaults``, over
    :data:`ENHANCER_DEFAULTS` (what none of them sets keeps the beamformer's default).

    Parameters
    ----------
    options : DictConfig or dict
        The ``enhancer.*`` node (:class:`clarity_se.config.EnhancerConfig`).
    defaults : dict, optional
        The enhancer's own defaults (e.g. the DTLN's 1 s time constant).

    Returns
    -------
    dict
        ``{name: value}`` with keys of :data:`MVDR_OPTIONS` (``tau_s`` in s, ``rtf``,
        ``reference_mix`` in ``[0, 1]``, ``wpe_taps``, ``wpe_stride`` in frames, ``wpe_tau_s``
        in s, ``wpe_update_every`` in frames, ``wpe_max_hz`` in Hz, ``wpe_guided``,
        ``postfilter_tau_s`` in s, ``postfilter_floor``, ``estimate_gain_db`` in dB).

    Raises
    ------
    ValueError
        A value :class:`EstimateMVDR` refuses (the message names ``enhancer.mvdr``).
    """
    node = _mvdr_node(options)
    kwargs = {**ENHANCER_DEFAULTS, **(defaults or {}),
              **{k: node.get(k) for k in MVDR_OPTIONS if node and node.get(k) is not None}}
    try:
        EstimateMVDR(6, SAMPLE_RATE, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"enhancer.mvdr: {exc}") from exc
    return kwargs


def raw_estimate(options: Any, default: bool) -> bool:
    """``enhancer.mvdr.raw_estimate``, or ``default`` when empty or absent."""
    node = _mvdr_node(options)
    value = node.get("raw_estimate") if node else None
    return default if value is None else bool(value)


class BeamformedEnhancer:
    """Wrap an enhancer: ``mixture [6, time] -> MVDR(mixture, inner(mixture)) [2, time]``.

    Parameters
    ----------
    inner : Enhancer
        Any enhancer whose output is an estimate of the target at the front microphones.
    beamformer_options : dict, optional
        Keyword arguments of :class:`EstimateMVDR` (:func:`mvdr_options`).

    Raises
    ------
    ValueError
        ``inner``'s look-ahead exceeds what the beamformer's lag covers
        (:attr:`EstimateMVDR.max_estimate_latency`).
    """

    def __init__(self, inner: Enhancer, beamformer_options: dict | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.beamformer_options = dict(beamformer_options or {})
        probe = EstimateMVDR(6, SAMPLE_RATE, **self.beamformer_options)
        self._latency = probe.latency_with(int(inner.latency_samples),
                                           f"enhancer.residual_source=mvdr: {inner.name}")

    @property
    def latency_samples(self) -> int:
        """Look-ahead at 44.1 kHz, samples: the larger of the inner enhancer's and 191."""
        return self._latency

    def __getattr__(self, name: str):
        """Other attributes (``model``, ``variant``, ``block_samples``, ...) are the inner
        enhancer's."""
        if name == "inner":  # not yet set (copying, unpickling)
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __call__(self, mixture: np.ndarray) -> np.ndarray:
        """Enhance ``mixture [6, time]`` -> ``[2, time]`` float32."""
        mixture = check_mixture(mixture)
        return mvdr(mixture, self.inner(mixture), **self.beamformer_options)

    def streamer(self) -> BlockStreamer:
        """The inner enhancer's streamer feeding the beamformer's."""
        return _BeamformedStreamer(self)

    def diagnostics(self) -> dict:
        """The inner enhancer's."""
        return self.inner.diagnostics()


class _BeamformedStreamer:
    """:class:`~clarity_se.enhancers.base.BlockStreamer` of :class:`BeamformedEnhancer`."""

    def __init__(self, enhancer: BeamformedEnhancer) -> None:
        self.inner = enhancer.inner.streamer()
        self.beamformer = EstimateMVDR(6, SAMPLE_RATE, **enhancer.beamformer_options)

    def reset(self) -> None:
        """Forget all state (start a new signal)."""
        self.inner.reset()
        self.beamformer.reset()

    def process(self, block: np.ndarray) -> np.ndarray:
        """Feed ``block [6, n]``; return the output samples ``[2, m]`` that are final.

        Raises
        ------
        ValueError
            A block that is not ``[6, n]`` finite audio.
        """
        block = check_mixture(block, "block")
        return self.beamformer.process(block, self.inner.process(block))

    def flush(self) -> np.ndarray:
        """End of signal: the remaining output ``[2, m]`` (totals equal the input length)."""
        head = self.beamformer.process(np.zeros((6, 0), np.float32), self.inner.flush())
        return np.concatenate([head, self.beamformer.flush()], axis=1)


def apply_residual_source(enhancer: Enhancer, residual_source: str,
                          beamformer_options: dict | None = None) -> Enhancer:  # fmt: skip
    """``enhancer.residual_source`` for enhancers without a residual mix (DTLN, CR-CED).

    Parameters
    ----------
    enhancer : Enhancer
    residual_source : {"mixture", "mvdr"}
        ``mixture`` (default): the enhancer unchanged; ``mvdr``: wrapped in
        :class:`BeamformedEnhancer`.
    beamformer_options : dict, optional
        The beamformer's keyword arguments (:func:`mvdr_options`).

    Raises
    ------
    ValueError
        Another value, or (``mvdr``) a look-ahead the beamformer does not cover.
    """
    if residual_source == "mixture":
        return enhancer
    if residual_source == "mvdr":
        return BeamformedEnhancer(enhancer, beamformer_options)
    raise ValueError(f"enhancer.residual_source must be 'mixture' or 'mvdr', got "
                     f"{residual_source!r}")  # fmt: skip
