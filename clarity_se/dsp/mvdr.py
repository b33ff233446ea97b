r"""Causal estimate-driven binaural MVDR beamformer on the low-delay STFT.

A single-channel estimate of the target at the two front microphones (an enhancer's output)
gives a time-frequency mask; the mask weights the six-microphone mixture's outer products into
recursively averaged target and noise covariance matrices (mask-based beamforming, Heymann et
al. 2016, Erdogan et al. 2016); their relative transfer function (RTF) and the noise
covariance give, per ear, the MVDR filter that passes the target as it sounds at that ear's
front microphone (binaural MVDR, Doclo et al. 2010) and minimises everything else. The output
is a linear filter of the mixture, free of the separation artefacts of the estimate, with the
target undistorted where the RTF is right.

Per frequency bin and frame ``k`` (``x`` the six microphone spectra, ``m`` the mask,
``lambda = exp(-R / (tau fs))``)::

    m(k)     = mean over ears e of |S_e|^2 / (|S_e|^2 + |X_e - S_e|^2)
    Phi_s(k) = lambda Phi_s(k-1) + (1 - lambda) m(k) x(k) x(k)^H
    Phi_n(k) = lambda Phi_n(k-1) + (1 - lambda) (1 - m(k)) x(k) x(k)^H
    d_e      = Phi_s[:, e] / Phi_s[e, e]                 (RTF to microphone e, covariance column)
    w_e      = Phi_n^-1 d_e / (d_e^H Phi_n^-1 d_e)         (MVDR, Gannot et al. 2001, eq. 20)
    y_e(k)   = (1 - beta) w_e(k)^H x(k) + beta x_e(k)       (beta: ``reference_mix``, default 0)

with ``e`` CH1-L (row 0) and CH1-R (row 1). ``rtf="whitening"`` replaces the covariance column
by covariance whitening (Markovich-Golan and Gannot 2015): with ``Phi_n + loading = L L^H``,
``v`` the principal eigenvector of ``L^-1 Phi_s L^-H`` and ``a = L v``, ``d_e = a / a_e``. Noise
that the mask lets into ``Phi_s`` (a soft or leaky mask) biases the column towards the noise's
transfer function, but only adds to the whitened matrix's identity part, so it leaves ``v``
alone. ``v`` is tracked per bin by :data:`RTF_METHODS` power iterations a frame, warm-started
from the last frame's (the covariances move by ``1 - lambda``, 0.1 %, per frame).

Post-filter (``postfilter_tau_s > 0``; off by default): each ear's output bin is scaled by
``g = max(|P_ys| / sqrt(P_yy P_ss), g_min)``, the root of the magnitude-squared coherence of the
output ``y_e`` and the estimate ``S_e``, with ``P`` their auto- and cross-spectra recursively
averaged over ``postfilter_tau_s`` (from frames up to ``k - lag``, as the covariances): the share
of the output that the estimate explains linearly, a Wiener-like gain that needs no
calibration of the estimate's level (the MVDR followed by a single-channel Wiener filter is
the multichannel Wiener filter: Simmer, Bitzer and Marro 2001).

Both covariances get diagonal loading: ``Phi_n`` by ``loading tr(Phi_n) / 6`` and both by
:data:`EPS` (so that, before any signal, ``d_e`` is the unit vector and the output is microphone
``e`` itself; with ``"whitening"`` the column is kept until ``Phi_s`` holds any signal).
Start-up: after ``k`` statistics frames ``Phi_n``'s relative loading is ``loading + rho^k``,
``rho = exp(-R / (warmup_s fs))`` (``warmup_s`` 0.05 s by default: 1 at the start, 0.14 after
0.1 s, below 1e-8 after 1 s). The first frames' covariances have rank below six, so with the
small loading alone the weights are unbounded in the directions not yet observed: the first
10 ms of independent microphone noise came out 120 times louder than the microphones, the
first 100 ms of held-out scenes up to 7.5 times (1.01 and 1.43 with the start-up loading;
``benchmarks/mvdr_startup.py``; ``tests/dsp/test_mvdr.py``, "no burst at the start"). A
deviation from the papers, which start from covariances averaged beforehand.

Latency
-------
The filter applied to frame ``k`` uses the covariances up to frame ``k - lag`` only, whose
estimate samples end ``lag R`` samples before frame ``k`` does; the estimate at sample ``t``
may itself depend on the mixture up to ``t + L_est``. With ``lag R > L_est`` the weights of
frame ``k`` read no input beyond frame ``k``, so the beamformer adds nothing to the low-delay
STFT's own ``S - 1`` samples (:mod:`clarity_se.dsp.lowdelay_stft`): 191 samples = 4.33 ms for
``K = 512, R = 96, S = 192`` at 44.1 kHz, with ``lag = 2`` covering estimates of up to
``2 R - 1 = 191`` samples' look-ahead (the Conv-TasNet's is 127). Tested in
``tests/dsp/test_mvdr.py``.

References
----------
S. Markovich-Golan and S. Gannot, "Performance analysis of the covariance subtraction method
for relative transfer function estimation and comparison to the covariance whitening method",
Proc. ICASSP 2015, pp. 544-548. S. Gannot, D. Burshtein and E. Weinstein, "Signal enhancement
using beamforming and nonstationarity with applications to speech", IEEE Trans. Signal Process.
49(8), 1614-1626 (2001). J. Heymann, L. Drude and R. Haeb-Umbach, "Neural network based
spectral mask estimation for acoustic beamforming", Proc. ICASSP 2016, pp. 196-200. H. Erdogan,
J. R. Hershey, S. Watanabe, M. Mandel and J. Le Roux, "Improved MVDR beamforming using
single-channel mask prediction networks", Proc. Interspeech 2016, pp. 1981-1985. S. Doclo,
S. Gannot, M. Moonen and A. Spriet, "Acoustic beamforming for hearing aid applications", in
Handbook on Array Processing and Sensor Networks, Wiley, 2010, ch. 9. K. U. Simmer, J. Bitzer
and C. Marro, "Post-filtering techniques", in Microphone Arrays, Springer, 2001, ch. 3.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.fft
import scipy.signal

from clarity_se.dsp.lowdelay_stft import LowDelaySTFT, num_frames
from clarity_se.dsp.wpe import OnlineWPE, packed_index

#: absolute diagonal loading of both covariances (squared STFT magnitude; a 16-bit signal's
#: quantisation noise is about 1e-7 per bin with the default window, so this only matters
#: before any signal)
EPS = 1e-12
#: RTF estimators: name -> power iterations per frame (0: the covariance column)
RTF_METHODS = {"column": 0, "whitening": 2}
#: frames processed at once (bounds the memory of one call's spectra: 64 x 257 per channel)
CHUNK_FRAMES = 64


@numba.njit(cache=True, nogil=True, inline="always")
def _whitened_rtf(phi_s, lower, inv_diag, v, t, d, n_iter, eps):  # pragma: no cover - compiled
    """Covariance-whitening RTFs into ``d [C, 2]`` (kept as given while ``phi_s`` is empty).

    ``v``: the principal eigenvector of ``L^-1 Phi_s L^-H`` (``Phi_n + loading = L L^H``),
    refined by ``n_iter`` power iterations; the RTF is ``L v`` over its entry at each ear's
    reference microphone (Markovich-Golan and Gannot 2015).
    """
    n_ch = v.shape[0]
    trace = 0.0
    for i in range(n_ch):
        trace += phi_s[i, i].real
    if not trace > n_ch * eps:
        return
    for _ in range(n_iter):
        # t = L^-H v (back substitution)
        for i in range(n_ch - 1, -1, -1):
            acc = v[i]
            for k in range(i + 1, n_ch):
                acc -= np.conj(lower[k, i]) * t[k]
            t[i] = acc * inv_diag[i]
        # v = Phi_s t (Hermitian, from the lower triangle)
        for i in range(n_ch):
            acc = 0.0 + 0.0j
            for k in range(n_ch):
                acc += (phi_s[i, k] if k <= i else np.conj(phi_s[k, i])) * t[k]
            v[i] = acc
        # v = L^-1 v (forward substitution), normalised
        norm = 0.0
        for i in range(n_ch):
            acc = v[i]
            for k in range(i):
                acc -= lower[i, k] * v[k]
            v[i] = acc * inv_diag[i]
            norm += v[i].real * v[i].real + v[i].imag * v[i].imag
        if not norm > 0.0:
            return
        scale = 1.0 / np.sqrt(norm)
        for i in range(n_ch):
            v[i] *= scale
    # a = L v; d_e = a / a_e (kept as given where a_e is negligible)
    a_norm = 0.0
    for i in range(n_ch):
        acc = 0.0 + 0.0j
        for k in range(i + 1):
            acc += lower[i, k] * v[k]
        t[i] = acc
        a_norm += acc.real * acc.real + acc.imag * acc.imag
    for e in range(2):
        ref = t[e]
        if ref.real * ref.real + ref.imag * ref.imag > 1e-8 * a_norm:
            inv = 1.0 / ref
            for i in range(n_ch):
                d[i, e] = t[i] * inv


@numba.njit(cache=True, nogil=True)
def _mvdr_frames(
    x, x_stats, s_stats, n_init, phi_s, phi_n, lam, loading, eps, y, eig, n_iter, ref_mix,
    n_prior, warm,
):  # fmt: skip
    """The module docstring's recursion over consecutive frames (compiled; in place).

    ``x [C, F, bins]``: the frames to filter. Frame ``f >= n_init`` first updates the state
    ``phi_s, phi_n [2, C (C + 1) / 2, bins]`` (real and imaginary parts of the packed lower
    triangles, :func:`~clarity_se.dsp.wpe.packed_index`) with statistics frame ``f - n_init``
    (mixture ``x_stats [C, F - n_init, bins]``, estimate ``s_stats [2, F - n_init, bins]``);
    then each frame is
    filtered into ``y [2, F, bins]``. The loaded noise covariance is positive definite and
    factorised by Cholesky. Every step is a loop over bins innermost on real arrays, so that
    the compiler vectorises it across bins; per bin the arithmetic is that of the equations in
    the module docstring. ``n_iter > 0``: the RTFs by covariance whitening, ``n_iter`` power
    iterations per frame warm-started from the state ``eig [bins, C]`` (updated in place; per
    bin, scalar); 0: column selection. ``ref_mix``: share of the reference microphone mixed
    into each ear's output. ``n_prior``: statistics frames in the state before this call;
    ``warm``: the start-up loading's decay per statistics frame (0: none), so that the relative
    loading after ``k`` statistics frames is ``loading + warm^k``.
    """
    n_ch, n_frames, n_bins = x.shape
    n_tri = n_ch * (n_ch + 1) // 2
    psr, psi, pnr, pni = phi_s[0], phi_s[1], phi_n[0], phi_n[1]
    low_r = np.empty((n_tri, n_bins))  # Cholesky factor of the loaded Phi_n, packed
    low_i = np.empty((n_tri, n_bins))
    inv_diag = np.empty((n_ch, n_bins))  # 1 / L[j, j]
    d_r = np.empty((2, n_ch, n_bins))  # d_e
    d_i = np.empty((2, n_ch, n_bins))
    r_r = np.empty((2, n_ch, n_bins))  # d_e, then Phi_n^-1 d_e
    r_i = np.empty((2, n_ch, n_bins))
    mask = np.empty(n_bins)
    acc = np.empty(n_bins)
    # per-bin scratch of the whitening RTF
    phs_b = np.zeros((n_ch, n_ch), np.complex128)
    low_b = np.zeros((n_ch, n_ch), np.complex128)
    d_b = np.zeros((n_ch, 2), np.complex128)
    t_b = np.zeros(n_ch, np.complex128)
    a = 1.0 - lam
    for f in range(n_frames):
        g = f - n_init
        if g >= 0:
            for b in range(n_bins):
                m = 0.0
                for e in range(2):
                    se_r, se_i = s_stats[e, g, b].real, s_stats[e, g, b].imag
                    ne_r, ne_i = x_stats[e, g, b].real - se_r, x_stats[e, g, b].imag - se_i
                    ps = se_r * se_r + se_i * se_i
                    pn = ne_r * ne_r + ne_i * ne_i
                    m += ps / max(ps + pn, 1e-30)
                mask[b] = 0.5 * m
            for i in range(n_ch):
                for j in range(i + 1):
                    p = packed_index(i, j)
                    for b in range(n_bins):
                        xi_r, xi_i = x_stats[i, g, b].real, x_stats[i, g, b].imag
                        xj_r, xj_i = x_stats[j, g, b].real, x_stats[j, g, b].imag
                        o_r = xi_r * xj_r + xi_i * xj_i  # x_i conj(x_j)
                        o_i = xi_i * xj_r - xi_r * xj_i
                        u_r, u_i = mask[b] * o_r, mask[b] * o_i
                        psr[p, b] = lam * psr[p, b] + a * u_r
                        psi[p, b] = lam * psi[p, b] + a * u_i
                        pnr[p, b] = lam * pnr[p, b] + a * (o_r - u_r)
                        pni[p, b] = lam * pni[p, b] + a * (o_i - u_i)
        # RTFs: columns 0 and 1 of Phi_s + eps I over their diagonal entries
        for e in range(2):
            pee = packed_index(e, e)
            for i in range(n_ch):
                if i >= e:
                    p, sign, add = packed_index(i, e), 1.0, (eps if i == e else 0.0)
                else:
                    p, sign, add = packed_index(e, i), -1.0, 0.0
                for b in range(n_bins):
                    inv_norm = 1.0 / (psr[pee, b] + eps)
                    d_r[e, i, b] = (psr[p, b] + add) * inv_norm
                    d_i[e, i, b] = sign * psi[p, b] * inv_norm
                    r_r[e, i, b] = d_r[e, i, b]
                    r_i[e, i, b] = d_i[e, i, b]
        # Cholesky: Phi_n + (rel tr(Phi_n) / C + eps) I = L L^H, rel the loading plus its
        # start-up part after the statistics frames so far
        rel = loading + (warm ** (n_prior + max(g + 1, 0)) if warm > 0.0 else 0.0)
        for b in range(n_bins):
            trace = 0.0
            for i in range(n_ch):
                trace += pnr[packed_index(i, i), b]
            acc[b] = rel * trace / n_ch + eps
        for j in range(n_ch):
            pjj = packed_index(j, j)
            for b in range(n_bins):
                low_r[pjj, b] = pnr[pjj, b] + acc[b]  # acc: the loading until the pivot's
            for k in range(j):
                pjk = packed_index(j, k)
                for b in range(n_bins):
                    low_r[pjj, b] -= low_r[pjk, b] * low_r[pjk, b] + low_i[pjk, b] * low_i[pjk, b]
            for b in range(n_bins):
                piv = np.sqrt(max(low_r[pjj, b], eps))
                low_r[pjj, b] = piv
                low_i[pjj, b] = 0.0
                inv_diag[j, b] = 1.0 / piv
            for i in range(j + 1, n_ch):
                pij = packed_index(i, j)
                for b in range(n_bins):
                    low_r[pij, b] = pnr[pij, b]
                    low_i[pij, b] = pni[pij, b]
                for k in range(j):  # L[i, j] -= L[i, k] conj(L[j, k])
                    pik, pjk = packed_index(i, k), packed_index(j, k)
                    for b in range(n_bins):
                        a_r, a_i = low_r[pik, b], low_i[pik, b]
                        c_r, c_i = low_r[pjk, b], low_i[pjk, b]
                        low_r[pij, b] -= a_r * c_r + a_i * c_i
                        low_i[pij, b] -= a_i * c_r - a_r * c_i
                for b in range(n_bins):
                    low_r[pij, b] *= inv_diag[j, b]
                    low_i[pij, b] *= inv_diag[j, b]
        if n_iter > 0:
            for b in range(n_bins):
                for i in range(n_ch):
                    for j in range(i + 1):
                        p = packed_index(i, j)
                        phs_b[i, j] = complex(psr[p, b], psi[p, b])
                        low_b[i, j] = complex(low_r[p, b], low_i[p, b])
                    for e in range(2):
                        d_b[i, e] = complex(d_r[e, i, b], d_i[e, i, b])
                _whitened_rtf(phs_b, low_b, inv_diag[:, b], eig[b], t_b, d_b, n_iter, eps)
                for e in range(2):
                    for i in range(n_ch):
                        d_r[e, i, b] = r_r[e, i, b] = d_b[i, e].real
                        d_i[e, i, b] = r_i[e, i, b] = d_b[i, e].imag
        # L z = d_e, then L^H num_e = z; w_e = num_e / (d_e^H num_e); y_e = w_e^H x
        for e in range(2):
            for i in range(n_ch):
                for k in range(i):
                    pik = packed_index(i, k)
                    for b in range(n_bins):
                        r_r[e, i, b] -= low_r[pik, b] * r_r[e, k, b] - low_i[pik, b] * r_i[e, k, b]
                        r_i[e, i, b] -= low_r[pik, b] * r_i[e, k, b] + low_i[pik, b] * r_r[e, k, b]
                for b in range(n_bins):
                    r_r[e, i, b] *= inv_diag[i, b]
                    r_i[e, i, b] *= inv_diag[i, b]
            for i in range(n_ch - 1, -1, -1):
                for k in range(i + 1, n_ch):  # conj(L[k, i]) r[k]
                    pki = packed_index(k, i)
                    for b in range(n_bins):
                        r_r[e, i, b] -= low_r[pki, b] * r_r[e, k, b] + low_i[pki, b] * r_i[e, k, b]
                        r_i[e, i, b] -= low_r[pki, b] * r_i[e, k, b] - low_i[pki, b] * r_r[e, k, b]
                for b in range(n_bins):
                    r_r[e, i, b] *= inv_diag[i, b]
                    r_i[e, i, b] *= inv_diag[i, b]
            for b in range(n_bins):
                den_r = den_i = out_r = out_i = 0.0
                for i in range(n_ch):
                    # den += conj(d_i) r_i; out += conj(r_i) x_i
                    den_r += d_r[e, i, b] * r_r[e, i, b] + d_i[e, i, b] * r_i[e, i, b]
                    den_i += d_r[e, i, b] * r_i[e, i, b] - d_i[e, i, b] * r_r[e, i, b]
                    x_r, x_i = x[i, f, b].real, x[i, f, b].imag
                    out_r += r_r[e, i, b] * x_r + r_i[e, i, b] * x_i
                    out_i += r_r[e, i, b] * x_i - r_i[e, i, b] * x_r
                q = 1.0 / (den_r * den_r + den_i * den_i)  # out / conj(den)
                w_r = (out_r * den_r - out_i * den_i) * q
                w_i = (out_i * den_r + out_r * den_i) * q
                y[e, f, b] = complex((1.0 - ref_mix) * w_r + ref_mix * x[e, f, b].real,
                                     (1.0 - ref_mix) * w_i + ref_mix * x[e, f, b].imag)


class EstimateMVDR:
    """Streaming causal MVDR driven by an estimate of the target at the front microphones.

    Parameters
    ----------
    n_channels : int
        Microphones of the mixture (6 in the Clarity layout; rows 0 and 1 are the left and
        right front microphones, the references).
    sample_rate : int
        Hz (sets the recursive average's ``lambda``).
    tau_s : float
        Time constant of the recursive covariance averages, s (default 2.0: chosen over 1.0
        on held-out scenes, ``recipes/icassp_2023/convtasnet/README.md``, "The MVDR
        residual").
    loading : float
        Relative diagonal loading of the noise covariance (default 1e-6).
    lag : int
        Frames between the newest covariance update and the frame it filters (default 2; see
        the module docstring).
    stft : LowDelaySTFT, optional
        Transform (default ``LowDelaySTFT(512, 96, 192)``, 4.33 ms at 44.1 kHz).
    rtf : {"column", "whitening"}
        RTF estimator: the target covariance's column, or covariance whitening (module
        docstring).
    reference_mix : float
        Share ``beta`` of each ear's reference microphone in its output, ``(1 - beta) w_e^H x +
        beta x_e`` (default 0: the MVDR alone); bounds the suppression of anything, the target
        included, to ``-20 log10(beta)`` dB where the filter removes it entirely.
    wpe_taps : int
        Taps per ear ``K`` of the online WPE dereverberation of the two outputs
        (:class:`clarity_se.dsp.wpe.OnlineWPE`, the ears predicted jointly; default 0: none).
        Its prediction delay is the frames' overlap, ``ceil(K_win / R)`` frames (6); it uses
        past output frames only and adds no latency.
    wpe_stride : int
        Frames between the WPE taps (default 3).
    wpe_tau_s : float
        Time constant of the WPE's recursive least squares, s (default 1.0).
    wpe_update_every : int
        Frames between the WPE's updates (default 1: every frame; ``OnlineWPE``'s
        ``update_every``: 4 updates every 8.7 ms in about a third of the WPE's time).
    wpe_max_hz : float
        Highest frequency, Hz, of the bins the WPE dereverberates (default 0: every bin); the
        bins above pass the beamformer's output unchanged. 8 kHz is the top of the HASPI/HASQI
        ear model's band; the WPE's cost is proportional to its bins.
    postfilter_tau_s : float
        Time constant of the post-filter's spectra, s (default 0: no post-filter; module
        docstring). Uses frames up to ``k - lag`` only: no added latency.
    postfilter_floor : float
        Least gain of the post-filter, in ``(0, 1]`` (default 0.1, -20 dB).
    warmup_s : float
        Time constant of the start-up loading, s (default 0.05; 0: none; module docstring).
    wpe_guided : bool
        The WPE's ``lam`` from the estimate's power (mean over the ears) instead of the
        output's, its update ``lag`` frames late (:class:`~clarity_se.dsp.wpe.OnlineWPE`,
        ``guide_lag``; default False).
    estimate_gain_db : float
        Gain on the estimate before it enters the mask, dB (default 0). The mask ``m`` compares
        the estimate with the rest of the mixture, so it depends on the estimate's level: an
        enhancer's output gain of ``g`` dB (e.g. the DTLN's -7.2 dB) compresses a mask towards 0
        for ``g < 0``, which ``estimate_gain_db = -g`` undoes.
        The post-filter's coherence is invariant to it; the guided WPE's weights scale with it
        (the recursion's result does not, apart from its regularisation).

    Notes
    -----
    :meth:`process` takes the mixture and the estimate as they arrive (the estimate may lag
    the mixture) and returns the output samples that are final; :meth:`flush` returns the rest
    so that the output has the mixture's length. Memory is bounded: at most ``lag`` spectra
    and ``CHUNK_FRAMES`` output spectra per call. The whole-signal result is :func:`mvdr`, this
    class run once. Float64 inside, float32 out; framing, FFTs (scipy's) and overlap-add in
    numpy, with the conventions of :mod:`clarity_se.dsp.lowdelay_stft` (the first ``S / R - 1``
    hops precede sample 0). The recursion runs in a numba-compiled kernel (per frame: the
    packed lower triangles of the covariances, a Cholesky solve for both ears, each step a loop
    over bins on real arrays that the compiler vectorises; equal to the equations above with
    ``np.linalg.solve`` within 1e-8 of the output's scale, ``tests/dsp/test_mvdr.py``). A call
    with one hop of each signal, as the streamers make, frames both with one FFT call.
    :meth:`covariances` gives the current covariance matrices.

    Raises
    ------
    ValueError
        ``tau_s <= 0``, ``loading < 0``, ``lag < 1``, fewer than two channels, an unknown
        ``rtf``, ``reference_mix`` outside ``[0, 1]``, ``wpe_taps < 0``, ``wpe_stride < 1``,
        ``wpe_tau_s <= 0``, ``wpe_max_hz < 0``, ``wpe_update_every < 1``,
        ``postfilter_tau_s < 0``, ``postfilter_floor`` outside ``(0, 1]``, ``warmup_s < 0`` or
        a non-finite ``estimate_gain_db``.
    """

    def __init__(self, n_channels: int = 6, sample_rate: int = 44100, tau_s: float = 2.0,
                 loading: float = 1e-6, lag: int = 2, stft: LowDelaySTFT | None = None,
                 rtf: str = "column", reference_mix: float = 0.0, wpe_taps: int = 0,
                 wpe_stride: int = 3, wpe_tau_s: float = 1.0, wpe_update_every: int = 1,
                 wpe_max_hz: float = 0.0, postfilter_tau_s: float = 0.0,
                 postfilter_floor: float = 0.1, warmup_s: float = 0.05,
                 wpe_guided: bool = False, estimate_gain_db: float = 0.0) -> None:  # fmt: skip
        if not tau_s > 0:
            raise ValueError(f"EstimateMVDR: tau_s must be > 0 s, got {tau_s}")
        if not loading >= 0:
            raise ValueError(f"EstimateMVDR: loading must be >= 0, got {loading}")
        if int(lag) < 1:
            raise ValueError(f"EstimateMVDR: lag must be >= 1 frame, got {lag}")
        if int(n_channels) < 2:
            raise ValueError(f"EstimateMVDR: need >= 2 channels, got {n_channels}")
        if rtf not in RTF_METHODS:
            raise ValueError(f"EstimateMVDR: rtf must be one of {sorted(RTF_METHODS)}, got {rtf!r}")
        self.rtf, self.n_iter = rtf, RTF_METHODS[rtf]
        if not 0.0 <= reference_mix <= 1.0:
            raise ValueError(f"EstimateMVDR: reference_mix must be in [0, 1], got {reference_mix}")
        self.reference_mix = float(reference_mix)
        if not np.isfinite(estimate_gain_db):
            raise ValueError(f"EstimateMVDR: estimate_gain_db must be finite, got "
                             f"{estimate_gain_db}")  # fmt: skip
        self.estimate_gain = float(10.0 ** (estimate_gain_db / 20.0))
        self.stft = LowDelaySTFT(512, 96, 192) if stft is None else stft
        self.n_channels, self.lag, self.loading = int(n_channels), int(lag), float(loading)
        self.forget = float(np.exp(-self.stft.hop_length / (tau_s * sample_rate)))
        if not warmup_s >= 0:
            raise ValueError(f"EstimateMVDR: warmup_s must be >= 0 s, got {warmup_s}")
        self.warm = (float(np.exp(-self.stft.hop_length / (warmup_s * sample_rate)))
                     if warmup_s > 0 else 0.0)  # fmt: skip
        if (int(wpe_taps) < 0 or int(wpe_stride) < 1 or not wpe_tau_s > 0
                or not wpe_max_hz >= 0 or int(wpe_update_every) < 1):
            raise ValueError(f"EstimateMVDR: need wpe_taps >= 0, wpe_stride >= 1, wpe_tau_s > 0, "
                             f"wpe_max_hz >= 0 and wpe_update_every >= 1, got {wpe_taps}, "
                             f"{wpe_stride}, {wpe_tau_s}, {wpe_max_hz}, "
                             f"{wpe_update_every}")  # fmt: skip
        self.wpe = None
        # bins 0 .. wpe_bins - 1 (at or below wpe_max_hz) are dereverberated
        bin_hz = sample_rate / self.stft.win_length
        self.wpe_bins = (self.stft.n_bins if not wpe_max_hz
                         else min(int(wpe_max_hz // bin_hz) + 1, self.stft.n_bins))  # fmt: skip
        if int(wpe_taps) > 0:  # prediction delay: the frames' overlap, so the direct sound stays
            delay = -(-self.stft.win_length // self.stft.hop_length)
            self.wpe = OnlineWPE(2, self.wpe_bins, int(wpe_taps), delay, int(wpe_stride),
                                 float(np.exp(-self.stft.hop_length / (wpe_tau_s * sample_rate))),
                                 guide_lag=self.lag if wpe_guided else 0,
                                 update_every=int(wpe_update_every))  # fmt: skip
        if not postfilter_tau_s >= 0 or not 0.0 < postfilter_floor <= 1.0:
            raise ValueError(f"EstimateMVDR: need postfilter_tau_s >= 0 and postfilter_floor in "
                             f"(0, 1], got {postfilter_tau_s}, {postfilter_floor}")  # fmt: skip
        self.postfilter_floor = float(postfilter_floor)
        self.postfilter_forget = (
            float(np.exp(-self.stft.hop_length / (postfilter_tau_s * sample_rate)))
            if postfilter_tau_s > 0 else None
        )  # fmt: skip
        self._analysis_window = self.stft.analysis_window.double().numpy()
        self._synthesis_window = self.stft.synthesis_window.double().numpy()
        self.reset()

    @property
    def latency_samples(self) -> int:
        """Algorithmic look-ahead, samples: the STFT's ``S - 1`` (module docstring)."""
        return int(self.stft.latency_samples)

    @property
    def max_estimate_latency(self) -> int:
        """The largest estimate look-ahead, samples, that adds no latency: ``lag R - 1``."""
        return self.lag * self.stft.hop_length - 1

    def latency_with(self, estimate_latency: int, who: str) -> int:
        """Look-ahead, samples, of this beamformer driven by an estimate that looks
        ``estimate_latency`` samples ahead: the larger of the two.

        Raises
        ------
        ValueError
            ``estimate_latency`` above :attr:`max_estimate_latency` (the lag would not cover
            it); the message starts with ``who``.
        """
        if estimate_latency > self.max_estimate_latency:
            raise ValueError(f"{who} looks {estimate_latency} samples ahead, the beamformer "
                             f"covers at most {self.max_estimate_latency}")  # fmt: skip
        return max(int(estimate_latency), self.latency_samples)

    def reset(self) -> None:
        """Forget all state (start a new signal)."""
        K, R = self.stft.win_length, self.stft.hop_length
        n_bins, C = self.stft.n_bins, self.n_channels
        # input samples not yet framed, after the K - R zeros before sample 0
        self.mix_buf = np.zeros((C, K - R))
        self.est_buf = np.zeros((2, K - R))
        self.n_mix = self.n_est = 0  # samples given
        # overlap-add: the partial sums of the next S - R output samples, in hops
        self.ola = np.zeros((2, self.stft.synth_length // R - 1, R))
        self.n_synth = 0  # frames synthesised
        # real and imaginary parts of the covariances' packed lower triangles (the kernel's
        # layout; :meth:`covariances` gives the matrices)
        self.phi_s = np.zeros((2, C * (C + 1) // 2, n_bins))
        self.phi_n = np.zeros((2, C * (C + 1) // 2, n_bins))
        self.v = np.full((n_bins, C), C**-0.5, np.complex128)  # power iteration's state
        self.x_frames = np.zeros((C, 0, n_bins), np.complex128)  # from frame x_base on
        self.s_frames = np.zeros((2, 0, n_bins), np.complex128)  # from frame s_base on
        self.x_base = self.s_base = 0
        self.n_out = 0  # frames beamformed
        self.n_samples_out = 0
        if self.wpe is not None:
            self.wpe.reset()
        # post-filter: smoothed |y|^2, |S|^2 (real) and y S^* (complex) per ear and bin, and the
        # (post-WPE) output frames not yet in them
        self.pf_state = [np.zeros((2, 1, n_bins)), np.zeros((2, 1, n_bins)),
                         np.zeros((2, 1, n_bins), np.complex128)]  # fmt: skip
        self.pf_y = np.zeros((2, 0, n_bins), np.complex128)

    def covariances(self) -> tuple[np.ndarray, np.ndarray]:
        """The current target and noise covariances ``Phi_s, Phi_n [bins, C, C]``, complex
        Hermitian, unloaded (module docstring), rebuilt from the kernel's packed state."""
        C = self.n_channels
        rows, cols = np.tril_indices(C)  # packed_index's order
        out = []
        for state in (self.phi_s, self.phi_n):
            full = np.zeros((state.shape[-1], C, C), np.complex128)
            full[:, rows, cols] = (state[0] + 1j * state[1]).T
            full[:, cols, rows] = np.conj(full[:, rows, cols])
            out.append(full)
        return out[0], out[1]

    def _windowed(self, buf: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The windowed frames ``[rows, f, K]`` that ``x`` completes after the unframed
        samples ``buf`` (the framing of :mod:`clarity_se.dsp.lowdelay_stft`), and the samples
        left unframed."""
        K, R = self.stft.win_length, self.stft.hop_length
        buf = np.concatenate([buf, x], axis=1)
        n_new = (buf.shape[1] - (K - R)) // R
        if n_new <= 0:
            return np.zeros((buf.shape[0], 0, K)), buf
        if n_new == 1:  # one hop at a time, as the streamers feed it
            frames = buf[:, None, :K]
        else:
            frames = np.lib.stride_tricks.sliding_window_view(buf[:, : (n_new - 1) * R + K], K,
                                                              axis=1)[:, ::R]  # fmt: skip
        return frames * self._analysis_window, buf[:, n_new * R :]

    def _frames(self, buf: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_windowed`'s frames as spectra ``[rows, f, bins]``, and the samples left."""
        frames, buf = self._windowed(buf, x)
        return scipy.fft.rfft(frames, n=self.stft.n_fft, axis=-1), buf

    def _synthesise(self, y: np.ndarray) -> np.ndarray:
        """Overlap-add the spectra ``y [2, f, bins]``; return the output samples now final."""
        K, R, S = self.stft.win_length, self.stft.hop_length, self.stft.synth_length
        n, j = y.shape[1], S // R
        segments = scipy.fft.irfft(y, n=self.stft.n_fft, axis=-1)[..., K - S : K]
        segments = (segments * self._synthesis_window).reshape(2, n, j, R)
        acc = np.zeros((2, n + j - 1, R))  # hops from the first new frame's on
        acc[:, : j - 1] = self.ola  # the partial sums of the last frames' S - R samples
        for m in range(j):
            acc[:, m : m + n] += segments[:, :, m]
        self.ola = acc[:, n:]
        drop = max(j - 1 - self.n_synth, 0)  # the first S / R - 1 hops precede sample 0
        self.n_synth += n
        return acc[:, drop:n].reshape(2, -1)

    def _run(self) -> np.ndarray:
        """Beamform every frame whose covariances are known; return final output samples."""
        lag = self.lag
        out = []
        while True:
            x_avail = self.x_base + self.x_frames.shape[1]
            s_avail = self.s_base + self.s_frames.shape[1]
            stop = min(x_avail, s_avail + lag, self.n_out + CHUNK_FRAMES)
            if stop <= self.n_out:
                break
            start = self.n_out
            # covariances after stats frames i = j - lag for j in [start, stop)
            i0, i1 = max(start - lag, 0), max(stop - lag, 0)
            n_init = min(stop, lag) - min(start, lag)  # frames filtered before any statistics
            y = np.empty((2, stop - start, self.stft.n_bins), np.complex128)
            _mvdr_frames(  # contiguous copies: one compiled signature
                np.ascontiguousarray(self.x_frames[:, start - self.x_base : stop - self.x_base]),
                np.ascontiguousarray(self.x_frames[:, i0 - self.x_base : i1 - self.x_base]),
                np.ascontiguousarray(self.s_frames[:, i0 - self.s_base : i1 - self.s_base]),
                n_init, self.phi_s, self.phi_n, self.forget, self.loading, EPS, y, self.v,
                self.n_iter, self.reference_mix, i0, self.warm,
            )  # fmt: skip
            if self.wpe is not None:
                lam = None
                if self.wpe.guide_lag:  # the estimate's power in frames j - lag (i0 .. i1 - 1)
                    lam = np.zeros((stop - start, self.wpe_bins))
                    upd = self.s_frames[:, i0 - self.s_base : i1 - self.s_base, : self.wpe_bins]
                    lam[lam.shape[0] - (i1 - i0) :] = np.mean(np.abs(upd) ** 2, axis=0)
                y[..., : self.wpe_bins] = self.wpe.process(y[..., : self.wpe_bins], lam)
            if self.postfilter_forget is not None:
                y = self._postfilter(y, start, stop, i0, i1)
            out.append(self._synthesise(y))
            self.n_out = stop
            # keep what later frames still need: x from stop - lag, s from stop - lag
            keep = max(stop - lag, 0)
            self.x_frames = self.x_frames[:, keep - self.x_base :]
            self.s_frames = self.s_frames[:, max(keep - self.s_base, 0) :]
            self.x_base, self.s_base = keep, max(keep, self.s_base)
        return np.concatenate(out, axis=1) if out else np.zeros((2, 0))

    def _postfilter(self, y: np.ndarray, start: int, stop: int, i0: int, i1: int) -> np.ndarray:
        """Scale the output frames ``y [2, stop - start, bins]`` by the post-filter's gains
        (module docstring): frame ``j`` by the spectra after frame ``j - lag`` (``i0 .. i1 - 1``
        are the frames they take in now); frames before ``lag`` pass unchanged."""
        lag, a = self.lag, self.postfilter_forget
        y_all = np.concatenate([self.pf_y, y], axis=1)  # frames max(start - lag, 0) .. stop - 1
        new_y = y_all[:, : i1 - i0]
        new_s = self.s_frames[:, i0 - self.s_base : i1 - self.s_base]
        self.pf_y = y_all[:, max(stop - lag, 0) - i0 :]
        if i1 == i0:
            return y
        b, den = [1.0 - a], [1.0, -a]
        smoothed = []
        for k, z in enumerate((np.abs(new_y) ** 2, np.abs(new_s) ** 2, new_y * np.conj(new_s))):
            out, self.pf_state[k] = scipy.signal.lfilter(b, den, z, axis=1, zi=self.pf_state[k])
            smoothed.append(out)
        p_yy, p_ss, p_ys = smoothed
        gain = np.abs(p_ys) / np.sqrt(p_yy * p_ss + EPS * EPS)
        gain = np.clip(gain, self.postfilter_floor, 1.0)
        first = max(start, lag) - start  # frames j < lag: no spectra yet
        y = y.copy()
        y[:, first:] *= gain  # frame j = i + lag
        return y

    def _add(self, mixture: np.ndarray, estimate: np.ndarray) -> None:
        """Frame and transform the new samples ``mixture [C, n]``, ``estimate [2, m]``."""
        x, self.mix_buf = self._windowed(self.mix_buf, mixture)
        s, self.est_buf = self._windowed(self.est_buf, estimate)
        if x.shape[1] and x.shape[1] == s.shape[1]:  # one FFT call for both
            spectra = scipy.fft.rfft(np.concatenate([x, s]), n=self.stft.n_fft, axis=-1)
            x, s = spectra[: self.n_channels], spectra[self.n_channels :]
        else:
            x = scipy.fft.rfft(x, n=self.stft.n_fft, axis=-1) if x.shape[1] else None
            s = scipy.fft.rfft(s, n=self.stft.n_fft, axis=-1) if s.shape[1] else None
        if x is not None:
            self.x_frames = np.concatenate([self.x_frames, x], axis=1)
        if s is not None:
            self.s_frames = np.concatenate([self.s_frames, s], axis=1)

    def process(self, mixture: np.ndarray, estimate: np.ndarray) -> np.ndarray:
        """Feed ``mixture [C, n]`` and ``estimate [2, m]`` (the next samples of each).

        Returns
        -------
        np.ndarray [shape=(2, k)], float32
            The output samples that are final (left, right).

        Raises
        ------
        ValueError
            Wrong channel counts.
        """
        mixture, estimate = np.asarray(mixture), np.asarray(estimate)
        if mixture.ndim != 2 or mixture.shape[0] != self.n_channels:
            raise ValueError(f"EstimateMVDR: mixture must be [{self.n_channels}, n], "
                             f"got {mixture.shape}")  # fmt: skip
        if estimate.ndim != 2 or estimate.shape[0] != 2:
            raise ValueError(f"EstimateMVDR: estimate must be [2, n], got {estimate.shape}")
        self.n_mix += mixture.shape[1]
        self.n_est += estimate.shape[1]
        self._add(mixture.astype(np.float64), estimate.astype(np.float64) * self.estimate_gain)
        out = self._run()
        self.n_samples_out += out.shape[-1]
        return out.astype(np.float32)

    def flush(self) -> np.ndarray:
        """End of signal (after all of the estimate was given): the remaining output
        ``[2, k]`` so that the total equals the mixture's length; then reset."""
        K, R, S = self.stft.win_length, self.stft.hop_length, self.stft.synth_length
        n_left = self.n_mix - self.n_samples_out
        pads = []
        for buf, n in ((self.mix_buf, self.n_mix), (self.est_buf, self.n_est)):
            # zeros beyond the end, up to the frames that cover every given sample
            missing = num_frames(n, R, S) - n // R
            pads.append(max(missing * R - (buf.shape[1] - (K - R)), 0))
        self._add(np.zeros((self.n_channels, pads[0])), np.zeros((2, pads[1])))
        out = self._run().astype(np.float32)[:, : max(n_left, 0)]
        self.reset()
        return out

def mvdr(mixture: np.ndarray, estimate: np.ndarray, **kwargs) -> np.ndarray:
    """Whole-signal :class:`EstimateMVDR`: ``mixture [C, T]``, ``estimate [2, T]`` -> ``[2, T]``.

    Raises
    ------
    ValueError
        Wrong shapes, or ``mixture`` and ``estimate`` of different lengths.
    """
    mixture, estimate = np.asarray(mixture), np.asarray(estimate)
    if mixture.ndim != 2 or estimate.ndim != 2 or mixture.shape[1] != estimate.shape[1]:
        raise ValueError(f"mvdr: mixture [C, T] and estimate [2, T] must have one length, got "
                         f"{mixture.shape} and {estimate.shape}")  # fmt: skip
    beamformer = EstimateMVDR(mixture.shape[0], **kwargs)
    head = beamformer.process(mixture, estimate)
    return np.concatenate([head, beamformer.flush()], axis=1)
