"""Signal processing shared by every layer above; nothing here knows about scenes or models.

* :mod:`.designs` -- scipy filter designs, cached on disk;
* :mod:`.iir` -- batched ``lfilter`` on CPU (numba) and CUDA;
* :mod:`.resample` -- the cochlear model's 24 kHz resampler (reproducing pyclarity);
* :mod:`.polyphase` -- rational-factor polyphase resampling (e.g. 44.1 kHz <-> 16 kHz) with a
  stated look-ahead and a streaming path that agrees with the whole-signal one;
* :mod:`.lowdelay_stft` -- analysis/synthesis STFT with asymmetric windows (Mauler & Martin
  2007): a long analysis window for frequency resolution, a short synthesis window for low
  algorithmic latency; whole-signal and stateful streaming paths that agree.

Submodules are imported explicitly (``from clarity_se.dsp.lowdelay_stft import ...``), so that
importing one does not pull in the others' dependencies.
"""
