"""Hearing-aid amplification: NAL-R prescription and FIR, the Clarity compressor, the whole aid."""
