"""``clarity-se train -c config.yaml [key=value ...]``: train an enhancement model.

Any model of :data:`clarity_se.models.MODELS` (``model.name``): e.g.
``clarity-se train -c recipes/icassp_2023/convtasnet/config.yaml`` or
``clarity-se train -c recipes/icassp_2023/dtln/config.yaml``.
Several processes (DistributedDataParallel, NCCL on GPUs / gloo on CPU)::

    torchrun --nproc_per_node=4 -m clarity_se.cli train \
        -c recipes/icassp_2023/convtasnet/config.yaml train.device=cuda
"""

from __future__ import annotations

import argparse
import logging
import os

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``-c/--config`` and dotlist overrides (see :mod:`clarity_se.training.config`)."""
    parser.add_argument("-c", "--config", default=None, help="training config.yaml")
    parser.add_argument("overrides", nargs="*", default=[], help="e.g. train.epochs=5 data.root=/x")


def main(args: argparse.Namespace) -> int:
    """Run training; returns 0 on success, 2 on a config/data error."""
    from clarity_se.training.config import load_train_config
    from clarity_se.training.trainer import train

    try:
        cfg = load_train_config(args.config, args.overrides)
        _, history = train(cfg)
    except ValueError as exc:
        logger.error("%s", exc)
        return 2
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if history and os.environ.get("RANK", "0") == "0":
        last = history[-1]
        logger.warning(
            "done: epoch %s, val SI-SDR %.2f dB (SI-SDRi %.2f dB)",
            last["epoch"],
            last["val_si_sdr"],
            last["val_si_sdri"],
        )
    return 0
