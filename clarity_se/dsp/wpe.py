r"""Causal online WPE dereverberation of STFT frames (multichannel linear prediction, RLS).

Weighted prediction error (WPE) dereverberation (Nakatani et al. 2010) models the late
reverberation in each STFT bin as a linear prediction from earlier frames of all channels and
subtracts it; the online form (Yoshioka and Nakatani 2012, their recursive least squares
algorithm; Caroselli et al. 2017) adapts the prediction filter frame by frame from the past
only. Per bin, with ``y(k)`` the ``C`` channels' spectra of frame ``k``::

    x~(k)  = [y(k - delta); y(k - delta - s); ...; y(k - delta - (K - 1) s)]    (D = C K)
    e(k)   = y(k) - G(k-1)^H x~(k)                  (the output: the prediction error)
    lam(k) = max(mean over channels of |y(k)|^2, floor P_avg(k)) + eps
    g(k)   = P(k-1) x~(k) / (alpha lam(k) + x~(k)^H P(k-1) x~(k))
    G(k)   = G(k-1) + g(k) e(k)^H
    P(k)   = (P(k-1) - g(k) x~(k)^H P(k-1)) / alpha

``P`` is the inverse of the ``lam``-weighted, exponentially forgotten (``alpha = exp(-R / (tau
fs))``) correlation of ``x~`` (initialised to the identity: the correlation is dimensionless,
power over ``lam``), ``P_avg`` a recursive average of the frames' power with the same
``alpha``, so that ``lam`` stays above ``floor`` times the bin's recent level in pauses.
Yoshioka and Nakatani's ``lam`` is the power of the desired signal, which is unknown; here it
is the observation's, as in their online experiments. The prediction delay ``delta`` must exceed
the frames' overlap (``delta R >= K_win``) so that the filter cannot predict, and remove, the
direct sound; the stride ``s`` spreads ``K`` taps over a longer span of the reverberation than
consecutive hops of a low-delay STFT would (deviation from the papers, whose hops are 8-16 ms;
with the beamformer's 2.18 ms hop, ``delta = 6, s = 3, K = 8`` spans 13 to 64 ms). For the
same reason the recursion may update on every ``u``-th frame only (``update_every``; forgetting
``alpha^u`` per update), every 8.7 ms with ``u = 4`` as the papers' hops do, while every frame
is predicted with the latest filter.

Only past frames enter the prediction, so dereverberation adds no latency to the STFT's own.

Safeguards (not in the papers): conventional RLS diverges in finite precision when its memory is
short for its dimension (here, with a 0.5 s time constant, the output exploded after some
seconds of several held-out scenes: ``recipes/icassp_2023/convtasnet/README.md``,
"Dereverberation of the outputs"), and ``P`` grows without bound in directions that the input
stops exciting (digital silence). So: ``P`` is not divided by
``alpha`` while its trace is at or above its initial ``D``, and a bin whose coefficients exceed
:data:`MAX_COEFFICIENT` in magnitude starts again from ``P = I``, ``G = 0``. Neither acts on a
converged filter: the shipped form scores as the form without them on the held-out scenes
(same README).

References
----------
T. Nakatani, T. Yoshioka, K. Kinoshita, M. Miyoshi and B.-H. Juang, "Speech dereverberation
based on variance-normalized delayed linear prediction", IEEE Trans. Audio, Speech, Lang.
Process. 18(7), 1717-1731 (2010). T. Yoshioka and T. Nakatani, "Generalization of
multi-channel linear prediction methods for blind MIMO impulse response shortening", IEEE
Trans. Audio, Speech, Lang. Process. 20(10), 2707-2720 (2012), section V (the RLS algorithm).
J. Caroselli, I. Shafran, A. Narayanan and R. Rose, "Adaptive multichannel dereverberation for
automatic speech recognition", Proc. Interspeech 2017, pp. 3877-3881. K. Kinoshita, M.
Delcroix, H. Kwon, T. Mori and T. Nakatani, "Neural network-based spectrum estimation for
online WPE dereverberation", Proc. Interspeech 2017, pp. 384-388 (the guided form,
``guide_lag``).
"""

