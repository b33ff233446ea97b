"""Chunked streaming inference equals whole-utterance inference."""

import pytest
import torch

from clarity_se.models.conv_tasnet import MultichannelConvTasNet
from clarity_se.models.streaming import StreamingEnhancer, enhance_in_chunks
from clarity_se.models.target_selection import frontal_coherence, pick_target, select_target

TINY = dict(n_filters=16, kernel_size=16, bn_chan=8, hid_chan=16, n_blocks=3, n_repeats=2)


# Odd lengths and chunk sizes, chunk 1 included; per-sample chunks only on shorter signals
# (each chunk is one Python call, so 1-sample chunks over 2001 samples cost a minute on CI).
@pytest.mark.parametrize(
    ("n_time", "chunk"),
    [
        (1, 1),
        (9, 1),
        (517, 1),
        (9, 7),
        (517, 7),
        (1, 64),
        (517, 64),
        (2001, 64),
        (9, 333),
        (2001, 333),
    ],
)
def test_chunked_equals_whole(n_time, chunk):
    torch.manual_seed(0)
    model = MultichannelConvTasNet(n_src=2, **TINY).eval()
    x = torch.randn(2, 6, n_time)
    with torch.no_grad():
        whole = model(x)
    chunked = enhance_in_chunks(model, x, chunk)
    assert chunked.shape == whole.shape
    assert (chunked - whole).abs().max() < 1e-5


def test_irregular_chunks_and_reuse():
    torch.manual_seed(1)
    model = MultichannelConvTasNet(**TINY).eval()
    stream = StreamingEnhancer(model)
    gen = torch.Generator().manual_seed(2)
    for n_time in (1003, 250):  # the enhancer is reusable after flush
        x = torch.randn(1, 6, n_time)
        bounds = sorted(torch.randint(0, n_time, (6,), generator=gen).tolist())
        edges = [0, *bounds, n_time]
        with torch.no_grad():
            out = [stream.process(x[..., a:b]) for a, b in zip(edges[:-1], edges[1:], strict=False)]
            out.append(stream.flush())
            y = torch.cat(out, -1)
            assert (y - model(x)).abs().max() < 1e-5
    # state memory is bounded: the input buffer never holds a whole frame
    with torch.no_grad():
        stream.process(torch.randn(1, 6, 5000))
    assert stream.in_buf.shape[-1] < model.kernel_size
    with pytest.raises(ValueError, match="chunk"):
        stream.process(torch.randn(1, 4, 10))


def test_target_selection_prefers_frontal_source():
    gen = torch.Generator().manual_seed(3)
    n = 4000
    frontal = torch.randn(n, generator=gen)
    lateral = torch.randn(n + 20, generator=gen)
    target = torch.stack([frontal, frontal * 0.9])  # ITD 0
    interferer = torch.stack([lateral[20:], lateral[:-20]])  # ITD 20 samples (0.45 ms)
    est = torch.stack([interferer, target])[None]
    scores = frontal_coherence(est, 44100)
    assert scores[0, 1] > 0.99 and scores[0, 0] < 0.2
    assert select_target(est, 44100).tolist() == [1]
    assert torch.equal(pick_target(est, 44100)[0], target)
    assert select_target(est[:, :1], 44100).tolist() == [0]


def test_selection_accuracy_on_oracle_pairs(tmp_path):
    from enhancer_helpers import make_scenes

    from clarity_se.models.target_selection import selection_accuracy_on_split

    make_scenes(tmp_path, "dev", 2, 3001, seed=4)  # diotic target, lateral noise
    result = selection_accuracy_on_split(str(tmp_path), "dev")
    assert result["n_scenes"] == 2 and result["accuracy"] == 1.0
    assert all(r["oracle"] == 0 for r in result["per_scene"])
