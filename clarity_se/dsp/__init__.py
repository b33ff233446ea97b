"""Shared signal processing: low-delay STFT framing and overlap-add, polyphase resampling.

The lowest layer of the package: it imports only numpy, scipy and torch, and every model,
enhancer and echo canceller may use it.

* :mod:`clarity_se.dsp.lowdelay_stft` -- analysis/synthesis STFT with asymmetric windows
  (Mauler & Martin 2007): a long analysis window for frequency resolution, a short synthesis
  window for low algorithmic latency; whole-signal and stateful streaming paths that agree.
* :mod:`clarity_se.dsp.resample` -- rational-factor polyphase resampling (e.g. 44.1 kHz <->
  16 kHz) with a stated look-ahead and a streaming path that agrees with the whole-signal one.
"""

from clarity_se.dsp.lowdelay_stft import (
    FrameBuffer,
    LowDelaySTFT,
    LowDelaySTFTStreamer,
    OverlapAddBuffer,
    asymmetric_windows,
    frame_signal,
    num_frames,
    overlap_add,
    periodic_hann,
)
from clarity_se.dsp.resample import PolyphaseResampler, ResamplerStreamer

__all__ = [
    "FrameBuffer",
    "LowDelaySTFT",
    "LowDelaySTFTStreamer",
    "OverlapAddBuffer",
    "PolyphaseResampler",
    "ResamplerStreamer",
    "asymmetric_windows",
    "frame_signal",
    "num_frames",
    "overlap_add",
    "periodic_hann",
]
