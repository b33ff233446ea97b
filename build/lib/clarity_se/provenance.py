"""Provenance: what produced a result (software versions, platform, git state).

Recorded in ``run_info.json`` (:func:`environment`) and in every checkpoint
(:func:`software_versions`). The git state is that of the checkout holding the installed
package, if any (an installed wheel has none: ``None``).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

__all__ = ["PACKAGES", "environment", "git_state", "software_versions"]

#: Packages whose versions go into ``run_info.json``.
PACKAGES = (
    "clarity_se",
    "torch",
    "numpy",
    "scipy",
    "soundfile",
    "omegaconf",
    "pandas",
    "numba",
    "matplotlib",
    "pyroomacoustics",
    "julius",
    "tqdm",
)



def git_state() -> dict | None:
    """``{"commit": sha, "dirty": bool}`` of the checkout holding this package, or ``None``.

    Outside a git checkout (an installed wheel), or without ``git``, returns ``None``.
    """
    here = str(Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(
            ["git", "-C", here, "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def package_version(name: str) -> str | None:
    """Installed version of distribution ``name`` (``None`` if not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def software_versions() -> dict[str, str]:
    """Versions recorded in checkpoints: clarity_se, torch, python and the git commit (or "")."""
    git = git_state()
    return {
        "clarity_se": package_version("clarity_se") or "unknown",
        "torch": package_version("torch") or "unknown",
        "python": platform.python_version(),
        "git_commit": git["commit"] if git else "",
    }


def environment() -> dict:
    """Python, platform, package versions and git state, for ``run_info.json``.

    Returns
    -------
    dict
        ``python``, ``platform``, ``cpu_count``, ``packages`` (name -> version or ``None``),
        ``git`` (``commit`` and ``dirty``, or ``None`` outside a git checkout),
        ``env`` (``OMP_NUM_THREADS``, ``CUDA_VISIBLE_DEVICES``).
    """
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": {name: package_version(name) for name in PACKAGES},
        "git": git_state(),
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES")},
    }
