"""``clarity-se res-train -c recipes/aec/res_unet/config.yaml [key=value ...]``: train the RES
U-Net residual-echo suppressor (:mod:`clarity_se.training.res`)."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``-c/--config`` and dotlist overrides (:class:`~clarity_se.training.res.RESTrainConfig`)."""
    parser.add_argument("-c", "--config", default=None, help="res-train config.yaml")
    parser.add_argument("overrides", nargs="*", default=[],
                        help="e.g. data.root=/data/aec_train train.steps=2000")


def main(args: argparse.Namespace) -> int:
    """Run training; returns 0 on success, 2 on a config or data error."""
    from clarity_se.data.audio_io import AudioFileError
    from clarity_se.training.res import load_res_config, train_res

    try:
        cfg = load_res_config(args.config, args.overrides)
        best = train_res(cfg)
    except (ValueError, AudioFileError) as exc:
        logger.error("%s", exc)
        return 2
    logger.info("res-train: best checkpoint %s", best)
    return 0
