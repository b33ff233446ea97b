r"""Cached canceller frames for fine-tuning :mod:`~clarity_se.models.deep_adaptive`'s post-filter
alone (``clarity-se aec-train train.post_filter_cache=true``).

With the canceller frozen (``train.trainable=[res_]``), everything before the post-filter is the
same at every step: the NLMS (and, with ``train.kalman_selection``, the Kalman) filters, their
error ``E`` and echo estimate, and the main LSTM's output. :func:`build_post_filter_cache` runs
the canceller once over each training clip, frame by frame, as the training forward pass does
(the clip with one hop of zeros before it, from a zero filter), and stores per frame the
post-filter's input (:meth:`~clarity_se.models.deep_adaptive.DeepAdaptiveAEC.post_filter_features`,
float16), the error ``E`` and the clean near-end speech ``S`` (complex64). Training then draws
crops of these frames and runs the post-filter alone (:class:`PostFilterReplay`: the model's own
``res_*`` layers, the LSTM cell unrolled as one ``nn.LSTM`` over the crop) without running
the canceller: its work is paid once (throughput in ``recipes/aec/deep_adaptive/README.md``).

The cache lives in ``EXP/post_filter_cache/`` (``R.npy``, ``E.npy``, ``S.npy``, memory-mapped,
and ``meta.json``: the clips, their frame counts and talk types, and the key it was built for);
it is written into a temporary folder and renamed when complete, and it is rebuilt when the key
(initial checkpoint's path, size and modification time, the Kalman selection, the clips)
differs. 3.8 GB for 1000 clips of 10 s.

The replay starts the post-filter's LSTM from zero at the crop's first frame, where at inference
it starts at the clip's; the trainer starts half of the crops at a clip's first frame
(:meth:`PostFilterCache.batch`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: cache format version (part of the key)
CACHE_FORMAT = 1


def cache_key(checkpoint: str, kalman_selection: float, clip_ids: list[str]) -> dict:
    """What a cache was built from: the initial checkpoint (path, size, modification time), the
    Kalman selection of the forward pass and the clips, in order."""
    path = Path(checkpoint)
    stat = path.stat()
    return {"format": CACHE_FORMAT, "checkpoint": str(path.resolve()), "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns, "kalman_selection": float(kalman_selection),
            "clips": list(clip_ids)}


def build_post_filter_cache(model, clips: list, folder: Path, key: dict, batch: int = 25,
                            progress: bool = True) -> PostFilterCache:
    """Run the frozen canceller over ``clips`` once and store the post-filter's inputs.

    Parameters
    ----------
    model : clarity_se.models.deep_adaptive.DeepAdaptiveAEC
        The canceller, with its ``kalman_selection`` set as training runs it; no refinement
        post-filter and no input-level normalisation (their inputs are not cached).
    clips : list of clarity_se.data.aec_challenge.AECClip
        Synthetic clips with near-end references.
    folder : Path
        The cache folder; reused as it is when its ``meta.json`` holds ``key``.
    key : dict
        :func:`cache_key`.
    batch : int
        Clips run together.
    progress : bool
        Show a ``tqdm`` bar.

    Returns
    -------
    PostFilterCache

    Raises
    ------
    ValueError
        If the model has a refinement post-filter or the level normalisation on, or a clip has
        no near-end reference.
    """
    import torch
    from tqdm import tqdm

    from clarity_se.data.aec_challenge import read_clip
    from clarity_se.data.audio_io import audio_info
    from clarity_se.models.deep_adaptive import power

    folder = Path(folder)
    if (folder / "meta.json").is_file():
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("key") == key:
            logger.warning("post-filter cache: reusing %s", folder)
            return PostFilterCache(folder)
        logger.warning("post-filter cache: %s was built for other inputs; rebuilding", folder)
    if model.refine or model.level_target_db:
        raise ValueError("train.post_filter_cache: the cache holds the post-filter's inputs "
                         "only; it needs train.model.refine=0 and train.level_target_db=0")
    for clip in clips:
        if clip.nearend is None:
            raise ValueError(f"{clip.mic}: no near-end reference (nearend_speech)")
    hop, n_bins = model.hop, model.n_bins
    frames = [int(np.ceil(audio_info(c.mic).frames / hop)) for c in clips]  # headers only
    k_max, n_in = max(frames), 3 * n_bins + model.hidden
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    open_mm = np.lib.format.open_memmap
    r_mm = open_mm(tmp / "R.npy", "w+", np.float16, (len(clips), k_max, n_in))
    e_mm = open_mm(tmp / "E.npy", "w+", np.complex64, (len(clips), k_max, n_bins))
    s_mm = open_mm(tmp / "S.npy", "w+", np.complex64, (len(clips), k_max, n_bins))
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(clips), desc="post-filter cache", unit="clip", disable=not progress)
    with torch.no_grad():
        for b0 in range(0, len(clips), batch):
            part = clips[b0:b0 + batch]
            k = max(frames[b0:b0 + batch])
            sig = {"mic": [], "far": [], "near": []}
            for clip in part:
                a = read_clip(clip)
                for name, x in (("mic", a.mic), ("far", a.farend), ("near", a.nearend)):
                    padded = np.zeros((k + 1) * hop)
                    padded[hop:hop + x.shape[0]] = x
                    sig[name].append(padded)
            spec = {n: model.stft(torch.from_numpy(np.stack(v)).float()) for n, v in sig.items()}
            state = model.initial_state(len(part), torch.float32)
            last = f"h{len(model.cells) - 1}"
            rows = slice(b0, b0 + len(part))
            for t in range(k):
                y = spec["mic"][:, t]
                e, yhat, _, state = model.step_with_mask(y, spec["far"][:, t], state)
                r_mm[rows, t] = model.post_filter_features(power(e), yhat, y,
                                                           state[last]).numpy()
                e_mm[rows, t] = e.numpy()
            s_mm[rows, :k] = spec["near"].numpy()
            bar.update(len(part))
    bar.close()
    model.train(was_training)
    for mm in (r_mm, e_mm, s_mm):
        mm.flush()
    del r_mm, e_mm, s_mm
    meta = {"key": key, "frames": frames, "ids": [c.id for c in clips],
            "talk_types": [c.talk_type for c in clips]}
    (tmp / "meta.json").write_text(json.dumps(meta))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return PostFilterCache(folder)


class PostFilterCache:
    """A built cache (:func:`build_post_filter_cache`), memory-mapped.

    Parameters
    ----------
    folder : Path
        Holding ``R.npy`` ``[clips, frames, 3 F + hidden]`` float16, ``E.npy`` and ``S.npy``
        ``[clips, frames, F]`` complex64 and ``meta.json``.
    """

    def __init__(self, folder: Path) -> None:
        folder = Path(folder)
        self.meta = json.loads((folder / "meta.json").read_text())
        self.R = np.load(folder / "R.npy", mmap_mode="r")
        self.E = np.load(folder / "E.npy", mmap_mode="r")
        self.S = np.load(folder / "S.npy", mmap_mode="r")
        self.frames = np.asarray(self.meta["frames"])

    def __len__(self) -> int:
        return len(self.frames)

    def batch(self, rng: np.random.Generator, size: int, crop: int):
        """``size`` random crops of ``crop`` frames: ``(R, E, S)`` tensors ``[size, crop, .]``
        (float32, complex64, complex64). Half of the crops start at a clip's first frame, where
        the post-filter's state starts at inference; the others anywhere in the clip. Frames
        past a clip's end are zeros."""
        import torch

        clips = rng.integers(0, len(self), size)
        starts = rng.integers(0, np.maximum(1, self.frames[clips] - crop + 1))
        starts = np.where(rng.random(size) < 0.5, 0, starts)
        out = []
        for arr in (self.R, self.E, self.S):
            pieces = np.zeros((size, crop) + arr.shape[2:], arr.dtype)
            for j, (c, s) in enumerate(zip(clips, starts, strict=True)):
                piece = arr[c, s:s + crop]
                pieces[j, :piece.shape[0]] = piece
            out.append(pieces)
        return (torch.from_numpy(out[0].astype(np.float32)), torch.from_numpy(out[1]),
                torch.from_numpy(out[2]))


