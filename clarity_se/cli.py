"""The ``clarity-se`` console script: one subcommand per stage.

Each subcommand lives in its own module which exposes ``add_arguments(parser)`` and
``main(args) -> int``. Modules are imported lazily so that ``clarity-se --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo-data": ("clarity_se.data.render.cli", "render the demo dataset in the CEC2 layout"),
    "manifest": ("clarity_se.data.manifest_cli", "write the scene manifest of a CEC2 dataset"),
    "validate": ("clarity_se.data.validate", "check a CEC2-layout or AEC Challenge dataset"),
    "aec-data": ("clarity_se.data.render.aec_cli", "render echo clips in the AEC Challenge layout"),
    "train": ("clarity_se.training.cli", "train the Conv-TasNet enhancer"),
    "res-train": ("clarity_se.training.res_cli",
                  "train the RES U-Net residual-echo suppressor"),
    "average": ("clarity_se.training.average", "weight-average checkpoints of one run"),
    "set-args": ("clarity_se.training.set_args",
                 "copy a checkpoint with some model arguments changed (same weights)"),
    "enhance": ("clarity_se.stages.enhance", "enhance every (scene, listener) pair"),
    "amplify": ("clarity_se.stages.amplify", "NAL-R + compressor per listener and ear"),
    "evaluate": ("clarity_se.stages.evaluate", "HASPI v2 / HASQI v2 better-ear scores"),
    "report": ("clarity_se.stages.report", "CSV + HTML report of one or more systems"),
    "submit": ("clarity_se.stages.submit", "package enhanced signals for submission"),
    "run": ("clarity_se.stages.run", "enhance, amplify, evaluate and report in one go"),
    "aec": ("clarity_se.stages.aec", "run an echo canceller over an AEC Challenge folder"),
    "aec-train": ("clarity_se.training.aec_train", "train the Deep Adaptive AEC echo canceller"),
    "aec-evaluate": ("clarity_se.stages.aec_evaluate",
                     "ERLE / PESQ-WB / AECMOS / SI-SDR beside WebRTC AEC3 and the mic"),
}


#: The exit-status contract of every stage (also in the README).
EXIT_STATUS = (
    "exit status: 0 all done; 1 some items failed (listed in <exp>/errors.csv, the rest is "
    "done); 2 bad config, input tree or environment (one line saying what and where)"
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with one lazily-populated subparser per stage.

    Returns
    -------
    argparse.ArgumentParser
        Parser whose ``command`` attribute names the chosen subcommand.
    """
    parser = argparse.ArgumentParser(
        prog="clarity-se",
        description="Clarity CEC2 / ICASSP 2023 hearing-aid speech enhancement toolkit.",
        epilog=EXIT_STATUS,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="<stage>")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``clarity-se``.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments without the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        Process exit status: 0 on success, non-zero on failure (2 for usage errors).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    # PyTorch reads this once, at its first CPU allocation: transparent huge pages for large
    # tensors. The ear model allocates many [batch, bands, time] arrays, and with 4 KiB pages
    # their page faults cost about a third of `evaluate` (399k -> 26k faults and 14.2 s -> 9.6 s
    # on one 3-pair scene). Set before any stage imports torch; spawned workers inherit it.
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    parser = build_parser()
    # Split off the subcommand so each stage owns its own argument parser.
    top_args, rest = parser.parse_known_args(argv)
    if top_args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG
        if top_args.verbose > 1
        else logging.INFO
        if top_args.verbose
        else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    module_name, help_text = COMMANDS[top_args.command]
    module = importlib.import_module(module_name)
    sub = argparse.ArgumentParser(
        prog=f"clarity-se {top_args.command}", description=help_text, epilog=EXIT_STATUS
    )
    module.add_arguments(sub)
    args = sub.parse_args(rest)
    return int(module.main(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
