"""Self-describing checkpoints: a model can be rebuilt from the file alone.

A checkpoint is a ``torch.save`` dict with

* ``format``: ``"clarity_se.checkpoint/1"``;
* ``model_name`` (registry name, :data:`clarity_se.models.MODELS`) and ``model_args``
  (constructor keyword arguments), ``state_dict``;
* ``sample_rate`` (Hz) and ``channel_layout`` (input microphone order);
* ``versions`` (clarity_se, torch, python, git commit if known);
* ``training``: optional free-form dict (resolved training config, data manifest, epoch, best
  validation SI-SDR...), and for resumable training checkpoints ``optimizer``, ``scheduler``,
  ``rng`` states.

Writes are atomic (temp file + ``os.replace``), so a kill never leaves a torn checkpoint.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clarity_se.models import get_model_class, model_name
from clarity_se.models.conv_tasnet import CHANNEL_LAYOUT
from clarity_se.provenance import software_versions

FORMAT = "clarity_se.checkpoint/1"


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` atomically (:func:`clarity_se.data.audio_io.atomic_path`)."""
    from clarity_se.data.audio_io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    training: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save a self-describing checkpoint atomically.

    Parameters
    ----------
    path : path-like
        Destination ``.pt`` file.
    model : nn.Module
        A registered model with an ``hparams`` dict of constructor arguments (a
        ``DistributedDataParallel`` wrapper is unwrapped).
    training : dict, optional
        Training description (config, data manifest, epoch, metrics); plain Python types.
    extra : dict, optional
        More top-level entries (optimizer / scheduler / rng states for resuming).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        If the model is not registered or has no ``hparams``.
    """
    model = getattr(model, "module", model)
    if not hasattr(model, "hparams"):
        raise ValueError(f"{type(model).__name__} has no hparams; cannot describe it")
    payload = {
        "format": FORMAT,
        "model_name": model_name(model),
        "model_args": dict(model.hparams),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "sample_rate": int(model.hparams.get("sample_rate", 44100)),
        "channel_layout": list(
            getattr(model, "channel_layout", CHANNEL_LAYOUT[: model.hparams.get("n_mics", 6)])
        ),
        "versions": software_versions(),
        "training": training or {},
    }
    if extra:
        payload.update(extra)
    return atomic_torch_save(payload, path)


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint dict and check its format.

    Raises
    ------
    ValueError
        If the file is missing, unreadable or not a clarity_se checkpoint (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise ValueError(f"{path}: unreadable checkpoint ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} checkpoint")
    for key in ("model_name", "model_args", "state_dict"):
        if key not in payload:
            raise ValueError(f"{path}: checkpoint field {key!r} missing")
    return payload


def load_model(
    path: str | os.PathLike,
    map_location: str | torch.device = "cpu",
    model_args: dict | None = None,
) -> tuple[nn.Module, dict]:
    """Rebuild the model stored in a checkpoint (eval mode).

    Parameters
    ----------
    path : str or PathLike
        The checkpoint.
    map_location : str or torch.device
        Where the weights go.
    model_args : dict, optional
        Constructor arguments that replace the checkpoint's (same weights; e.g. a DTLN's
        ``mask_floor`` and ``output_gain_db``, as ``clarity-se set-args`` writes them).

    Returns
    -------
    model : nn.Module
    payload : dict
        The whole checkpoint (``sample_rate``, ``channel_layout``, ``training`` ...).

    Raises
    ------
    ValueError
        As :func:`read_checkpoint`, or if the registry name is unknown or the weights do not
        fit the constructor arguments.
    """
    payload = read_checkpoint(path, map_location)
    model = _rebuild(payload, {**payload["model_args"], **(model_args or {})}, path)
    return model.to(map_location).eval(), payload


def _rebuild(payload: dict, model_args: dict, path: str | os.PathLike) -> nn.Module:
    """The registry model ``payload["model_name"]`` built with ``model_args`` and loaded with
    the payload's weights; ``ValueError`` naming ``path`` if they do not fit."""
    cls = get_model_class(payload["model_name"])
    try:
        model = cls(**model_args)
        model.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(
            f"{path}: the weights do not fit model_args {model_args} ({exc})") from None
    return model