from __future__ import annotations

import numba
import numpy as np

#: absolute floor of ``lam``, squared STFT magnitude (as :data:`clarity_se.dsp.mvdr.EPS`)
EPS = 1e-12
#: largest magnitude of a prediction coefficient before the bin's state is reset (a bound on
#: runaway recursive least squares; a prediction of late reverberation from past frames of the
#: same signal has coefficients well below 1 in magnitude)
MAX_COEFFICIENT = 10.0


@numba.njit(cache=True, nogil=True, inline="always")
def packed_index(i, j):  # pragma: no cover - compiled
    """Row of entry ``(i, j)``, ``j <= i``, of a matrix's packed lower triangle (row-major:
    ``numpy.tril_indices`` order); compiled, callable from Python too."""
    return i * (i + 1) // 2 + j


@numba.njit(cache=True, nogil=True)
def _reset_bin(p_inv, filt, b):  # pragma: no cover - compiled
    """Bin ``b``'s initial state: ``P = I``, ``G = 0``."""
    dim = filt.shape[1]
    for p in range(p_inv.shape[1]):
        p_inv[0, p, b] = 0.0
        p_inv[1, p, b] = 0.0
    for i in range(dim):
        p_inv[0, packed_index(i, i), b] = 1.0
    for d in range(dim):
        for c in range(filt.shape[2]):
            filt[0, d, c, b] = 0.0
            filt[1, d, c, b] = 0.0


@numba.njit(cache=True, nogil=True)
def _gather(hist, frame, delay, stride, taps, x_r, x_i):  # pragma: no cover - compiled
    """``x~`` of ``frame`` from the history (real and imaginary parts, ``[D, bins]``)."""
    n_ch, n_hist, n_bins = hist.shape
    for t in range(taps):
        slot = (frame - delay - t * stride) % n_hist
        for c in range(n_ch):
            d = t * n_ch + c
            for b in range(n_bins):
                x_r[d, b] = hist[c, slot, b].real
                x_i[d, b] = hist[c, slot, b].imag


@numba.njit(cache=True, nogil=True)
def _predict(yf, gr, gi, x_r, x_i, e_r, e_i, den):  # pragma: no cover - compiled
    """``e = y - G^H x~`` for the frame ``yf [C, bins]`` into ``e_r, e_i``; ``den`` gets the
    frame's power summed over channels."""
    n_ch, n_bins = yf.shape
    dim = x_r.shape[0]
    for b in range(n_bins):
        den[b] = 0.0
    for c in range(n_ch):
        for b in range(n_bins):
            e_r[c, b] = yf[c, b].real
            e_i[c, b] = yf[c, b].imag
            den[b] += e_r[c, b] * e_r[c, b] + e_i[c, b] * e_i[c, b]
        for d in range(dim):
            for b in range(n_bins):  # conj(G[d, c]) x~[d]
                e_r[c, b] -= gr[d, c, b] * x_r[d, b] + gi[d, c, b] * x_i[d, b]
                e_i[c, b] -= gr[d, c, b] * x_i[d, b] - gi[d, c, b] * x_r[d, b]


