"""Held-out CEC2-layout scenes rendered with ONE acoustic model and only validation talkers.

``clarity-se demo-data OUT --acoustic-model NAME`` writes the same files as the demo data set
(``clarity_data/metadata/{scenes,rooms,scenes_listeners}.<split>.json``, ``listeners.json``
and ``clarity_data/<split>/scenes/S?????_{mix,target,interferer}_CH{0..3}.wav``,
``S?????_target_anechoic_CH1.wav``), so ``clarity-se enhance`` / ``evaluate`` run on it
unchanged. With it a leave-one-acoustic-model-out table is made: train with
``acoustic_models`` lacking ``NAME`` (:mod:`.randomised`), test on these scenes.

Each scene follows the CEC2 recipe of :mod:`.scene_sampler` -- 1.5-2 s of interferers before
the target, 1 s after, 2-3 interferers (speech / noise / music, at most one music), SNR
uniform in ``snr_db`` (CEC2: -12..6 dB; better-ear speech-weighted at CH1, as
:mod:`.renderer`), CEC2 head turn -- except for the acoustics, drawn from the chosen model
(:mod:`.acoustics`, random BTE geometry and microphone mismatch, self-noise added to the
interferer signal so that ``mix = target + interferer``), and the talkers and noise segments,
which are those of the ``validation`` split of :class:`.corpus.SourceCorpus`.

Scene types: a share ``not_in_front_share`` of the scenes has the target outside
+-35 degrees (uniform 45-180 degrees either side; the head does not turn towards it); the
others turn the head as CEC2 does (start 25 + N(0, 5) degrees to a random side, end
``U(0, 10)`` degrees; for ``rostock_brir``, whose measured head orientations allow no turn,
the target is at 0 degrees). Every scene entry of ``scenes.<split>.json`` carries three extra
keys (kept by :class:`clarity_se.data.scene.Scene` in ``extra``): ``acoustic_model``,
``target_in_front`` and ``target_azimuth_deg`` (final head orientation); ``rooms.<split>.json``
has the room, RT60, positions, microphone gains and self-noise level.

Level: as :mod:`.renderer` -- the reverberant target at CH1 has RMS -40 dBFS in the written
file (60 dB SPL with the ICASSP 2023 calibration); file norms ``[12, 3, 3, 3]``.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import scipy.fft as sfft

from clarity_se.data.render import acoustics, corpus, renderer, scene_sampler
from clarity_se.data.render.randomised import (
    DrySources,
    draw_target_azimuth,
    snr_gain,
    spatialise,
)

logger = logging.getLogger(__name__)

SAMPLE_RATE = 44100
ALL_ROWS = tuple((c, e) for c in range(4) for e in range(2))
LISTENERS_PER_SCENE = 3
FRONT_AZIMUTH_DEG = 35.0


def render_heldout_scene(
    scene_id: str,
    *,
    acoustic_model: str,
    seed: int = 0,
    data_root: str | os.PathLike | None = None,
    validation_speakers: tuple[str, ...] | None = None,
    not_in_front_share: float = 0.25,
    snr_db: tuple[float, float] = scene_sampler.SNR_RANGE_DB,
    split: str = "dev",
) -> tuple[dict, dict, dict]:
    """Draw and render one held-out scene.

    Parameters
    ----------
    scene_id : str
        ``"S06001"``; with ``seed`` and ``acoustic_model`` it seeds the scene (SHA-256,
        :func:`.scene_sampler.scene_rng`), so scenes do not depend on each other.
    acoustic_model : str
        One of ``acoustics.ACOUSTIC_MODELS``.
    seed : int
    data_root : path-like, optional
        Data root (:mod:`.corpus`).
    validation_speakers : tuple of str, optional
        Talkers of the validation split (default ``corpus.VALIDATION_SPEAKERS``).
    not_in_front_share : float
        Probability that the target is not in front.
    snr_db : (float, float)
    split : str
        CEC2 ``dataset`` field.

    Returns
    -------
    scene : dict
        CEC2 ``scenes.json`` entry plus ``acoustic_model``, ``target_in_front``,
        ``target_azimuth_deg``.
    room : dict
        ``rooms.json`` entry (name, dimensions, positions where they exist, ``rt60_s``, ...).
    signals : dict
        As :func:`.renderer.render_scene`: ``target``, ``interferer``, ``mix``
        ``[4, duration, 2]`` float64 (before the write norms), ``target_anechoic``
        ``[duration, 2]``, ``snr_db``.

    Raises
    ------
    ValueError
        Unknown model, missing data, bad share.
    """
    if not 0.0 <= not_in_front_share <= 1.0:
        raise ValueError(f"not_in_front_share must be in [0, 1], got {not_in_front_share}")
    rng = scene_sampler.scene_rng(seed, f"{acoustic_model}/{scene_id}")
    model = acoustics.build_acoustic_model(acoustic_model, data_root)
    dry = DrySources(corpus.SourceCorpus(data_root, "validation", validation_speakers))
    geometry = acoustics.draw_bte_geometry(rng)
    in_front = bool(rng.random() >= not_in_front_share)
    rostock = acoustic_model == "rostock_brir"
    if in_front and not rostock:
        initial, final = scene_sampler.head_turn(rng)
    elif in_front:
        initial = final = 0.0
    else:
        avail = getattr(model, "available_azimuths_deg", None)
        initial = final = draw_target_azimuth(rng, False, FRONT_AZIMUTH_DEG, avail)
    types = scene_sampler._select_types(rng)
    acoustic = model.draw(
        rng,
        target_azimuth_deg=final,
        n_interferers=len(types),
        geometry=geometry,
        head_turn_deg=initial - final,
    )
    final = float(acoustic.info.get("target_azimuth_snapped_deg", final))
    if rostock:
        initial = final

    utt, speech = dry.utterance(rng, set())
    pre = int(
        rng.integers(scene_sampler.PRE_SAMPLES_RANGE[0], scene_sampler.PRE_SAMPLES_RANGE[1] + 1)
    )
    post = scene_sampler.POST_SAMPLES_RANGE[0]
    t_start, t_end = pre, pre + speech.size
    duration = t_end + post
    r = scene_sampler.ROTATION
    turn_start = max(t_start + rng.uniform(*r["relative_start_time_range"]), 0.0)
    turn_end = turn_start + int(rng.normal(r["duration_mean"], r["duration_sd"]))
    weight = renderer.smoothstep_weight(duration, turn_start, turn_end)

    dry_t = np.zeros(duration, dtype=np.float32)
    dry_t[t_start:t_end] = speech
    used = {utt.speaker}
    names, dry_i = [], []
    for kind in types:
        name, x = dry.interferer(rng, kind, duration, used, (3, 3))
        names.append(name)
        dry_i.append(x)

    n_taps = max([acoustic.target.length()] + [s.length() for s in acoustic.interferers])
    n_fft = sfft.next_fast_len(duration + n_taps, real=True)
    mic, mic_params = acoustics.microphone_response(rng, n_fft)
    tgt = spatialise(dry_t, acoustic.target, mic, ALL_ROWS, n_fft, weight=weight)
    interf = sum(
        spatialise(x, s, mic, ALL_ROWS, n_fft, weight=weight)
        for x, s in zip(dry_i, acoustic.interferers, strict=True)
    )
    direct = acoustics.SourceResponse(
        [
            np.concatenate([np.zeros((1, 2, d.shape[-1])), d[None], np.zeros((2, 2, d.shape[-1]))])
            for d in acoustic.target_direct
        ]
    )
    anechoic = spatialise(dry_t, direct, mic, ALL_ROWS[2:4], n_fft, weight=weight)
    tgt = tgt.astype(np.float64).reshape(4, 2, duration)
    interf = interf.astype(np.float64).reshape(4, 2, duration)
    snr = round(float(rng.uniform(*snr_db)), 4)
    ref = renderer.REFERENCE_CHANNEL
    interf *= snr_gain(tgt[ref, :, t_start:t_end], interf[ref, :, t_start:t_end], snr,
                       f"scene {scene_id}")
    level = np.sqrt(np.mean(tgt[ref, :, t_start:t_end] ** 2)) / renderer.CHANNEL_NORMS[ref]
    g = 10 ** (renderer.TARGET_LEVEL_DBFS / 20) / max(float(level), 1e-20)
    tgt *= g
    interf *= g
    ein = float(rng.uniform(20.0, 35.0))
    norm = renderer.CHANNEL_NORMS[ref]
    interf += rng.standard_normal(interf.shape) * norm * 10 ** ((ein - 100.0) / 20)
    target_out = np.ascontiguousarray(tgt.transpose(0, 2, 1))
    interf_out = np.ascontiguousarray(interf.transpose(0, 2, 1))
    measured = 20 * np.log10(
        renderer.better_ear_speechweighted_snr(
            target_out[ref, t_start:t_end], interf_out[ref, t_start:t_end]
        )
    )
    signals = {
        "target": target_out,
        "interferer": interf_out,
        "mix": target_out + interf_out,
        "target_anechoic": np.ascontiguousarray(anechoic.astype(np.float64).T),
        "snr_db": float(measured),
    }

    info = acoustic.info
    head_azimuths = info["head_azimuths_deg"]
    room_name = f"R{scene_id[1:]}"
    head_final = float(head_azimuths[-1])
    rotation = [
        {"sample": round(float(turn_start), 4), "angle": round(head_final + final - initial, 4)},
        {"sample": round(float(turn_end), 4), "angle": round(head_final, 4)},
    ]
    in_front = bool(abs(final) <= FRONT_AZIMUTH_DEG)
    scene = {
        "dataset": split,
        "room": room_name,
        "scene": scene_id,
        "target": {"name": Path(utt.path).stem, "time_start": t_start, "time_end": t_end},
        "duration": duration,
        "interferers": [
            {
                "position": k + 1,
                "time_start": 0,
                "time_end": duration,
                "type": kind,
                "name": name,
                "offset": 0,
            }
            for k, (kind, name) in enumerate(zip(types, names, strict=True))
        ],
        "SNR": snr,
        "listener": {
            "rotation": rotation,
            "hrir_filename": [
                f"{acoustic_model}-{ch}" for ch in ("ED", "BTE_fr", "BTE_mid", "BTE_rear")
            ],
        },
        "acoustic_model": acoustic_model,
        "target_in_front": in_front,
        "target_azimuth_deg": round(final, 4),
    }
    dims = info.get("room_dimensions_m")
    room = {
        "name": room_name,
        "dimensions": "x".join(f"{d:.4g}" for d in dims) if dims else "measured",
        "acoustic_model": acoustic_model,
        "description": info["room"],
        "rt60_s": round(float(info["rt60_s"]), 4),
        "target_azimuth_initial_deg": round(initial, 4),
        "target_azimuth_deg": round(final, 4),
        "target_distance_m": round(float(info["target_distance_m"]), 4),
        "interferer_azimuths_deg": [round(float(a), 4) for a in info["interferer_azimuths_deg"]],
        "bte_spacing_mm": round(geometry.spacing_mm(), 3),
        "mic_gain_db": np.round(mic_params["gain_db"], 3).tolist(),
        "self_noise_db_spl": round(ein, 3),
        "target_speaker": utt.speaker,
    }
    if "listener_m" in info:
        room["listener"] = {"position": np.round(info["listener_m"], 4).tolist()}
        room["target"] = {"position": np.round(info["target_m"], 4).tolist()}
        room["interferers"] = [{"position": np.round(p, 4).tolist()} for p in info["interferers_m"]]
    else:  # measured responses: directions only, one entry per interferer position
        room["interferers"] = [{"azimuth_deg": a} for a in room["interferer_azimuths_deg"]]
    return scene, room, signals


def _render_job(job: tuple) -> tuple[dict, dict]:
    scene_id, kwargs, out_dir = job
    scene, room, signals = render_heldout_scene(scene_id, **kwargs)
    renderer.write_scene(signals, scene_id, out_dir)
    return scene, room


def build_heldout_dataset(
    out: str | os.PathLike,
    *,
    acoustic_model: str,
    n_scenes: int,
    seed: int = 0,
    data_root: str | os.PathLike | None = None,
    validation_speakers: tuple[str, ...] | None = None,
    not_in_front_share: float = 0.25,
    split: str = "dev",
    workers: int = 1,
) -> dict:
    """Write a held-out CEC2-layout split rendered with one acoustic model.

    Parameters
    ----------
    out : path-like
        Output root (``clarity_data/`` inside).
    acoustic_model : str
    n_scenes : int
        >= 1; ids from ``S06001`` (the CEC2 dev numbering).
    seed : int
    data_root : path-like, optional
    validation_speakers : tuple of str, optional
    not_in_front_share : float
    split : str
        Split name (folder and metadata suffix), default ``dev``.
    workers : int
        Rendering processes (output independent of it).

    Returns
    -------
    dict
        ``{split: [scene ids], "seconds": float, "n_not_in_front": int}``.

    Raises
    ------
    ValueError
        Bad arguments or missing data.
    """
    from tqdm import tqdm

    from clarity_se.data.audio_io import atomic_write_text
    from clarity_se.data.audiogram import save_listeners
    from clarity_se.data.render.listeners import bisgaard_listeners
    from clarity_se.data.scene import Scene, dumps_cec2_json, save_scenes, save_scenes_listeners

    if n_scenes < 1 or workers < 1:
        raise ValueError(f"n_scenes and workers must be >= 1, got {n_scenes}, {workers}")
    acoustics.build_acoustic_model(acoustic_model, data_root)  # fail early on missing files
    corpus.SourceCorpus(data_root, "validation", validation_speakers)
    t0 = time.perf_counter()
    root = Path(out) / "clarity_data"
    meta = root / "metadata"
    meta.mkdir(parents=True, exist_ok=True)
    kwargs = {
        "acoustic_model": acoustic_model,
        "seed": seed,
        "data_root": None if data_root is None else str(data_root),
        "validation_speakers": validation_speakers,
        "not_in_front_share": not_in_front_share,
        "split": split,
    }
    start = scene_sampler.SCENE_START_INDEX["dev"]
    ids = [f"S{i:05d}" for i in range(start, start + n_scenes)]
    jobs = [(sid, kwargs, str(root / split / "scenes")) for sid in ids]
    if workers == 1 or len(jobs) == 1:
        results = [_render_job(j) for j in tqdm(jobs, desc="rendering scenes", unit="scene")]
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
            results = list(
                tqdm(
                    pool.map(_render_job, jobs),
                    total=len(jobs),
                    desc="rendering scenes",
                    unit="scene",
                )
            )
    scenes = [s for s, _ in results]
    rooms = [r for _, r in results]
    listeners = bisgaard_listeners()
    names = sorted(listeners)
    scenes_listeners = {}
    for sid in ids:
        pick = np.random.default_rng(
            scene_sampler.scene_rng(seed, f"{sid}/listeners").integers(0, 2**63)
        )
        chosen = pick.choice(len(names), size=LISTENERS_PER_SCENE, replace=False)
        scenes_listeners[sid] = [names[i] for i in chosen]
    save_scenes(meta / f"scenes.{split}.json", [Scene.from_dict(s) for s in scenes])
    atomic_write_text(meta / f"rooms.{split}.json", dumps_cec2_json(rooms))
    save_scenes_listeners(meta / f"scenes_listeners.{split}.json", scenes_listeners)
    save_listeners(meta / "listeners.json", listeners)
    return {
        split: ids,
        "seconds": time.perf_counter() - t0,
        "n_not_in_front": sum(not s["target_in_front"] for s in scenes),
    }
