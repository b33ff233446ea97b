"""Cost of every registered enhancer on one CPU core: parameters, MACs, latency, block time, RTF.

One row per enhancer of :data:`clarity_se.enhancers.ENHANCER_MODULES` (and per variant:
``dtln`` and ``dtln/published``; ``convtasnet/mixture``, ``dtln/mixture`` and ``crced/mixture``
are those enhancers with ``enhancer.residual_source=mixture``: the networks' own outputs (the
Conv-TasNet's mixed with the front microphones) in place of the default beamformer), each built
as ``clarity-se enhance`` builds it (packaged checkpoint, default ``enhancer.*`` options) and
measured in its own subprocess (clean peak-RSS figure) with ``torch.set_num_threads(threads)``
on ``--seconds`` of 6-channel noise:

* ``parameters``: trainable parameters of the model inside (0 for ``passthrough``);
* ``macs_per_s``: multiply-accumulates per second of audio of the weight layers (Linear,
  Conv1d, ConvTranspose1d, LSTM input and recurrent products; counted with forward hooks on a
  whole-signal run, so test-time ensembles count twice) plus the polyphase resamplers; FFTs and
  element-wise operations are not counted; for CR-CED also ``macs_per_s_analytic``, its
  :meth:`~clarity_se.models.crced.CRCEDHearingAid.macs_per_second` (FFTs and bands included);
* ``latency_samples`` / ``latency_ms``: the enhancer's stated look-ahead at 44.1 kHz;
* ``pytorch``: whole-signal RTF, and the enhancer's streamer fed one block at a time (its hop:
  96 samples for ``dtln``, 353 (8 ms) for ``dtln/published``, the encoder stride for
  ``convtasnet``): mean and median time per block, RTF = total time / audio time;
* ``onnxruntime`` (DTLN and CR-CED rows): the exported models run block by block by
  :class:`~clarity_se.models.dtln_onnx.OnnxDTLNStreamer` /
  :class:`~clarity_se.models.crced_onnx.OnnxCRCEDStreamer` (scipy's pocketfft FFTs, one
  intra-op thread);
  ``rtf`` is the whole frame loop, ``rtf_graphs`` the time spent inside the ONNX sessions'
  ``run`` / ``run_with_iobinding`` calls, measured in a second pass over the same input with
  those calls timed (so that the timer does not add to ``rtf``; the rest of ``rtf`` is the FFTs,
  framing and overlap-add in Python); for the DTLN rows ``int8`` gives the same figures for the
  export with 8-bit weights (``export_onnx(int8=True)``, ``enhancer.runtime=onnxruntime_int8``)
  and ``snr_db_vs_float``, the float export's output power over that of the difference between
  the two outputs on the benchmark's input (the quantisation error, dB);
  where the enhancer's output is the MVDR beamformer's
  (``dtln``, ``crced``), ``rtf_with_mvdr`` is a third pass with each block's network output fed
  to :class:`~clarity_se.dsp.mvdr.EstimateMVDR` (numba kernels; the enhancer's beamformer
  options) with the block, i.e. the whole default system block by block;
  for ``dtln/published`` at the model's 16 kHz with 128-sample (8 ms) blocks, the figure the
  reference reports (breizhn/DTLN README, "Execution Times": 0.65 ms per block with a TF 2.2
  SavedModel, 0.36 ms with TF-lite, on an Intel i5-6600K at 3.5 GHz) -- a different CPU, and
  without the resampling the enhancer adds;
* ``peak_rss_mb``: the subprocess's peak resident memory.

RTF = processing time / audio duration (< 1 is faster than real time; the hearing-aid target is
< 0.1 with onnxruntime). Timings are noisy on a shared machine: run under the CPU lock.

``--set SYSTEM:KEY=VALUE`` (repeatable) overrides ``enhancer.KEY`` of one system, with dotted
keys for nested options (``--set dtln:mvdr.wpe_update_every=4``); the row's ``overrides``
lists them.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_enhancer.py [--seconds 4] [--paper-size]
        [--systems dtln crced] [--set dtln:mvdr.wpe_update_every=4]
        # -> results/benchmarks/enhancer.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout's package, not an installed one
SAMPLE_RATE = 44100
#: Luo & Mesgarani 2019 best causal Conv-TasNet (N512 L32 B128 H512 X8 R3), random weights
PAPER = dict(n_filters=512, kernel_size=32, bn_chan=128, hid_chan=512, skip_chan=128,
             conv_kernel_size=3, n_blocks=8, n_repeats=3)  # fmt: skip
REFERENCE_DTLN = {
    "ms_per_block": 0.65,
    "ms_per_block_tflite": 0.36,
    "block_ms": 8.0,
    "cpu": "Intel i5-6600K @ 3.5 GHz, TF 2.2 SavedModel / TF-lite (breizhn/DTLN README)",
}


def count_macs(module, run) -> int:
    """Multiply-accumulates of the weight layers of ``module`` during ``run()`` (forward hooks)."""
    from torch import nn

    total = [0]

    def hook(mod, inputs, output):
        out = output[0] if isinstance(output, tuple) else output
        if isinstance(mod, nn.Linear):
            total[0] += out.numel() * mod.in_features
        elif isinstance(mod, nn.Conv1d):
            total[0] += out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0]
        elif isinstance(mod, nn.ConvTranspose1d):
            x = inputs[0]
            total[0] += x.numel() * mod.out_channels // mod.groups * mod.kernel_size[0]
        elif isinstance(mod, nn.LSTM):
            x = inputs[0]
            steps = x.shape[0] * x.shape[1]  # batch x frames (batch_first)
            size_in = mod.input_size
            for _ in range(mod.num_layers):
                total[0] += steps * 4 * mod.hidden_size * (size_in + mod.hidden_size)
                size_in = mod.hidden_size

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Linear, nn.Conv1d, nn.ConvTranspose1d, nn.LSTM))]  # fmt: skip
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return total[0]


def _options(system: str, overrides: dict | None = None, assignments: list[str] | None = None):
    """The ``enhancer.*`` node of ``system`` (``name`` or ``name/variant``): the defaults, then
    ``overrides`` (a dict), then ``assignments`` (``KEY=VALUE``, dotted keys for nested options).

    Raises
    ------
    ValueError
        An assignment that is not ``KEY=VALUE`` or names no ``enhancer.*`` option.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from clarity_se.config import EnhancerConfig

    name, _, variant = system.partition("/")
    values = {"name": name, "variant": variant, **(overrides or {})}
    for item in assignments or []:
        if "=" not in item:
            raise ValueError(f"--set {system}: expected KEY=VALUE, got {item!r}")
    try:
        return OmegaConf.merge(OmegaConf.structured(EnhancerConfig), values,
                               OmegaConf.from_dotlist(list(assignments or [])))  # fmt: skip
    except OmegaConfBaseException as exc:
        raise ValueError(f"--set {system}: {exc}".splitlines()[0]) from exc


