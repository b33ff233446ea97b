"""``webrtc_aec3``: WebRTC AEC3, the classical anchor, run offline from ``aec-audio-processing``.

The ``aec-audio-processing`` wheel wraps the WebRTC audio processing module
(``webrtc::AudioProcessing``); with only the echo canceller enabled (no noise suppression, no
gain control) it is AEC3: a delay estimator, a linear adaptive filter and a residual echo
suppressor (Google, WebRTC ``modules/audio_processing/aec3``). It takes 16-bit PCM in 10 ms
frames: per frame the far end goes to ``process_reverse_stream`` first, then the microphone to
``process_stream``, which returns the processed frame.

Alignment and latency (measured, pinned by ``tests/aec/test_aec_classical.py``): at 16 kHz the
processed signal lags its input by :data:`INTERNAL_DELAY` = 128 samples (AEC3's 64-sample block
framing). The wrapper removes that lag so the output is time-aligned with the microphone; output
sample ``t`` is then known when the 10 ms frame holding input sample ``t + 128`` is complete:
``latency_samples = 160 - 1 + 128 = 287`` samples (17.9 ms, within the AEC Challenge's 20 ms).
AEC3 exposes no echo estimate: ``echo_estimate`` is zeros. Deterministic for a given input.
Floats are scaled by 32768, rounded and clipped to int16 on the way in and divided by 32768 on
the way out.

References
----------
WebRTC, ``modules/audio_processing/aec3`` (J. Åhgren et al., Google); the
``aec-audio-processing`` Python wheel (SWIG binding of ``webrtc-audio-processing``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clarity_se.aec import register_aec
from clarity_se.aec.base import SAMPLE_RATE, EchoCancellerOutput
from clarity_se.aec.framing import QueuedStreamer, process_whole

#: Samples per 10 ms frame at 16 kHz.
FRAME = SAMPLE_RATE // 100
#: Lag of the processed signal behind its input at 16 kHz, samples (measured).
INTERNAL_DELAY = 128


def _to_pcm(x: np.ndarray) -> bytes:
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16).tobytes()


class WebRTCAEC3Streamer(QueuedStreamer):
    """Frame-by-frame AEC3 with its lag removed (see the module docstring)."""

    def __init__(self, noise_suppression: bool = False) -> None:
        self.noise_suppression = noise_suppression
        self.reset()

    def reset(self) -> None:
        """A fresh AEC3 instance and empty buffers."""
        from aec_audio_processing import AudioProcessor

        ap = AudioProcessor(enable_aec=True, enable_ns=self.noise_suppression, enable_agc=False,
                            enable_vad=False)
        ap.set_stream_format(SAMPLE_RATE, 1, SAMPLE_RATE, 1)
        ap.set_reverse_stream_format(SAMPLE_RATE, 1)
        ap.set_stream_delay(0)
        if ap.get_frame_size() != FRAME:  # pragma: no cover - fixed by the wheel
            raise RuntimeError(f"AEC3 frame size {ap.get_frame_size()}, expected {FRAME}")
        self._ap = ap
        self._clear_queues()
        self._skip = INTERNAL_DELAY

    def _frames(self) -> np.ndarray:
        outs = []
        while self._mic.size >= FRAME:
            self._ap.process_reverse_stream(_to_pcm(self._far[:FRAME]))
            out = self._ap.process_stream(_to_pcm(self._mic[:FRAME]))
            outs.append(np.frombuffer(out, dtype=np.int16).astype(np.float64) / 32768.0)
            self._mic, self._far = self._mic[FRAME:], self._far[FRAME:]
        y = np.concatenate(outs) if outs else np.zeros(0)
        drop = min(self._skip, y.size)
        self._skip -= drop
        return y[drop:]

    def _run(self) -> tuple[np.ndarray, np.ndarray]:
        """The aligned output samples now final, and zeros (AEC3 exposes no echo estimate)."""
        y = self._frames()
        return y, np.zeros_like(y)

    def flush(self) -> EchoCancellerOutput:
        """End of clip: process zero-padded frames until every sample is out; reset."""
        remaining = self._n_in - self._n_out
        frames = -(-(remaining + self._skip) // FRAME)
        pad = frames * FRAME - self._mic.size
        self._mic = np.concatenate([self._mic, np.zeros(pad)])
        self._far = np.concatenate([self._far, np.zeros(pad)])
        y = self._frames()[:remaining]
        self.reset()
        out = y.astype(np.float32)
        return EchoCancellerOutput(out, np.zeros_like(out))


class WebRTCAEC3:
    """The ``webrtc_aec3`` echo canceller (AEC3 only: no noise suppression, no AGC).

    Parameters
    ----------
    noise_suppression : bool
        Also run WebRTC's noise suppressor (off for the anchor).

    Attributes
    ----------
    name : str
        ``"webrtc_aec3"``.
    latency_samples : int
        287 samples (17.9 ms): a 10 ms frame plus AEC3's 128-sample lag.
    n_params : int
        0 (no learned parameters).
    """

    name = "webrtc_aec3"
    n_params = 0
    latency_samples = FRAME - 1 + INTERNAL_DELAY

    def __init__(self, noise_suppression: bool = False) -> None:
        self.noise_suppression = noise_suppression
        self.sample_rate = SAMPLE_RATE

    def streamer(self) -> WebRTCAEC3Streamer:
        """A fresh streamer (a new AEC3 instance)."""
        return WebRTCAEC3Streamer(self.noise_suppression)

    def __call__(self, mic: np.ndarray, farend: np.ndarray) -> EchoCancellerOutput:
        """Cancel the echo of a whole clip (``[time]`` float, 16 kHz) -> float32 ``[time]``."""
        return process_whole(self.streamer(), mic, farend)


@register_aec("webrtc_aec3")
def build(options: Any) -> WebRTCAEC3:
    """``aec.webrtc_aec3.noise_suppression`` -> :class:`WebRTCAEC3`."""
    sub = getattr(options, "webrtc_aec3", None)
    return WebRTCAEC3(noise_suppression=bool(getattr(sub, "noise_suppression", False)))
