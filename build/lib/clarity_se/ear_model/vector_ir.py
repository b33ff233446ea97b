"""LLVM vector code for the per-sample recursions: several bands per instruction.

The ear model's recursions (gammatone filters, ...) are sequential in time but independent
across bands.  numba compiles them one band at a time with scalar instructions: LLVM's loop
vectoriser gives up on the time-major band-inner form ("too many memory checks") and numba
leaves the SLP vectoriser off.  So the kernels that matter are written here as numba
intrinsics that emit LLVM IR on ``<LANES x double>`` vectors directly: each lane is one band,
each vector operation is the same IEEE-754 operation the scalar kernel does (no fused
multiply-add, no reassociation), so the results are bit-identical to the scalar code on any
CPU; on AVX-512 one instruction serves eight bands.

Helpers (all take an ``llvmlite.ir.IRBuilder``):

``load_vector(builder, ptr, offset)`` -- ``LANES`` consecutive doubles.
``broadcast(builder, value)`` -- a double in every lane.
``vector_sqrt(builder)`` -- the ``llvm.sqrt`` of a vector (correctly rounded, as ``np.sqrt``).
``transpose(builder, rows)`` -- ``LANES x LANES`` transpose (``rows[i][j] -> out[j][i]``).
``store_columns(builder, ptr, columns, row_offset, row_stride, start)`` -- lane ``l``'s
``LANES`` consecutive samples to ``ptr[row_offset + l * row_stride + start : ... + LANES]``.
``store_lanes(builder, ptr, vector, row_offset, row_stride, n)`` -- one sample per lane.
``block_loops(builder, npts, block, single)`` -- ``block(start)`` for each whole block of
``LANES`` samples (tile loads/stores), then ``single(n)`` for each remaining sample.
``load_columns(builder, ptr, row_offset, row_stride, start)`` / ``load_lanes(...)`` -- the
inverse: ``LANES`` samples of every lane as one vector per sample (tile load + transpose), or
one sample per lane.

Loads widen float32 to float64; stores narrow to the pointer's element type.

References
----------
LLVM Language Reference Manual, "Vector Type", "shufflevector", "llvm.sqrt.*" intrinsics;
numba documentation, "Low-level extension API: @intrinsic".
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils

__all__ = [
    "LANES",
    "block_loops",
    "broadcast",
    "load_columns",
    "load_lanes",
    "load_vector",
    "store_columns",
    "store_lanes",
    "transpose",
    "vector_sqrt",
]

#: Bands per vector (eight doubles: one AVX-512 register, two AVX2 registers).
LANES = 8

DOUBLE = ir.DoubleType()
VECTOR = ir.VectorType(DOUBLE, LANES)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


def _mask(indices) -> ir.Constant:
    return ir.Constant(ir.VectorType(_I32, len(indices)), list(indices))


def load_vector(builder: ir.IRBuilder, ptr, offset) -> ir.Value:
    """``LANES`` consecutive float64 values at ``ptr + offset`` (an i64 value)."""
    address = builder.bitcast(builder.gep(ptr, [offset]), VECTOR.as_pointer())
    return builder.load(address, align=8)


def broadcast(builder: ir.IRBuilder, value) -> ir.Value:
    """A float64 ``value`` in every lane."""
    vec = builder.insert_element(ir.Constant(VECTOR, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(vec, ir.Constant(VECTOR, ir.Undefined), _mask([0] * LANES))


def vector_sqrt(builder: ir.IRBuilder) -> ir.Function:
    """The ``llvm.sqrt`` intrinsic for ``<LANES x double>`` (IEEE correctly rounded)."""
    fnty = ir.FunctionType(VECTOR, [VECTOR])
    return cgutils.get_or_insert_function(builder.module, fnty, f"llvm.sqrt.v{LANES}f64")


def transpose(builder: ir.IRBuilder, rows: list) -> list:
    """Transpose ``LANES`` vectors of ``LANES`` lanes with two-input shuffles.

    Stage ``s`` (1, 2, 4) swaps element ``(i, j)`` with ``(i ^ s, j ^ s)`` where bit ``s`` of
    ``i`` is clear and that of ``j`` set; after all stages ``(i, j)`` sits at ``(j, i)``.
    ``3 x LANES`` shuffles instead of ``LANES**2`` scalar extracts.
    """
    v = list(rows)
    s = 1
    while s < LANES:
        for i in range(LANES):
            if i & s:
                continue
            a, b = v[i], v[i | s]
            low = [j if not j & s else LANES + (j ^ s) for j in range(LANES)]
            high = [(j ^ s) if not j & s else LANES + j for j in range(LANES)]
            v[i] = builder.shuffle_vector(a, b, _mask(low))
            v[i | s] = builder.shuffle_vector(a, b, _mask(high))
        s <<= 1
    return v


def _row_start(builder, row_offset, row_stride, lane: int):
    return builder.add(row_offset, builder.mul(ir.Constant(_I64, lane), row_stride))


def store_columns(builder: ir.IRBuilder, ptr, columns: list, row_offset, row_stride, start):
    """Store ``columns[l]`` (``LANES`` samples of lane ``l``) at row ``l``, samples ``start...``."""
    elem = ptr.type.pointee
    for lane, col in enumerate(columns):
        if elem != DOUBLE:
            col = builder.fptrunc(col, ir.VectorType(elem, LANES))
        index = builder.add(_row_start(builder, row_offset, row_stride, lane), start)
        vector_type = ir.VectorType(elem, LANES)
        address = builder.bitcast(builder.gep(ptr, [index]), vector_type.as_pointer())
        builder.store(col, address, align=4 if elem != DOUBLE else 8)


def store_lanes(builder: ir.IRBuilder, ptr, vector, row_offset, row_stride, n):
    """Store lane ``l`` of ``vector`` at ``ptr[row_offset + l * row_stride + n]``."""
    elem = ptr.type.pointee
    for lane in range(LANES):
        value = builder.extract_element(vector, ir.Constant(_I32, lane))
        if elem != DOUBLE:
            value = builder.fptrunc(value, elem)
        index = builder.add(_row_start(builder, row_offset, row_stride, lane), n)
        builder.store(value, builder.gep(ptr, [index]))


def load_columns(builder: ir.IRBuilder, ptr, row_offset, row_stride, start) -> list:
    """Samples ``start ... start + LANES - 1`` of rows ``0 ... LANES - 1``, one vector per sample.

    Row ``l`` starts at ``ptr[row_offset + l * row_stride]``; float32 is widened to float64.
    """
    elem = ptr.type.pointee
    rows = []
    for lane in range(LANES):
        index = builder.add(_row_start(builder, row_offset, row_stride, lane), start)
        vector_type = ir.VectorType(elem, LANES)
        address = builder.bitcast(builder.gep(ptr, [index]), vector_type.as_pointer())
        row = builder.load(address, align=4 if elem != DOUBLE else 8)
        rows.append(row if elem == DOUBLE else builder.fpext(row, VECTOR))
    return transpose(builder, rows)


def load_lanes(builder: ir.IRBuilder, ptr, row_offset, row_stride, n) -> ir.Value:
    """Sample ``n`` of rows ``0 ... LANES - 1`` as one float64 vector."""
    elem = ptr.type.pointee
    vector = ir.Constant(VECTOR, ir.Undefined)
    for lane in range(LANES):
        index = builder.add(_row_start(builder, row_offset, row_stride, lane), n)
        value = builder.load(builder.gep(ptr, [index]))
        if elem != DOUBLE:
            value = builder.fpext(value, DOUBLE)
        vector = builder.insert_element(vector, value, ir.Constant(_I32, lane))
    return vector


def block_loops(builder: ir.IRBuilder, npts, block, single) -> None:
    """Emit ``block(start)`` for ``start = 0, LANES, ...`` over the whole blocks of ``npts``
    samples, then ``single(n)`` for each of the ``npts % LANES`` remaining ones (i64 values)."""
    lanes = ir.Constant(_I64, LANES)
    n_blocks = builder.sdiv(npts, lanes)
    with cgutils.for_range(builder, n_blocks) as loop:
        block(builder.mul(loop.index, lanes))
    done = builder.mul(n_blocks, lanes)
    with cgutils.for_range(builder, builder.sub(npts, done)) as loop:
        single(builder.add(done, loop.index))
