"""Chunked (streaming) inference of the causal Conv-TasNet with bounded memory.

:class:`StreamingEnhancer` feeds arbitrary-size chunks through a causal
:class:`~clarity_se.models.conv_tasnet.MultichannelConvTasNet`, carrying

* the input samples of the incomplete encoder frame (< L samples),
* per TCN block the last ``(P - 1) * dilation`` frames of the depthwise-convolution input,
* the cumulative-layer-norm running sums (two float64 scalars per batch item per norm),
* the decoder overlap-add tail (``L - S`` samples).

Memory is therefore independent of the signal length. Concatenating the outputs of
:meth:`StreamingEnhancer.process` and :meth:`StreamingEnhancer.flush` gives exactly the
whole-utterance ``model(mixture)`` (same length, equal within float32 rounding, ~1e-6).

Output is emitted with the encoder delay: a chunk of ``n`` input samples returns the output
samples whose overlap-add is complete (up to ``L - S`` fewer on the first chunk); ``flush()``
returns the rest.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from clarity_se.models.conv_tasnet import MultichannelConvTasNet


class StreamingEnhancer:
    """Stateful chunked inference for a causal :class:`MultichannelConvTasNet`.

    Parameters
    ----------
    model : MultichannelConvTasNet
        A causal model (``causal=True``); put in eval mode by the caller or here.

    Raises
    ------
    ValueError
        If the model is not causal, or a chunk has the wrong shape.

    Examples
    --------
    >>> import torch
    >>> from clarity_se.models.conv_tasnet import MultichannelConvTasNet
    >>> model = MultichannelConvTasNet(n_filters=8, kernel_size=8, bn_chan=8, hid_chan=8,
    ...                                n_blocks=2, n_repeats=1).eval()
    >>> x = torch.randn(1, 6, 101)
    >>> stream = StreamingEnhancer(model)
    >>> with torch.no_grad():
    ...     y = torch.cat([stream.process(x[..., :37]), stream.process(x[..., 37:]),
    ...                    stream.flush()], dim=-1)
    ...     bool(torch.allclose(y, model(x), atol=1e-5))
    True
    """

    def __init__(self, model: MultichannelConvTasNet) -> None:
        if not model.causal:
            raise ValueError("StreamingEnhancer needs a causal model (causal=True)")
        self.model = model
        self.L, self.S = model.kernel_size, model.stride
        self.reset()

    def reset(self) -> None:
        """Forget all state (start a new signal)."""
        self.in_buf: Tensor | None = None
        self.ola: Tensor | None = None
        self.state = self.model.init_state()
        self.n_in = 0  # input samples received
        self.n_out = 0  # output samples emitted (after the crop)
        self.to_skip = self.L - self.S  # leading padded samples to drop

    def _run(self, new: Tensor) -> Tensor:
        """Append ``new`` to the input buffer, run every complete frame, return final samples."""
        L, S = self.L, self.S
        if self.in_buf is None:
            self.in_buf = new.new_zeros(new.shape[0], new.shape[1], L - S)
            self.ola = new.new_zeros(new.shape[0], self.model.n_src, 2, L - S)
        buf = torch.cat([self.in_buf, new], dim=-1)
        n_frames = (buf.shape[-1] - L) // S + 1 if buf.shape[-1] >= L else 0
        if n_frames == 0:
            self.in_buf = buf
            return new.new_zeros(new.shape[0], self.model.n_src, 2, 0)
        decoded, self.state = self.model.separate_frames(
            buf[..., : (n_frames - 1) * S + L], self.state
        )
        self.in_buf = buf[..., n_frames * S :]
        decoded[..., : L - S] += self.ola
        ready = decoded[..., : n_frames * S]
        self.ola = decoded[..., n_frames * S :]
        return ready

    def _crop(self, ready: Tensor, limit: int | None = None) -> Tensor:
        if self.to_skip:
            drop = min(self.to_skip, ready.shape[-1])
            ready = ready[..., drop:]
            self.to_skip -= drop
        if limit is not None:
            ready = ready[..., : max(limit - self.n_out, 0)]
        self.n_out += ready.shape[-1]
        return ready

    def process(self, chunk: Tensor) -> Tensor:
        """Feed one chunk and return the output samples that are final.

        Parameters
        ----------
        chunk : Tensor [shape=(batch, n_mics, time)], any ``time >= 0``

        Returns
        -------
        Tensor [shape=(batch, n_src, 2, time_out)]
            Next output samples (``time_out`` may differ from ``time`` by < L samples).

        Raises
        ------
        ValueError
            If the chunk does not have shape ``[batch, n_mics, time]`` or the batch changes.
        """
        if chunk.dim() != 3 or chunk.shape[1] != self.model.n_mics:
            raise ValueError(
                f"chunk: expected shape [batch, {self.model.n_mics}, time], "
                f"got {tuple(chunk.shape)}"
            )
        if self.in_buf is not None and chunk.shape[0] != self.in_buf.shape[0]:
            raise ValueError("chunk: batch size changed within a stream; call reset()")
        self.n_in += chunk.shape[-1]
        return self._crop(self._run(chunk))

    def flush(self) -> Tensor:
        """End of signal: zero-pad the last frame and return the remaining output samples.

        After ``flush`` the total output length equals the total input length; the enhancer is
        reset for the next signal.
        """
        if self.in_buf is None:
            self.reset()
            raise ValueError("flush() called before any input")
        pad = (-self.n_in) % self.S
        ready = self._run(F.pad(self.in_buf[..., :0], (0, pad)))
        tail = torch.cat([ready, self.ola], dim=-1)
        out = self._crop(tail, limit=self.n_in)
        self.reset()
        return out


@torch.no_grad()
def enhance_in_chunks(model: MultichannelConvTasNet, mixture: Tensor, chunk_size: int) -> Tensor:
    """Enhance a whole signal in chunks of ``chunk_size`` samples with bounded memory.

    Parameters
    ----------
    model : MultichannelConvTasNet
        Causal model (non-causal models are run whole).
    mixture : Tensor [shape=(batch, n_mics, time)]
    chunk_size : int
        Samples per chunk; ``<= 0`` runs the whole signal at once.

    Returns
    -------
    Tensor [shape=(batch, n_src, 2, time)]
        Equal to ``model(mixture)`` within float32 rounding.
    """
    if chunk_size <= 0 or not model.causal:
        return model(mixture)
    stream = StreamingEnhancer(model)
    pieces = [
        stream.process(mixture[..., i : i + chunk_size])
        for i in range(0, mixture.shape[-1], chunk_size)
    ]
    pieces.append(stream.flush())
    return torch.cat(pieces, dim=-1)
