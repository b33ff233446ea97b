"""Inner hair cell (IHC) rapid and short-term adaptation (Kates 2013, section II.F).

The adaptation is an RC equivalent circuit whose derivatives are mapped to first-order backward
differences: a two-state linear recursion driven by the dB SL envelope,

    b1 = r2 v0[n] + p1 v1[n-1],  b2 = p2 v2[n-1]
    [v1[n], v2[n]] = inv([[a11, a12], [a21, a22]]) [b1, b2]
    out[n] = (v0[n] - v1[n]) / r1.

Two back ends compute the same recursion, vectorised over ``batch x chan``:

* CPU tensors: a numba kernel that runs the reference's sample loop exactly (same operations in
  the same order, hence bit-identical to pyclarity's ``@njit`` function), fused with the final
  clamp at 0 dB SL and the BM gain, parallel over rows (``torch.get_num_threads()`` numba
  threads).  Groups of eight rows of one length run as LLVM vector code (:mod:`.vector_ir`,
  eight rows per instruction, the same bits; 1.7x in float64, 3x in float32), the other rows
  four at a time.  CUDA tensors given to this back end are copied to host memory and back.
* other devices (CUDA): a torch log-depth (Hillis-Steele) scan of the 2x2 state recursion,
  ``ceil(log2(time))`` tensor steps, no host transfer.  It sums the same terms in a different
  order (relative differences ~1e-15 of each state; inputs that are exactly zero keep the state
  exactly propagated, so silent stretches keep their sign).
"""

from __future__ import annotations

import logging

import numba
import numpy as np
import torch
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic
from torch import Tensor

from clarity_se.ear_model import vector_ir as vir

logger = logging.getLogger(__name__)

__all__ = ["inner_hair_cell_adaptation", "ihc_circuit_coefficients"]


def ihc_circuit_coefficients(delta: float, sample_rate: float) -> dict[str, float]:
    """Coefficients of the IHC equivalent circuit, exactly as computed by the reference.

    Parameters
    ----------
    delta : float
        Overshoot factor (steady state x delta at onset); values below 1.0001 are raised to it.
    sample_rate : float
        Sampling rate in Hz.

    Returns
    -------
    dict
        ``r_1, r_2, a11, a12, a21, a22, denom, r_1_inv, p1, p2`` (floats).

    References
    ----------
    pyclarity 0.9.0 ``eb.inner_hair_cell_adaptation`` (tau1 = 2 ms rapid, tau2 = 60 ms
    short-term adaptation).
    """
    delta = max(delta, 1.0001)
    tau1 = 0.001 * 2
    tau2 = 0.001 * 60
    fs_inv = 1 / sample_rate
    r_1 = 1 / delta
    r_2 = 0.5 * (1 - r_1)
    r_3 = r_2
    c_1 = tau1 * (r_1 + r_2) / (r_1 * r_2)
    c_2 = tau2 / ((r_1 + r_2) * r_3)
    a11 = r_1 + r_2 + r_1 * r_2 * (c_1 / fs_inv)
    a12 = -r_1
    a21 = -r_3
    a22 = r_2 + r_3 + r_2 * r_3 * (c_2 / fs_inv)
    denom = 1 / ((a11 * a22) - (a21 * a12))
    return {
        "r_1": r_1,
        "r_2": r_2,
        "a11": a11,
        "a12": a12,
        "a21": a21,
        "a22": a22,
        "denom": denom,
        "r_1_inv": 1 / r_1,
        "p1": r_1 * r_2 * (c_1 / fs_inv),
        "p2": r_2 * r_3 * (c_2 / fs_inv),
    }


@numba.njit(inline="always")
def _ihc_step(v_0, v_1, v_2, r_2, p1, p2, a11, a12, a21, a22, denom, r_1_inv):  # pragma: no cover
    """One sample of the reference's recursion: returns (clamped output, v_1, v_2)."""
    b_1 = v_0 * r_2 + p1 * v_1
    b_2 = p2 * v_2
    v_1 = denom * (a22 * b_1 - a12 * b_2)
    v_2 = denom * (-a21 * b_1 + a11 * b_2)
    o = (v_0 - v_1) * r_1_inv
    if o < 0.0:
        o = 0.0
    return o, v_1, v_2


