"""The Clarity hearing-aid RMS compressor, exactly as pyclarity 0.9.0 implements it.

A causal boxcar RMS detector (``rms_buffer_size`` seconds) drives a one-pole gain smoother with
separate attack and release rates. The per-sample recursion runs in a numba-compiled kernel that
loops over channels (no Python per-sample loop); the RMS detector is a running sum inside the same
kernel, re-summed exactly every block so that rounding cannot drift.

The reference quirk, reproduced on purpose
-------------------------------------------
Above threshold, the reference's target is ``attenuation * rms + (1 - attenuation) * threshold``,
a compressed *level*, but it is used directly as the *gain*: ``curr_comp`` is smoothed towards that
level and the signal is multiplied by it. So a steady input at RMS ``r > threshold`` settles to an
output RMS of ``r * (attenuation * r + (1 - attenuation) * threshold)``, not to the compressed level
itself, and the input/output curve drops abruptly at the threshold (with the recipe's 0.35 / 0.1:
``r = 0.36`` comes out at ``0.128``); below threshold the gain releases towards 1. Our numbers must
equal the official recipe's, so the quirk is kept; :func:`static_curve` shows it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numba
import numpy as np

logger = logging.getLogger(__name__)

#: The reference's floor added to the mean square before the square root.
EPS = 1e-8
#: Samples between exact re-summations of the running RMS window sum (bounds rounding drift).
_RESYNC = 32768


@numba.njit(cache=True, nogil=True)
def _compress_kernel(
    signal, win_len, threshold, attenuation, attack, release, makeup_gain, want_gain,
    out, gains, clipped,
):  # pragma: no cover - compiled  # fmt: skip
    """signal, out, gains: [batch, chan, time] (any strides); clipped: [batch, chan] int64."""
    n_batch, n_chan, n_time = signal.shape
    for b in range(n_batch):
        for c in range(n_chan):
            x = signal[b, c]
            acc = 0.0
            comp = 1.0
            n_clip = 0
            for i in range(n_time):
                # window x[i - win_len + 1 .. i] (zeros before the start), like the reference's
                # np.convolve(pad(x)**2, ones(win_len), "valid").
                if i % _RESYNC == 0:
                    acc = 0.0
                    lo = i - win_len + 1
                    if lo < 0:
                        lo = 0
                    for k in range(lo, i + 1):
                        acc += x[k] * x[k]
                else:
                    acc += x[i] * x[i]
                    j = i - win_len
                    if j >= 0:
                        acc -= x[j] * x[j]
                rms = np.sqrt(acc / win_len + EPS)
                if rms > threshold:
                    temp = (rms * attenuation) + ((1.0 - attenuation) * threshold)
                    comp = comp * (1.0 - attack) + (temp * attack)
                else:
                    comp = release + comp * (1 - release)
                if want_gain:
                    gains[b, c, i] = comp
                y = x[i] * comp * makeup_gain
                if abs(y) > 1.0:
                    n_clip += 1
                out[b, c, i] = y
            clipped[b, c] = n_clip


@dataclass(frozen=True)
class Compressor:
    """The Clarity RMS compressor (``compressor.*`` of the recipe config).

    Parameters
    ----------
    sample_rate : float
        Hz (the recipe's ``nalr.sample_rate``, 44100; the reference's ``fs``).
    threshold : float
        Linear RMS (full scale 1.0) above which the gain moves towards the compressed level.
        Recipe: 0.35.
    attenuation : float
        Slope of the compressed level above threshold (see the module quirk). Recipe: 0.1.
    attack : float
        Attack time in ms; the per-sample rate is ``1000 / (attack * sample_rate)``. Recipe: 50.
    release : float
        Release time in ms, rate as for ``attack``. Recipe: 1000.
    rms_buffer_size : float
        Length of the causal boxcar RMS window in seconds; ``int(rms_buffer_size * sample_rate)``
        samples. Recipe: 0.064 (2822 samples).
    makeup_gain : float
        Linear gain applied after compression. Default 1.0 (the reference default).

    Raises
    ------
    ValueError
        If a time is not positive or the RMS window is shorter than one sample.

    References
    ----------
    pyclarity 0.9.0 ``clarity.enhancer.compressor.Compressor`` (``set_attack``, ``set_release``,
    ``process``), including the level-as-gain quirk described in the module docstring.
    """

    sample_rate: float = 44100.0
    threshold: float = 0.35
    attenuation: float = 0.1
    attack: float = 50.0
    release: float = 1000.0
    rms_buffer_size: float = 0.064
    makeup_gain: float = 1.0

    def __post_init__(self) -> None:
        for name in ("sample_rate", "attack", "release", "rms_buffer_size"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"compressor.{name} must be positive, got {value!r}")
        for name in ("threshold", "attenuation", "makeup_gain"):
            if not np.isfinite(getattr(self, name)):
                raise ValueError(f"compressor.{name} must be finite")
        if self.win_len < 1:
            raise ValueError(
                f"compressor.rms_buffer_size: {self.rms_buffer_size} s is shorter than one sample"
            )

    @classmethod
    def from_config(cls, cfg, sample_rate: float) -> Compressor:
        """Build from a ``compressor.*`` config node (mapping) and the sample rate in Hz.

        Raises
        ------
        ValueError
            If a key is unknown or a value is not a number.
        """
        items = dict(cfg)
        known = {"threshold", "attenuation", "attack", "release", "rms_buffer_size", "makeup_gain"}
        unknown = set(items) - known
        if unknown:
            raise ValueError(f"compressor: unknown keys {sorted(unknown)}")
        try:
            values = {k: float(v) for k, v in items.items()}
        except (TypeError, ValueError):
            raise ValueError(f"compressor: values must be numbers, got {items}") from None
        return cls(sample_rate=float(sample_rate), **values)

    @property
    def win_len(self) -> int:
        """RMS window in samples: ``int(rms_buffer_size * sample_rate)``, as the reference."""
        return int(self.rms_buffer_size * self.sample_rate)

    @property
    def attack_rate(self) -> float:
        """Per-sample attack coefficient (the reference's ``set_attack``)."""
        return (1.0 / (self.attack / 1000.0)) / self.sample_rate

    @property
    def release_rate(self) -> float:
        """Per-sample release coefficient (the reference's ``set_release``)."""
        return (1.0 / (self.release / 1000.0)) / self.sample_rate

    def process(self, signal: np.ndarray, *, return_gain: bool = False):
        """Compress every channel independently.

        Parameters
        ----------
        signal : np.ndarray [shape=(time,) or (channels, time)]
            Linear samples (full scale 1.0), converted to float64 C-contiguous.
        return_gain : bool
            Also return the per-sample gain (the reference's ``comp_ratios``).

        Returns
        -------
        out : np.ndarray, float64, same shape as ``signal``
            ``signal * gain * makeup_gain``, equal to the reference ``process(signal)[0]`` per
            channel (to ~1e-15; the running RMS sum differs from ``np.convolve`` only by rounding).
        gain : np.ndarray, same shape, only if ``return_gain``.

        Raises
        ------
        ValueError
            If ``signal`` is not 1-D or 2-D, or holds NaN/Inf.

        Notes
        -----
        CPU only, not differentiable (numba kernel; channels in sequence, samples in sequence).
        """
        x = np.asarray(signal, dtype=np.float64)
        if x.ndim not in (1, 2):
            raise ValueError(
                f"Compressor.process: signal must be [time] or [channels, time], got {x.shape}"
            )
        x3 = x.reshape(1, -1, x.shape[-1])
        out = np.empty(x3.shape)
        gains = np.empty(x3.shape) if return_gain else np.empty((1, 1, 1))
        self._run(x3, out=out, gains=gains if return_gain else None)
        out = out.reshape(x.shape)
        return (out, gains.reshape(x.shape)) if return_gain else out

    def process_clip(
        self, signal: np.ndarray, *, soft_clip: bool = True, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Compress, count samples beyond full scale and optionally ``tanh`` them, in one pass.

        Parameters
        ----------
        signal : np.ndarray [shape=(batch, channels, time)]
            Linear samples, float64 (any strides).
        soft_clip : bool
            Apply ``tanh`` to the compressed signal (the recipe's ``soft_clip``).
        out : np.ndarray [shape=(batch, channels, time)], float64, optional
            Where to write (may be a strided view, e.g. ``[batch, time, channels]`` transposed);
            a new array if omitted.

        Returns
        -------
        out : np.ndarray [shape=(batch, channels, time)] float64
            ``tanh(process(signal))`` (or without ``tanh``), per channel.
        n_clipped : np.ndarray [shape=(batch, channels)] int64
            Samples with ``|process(signal)| > 1`` (before the soft clip).

        Raises
        ------
        ValueError
            If ``signal`` is not 3-D float64-convertible, ``out`` has another shape or dtype, or
            the signal holds NaN/Inf.
        """
        x = np.asarray(signal, dtype=np.float64)
        if x.ndim != 3:
            raise ValueError(
                f"Compressor.process_clip: signal must be [batch, channels, time], got {x.shape}"
            )
        if out is None:
            out = np.empty(x.shape)
        elif out.shape != x.shape or out.dtype != np.float64:
            raise ValueError(
                f"Compressor.process_clip: out must be float64 {x.shape}, "
                f"got {out.dtype} {out.shape}"
            )
        clipped = self._run(x, out=out, gains=None)
        if soft_clip:
            np.tanh(
                out, out=out
            )  # numpy's SIMD tanh, as the reference (numba's libm one is 5x slower)
        return out, clipped

    def _run(self, x3, *, out, gains):
        if not np.all(np.isfinite(x3)):
            raise ValueError("Compressor: signal holds NaN or Inf")
        clipped = np.zeros(x3.shape[:2], dtype=np.int64)
        _compress_kernel(
            x3, self.win_len, float(self.threshold), float(self.attenuation),
            self.attack_rate, self.release_rate, float(self.makeup_gain), gains is not None,
            out, np.empty((1, 1, 1)) if gains is None else gains, clipped,
        )  # fmt: skip
        return clipped


def static_curve(compressor: Compressor, input_rms: np.ndarray) -> np.ndarray:
    """Steady-state output RMS of a constant-RMS input (the settled gain times the input).

    Parameters
    ----------
    compressor : Compressor
    input_rms : np.ndarray [shape=(n,)]
        Linear input RMS (full scale 1.0).

    Returns
    -------
    np.ndarray [shape=(n,)]
        ``r`` below threshold; ``r * (attenuation * r + (1 - attenuation) * threshold)`` above it
        (the reference's level-as-gain quirk), times ``makeup_gain``. The ``EPS`` floor is ignored.

    References
    ----------
    Fixed point of the gain recursion in pyclarity 0.9.0 ``Compressor.process``.

    Examples
    --------
    >>> comp = Compressor()
    >>> [round(float(v), 4) for v in static_curve(comp, np.array([0.3, 0.36, 1.0]))]
    [0.3, 0.1264, 0.415]
    """
    r = np.asarray(input_rms, dtype=np.float64)
    level = compressor.attenuation * r + (1.0 - compressor.attenuation) * compressor.threshold
    gain = np.where(r > compressor.threshold, level, 1.0)
    return r * gain * compressor.makeup_gain


def plot_level_curve(compressor: Compressor, ax=None, *, min_db: float = -40.0):
    """Draw the static input/output level curve in dB re full scale (matplotlib).

    Parameters
    ----------
    compressor : Compressor
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure if omitted.
    min_db : float
        Lowest input level in dB re RMS 1.0.

    Returns
    -------
    matplotlib.axes.Axes
        The axes, with the identity line and the settled output level (:func:`static_curve`);
        the drop at the threshold is the reference's quirk (module docstring).
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    in_db = np.linspace(min_db, 0.0, 801)
    out_db = 20 * np.log10(static_curve(compressor, 10 ** (in_db / 20)))
    ax.plot(in_db, in_db, ":", color="grey", label="identity")
    ax.plot(in_db, out_db, label="settled output")
    ax.axvline(20 * np.log10(compressor.threshold), color="grey", lw=0.5)
    ax.set(
        xlabel="input RMS (dB re 1.0)", ylabel="output RMS (dB re 1.0)", title="Clarity compressor"
    )
    ax.legend()
    return ax