@numba.njit(cache=True, nogil=True)
def _wpe_frames(y, out, hist, start, p_inv, filt, level, delay, stride, taps, alpha, floor, eps,
                max_coef, lam, lag, every):  # fmt: skip
    """The module docstring's recursion over the frames ``y [C, F, bins]`` into ``out``
    (compiled; state updated in place).

    ``hist [C, H, bins]``: the last ``H = delay + (taps - 1) stride`` frames, frame ``m`` in
    slot ``m mod H`` (zeros before the first); ``start``: the index of ``y``'s first frame.
    ``p_inv [2, D (D + 1) / 2, bins]``: real and imaginary parts of ``P``'s packed lower
    triangle; ``filt [2, D, C, bins]``: ``G``; ``level [bins]``: ``P_avg``; ``max_coef``:
    :data:`MAX_COEFFICIENT`. Loops over bins innermost on real arrays, as in
    :func:`clarity_se.dsp.mvdr._mvdr_frames`. ``lam [F, bins]`` with ``lag >= 1``: the guided
    form, frame ``f`` updates the filter with frame ``start + f - lag`` (its ``x~``, its
    prediction error with the current filter, and ``lam[f]`` as its power); the history then
    holds ``lag + 1`` more frames. ``lag == 0``: ``lam`` is unused, each frame updates with its
    own data and power. ``every``: only the frames whose index is a multiple of it update
    (``alpha`` is then the forgetting per update); every frame is predicted.
    """
    n_ch, n_frames, n_bins = y.shape
    n_hist = hist.shape[1]
    dim = n_ch * taps
    pr, pi, gr, gi = p_inv[0], p_inv[1], filt[0], filt[1]
    x_r = np.empty((dim, n_bins))
    x_i = np.empty((dim, n_bins))
    px_r = np.empty((dim, n_bins))
    px_i = np.empty((dim, n_bins))
    e_r = np.empty((n_ch, n_bins))
    e_i = np.empty((n_ch, n_bins))
    den = np.empty(n_bins)
    acc = np.empty(n_bins)
    yu = np.empty((n_ch, n_bins), np.complex128)
    for f in range(n_frames):
        frame = start + f
        # e = y - G^H x~ is the output; lam from the frame's power (or, guided, lam[f])
        _gather(hist, frame, delay, stride, taps, x_r, x_i)
        _predict(y[:, f], gr, gi, x_r, x_i, e_r, e_i, den)
        for c in range(n_ch):
            for b in range(n_bins):
                out[c, f, b] = complex(e_r[c, b], e_i[c, b])
        if lag > 0:  # guided: push this frame, then update with frame - lag's data
            slot = frame % n_hist
            for c in range(n_ch):
                for b in range(n_bins):
                    hist[c, slot, b] = y[c, f, b]
            upd = frame - lag
            if upd < 0 or frame % every:
                continue
            for c in range(n_ch):
                for b in range(n_bins):
                    yu[c, b] = hist[c, upd % n_hist, b]
            _gather(hist, upd, delay, stride, taps, x_r, x_i)
            _predict(yu, gr, gi, x_r, x_i, e_r, e_i, den)
            for b in range(n_bins):
                den[b] = n_ch * lam[f, b]
        elif frame % every:  # no update this frame: keep it in the history only
            slot = frame % n_hist
            for c in range(n_ch):
                for b in range(n_bins):
                    hist[c, slot, b] = y[c, f, b]
            continue
        for b in range(n_bins):
            power = den[b] / n_ch
            level[b] = alpha * level[b] + (1.0 - alpha) * power
            den[b] = alpha * (max(power, floor * level[b]) + eps)
        # P x~ (Hermitian P from its lower triangle); den += x~^H P x~
        for i in range(dim):
            for b in range(n_bins):
                px_r[i, b] = 0.0
                px_i[i, b] = 0.0
            for j in range(dim):
                if j <= i:
                    p, sign = packed_index(i, j), 1.0
                else:
                    p, sign = packed_index(j, i), -1.0
                for b in range(n_bins):
                    a_r, a_i = pr[p, b], sign * pi[p, b]
                    px_r[i, b] += a_r * x_r[j, b] - a_i * x_i[j, b]
                    px_i[i, b] += a_r * x_i[j, b] + a_i * x_r[j, b]
            for b in range(n_bins):
                den[b] += x_r[i, b] * px_r[i, b] + x_i[i, b] * px_i[i, b]
        # G += g e^H, g = P x~ / den
        for b in range(n_bins):
            den[b] = 1.0 / den[b]
        for d in range(dim):
            for c in range(n_ch):
                for b in range(n_bins):
                    g_r, g_i = px_r[d, b] * den[b], px_i[d, b] * den[b]
                    gr[d, c, b] += g_r * e_r[c, b] + g_i * e_i[c, b]
                    gi[d, c, b] += g_i * e_r[c, b] - g_r * e_i[c, b]
        # P = (P - g (P x~)^H) / alpha, lower triangle; no forgetting while tr(P) is at its
        # initial D or above (directions the input does not excite would grow without bound)
        for b in range(n_bins):
            trace = 0.0
            for i in range(dim):
                trace += pr[packed_index(i, i), b]
            acc[b] = 1.0 / alpha if trace < dim else 1.0
        for i in range(dim):
            for j in range(i + 1):
                p = packed_index(i, j)
                for b in range(n_bins):
                    g_r, g_i = px_r[i, b] * den[b], px_i[i, b] * den[b]
                    pr[p, b] = (pr[p, b] - (g_r * px_r[j, b] + g_i * px_i[j, b])) * acc[b]
                    pi[p, b] = (pi[p, b] - (g_i * px_r[j, b] - g_r * px_i[j, b])) * acc[b]
        # a bin whose prediction coefficients run away starts again (P = I, G = 0)
        limit = max_coef * max_coef
        for b in range(n_bins):
            acc[b] = 0.0
        for d in range(dim):
            for c in range(n_ch):
                for b in range(n_bins):
                    acc[b] = max(acc[b], gr[d, c, b] * gr[d, c, b] + gi[d, c, b] * gi[d, c, b])
        for b in range(n_bins):
            if acc[b] > limit:
                _reset_bin(p_inv, filt, b)
        if lag == 0:
            slot = frame % n_hist
            for c in range(n_ch):
                for b in range(n_bins):
                    hist[c, slot, b] = y[c, f, b]