def _make_lanes_kernel(with_bm: bool):
    """numba intrinsic: the reference's IHC sample loop for ``LANES`` rows of equal length.

    Arguments ``(x, bm, out, bm_out, row_offset, row_stride, npts, consts)``: rows ``l`` at
    ``row_offset + l * row_stride`` of the flat arrays; ``consts`` float64 ``r_2, p1, p2, a11,
    a12, a21, a22, denom, r_1_inv``.  Each lane does :func:`_ihc_step` and the BM gain with
    the same operations in the same order (bit-identical); samples run in blocks of ``LANES``
    (tile load, transpose, transpose back, store), the remainder one by one.
    """

    @intrinsic
    def kernel(typingctx, x, bm, out, bm_out, row_offset, row_stride, npts, consts):
        sig = types.void(x, bm, out, bm_out, row_offset, row_stride, npts, consts)

        def codegen(context, builder, signature, args):
            xa, ba, oa, boa, r_off, r_stride, n_pts, ca = args
            x_ty, b_ty, o_ty, bo_ty, _, _, _, c_ty = signature.args

            def data(ty, value):
                return context.make_array(ty)(context, builder, value).data

            x_ptr, b_ptr, o_ptr, bo_ptr = (data(t, v) for t, v in
                                           ((x_ty, xa), (b_ty, ba), (o_ty, oa), (bo_ty, boa)))
            c_ptr = data(c_ty, ca)
            i64 = ir.IntType(64)
            r_2, p1, p2, a11, a12, a21, a22, denom, r_1_inv = (
                vir.broadcast(builder, builder.load(builder.gep(c_ptr, [ir.Constant(i64, k)])))
                for k in range(9)
            )
            neg_a21 = builder.fneg(a21)
            small = ir.Constant(vir.VECTOR, [1e-30] * vir.LANES)
            zero = ir.Constant(vir.VECTOR, [0.0] * vir.LANES)
            state = {k: cgutils.alloca_once(builder, vir.VECTOR, name=k) for k in ("v1", "v2")}
            for slot in state.values():
                builder.store(zero, slot)
            mul, add, sub = builder.fmul, builder.fadd, builder.fsub

            def step(v_0, motion):
                v_1, v_2 = builder.load(state["v1"]), builder.load(state["v2"])
                b_1 = add(mul(v_0, r_2), mul(p1, v_1))
                b_2 = mul(p2, v_2)
                v_1 = mul(denom, sub(mul(a22, b_1), mul(a12, b_2)))
                v_2 = mul(denom, add(mul(neg_a21, b_1), mul(a11, b_2)))
                builder.store(v_1, state["v1"])
                builder.store(v_2, state["v2"])
                o = mul(sub(v_0, v_1), r_1_inv)
                o = builder.select(builder.fcmp_ordered("<", o, zero), zero, o)
                if not with_bm:
                    return o, None
                return o, mul(builder.fdiv(add(o, small), add(v_0, small)), motion)

            def block(start):
                xs = vir.load_columns(builder, x_ptr, r_off, r_stride, start)
                bs = (vir.load_columns(builder, b_ptr, r_off, r_stride, start) if with_bm
                      else [None] * vir.LANES)
                outs = [step(v, m) for v, m in zip(xs, bs, strict=True)]
                vir.store_columns(builder, o_ptr, vir.transpose(builder, [o[0] for o in outs]),
                                  r_off, r_stride, start)
                if with_bm:
                    vir.store_columns(builder, bo_ptr,
                                      vir.transpose(builder, [o[1] for o in outs]),
                                      r_off, r_stride, start)

            def single(n):
                v_0 = vir.load_lanes(builder, x_ptr, r_off, r_stride, n)
                motion = vir.load_lanes(builder, b_ptr, r_off, r_stride, n) if with_bm else None
                o, bo = step(v_0, motion)
                vir.store_lanes(builder, o_ptr, o, r_off, r_stride, n)
                if with_bm:
                    vir.store_lanes(builder, bo_ptr, bo, r_off, r_stride, n)

            vir.block_loops(builder, n_pts, block, single)
            return context.get_dummy_value()

        return sig, codegen

    return kernel


