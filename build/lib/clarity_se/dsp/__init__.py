"""Signal processing shared by every layer above: filter designs, IIR filtering, resampling.

Nothing here knows about scenes, listeners or models: :mod:`.designs` (scipy filter designs,
cached on disk), :mod:`.iir` (batched ``lfilter`` on CPU and CUDA), :mod:`.resample` (the
cochlear model's 24 kHz resampler, reproducing pyclarity).
"""
