r"""Rational-factor polyphase resampling with a stated look-ahead and an equal streaming path.

The filter is the one :func:`scipy.signal.resample_poly` designs by default: a Kaiser-windowed
sinc (``beta = 5``) of ``2 C + 1`` taps at the upsampled rate, ``C = 10 max(U, D)``, cut-off at
the lower of the two Nyquist frequencies, gain ``U``; its two end taps fall on zeros of the sinc
and are dropped (``C = 10 max(U, D) - 1``, the same filter). With ``U / D`` the reduced ratio
``new_rate / orig_rate``, output sample ``m`` is

``y[m] = sum_n x[n] h[m D - n U + C]``,

a zero-phase (centred) filter: output ``m`` sits at input time ``m D / U`` and reads input
samples up to ``n_hi(m) = floor((m D + C) / U)``, a look-ahead of at most ``C / U`` input
samples. For 44.1 kHz -> 16 kHz (``U = 160, D = 441, C = 4409``) that is 27.56 input samples
(0.625 ms); for 16 kHz -> 44.1 kHz (``U = 441, D = 160, C = 4409``) 9.998 input samples
(0.625 ms).
A signal of ``T`` samples gives ``ceil(T U / D)`` output samples (as ``resample_poly``).

The streaming path (:class:`ResamplerStreamer`) computes each output sample from the same
input samples with the same arithmetic as the whole-signal call, so both agree to float64
rounding.

References
----------
R. E. Crochiere and L. R. Rabiner, *Multirate Digital Signal Processing*, Prentice-Hall 1983,
Ch. 3 (polyphase structures for sampling-rate conversion by a rational factor).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import firwin

#: output samples computed per vectorised step (bounds the gather's memory)
_CHUNK = 4096


class PolyphaseResampler:
    """Resample by the rational factor ``new_rate / orig_rate`` (numpy, float64 inside).

    Parameters
    ----------
    orig_rate, new_rate : int
        Input and output sample rates, Hz.
    half_width : int
        Filter half-length in units of ``max(U, D)`` (default 10, as ``resample_poly``).
    beta : float
        Kaiser window parameter (default 5.0, as ``resample_poly``).

    Attributes
    ----------
    up, down : int
        ``U`` and ``D``, the reduced ratio.
    half_len : int
        ``C`` taps at the upsampled rate.

    Raises
    ------
    ValueError
        If a rate or ``half_width`` is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> down = PolyphaseResampler(44100, 16000)
    >>> down(np.zeros((2, 441))).shape
    (2, 160)
    >>> round(down.lookahead_s * 1000, 3)
    0.625
    >>> down.half_len
    4409
    """

    def __init__(
        self, orig_rate: int, new_rate: int, half_width: int = 10, beta: float = 5.0
    ) -> None:
        if orig_rate < 1 or new_rate < 1 or half_width < 1:
            raise ValueError(
                f"rates and half_width must be positive, got orig_rate={orig_rate}, "
                f"new_rate={new_rate}, half_width={half_width}"
            )
        g = math.gcd(int(orig_rate), int(new_rate))
        self.orig_rate, self.new_rate = int(orig_rate), int(new_rate)
        self.up, self.down = self.new_rate // g, self.orig_rate // g
        max_rate = max(self.up, self.down)
        self.half_len = half_width * max_rate
        taps = firwin(2 * self.half_len + 1, 1.0 / max_rate, window=("kaiser", beta)) * self.up
        # the sinc is zero at both ends (k = 0, 2C): drop those taps so that last_input() names
        # a sample that is really read (the same filter, one tap shorter at each end)
        while taps.size > 2 and abs(taps[0]) < 1e-9 * np.abs(taps).max():
            taps, self.half_len = taps[1:-1], self.half_len - 1
        self.n_phase_taps = math.ceil(taps.size / self.up)
        padded = np.zeros(self.up * self.n_phase_taps)
        padded[: taps.size] = taps
        #: bank[phi, q] = h[phi + q U]
        self.bank = padded.reshape(self.n_phase_taps, self.up).T.copy()

    @property
    def lookahead_in(self) -> float:
        """Largest look-ahead, input samples: ``C / U``."""
        return self.half_len / self.up

    @property
    def lookahead_s(self) -> float:
        """Largest look-ahead in seconds."""
        return self.lookahead_in / self.orig_rate

    def n_out(self, n_in: int) -> int:
        """Output length for ``n_in`` input samples: ``ceil(n_in U / D)``."""
        return -(-n_in * self.up // self.down)

    def last_input(self, m: int | np.ndarray) -> int | np.ndarray:
        """Index of the last input sample that output sample ``m`` reads, ``floor((mD + C)/U)``."""
        return (m * self.down + self.half_len) // self.up

    def _compute(self, buf: np.ndarray, buf_start: int, m0: int, m1: int) -> np.ndarray:
        """Outputs ``m0 .. m1-1`` from ``buf`` = inputs ``buf_start ..`` (zeros elsewhere)."""
        q = np.arange(self.n_phase_taps)
        pad = self.n_phase_taps
        lead = max(0, pad - buf_start)  # samples before index 0 read as zeros
        padded = np.concatenate(
            [np.zeros((*buf.shape[:-1], lead)), buf, np.zeros((*buf.shape[:-1], pad))], axis=-1
        )
        origin = buf_start - lead
        out = np.empty((*buf.shape[:-1], max(m1 - m0, 0)))
        for start in range(m0, m1, _CHUNK):
            m = np.arange(start, min(start + _CHUNK, m1))
            s = m * self.down + self.half_len
            n_hi, phase = s // self.up, s % self.up
            idx = n_hi[:, None] - q[None, :] - origin
            gathered = padded[..., np.clip(idx, 0, padded.shape[-1] - 1)]
            gathered = np.where(idx >= 0, gathered, 0.0)
            out[..., start - m0 : start - m0 + m.size] = (gathered * self.bank[phase]).sum(-1)
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Resample a whole signal.

        Parameters
        ----------
        x : np.ndarray [shape=(..., time)], float
            At ``orig_rate``.

        Returns
        -------
        np.ndarray [shape=(..., ceil(time U / D))], float32
            At ``new_rate``, time-aligned (output ``m`` at input time ``m D / U``).
        """
        x = np.asarray(x, dtype=np.float64)
        return self._compute(x, 0, 0, self.n_out(x.shape[-1])).astype(np.float32)

    def streamer(self) -> ResamplerStreamer:
        """A fresh :class:`ResamplerStreamer`."""
        return ResamplerStreamer(self)


