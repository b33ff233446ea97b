"""``clarity-se set-args IN OUT NAME=VALUE ...``: a checkpoint with some model arguments changed.

See :func:`clarity_se.models.checkpoint.set_model_args` (e.g. ``mask_floor=0.4`` for a
``crced_ha`` checkpoint). Values are read as OmegaConf reads command-line overrides
(``0.4``, ``true``, ``12``).
"""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``clarity-se set-args in.pt out.pt name=value [...]``."""
    parser.add_argument("input", help="checkpoint to read")
    parser.add_argument("out", help="checkpoint to write")
    parser.add_argument("settings", nargs="+", metavar="NAME=VALUE",
                        help="model_args entries to set")


def main(args: argparse.Namespace) -> int:
    """Write ``out``; 2 on a bad setting or input (named), 0 on success."""
    from omegaconf import OmegaConf

    from clarity_se.models.checkpoint import set_model_args

    overrides = {}
    for item in args.settings:
        name, sep, _ = item.partition("=")
        if not sep or not name or "." in name:
            logger.error("set-args: %r is not NAME=VALUE", item)
            return 2
        overrides.update(OmegaConf.to_container(OmegaConf.from_dotlist([item])))
    try:
        path = set_model_args(args.input, args.out, **overrides)
    except ValueError as exc:
        logger.error("set-args: %s", exc)
        return 2
    print(f"{args.input} with {overrides} -> {path}")
    return 0
