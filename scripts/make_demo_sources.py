"""Build ``clarity_se/assets/demo_sources/`` from the shared real recordings (run once).

Usage (from the repository root)::

    .venv/bin/python scripts/make_demo_sources.py [--shared /work/shared/data]

Copies a subset of ``/work/shared/data`` (provenance + licences in its README.md) into the
package: speech FLACs and the MIT KEMAR SOFA file byte-for-byte; long noise / music files are
cut into a *train* and a *dev* segment (different, non-overlapping parts of the recording) and
stereo files are down-mixed to mono ((L + R) / 2, rounded to 16-bit). Nothing is resampled or
level-normalised. The modifications are recorded in ``ATTRIBUTION.md`` (written by hand; this
script only prints the table of what it wrote) and in ``clarity_se.data.render.sources``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "clarity_se" / "assets" / "demo_sources"

#: byte-for-byte copies (path relative to the shared folder == path relative to DEST)
COPIES = [
    *[f"speech/vctk/p225_{u}.flac" for u in ("003", "011", "016", "020", "022", "024")],
    *[f"speech/vctk/p226_{u}.flac" for u in ("003", "005", "011", "016", "022", "024")],
    *[f"speech/vctk/p227_{u}.flac" for u in ("003", "005", "011", "016", "022", "024")],
    *[f"speech/vctk/p228_{u}.flac" for u in ("005", "011", "016", "019", "022", "024")],
    *[f"speech/cmu_arctic/cmu_arctic_us_aew_a000{i}.flac" for i in (1, 2, 3)],
    *[f"speech/cmu_arctic/cmu_arctic_us_axb_a000{i}.flac" for i in (4, 5, 6)],
    "speech/freesound/xmas.flac",
    *[
        f"speech/librispeech/{u}.flac"
        for u in (
            "1034-121119-0000",
            "1088-129236-0000",
            "1363-135842-0000",
            "1455-134435-0000",
            "1963-142393-0000",
            "201-122255-0000",
            "2518-154825-0000",
            "4214-7146-0000",
        )
    ],
    "rir/mit_kemar_normal_pinna.sofa",
]

#: (source, destination, start_s, stop_s or None, tiles): segment, down-mix to mono, optional tiling
SEGMENTS = [
    (
        "noise/speech_commands/doing_the_dishes.flac",
        "noise/doing_the_dishes_train.flac",
        0.0,
        20.0,
        1,
    ),
    (
        "noise/speech_commands/doing_the_dishes.flac",
        "noise/doing_the_dishes_dev.flac",
        40.0,
        52.0,
        1,
    ),
    ("noise/speech_commands/running_tap.flac", "noise/running_tap_train.flac", 0.0, 20.0, 1),
    ("noise/speech_commands/running_tap.flac", "noise/running_tap_dev.flac", 30.0, 42.0, 1),
    ("noise/sonic_pi/vinyl_hiss.flac", "noise/vinyl_hiss_mono.flac", 0.0, None, 1),
    ("music/Kevin_MacLeod_-_Vibe_Ace.flac", "music/vibe_ace_train.flac", 0.0, 16.0, 1),
    ("music/Kevin_MacLeod_-_Vibe_Ace.flac", "music/vibe_ace_dev.flac", 30.0, 42.0, 1),
    ("music/sorohanro_-_solo-trumpet-06.flac", "music/solo_trumpet_06_loop3.flac", 0.0, None, 3),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("/work/shared/data"))
    args = parser.parse_args()
    for rel in COPIES:
        (DEST / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.shared / rel, DEST / rel)
    for src, dst, start_s, stop_s, tiles in SEGMENTS:
        x, sr = sf.read(args.shared / src, dtype="int16", always_2d=True)
        start = int(round(start_s * sr))
        stop = x.shape[0] if stop_s is None else int(round(stop_s * sr))
        seg = x[start:stop].astype(np.float64).mean(axis=1)  # (L + R) / 2 (mono: unchanged)
        seg = np.clip(np.round(seg), -32768, 32767).astype(np.int16)
        seg = np.tile(seg, tiles)
        (DEST / dst).parent.mkdir(parents=True, exist_ok=True)
        sf.write(DEST / dst, seg, sr, subtype="PCM_16", format="FLAC")
        print(f"{dst}: {src} [{start_s}, {stop_s}) s, sr={sr}, x{tiles}, {seg.size / sr:.2f} s")
    total = sum(p.stat().st_size for p in DEST.rglob("*") if p.is_file())
    print(f"total {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
