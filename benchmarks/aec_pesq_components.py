"""Where does PESQ-WB in double talk go? The post-filter's gain applied to each part of its input.

    python benchmarks/aec_pesq_components.py ROOT [--checkpoint PT] [--kalman-selection A]
        [--aecmos] [--out JSON]

``ROOT`` is a synthetic AEC Challenge folder with ``nearend_speech/`` and ``echo_signal/``
(``clarity-se aec-data``); ``--checkpoint`` a ``deep_adaptive`` checkpoint (default: the
packaged one), ``--kalman-selection`` its ``aec.deep_adaptive.kalman_selection`` (default
0.999, the canceller's; 0: off). For every double-talk clip the canceller runs over the whole
clip (float64, the filter from zero, as ``clarity-se aec`` runs it) and its error (the NLMS
error, or the Kalman filter's where the selection chose it) is split, frame by frame,
into what the microphone brought in: ``E = S + N + R`` with ``S`` the near-end speech, ``N`` the
near-end noise (``mic - nearend - echo``) and ``R = E - S - N`` the residual echo (the linear
filter acts on the far end only, so ``S`` and ``N`` pass it unchanged). The post-filter gain
``M`` of each bin and frame is applied to each part, and PESQ-WB against ``S`` is computed for

- ``output``: ``M (S + N + R)``, what the canceller outputs;
- ``no_residual_echo``: ``M (S + N)``, the same gains with the residual echo gone;
- ``no_speech_distortion``: ``S + M (N + R)``, the same gains on everything but the speech;
- ``gain_on_speech``: ``M S`` alone;
- ``ideal_gain``: ``min(1, |S| / |E|) E``, the real gain in [0, 1] per bin and frame that
  brings each bin of the same error closest to the near-end speech (:func:`ideal_gain`): what
  a post-filter of this form (a gain on the error) could reach at best;
- ``ideal_gain_sn``: ``min(1, |S + N| / |E|) E``, the same ideal gain toward the speech and
  the noise (a suppressor that takes away the residual echo and keeps the noise);
- ``oracle``: ``S + N`` (the microphone without its echo);
- ``nearend``: ``S`` alone (echo and noise removed, nothing distorted: the ceiling);
- ``mic``: the unprocessed microphone.

What it says: how much of the gap between ``output`` and ``oracle`` the residual echo costs and
how much the gain's suppression of the near-end speech costs. ``--aecmos`` also scores each
signal with the AECMOS echo and degradation MOS (:func:`clarity_se.metrics.aec.aecmos`, talk
type ``dt``): where a gain on the error can take the degradation MOS (``ideal_gain``,
``ideal_gain_sn``) against the echo-free signals. Printed and written as JSON (default
``results/benchmarks/aec_pesq_components.json``: ``mean`` is PESQ-WB; with ``--aecmos`` also
``mean_aecmos_echo`` and ``mean_aecmos_deg``, and per clip ``aecmos_echo`` / ``aecmos_deg``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("output", "no_residual_echo", "no_speech_distortion", "gain_on_speech",
            "ideal_gain", "ideal_gain_sn", "oracle", "nearend", "mic")


def ideal_gain(e, s):
    """The ideal real gain ``min(1, |S| / |E|)`` of each bin and frame.

    Parameters
    ----------
    e, s : Tensor [shape=(..., F)], complex
        The canceller's error and the near-end speech, same frames.

    Returns
    -------
    Tensor [shape=(..., F)], real in [0, 1]
        The gain in [0, 1] that minimises ``| |g E| - |S| |`` per bin (1 where ``|E| = 0``): a
        magnitude mask, the ideal ratio mask of the error toward the speech, clipped at 1.
    """
    import torch

    mag_e = e.abs()
    return torch.where(mag_e > 0, (s.abs() / mag_e.clamp_min(1e-30)).clamp(max=1.0),
                       torch.ones_like(mag_e))


def components(model, mic: np.ndarray, farend: np.ndarray, nearend: np.ndarray,
               echo: np.ndarray) -> dict[str, np.ndarray]:
    """The signals of :data:`VARIANTS` for one clip.

    Parameters
    ----------
    model : clarity_se.models.deep_adaptive.DeepAdaptiveAEC
        In float64 (``.double().eval()``).
    mic, farend, nearend, echo : np.ndarray [shape=(time,)], float, 16 kHz
        The clip's signals (``mic = nearend + echo + noise``).

    Returns
    -------
    dict
        ``{variant: [time] float64}``; ``output`` is the canceller's output.
    """
    import torch

    n, h = mic.size, model.hop
    length = -(-n // h) * h + 2 * h  # hop of history first, whole frames, one more at the end

    def spec(x: np.ndarray):
        padded = np.zeros(length)
        padded[h : h + n] = x
        return model.stft(torch.from_numpy(padded)[None])

    def signal(s) -> np.ndarray:
        return model.istft(s)[0, h : h + n].numpy()

    with torch.no_grad():
        e, _, mask, _ = model.forward_with_mask(spec(mic), spec(farend))
        s, v = spec(nearend), spec(mic - nearend - echo)
        r = e - s - v
        return {"output": signal(mask * e), "no_residual_echo": signal(mask * (s + v)),
                "no_speech_distortion": signal(s + mask * (v + r)),
                "gain_on_speech": signal(mask * s), "ideal_gain": signal(ideal_gain(e, s) * e),
                "ideal_gain_sn": signal(ideal_gain(e, s + v) * e),
                "oracle": signal(s + v), "nearend": np.asarray(nearend, dtype=np.float64),
                "mic": np.asarray(mic, dtype=np.float64)}


def main(argv: list[str] | None = None) -> int:
    """Print and write the table; 2 on a folder without double-talk clips with references."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--checkpoint", default="", help="deep_adaptive checkpoint (packaged)")
    parser.add_argument("--kalman-selection", type=float, default=0.999,
                        help="aec.deep_adaptive.kalman_selection (0: off)")
    parser.add_argument("--aecmos", action="store_true",
                        help="also the AECMOS echo and degradation MOS of each signal")
    parser.add_argument("--out", type=Path,
                        default=REPO / "results" / "benchmarks" / "aec_pesq_components.json")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    from clarity_se.aec.deep_adaptive import load
    from clarity_se.data.aec_challenge import read_clip, read_synthetic_meta
    from clarity_se.metrics.aec import aecmos, pesq_wb

    try:
        clips = [c for c in read_synthetic_meta(args.root) if c.talk_type == "dt"
                 and c.nearend is not None and c.echo is not None and c.echo.is_file()]
        model = load(args.checkpoint, kalman_selection=args.kalman_selection).model  # float64
    except ValueError as exc:
        print(f"aec_pesq_components: {exc}")
        return 2
    if not clips:
        print(f"aec_pesq_components: {args.root}: no double-talk clip with nearend_speech and "
              "echo_signal")
        return 2
    rows = []
    for clip in tqdm(clips, desc="clips"):
        audio = read_clip(clip)
        sig = components(model, audio.mic, audio.farend, audio.nearend, audio.echo)
        row = {"id": clip.id, **{k: pesq_wb(reference=audio.nearend, processed=x)
                                 for k, x in sig.items()}}
        if args.aecmos:
            mos = {k: aecmos(loopback=audio.farend, mic=audio.mic, enhanced=x, talk_type="dt")
                   for k, x in sig.items()}
            row["aecmos_echo"] = {k: m[0] for k, m in mos.items()}
            row["aecmos_deg"] = {k: m[1] for k, m in mos.items()}
        rows.append(row)
    mean = {k: float(np.nanmean([r[k] for r in rows])) for k in VARIANTS}
    result = {"root": str(args.root), "checkpoint": args.checkpoint or "packaged",
              "kalman_selection": args.kalman_selection, "mean": mean}
    header = f"  {'signal':22s} {'PESQ-WB':>8s}"
    if args.aecmos:
        for key in ("aecmos_echo", "aecmos_deg"):
            result[f"mean_{key}"] = {k: float(np.nanmean([r[key][k] for r in rows]))
                                     for k in VARIANTS}
        header += f" {'echo MOS':>9s} {'deg MOS':>8s}"
    print(f"Double talk, {len(rows)} clips of {args.root}")
    print(header)
    for k in VARIANTS:
        line = f"  {k:22s} {mean[k]:8.3f}"
        if args.aecmos:
            line += f" {result['mean_aecmos_echo'][k]:9.2f} {result['mean_aecmos_deg'][k]:8.2f}"
        print(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**result, "clips": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
