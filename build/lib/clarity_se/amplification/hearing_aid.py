"""The recipe's hearing aid: per ear NAL-R, then the RMS compressor, then a tanh soft clip.

Equal to the ``amplify_signal`` + ``np.tanh`` steps of pyclarity 0.9.0's
``recipes/icassp_2023/baseline/evaluate.py`` (tested to 1e-6 on the written float32 WAV).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from clarity_se.amplification.compressor import Compressor
from clarity_se.amplification.nalr import apply_fir, design_nalr_fir
from clarity_se.data.audiogram import Listener

logger = logging.getLogger(__name__)

#: The recipe's ``nalr.*`` defaults.
DEFAULT_NALR = {"nfir": 220, "sample_rate": 44100}


def _nalr_params(nalr_cfg: Mapping[str, Any] | None) -> tuple[int, int]:
    cfg = dict(DEFAULT_NALR)
    if nalr_cfg is not None:
        unknown = set(dict(nalr_cfg)) - set(cfg)
        if unknown:
            raise ValueError(f"nalr: unknown keys {sorted(unknown)}")
        cfg.update(dict(nalr_cfg))
    return int(cfg["nfir"]), int(cfg["sample_rate"])


def amplify(
    signal: np.ndarray | torch.Tensor,
    listener: Listener | Sequence[Listener],
    *,
    nalr_cfg: Mapping[str, Any] | None = None,
    compressor_cfg: Mapping[str, Any] | Compressor | None = None,
    soft_clip: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Amplify a binaural signal for a listener (or a batch for a list of listeners).

    Parameters
    ----------
    signal : np.ndarray or torch.Tensor [shape=(time, 2) or (batch, time, 2)]
        Time-major stereo, left then right, exactly as the WAV is read (the official recipe's
        ``wavfile.read`` layout). Linear samples, full scale 1.0 for float WAVs; raw int16 values
        are accepted and processed unscaled, as the official code does. Converted to float64 CPU.
    listener : Listener or sequence of Listener
        One listener for ``[time, 2]``; ``batch`` listeners for ``[batch, time, 2]``.
    nalr_cfg : mapping, optional
        ``nalr.*`` (``nfir``, ``sample_rate`` in Hz); the recipe's 220 / 44100 by default.
    compressor_cfg : mapping or Compressor, optional
        ``compressor.*`` (threshold, attenuation, attack ms, release ms, rms_buffer_size s,
        makeup_gain); the recipe's values by default. Its sample rate is ``nalr.sample_rate``.
    soft_clip : bool
        Apply ``tanh`` after the compressor (the recipe's ``soft_clip: True``).

    Returns
    -------
    amplified : np.ndarray float64 [shape=(time + nfir, 2) or (batch, time + nfir, 2)]
        Hearing-aid output (the full NAL-R convolution adds ``nfir`` samples, as the reference).
    n_clipped : np.ndarray int64 [shape=(2,) or (batch, 2)]
        Per ear, samples with ``|x| > 1`` after the compressor and before the soft clip (what a
        PCM write would clip; the report's clipping count).

    Raises
    ------
    ValueError
        If the shape is not ``[..., time, 2]``, the listener count does not match the batch,
        a config key is unknown, or the signal holds NaN/Inf.

    Notes
    -----
    CPU; not differentiable (the compressor is a numba kernel). NAL-R runs as a batched float64
    FFT convolution in torch.

    References
    ----------
    pyclarity 0.9.0 ``recipes/icassp_2023/baseline/evaluate.py`` (``amplify_signal``, the
    ``np.tanh`` soft clip), ``clarity.enhancer.nalr.NALR``,
    ``clarity.enhancer.compressor.Compressor``.
    """
    if isinstance(signal, torch.Tensor):
        signal = signal.detach().cpu().numpy()
    x = np.asarray(signal, dtype=np.float64)
    single = x.ndim == 2
    if x.ndim not in (2, 3) or x.shape[-1] != 2:
        raise ValueError(f"amplify: signal must be [time, 2] or [batch, time, 2], got {x.shape}")
    if x.shape[-2] == 0:
        raise ValueError("amplify: signal is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError("amplify: signal holds NaN or Inf")
    listeners = [listener] if isinstance(listener, Listener) else list(listener)
    if single:
        x = x[None]
    if len(listeners) != x.shape[0]:
        raise ValueError(f"amplify: {len(listeners)} listeners for a batch of {x.shape[0]} signals")
    nfir, sample_rate = _nalr_params(nalr_cfg)
    if isinstance(compressor_cfg, Compressor):
        compressor = compressor_cfg
    else:
        compressor = Compressor.from_config(compressor_cfg or {}, sample_rate)

    fir = design_nalr_fir(listeners, nfir=nfir, sample_rate=sample_rate)  # [batch, 2, taps]
    if not x.flags.writeable or any(st < 0 for st in x.strides):
        x = x.copy()  # torch.from_numpy needs a writable array with positive strides
    ears = torch.from_numpy(x).transpose(1, 2)  # [batch, 2, time], a view
    nalr_out = apply_fir(fir, ears).numpy()  # [batch, 2, time + nfir]
    n_batch, _, n_out = nalr_out.shape
    amplified = np.empty((n_batch, n_out, 2))
    # compressor and clip count in one numba pass, written straight into [batch, time, 2]
    _, n_clipped = compressor.process_clip(
        nalr_out, soft_clip=soft_clip, out=amplified.transpose(0, 2, 1)
    )
    if single:
        return amplified[0], n_clipped[0]
    return amplified, n_clipped