class PostFilterReplay:
    """The post-filter of a :class:`~clarity_se.models.deep_adaptive.DeepAdaptiveAEC` run over
    cached inputs: ``gain = sigmoid(res_head(LSTM(tanh(res_inp(R)))))``, the LSTM being
    ``res_cell`` unrolled over the frames (one ``nn.LSTM`` sharing its parameters, so training
    it trains the model's post-filter).

    Parameters
    ----------
    model : clarity_se.models.deep_adaptive.DeepAdaptiveAEC
        Without a refinement post-filter.

    Raises
    ------
    ValueError
        If the model has a refinement post-filter.

    Notes
    -----
    ``replay(R)``: ``R [batch, frames, 3 F + hidden]`` -> the gains ``[batch, frames, F]`` in
    (0, 1), the LSTM starting from zero at frame 0 (as :meth:`initial_state` does).
    """

    def __init__(self, model) -> None:
        import torch

        if model.refine:
            raise ValueError("train.post_filter_cache: the replay has no refinement post-filter "
                             "(train.model.refine must be 0)")
        self.model = model
        cell = model.res_cell
        self.lstm = torch.nn.LSTM(cell.input_size, cell.hidden_size, batch_first=True)
        for mine, theirs in (("weight_ih_l0", "weight_ih"), ("weight_hh_l0", "weight_hh"),
                             ("bias_ih_l0", "bias_ih"), ("bias_hh_l0", "bias_hh")):
            setattr(self.lstm, mine, getattr(cell, theirs))  # shared, not copied

    def __call__(self, r):
        """The gains of the cached frames ``r`` (class notes)."""
        import torch

        m = self.model
        h, _ = self.lstm(torch.tanh(m.res_inp(r)))
        return torch.sigmoid(m.res_head(h))
