"""Does a training loss rank post-filter gains as PESQ-WB does? The gain ``M`` raised to powers.

    python benchmarks/aec_perceptual_loss.py ROOT [--checkpoint PT] [--kalman-selection A]
        [--powers 0,0.25,...] [--asymmetry 0,0.001,...] [--out JSON]

``ROOT`` is a synthetic AEC Challenge folder with ``nearend_speech/`` (``clarity-se aec-data``);
``--checkpoint`` a ``deep_adaptive`` checkpoint (default: the packaged one),
``--kalman-selection`` its ``aec.deep_adaptive.kalman_selection`` (default 0.999, the
canceller's). For every double-talk clip the canceller runs over the whole clip (float64, as
``clarity-se aec`` runs it), and its post-filter gain ``M`` is replaced by ``M^p`` for each power
``p`` (below 1: less suppression, above 1: more). Each output ``M^p E`` gets

- ``pesq``: PESQ-WB against the near-end speech (the ``pesq`` package);
- ``spectral``: the trainer's compressed spectral distance to the near-end speech (exponent
  0.3, complex weight 0.3, near-end frames weighing 4:
  :func:`clarity_se.training.aec_train.compressed_spectral_loss`);
- ``d_sym``, ``d_asym``: the PESQ-like disturbances of
  :class:`clarity_se.training.perceptual_loss.PesqLikeLoss` over the near-end frames.

For each candidate loss (the spectral distance, and ``0.1 d_sym + a d_asym`` for each
``--asymmetry`` ``a``), the Spearman rank correlation within each clip between the loss and
PESQ-WB across the powers (negated: 1 = the loss orders the gains exactly as PESQ-WB does),
averaged over the clips. Printed and written as JSON (default
``results/benchmarks/aec_perceptual_loss.json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def clip_rows(model, loss_fn, mic, farend, nearend, powers) -> list[dict]:
    """One row per power for one clip: ``{"p", "pesq", "spectral", "d_sym", "d_asym"}``."""
    import torch

    from clarity_se.metrics.aec import pesq_wb
    from clarity_se.training.aec_train import compressed_spectral_loss, nearend_frame_weight

    n, h = mic.size, model.hop
    length = -(-n // h) * h + 2 * h

    def spec(x):
        padded = np.zeros(length)
        padded[h:h + n] = x
        return model.stft(torch.from_numpy(padded)[None])

    rows = []
    with torch.no_grad():
        e, _, mask, _ = model.forward_with_mask(spec(mic), spec(farend))
        s = spec(nearend)
        weight = nearend_frame_weight(s, 4.0)
        active = weight > 1.0
        for p in powers:
            est = mask ** p * e
            out = model.istft(est)[0, h:h + n].numpy()
            d_sym, d_asym = loss_fn(est.to(torch.complex64), s.to(torch.complex64), active)
            rows.append({"p": float(p), "pesq": pesq_wb(reference=nearend, processed=out),
                         "spectral": float(compressed_spectral_loss(est, s, 0.3, 0.3, weight)),
                         "d_sym": float(d_sym[0]), "d_asym": float(d_asym[0])})
    return rows


def rank_agreement(rows: list[dict], loss) -> float:
    """Mean over clips of the Spearman correlation between ``-loss(row)`` and PESQ-WB."""
    from scipy.stats import spearmanr

    by_clip: dict[str, list] = {}
    for r in rows:
        by_clip.setdefault(r["id"], []).append(r)
    rho = [spearmanr([-loss(r) for r in rs], [r["pesq"] for r in rs]).statistic
           for rs in by_clip.values()]
    return float(np.nanmean(rho))


def main(argv: list[str] | None = None) -> int:
    """Print and write the table; 2 on a folder without double-talk clips with references."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--checkpoint", default="", help="deep_adaptive checkpoint (packaged)")
    parser.add_argument("--kalman-selection", type=float, default=0.999,
                        help="aec.deep_adaptive.kalman_selection (0: off)")
    parser.add_argument("--powers", default="0,0.25,0.5,0.75,1,1.5,2")
    parser.add_argument("--asymmetry", default="0,0.0003,0.001,0.003,0.01,0.0309")
    parser.add_argument("--out", type=Path,
                        default=REPO / "results" / "benchmarks" / "aec_perceptual_loss.json")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    from clarity_se.aec.deep_adaptive import load
    from clarity_se.data.aec_challenge import read_clip, read_synthetic_meta
    from clarity_se.training.perceptual_loss import PesqLikeLoss

    try:
        powers = [float(p) for p in args.powers.split(",")]
        asymmetry = [float(a) for a in args.asymmetry.split(",")]
        clips = [c for c in read_synthetic_meta(args.root)
                 if c.talk_type == "dt" and c.nearend is not None]
        model = load(args.checkpoint, kalman_selection=args.kalman_selection).model  # float64
    except ValueError as exc:
        print(f"aec_perceptual_loss: {exc}")
        return 2
    if not clips:
        print(f"aec_perceptual_loss: {args.root}: no double-talk clip with nearend_speech")
        return 2
    loss_fn = PesqLikeLoss(model.n_bins)
    rows = []
    for clip in tqdm(clips, desc="clips"):
        audio = read_clip(clip)
        for r in clip_rows(model, loss_fn, audio.mic, audio.farend, audio.nearend, powers):
            rows.append({"id": clip.id, **r})
    mean = {str(p): {k: float(np.mean([r[k] for r in rows if r["p"] == p]))
                     for k in ("pesq", "spectral", "d_sym", "d_asym")} for p in powers}
    agreement = {"spectral": rank_agreement(rows, lambda r: r["spectral"])}
    for a in asymmetry:
        agreement[f"0.1 d_sym + {a:g} d_asym"] = rank_agreement(
            rows, lambda r, a=a: 0.1 * r["d_sym"] + a * r["d_asym"])
    print(f"{len(clips)} double-talk clips of {args.root}; the post-filter gain M -> M^p")
    print(f"  {'p':>5s} {'PESQ-WB':>8s} {'spectral':>9s} {'d_sym':>7s} {'d_asym':>8s}")
    for p in powers:
        m = mean[str(p)]
        print(f"  {p:5.2f} {m['pesq']:8.3f} {m['spectral']:9.4f} {m['d_sym']:7.2f} "
              f"{m['d_asym']:8.1f}")
    print("within-clip rank agreement with PESQ-WB (1: the same order)")
    for k, v in agreement.items():
        print(f"  {k:28s} {v:+.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"root": str(args.root), "checkpoint": args.checkpoint or
                                    "packaged", "kalman_selection": args.kalman_selection,
                                    "mean": mean, "agreement": agreement, "rows": rows},
                                   indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
