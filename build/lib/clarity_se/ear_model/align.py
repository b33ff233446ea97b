"""Bulk broadband alignment of the processed signal to the reference, and pruning of silence.

API
---
``input_align(reference, processed, *, lengths=None) -> AlignedSignals``
with fields ``reference [batch, time_out]``, ``processed [batch, time_out]``,
``lengths [batch]`` (int64, valid samples per item; the rest is zero padding) and
``delay [batch]`` (int64, samples the processed signal was advanced by).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

__all__ = ["AlignedSignals", "input_align"]


class AlignedSignals(NamedTuple):
    """Output of :func:`input_align` (unpacks as ``reference, processed, lengths, delay``)."""

    reference: Tensor
    processed: Tensor
    lengths: Tensor
    delay: Tensor


def _full_cross_correlation(x: Tensor, y: Tensor) -> Tensor:
    """``scipy.signal.correlate(x, y, 'full')`` per row via FFT: ``[batch, 2 n - 1]``.

    Index ``i`` holds lag ``i - (n - 1)``: ``sum_t x[t + lag] y[t]``.
    """
    n = x.shape[-1]
    nfft = 1 << (2 * n - 1).bit_length()
    xf = torch.fft.rfft(x, nfft)
    yf = torch.fft.rfft(y, nfft)
    c = torch.fft.irfft(xf * yf.conj(), nfft)
    return torch.cat([c[:, nfft - (n - 1) :], c[:, :n]], dim=-1)


def input_align(
    reference: Tensor,
    processed: Tensor,
    *,
    lengths: Tensor | None = None,
) -> AlignedSignals:
    """Align the processed signal to the reference by cross-correlation and prune silence.

    The delay of ``processed`` relative to ``reference`` is the lag of the largest absolute
    cross-covariance (means removed); the processed signal is shifted by that delay minus
    2 ms (48 samples, to allow for dispersion), zero-filled, within its own length.  Both
    signals are then cut to the span where ``|reference| > 0.001 max|reference|``.

    Parameters
    ----------
    reference : Tensor [shape=(batch, time)], float, 24 kHz
        Reference signals (call :func:`~clarity_se.dsp.resample.resample_24khz` first).
    processed : Tensor [shape=(batch, time)], float, 24 kHz
        Processed (hearing-aid output) signals, same shape as ``reference``.
    lengths : Tensor [shape=(batch,)], int, optional
        Valid samples per item (both signals); default ``time`` for all.

    Returns
    -------
    AlignedSignals
        ``reference`` and ``processed`` ``[batch, max(lengths)]`` with item ``i`` in
        ``[:lengths[i]]`` and zeros after; ``lengths`` (int64, samples) and ``delay`` (int64,
        samples, after the 2 ms back-up; positive = processed was late and is advanced).

    Raises
    ------
    ValueError
        If shapes differ, the inputs are not 2-D float, a length is out of range, or a
        reference item is all zero (the reference raises IndexError there).

    Notes
    -----
    Deviation: the reference accepts signals of different lengths (``eb.ear_model`` truncates
    both to the shorter first); here both must have the same shape -- truncate before calling.
    The cross-correlation uses a torch FFT (scipy's ``correlate`` also chooses FFT at these
    sizes); the arg-max can only differ from the reference at exact ties.  The ``fsamp`` of
    the 2 ms back-up is hard-coded to 24 kHz, as in the reference.  Not differentiable w.r.t.
    the delay; any device.

    References
    ----------
    Kates (2013), Sec. II.A.  Reproduces pyclarity 0.9.0 ``eb.input_align``.
    """
    if (
        not isinstance(reference, Tensor)
        or not isinstance(processed, Tensor)
        or reference.ndim != 2
        or reference.shape != processed.shape
        or not reference.is_floating_point()
    ):
        raise ValueError(
            "input_align: reference and processed must be float tensors of equal shape "
            f"[batch, time], got {getattr(reference, 'shape', None)} and "
            f"{getattr(processed, 'shape', None)}"
        )
    batch, nsamp = reference.shape
    device = reference.device
    if lengths is None:
        lengths = torch.full((batch,), nsamp, dtype=torch.int64, device=device)
    else:
        lengths = torch.as_tensor(lengths, dtype=torch.int64, device=device).reshape(-1)
        if (
            lengths.numel() != batch
            or bool(torch.any(lengths < 1))
            or bool(torch.any(lengths > nsamp))
        ):
            raise ValueError(
                f"input_align: lengths must be {batch} values in [1, {nsamp}], got "
                f"{lengths.tolist()}"
            )
    t = torch.arange(nsamp, device=device)
    valid = t[None, :] < lengths[:, None]
    zero = torch.zeros((), dtype=reference.dtype, device=device)
    ref = torch.where(valid, reference, zero)
    proc = torch.where(valid, processed, zero)
    nf = lengths.to(reference.dtype)

    # delay from the cross-covariance (means over the valid samples)
    ref_c = torch.where(valid, ref - (ref.sum(-1) / nf)[:, None], zero)
    proc_c = torch.where(valid, proc - (proc.sum(-1) / nf)[:, None], zero)
    corr = _full_cross_correlation(ref_c, proc_c)
    lag = torch.arange(-(nsamp - 1), nsamp, device=device)
    in_range = lag[None, :].abs() < lengths[:, None]
    index = torch.argmax(torch.where(in_range, corr.abs(), -1.0), dim=-1)
    delay = -(index - (nsamp - 1))
    delay = delay - 48  # back up 2 ms at the hard-coded 24 kHz

    # shift processed within its own length, zero fill
    src = t[None, :] + delay[:, None]
    ok = (src >= 0) & (src < lengths[:, None])
    shifted = torch.where(ok, torch.gather(proc, 1, src.clamp(0, nsamp - 1)), zero)

    # prune leading / trailing near-silence of the reference
    ref_abs = ref.abs()
    ref_max = ref_abs.amax(dim=-1)
    above = (ref_abs > 0.001 * ref_max[:, None]) & valid
    if not bool(torch.all(above.any(dim=-1))):
        bad = (~above.any(dim=-1)).nonzero().flatten().tolist()
        raise ValueError(f"input_align: reference item(s) {bad} are all zero")
    start = torch.argmax(above.to(torch.int8), dim=-1)
    end = nsamp - 1 - torch.argmax(above.flip(-1).to(torch.int8), dim=-1)
    end = torch.minimum(end, lengths)  # reference: min(last_above, processed_n)
    out_len = end - start + 1
    width = int(out_len.max())
    tt = torch.arange(width, device=device)
    src = start[:, None] + tt[None, :]
    keep = tt[None, :] < out_len[:, None]
    src = src.clamp(0, nsamp - 1)
    ref_out = torch.where(keep, torch.gather(ref, 1, src), zero)
    proc_out = torch.where(keep, torch.gather(shifted, 1, src), zero)
    return AlignedSignals(ref_out, proc_out, out_len, delay)
