r"""Deep Adaptive AEC: a differentiable multi-tap NLMS per STFT bin, steered by an LSTM.

The model of Zhang, Kandadai, Rao, Kim, Pruthi and Kristjansson (ICASSP 2022, Sec. 2): a linear
adaptive filter written as a layer of the network, so that gradients flow through the adaptation
and the network learns to drive it. Per frame ``t`` and STFT bin ``f`` (``X``: far end / loopback,
``Y``: microphone, ``L`` taps):

.. code-block:: text

    features_t  = [log|Y_t|^2, log|X_t|^2, log|E_{t-1}|^2]                 [3F]
    h_t         = LSTM(Linear(features_t))                                  (2 layers)
    mu_t        = sigmoid(Linear(h_t))                  step size per bin    in (0, 1)
    G_t         = 2 sigmoid(Linear(h_t))                reference gain       in (0, 2)
    Xr_t        = G_t X_t                               nonlinear reference
    x_t         = [Xr_t, Xr_{t-1}, ..., Xr_{t-L+1}]     (per bin, complex)   [F, L]
                  (with B cross bands: also those of bins f-B..f+B)          [F, (2B+1) L]
    Yhat_t      = sum_l W_{t,l} x_{t,l}                 echo estimate
    E_t         = Y_t - Yhat_t                          error = near-end estimate
    W_{t+1}     = W_t + mu_t E_t conj(x_t) / (||x_t||^2 + delta_t)           (complex NLMS)
    delta_t     = 0.01 mean_f ||x_t||^2 + 1e-6 (2B+1) L                       (regulariser)

``W`` starts at zero for every clip and is the adaptive filter's state, not a learned weight;
the learned weights are those of the LSTM and its heads, trained end to end through the
recursion (:mod:`clarity_se.training.aec_train`). Neither ``L`` nor ``B`` changes a weight's
shape.

**Cross-band taps** (``cross_bands = B``, default 0 as in the paper). A filter per bin over the
same bin's frames models the echo path only as far as the window's frequency resolution allows:
a delay that is not a multiple of the hop, or a path whose response changes steeply across a
bin (a vent high-pass, a receiver resonance), leaks far-end energy between neighbouring bins
that a per-bin filter cannot follow. With ``B > 0`` each bin's filter also takes the reference
frames of its ``B`` neighbours on either side (cross-band filters, Avargel and Cohen 2007).
``benchmarks/aec_linear_bound.py`` measures what the best fixed filter of each form can remove.

**Post-filter (deviation from the paper).** The paper's output is the error ``E``. Here a second,
small LSTM sees ``[log|E_t|^2, log|Yhat_t|^2, log|Y_t|^2, h_t]`` and predicts a real gain
``M_t in (0, 1)`` per bin; ``M_t E_t`` is the ``post_filter`` output (a residual-echo
suppressor trained jointly; the linear part alone cannot remove the nonlinear and late
reverberant echo). Both outputs are returned; the echo canceller chooses (``aec.deep_adaptive
.post_filter``).

**Refinement post-filter (optional, ``refine = R`` units, default 0: none).** A third LSTM of
``R`` units sees the first post-filter's features and state ``[log|E_t|^2, log|Yhat_t|^2,
log|Y_t|^2, h_t, r_t]`` and the log mean power of the filter's regressors
``log(||x_t||^2 / ((2B+1) L))`` (how much far-end energy lies within the echo path's span), and
adds a correction to the gain's logit: ``M_t = sigmoid(a_t + c_t)``. Its output layer starts
at zero, so a checkpoint without it fine-tunes into one with it from the same output (a
residual branch initialised to the identity).

**Coherence features (optional, ``coherence = lambda`` in (0, 1), default 0: none).** Every
feature above is a log power, blind to phase, so the post-filter cannot tell near-end speech
from residual echo of the same power. Classical residual-echo suppressors decide with the
coherence between the error and the echo: residual echo is linear in the far end and stays
coherent with the echo estimate, near-end speech does not. With ``coherence > 0`` the
refinement also sees, per bin, the magnitude-squared coherences of ``E`` with ``Yhat`` and of
``E`` with ``Y``, and the smoothed error-to-microphone power ratio (log), from cross-spectra
smoothed recursively over frames, ``S_ab,t = lambda S_ab,t-1 + (1 - lambda) A_t conj(B_t)``,
``C_ab = |S_ab|^2 / (S_aa S_bb)`` (the coherence-based double-talk detection of Benesty, Morgan
and Cho 2000; the error/echo coherence of residual-echo suppressors, Hänsler and Schmidt 2004).
They enter as inputs only (no gradient flows through them into the linear stage).

**Kalman selection (inference option, ``kalman_selection = A``, default 0: off).** A second
linear filter of the same form runs beside the network-steered NLMS, on the same regressors
``x_t`` (the network's reference), adapted by a diagonal frequency-domain Kalman filter
(Enzner and Vary 2006) per bin and regressor: random-walk state ``W_{t+1} = A W_t + noise``
with process noise ``(1 - A^2) |W_t|^2``, observation noise ``R_t`` the error power smoothed
recursively (factor 0.5), prior ``P_0 = 1``:

.. code-block:: text

    P'_t   = A^2 P_t + (1 - A^2) |K_t|^2                     (K: the Kalman filter's weights)
    D_t    = sum_l P'_{t,l} |x_{t,l}|^2 + R_t
    K_{t+1} = A K_t + P'_t conj(x_t) Ek_t / D_t,   P_{t+1} = P'_t (1 - P'_t |x_t|^2 / D_t)

Per bin and frame, of the two errors ``E`` (NLMS) and ``Ek`` (Kalman) the one whose power,
smoothed recursively (factor 0.7), is lower goes on to the post-filter and the output, with
its echo estimate; each filter adapts on its own error, and the network keeps seeing the NLMS
error (``e2``), as in training. Where the far end is digitally silent the Kalman filter and its
variance are held (:func:`kalman_step`), so that a long far-end silence does not stop it.
Near-end speech and noise pass both filters alike, so the lower error power holds less residual
echo: the two-filter selection of classical cancellers
(Ochiai et al. 1977; Valin 2007, Speex MDF, foreground/background filters) with two different
adaptation rules. No weight changes, the latency does not change, and the state stays of
fixed size; the packaged checkpoint was trained without it (``train.kalman_selection`` runs it
in training).
``benchmarks/aec_linear_alternatives.py`` scores the Kalman filter alone.

**Input-level normalisation (inference option, ``level_target_db = T``, default 0: off).** The
network's features are log powers, so it sees the absolute level, and its training clips put
the near-end speech at -35 to -25 dBFS (microphones -38 to -17 dBFS RMS). With ``T < 0`` every
frame's microphone and far-end spectra are multiplied by one gain ``g_t`` before the network
and both filters see them, and the error and echo estimate are divided by it again (the
post-filter gain is scale-free). ``g_t = sqrt(10^(T/10) / P_t)``, clipped to +-30 dB, with
``P_t`` the mean of the microphone's power per frame (the time-domain mean square of the
windowed frame) over the frames so far, ``P_t = P_{t-1} + (p_t - P_{t-1}) / min(n_t, 1000)``
(``n_t`` frames counted: a plain mean over the first 10 s, then a recursive one with a 10 s
memory); digitally silent frames (mean square below 1e-10) are not counted, and until the
first other frame ``P = 10^(T/10)`` (``g = 1``). The same gain on both signals leaves the echo
path the filters identify unchanged while ``g`` varies slowly (over the filter's 200 ms); it is
causal per frame (no added latency) and adds two numbers per clip to the state. The packaged
checkpoint was trained without it (``train.level_target_db`` runs it in training).

**STFT and latency.** Frames of ``n_fft`` = 320 samples (20 ms) every ``hop`` = 160 samples
(10 ms), square-root periodic Hann analysis and synthesis windows (their product overlap-adds
to one at 50 % overlap:
perfect reconstruction). With ``H`` samples of zeros before the signal, frame ``k`` covers input
samples ``[kH - H, kH + H)``; once it is processed, output samples ``[kH - H, kH)`` are final
(frames ``k - 1`` and ``k`` are the only ones covering them). Output sample ``t`` is final after
frame ``k = floor(t / H) + 1``, which needs the inputs up to ``kH + H - 1 = t - (t mod H) + 2H - 1
<= t + n_fft - 1``. Algorithmic latency ``n_fft - 1 = 319`` samples
(19.9 ms), within the AEC Challenge's 20 ms; tested by perturbing the inputs.

Everything is causal per frame (:meth:`DeepAdaptiveAEC.step`), so a whole clip and a stream
are the same loop; :meth:`DeepAdaptiveAEC.forward` runs it over a batch of spectrograms for
training.

References
----------
H. Zhang, S. Kandadai, H. Rao, M. Kim, T. Pruthi and T. Kristjansson, "Deep adaptive AEC:
hybrid of deep learning and adaptive acoustic echo cancellation", Proc. ICASSP 2022,
pp. 756-760, Sec. 2 (differentiable adaptive layer, DNN-estimated reference and step sizes).
S. Haykin, *Adaptive Filter Theory*, ch. 6 (NLMS); J. J. Shynk, "Frequency-domain and multirate
adaptive filtering", IEEE SP Magazine 9(1), 1992 (per-bin adaptation).
Y. Avargel and I. Cohen, "System identification in the short-time Fourier transform domain with
crossband filtering", IEEE TASLP 15(4), 2007 (cross-band filters).
J. Benesty, D. R. Morgan and J. H. Cho, "A new class of doubletalk detectors based on
cross-correlation", IEEE Trans. Speech Audio Process. 8(2), 2000 (coherence features).
E. Hänsler and G. Schmidt, *Acoustic Echo and Noise Control: A Practical Approach*, Wiley, 2004
(residual-echo suppression).
G. Enzner and P. Vary, "Frequency-domain adaptive Kalman filter for acoustic echo control in
hands-free telephones", Signal Processing 86(6), 2006 (the diagonal Kalman filter).
K. Ochiai, T. Araseki and T. Ogihara, "Echo canceler with two echo path models", IEEE Trans.
Commun. 25(6), 1977; J.-M. Valin, "On adjusting the learning rate in frequency domain echo
cancellation with double-talk", IEEE TASLP 15(3), 2007 (two filters, the better one kept).

Deviations: the post-filter above; the Kalman selection (an inference option, on by default
in ``clarity-se aec``); the input-level normalisation (an inference option, off by default);
the cross-band taps (optional, used by the packaged checkpoint: ``L = 20``, ``B = 1``); the
sizes (two LSTM layers of 128, ``L = 10`` taps by default, a 20 ms window to meet the 20 ms
latency rule) are ours; the reference is estimated as a real gain on the loopback spectrum (the
paper estimates the reference with the DNN; its exact parametrisation is not reproduced).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

#: floor of the per-bin powers in the log features
POWER_FLOOR = 1e-8
#: relative and absolute (per tap) NLMS regularisation
DELTA_RELATIVE = 1e-2
DELTA_ABSOLUTE = 1e-6

#: state of one clip (or a batch): tensors by name
State = dict[str, Tensor]

#: Kalman selection (see the module docstring): observation-noise smoothing, state prior and
#: the smoothing of the two errors' powers that decides which one goes on
KALMAN_NOISE_SMOOTHING = 0.5
KALMAN_P0 = 1.0
SELECTION_SMOOTHING = 0.7

#: input-level normalisation (module docstring): longest memory (frames), largest gain either
#: way (dB), and the mean square below which a frame is digitally silent
LEVEL_MEMORY_FRAMES = 1000.0
LEVEL_MAX_GAIN_DB = 30.0
LEVEL_SILENCE = 1e-10


def power(z: Tensor) -> Tensor:
    """``|z|^2`` of a complex tensor as ``re^2 + im^2`` (finite gradient at 0)."""
    return z.real.square() + z.imag.square()


def log_power_feature(z: Tensor) -> Tensor:
    """Scaled log power ``(ln(|z|^2 + 1e-8) + 8) / 4`` (about -2.5..2.5 for speech bins)."""
    return (torch.log(power(z) + POWER_FLOOR) + 8.0) / 4.0


def check_kalman_selection(value: float, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is 0 (off) or in (0, 1]."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: must be 0 (off) or in (0, 1], got {value}")


def check_level_target(value: float, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is 0 (off) or in [-60, -6] dBFS."""
    if not (value == 0.0 or -60.0 <= value <= -6.0):
        raise ValueError(f"{name}: must be 0 (off) or a level in [-60, -6] dBFS, got {value}")


