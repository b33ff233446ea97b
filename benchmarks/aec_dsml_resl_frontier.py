"""How far can any frame gain move DSML and RESL? An oracle's trade-off beside the systems'.

    python benchmarks/aec_dsml_resl_frontier.py ROOT [--system NAME=DIR ...]
        [--mu 0.1,0.3,...] [--double-talk] [--out JSON] [--plot PNG]

``ROOT`` is a synthetic AEC Challenge folder with ``nearend_speech/`` (``clarity-se aec-data``);
each ``--system NAME=DIR`` an output folder of ``clarity-se aec`` on it (``DIR/enhanced_signals/``
or the folder of the ``*_enhanced.wav`` files). Over the double-talk clips, with the mic
``m = s + r`` (``s`` the near-end speech, ``r`` the echo and noise), DSML and RESL are those of
``aec-evaluate`` (:func:`clarity_se.metrics.dsml_resl.dsml_resl` with the mic as the input: the
whole chain as a gain ``g`` on the mic), averaged over the clips.

Both metrics see a system only through its frame gain ``g_t`` (20 ms frames, 10 ms hop): with
``S_t``, ``R_t`` the frame energies of ``s`` and ``r`` and the attenuation compensation near 1,
DSML compares ``sum_t S_t (1 - g_t)^2`` and RESL ``sum_t g_t^2 R_t`` with the energies of ``s``
and ``r``. For a weight ``mu`` the gains that minimise ``sum_t S_t (1 - g_t)^2 + mu sum_t
g_t^2 R_t`` frame by frame are ``G_t = S_t / (S_t + mu R_t)``: for each ``mu`` no frame gain
has less of the one sum for as little of the other. They need the true ``S_t`` and ``R_t``, so
they are an **oracle**, and they draw the frontier:

- ``mic oracle``: ``G_t`` on the mic, for each ``mu``;
- ``oracle after NAME``: the least change to a system's output that reaches ``G_t`` with a gain
  of at most 1 on it (``c_t = min(1, G_t / g_t)``, ``g_t`` the system's own frame gain): what a
  residual-echo suppressor after that system, which can only take away, could reach at best.
  From its curve, the DSML fall at which RESL has risen by ``--resl-rise`` dB (linear
  interpolation between the ``mu``; ``null`` beyond the last).

A gain that is constant over the clip is no distortion to DSML (it compensates the speech's
attenuation ``g_hat``) and suppression to RESL: turning a whole output down by ``x`` dB raises
RESL by ``x`` dB and leaves DSML, which moves any point to the right. Each point is therefore
also given with **RESL at the speech's level**, ``RESL + 20 log10 g_hat`` (the residual's
attenuation relative to the speech's, which a constant gain leaves unchanged), and the DSML
change at a rise of ``--resl-rise`` dB of that too. In those coordinates the oracle curves are
the frontier as well: the gains that minimise the frame objective at a given ``g_hat`` are
``G_t`` times a constant.

Printed and written as JSON (default ``results/benchmarks/aec_dsml_resl_frontier.json``), drawn
as DSML against RESL (default ``results/benchmarks/aec_dsml_resl_frontier.png``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: oracle weights mu (0 is the system itself / the mic)
DEFAULT_MU = "0.03,0.1,0.3,1,2,3,5,10,30"


def frame_energies(x: np.ndarray) -> np.ndarray:
    """Energies of the metric's frames (20 ms every 10 ms at 16 kHz) of ``x [time]``."""
    from clarity_se.metrics.dsml_resl import _frames

    return (_frames(np.asarray(x, dtype=np.float64)) ** 2).sum(1)


def oracle_gain(speech_energy: np.ndarray, residual_energy: np.ndarray, mu: float,
                base_gain: np.ndarray | None = None) -> np.ndarray:
    """The frame gains ``G = S / (S + mu R)``, as a gain of at most 1 on an output.

    Parameters
    ----------
    speech_energy, residual_energy : np.ndarray [shape=(frames,)], float
        ``S_t`` and ``R_t``: frame energies of the speech and of the residual at the mic.
    mu : float
        Weight of the residual (>= 0; 0 gives gains of 1).
    base_gain : np.ndarray [shape=(frames,)], optional
        The frame gain ``g_t`` of a system's output on the mic; the result is then the gain on
        that output, ``min(1, G_t / min(1, g_t))`` (1 where ``g_t = 0``).

    Returns
    -------
    np.ndarray [shape=(frames,)], float64
        Gains in [0, 1] (1 in frames with neither speech nor residual).
    """
    s = np.asarray(speech_energy, dtype=np.float64)
    r = np.asarray(residual_energy, dtype=np.float64)
    total = s + mu * r
    gain = np.divide(s, total, out=np.ones_like(s), where=total > 0)
    if base_gain is not None:  # the metric clips a frame gain to [0, 1]; so does this
        base = np.minimum(np.asarray(base_gain, dtype=np.float64), 1.0)
        gain = np.clip(np.divide(gain, base, out=np.ones_like(gain), where=base > 1e-9),
                       0.0, 1.0)
    return gain


