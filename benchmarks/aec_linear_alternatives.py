"""Does the learned step-size control beat classical adaptation rules under the same network?

    python benchmarks/aec_linear_alternatives.py ROOT [--checkpoint PT]
        [--rules learned nlms:0.1 nlms:0.3 rls:0.995 rls:0.999 kalman:0.999 ...] [--aecmos]
        [--out JSON]

``ROOT`` is a synthetic AEC Challenge folder with ``echo_signal/`` (``clarity-se aec-data``);
``--checkpoint`` a ``deep_adaptive`` checkpoint (default: the packaged one). For every clip with
echo (far-end single talk and double talk) the canceller runs over the whole clip (float64, the
filter from zero, as ``clarity-se aec`` runs it) once per **adaptation rule**, each replacing
:meth:`~clarity_se.models.deep_adaptive.DeepAdaptiveAEC.adapt` (the filter update) and nothing
else: the network, its estimated reference (the far end times a gain per bin), the regressors
(``L`` taps per bin and ``B`` cross bands) and the post-filter stay as trained.

- ``learned``: the trained model's complex NLMS with the step size its network predicts.
- ``select:A``: ``learned`` with the Kalman selection of ``clarity-se aec`` (forgetting factor
  ``A``; :mod:`clarity_se.models.deep_adaptive`): per bin, the error of the NLMS or of a
  diagonal Kalman filter beside it, whichever has the lower smoothed power; the echo estimate
  is the chosen filter's. Every other rule runs without it.
- ``hammerstein:A``: ``select:A`` whose Kalman filter also takes, per bin, the same taps and
  cross bands of the spectrum of the rectified far end ``|x[n]|`` (a Hammerstein branch: the
  AEC Challenge loudspeaker model, hard clip then an asymmetric sigmoid, puts an even-order
  part into the echo that no linear filter of ``x`` models; ``|x|`` carries it at the lowest
  order, and scales with ``x``). Its filter state and variance cover both branches.
- ``nlms:MU``: the same NLMS and regulariser with a fixed step size ``MU``.
- ``rls:LAMBDA``: exponentially weighted recursive least squares per bin over the same
  regressors (full ``P x P`` inverse correlation matrix per bin, forgetting factor ``LAMBDA``,
  ``P_0 = 100 I``; Haykin, *Adaptive Filter Theory*, ch. 10): it decorrelates the regressors,
  which the NLMS does not (neighbouring frames and bins of speech are strongly correlated).
- ``kalman:A``: a diagonal frequency-domain Kalman filter per bin and regressor (Enzner and Vary,
  Signal Processing 86(6), 2006), the one of the Kalman selection
  (:func:`~clarity_se.models.deep_adaptive.kalman_step`): random-walk state
  ``W_{t+1} = A W_t + noise`` with process noise ``(1 - A^2) |W_t|^2``, observation noise the
  recursively smoothed error power (factor 0.5), prior ``P_0 = 1``; its step size follows from
  the state and noise estimates.

Reported per rule: the linear stage's echo reduction ``10 log10(sum |D|^2 / sum |D - Yhat|^2)``
over each clip's frames (``D`` the true echo's spectrum, ``Yhat`` the filter's estimate), in dB,
averaged per talk type, echo path and loudspeaker nonlinearity as in
``benchmarks/aec_linear_bound.py``; PESQ-WB of the post-filtered output in double talk (with
``--aecmos`` also its AECMOS echo and degradation MOS there, as ``clarity-se aec-evaluate``); the
time per clip relative to ``learned`` in the same run. ``P_0`` of ``rls`` suits the level of
``clarity-se aec-data`` clips (microphone -38 to -17 dBFS RMS); the rules are not tuned further.

What it says: whether a classical rule, given the network's reference and regressors, leaves less
echo than the learned control. Printed and written as JSON (default
``results/benchmarks/aec_linear_alternatives.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RULES = ("learned", "nlms:0.1", "nlms:0.3", "rls:0.995", "rls:0.999", "kalman:0.999")
#: prior of the RLS inverse correlation matrix (times the identity)
RLS_P0 = 100.0


def rule_model(base, rule: str):
    """A copy of ``base`` (a ``DeepAdaptiveAEC``) whose filter update follows ``rule``.

    Parameters
    ----------
    base : clarity_se.models.deep_adaptive.DeepAdaptiveAEC
    rule : str
        ``learned``, ``select:A``, ``hammerstein:A``, ``nlms:MU`` (0 < MU < 2), ``rls:LAMBDA``
        (0 < LAMBDA <= 1) or ``kalman:A`` (0 < A <= 1).

    Returns
    -------
    DeepAdaptiveAEC
        In float64 and eval mode, with ``base``'s weights.

    Raises
    ------
    ValueError
        Unknown rule or a parameter out of range.
    """
    import torch

    from clarity_se.models.deep_adaptive import (
        KALMAN_NOISE_SMOOTHING,
        KALMAN_P0,
        DeepAdaptiveAEC,
        kalman_step,
        power,
    )

    name, _, arg = rule.partition(":")
    try:
        value = float(arg) if arg else None
    except ValueError:
        raise ValueError(f"rule {rule!r}: {arg!r} is not a number") from None
    select = 0.0  # the Kalman selection's forgetting factor (select:A, hammerstein:A)
    if name == "learned" and value is None:
        cls = DeepAdaptiveAEC
    elif name == "select" and value is not None and 0.0 < value <= 1.0:
        cls, select = DeepAdaptiveAEC, value
    elif name == "hammerstein" and value is not None and 0.0 < value <= 1.0:
        class Hammerstein(DeepAdaptiveAEC):
            def set_rectified(self, spec):
                """Spectra ``[1, frames, F]`` of ``|x|``, consumed one per frame."""
                self._rectified, self._frame = spec, 0

            def initial_state(self, batch, dtype=torch.float32, device="cpu"):
                state = super().initial_state(batch, dtype, device)
                shape = (batch, self.n_bins, 2 * self.n_regressors)
                state["kw"] = torch.zeros(shape, dtype=state["w"].dtype, device=device)
                state["kp"] = torch.full(shape, KALMAN_P0, dtype=dtype, device=device)
                state["rbuf"] = torch.zeros_like(state["xbuf"])
                return state

            def kalman_regressors(self, reg, state, new):
                r = self._rectified[:, self._frame]
                self._frame += 1
                rbuf = torch.cat([r.unsqueeze(-1), state["rbuf"][..., :-1]], dim=-1)
                new["rbuf"] = rbuf
                return torch.cat([reg, self._regressors(rbuf)], dim=-1)

        cls, select = Hammerstein, value
    elif name == "nlms" and value is not None and 0.0 < value < 2.0:
        class FixedStep(DeepAdaptiveAEC):
            def adapt(self, w, reg, norm, e, mu, state, new):
                return super().adapt(w, reg, norm, e, torch.full_like(mu, value), state, new)
        cls = FixedStep
    elif name == "rls" and value is not None and 0.0 < value <= 1.0:
        class RLS(DeepAdaptiveAEC):
            def adapt(self, w, reg, norm, e, mu, state, new):
                p = state.get("rls_p")
                if p is None:
                    eye = torch.eye(reg.shape[-1], dtype=reg.dtype, device=reg.device)
                    p = (RLS_P0 * eye).expand(*reg.shape, reg.shape[-1])
                # yhat = w^T x: RLS on conj(x); gain k = P x* / (lambda + x^T P x*)
                pu = (p @ reg.conj().unsqueeze(-1)).squeeze(-1)
                k = pu / (value + (reg * pu).sum(-1)).unsqueeze(-1)
                up = (reg.unsqueeze(-2) @ p).squeeze(-2)
                p = (p - k.unsqueeze(-1) * up.unsqueeze(-2)) / value
                new["rls_p"] = 0.5 * (p + p.conj().transpose(-1, -2))  # keep it Hermitian
                return w + k * e.unsqueeze(-1)
        cls = RLS
    elif name == "kalman" and value is not None and 0.0 < value <= 1.0:
        class DiagonalKalman(DeepAdaptiveAEC):
            def adapt(self, w, reg, norm, e, mu, state, new):
                p = state.get("kalman_p")
                if p is None:
                    p = torch.full(w.shape, KALMAN_P0, dtype=norm.dtype, device=w.device)
                noise = (1 - KALMAN_NOISE_SMOOTHING) * power(e)
                if "kalman_r" in state:
                    noise = noise + KALMAN_NOISE_SMOOTHING * state["kalman_r"]
                new["kalman_r"] = noise
                w_next, new["kalman_p"] = kalman_step(w, p, noise, reg, e, value)
                return w_next
        cls = DiagonalKalman
    else:
        raise ValueError(f"rule {rule!r}: expected learned, select:A, hammerstein:A, nlms:MU "
                         "(0<MU<2), rls:LAMBDA or kalman:A (0<A, LAMBDA<=1)")
    model = cls(**base.hparams, kalman_selection=select)
    model.load_state_dict(base.state_dict())
    return model.double().eval()


def run_rule(model, mic: np.ndarray, farend: np.ndarray, echo: np.ndarray
             ) -> tuple[float, np.ndarray]:
    """The linear echo reduction (dB) and the post-filtered output ``[time]`` of one clip.

    Parameters
    ----------
    model : DeepAdaptiveAEC
        From :func:`rule_model`.
    mic, farend, echo : np.ndarray [shape=(time,)], float, 16 kHz
        The clip's microphone, far end and true echo.

    Returns
    -------
    reduction_db : float
        ``10 log10(sum |D|^2 / sum |D - Yhat|^2)`` (``nan`` without echo).
    output : np.ndarray [shape=(time,)], float64
        The canceller's output ``M E``.
    """
    import torch

    n, h = mic.size, model.hop
    length = -(-n // h) * h + 2 * h

    def spec(x: np.ndarray):
        padded = np.zeros(length)
        padded[h : h + n] = x
        return model.stft(torch.from_numpy(padded)[None])

    with torch.no_grad():
        if hasattr(model, "set_rectified"):  # hammerstein:A
            model.set_rectified(spec(np.abs(farend)))
        e, yhat, mask, _ = model.forward_with_mask(spec(mic), spec(farend))
        d = spec(echo)
        total = float(d.abs().square().sum())
        residual = float((d - yhat).abs().square().sum())
        out = model.istft(mask * e)[0, h : h + n].numpy()
    if total == 0.0:
        return float("nan"), out
    return 10.0 * np.log10(total / max(residual, 1e-300)), out


def main(argv: list[str] | None = None) -> int:
    """Print and write the table; 2 on a bad folder, checkpoint or rule."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--checkpoint", default="", help="deep_adaptive checkpoint (packaged)")
    parser.add_argument("--rules", nargs="+", default=list(DEFAULT_RULES))
    parser.add_argument("--aecmos", action="store_true",
                        help="also AECMOS echo and degradation MOS in double talk")
    parser.add_argument("--out", type=Path,
                        default=REPO / "results" / "benchmarks" / "aec_linear_alternatives.json")
    args = parser.parse_args(argv)

    import torch
    from tqdm import tqdm

    from clarity_se.aec.deep_adaptive import load
    from clarity_se.data.aec_challenge import read_clip, read_synthetic_meta
    from clarity_se.metrics.aec import aecmos, pesq_wb

    torch.set_num_threads(1)
    try:
        clips = [c for c in read_synthetic_meta(args.root)
                 if c.talk_type in ("st", "dt") and c.echo is not None and c.echo.is_file()]
        base = load(args.checkpoint).model
        models = {rule: rule_model(base, rule) for rule in args.rules}
    except ValueError as exc:
        print(f"aec_linear_alternatives: {exc}")
        return 2
    if not clips:
        print(f"aec_linear_alternatives: {args.root}: no far-end or double-talk clip with "
              "echo_signal")
        return 2
    rows = []
    for clip in tqdm(clips, desc="clips"):
        audio = read_clip(clip)
        row = {"id": clip.id, "talk_type": clip.talk_type,
               "echo_path": clip.meta.get("echo_path", ""),
               "nonlinear": bool(clip.is_farend_nonlinear)}
        for rule, model in models.items():
            start = time.process_time()
            row[f"{rule}_db"], out = run_rule(model, audio.mic, audio.farend, audio.echo)
            row[f"{rule}_s"] = time.process_time() - start
            if clip.talk_type == "dt" and audio.nearend is not None:
                row[f"{rule}_pesq"] = pesq_wb(reference=audio.nearend, processed=out)
                if args.aecmos:
                    row[f"{rule}_echo_mos"], row[f"{rule}_deg_mos"] = aecmos(
                        loopback=audio.farend, mic=audio.mic, enhanced=out, talk_type="dt")
        rows.append(row)
    groups: dict[str, dict] = {}
    picks = ([("all", lambda r: True)]
             + [(f"talk={t}", lambda r, t=t: r["talk_type"] == t) for t in ("st", "dt")]
             + [(f"path={p}", lambda r, p=p: r["echo_path"] == p)
                for p in sorted({r["echo_path"] for r in rows})]
             + [("linear loudspeaker", lambda r: not r["nonlinear"]),
                ("nonlinear loudspeaker", lambda r: r["nonlinear"])])
    for name, pick in picks:
        sel = [r for r in rows if pick(r)]
        if sel:
            groups[name] = {"clips": len(sel), **{rule: float(np.nanmean([r[f"{rule}_db"]
                                                                          for r in sel]))
                                                  for rule in args.rules}}
    dt = [r for r in rows if f"{args.rules[0]}_pesq" in r]
    pesq = {rule: float(np.nanmean([r[f"{rule}_pesq"] for r in dt])) if dt else float("nan")
            for rule in args.rules}
    mos = {f"{kind}_mos_dt": {rule: float(np.nanmean([r[f"{rule}_{kind}_mos"] for r in dt]))
                              for rule in args.rules}
           for kind in ("echo", "deg") if dt and args.aecmos}
    ref = args.rules[0]
    cost = {rule: float(np.sum([r[f"{rule}_s"] for r in rows])
                        / max(np.sum([r[f"{ref}_s"] for r in rows]), 1e-9))
            for rule in args.rules}
    print(f"linear echo reduction (dB) per adaptation rule, {args.root}")
    print(f"{'group':24s} {'clips':>5s} " + " ".join(f"{rule:>12s}" for rule in args.rules))
    for name, g in groups.items():
        print(f"{name:24s} {g['clips']:5d} " + " ".join(f"{g[rule]:12.2f}"
                                                       for rule in args.rules))
    print(f"{'PESQ-WB dt (output)':24s} {len(dt):5d} " + " ".join(f"{pesq[rule]:12.3f}"
                                                                 for rule in args.rules))
    for key, values in mos.items():
        print(f"{'AECMOS ' + key:24s} {len(dt):5d} " + " ".join(f"{values[rule]:12.3f}"
                                                               for rule in args.rules))
    print(f"{'time / ' + ref:24s} {'':5s} " + " ".join(f"{cost[rule]:12.2f}"
                                                       for rule in args.rules))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"root": str(args.root), "checkpoint": args.checkpoint or
                                    "packaged", "rules": args.rules, "groups": groups,
                                    "pesq_wb_dt": pesq, **mos, "time_ratio": cost,
                                    "clips": rows},
                                   indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