_lanes_env = _make_lanes_kernel(False)
_lanes_env_bm = _make_lanes_kernel(True)


@numba.njit(parallel=True, cache=True, fastmath=False)
def _ihc_rows(x, bm, r_2, p1, p2, a11, a12, a21, a22, denom, r_1_inv, lengths):  # pragma: no cover
    """Numba kernel: the reference's sample loop over each row of x [rows, time], fused with its
    final clamp at 0 and the BM gain ``(out + 1e-30) / (x + 1e-30)``.  float32 or float64
    arrays (read and written in their dtype), float64 arithmetic.

    The recursion is latency-bound, so rows run four at a time in one loop (independent
    dependency chains the CPU overlaps; ~2.5x faster), each with the reference's operations
    in the reference's order (bit-identical).  When ``bm`` has no rows only the envelope is
    computed (``bm_out`` is then empty).
    """
    rows, n_time = x.shape
    out = np.zeros_like(x)
    with_bm = bm.shape[0] == rows
    bm_out = np.zeros_like(x) if with_bm else np.zeros((0, n_time), dtype=x.dtype)
    small = 1e-30
    # groups of LANES rows of one length: vector code (vector_ir), LANES rows per instruction
    lanes = 8
    n_vector = rows // lanes
    vector_done = np.zeros(n_vector, dtype=np.bool_)
    consts = np.array([r_2, p1, p2, a11, a12, a21, a22, denom, r_1_inv])
    xf = x.ravel()
    of = out.ravel()
    bf = bm.ravel()
    bof = bm_out.ravel()
    for g in numba.prange(n_vector):
        r0 = lanes * g
        npts = lengths[r0]
        if npts < 1 or lengths[r0 : r0 + lanes].min() != lengths[r0 : r0 + lanes].max():
            continue
        if with_bm:
            _lanes_env_bm(xf, bf, of, bof, r0 * n_time, n_time, npts, consts)
        else:
            _lanes_env(xf, bf, of, bof, r0 * n_time, n_time, npts, consts)
        vector_done[g] = True
    # the other rows: four at a time in scalar code
    n_groups = (rows + 3) // 4
    for g in numba.prange(n_groups):
        r0 = 4 * g
        if r0 // lanes < n_vector and vector_done[r0 // lanes]:
            continue
        full = r0 + 4 <= rows
        common = 0
        if full:
            common = min(min(lengths[r0], lengths[r0 + 1]), min(lengths[r0 + 2], lengths[r0 + 3]))
        s1a = 0.0
        s2a = 0.0
        s1b = 0.0
        s2b = 0.0
        s1c = 0.0
        s2c = 0.0
        s1d = 0.0
        s2d = 0.0
        for n in range(common):
            xa = np.float64(x[r0, n])
            xb = np.float64(x[r0 + 1, n])
            xc = np.float64(x[r0 + 2, n])
            xd = np.float64(x[r0 + 3, n])
            oa, s1a, s2a = _ihc_step(xa, s1a, s2a, r_2, p1, p2, a11, a12, a21, a22, denom, r_1_inv)
            ob, s1b, s2b = _ihc_step(xb, s1b, s2b, r_2, p1, p2, a11, a12, a21, a22, denom, r_1_inv)
            oc, s1c, s2c = _ihc_step(xc, s1c, s2c, r_2, p1, p2, a11, a12, a21, a22, denom, r_1_inv)
            od, s1d, s2d = _ihc_step(xd, s1d, s2d, r_2, p1, p2, a11, a12, a21, a22, denom, r_1_inv)
            out[r0, n] = oa
            out[r0 + 1, n] = ob
            out[r0 + 2, n] = oc
            out[r0 + 3, n] = od
            if with_bm:
                bm_out[r0, n] = (oa + small) / (xa + small) * np.float64(bm[r0, n])
                bm_out[r0 + 1, n] = (ob + small) / (xb + small) * np.float64(bm[r0 + 1, n])
                bm_out[r0 + 2, n] = (oc + small) / (xc + small) * np.float64(bm[r0 + 2, n])
                bm_out[r0 + 3, n] = (od + small) / (xd + small) * np.float64(bm[r0 + 3, n])
        # the rest of each row (unequal lengths, or a group of fewer than 4 rows) on its own
        for k in range(min(4, rows - r0)):
            r = r0 + k
            if k == 0:
                v_1, v_2 = s1a, s2a
            elif k == 1:
                v_1, v_2 = s1b, s2b
            elif k == 2:
                v_1, v_2 = s1c, s2c
            else:
                v_1, v_2 = s1d, s2d
            for n in range(common, lengths[r]):
                v_0 = np.float64(x[r, n])
                o, v_1, v_2 = _ihc_step(v_0, v_1, v_2, r_2, p1, p2, a11, a12, a21, a22, denom,
                                        r_1_inv)  # fmt: skip
                out[r, n] = o
                if with_bm:
                    bm_out[r, n] = (o + small) / (v_0 + small) * np.float64(bm[r, n])
    return out, bm_out


