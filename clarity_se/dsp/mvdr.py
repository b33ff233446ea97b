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
    y_e(k)   = w_e(k)^H x(k)

with ``e`` CH1-L (row 0) and CH1-R (row 1). Both covariances get diagonal loading: ``Phi_n`` by
``loading tr(Phi_n) / 6`` and both by :data:`EPS` (so that, before any signal, ``d_e`` is the unit
vector and the output is microphone ``e`` itself).

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
S. Gannot, D. Burshtein and E. Weinstein, "Signal enhancement using beamforming and
nonstationarity with applications to speech", IEEE Trans. Signal Process. 49(8), 1614-1626
(2001). J. Heymann, L. Drude and R. Haeb-Umbach, "Neural network based spectral mask estimation
for acoustic beamforming", Proc. ICASSP 2016, pp. 196-200. H. Erdogan, J. R. Hershey, S.
Watanabe, M. Mandel and J. Le Roux, "Improved MVDR beamforming using single-channel mask
prediction networks", Proc. Interspeech 2016, pp. 1981-1985. S. Doclo, S. Gannot, M. Moonen
and A. Spriet, "Acoustic beamforming for hearing aid applications", in Handbook on Array
Processing and Sensor Networks, Wiley, 2010, ch. 9.
"""

from __future__ import annotations

import numpy as np
import torch

from clarity_se.dsp.lowdelay_stft import FrameBuffer, LowDelaySTFT, OverlapAddBuffer

#: absolute diagonal loading of both covariances (squared STFT magnitude; a 16-bit signal's
#: quantisation noise is about 1e-7 per bin with the default window, so this only matters
#: before any signal)
EPS = 1e-12
#: frames processed at once (bounds the memory of the outer products: 64 x 257 x 36 complex)
CHUNK_FRAMES = 64


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
        Time constant of the recursive covariance averages, s (default 1.0).
    loading : float
        Relative diagonal loading of the noise covariance (default 1e-6).
    lag : int
        Frames between the newest covariance update and the frame it filters (default 2; see
        the module docstring).
    stft : LowDelaySTFT, optional
        Transform (default ``LowDelaySTFT(512, 96, 192)``, 4.33 ms at 44.1 kHz).

    Notes
    -----
    :meth:`process` takes the mixture and the estimate as they arrive (the estimate may lag
    the mixture) and returns the output samples that are final; :meth:`flush` returns the rest
    so that the output has the mixture's length. Memory is bounded: at most ``lag`` spectra
    and ``CHUNK_FRAMES`` outer products per call. The whole-signal result is :func:`mvdr`, this
    class run once. Float64 inside, float32 out.

    Raises
    ------
    ValueError
        ``tau_s <= 0``, ``loading < 0``, ``lag < 1`` or fewer than two channels.
    """

    def __init__(self, n_channels: int = 6, sample_rate: int = 44100, tau_s: float = 1.0,
                 loading: float = 1e-6, lag: int = 2,
                 stft: LowDelaySTFT | None = None) -> None:  # fmt: skip
        if not tau_s > 0:
            raise ValueError(f"EstimateMVDR: tau_s must be > 0 s, got {tau_s}")
        if not loading >= 0:
            raise ValueError(f"EstimateMVDR: loading must be >= 0, got {loading}")
        if int(lag) < 1:
            raise ValueError(f"EstimateMVDR: lag must be >= 1 frame, got {lag}")
        if int(n_channels) < 2:
            raise ValueError(f"EstimateMVDR: need >= 2 channels, got {n_channels}")
        self.stft = LowDelaySTFT(512, 96, 192) if stft is None else stft
        self.n_channels, self.lag, self.loading = int(n_channels), int(lag), float(loading)
        self.forget = float(np.exp(-self.stft.hop_length / (tau_s * sample_rate)))
        self.reset()

    @property
    def latency_samples(self) -> int:
        """Algorithmic look-ahead, samples: the STFT's ``S - 1`` (module docstring)."""
        return int(self.stft.latency_samples)

    @property
    def max_estimate_latency(self) -> int:
        """The largest estimate look-ahead, samples, that adds no latency: ``lag R - 1``."""
        return self.lag * self.stft.hop_length - 1

    def reset(self) -> None:
        """Forget all state (start a new signal)."""
        K, R = self.stft.win_length, self.stft.hop_length
        self.mix_framer, self.est_framer = FrameBuffer(K, R), FrameBuffer(K, R)
        self.ola = OverlapAddBuffer(R, self.stft.synth_length)
        n_bins, C = self.stft.n_bins, self.n_channels
        self.phi_s = np.zeros((n_bins, C, C), np.complex128)
        self.phi_n = np.zeros((n_bins, C, C), np.complex128)
        self.x_frames = np.zeros((C, 0, n_bins), np.complex128)  # from frame x_base on
        self.s_frames = np.zeros((2, 0, n_bins), np.complex128)  # from frame s_base on
        self.x_base = self.s_base = 0
        self.n_out = 0  # frames beamformed
        self.n_in = self.n_samples_out = 0

    def _spectra(self, frames: torch.Tensor) -> np.ndarray:
        return self.stft.analysis_frames(frames).numpy()

    def _update(self, x: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Covariances after each of the frames ``x [C, f, bins]``, ``s [2, f, bins]``."""
        ps = np.abs(s) ** 2
        pn = np.abs(x[:2] - s) ** 2
        mask = np.mean(ps / np.maximum(ps + pn, 1e-30), axis=0)  # [f, bins]
        outer = np.einsum("cfb,dfb->fbcd", x, x.conj())  # [f, bins, C, C]
        phi_s = mask[..., None, None] * outer
        phi_n = outer - phi_s
        lam = self.forget
        # the recursive averages, frame by frame (faster than scipy.signal.lfilter along
        # axis 0 here): Phi(k) = lam Phi(k - 1) + (1 - lam) u(k), in place
        for phi, last in ((phi_s, self.phi_s), (phi_n, self.phi_n)):
            phi *= 1.0 - lam
            phi[0] += lam * last
            for k in range(1, phi.shape[0]):
                phi[k] += lam * phi[k - 1]
        self.phi_s, self.phi_n = phi_s[-1].copy(), phi_n[-1].copy()
        return phi_s, phi_n

    def _weights(self, phi_s: np.ndarray, phi_n: np.ndarray) -> np.ndarray:
        """MVDR filters ``[..., bins, C, 2]`` (a column per ear) of ``[..., bins, C, C]``."""
        eye = np.eye(self.n_channels)
        phi_s = phi_s + EPS * eye
        trace = np.trace(phi_n, axis1=-2, axis2=-1).real[..., None, None]
        phi_n = phi_n + (self.loading * trace / self.n_channels + EPS) * eye
        d = phi_s[..., :, :2] / np.diagonal(phi_s, axis1=-2, axis2=-1)[..., None, :2]
        num = np.linalg.solve(phi_n, d)  # Phi_n^-1 d, [..., C, 2]
        den = np.einsum("...ce,...ce->...e", d.conj(), num)
        return num / den[..., None, :]

    def _run(self) -> torch.Tensor:
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
            phi_s = np.broadcast_to(self.phi_s, (n_init, *self.phi_s.shape))
            phi_n = np.broadcast_to(self.phi_n, (n_init, *self.phi_n.shape))
            if i1 > i0:
                x = self.x_frames[:, i0 - self.x_base : i1 - self.x_base]
                s = self.s_frames[:, i0 - self.s_base : i1 - self.s_base]
                new_s, new_n = self._update(x, s)
                phi_s = np.concatenate([phi_s, new_s]) if n_init else new_s
                phi_n = np.concatenate([phi_n, new_n]) if n_init else new_n
            w = self._weights(phi_s, phi_n)  # [f, bins, C, 2]
            x = self.x_frames[:, start - self.x_base : stop - self.x_base]
            y = np.einsum("fbce,cfb->efb", w.conj(), x)
            out.append(self.ola.process(self.stft.synthesis_segments(torch.from_numpy(y))))
            self.n_out = stop
            # keep what later frames still need: x from stop - lag, s from stop - lag
            keep = max(stop - lag, 0)
            self.x_frames = self.x_frames[:, keep - self.x_base :]
            self.s_frames = self.s_frames[:, max(keep - self.s_base, 0) :]
            self.x_base, self.s_base = keep, max(keep, self.s_base)
        if not out:
            return torch.zeros(2, 0, dtype=torch.float64)
        return torch.cat(out, dim=-1)

    def _add(self, x_frames: torch.Tensor | None, s_frames: torch.Tensor | None) -> None:
        if x_frames is not None and x_frames.shape[-2]:
            self.x_frames = np.concatenate([self.x_frames, self._spectra(x_frames)], axis=1)
        if s_frames is not None and s_frames.shape[-2]:
            self.s_frames = np.concatenate([self.s_frames, self._spectra(s_frames)], axis=1)

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
        self.n_in += mixture.shape[1]
        x = self.mix_framer.process(torch.from_numpy(mixture.astype(np.float64)))
        s = self.est_framer.process(torch.from_numpy(estimate.astype(np.float64)))
        self._add(x, s)
        out = self._run()
        self.n_samples_out += out.shape[-1]
        return out.numpy().astype(np.float32)

    def flush(self) -> np.ndarray:
        """End of signal (after all of the estimate was given): the remaining output
        ``[2, k]`` so that the total equals the mixture's length; then reset."""
        n_left = self.n_in - self.n_samples_out
        synth = self.stft.synth_length
        self._add(self.mix_framer.flush(synth), self.est_framer.flush(synth))
        out = self._run().numpy().astype(np.float32)[:, : max(n_left, 0)]
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
