"""Training of the Conv-TasNet enhancer (``clarity-se train``)."""