def kalman_step(w: Tensor, p: Tensor, noise: Tensor, reg: Tensor, e: Tensor, a: float
                ) -> tuple[Tensor, Tensor]:
    """One update of the diagonal frequency-domain Kalman filter of the Kalman selection.

    Enzner and Vary (2006), per bin and regressor (the equations in the module docstring):
    random-walk state with forgetting factor ``a`` and process noise ``(1 - a^2) |w|^2``. In
    bins whose regressors carry no far end (``||x_t||^2`` at most the NLMS's absolute
    regulariser, ``1e-6`` per regressor: digital silence) the filter and its variance are held:
    otherwise, from a zero filter, the variance would decay as ``a^(2t)`` through a far-end
    silence (to 6e-6 of its prior after 60 s at ``a = 0.999``) and the filter would no longer
    adapt when the far end starts.

    Parameters
    ----------
    w : Tensor [shape=(batch, F, P)], complex
        Filter of this frame (``yhat = sum_l w_l x_l``).
    p : Tensor [shape=(batch, F, P)]
        Its state error variance per regressor.
    noise : Tensor [shape=(batch, F)]
        Observation-noise power (near end plus noise plus what the filter cannot model).
    reg : Tensor [shape=(batch, F, P)], complex
        Regressors ``x_t``.
    e : Tensor [shape=(batch, F)], complex
        The filter's error ``Y_t - sum_l w_l x_l``.
    a : float
        Forgetting factor in (0, 1].

    Returns
    -------
    w, p : Tensor
        The next frame's filter and variance.
    """
    prior = a * a * p + (1.0 - a * a) * power(w)
    x2 = power(reg)
    den = ((prior * x2).sum(dim=-1) + noise + DELTA_ABSOLUTE * DELTA_ABSOLUTE).unsqueeze(-1)
    w_next = a * w + prior * reg.conj() * e.unsqueeze(-1) / den
    p_next = prior * (1.0 - prior * x2 / den)
    active = (x2.sum(dim=-1) > DELTA_ABSOLUTE * reg.shape[-1]).unsqueeze(-1)
    return torch.where(active, w_next, w), torch.where(active, p_next, p)