def _ihc_numba(
    x: Tensor, bm: Tensor, c: dict[str, float], lengths: Tensor
) -> tuple[Tensor, Tensor | None]:
    work = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float64
    x64 = x.detach().to(work).contiguous().numpy()
    rows = x64.reshape(-1, x64.shape[-1])
    lens = lengths.cpu().numpy().astype(np.int64)
    coeffs = (c["r_2"], c["p1"], c["p2"], c["a11"], c["a12"], c["a21"], c["a22"], c["denom"],
              c["r_1_inv"], lens)
    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
    try:
        if bm is None:
            out, _ = _ihc_rows(rows, np.zeros((0, 1), dtype=rows.dtype), *coeffs)
            return torch.from_numpy(out.reshape(x64.shape)).to(dtype=x.dtype), None
        bm64 = bm.detach().to(work).contiguous().numpy()
        out, bm_out = _ihc_rows(rows, bm64.reshape(rows.shape), *coeffs)
    finally:
        numba.set_num_threads(previous)
    return (
        torch.from_numpy(out.reshape(x64.shape)).to(dtype=x.dtype),
        torch.from_numpy(bm_out.reshape(x64.shape)).to(dtype=bm.dtype),
    )


def _ihc_scan(x: Tensor, c: dict[str, float]) -> Tensor:
    """Log-depth scan of s[n] = A s[n-1] + g v0[n], s = (v1, v2); returns (v0 - v1) / r1."""
    a11, a12, a21, a22, denom = c["a11"], c["a12"], c["a21"], c["a22"], c["denom"]
    p1, p2, r_2 = c["p1"], c["p2"], c["r_2"]
    # v1 = denom*(a22*(r2 v0 + p1 v1') - a12*p2 v2')
    # v2 = denom*(-a21*(r2 v0 + p1 v1') + a11*p2 v2')
    a_mat = torch.tensor(
        [[denom * a22 * p1, -denom * a12 * p2], [-denom * a21 * p1, denom * a11 * p2]],
        dtype=torch.float64,
    )
    g = (denom * a22 * r_2, -denom * a21 * r_2)
    state = torch.stack((g[0] * x, g[1] * x), dim=-1)  # [..., time, 2]
    n_time = x.shape[-1]
    step = 1
    power = a_mat.clone()
    while step < n_time:
        m = power.to(dtype=x.dtype, device=x.device)
        prev = state[..., :-step, :]
        add = torch.stack(
            (
                m[0, 0] * prev[..., 0] + m[0, 1] * prev[..., 1],
                m[1, 0] * prev[..., 0] + m[1, 1] * prev[..., 1],
            ),
            dim=-1,
        )
        state = torch.cat((state[..., :step, :], state[..., step:, :] + add), dim=-2)
        power = power @ power
        step *= 2
    return (x - state[..., 0]) * c["r_1_inv"]


