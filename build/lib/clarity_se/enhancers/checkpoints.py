"""Where an enhancer's weights come from: an explicit path, or the packaged default.

Shipped checkpoints live in the package (``clarity_se/assets/checkpoints/<name>.pt``) and are
found through :mod:`importlib.resources`, so an installed wheel finds them without a checkout.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def packaged_checkpoint(name: str) -> Path:
    """Path of the shipped checkpoint ``clarity_se/assets/checkpoints/<name>.pt``.

    Raises
    ------
    ValueError
        If the package holds no such checkpoint.
    """
    ref = resources.files("clarity_se") / "assets" / "checkpoints" / f"{name}.pt"
    path = Path(str(ref))
    if not path.is_file():
        raise ValueError(f"no packaged checkpoint {name!r} (looked for {path})")
    return path


def resolve_checkpoint(checkpoint: str, default: str) -> Path:
    """``checkpoint`` if given (it must exist), else the packaged checkpoint ``default``.

    Raises
    ------
    ValueError
        If the given file does not exist (the message says how to get one).
    """
    if not checkpoint:
        return packaged_checkpoint(default)
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise ValueError(
            f"enhancer.checkpoint: no checkpoint at {path} "
            "(train one with `clarity-se train`, or leave it empty for the shipped one)"
        )
    return path
