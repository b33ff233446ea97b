"""Write the small CEC2-shaped metadata fixtures in tests/fixtures/cec2_metadata/.

Run with the pyclarity venv so that the files are written by the official CEC2 writer's JSON
settings (``clarity.data.scene_builder_cec2`` patches ``json`` to print floats with 4 decimals,
and ``SceneBuilder.save_scenes`` / ``RoomBuilder.save_rooms`` use ``json.dump(indent=2)``)::

    /work/tools/pyclarity-venv/bin/python tests/golden/make_cec2_metadata.py

Scene S06001 is pyclarity's own ``tests/test_data/metadata/scenes.test.json`` entry; the others
add a music interferer, three interferers, an integer rotation sample (``max(start, 0)`` in
``generate_rotation`` yields the int 0) and a negative-zero coordinate.
"""

from __future__ import annotations

import json
from pathlib import Path

import clarity.data.scene_builder_cec2  # noqa: F401  (installs the 4-decimal float printer)
from clarity.utils.audiogram import Listener

OUT = Path(__file__).resolve().parents[1] / "fixtures" / "cec2_metadata"

SCENES = [
    {
        "dataset": "dev",
        "room": "R06001",
        "scene": "S06001",
        "target": {"name": "T024_BMR_00659", "time_start": 78260, "time_end": 243635},
        "duration": 287735,
        "interferers": [
            {
                "position": 1,
                "time_start": 0,
                "time_end": 287735,
                "type": "speech",
                "name": "scf_04310.wav",
                "offset": 31593565,
            },
            {
                "position": 3,
                "time_start": 0,
                "time_end": 287735,
                "type": "noise",
                "name": "CIN_washing_013.wav",
                "offset": 245097,
            },
        ],
        "SNR": 2.558,
        "listener": {
            "rotation": [
                {"sample": 90952.7142, "angle": -125.8235},
                {"sample": 100246.7142, "angle": -112.0054},
            ],
            "hrir_filename": ["VP_E4-ED", "VP_E4-BTE_fr", "VP_E4-BTE_mid", "VP_E4-BTE_rear"],
        },
    },
    {
        "dataset": "dev",
        "room": "R06002",
        "scene": "S06002",
        "target": {"name": "T011_G0N_00123", "time_start": 88200, "time_end": 190511},
        "duration": 234611,
        "interferers": [
            {
                "position": 1,
                "time_start": 0,
                "time_end": 234611,
                "type": "music",
                "name": "1111967.low.mp3",
                "offset": 1043210,
            },
            {
                "position": 2,
                "time_start": 0,
                "time_end": 234611,
                "type": "speech",
                "name": "som_01209.wav",
                "offset": 55,
            },
            {
                "position": 3,
                "time_start": 12,
                "time_end": 230000,
                "type": "noise",
                "name": "CIN_fan_014.wav",
                "offset": 0,
            },
        ],
        "SNR": -6.1,
        "listener": {
            "rotation": [{"sample": 0, "angle": 92.0}, {"sample": 9144, "angle": 61.2549}],
            "hrir_filename": ["BuK-ED", "BuK-BTE_fr", "BuK-BTE_mid", "BuK-BTE_rear"],
        },
    },
    {
        "dataset": "dev",
        "room": "R06003",
        "scene": "S06003",
        "target": {"name": "T030_JYD_04181", "time_start": 70000, "time_end": 176400},
        "duration": 220500,
        "interferers": [
            {
                "position": 2,
                "time_start": 0,
                "time_end": 220500,
                "type": "noise",
                "name": "CIN_microwave_001.wav",
                "offset": 300,
            },
            {
                "position": 3,
                "time_start": 0,
                "time_end": 220500,
                "type": "noise",
                "name": "CIN_dishwasher_002.wav",
                "offset": 7,
            },
        ],
        "SNR": 11.9999,
        "listener": {
            "rotation": [{"sample": 81234.5, "angle": -0.0}, {"sample": 92000.25, "angle": 10.0}],
            "hrir_filename": ["VP_N5-ED", "VP_N5-BTE_fr", "VP_N5-BTE_mid", "VP_N5-BTE_rear"],
        },
    },
]