def inner_hair_cell_adaptation(
    envelope_db: Tensor,
    basilar_membrane: Tensor | None,
    delta: float,
    sample_rate: float,
    *,
    lengths: Tensor | None = None,
    backend: str = "auto",
) -> tuple[Tensor, Tensor | None]:
    """IHC rapid and short-term adaptation of the dB SL envelope and the BM motion.

    Parameters
    ----------
    envelope_db : Tensor [shape=(batch, chan, time)], float, dB SL
        Envelope after OHC compression and IHC attenuation (``envelope_sl``).
    basilar_membrane : Tensor [shape=(batch, chan, time)], float, or None
        BM motion with a dB SL envelope (``envelope_sl``); None: only the envelope is adapted.
    delta : float
        Overshoot factor (2 in the ear model); raised to at least 1.0001.
    sample_rate : float
        Sampling rate in Hz (24000 Hz in the ear model).
    lengths : Tensor [shape=(batch,)], int, optional
        Valid samples per item of a zero-padded batch; outputs beyond it are zero (numba) or
        unspecified-but-finite (scan) and must be masked by the caller.
    backend : {"auto", "numba", "scan"}
        ``auto`` uses numba for CPU tensors and the torch scan elsewhere.

    Returns
    -------
    output_db : Tensor [shape=(batch, chan, time)], dB SL, >= 0
        Envelope with adaptation overshoot.
    output_basilar_membrane : Tensor [shape=(batch, chan, time)], or None without a BM input
        BM motion times the adaptation gain ``(out_db + 1e-30) / (env_db + 1e-30)``.

    Raises
    ------
    ValueError
        If the shapes differ, the input is not 3-D or ``backend`` is unknown.

    Notes
    -----
    Not differentiable through the numba back end (the scan back end is).

    References
    ----------
    Kates (2013), "An auditory model for intelligibility and quality predictions", POMA 19,
    050184, section II.F; pyclarity 0.9.0 ``eb.inner_hair_cell_adaptation``.
    """
    if envelope_db.ndim != 3 or (
        basilar_membrane is not None and envelope_db.shape != basilar_membrane.shape
    ):
        raise ValueError(
            "envelope_db and basilar_membrane must both be [batch, chan, time], got "
            f"{tuple(envelope_db.shape)} and {tuple(basilar_membrane.shape)}"
        )
    if backend not in ("auto", "numba", "scan"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'scan', got {backend!r}")
    batch, _, n_time = envelope_db.shape
    coeffs = ihc_circuit_coefficients(delta, sample_rate)
    if backend == "auto":
        backend = "numba" if envelope_db.device.type == "cpu" else "scan"
    if backend == "numba":
        if lengths is None:
            lens = torch.full((batch,), n_time, dtype=torch.long)
        else:
            lens = torch.as_tensor(lengths, dtype=torch.long).cpu()
        row_lens = lens.repeat_interleave(envelope_db.shape[1])
        bm_in = None if basilar_membrane is None else basilar_membrane.cpu()
        out, bm_out = _ihc_numba(envelope_db.cpu(), bm_in, coeffs, row_lens)
        if bm_out is None:
            return out.to(envelope_db.device), None
        return out.to(envelope_db.device), bm_out.to(envelope_db.device)
    out = torch.clamp(_ihc_scan(envelope_db, coeffs), min=0)
    if basilar_membrane is None:
        return out, None
    small = 1e-30
    gain = (out + small) / (envelope_db + small)
    return out, gain * basilar_membrane

