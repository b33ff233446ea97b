"""``clarity-se enhance``: write the enhanced signal of every (scene, listener) pair.

For each pair of ``path.scenes_listeners_file`` (official order; ``evaluate.small_test`` keeps
every 15th pair; then ``evaluate.shard``) it writes
``<exp>/enhanced_signals/<scene>_<listener>_enhanced.wav``: float32, stereo (left, right),
44.1 kHz, the same length as the scene's mixture (the official naming and format). Each scene is
enhanced once and written for each of its listeners (the enhancers here do not use the
audiogram).

Enhancers (``enhancer.name``):

* ``passthrough``: the official ICASSP 2023 baseline: the front-microphone pair
  ``<scene>_mix_CH1.wav`` as ``int16 / 32768.0`` cast to float32 (bit-identical to pyclarity's
  ``recipes/icassp_2023/baseline/enhance.py``).
* ``convtasnet``: the causal multi-channel Conv-TasNet of ``enhancer.checkpoint`` (default
  ``recipes/icassp_2023/convtasnet/checkpoint.pt``, looked up relative to the current folder,
  then to the repository holding the package) on ``enhancer.device``, reading ``CH1..CH3``. With
  ``enhancer.chunk_s > 0`` it streams chunks of that many seconds (bounded memory, same output).
  For a 2-source model the target is picked by
  :func:`clarity_se.models.target_selection.select_target`.  The output is
  ``(1 - a) * estimate + a * mixture_CH1`` with ``a = enhancer.residual_mix`` (default 0.1):
  keeping a little of the front-mic mixture masks the separation artefacts that HASQI and
  HASPI penalise (chosen on a tuning split, see ``recipes/icassp_2023/convtasnet/README.md``).
  With ``enhancer.mirror_average`` (default true) the estimate is the mean of the model's
  estimate and that of the left/right-mirrored microphones (left and right swapped on the way
  in and back on the way out): a two-member test-time ensemble, causal, at twice the compute.

Resume: outputs are written atomically and existing ones are skipped, so a rerun after a kill
continues. A failing scene (missing or bad file) is written to ``<exp>/errors.csv`` (one row per
listener) and the run continues; the exit status is then 1. One record per written file goes to
``<exp>/enhance_manifest.jsonl`` (schema ``clarity_se.enhanced/1``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from clarity_se.config import add_config_arguments, load_config

logger = logging.getLogger(__name__)

SCHEMA = "clarity_se.enhanced/1"
ENHANCERS = ("passthrough", "convtasnet")
DEFAULT_CHECKPOINT = "recipes/icassp_2023/convtasnet/checkpoint.pt"
SAMPLE_RATE = 44100
#: rows of the left/right-mirrored microphones (CH1-R, CH1-L, CH2-R, CH2-L, CH3-R, CH3-L)
MIRROR_ROWS = [1, 0, 3, 2, 5, 4]


def enhanced_path(exp_folder: str | os.PathLike, scene: str, listener_id: str) -> Path:
    """``<exp>/enhanced_signals/<scene>_<listener>_enhanced.wav`` (the official name)."""
    return Path(exp_folder) / "enhanced_signals" / f"{scene}_{listener_id}_enhanced.wav"


def resolve_checkpoint(checkpoint: str) -> Path:
    """Path of the enhancer checkpoint: as given if it exists, else relative to the repository.

    ``""`` means :data:`DEFAULT_CHECKPOINT`.

    Raises
    ------
    ValueError
        If no such file exists (names every place tried).
    """
    name = checkpoint or DEFAULT_CHECKPOINT
    tried = [Path(name)]
    if not Path(name).is_absolute():
        tried.append(Path(__file__).resolve().parents[2] / name)
    for path in tried:
        if path.is_file():
            return path
    raise ValueError(
        "enhancer.checkpoint: no checkpoint at "
        + " or ".join(str(p) for p in tried)
        + " (train one with `clarity-se train`)"
    )


def read_mixtures(scenes_folder: str | os.PathLike, scene: str, channels=(1, 2, 3)) -> np.ndarray:
    """The hearing-aid microphones of a scene as float32 ``[2 * len(channels), time]``.

    Rows ``CH1-L, CH1-R, CH2-L, CH2-R, CH3-L, CH3-R`` for the default channels; 16-bit PCM is
    divided by 32768 (the official scaling).

    Raises
    ------
    clarity_se.data.audio_io.AudioFileError
        A file is missing, unreadable, not 44.1 kHz stereo, or the pairs differ in length.
    """
    from clarity_se.data.audio_io import AudioFileError, read_audio

    rows = []
    for ch in channels:
        path = Path(scenes_folder) / f"{scene}_mix_CH{ch}.wav"
        samples, _ = read_audio(path, expected_sample_rate=SAMPLE_RATE, expected_channels=2)
        if rows and samples.shape[0] != rows[0].shape[1]:
            raise AudioFileError(
                f"{path}: num_samples is {samples.shape[0]}, CH{channels[0]} has {rows[0].shape[1]}"
            )
        rows.append(samples.T)
    return np.concatenate(rows, axis=0)


def passthrough(scenes_folder: str | os.PathLike, scene: str) -> np.ndarray:
    """The official baseline: ``<scene>_mix_CH1.wav / 32768.0`` as float32 ``[time, 2]``.

    References
    ----------
    pyclarity 0.9.0 ``recipes/icassp_2023/baseline/enhance.py::enhance``.
    """
    from clarity_se.data.audio_io import read_audio

    samples, _ = read_audio(
        Path(scenes_folder) / f"{scene}_mix_CH1.wav",
        expected_sample_rate=SAMPLE_RATE,
        expected_channels=2,
        dtype="float64",
    )
    return samples.astype(np.float32)


class ConvTasNetEnhancer:
    """Callable ``(scenes_folder, scene) -> [time, 2] float32`` running a trained checkpoint.

    Parameters
    ----------
    checkpoint : str
        Checkpoint path (see :func:`resolve_checkpoint`).
    device : str
        ``cpu`` or ``cuda[:N]``.
    chunk_s : float
        Streaming chunk in seconds (``<= 0``: whole scene at once).
    residual_mix : float
        Fraction ``a`` in ``[0, 1]`` of the front-mic mixture (CH1) mixed back into the
        output: ``(1 - a) * estimate + a * mixture`` (0: the estimate alone).
    mirror_average : bool
        Average the estimate with ``mirror(model(mirror(mixture)))``, where ``mirror`` swaps
        left and right (rows ``CH1-R, CH1-L, CH2-R, ...`` in, ears swapped back out). A
        test-time ensemble of the same weights, causal (no added latency), twice the compute;
        each pass picks its own target (2-source models) before averaging.

    Raises
    ------
    ValueError
        Missing/bad checkpoint, a checkpoint for another sample rate, or ``residual_mix``
        outside ``[0, 1]``.
    """

    def __init__(
        self,
        checkpoint: str,
        device: str = "cpu",
        chunk_s: float = 0.0,
        residual_mix: float = 0.0,
        mirror_average: bool = False,
    ) -> None:
        import torch

        if not 0.0 <= float(residual_mix) <= 1.0:
            raise ValueError(f"enhancer.residual_mix must be in [0, 1], got {residual_mix}")
        self.residual_mix = float(residual_mix)
        self.mirror_average = bool(mirror_average)

        from clarity_se.models.checkpoint import load_model

        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"enhancer.device={device} but CUDA is not available")
        self.path = resolve_checkpoint(checkpoint)
        self.model, payload = load_model(self.path, map_location=device)
        if int(payload.get("sample_rate", SAMPLE_RATE)) != SAMPLE_RATE:
            raise ValueError(f"{self.path}: model is for {payload['sample_rate']} Hz, need 44100")
        self.device = torch.device(device)
        self.chunk = int(round(chunk_s * SAMPLE_RATE)) if chunk_s > 0 else 0
        logger.info("enhance: %s (%s) on %s", self.path, payload["model_args"], device)

    def __call__(self, scenes_folder: str | os.PathLike, scene: str) -> np.ndarray:
        import torch

        from clarity_se.models.streaming import enhance_in_chunks
        from clarity_se.models.target_selection import pick_target

        mixture = torch.from_numpy(read_mixtures(scenes_folder, scene).astype(np.float32))
        with torch.inference_mode():
            est = enhance_in_chunks(self.model, mixture[None].to(self.device), self.chunk)
            out = pick_target(est, SAMPLE_RATE)[0].cpu()
            if self.mirror_average:
                mirrored = mixture[MIRROR_ROWS][None].to(self.device)
                est = enhance_in_chunks(self.model, mirrored, self.chunk)
                out = 0.5 * (out + pick_target(est, SAMPLE_RATE)[0].cpu()[[1, 0]])
        if self.residual_mix > 0:
            out = (1 - self.residual_mix) * out + self.residual_mix * mixture[:2]
        return out.T.contiguous().numpy().astype(np.float32)


def make_enhancer(cfg) -> Callable[[str, str], np.ndarray]:
    """The enhancer named by ``enhancer.name`` (``ValueError`` for an unknown name)."""
    name = cfg.enhancer.name
    if name == "passthrough":
        return passthrough
    if name == "convtasnet":
        return ConvTasNetEnhancer(
            cfg.enhancer.checkpoint,
            cfg.enhancer.device,
            float(cfg.enhancer.chunk_s),
            float(cfg.enhancer.residual_mix),
            bool(cfg.enhancer.mirror_average),
        )
    raise ValueError(f"enhancer.name: expected one of {ENHANCERS}, got {name!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``clarity-se enhance -c config.yaml key=value ...``."""
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run the enhance stage.

    Returns
    -------
    int
        0 if every pair is written, 1 if any failed (see ``<exp>/errors.csv``), 2 for a bad
        config, metadata file or checkpoint.
    """
    from tqdm import tqdm

    from clarity_se.data.audio_io import write_audio
    from clarity_se.stages.common import ErrorLog, group_by_scene, pairs_from_config, shard_suffix

    try:
        cfg = load_config(args.config, args.overrides)
        pairs = pairs_from_config(cfg)
        suffix = shard_suffix(cfg.evaluate.shard)
        enhancer = make_enhancer(cfg)
    except ValueError as exc:
        logger.error("enhance: %s", exc)
        return 2
    exp = Path(cfg.path.exp_folder)
    exp.mkdir(parents=True, exist_ok=True)
    errors = ErrorLog(exp, "enhance", suffix)
    manifest = exp / f"enhance_manifest{suffix}.jsonl"
    scenes = group_by_scene(pairs)
    todo = {
        s: [lis for lis in listeners if not enhanced_path(exp, s, lis).is_file()]
        for s, listeners in scenes.items()
    }
    todo = {s: lis for s, lis in todo.items() if lis}
    logger.info(
        "enhance (%s): %d pairs in %d scenes, %d scenes to do",
        cfg.enhancer.name,
        len(pairs),
        len(scenes),
        len(todo),
    )
    for scene, listeners in tqdm(todo.items(), desc="enhance", unit="scene"):
        try:
            signal = enhancer(cfg.path.scenes_folder, scene)
            if not np.all(np.isfinite(signal)):
                raise ValueError(f"scene {scene}: enhancer produced NaN/Inf")
        except (ValueError, OSError, RuntimeError) as exc:
            for listener in listeners:
                errors.add(scene, listener, exc)
            continue
        with open(manifest, "a", encoding="utf-8") as handle:
            for listener in listeners:
                path = write_audio(enhanced_path(exp, scene, listener), signal, SAMPLE_RATE)
                record = {
                    "id": f"{scene}_{listener}",
                    "schema": SCHEMA,
                    "scene": scene,
                    "listener": listener,
                    "enhancer": cfg.enhancer.name,
                    "sample_rate": SAMPLE_RATE,
                    "num_samples": int(signal.shape[0]),
                    "duration_s": signal.shape[0] / SAMPLE_RATE,
                    "path": path.relative_to(exp).as_posix(),
                }
                handle.write(json.dumps(record) + "\n")
            handle.flush()
    if errors.count:
        logger.error("enhance: %d pairs failed, see %s", errors.count, errors.path)
        return 1
    return 0