SCENES_LISTENERS = {
    "S06001": ["L0064", "L0068", "L0008"],
    "S06002": ["L0044", "L0082", "L0078"],
    "S06003": ["L0066", "L0008", "L0077"],
}


def _listener(name, levels_l, levels_r):
    return {
        "name": name,
        "audiogram_cfs": [250, 500, 1000, 2000, 3000, 4000, 6000, 8000],
        "audiogram_levels_l": levels_l,
        "audiogram_levels_r": levels_r,
    }


LISTENERS = {
    "L0008": _listener("L0008", [10, 10, 20, 30, 40, 55, 60, 65], [15, 15, 25, 35, 45, 50, 65, 70]),
    "L0044": _listener("L0044", [20, 25, 30, 40, 50, 55, 65, 80], [20, 20, 35, 40, 50, 60, 70, 75]),
    "L0064": _listener("L0064", [5, 10, 15, 25, 35, 45, 50, 60], [10, 10, 20, 25, 40, 45, 55, 60]),
    "L0066": _listener("L0066", [30, 35, 40, 50, 55, 65, 70, 75], [25, 30, 40, 45, 60, 65, 70, 80]),
    "L0068": _listener("L0068", [15, 20, 20, 30, 45, 50, 55, 70], [15, 20, 25, 30, 40, 50, 60, 65]),
    "L0077": _listener("L0077", [0, 5, 10, 20, 30, 40, 45, 50], [5, 5, 10, 25, 30, 35, 45, 55]),
    "L0078": _listener("L0078", [40, 40, 45, 55, 60, 70, 75, 85], [35, 40, 50, 55, 65, 70, 80, 90]),
    "L0082": _listener("L0082", [10, 15, 20, 35, 45, 50, 60, 70], [10, 15, 20, 30, 45, 55, 60, 75]),
}

ROOMS = [
    {
        "name": "R06001",
        "dimensions": "4.4317x4.1x2.6",
        "target": {"position": [-0.7, 1.7, 1.2], "view_vector": [0.282, 0.959, 0.0]},
        "listener": {"position": [-0.2, 3.4, 1.2], "view_vector": [-0.282, -0.959, 0.0]},
        "interferers": [
            {"position": [0.9, 3.0, 1.2]},
            {"position": [-1.0, 2.6, 1.2]},
            {"position": [0.9, 1.4, 1.2]},
        ],
    },
    {
        "name": "R06002",
        "dimensions": "4.1x3.4878x3.3",
        "target": {"position": [0.6, 3.1, 1.6], "view_vector": [-0.196, -0.981, 0.0]},
        "listener": {"position": [0.2, 1.1, 1.6], "view_vector": [0.196, 0.981, 0.0]},
        "interferers": [
            {"position": [0.5, 2.4, 1.6]},
            {"position": [-0.5, 2.6, 1.6]},
            {"position": [-0.7, 2.0, 1.6]},
        ],
    },
    {
        "name": "R06003",
        "dimensions": "3.4x3.0706x2.5",
        "target": {"position": [-0.3, 1.1, 1.2], "view_vector": [-0.0, 1.0, 0.0]},
        "listener": {"position": [-0.3, 2.1, 1.2], "view_vector": [0.0, -1.0, 0.0]},
        "interferers": [
            {"position": [0.4, 1.3, 1.2]},
            {"position": [0.2, 1.0, 1.2]},
            {"position": [0.2, 1.0, 1.2]},
        ],
    },
]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, payload in [
        ("scenes.dev.json", SCENES),
        ("scenes_listeners.dev.json", SCENES_LISTENERS),
        ("rooms.dev.json", ROOMS),
    ]:
        with open(OUT / name, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
    with open(OUT / "listeners.json", "w", encoding="utf-8") as f:
        json.dump(LISTENERS, f, indent=2)
    # Sanity: pyclarity reads the listeners file.
    assert set(Listener.load_listener_dict(OUT / "listeners.json")) == set(LISTENERS)
    print("wrote", sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