def parse_sets(items: list[str], systems: list[str]) -> dict[str, list[str]]:
    """``SYSTEM:KEY=VALUE`` items -> ``{system: ["KEY=VALUE", ...]}`` for each of ``systems``:
    ``bench_enhancer_quality.parse_sets`` without its ``enhancer.`` prefix (imported here, in
    the parent process only, so that the measured subprocesses do not load pandas).

    Raises
    ------
    ValueError
        A malformed item or a system not in ``systems``.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_enhancer_quality import parse_sets as quality_sets

    return {system: [item.removeprefix("enhancer.") for item in assignments]
            for system, assignments in quality_sets(items, systems).items()}  # fmt: skip


def _block_samples(enh) -> int:
    if hasattr(enh, "block_samples"):
        return int(enh.block_samples)
    model = getattr(enh, "model", None)
    return int(getattr(model, "stride", 64))


def _time_blocks(process, x, block: int) -> dict:
    import numpy as np

    times = []
    t0 = time.perf_counter()
    for i in range(0, x.shape[-1], block):
        t1 = time.perf_counter()
        process(x[..., i : i + block])
        times.append(time.perf_counter() - t1)
    total = time.perf_counter() - t0
    return {
        "block_samples": block,
        "ms_per_block_mean": 1000 * float(np.mean(times)),
        "ms_per_block_median": 1000 * float(np.median(times)),
        "total_s": total,
    }


def run_one(system: str, seconds: float, threads: int,
            assignments: list[str] | None = None) -> dict:
    """Measure one enhancer (``name`` or ``name/variant``, ``convtasnet/paper_size``, or
    ``NAME/mixture``: the packaged model with ``enhancer.residual_source=mixture``), with the
    ``enhancer.*`` assignments ``KEY=VALUE`` (:func:`_options`)."""
    import numpy as np
    import torch

    from clarity_se.enhancers import build_enhancer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if system == "convtasnet/paper_size":
        from clarity_se.models import build_model
        from clarity_se.models.checkpoint import save_checkpoint

        tmp = Path(tempfile.mkdtemp())
        ckpt = save_checkpoint(tmp / "paper.pt", build_model("convtasnet", **PAPER))
        enh = build_enhancer(_options("convtasnet", {"checkpoint": str(ckpt)}, assignments))
    elif system.endswith("/mixture"):  # the packaged model without the beamformer
        enh = build_enhancer(_options(system.split("/")[0], {"residual_source": "mixture"},
                                      assignments))  # fmt: skip
    else:
        enh = build_enhancer(_options(system, None, assignments))
    model = getattr(enh, "model", None)
    x = (0.1 * np.random.default_rng(0).standard_normal((6, int(seconds * SAMPLE_RATE))))
    x = x.astype(np.float32)
    row: dict = {
        "system": system,
        "parameters": int(sum(p.numel() for p in model.parameters())) if model is not None else 0,
        "latency_samples": int(enh.latency_samples),
        "latency_ms": 1000.0 * enh.latency_samples / SAMPLE_RATE,
        "audio_s": seconds,
        "threads": threads,
        "overrides": list(assignments or []),
    }
    one_s = x[:, :SAMPLE_RATE]
    macs = count_macs(model, lambda: enh(one_s)) if model is not None else 0
    for attr in ("down", "up"):  # polyphase resamplers of dtln/published: taps per output
        r = getattr(enh, attr, None)
        if r is not None:
            n_in = SAMPLE_RATE if attr == "down" else r.orig_rate
            macs += 2 * r.n_out(n_in) * r.n_phase_taps
    row["macs_per_s"] = int(macs)
    if hasattr(model, "macs_per_second"):  # CR-CED: network + bands + STFT, counted analytically
        row["macs_per_s_analytic"] = {k: int(v) for k, v in model.macs_per_second().items()}
    enh(x[:, : SAMPLE_RATE // 10])  # warm-up
    t0 = time.perf_counter()
    enh(x)
    row["pytorch"] = {"rtf_whole": (time.perf_counter() - t0) / seconds}
    block = _block_samples(enh)
    streamer = enh.streamer()
    streamer.reset()
    stream = _time_blocks(streamer.process, x, block)
    streamer.flush()
    stream["rtf"] = stream.pop("total_s") / seconds
    row["pytorch"]["blocks"] = stream
    if system.startswith(("dtln", "crced")):
        row["onnxruntime"] = _onnx_row(enh, seconds, threads)
        if system == "dtln/published":
            row["pytorch"]["model_16k_blocks"] = _published_torch_blocks(enh, seconds)
            row["reference"] = REFERENCE_DTLN
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def _published_torch_blocks(enh, seconds: float) -> dict:
    """The PyTorch DTLN streamer at 16 kHz, one 128-sample block per call, one ear."""
    import torch

    model = enh.model
    x = 0.1 * torch.randn(1, int(seconds * model.sample_rate))
    stream = model.streamer()
    with torch.inference_mode():
        out = _time_blocks(stream.process, x, model.hop_length)
    out["rtf"] = out.pop("total_s") / seconds
    return out


def _onnx_row(enh, seconds: float, threads: int) -> dict:
    import numpy as np

    folder = Path(tempfile.mkdtemp())
    if enh.name == "crced":
        from clarity_se.models.crced_onnx import OnnxCRCEDStreamer, export_onnx

        export_onnx(enh.model, folder)
        runner = OnnxCRCEDStreamer(folder, threads=threads)
    else:
        from clarity_se.models.dtln_onnx import OnnxDTLNStreamer, export_onnx

        export_onnx(enh.model, folder)
        runner = OnnxDTLNStreamer(folder, threads=threads)
    rate = int(enh.model.sample_rate)
    rows = 1 if enh.variant == "published" else 6
    x = (0.1 * np.random.default_rng(1).standard_normal((rows, int(seconds * rate))))
    x = x.astype(np.float32)
    out = _time_runner(runner, x, seconds)
    runners = [(out, runner)]
    if enh.name == "dtln":  # the same export with int8 weights (enhancer.runtime=onnxruntime_int8)
        export_onnx(enh.model, folder / "int8", int8=True)
        int8 = OnnxDTLNStreamer(folder / "int8", threads=threads)
        out["int8"] = _time_runner(int8, x, seconds)
        runners.append((out["int8"], int8))
        ref, got = (np.concatenate([r.process(x), r.flush()], axis=1) for r in (runner, int8))
        out["int8"]["snr_db_vs_float"] = float(
            10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((got - ref) ** 2.0))
        )
    if hasattr(enh, "inner"):  # the MVDR beamformer follows the network (BeamformedEnhancer)
        from clarity_se.dsp.mvdr import EstimateMVDR

        for row, net in runners:
            beamformer = EstimateMVDR(6, rate, **enh.beamformer_options)  # the enhancer's
            net.reset()

            def with_mvdr(block, net=net, beamformer=beamformer):
                return beamformer.process(block, net.process(block))

            row["rtf_with_mvdr"] = _time_blocks(with_mvdr, x, net.R)["total_s"] / seconds
    out["sample_rate"] = rate
    out["signals"] = "one ear (CH1-L)" if enh.variant == "published" else "both ears"
    return out


def _time_runner(runner, x, seconds: float) -> dict:
    """Block-by-block time of an onnxruntime runner over ``x`` (after a 0.1 s warm-up): per
    block and ``rtf``; then ``rtf_graphs``, a second pass with the sessions' calls timed."""
    rate = x.shape[1] / seconds
    runner.process(x[:, : int(rate) // 10])
    runner.reset()
    out = _time_blocks(runner.process, x, runner.R)
    out["rtf"] = out.pop("total_s") / seconds
    runner.reset()
    timed = _time_sessions(runner)  # a second pass, the sessions' calls timed
    _time_blocks(runner.process, x, runner.R)
    out["rtf_graphs"] = sum(t.seconds for t in timed) / seconds
    runner.reset()
    return out


class _TimedSession:
    """An onnxruntime session that adds up the time spent in ``run`` and ``run_with_iobinding``
    (other attributes are the session's)."""

    def __init__(self, session) -> None:
        self.session, self.seconds = session, 0.0

    def run(self, *args, **kwargs):
        t0 = time.perf_counter()
        out = self.session.run(*args, **kwargs)
        self.seconds += time.perf_counter() - t0
        return out

    def run_with_iobinding(self, *args, **kwargs):
        t0 = time.perf_counter()
        out = self.session.run_with_iobinding(*args, **kwargs)
        self.seconds += time.perf_counter() - t0
        return out

    def __getattr__(self, name):
        return getattr(self.session, name)


def _time_sessions(runner) -> list[_TimedSession]:
    """Wrap the runner's session(s) (``session`` or ``sessions``) in :class:`_TimedSession`."""
    if hasattr(runner, "sessions"):
        runner.sessions = [_TimedSession(s) for s in runner.sessions]
        return runner.sessions
    runner.session = _TimedSession(runner.session)
    return [runner.session]


def systems(paper_size: bool) -> list[str]:
    """Registered enhancers plus their variants (``dtln/published``)."""
    from clarity_se.enhancers import enhancer_names

    out = []
    for name in enhancer_names():
        out.append(name)
        if name == "dtln":
            out.append("dtln/published")
        if name in ("convtasnet", "dtln", "crced"):
            out.append(f"{name}/mixture")
        if name == "convtasnet" and paper_size:
            out.append("convtasnet/paper_size")
    return out


def main() -> int:
    """Run every system in a subprocess and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--paper-size", action="store_true",
                        help="also the paper-size Conv-TasNet (random weights)")  # fmt: skip
    parser.add_argument("--systems", nargs="*", default=None,
                        help="subset, e.g. dtln dtln/published")  # fmt: skip
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        metavar="SYSTEM:KEY=VALUE", help="enhancer.* override of one system")
    parser.add_argument("--output", type=Path, default=REPO / "results/benchmarks/enhancer.json")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.one:
        assignments = [item.partition(":")[2] for item in opts.sets]
        print(json.dumps(run_one(opts.one, opts.seconds, opts.threads, assignments)))
        return 0
    names = opts.systems or systems(opts.paper_size)
    try:
        sets = parse_sets(opts.sets, names)
        for system in names:  # refuse unknown keys before any subprocess
            _options(system.split("/")[0] if system.endswith(("/mixture", "/paper_size"))
                     else system, None, sets[system])  # fmt: skip
    except ValueError as exc:
        print(f"bench_enhancer: {exc}", file=sys.stderr)
        return 2
    results = []
    for system in names:
        cmd = [sys.executable, __file__, "--one", system, "--seconds", str(opts.seconds),
               "--threads", str(opts.threads)]  # fmt: skip
        cmd += [arg for item in sets[system] for arg in ("--set", f"{system}:{item}")]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        if proc.returncode != 0:
            results.append({"system": system, "error": proc.stderr.strip().splitlines()[-1:]})
        else:
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1], indent=1), flush=True)
    import onnxruntime
    import torch

    report = {
        "benchmark": "enhancer cost on CPU (parameters, MACs, latency, block time, RTF, memory)",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or _cpu_model(),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "results": results,
    }
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(json.dumps(report, indent=1))
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


if __name__ == "__main__":
    sys.exit(main())
