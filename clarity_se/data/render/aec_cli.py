"""``clarity-se aec-data OUT``: render echo clips in the AEC Challenge synthetic layout.

Writes ``OUT/meta.csv`` and ``OUT/{farend_speech,echo_signal,nearend_speech,
nearend_mic_signal}/*_fileid_<N>.wav`` (16 kHz, 16-bit PCM) from the recordings of
``--data-root`` (the shared data set: ``speech/``, ``noise/``, ``rir/``); see
:mod:`clarity_se.data.render.echo` for the scene model. Same options and seed -> identical
files, whatever ``--workers``. ``--split test`` draws held-out talkers, noise segments and
measured paths.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def _floats(text: str, count: int, name: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: expected {count} comma-separated numbers, "
                                         f"got {text!r}") from None
    if len(values) != count:
        raise argparse.ArgumentTypeError(f"{name}: expected {count} comma-separated numbers, "
                                         f"got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``clarity-se aec-data``."""
    from clarity_se.data.render.echo import DEFAULT_DATA_ROOT, SPLITS, EchoRenderOptions

    d = EchoRenderOptions()
    parser.add_argument("out", type=Path, help="output folder (gets meta.csv + signal folders)")
    parser.add_argument("--clips", type=int, default=100, help="number of clips (default 100)")
    parser.add_argument("--first-fileid", type=int, default=0, help="first fileid (default 0)")
    parser.add_argument("--split", choices=SPLITS, default=d.split,
                        help="talker pool: train, or held-out test (distinct talkers)")
    parser.add_argument("--seed", type=int, default=d.seed, help="dataset seed (default 0)")
    parser.add_argument("--clip-s", type=float, default=d.clip_s, help="clip length, s (10)")
    parser.add_argument("--data-root", type=Path, default=Path(DEFAULT_DATA_ROOT),
                        help=f"recordings: speech/, noise/, rir/ (default {DEFAULT_DATA_ROOT})")
    parser.add_argument("--talk-mix", type=lambda t: _floats(t, 3, "--talk-mix"),
                        default=d.talk_mix, help="weights of st,dt,nst (default 0.3,0.5,0.2)")
    parser.add_argument("--path-mix", type=lambda t: _floats(t, 3, "--path-mix"),
                        default=d.path_mix,
                        help="weights of room,measured,hearing_aid echo paths (0.4,0.3,0.3)")
    parser.add_argument("--ser-db", type=lambda t: _floats(t, 2, "--ser-db"), default=d.ser_db,
                        help="SER range, dB (default -10,10)")
    parser.add_argument("--delay-ms", type=lambda t: _floats(t, 2, "--delay-ms"),
                        default=d.delay_ms, help="bulk delay range, ms (default 0,30)")
    parser.add_argument("--p-nonlinear", type=float, default=d.p_nonlinear,
                        help="probability of the loudspeaker nonlinearity (0.5)")
    parser.add_argument("--p-path-change", type=float, default=d.p_path_change,
                        help="probability of an echo-path change mid-clip (0.2)")
    parser.add_argument("--p-nearend-noise", type=float, default=d.p_nearend_noise,
                        help="probability of near-end noise (0.5)")
    parser.add_argument("--p-farend-noise", type=float, default=d.p_farend_noise,
                        help="probability of far-end noise (0.1)")
    parser.add_argument("--workers", type=int, default=1,
                        help="rendering processes (default 1); the output does not depend on it")


def main(args: argparse.Namespace) -> int:
    """Run ``clarity-se aec-data``; returns the exit status (0 ok, 1 bad input)."""
    from clarity_se.data.render.echo import EchoRenderOptions, build_aec_dataset

    try:
        options = EchoRenderOptions(
            clip_s=args.clip_s, split=args.split, seed=args.seed, talk_mix=args.talk_mix,
            path_mix=args.path_mix, ser_db=args.ser_db, delay_ms=args.delay_ms,
            p_nonlinear=args.p_nonlinear, p_path_change=args.p_path_change,
            p_nearend_noise=args.p_nearend_noise, p_farend_noise=args.p_farend_noise,
        )
        result = build_aec_dataset(args.out, n_clips=args.clips, options=options,
                                   data_root=args.data_root, first_fileid=args.first_fileid,
                                   workers=args.workers)
    except ValueError as exc:
        logger.error("aec-data: %s", exc)
        return 1
    logger.info("wrote %d clips (%s) to %s in %.1f s", len(result["fileids"]),
                ", ".join(f"{k} {v}" for k, v in sorted(result["talk_types"].items())),
                args.out, result["seconds"])
    return 0