def apply_frame_gain(x: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """``x`` times ``gain`` interpolated between the metric's frame centres (as it reads one)."""
    from clarity_se.metrics.dsml_resl import FRAME, HOP

    centres = HOP * np.arange(len(gain)) + FRAME / 2
    return x * np.interp(np.arange(len(x)), centres, gain)


def metric_point(mic, output, speech, double_talk: bool = False) -> tuple[float, float, float]:
    """``(DSML, RESL, RESL + 20 log10 g_hat)`` of ``output`` on one clip, dB.

    The third is RESL at the speech's level: the residual's attenuation relative to the
    speech's, unchanged by a constant gain.
    """
    from clarity_se.metrics.dsml_resl import dsml_resl

    dsml, resl, g_hat = dsml_resl(suppressor_input=mic, output=output, speech=speech,
                                  double_talk_only=double_talk, return_speech_gain=True)
    return dsml, resl, resl + 20 * np.log10(max(g_hat, 1e-10))


def clip_curves(mic, speech, outputs: dict[str, np.ndarray], mus: list[float],
                double_talk: bool = False) -> dict[str, list[tuple[float, float, float]]]:
    """:func:`metric_point` per ``mu`` (0 first) for the mic oracle and after each output."""

    def point(y):
        return metric_point(mic, y, speech, double_talk)

    s_energy, r_energy = frame_energies(speech), frame_energies(mic - speech)
    m_energy = frame_energies(mic)
    curves = {"mic oracle": [point(apply_frame_gain(mic, oracle_gain(s_energy, r_energy, mu)))
                             for mu in mus]}
    for name, y in outputs.items():
        base = np.sqrt(np.divide(frame_energies(y), m_energy, out=np.zeros_like(m_energy),
                                 where=m_energy > 0))
        curves[f"oracle after {name}"] = [
            point(apply_frame_gain(y, oracle_gain(s_energy, r_energy, mu, base)))
            for mu in mus]
    return curves


def fall_at_rise(curve: list[tuple], rise_db: float, column: int = 1) -> float | None:
    """DSML change (dB) where RESL (``column`` 1; 2: at the speech's level) has risen by
    ``rise_db`` from the first point of ``curve`` (points ``(DSML, RESL, ...)``)."""
    dsml = np.array([p[0] for p in curve])
    resl = np.array([p[column] for p in curve])
    target = resl[0] + rise_db
    for k in range(1, len(curve)):
        if resl[k] >= target:
            w = (target - resl[k - 1]) / max(resl[k] - resl[k - 1], 1e-12)
            return float(dsml[k - 1] + w * (dsml[k] - dsml[k - 1]) - dsml[0])
    return None


def _read_output(folder: Path, clip, n: int) -> np.ndarray:
    from clarity_se.data.aec_challenge import read_signal

    base = folder / "enhanced_signals" if (folder / "enhanced_signals").is_dir() else folder
    y = read_signal(base / clip.enhanced_name, "enhanced").astype(np.float64)
    return y[:n] if y.shape[0] >= n else np.pad(y, (0, n - y.shape[0]))


def _plot(path: Path, mean: dict, bar: dict | None, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    for column, ax, label in ((1, axes[0], "RESL (dB)"),
                              (2, axes[1], "RESL at the speech's level (dB)")):
        for name, curve in mean.items():
            points = [p for p in curve if p[0] < 30.0]  # the mic itself: DSML at its cap
            style = ".-" if name.startswith(("mic oracle", "oracle after")) else "o"
            ax.plot([p[column] for p in points], [p[0] for p in points], style, label=name)
        if bar:
            ax.plot([bar["resl"][column - 1]], [bar["dsml"]], "k*", markersize=12,
                    label="+3 dB RESL for -1.5 dB DSML")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("DSML (dB)")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Print, write and draw the frontier; 2 on bad arguments or a folder without dt clips."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--system", action="append", default=[], metavar="NAME=DIR",
                        help="a clarity-se aec output folder on ROOT (repeat)")
    parser.add_argument("--mu", default=DEFAULT_MU)
    parser.add_argument("--resl-rise", type=float, default=3.0)
    parser.add_argument("--double-talk", action="store_true",
                        help="norms over the double-talk frames only (dsml_double_talk)")
    parser.add_argument("--out", type=Path,
                        default=REPO / "results" / "benchmarks" / "aec_dsml_resl_frontier.json")
    parser.add_argument("--plot", type=Path,
                        default=REPO / "results" / "benchmarks" / "aec_dsml_resl_frontier.png")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    from clarity_se.data.aec_challenge import read_clip, read_synthetic_meta

    try:
        mus = [0.0] + [float(m) for m in args.mu.split(",")]
        if any(m <= 0 for m in mus[1:]):
            raise ValueError(f"--mu: positive weights expected, got {args.mu}")
        systems = {}
        for item in args.system:
            name, sep, folder = item.partition("=")
            if not sep or not name or not Path(folder).is_dir():
                raise ValueError(f"--system {item}: NAME=DIR with an existing DIR expected")
            systems[name] = Path(folder)
        clips = [c for c in read_synthetic_meta(args.root)
                 if c.talk_type == "dt" and c.nearend is not None]
    except ValueError as exc:
        print(f"aec_dsml_resl_frontier: {exc}")
        return 2
    if not clips:
        print(f"aec_dsml_resl_frontier: {args.root}: no double-talk clip with nearend_speech")
        return 2
    per_clip: dict[str, list] = {}
    for clip in tqdm(clips, desc="clips"):
        audio = read_clip(clip)
        mic = audio.mic.astype(np.float64)
        speech = audio.nearend.astype(np.float64)
        try:
            outputs = {name: _read_output(folder, clip, mic.size)
                       for name, folder in systems.items()}
        except ValueError as exc:  # AudioFileError names the file
            print(f"aec_dsml_resl_frontier: {exc}")
            return 2
        for name, y in outputs.items():
            per_clip.setdefault(name, []).append([metric_point(mic, y, speech,
                                                               args.double_talk)])
        for name, curve in clip_curves(mic, speech, outputs, mus, args.double_talk).items():
            per_clip.setdefault(name, []).append(curve)
    mean = {name: [tuple(float(v) for v in p) for p in np.mean(np.array(v), axis=0)]
            for name, v in per_clip.items()}
    falls = {name: {"resl": fall_at_rise(curve, args.resl_rise, 1),
                    "resl_at_speech_level": fall_at_rise(curve, args.resl_rise, 2)}
             for name, curve in mean.items() if name.startswith("oracle after")}
    print(f"{len(clips)} double-talk clips of {args.root}"
          f"{' (double-talk frames)' if args.double_talk else ''}; "
          "DSML / RESL / RESL at the speech's level, dB")
    for name, curve in mean.items():
        cells = "  ".join(f"{d:.2f}/{r:.2f}/{q:.2f}" for d, r, q in curve)
        print(f"  {name:28s} {cells}")
    print(f"  mu: {mus}")
    print(f"DSML change at RESL +{args.resl_rise:g} dB along each oracle curve "
          "(RESL; RESL at the speech's level)")

    def show(x):
        return "beyond the last mu" if x is None else f"{x:+.2f} dB"

    for name, fall in falls.items():
        print(f"  {name:28s} {show(fall['resl'])}; {show(fall['resl_at_speech_level'])}")
    bar = None
    if systems:
        first = mean[next(iter(systems))][0]
        bar = {"dsml": first[0] - 1.5,
               "resl": [first[1] + args.resl_rise, first[2] + args.resl_rise]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "root": str(args.root), "systems": {k: str(v) for k, v in systems.items()},
        "double_talk": args.double_talk, "mu": mus, "clips": len(clips), "mean": mean,
        "dsml_change_at_resl_rise": falls, "resl_rise_db": args.resl_rise}, indent=1) + "\n")
    _plot(args.plot, mean, bar, f"{args.root.name}: {len(clips)} double-talk clips")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
