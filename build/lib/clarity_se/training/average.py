"""``clarity-se average OUT IN1 IN2 ...``: weight-average checkpoints of one training run.

See :func:`clarity_se.models.checkpoint.average_checkpoints` (e.g. the ``epoch_NNN.pt`` files a
run with ``train.keep_epochs=true`` leaves behind).
"""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``clarity-se average out.pt in1.pt in2.pt [...]``."""
    parser.add_argument("out", help="averaged checkpoint to write")
    parser.add_argument("inputs", nargs="+", help="two or more checkpoints of the same model")


def main(args: argparse.Namespace) -> int:
    """Average the inputs into ``out``; 2 on a bad input (named), 0 on success."""
    from clarity_se.models.checkpoint import average_checkpoints

    try:
        path = average_checkpoints(args.inputs, args.out)
    except ValueError as exc:
        logger.error("average: %s", exc)
        return 2
    print(f"averaged {len(args.inputs)} checkpoints -> {path}")
    return 0
