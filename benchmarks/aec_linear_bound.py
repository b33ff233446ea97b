"""How much echo can a per-bin multi-tap STFT filter remove? The best fixed filter per clip.

    python benchmarks/aec_linear_bound.py ROOT [--n-fft 320] [--taps 10 20 40]
        [--cross-bands 0 1] [--out JSON]

``ROOT`` is a synthetic AEC Challenge folder with ``echo_signal/`` (``clarity-se aec-data``).
For each clip with echo (far-end single talk and double talk), the far-end signal and the true
echo are framed as the ``deep_adaptive`` canceller frames them
(:meth:`~clarity_se.models.deep_adaptive.DeepAdaptiveAEC.stft`: square-root Hann windows of
``n_fft`` samples every ``n_fft / 2``), and in every bin the complex ``L``-tap filter over the
last ``L`` far-end frames of that bin and of its ``B`` neighbours on either side (``B = 0``: a
filter per bin; ``--cross-bands``) that best predicts the echo frame (least squares on the whole
clip; one fit per echo-path segment when the path changes) is fitted to the **true echo**.
Reported: its
echo reduction ``10 log10(sum |D|^2 / sum |D - W X|^2)`` in dB, per clip and averaged (in dB)
per echo path (``room``, ``measured``, ``hearing_aid``) and per loudspeaker nonlinearity.

The fit is in-sample: with ``p = (2B + 1) L`` coefficients per bin over ``n`` frames it is
optimistic by about ``-10 log10(1 - p / n)`` dB (0.6 dB for ``p = 120`` over a 10 s clip).

What it says: what the frame length and the filter's size let a linear stage of that framing
reach at best, with no noise, no double talk and no adaptation, on each kind of echo path. It is
no strict bound for ``deep_adaptive`` (whose reference is the far end times a gain per bin and
frame that its network predicts, and whose filter varies in time), but a filter of that form
that leaves more echo than this needs the network's help to do better. Printed and written as
JSON (default ``results/benchmarks/aec_linear_bound.json``).
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


@functools.lru_cache(maxsize=4)
def _analysis(n_fft: int):
    """A ``deep_adaptive`` model of frame ``n_fft``, built once: only its STFT is used."""
    from clarity_se.models.deep_adaptive import DeepAdaptiveAEC

    return DeepAdaptiveAEC(n_fft=n_fft, hop=n_fft // 2, taps=1, hidden=1, layers=1)


def framed(signal: np.ndarray, n_fft: int) -> np.ndarray:
    """``deep_adaptive``'s analysis of ``signal [time]`` (hop ``n_fft // 2``) ->
    ``[frames, n_fft // 2 + 1]``."""
    import torch

    x = torch.as_tensor(np.asarray(signal, dtype=np.float64))[None]
    return _analysis(n_fft).stft(x)[0].numpy()


def best_filter_reduction(far: np.ndarray, echo: np.ndarray, taps: int,
                          segments: list[slice] | None = None, cross_bands: int = 0) -> float:
    """Echo reduction (dB) of the least-squares ``taps``-tap filter per bin.

    Parameters
    ----------
    far, echo : np.ndarray [shape=(frames, F)], complex
        Far-end and echo spectra of the same frames.
    taps : int
        Filter length in frames (tap ``l`` multiplies the far-end frame ``l`` frames back).
    segments : list of slice, optional
        Frame ranges fitted separately (echo-path segments); default the whole clip.
    cross_bands : int
        Neighbouring bins on either side whose frames the filter of a bin also takes.

    Returns
    -------
    float
        ``10 log10(sum |echo|^2 / sum |echo - W far|^2)`` over the segments, dB (``inf`` for
        a perfect fit, ``nan`` for no echo).
    """
    segments = segments or [slice(0, far.shape[0])]
    total = residual = 0.0
    for seg in segments:
        xs, ds = far[seg], echo[seg]
        n = xs.shape[0]
        if n == 0:
            continue
        # history[t, f, l] = xs[t - l, f] (zeros before the segment)
        history = np.zeros((n, xs.shape[1], taps), dtype=complex)
        for lag in range(min(taps, n)):
            history[lag:, :, lag] = xs[: n - lag]
        n_bins = xs.shape[1]
        for f in range(n_bins):
            lo, hi = max(0, f - cross_bands), min(n_bins, f + cross_bands + 1)
            regressors = history[:, lo:hi].reshape(n, -1)
            w, *_ = np.linalg.lstsq(regressors, ds[:, f], rcond=None)
            residual += float(np.sum(np.abs(ds[:, f] - regressors @ w) ** 2))
        total += float(np.sum(np.abs(ds) ** 2))
    if total == 0.0:
        return float("nan")
    return float("inf") if residual == 0.0 else 10.0 * np.log10(total / residual)


def clip_segments(n_frames: int, hop: int, change_s: float | None,
                  sample_rate: int = 16000) -> list[slice]:
    """Frame ranges before and after an echo-path change (a frame's span is left out around
    it); the whole clip when there is none."""
    if change_s is None:
        return [slice(0, n_frames)]
    k = int(change_s * sample_rate / hop)
    return [slice(0, max(k - 2, 0)), slice(min(k + 2, n_frames), n_frames)]


def main(argv: list[str] | None = None) -> int:
    """Print and write the table; 2 on a folder without echo signals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--n-fft", type=int, default=320)
    parser.add_argument("--taps", type=int, nargs="+", default=[10, 20, 40])
    parser.add_argument("--cross-bands", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path,
                        default=REPO / "results" / "benchmarks" / "aec_linear_bound.json")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    from clarity_se.data.aec_challenge import read_signal, read_synthetic_meta

    try:
        clips = [c for c in read_synthetic_meta(args.root)
                 if c.talk_type in ("st", "dt") and c.echo is not None and c.echo.is_file()]
    except ValueError as exc:
        print(f"aec_linear_bound: {exc}")
        return 2
    if not clips:
        print(f"aec_linear_bound: {args.root}: no far-end or double-talk clip with echo_signal")
        return 2
    rows = []
    for clip in tqdm(clips, desc="clips"):
        far = framed(read_signal(clip.farend, "farend"), args.n_fft)
        echo = framed(read_signal(clip.echo, "echo"), args.n_fft)
        n = min(far.shape[0], echo.shape[0])
        segments = clip_segments(n, args.n_fft // 2, clip.echo_path_change_s)
        row = {"id": clip.id, "echo_path": clip.meta.get("echo_path", ""),
               "nonlinear": bool(clip.is_farend_nonlinear)}
        for bands in args.cross_bands:
            for taps in args.taps:
                row[f"b{bands}_taps_{taps}_db"] = best_filter_reduction(
                    far[:n], echo[:n], taps, segments, bands)
        rows.append(row)
    keys = [f"b{b}_taps_{t}_db" for b in args.cross_bands for t in args.taps]
    groups: dict[str, dict] = {}
    for name, pick in ([("all", lambda r: True)]
                       + [(f"path={p}", lambda r, p=p: r["echo_path"] == p)
                          for p in sorted({r["echo_path"] for r in rows})]
                       + [("linear loudspeaker", lambda r: not r["nonlinear"]),
                          ("nonlinear loudspeaker", lambda r: r["nonlinear"])]):
        sel = [r for r in rows if pick(r)]
        if sel:
            groups[name] = {"clips": len(sel), **{k: float(np.mean([min(r[k], 60.0) for r in sel]))
                                                  for k in keys}}
    print(f"best fixed filter on {args.n_fft}-sample frames, echo reduction (dB), {args.root}")
    print(f"{'group':24s} {'clips':>5s} " + " ".join(
        f"{f'B{b} L{t}':>8s}" for b in args.cross_bands for t in args.taps))
    for name, g in groups.items():
        print(f"{name:24s} {g['clips']:5d} " + " ".join(f"{g[k]:8.1f}" for k in keys))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"root": str(args.root), "n_fft": args.n_fft,
                                    "taps": args.taps, "cross_bands": args.cross_bands,
                                    "groups": groups, "clips": rows},
                                   indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
