"""Draw CEC2-schema room and scene metadata for the demo dataset.

The drawing follows pyclarity's ``clarity.data.scene_builder_cec2`` and the CEC2 data
preparation config (``recipes/cec2/data_preparation/config.yaml``) wherever it applies:

* target onset after ``pre_samples_range = [66150, 88200]`` samples (1.5-2 s of interferer
  lead-in), ``post_samples_range = [44100, 44100]`` (1 s after the target);
  ``duration = pre + target_len + post``;
* 2 or 3 interferers (``number: [2, 3]``), types drawn with ``random.choices`` over
  speech / noise / music, redrawn while there is more than one music interferer; positions a
  sorted random sample of the room's 3 interferer positions; interferers span the whole scene
  (``start_time_range = end_early_time_range = [0, 0]``); a random group, then a random file
  of at least ``duration`` samples, then a random ``offset`` (``select_random_interferer``,
  ``get_random_interferer_offset``);
* SNR uniform in ``[-12, 6]`` dB;
* head rotation as ``generate_rotation``: turn starts ``U(-28004, 38147)`` samples after the
  target onset and lasts ``int(N(8820, 441))`` samples; the head starts
  ``25 + N(0, 5)`` degrees (redrawn until within 2 sigma) to a random side of the target and
  ends ``U(0, 10)`` degrees from it (angles in degrees, room frame).

Differences: one room per scene drawn here (CEC2 used RAVEN rooms): a shoebox ``L x W x H``
with ``L ~ U(3.5, 8)``, ``W ~ U(3, 6)``, ``H ~ U(2.4, 3.2)`` m and ``RT60 ~ U(0.2, 0.7)`` s
(extra key ``rt60_s`` in ``rooms.<split>.json``; CEC2 rooms carry no RT60); listener >= 1 m
from the walls, ears at ``U(1.2, 1.7)`` m, sources at ear height, target 1-2.5 m away,
interferers 1-3.5 m away and >= 30 degrees in azimuth from the target direction; a masker
speaker is never the target speaker nor another speech masker of the scene; if a drawn type
has no masker long enough (CEC2 would fail), the interferer types are drawn again.
Coordinates are pyroomacoustics room coordinates (origin in a floor corner) -- CEC2 / RAVEN
put the origin elsewhere.

Every scene is drawn from its own generator, seeded from a hash of (seed, scene id)
(:func:`scene_rng`), so a scene does not depend on which other scenes are drawn.
"""

from __future__ import annotations

import hashlib
import logging
import math

import numpy as np

from clarity_se.data.render import sources

logger = logging.getLogger(__name__)

PRE_SAMPLES_RANGE = (66150, 88200)
POST_SAMPLES_RANGE = (44100, 44100)
SNR_RANGE_DB = (-12.0, 6.0)
N_INTERFERERS = (2, 3)
N_INTERFERER_POSITIONS = 3
INTERFERER_TYPES = ("speech", "noise", "music")
ROTATION = {
    "relative_start_time_range": (-28004, 38147),
    "duration_mean": 8820,
    "duration_sd": 441,
    "angle_initial_mean": 25.0,
    "angle_initial_sd": 5.0,
    "angle_final_range": (0.0, 10.0),
}
ROOM_LENGTH_M = (3.5, 8.0)
ROOM_WIDTH_M = (3.0, 6.0)
ROOM_HEIGHT_M = (2.4, 3.2)
RT60_S = (0.2, 0.7)
EAR_HEIGHT_M = (1.2, 1.7)
TARGET_DISTANCE_M = (1.0, 2.5)
INTERFERER_DISTANCE_M = (1.0, 3.5)
MIN_INTERFERER_ANGLE_DEG = 30.0
#: Scene / room numbering of CEC2: train S00001.., dev S06001.. (``scene_start_index``).
SCENE_START_INDEX = {"train": 1, "dev": 6001}
HRIR_NAMES = ["MITKEMAR-ED", "MITKEMAR-BTE_fr", "MITKEMAR-BTE_mid", "MITKEMAR-BTE_rear"]


