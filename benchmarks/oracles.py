"""Oracle outputs for the quality benchmark: what an enhancer that knew the target would give.

``bench_enhancer_quality.py --systems oracle/KIND`` writes these in place of an enhancer's
output (``<exp>/enhanced_signals/<scene>_<listener>_enhanced.wav``, the same signal for every
listener of a scene) and scores them like any system, so each held-out set gets its ceilings
beside the enhancers (paired against the same pass-through). They read the clean target, so
they are benchmarks' references only, never enhancers (``clarity_se`` does not register them).

``KIND``:

``target_CH1``
    The reverberant target at the front microphones: a perfect denoiser that keeps the room.
``reference``
    The official ICASSP 2023 reference (the anechoic target at the front microphones rescaled
    per ear to ``target_CH1``'s RMS, :func:`clarity_se.metrics.scene.make_reference`): perfect
    denoising and dereverberation, HASPI's and HASQI's own reference.
``irm``
    The ideal ratio mask (Wang et al. 2014, eq. 1 with ``beta = 1/2``) on the front-microphone
    mixture, per ear: ``sqrt(|S|^2 / (|S|^2 + |N|^2))`` with ``S`` the STFT of ``target_CH1``
    and ``N`` that of everything else (``mixture - target_CH1``: interferers and microphone
    self-noise), mixture phase, window :data:`IRM_WINDOW` samples (periodic Hann, 23 ms at
    44.1 kHz), hop a quarter of it. The standard oracle reference point for real-valued
    time-frequency masks on one front microphone (not the highest-SNR real mask: the
    phase-sensitive mask is, Erdogan et al. 2015); the Conv-TasNet's and DTLN's masks act on
    learned or low-delay transforms and see six microphones, so it is a reference point for
    them, not a strict bound. Not causal: an oracle.
``irm_lowdelay``
    The same mask on the hearing-aid DTLN's own low-delay STFT
    (:class:`clarity_se.dsp.lowdelay_stft.LowDelaySTFT`: analysis window 512, hop 96,
    synthesis window 192 at 44.1 kHz; 4.33 ms latency): what an ideal gain per bin of that
    transform, the DTLN's first-core mask, could do.

``mvdr``
    The causal binaural MVDR beamformer of :mod:`clarity_se.dsp.mvdr` (with its defaults; the
    default output of the Conv-TasNet and of the hearing-aid DTLN and CR-CED) driven by
    ``target_CH1`` in place of an enhancer's estimate: what that beamformer gives with a perfect
    estimate.

``mvdr_wpe``
    The same beamformer with the enhancers' default options
    (:data:`clarity_se.enhancers.beamformed.ENHANCER_DEFAULTS`: the online WPE on its outputs up
    to 8 kHz), driven by ``target_CH1``: the enhancers' whole default back end with a perfect
    estimate of the reverberant target.
``mvdr_anechoic_wpe``
    That back end driven by ``target_anechoic_CH1`` (file scale), the target the networks are
    trained to estimate: their default back end with a perfect estimate of their own target.

``enhancer.residual_mix=A`` (``--set oracle/KIND:residual_mix=A``) mixes in the front
microphones as the Conv-TasNet's option does: ``(1 - A) * oracle + A * mixture_CH1``.

Reference
---------
Y. Wang, A. Narayanan and D. Wang, "On training targets for supervised speech separation",
IEEE/ACM Trans. Audio, Speech, Lang. Process. 22(12), 1849-1858 (2014).
H. Erdogan, J. R. Hershey, S. Watanabe and J. Le Roux, "Phase-sensitive and
recognition-boosted speech separation using deep recurrent neural networks", Proc. ICASSP
2015, pp. 708-712.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ORACLES = ("target_CH1", "reference", "irm", "irm_lowdelay", "mvdr", "mvdr_wpe",
           "mvdr_anechoic_wpe")
#: STFT window of the ideal ratio mask, samples at 44.1 kHz (periodic Hann; hop a quarter).
IRM_WINDOW = 1024


def ideal_ratio_mask(mixture: np.ndarray, target: np.ndarray, window: int = IRM_WINDOW,
                     lowdelay: bool = False) -> np.ndarray:  # fmt: skip
    """The ideal-ratio-masked mixture, channel by channel.

    Parameters
    ----------
    mixture, target : np.ndarray [shape=(channels, time)]
        The mixture and the target in it (same scale); the noise is ``mixture - target``.
    window : int
        STFT window in samples (periodic Hann, hop ``window // 4``: constant overlap-add);
        ignored with ``lowdelay``.
    lowdelay : bool
        Use the DTLN hearing-aid variant's low-delay STFT (512 / 96 / 192) instead.

    Returns
    -------
    np.ndarray [shape=(channels, time)]
        ``istft(sqrt(|S|^2 / (|S|^2 + |N|^2)) * X)``, cut to the input length (silent bins,
        ``|S| = |N| = 0``, get gain 0).

    Raises
    ------
    ValueError
        If the shapes differ or the window is shorter than 4 samples.
    """
    from scipy import signal

    mixture = np.asarray(mixture, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if mixture.shape != target.shape or mixture.ndim != 2:
        raise ValueError(f"mixture {mixture.shape} and target {target.shape}: expected the "
                         "same (channels, time) shape")  # fmt: skip
    if window < 4:
        raise ValueError(f"window must be at least 4 samples, got {window}")
    if lowdelay:
        import torch

        from clarity_se.dsp.lowdelay_stft import LowDelaySTFT

        stft = LowDelaySTFT(win_length=512, hop_length=96, synth_length=192)

        def analysis(x):
            return stft.analysis(torch.from_numpy(x)).numpy()

        def synthesis(spec):
            return stft.synthesis(torch.from_numpy(spec), mixture.shape[1]).numpy()
    else:
        hop = window // 4
        kwargs = {"window": signal.get_window("hann", window), "nperseg": window,
                  "noverlap": window - hop}  # fmt: skip

        def analysis(x):
            return signal.stft(x, **kwargs)[2]

        def synthesis(spec):
            return signal.istft(spec, **kwargs)[1]

    spec_x = analysis(mixture)
    power_s, power_n = np.abs(analysis(target)) ** 2, np.abs(analysis(mixture - target)) ** 2
    total = power_s + power_n
    mask = np.sqrt(np.divide(power_s, total, out=np.zeros_like(total), where=total > 0))
    out = synthesis(mask * spec_x)
    out = out[:, : mixture.shape[1]]
    if out.shape[1] < mixture.shape[1]:
        out = np.pad(out, ((0, 0), (0, mixture.shape[1] - out.shape[1])))
    return out


def oracle_output(kind: str, mixture: np.ndarray, target: np.ndarray, anechoic: np.ndarray,
                  residual_mix: float = 0.0,
                  microphones: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """One oracle's output for one scene.

    Parameters
    ----------
    kind : str
        One of :data:`ORACLES`.
    mixture, target, anechoic : np.ndarray [shape=(2, time)]
        The front-microphone mixture (``CH1`` left, right), ``target_CH1`` and
        ``target_anechoic_CH1``, file scale.
    residual_mix : float
        Share ``A`` of the mixture in the output, ``0 <= A <= 1``.
    microphones : np.ndarray [shape=(6, time)], optional
        All six microphones (rows ``CH1-L, CH1-R, ..., CH3-R``); needed by the ``mvdr`` kinds
        only.

    Returns
    -------
    np.ndarray [shape=(2, time)]

    Raises
    ------
    ValueError
        Unknown ``kind``, ``residual_mix`` outside [0, 1], (``reference``) a silent ear of
        the anechoic target, or (the ``mvdr`` kinds) no ``microphones``.
    """
    from clarity_se.metrics.scene import make_reference

    if kind not in ORACLES:
        raise ValueError(f"unknown oracle {kind!r}; choose from {ORACLES}")
    if not 0.0 <= residual_mix <= 1.0:
        raise ValueError(f"residual_mix must be in [0, 1], got {residual_mix}")
    if kind == "target_CH1":
        out = np.asarray(target, dtype=np.float64)
    elif kind == "reference":
        out = make_reference(np.asarray(anechoic).T, np.asarray(target).T).T
    elif kind.startswith("mvdr"):
        from clarity_se.dsp.mvdr import mvdr
        from clarity_se.enhancers.beamformed import ENHANCER_DEFAULTS

        if microphones is None:
            raise ValueError(f"oracle {kind} needs all six microphones (microphones=)")
        estimate = anechoic if kind == "mvdr_anechoic_wpe" else target
        options = {} if kind == "mvdr" else dict(ENHANCER_DEFAULTS)
        out = mvdr(np.asarray(microphones), np.asarray(estimate), **options).astype(np.float64)
    else:
        out = ideal_ratio_mask(mixture, target, lowdelay=kind == "irm_lowdelay")
    return (1.0 - residual_mix) * out + residual_mix * np.asarray(mixture, dtype=np.float64)


def write_oracle(root: Path, exp: Path, kind: str, residual_mix: float = 0.0) -> int:
    """Write one oracle's enhanced signals for every (scene, listener) pair of a dev set.

    Parameters
    ----------
    root : Path
        The data root (``clarity_data/`` below it), as ``path.root`` (the other ``path.*``
        keys: the recipe defaults).
    exp : Path
        The experiment folder (``path.exp_folder``); signals go to ``enhanced_signals/`` in
        the official names, float WAV, written atomically.
    kind, residual_mix
        As :func:`oracle_output`.

    Returns
    -------
    int
        Pairs written.

    Raises
    ------
    ValueError, OSError
        As :func:`oracle_output`, or a missing or unreadable scene signal (named).
    """
    from clarity_se.config import load_config
    from clarity_se.data.audio_io import write_audio
    from clarity_se.data.cec2 import CEC2Dataset
    from clarity_se.data.experiment import Experiment
    from clarity_se.data.pairs import group_by_scene

    cfg = load_config(overrides=[f"path.root={root}", f"path.exp_folder={exp}"])
    dataset = CEC2Dataset.from_recipe(cfg.path)
    experiment = Experiment(exp)
    n = 0
    for scene, listeners in group_by_scene(dataset.scene_listener_pairs()).items():
        microphones = dataset.load_mixture(scene).numpy()
        target = dataset.load_target(scene).numpy()
        anechoic = dataset.load_target_anechoic(scene).numpy()
        signal = oracle_output(kind, microphones[:2], target, anechoic, residual_mix,
                               microphones=microphones)  # fmt: skip
        for listener in listeners:
            write_audio(experiment.enhanced_path(scene, listener), signal.T,
                        dataset.sample_rate)  # fmt: skip
            n += 1
    return n