class OnlineWPE:
    """Streaming causal WPE dereverberation of STFT frames (module docstring).

    Parameters
    ----------
    n_channels : int
        Channels ``C`` predicted jointly (2: the two ears' outputs of a binaural beamformer).
    n_bins : int
        STFT bins.
    taps : int
        Prediction taps per channel ``K`` (>= 1).
    delay : int
        Prediction delay ``delta``, frames (>= 1; at least the frames' overlap, window over
        hop).
    stride : int
        Frames between taps ``s`` (>= 1).
    forget : float
        Forgetting factor ``alpha`` per frame, in ``(0, 1)``.
    floor : float
        Floor of ``lam`` relative to the bin's recent power (default 1e-3).
    guide_lag : int
        0 (default): ``lam`` from the observation's power, as above. ``>= 1``: guided by an
        estimate of the desired signal's power (Kinoshita et al. 2017, "DNN-WPE", online form):
        :meth:`process` takes ``lam``, the power of frame ``k - guide_lag`` (its estimate
        arrives that late), and frame ``k`` updates the filter with that frame's data (its
        ``x~`` and its prediction error with the current filter); the output of frame ``k``
        is predicted from the filter so updated up to frame ``k - 1``.
    update_every : int
        Frames between updates of the recursive least squares (default 1: every frame). With
        ``u > 1`` only frames whose index (from the first frame after :meth:`reset`) is a
        multiple of ``u`` update ``P``, ``G`` and ``P_avg``, with the forgetting factor
        ``forget ** u`` per update (the same time constant); every frame is still predicted,
        with the latest filter. The online-WPE papers update once per 8-16 ms hop; with the
        beamformer's 2.18 ms hop, ``u = 4`` updates every 8.7 ms in about a third of the
        time (``benchmarks/bench_mvdr.py``) but dereverberates less, as a quarter of the frames
        enter the estimate (deviation: the papers update on every frame of their longer hops).

    Notes
    -----
    :meth:`process` takes consecutive frames ``[C, F, bins]`` (complex) and returns their
    dereverberated frames; any split of a signal's frames into calls gives the same output.
    Memory: ``delay + (K - 1) s`` frames of history (guided: ``guide_lag + 1`` more) and, per
    bin, ``P`` (``D (D + 1) / 2`` complex entries) and ``G`` (``D C``), ``D = C K``. Cost per
    frame and bin: about ``2 D^2`` complex multiply-adds on updating frames, ``D C`` on the
    others.

    Raises
    ------
    ValueError
        A parameter out of range.
    """

    def __init__(self, n_channels: int, n_bins: int, taps: int, delay: int, stride: int,
                 forget: float, floor: float = 1e-3, guide_lag: int = 0,
                 update_every: int = 1) -> None:  # fmt: skip
        for name, value in (("n_channels", n_channels), ("n_bins", n_bins), ("taps", taps),
                            ("delay", delay), ("stride", stride),
                            ("update_every", update_every)):  # fmt: skip
            if int(value) < 1:
                raise ValueError(f"OnlineWPE: {name} must be >= 1, got {value}")
        if not 0.0 < forget < 1.0:
            raise ValueError(f"OnlineWPE: forget must be in (0, 1), got {forget}")
        if not floor >= 0.0:
            raise ValueError(f"OnlineWPE: floor must be >= 0, got {floor}")
        if int(guide_lag) < 0:
            raise ValueError(f"OnlineWPE: guide_lag must be >= 0, got {guide_lag}")
        self.guide_lag = int(guide_lag)
        self.n_channels, self.n_bins, self.taps = int(n_channels), int(n_bins), int(taps)
        self.delay, self.stride = int(delay), int(stride)
        self.forget, self.floor = float(forget), float(floor)
        self.update_every = int(update_every)
        self.reset()

    def reset(self) -> None:
        """Forget all state (start a new signal)."""
        C, B, dim = self.n_channels, self.n_bins, self.n_channels * self.taps
        n_hist = self.delay + (self.taps - 1) * self.stride
        n_hist += self.guide_lag + 1 if self.guide_lag else 0
        self.hist = np.zeros((C, n_hist, B), np.complex128)
        self.p_inv = np.zeros((2, dim * (dim + 1) // 2, B))
        self.p_inv[0, [packed_index(i, i) for i in range(dim)]] = 1.0  # P = I
        self.filt = np.zeros((2, dim, C, B))
        self.level = np.zeros(B)
        self.n_frames = 0

    def process(self, frames: np.ndarray, lam: np.ndarray | None = None) -> np.ndarray:
        """Dereverberate the next frames ``[C, F, bins]`` (complex); returns ``[C, F, bins]``.

        ``lam [F, bins]`` (guided form only): per frame ``k`` of ``frames``, the desired
        signal's power in frame ``k - guide_lag`` (rows for frames before ``guide_lag`` are
        not used).

        Raises
        ------
        ValueError
            Wrong shape, or ``lam`` missing in the guided form.
        """
        frames = np.ascontiguousarray(frames, dtype=np.complex128)
        if frames.ndim != 3 or frames.shape[0] != self.n_channels or frames.shape[2] != self.n_bins:
            raise ValueError(f"OnlineWPE: frames must be [{self.n_channels}, F, {self.n_bins}], "
                             f"got {frames.shape}")  # fmt: skip
        if self.guide_lag:
            if lam is None or np.shape(lam) != (frames.shape[1], self.n_bins):
                raise ValueError(f"OnlineWPE: guided, lam must be [{frames.shape[1]}, "
                                 f"{self.n_bins}], got {None if lam is None else np.shape(lam)}")
            lam = np.ascontiguousarray(lam, dtype=np.float64)
        else:
            lam = np.zeros((0, 0))
        out = np.empty_like(frames)
        _wpe_frames(frames, out, self.hist, self.n_frames, self.p_inv, self.filt, self.level,
                    self.delay, self.stride, self.taps, self.forget**self.update_every,
                    self.floor, EPS, MAX_COEFFICIENT, lam, self.guide_lag,
                    self.update_every)  # fmt: skip
        self.n_frames += frames.shape[1]
        return out