def sqrt_hann(n_fft: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Square root of the periodic Hann window of ``n_fft`` samples ``[n_fft]``."""
    n = torch.arange(n_fft, dtype=torch.float64)
    return torch.sqrt(0.5 - 0.5 * torch.cos(2 * math.pi * n / n_fft)).to(dtype)


class DeepAdaptiveAEC(nn.Module):
    """Deep Adaptive AEC (see the module docstring).

    Parameters
    ----------
    n_fft : int
        Frame length, samples at 16 kHz (FFT size; ``F = n_fft // 2 + 1`` bins).
    hop : int
        Frame shift, samples; must be ``n_fft // 2``.
    taps : int
        ``L``: NLMS taps per bin (frames).
    hidden : int
        LSTM units per layer (control network and post-filter).
    layers : int
        LSTM layers of the control network.
    cross_bands : int
        ``B``: neighbouring bins on either side whose reference frames each bin's filter also
        takes (0: a filter per bin, as in the paper).
    refine : int
        ``R``: units of the refinement post-filter (module docstring; 0: none).
    coherence : float
        ``lambda``: smoothing factor per frame of the refinement's coherence features (module
        docstring; 0: none). Needs ``refine > 0``.
    kalman_selection : float
        ``A``: forgetting factor of the second, Kalman-adapted filter whose error replaces the
        NLMS error per bin when its smoothed power is lower (module docstring, "Kalman
        selection"; 0: off). An inference option: not a model argument of the checkpoint, and
        it may be changed on a built model (attribute of the same name) before
        :meth:`initial_state`.
    level_target_db : float
        ``T``: the microphone level, dBFS RMS, to which the input-level normalisation scales
        both inputs (module docstring; 0: off). An inference option like
        ``kalman_selection``.

    Raises
    ------
    ValueError
        If ``hop != n_fft // 2``, a size is not positive, ``refine`` is negative,
        ``coherence`` is outside ``[0, 1)`` or set without ``refine``, ``cross_bands`` is
        outside ``[0, n_fft // 4)``, ``kalman_selection`` is outside ``{0} U (0, 1]``, or
        ``level_target_db`` is outside ``{0} U [-60, -6]``.
    """

    def __init__(self, n_fft: int = 320, hop: int = 160, taps: int = 10, hidden: int = 128,
                 layers: int = 2, cross_bands: int = 0, refine: int = 0,
                 coherence: float = 0.0, kalman_selection: float = 0.0,
                 level_target_db: float = 0.0) -> None:
        super().__init__()
        if n_fft < 16 or n_fft % 2 or hop != n_fft // 2:
            raise ValueError(f"deep_adaptive: need an even n_fft >= 16 and hop = n_fft // 2, "
                             f"got {n_fft}, {hop}")
        if taps < 1 or hidden < 1 or layers < 1:
            raise ValueError(f"deep_adaptive: taps, hidden, layers must be >= 1, got {taps}, "
                             f"{hidden}, {layers}")
        if refine < 0:
            raise ValueError(f"deep_adaptive: refine must be >= 0, got {refine}")
        if not 0.0 <= coherence < 1.0 or (coherence and not refine):
            raise ValueError(f"deep_adaptive: coherence must be in [0, 1) and needs refine > 0, "
                             f"got coherence={coherence}, refine={refine}")
        if not 0 <= cross_bands < n_fft // 4:
            raise ValueError(f"deep_adaptive: cross_bands must be in [0, n_fft // 4), got "
                             f"{cross_bands}")
        check_kalman_selection(kalman_selection, "deep_adaptive: kalman_selection")
        check_level_target(level_target_db, "deep_adaptive: level_target_db")
        #: forgetting factor of the Kalman selection's filter (0: off; inference option)
        self.kalman_selection = float(kalman_selection)
        #: target microphone level of the input-level normalisation, dBFS (0: off; inference)
        self.level_target_db = float(level_target_db)
        self.hparams = {"n_fft": n_fft, "hop": hop, "taps": taps, "hidden": hidden,
                        "layers": layers}
        if cross_bands:  # absent from the arguments of checkpoints without cross-band taps
            self.hparams["cross_bands"] = cross_bands
        if refine:  # absent from the arguments of checkpoints without the refinement
            self.hparams["refine"] = refine
        if coherence:
            self.hparams["coherence"] = coherence
        self.refine, self.coherence = refine, float(coherence)
        self.n_fft, self.hop, self.taps, self.hidden = n_fft, hop, taps, hidden
        self.cross_bands = cross_bands
        #: regressors per bin: the taps of the bin and of its 2 cross_bands neighbours
        self.n_regressors = (2 * cross_bands + 1) * taps
        self.n_bins = f = n_fft // 2 + 1
        self.inp = nn.Linear(3 * f, hidden)
        self.cells = nn.ModuleList(nn.LSTMCell(hidden, hidden) for _ in range(layers))
        self.mu_head = nn.Linear(hidden, f)
        self.ref_head = nn.Linear(hidden, f)
        self.res_inp = nn.Linear(3 * f + hidden, hidden)
        self.res_cell = nn.LSTMCell(hidden, hidden)
        self.res_head = nn.Linear(hidden, f)
        if refine:
            self.refine_inp = nn.Linear((7 if coherence else 4) * f + 2 * hidden, refine)
            self.refine_cell = nn.LSTMCell(refine, refine)
            self.refine_head = nn.Linear(refine, f)
        with torch.no_grad():  # start near a plain NLMS (mu ~ 0.3, G = 1) and a mild gain
            self.mu_head.weight.mul_(0.1)
            self.mu_head.bias.fill_(-0.85)
            self.ref_head.weight.mul_(0.1)
            self.ref_head.bias.zero_()
            self.res_head.bias.fill_(2.0)
            if refine:  # the identity: no correction until trained
                self.refine_head.weight.zero_()
                self.refine_head.bias.zero_()
        self._window64 = sqrt_hann(n_fft, torch.float64)

    def _window(self, dtype: torch.dtype) -> Tensor:
        return self._window64.to(dtype)

    @property
    def latency_samples(self) -> int:
        """``n_fft - 1`` (see the module docstring): 319 samples by default."""
        return self.n_fft - 1

    def initial_state(self, batch: int, dtype: torch.dtype = torch.float32,
                      device: torch.device | str = "cpu") -> State:
        """Zero state of ``batch`` clips: LSTM ``(h, c)``, filter ``w`` and reference history
        ``xbuf`` ``[batch, F, L]`` complex, last error power ``e2`` ``[batch, F]`` (and the
        refinement LSTM's ``(fh, fc)`` when ``refine > 0``, and the smoothed spectra ``s_ee``,
        ``s_hh``, ``s_yy`` (real) and ``s_eh``, ``s_ey`` (complex) when ``coherence > 0``; the
        Kalman filter's when ``kalman_selection > 0``; the running level ``level`` and its
        frame count ``level_n`` ``[batch]`` when ``level_target_db < 0``)."""
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        z = torch.zeros(batch, self.hidden, dtype=dtype, device=device)
        state: State = {}
        for i in range(len(self.cells)):
            state[f"h{i}"], state[f"c{i}"] = z, z
        state["rh"], state["rc"] = z, z
        if self.refine:
            zr = torch.zeros(batch, self.refine, dtype=dtype, device=device)
            state["fh"], state["fc"] = zr, zr
        if self.coherence:
            zf = torch.zeros(batch, self.n_bins, dtype=dtype, device=device)
            zc = torch.zeros(batch, self.n_bins, dtype=cdtype, device=device)
            state["s_ee"], state["s_hh"], state["s_yy"] = zf, zf, zf
            state["s_eh"], state["s_ey"] = zc, zc
        state["w"] = torch.zeros(batch, self.n_bins, self.n_regressors, dtype=cdtype,
                                 device=device)
        state["xbuf"] = torch.zeros(batch, self.n_bins, self.taps, dtype=cdtype, device=device)
        state["e2"] = torch.zeros(batch, self.n_bins, dtype=dtype, device=device)
        if self.kalman_selection:
            state["kw"] = torch.zeros_like(state["w"])
            state["kp"] = torch.full(state["w"].shape, KALMAN_P0, dtype=dtype, device=device)
            for key in ("kr", "sn", "sk"):
                state[key] = torch.zeros_like(state["e2"])
        if self.level_target_db:
            state["level"] = torch.full((batch,), 10.0 ** (self.level_target_db / 10.0),
                                        dtype=dtype, device=device)
            state["level_n"] = torch.zeros(batch, dtype=dtype, device=device)
        return state

    def _regressors(self, xbuf: Tensor) -> Tensor:
        """Reference history ``[batch, F, L]`` -> the filter's regressors per bin
        ``[batch, F, (2B + 1) L]``: the bin's own taps, then those of the bins ``f - B .. f + B``
        (zeros beyond the band edges)."""
        b = self.cross_bands
        if b == 0:
            return xbuf
        padded = torch.nn.functional.pad(xbuf.transpose(1, 2), (b, b)).transpose(1, 2)
        f = self.n_bins
        shifted = [padded[:, b + k : b + k + f] for k in range(-b, b + 1) if k != 0]
        return torch.cat([xbuf, *shifted], dim=-1)

    def step(self, y: Tensor, x: Tensor, state: State) -> tuple[Tensor, Tensor, Tensor, State]:
        """One frame: :meth:`step_with_mask` with the post-filter applied (``out = M E``).

        Parameters
        ----------
        y, x : Tensor [shape=(batch, F)], complex
            Microphone and far-end spectra of the frame.
        state : State
            From :meth:`initial_state` or the previous step.

        Returns
        -------
        e : Tensor [shape=(batch, F)], complex
            NLMS error (the paper's near-end estimate).
        yhat : Tensor [shape=(batch, F)], complex
            Linear echo estimate.
        out : Tensor [shape=(batch, F)], complex
            Post-filtered near-end estimate ``M E``.
        state : State
            The next state.
        """
        e, yhat, mask, state = self.step_with_mask(y, x, state)
        return e, yhat, mask * e, state

    def step_with_mask(self, y: Tensor, x: Tensor, state: State
                       ) -> tuple[Tensor, Tensor, Tensor, State]:
        """One frame, as :meth:`step` (same parameters), returning the post-filter gain
        ``mask`` (``M [batch, F]``, real, in (0, 1)) in place of ``out = M E``: ``(e, yhat,
        mask, state)``."""
        if not self.level_target_db:
            return self._step_core(y, x, state)
        gain, level, count = self._level_gain(y, state)
        e, yhat, mask, new = self._step_core(y * gain, x * gain, state)
        new["level"], new["level_n"] = level, count
        return e / gain, yhat / gain, mask, new

    def _level_gain(self, y: Tensor, state: State) -> tuple[Tensor, Tensor, Tensor]:
        """The input-level normalisation's gain ``[batch, 1]`` for this frame and the updated
        running level and weight ``[batch]`` (module docstring)."""
        n = self.n_fft
        p = power(y)  # one-sided spectrum -> mean square of the windowed frame (Parseval)
        energy = 2.0 * p.sum(dim=-1) - p[:, 0] - p[:, -1]
        mean_square = energy / n / (n / 2)  # sum of the squared sqrt-Hann window: n / 2
        active = mean_square > LEVEL_SILENCE
        count = torch.where(active, (state["level_n"] + 1.0).clamp(max=LEVEL_MEMORY_FRAMES),
                            state["level_n"])
        level = torch.where(active, state["level"] + (mean_square - state["level"]) / count,
                            state["level"])
        limit = 10.0 ** (LEVEL_MAX_GAIN_DB / 20.0)
        gain = torch.sqrt(10.0 ** (self.level_target_db / 10.0) / level).clamp(1.0 / limit,
                                                                                  limit)
        return gain.unsqueeze(-1), level, count

    def _step_core(self, y: Tensor, x: Tensor, state: State
                   ) -> tuple[Tensor, Tensor, Tensor, State]:
        """:meth:`step_with_mask` on inputs already at the network's level."""
        feats = torch.cat([log_power_feature(y), log_power_feature(x),
                           (torch.log(state["e2"] + POWER_FLOOR) + 8.0) / 4.0], dim=-1)
        z = torch.tanh(self.inp(feats))
        new: State = {}
        for i, cell in enumerate(self.cells):
            h, c = cell(z, (state[f"h{i}"], state[f"c{i}"]))
            new[f"h{i}"], new[f"c{i}"] = h, c
            z = h
        mu = torch.sigmoid(self.mu_head(z))
        gain = 2.0 * torch.sigmoid(self.ref_head(z))
        xbuf = torch.cat([(gain * x).unsqueeze(-1), state["xbuf"][..., :-1]], dim=-1)
        reg = self._regressors(xbuf)
        w = state["w"]
        yhat = (w * reg).sum(dim=-1)
        e = y - yhat
        norm = power(reg).sum(dim=-1)
        new["w"] = self.adapt(w, reg, norm, e, mu, state, new)
        new["xbuf"] = xbuf
        e2 = power(e)
        new["e2"] = e2
        if self.kalman_selection:
            e, yhat = self._kalman_select(y, reg, e, e2, yhat, state, new)
            e2 = power(e)
        r_in = self.post_filter_features(e2, yhat, y, z)
        rh, rc = self.res_cell(torch.tanh(self.res_inp(r_in)), (state["rh"], state["rc"]))
        new["rh"], new["rc"] = rh, rc
        logit = self.res_head(rh)
        if self.refine:
            span = (torch.log(norm / self.n_regressors + POWER_FLOOR) + 8.0) / 4.0
            parts = [r_in, rh, span]
            if self.coherence:
                parts.append(self._coherence_features(e.detach(), yhat.detach(), y, state,
                                                      new))
            fh, fc = self.refine_cell(torch.tanh(self.refine_inp(torch.cat(parts, dim=-1))),
                                      (state["fh"], state["fc"]))
            new["fh"], new["fc"] = fh, fc
            logit = logit + self.refine_head(fh)
        mask = torch.sigmoid(logit)
        return e, yhat, mask, new

    @staticmethod
    def post_filter_features(e2: Tensor, yhat: Tensor, y: Tensor, z: Tensor) -> Tensor:
        """The post-filter's input of one frame, ``[batch, 3 F + hidden]``: the log powers of the
        error (``e2 = |E|^2``), the echo estimate and the microphone, and the last LSTM layer's
        output ``z`` (module docstring)."""
        return torch.cat([(torch.log(e2 + POWER_FLOOR) + 8.0) / 4.0, log_power_feature(yhat),
                          log_power_feature(y), z], dim=-1)

    def adapt(self, w: Tensor, reg: Tensor, norm: Tensor, e: Tensor, mu: Tensor,
              state: State, new: State) -> Tensor:
        """The filter's update for the next frame: the complex NLMS of the module docstring.

        A subclass may replace it to compare another adaptation rule under the same network
        (``benchmarks/aec_linear_alternatives.py`` does); the control network, the reference
        and the post-filter stay as trained.

        Parameters
        ----------
        w : Tensor [shape=(batch, F, P)], complex
            Filter of this frame (``P = (2B + 1) L`` regressors per bin).
        reg : Tensor [shape=(batch, F, P)], complex
            Regressors ``x_t`` of this frame.
        norm : Tensor [shape=(batch, F)]
            ``||x_t||^2`` per bin.
        e : Tensor [shape=(batch, F)], complex
            Error ``Y_t - Yhat_t``.
        mu : Tensor [shape=(batch, F)]
            Step size the network predicts, in (0, 1).
        state : State
            This frame's state (read only).
        new : State
            The next state, being built: an override may store its own entries there (they
            must also be in the state it starts from, or be read with a default).

        Returns
        -------
        Tensor [shape=(batch, F, P)], complex
            ``W_{t+1}``.
        """
        delta = (DELTA_RELATIVE * norm.mean(dim=-1, keepdim=True)
                 + DELTA_ABSOLUTE * self.n_regressors)
        return w + (mu * e / (norm + delta)).unsqueeze(-1) * reg.conj()

    def _kalman_select(self, y: Tensor, reg: Tensor, e: Tensor, e2: Tensor, yhat: Tensor,
                       state: State, new: State) -> tuple[Tensor, Tensor]:
        """The Kalman selection's filter (update into ``new``) and, per bin, the error and echo
        estimate of lower smoothed error power, ``(e, yhat)`` (module docstring)."""
        reg = self.kalman_regressors(reg, state, new)
        yk = (state["kw"] * reg).sum(dim=-1)
        ek = y - yk
        ek2 = power(ek)
        noise = KALMAN_NOISE_SMOOTHING * state["kr"] + (1.0 - KALMAN_NOISE_SMOOTHING) * ek2
        new["kw"], new["kp"] = kalman_step(state["kw"], state["kp"], noise, reg, ek,
                                           self.kalman_selection)
        new["kr"] = noise
        lam = SELECTION_SMOOTHING
        new["sn"] = lam * state["sn"] + (1.0 - lam) * e2
        new["sk"] = lam * state["sk"] + (1.0 - lam) * ek2
        pick = new["sk"] < new["sn"]
        return torch.where(pick, ek, e), torch.where(pick, yk, yhat)

    def kalman_regressors(self, reg: Tensor, state: State, new: State) -> Tensor:
        """The Kalman selection's filter's regressors: the NLMS's ``reg`` ``[batch, F, P]``.

        A subclass may add its own (``benchmarks/aec_linear_alternatives.py`` adds a branch on
        the rectified far end), storing any history in ``new`` and sizing ``kw`` / ``kp`` in its
        :meth:`initial_state` to match.
        """
        return reg

    def _coherence_features(self, e: Tensor, yhat: Tensor, y: Tensor, state: State,
                            new: State) -> Tensor:
        """Smoothed-spectra update (into ``new``) and the features ``[C_eh, C_ey,
        log(S_ee / S_yy) / 4]`` ``[batch, 3F]`` (module docstring)."""
        lam = self.coherence
        for key, val in (("s_ee", power(e)), ("s_hh", power(yhat)), ("s_yy", power(y)),
                         ("s_eh", e * yhat.conj()), ("s_ey", e * y.conj())):
            new[key] = lam * state[key] + (1.0 - lam) * val
        floor = POWER_FLOOR * POWER_FLOOR
        c_eh = power(new["s_eh"]) / (new["s_ee"] * new["s_hh"] + floor)
        c_ey = power(new["s_ey"]) / (new["s_ee"] * new["s_yy"] + floor)
        ratio = torch.log((new["s_ee"] + POWER_FLOOR) / (new["s_yy"] + POWER_FLOOR)) / 4.0
        return torch.cat([c_eh.clamp(max=1.0), c_ey.clamp(max=1.0), ratio], dim=-1)

    def forward(self, y: Tensor, x: Tensor, state: State | None = None
                ) -> tuple[Tensor, Tensor, Tensor, State]:
        """Run :meth:`step` over frames.

        Parameters
        ----------
        y, x : Tensor [shape=(batch, frames, F)], complex
            Microphone and far-end STFTs (:meth:`stft`).
        state : State, optional
            Initial state (default: zeros).

        Returns
        -------
        e, yhat, out : Tensor [shape=(batch, frames, F)], complex
            As :meth:`step`, per frame.
        state : State
            After the last frame.
        """
        e, yhat, mask, state = self.forward_with_mask(y, x, state)
        return e, yhat, mask * e, state

    def forward_with_mask(self, y: Tensor, x: Tensor, state: State | None = None
                          ) -> tuple[Tensor, Tensor, Tensor, State]:
        """Run :meth:`step_with_mask` over frames (as :meth:`forward`, the third output being
        the post-filter gain ``M [batch, frames, F]``, real, instead of ``M E``).

        Raises
        ------
        ValueError
            If ``y`` and ``x`` are not ``[batch, frames, F]`` of one shape.
        """
        if y.shape != x.shape or y.dim() != 3:
            raise ValueError(f"deep_adaptive: y and x must be [batch, frames, F] of one shape, "
                             f"got {tuple(y.shape)} and {tuple(x.shape)}")
        if state is None:
            state = self.initial_state(y.shape[0], y.real.dtype, y.device)
        es, yhats, masks = [], [], []
        for t in range(y.shape[1]):
            e, yhat, mask, state = self.step_with_mask(y[:, t], x[:, t], state)
            es.append(e)
            yhats.append(yhat)
            masks.append(mask)
        return torch.stack(es, 1), torch.stack(yhats, 1), torch.stack(masks, 1), state

    def stft(self, signal: Tensor) -> Tensor:
        """Spectra of the frames of ``signal`` ``[batch, time]`` (``time`` = ``(k + 1) H``,
        the first ``H`` samples being history) -> ``[batch, k, F]`` complex; frame ``j`` covers
        ``signal[jH : jH + n_fft]``."""
        frames = signal.unfold(-1, self.n_fft, self.hop)
        return torch.fft.rfft(frames * self._window(signal.dtype), dim=-1)

    def frames_to_time(self, spec: Tensor) -> Tensor:
        """Windowed inverse FFT of frames ``[batch, k, F]`` -> ``[batch, k, n_fft]``."""
        return torch.fft.irfft(spec, n=self.n_fft, dim=-1) * self._window(spec.real.dtype)

    def istft(self, spec: Tensor) -> Tensor:
        """Overlap-add of :meth:`frames_to_time` -> ``[batch, (k + 1) H]`` (inverse of
        :meth:`stft`; the first and last ``H`` samples are incomplete)."""
        frames = self.frames_to_time(spec)
        b, k, _ = frames.shape
        h = self.hop
        out = frames.new_zeros(b, (k + 1) * h)
        out[:, : k * h] += frames[..., :h].reshape(b, k * h)
        out[:, h:] += frames[..., h:].reshape(b, k * h)
        return out


def count_parameters(model: nn.Module) -> int:
    """Number of learned parameters."""
    return sum(p.numel() for p in model.parameters())


#: format tag of a Deep Adaptive AEC checkpoint
CHECKPOINT_FORMAT = "clarity_se.deep_adaptive/1"


def save_deep_adaptive(path, model: DeepAdaptiveAEC, training: dict | None = None) -> None:
    """Save ``{"format", "model_args", "state_dict", "training"}`` with ``torch.save`` (atomic:
    temp file + rename). ``training`` holds the resolved training config and progress."""
    import os
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, "model_args": dict(model.hparams),
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "training": training or {}}, tmp)
    os.replace(tmp, path)


def load_deep_adaptive(path) -> tuple[DeepAdaptiveAEC, dict]:
    """Rebuild a :class:`DeepAdaptiveAEC` from :func:`save_deep_adaptive`'s file (eval mode).

    Returns
    -------
    model : DeepAdaptiveAEC
    payload : dict
        The whole checkpoint.

    Raises
    ------
    ValueError
        Missing, unreadable or foreign file, or weights that do not fit ``model_args``
        (the message names the file).
    """
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ValueError(f"{path}: unreadable checkpoint ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint")
    try:
        model = DeepAdaptiveAEC(**payload["model_args"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(f"{path}: weights do not match model_args ({exc})") from None
    return model.eval(), payload