def average_checkpoints(paths: list[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Write the element-wise mean of the weights of several checkpoints of one model.

    Weight averaging of snapshots along one training run (Izmailov et al., "Averaging weights
    leads to wider optima and better generalization", UAI 2018, Sec. 3) gives one model, at
    the inference cost of one, that is usually at least as good as the best snapshot and less
    dependent on which one a noisy selection picks. The models here have no batch-norm
    statistics (cLN / gLN only), so no re-estimation pass is needed.

    Parameters
    ----------
    paths : list of path-like
        Two or more checkpoints with the same ``model_name`` and ``model_args``.
    out : path-like
        Destination; metadata (``model_args``, ``sample_rate``, ``training``...) are those of
        the first input, plus ``training["averaged_from"]`` (the inputs' names, epochs and
        steps). Written atomically; no optimizer state.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        Fewer than two inputs, an unreadable input, or inputs of different models (names the
        file).
    """
    if len(paths) < 2:
        raise ValueError(f"average_checkpoints: need at least two checkpoints, got {len(paths)}")
    payloads = [read_checkpoint(p) for p in paths]
    first = payloads[0]
    for path, payload in zip(paths[1:], payloads[1:], strict=True):
        for key in ("model_name", "model_args"):
            if payload[key] != first[key]:
                raise ValueError(f"{path}: {key} {payload[key]!r} differs from {paths[0]}'s")
        if payload["state_dict"].keys() != first["state_dict"].keys():
            raise ValueError(f"{path}: weight names differ from {paths[0]}'s")
    state = {}
    for name, value in first["state_dict"].items():
        if value.is_floating_point():
            total = sum(p["state_dict"][name].to(torch.float64) for p in payloads)
            state[name] = (total / len(payloads)).to(value.dtype)
        else:
            state[name] = value.clone()
    training = dict(first.get("training") or {})
    training["averaged_from"] = [
        {
            "file": Path(p).name,
            "epoch": q.get("training", {}).get("epoch"),
            "step": q.get("training", {}).get("step"),
        }
        for p, q in zip(paths, payloads, strict=True)
    ]
    averaged = {
        key: first[key]
        for key in ("format", "model_name", "model_args", "sample_rate", "channel_layout")
        if key in first
    }
    averaged.update(state_dict=state, versions=software_versions(), training=training)
    return atomic_torch_save(averaged, out)


def _constructor_arguments(name: str) -> set[str]:
    """Keyword arguments of the registry model ``name``'s constructor (an argument added after
    a checkpoint was written has its default there and can still be set)."""
    params = inspect.signature(get_model_class(name).__init__).parameters
    return {p for p, v in params.items() if p != "self" and v.kind is v.POSITIONAL_OR_KEYWORD}


def set_model_args(src: str | os.PathLike, out: str | os.PathLike, **overrides: Any) -> Path:
    """Write a copy of a checkpoint with some constructor arguments changed, same weights.

    For arguments that change what the model does at inference but not the shape of any
    weight, e.g. the least gain of a mask (``crced_ha``'s ``mask_floor``: raising it from
    ``f`` to ``f'`` is the same as mixing ``(f' - f) / (1 - f)`` of the front-microphone
    signal into the output, the mask and the synthesis being linear).

    Parameters
    ----------
    src, out : path-like
        Input checkpoint and destination (written atomically).
    **overrides
        ``model_args`` entries to set; each must be one of the checkpoint's ``model_args`` or
        of its model's constructor arguments (one added after the checkpoint was written,
        whose default the checkpoint had).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        An unreadable input, no override, an argument the checkpoint does not have, or
        arguments the weights do not fit (the model is rebuilt with them and loaded; names the
        file).

    Notes
    -----
    ``training["model_args_set"]`` records each change as ``{name: [old, new]}`` (``old`` is
    ``None`` for an argument the checkpoint did not record; added to
    those of earlier calls), so the file says how it differs from what its training run wrote.
    """
    if not overrides:
        raise ValueError("set_model_args: no argument to set")
    payload = read_checkpoint(src)
    args = dict(payload["model_args"])
    known = set(args) | _constructor_arguments(payload["model_name"])
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"{src}: model_args has no {unknown} (it has {sorted(known)})")
    changes = {name: [args.get(name), value] for name, value in overrides.items()}
    args.update(overrides)
    _rebuild(payload, args, src)
    training = dict(payload.get("training") or {})
    training["model_args_set"] = {**training.get("model_args_set", {}), **changes}
    payload = dict(payload, model_args=args, training=training)
    return atomic_torch_save(payload, out)