class ResamplerStreamer:
    """Chunk-by-chunk resampling, equal to :meth:`PolyphaseResampler.__call__` on the whole.

    :meth:`process` returns every output sample whose input samples have all arrived; memory is
    bounded by the filter length (``n_phase_taps`` input samples per channel).
    """

    def __init__(self, resampler: PolyphaseResampler) -> None:
        self.r = resampler
        self.reset()

    def reset(self) -> None:
        """Forget all input."""
        self.buf: np.ndarray | None = None
        self.buf_start = 0  # absolute index of buf[..., 0]
        self.n_in = 0
        self.m_next = 0

    def _emit(self, m_end: int) -> np.ndarray:
        out = self.r._compute(self.buf, self.buf_start, self.m_next, m_end)
        self.m_next = max(self.m_next, m_end)
        keep_from = int(self.r.last_input(self.m_next)) - self.r.n_phase_taps + 1
        drop = min(max(0, keep_from - self.buf_start), self.buf.shape[-1])
        self.buf = self.buf[..., drop:]
        self.buf_start += drop
        return out.astype(np.float32)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Feed ``x [..., n]`` (at ``orig_rate``); return the final outputs ``[..., m]``."""
        x = np.asarray(x, dtype=np.float64)
        self.buf = x.copy() if self.buf is None else np.concatenate([self.buf, x], axis=-1)
        self.n_in += x.shape[-1]
        # outputs m with last_input(m) <= n_in - 1  <=>  m D + C < n_in U
        m_end = max(self.m_next, -(-(self.n_in * self.r.up - self.r.half_len) // self.r.down))
        return self._emit(m_end)

    def flush(self) -> np.ndarray | None:
        """End of signal: the remaining outputs (zeros read beyond the end), then reset.

        Returns ``None`` if nothing was ever fed.
        """
        if self.buf is None:
            return None
        out = self._emit(self.r.n_out(self.n_in))
        self.reset()
        return out