def scene_rng(seed: int, scene_id: str) -> np.random.Generator:
    """Generator for one scene, seeded from SHA-256 of ``"<seed>/<scene_id>"``.

    Parameters
    ----------
    seed : int
        Dataset seed.
    scene_id : str
        E.g. ``"S06001"``.

    Returns
    -------
    numpy.random.Generator
        PCG64, independent of every other scene's.
    """
    digest = hashlib.sha256(f"{int(seed)}/{scene_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def _unit(v) -> list[float]:
    v = np.asarray(v, dtype=np.float64)
    return (v / np.linalg.norm(v)).tolist()


def _round(values, nd: int = 4) -> list[float]:
    return [round(float(v), nd) + 0.0 for v in values]


def _inside(p: np.ndarray, dims: np.ndarray, margin: float) -> bool:
    return bool(np.all(p >= margin) and np.all(p <= dims - margin))


def _place(rng, centre, dims, az_deg_fn, dist_range, margin) -> np.ndarray:
    """Rejection-sample a point at ear height around ``centre`` inside the room."""
    for attempt in range(200):
        az = math.radians(az_deg_fn())
        scale = 1.0 if attempt < 100 else 0.5  # shrink distances if the room is cramped
        d = rng.uniform(*dist_range) * scale
        p = centre + d * np.array([math.cos(az), math.sin(az), 0.0])
        if _inside(p, dims, margin):
            return p
    raise ValueError(f"could not place a source in room {dims.tolist()} around {centre.tolist()}")


def sample_room(rng: np.random.Generator, name: str) -> dict:
    """Draw one shoebox room with listener, target and 3 interferer positions.

    Parameters
    ----------
    rng : numpy.random.Generator
    name : str
        Room name (``"R06001"``).

    Returns
    -------
    dict
        CEC2 ``rooms.json`` entry (``name``, ``dimensions`` ``"LxWxH"``, ``target`` /
        ``listener`` with ``position`` and ``view_vector``, ``interferers`` with
        ``position``) plus ``rt60_s``.
    """
    dims = np.array(
        [rng.uniform(*ROOM_LENGTH_M), rng.uniform(*ROOM_WIDTH_M), rng.uniform(*ROOM_HEIGHT_M)]
    )
    dims = np.round(dims, 4)
    rt60 = round(float(rng.uniform(*RT60_S)), 4)
    z = rng.uniform(*EAR_HEIGHT_M)
    listener = np.array([rng.uniform(1.0, dims[0] - 1.0), rng.uniform(1.0, dims[1] - 1.0), z])
    target = _place(rng, listener, dims, lambda: rng.uniform(0.0, 360.0), TARGET_DISTANCE_M, 0.5)
    target_az = math.degrees(math.atan2(target[1] - listener[1], target[0] - listener[0]))
    interferers = [
        _place(
            rng,
            listener,
            dims,
            lambda: (
                target_az + rng.uniform(MIN_INTERFERER_ANGLE_DEG, 360.0 - MIN_INTERFERER_ANGLE_DEG)
            ),
            INTERFERER_DISTANCE_M,
            0.3,
        )
        for _ in range(N_INTERFERER_POSITIONS)
    ]
    listener, target = np.round(listener, 4), np.round(target, 4)
    return {
        "name": name,
        "dimensions": "x".join(f"{d:g}" for d in dims),
        "target": {"position": _round(target), "view_vector": _round(_unit(listener - target))},
        "listener": {"position": _round(listener), "view_vector": _round(_unit(target - listener))},
        "interferers": [{"position": _round(np.round(p, 4))} for p in interferers],
        "rt60_s": rt60,
    }


def _select_types(rng: np.random.Generator) -> list[str]:
    n = int(rng.choice(N_INTERFERERS))
    while True:
        types = [INTERFERER_TYPES[i] for i in rng.integers(0, len(INTERFERER_TYPES), size=n)]
        if types.count("music") <= 1:
            return types


def head_turn(rng: np.random.Generator) -> tuple[float, float]:
    """Target azimuth relative to the head before and after the listener's turn, degrees.

    The initial offset is ``sign * (ROTATION["angle_initial_mean"] + N(0, sd))`` with the
    normal redrawn until within 2 sd, the final one ``sign * U(angle_final_range)``, one random
    side ``sign`` for both.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws, in this order: the side, the initial offset (and its redraws), the final offset.

    Returns
    -------
    (initial, final) : tuple of float
        Degrees.

    References
    ----------
    pyclarity ``clarity.data.scene_builder_cec2`` (``generate_rotation``).
    """
    r = ROTATION
    sign = 1.0 if rng.random() < 0.5 else -1.0
    while True:
        offset = rng.normal(0.0, r["angle_initial_sd"])
        if abs(offset) < 2 * r["angle_initial_sd"]:
            break
    return float(sign * (r["angle_initial_mean"] + offset)), float(
        sign * rng.uniform(*r["angle_final_range"]))


def _rotation(rng: np.random.Generator, room: dict, target_start: int) -> list[dict]:
    r = ROTATION
    start_offset = rng.uniform(*r["relative_start_time_range"])
    duration = int(rng.normal(r["duration_mean"], r["duration_sd"]))
    start = max(target_start + start_offset, 0)
    end = start + duration
    initial, final = head_turn(rng)
    lis, tar = room["listener"]["position"], room["target"]["position"]
    target_angle = math.degrees(math.atan2(tar[1] - lis[1], tar[0] - lis[0]))
    return [
        {"sample": round(float(start), 4), "angle": round(target_angle + initial, 4)},
        {"sample": round(float(end), 4), "angle": round(target_angle + final, 4)},
    ]


def _draw_interferers(
    rng, split: str, scene_id: str, duration: int, target_speaker: str
) -> list[dict] | None:
    """One CEC2 interferer draw; ``None`` if a drawn type has no masker of ``duration`` samples."""
    types = _select_types(rng)
    positions = sorted(
        int(p)
        for p in rng.choice(
            np.arange(1, N_INTERFERER_POSITIONS + 1), size=len(types), replace=False
        )
    )
    used_speakers = {target_speaker}
    interferers = []
    for position, kind in zip(positions, types, strict=True):
        groups = sources.maskers(kind, split)
        if kind == "speech":
            groups = {g: v for g, v in groups.items() if g not in used_speakers}
        eligible = {g: [(n, s) for n, s in v if s >= duration] for g, v in groups.items()}
        eligible = {g: v for g, v in eligible.items() if v}
        if not eligible:
            logger.debug(
                "scene %s: no %s masker of >= %d samples; redrawing the types",
                scene_id,
                kind,
                duration,
            )
            return None
        group = sorted(eligible)[int(rng.integers(0, len(eligible)))]
        name, n_samples = eligible[group][int(rng.integers(0, len(eligible[group])))]
        if kind == "speech":
            used_speakers.add(group)
        interferers.append(
            {
                "position": position,
                "time_start": 0,
                "time_end": duration,
                "type": kind,
                "name": name,
                "offset": int(rng.integers(0, n_samples - duration + 1)),
            }
        )
    return interferers


def sample_scene(
    rng: np.random.Generator, split: str, scene_id: str | None = None, room_name: str | None = None
) -> tuple[dict, dict]:
    """Draw one scene and its room.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (use :func:`scene_rng` for reproducible, order-free datasets).
    split : {"train", "dev"}
        Which part of the source catalogue to draw from (speakers are disjoint between splits).
    scene_id : str, optional
        CEC2 scene id; ``"S<5 digits>"`` drawn from ``rng`` if omitted (on-the-fly training).
    room_name : str, optional
        Default: ``"R"`` + the digits of ``scene_id``.

    Returns
    -------
    scene : dict
        CEC2 ``scenes.json`` entry (keys ``dataset, room, scene, target, duration,
        interferers, SNR, listener``).
    room : dict
        Its ``rooms.json`` entry (see :func:`sample_room`).

    Raises
    ------
    ValueError
        Unknown split, or no masker long enough for the drawn duration.
    """
    if split not in sources.SPLITS:
        raise ValueError(f"split must be one of {sources.SPLITS}, got {split!r}")
    if scene_id is None:
        scene_id = f"S{int(rng.integers(0, 100000)):05d}"
    room = sample_room(rng, room_name or f"R{scene_id[1:]}")

    candidates = sources.targets(split)
    target = candidates[int(rng.integers(0, len(candidates)))]
    target_speaker = target.group
    n_target = int(sources.load_target(sources.target_name(target)).size)
    pre = int(rng.integers(PRE_SAMPLES_RANGE[0], PRE_SAMPLES_RANGE[1] + 1))
    post = int(rng.integers(POST_SAMPLES_RANGE[0], POST_SAMPLES_RANGE[1] + 1))
    duration = pre + n_target + post

    for _attempt in range(100):
        interferers = _draw_interferers(rng, split, scene_id, duration, target_speaker)
        if interferers is not None:
            break
    else:
        raise ValueError(
            f"scene {scene_id}: no set of maskers of >= {duration} samples in split {split!r}"
        )
    scene = {
        "dataset": split,
        "room": room["name"],
        "scene": scene_id,
        "target": {
            "name": sources.target_name(target),
            "time_start": pre,
            "time_end": pre + n_target,
        },
        "duration": duration,
        "interferers": interferers,
        "SNR": round(float(rng.uniform(*SNR_RANGE_DB)), 4),
        "listener": {"rotation": _rotation(rng, room, pre), "hrir_filename": list(HRIR_NAMES)},
    }
    return scene, room
