"""``deep_adaptive``: the Deep Adaptive AEC (Zhang et al., ICASSP 2022) as an echo canceller.

Wraps :class:`clarity_se.models.deep_adaptive.DeepAdaptiveAEC` (a complex multi-tap NLMS per STFT
bin whose step sizes and nonlinear reference an LSTM predicts, plus a jointly trained
post-filter) in the :class:`~clarity_se.aec.base.EchoCanceller` protocol:

- weights from ``aec.checkpoint`` or, when empty, the packaged
  ``clarity_se/assets/checkpoints/deep_adaptive.pt`` (trained by ``clarity-se aec-train -c
  recipes/aec/deep_adaptive/config.yaml``; its post-filter last fine-tuned with the PESQ-like
  term, ``train.perceptual_weight``). ``deep_adaptive_spectral.pt`` beside it is the previous
  packaged checkpoint (the same canceller, the post-filter trained with the spectral loss
  alone), kept so that the figures measured with it can be reproduced;
- ``aec.deep_adaptive.post_filter`` (default true): output the post-filtered estimate ``M E``;
  false: the NLMS error ``E`` alone (the paper's output);
- ``aec.deep_adaptive.kalman_selection`` (default :data:`KALMAN_SELECTION`, 0.999; 0: off): a
  second, Kalman-adapted linear filter beside the network-steered NLMS, whose error replaces the
  NLMS error per bin wherever its smoothed power is lower ("Kalman selection" in
  :mod:`clarity_se.models.deep_adaptive`; no weights, the same latency);
- ``aec.deep_adaptive.level_target_db`` (default 0: off): scale microphone and far end together,
  frame by frame, toward this microphone level (dBFS RMS) before the network sees them, and the
  output back ("Input-level normalisation" in :mod:`clarity_se.models.deep_adaptive`; causal,
  the same latency);
- ``echo_estimate`` is the linear echo estimate (inverse STFT of ``Yhat``).

Inference runs in float64 on the CPU, one frame (10 ms) at a time with explicit state, whole clip
and stream through the same code (:class:`DeepAdaptiveStreamer`). Latency ``n_fft - 1`` = 319
samples (19.9 ms; derivation in :mod:`clarity_se.models.deep_adaptive`).

References
----------
H. Zhang, S. Kandadai, H. Rao, M. Kim, T. Pruthi and T. Kristjansson, "Deep adaptive AEC:
hybrid of deep learning and adaptive acoustic echo cancellation", Proc. ICASSP 2022.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from clarity_se.aec import register_aec
from clarity_se.aec.base import SAMPLE_RATE, EchoCancellerOutput, check_clip
from clarity_se.aec.framing import QueuedStreamer, process_whole
from clarity_se.models.deep_adaptive import (
    DeepAdaptiveAEC,
    check_kalman_selection,
    check_level_target,
    count_parameters,
    load_deep_adaptive,
)

#: name of the packaged checkpoint (``clarity_se/assets/checkpoints/<name>.pt``)
PACKAGED = "deep_adaptive"
#: default forgetting factor of the Kalman selection's filter (``aec.deep_adaptive
#: .kalman_selection``; how it was chosen: "Kalman selection" in
#: recipes/aec/deep_adaptive/README.md)
KALMAN_SELECTION = 0.999


def packaged_checkpoint(name: str = PACKAGED) -> Path:
    """Path of the shipped checkpoint ``clarity_se/assets/checkpoints/<name>.pt`` (found through
    :mod:`importlib.resources`, as :func:`clarity_se.enhancers.checkpoints.packaged_checkpoint`).

    Raises
    ------
    ValueError
        If the package holds no such checkpoint.
    """
    path = Path(str(resources.files("clarity_se") / "assets" / "checkpoints" / f"{name}.pt"))
    if not path.is_file():
        raise ValueError(f"no packaged checkpoint {name!r} (looked for {path})")
    return path


class DeepAdaptiveStreamer(QueuedStreamer):
    """Frame-by-frame processing of one clip (:class:`~clarity_se.aec.base.EchoStreamer`).

    Keeps ``hop`` samples of input history, the model state (LSTM states, NLMS weights and
    reference history, and the Kalman selection's filter, variances and smoothed powers: fixed
    size) and the overlap-add tails; output is delayed internally by
    ``hop`` samples and re-aligned with the microphone, so memory is bounded.

    Parameters
    ----------
    model : DeepAdaptiveAEC
        In float64, eval mode.
    post_filter : bool
        Output ``M E`` (true) or ``E``.
    frame_filter : callable, optional
        ``(out [k, F], echo [k, F]) -> out [k, F]`` (complex spectra of the next ``k`` frames,
        in order): applied to the output frames before synthesis, e.g. a residual-echo
        suppressor on the same frames (:mod:`clarity_se.aec.res`); it keeps its own state and
        must be reset with the streamer (it is given ``reset()`` if it has one).
    """

    def __init__(self, model: DeepAdaptiveAEC, post_filter: bool = True,
                 frame_filter: Callable[[Tensor, Tensor], Tensor] | None = None) -> None:
        self.model = model
        self.post_filter = post_filter
        self.frame_filter = frame_filter
        self.reset()

    def reset(self) -> None:
        """Forget all state (start a new clip)."""
        h = self.model.hop
        self._state = self.model.initial_state(1, torch.float64)
        self._clear_queues(h)  # history: hop zeros before the signal
        self._tail_out = np.zeros(h)
        self._tail_echo = np.zeros(h)
        self._skip = h
        if hasattr(self.frame_filter, "reset"):
            self.frame_filter.reset()

    def _run(self) -> tuple[np.ndarray, np.ndarray]:
        m, h = self.model, self.model.hop
        k = (self._mic.size - h) // h
        if k <= 0:
            return np.zeros(0), np.zeros(0)
        n = (k + 1) * h
        with torch.no_grad():
            spec_y = m.stft(torch.from_numpy(self._mic[:n])[None])
            spec_x = m.stft(torch.from_numpy(self._far[:n])[None])
            outs, echoes = [], []
            state = self._state
            for j in range(k):
                e, yhat, out, state = m.step(spec_y[:, j], spec_x[:, j], state)
                outs.append(out if self.post_filter else e)
                echoes.append(yhat)
            self._state = state
            spec_out = torch.stack(outs, 1)
            if self.frame_filter is not None:
                spec_out = self.frame_filter(spec_out[0], torch.stack(echoes, 1)[0])[None]
            frames_out = m.frames_to_time(spec_out)[0].numpy()
            frames_echo = m.frames_to_time(torch.stack(echoes, 1))[0].numpy()
        self._mic, self._far = self._mic[k * h :], self._far[k * h :]
        out = np.empty(k * h)
        echo = np.empty(k * h)
        for j in range(k):
            out[j * h : (j + 1) * h] = self._tail_out + frames_out[j, :h]
            echo[j * h : (j + 1) * h] = self._tail_echo + frames_echo[j, :h]
            self._tail_out = frames_out[j, h:]
            self._tail_echo = frames_echo[j, h:]
        drop = min(self._skip, out.size)
        self._skip -= drop
        return out[drop:], echo[drop:]

    def flush(self) -> EchoCancellerOutput:
        """End of clip: zeros are appended until every sample is out; resets."""
        h = self.model.hop
        remaining = self._n_in - self._n_out
        pad = (-self._n_in) % h + h
        self._mic = np.concatenate([self._mic, np.zeros(pad)])
        self._far = np.concatenate([self._far, np.zeros(pad)])
        out, echo = self._run()
        out, echo = out[:remaining], echo[:remaining]
        self.reset()
        return EchoCancellerOutput(out.astype(np.float32), echo.astype(np.float32))


class DeepAdaptive:
    """The ``deep_adaptive`` echo canceller: ``(mic, farend) @ 16 kHz -> output, echo estimate``.

    Parameters
    ----------
    model : DeepAdaptiveAEC
        Trained model (copied and cast to float64 for inference).
    post_filter : bool
        Output the post-filtered estimate (default) or the NLMS error.
    checkpoint_path : path-like, optional
        Where the weights came from (fingerprinted by ``clarity-se aec``).
    kalman_selection : float
        Forgetting factor of the Kalman selection's filter, set on the copy (0: off; default
        :data:`KALMAN_SELECTION`).
    level_target_db : float
        Target microphone level of the input-level normalisation, dBFS RMS, set on the copy
        (0: off, the default).

    Attributes
    ----------
    name : str
        ``"deep_adaptive"``.
    latency_samples : int
        ``n_fft - 1`` (319 samples, 19.9 ms by default).
    n_params : int
        Learned parameters.
    """

    name = "deep_adaptive"

    def __init__(self, model: DeepAdaptiveAEC, post_filter: bool = True,
                 checkpoint_path: str | Path | None = None,
                 kalman_selection: float = KALMAN_SELECTION,
                 level_target_db: float = 0.0) -> None:
        check_kalman_selection(kalman_selection, "aec.deep_adaptive.kalman_selection")
        check_level_target(level_target_db, "aec.deep_adaptive.level_target_db")
        self.model = copy.deepcopy(model).double().eval()
        self.model.kalman_selection = float(kalman_selection)
        self.kalman_selection = float(kalman_selection)
        self.model.level_target_db = float(level_target_db)
        self.level_target_db = float(level_target_db)
        self.post_filter = bool(post_filter)
        self.checkpoint_path = checkpoint_path
        self.latency_samples = self.model.latency_samples
        self.n_params = count_parameters(self.model)
        self.sample_rate = SAMPLE_RATE

    def streamer(self, frame_filter: Callable[[Tensor, Tensor], Tensor] | None = None
                 ) -> DeepAdaptiveStreamer:
        """A fresh frame-by-frame streamer (state of one clip); ``frame_filter``: see
        :class:`DeepAdaptiveStreamer`."""
        return DeepAdaptiveStreamer(self.model, self.post_filter, frame_filter)

    def frame_spectra(self, mic: np.ndarray, farend: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The output and echo-estimate spectra of every frame of a clip.

        Parameters
        ----------
        mic, farend : np.ndarray [shape=(time,)], float, 16 kHz

        Returns
        -------
        out, echo : np.ndarray [shape=(frames, n_fft // 2 + 1)], complex64
            Frame ``j`` covers input samples ``[(j - 1) hop, (j - 1) hop + n_fft)`` (zeros
            outside the clip), ``ceil(time / hop) + 1`` frames: the framing of
            :class:`clarity_se.dsp.lowdelay_stft.LowDelaySTFT` with ``win_length ==
            synth_length == n_fft``, so a target analysed with it lines up frame by frame.
        """
        mic, farend = check_clip(mic, farend)
        got_out, got_echo = [], []

        def record(out: Tensor, echo: Tensor) -> Tensor:
            got_out.append(out.numpy().astype(np.complex64))
            got_echo.append(echo.numpy().astype(np.complex64))
            return out

        streamer = self.streamer(record)
        streamer.process(mic, farend)
        streamer.flush()
        n_bins = self.model.n_bins
        out = np.concatenate(got_out) if got_out else np.zeros((0, n_bins), np.complex64)
        echo = np.concatenate(got_echo) if got_echo else np.zeros((0, n_bins), np.complex64)
        return out, echo

    def __call__(self, mic: np.ndarray, farend: np.ndarray) -> EchoCancellerOutput:
        """Cancel the echo of a whole clip (``[time]`` float, 16 kHz) -> float32 ``[time]``."""
        return process_whole(self.streamer(), mic, farend)


def load(checkpoint: str = "", post_filter: bool = True,
         kalman_selection: float = KALMAN_SELECTION,
         level_target_db: float = 0.0) -> DeepAdaptive:
    """:class:`DeepAdaptive` from ``checkpoint`` ("" = the packaged one).

    Raises
    ------
    ValueError
        If the checkpoint is missing or not a Deep Adaptive AEC checkpoint (names the file),
        ``kalman_selection`` is outside ``{0} U (0, 1]`` or ``level_target_db`` outside
        ``{0} U [-60, -6]``.
    """
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise ValueError(f"aec.checkpoint: no checkpoint at {path} (train one with "
                             "`clarity-se aec-train`, or leave it empty for the shipped one)")
    else:
        path = packaged_checkpoint()
    model, _ = load_deep_adaptive(path)
    return DeepAdaptive(model, post_filter=post_filter, checkpoint_path=path,
                        kalman_selection=kalman_selection, level_target_db=level_target_db)


@register_aec("deep_adaptive")
def build(options: Any) -> DeepAdaptive:
    """``aec.checkpoint``, ``aec.deep_adaptive.post_filter``, ``.kalman_selection`` and
    ``.level_target_db`` -> :class:`DeepAdaptive`."""
    sub = getattr(options, "deep_adaptive", None)
    post = bool(getattr(sub, "post_filter", True)) if sub is not None else True
    select = float(getattr(sub, "kalman_selection", KALMAN_SELECTION)) if sub is not None \
        else KALMAN_SELECTION
    level = float(getattr(sub, "level_target_db", 0.0)) if sub is not None else 0.0
    return load(str(getattr(options, "checkpoint", "") or ""), post_filter=post,
                kalman_selection=select, level_target_db=level)
