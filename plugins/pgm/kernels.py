"""Compiled inner loops of mirror descent on a junction tree (numba).

One iteration of mirror descent on a model of a few thousand cells is a few dozen passes over
small arrays; in numpy each pass is a call whose overhead (1-3 microseconds) outweighs its
work, and a broadcast over a strided table costs several times a contiguous pass. Here each
step of an iteration is one compiled call over flat arrays:

- `exponentiate`: every node's table of probabilities, exp(phi - max phi) per node;
- `propose`: the next iterate in probability space, the current tables times exp(-a g) on
  the measured cells (one exponential per measured cell instead of one per model cell);
- `calibrate`: message passing (collect, then distribute) on the node tables;
- `project`: the measured marginals of the calibrated node marginals;
- `lift`: a vector on the measured cells added into the node tables (`project`'s transpose);
- `evaluate`: `calibrate`, `project` and the loss, what an iteration needs after its step;
- `descend`: a block of Armijo steps, each `propose` (or an exact log-space step) then
  `evaluate`, with the acceptance test and step-size update, in one call;
- `junction_cells`: the cells of a model graph's junction tree (the model-size check).

Every one of them is made of two moves between a table and its marginal on some of its axes
(C order, the marginal's axes in the table's order): summing the table onto the marginal
(`_reduce`) and multiplying (or adding) the marginal into the table (`_broadcast`). A
`Plans` entry describes one such pair by the table's axes merged into runs of kept and
dropped axes: the last two runs are looped over directly (contiguous), the runs before them
through a small map from each outer row to its marginal cells. Array indices are cast to
unsigned (`_u`) so that numba emits no negative-index wrap-around, which would keep LLVM from
vectorising these loops.

Compiled on first use and cached on disk beside this module (numba's `cache=True`), so only
the first import after installation pays the compilation (about 35 s on 2 cores;
`estimation.load_kernels` makes that first use happen at import).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

_JIT: Any = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": {"reassoc"}}

#: `propose` declines a step (the caller computes it from the log-potentials instead) when a
#: measured cell's factor, relative to its clique's largest, falls below exp(-FACTOR_RANGE),
#: or a node's largest cell below NODE_FLOOR: products of factors could then underflow.
FACTOR_RANGE = 300.0
NODE_FLOOR = 1e-200


class Plans:
    """Reductions of tables onto marginals, as flat arrays for the kernels.

    Entry q (added by `add`): the table's axes are merged into runs; `inner[q]` says whether
    the last run is kept (0) or dropped (1), `width[q]` is the length of the run before it and
    `length[q]` of the last; the runs before those two form `rows[q]` outer rows, the r-th of
    which lands at marginal cell `outer[outer_at[q] + r]` times the kept cells of the last two
    runs.
    """

    def __init__(self) -> None:
        self._inner: list[int] = []
        self._width: list[int] = []
        self._length: list[int] = []
        self._rows: list[int] = []
        self._outer_at: list[int] = []
        self._outer: list[np.ndarray] = []
        self._used = 0

    def add(self, shape: Sequence[int], kept: Sequence[int]) -> int:
        """A plan for summing a table of `shape` onto its axes `kept` (ascending); its index."""
        inner, width, length, cells = _plan(tuple(shape), tuple(kept))
        self._inner.append(inner)
        self._width.append(width)
        self._length.append(length)
        self._rows.append(int(cells.size))
        self._outer_at.append(self._used)
        self._outer.append(cells)
        self._used += int(cells.size)
        return len(self._inner) - 1

    def arrays(self) -> tuple[np.ndarray, ...]:
        """(inner, width, length, rows, outer_at, outer), as the kernels take them."""
        outer = np.concatenate(self._outer) if self._outer else np.zeros(0, dtype=np.int64)
        return tuple(
            as_index(a)
            for a in (self._inner, self._width, self._length, self._rows, self._outer_at, outer)
        )


@functools.lru_cache(maxsize=4096)
def _plan(shape: tuple[int, ...], kept: tuple[int, ...]) -> tuple[int, int, int, np.ndarray]:
    """(inner, width, length, outer cells) of `Plans.add` (cached: the same tables and
    marginals recur in every round of an adaptive mechanism)."""
    runs: list[list[int]] = []  # [length, kept?]
    for axis, size in enumerate(shape):
        keep = int(axis in kept)
        if runs and runs[-1][1] == keep:
            runs[-1][0] *= size
        else:
            runs.append([size, keep])
    if len(runs) == 1:  # all kept or all dropped: a run of one in front
        runs.insert(0, [1, 1 - runs[0][1]])
    (width, _), (length, last_kept) = runs[-2], runs[-1]
    inner_kept = length if last_kept else width
    outer_shape = tuple(r[0] for r in runs[:-2])
    outer_kept = tuple(k for k, r in enumerate(runs[:-2]) if r[1])
    rows = math.prod(outer_shape)
    if outer_kept:
        grid = np.indices(outer_shape).reshape(len(outer_shape), rows)
        cells = np.ravel_multi_index(
            tuple(grid[k] for k in outer_kept), tuple(outer_shape[k] for k in outer_kept)
        )
    else:
        cells = np.zeros(rows, dtype=np.int64)
    cells = as_index(cells * inner_kept)
    cells.setflags(write=False)
    return (0 if last_kept else 1), width, length, cells


@numba.njit(inline="always", **_JIT)
def _entry(q, plans):  # pragma: no cover - compiled
    """Plan q as (last run kept?, width, length, marginal cell of each outer row)."""
    inner, width, length, rows, outer_at, outer = plans
    return inner[q] == 0, width[q], length[q], outer[outer_at[q] : outer_at[q] + rows[q]]


@numba.njit(inline="always", **_JIT)
def _u(k):  # pragma: no cover - compiled
    """An index as unsigned: numba then drops its negative-index wrap-around, whose branch
    keeps LLVM from vectorising the loops (every index here is non-negative)."""
    return numba.uint64(k)


@numba.njit(inline="always", **_JIT)
def _reduce(src, s0, dst, d0, q, plans):  # pragma: no cover - compiled
    """dst[d0:] += plan q's marginal of the table at src[s0:]."""
    kept, w, n, cells = _entry(q, plans)
    for r in range(cells.size):
        base = s0 + r * w * n
        t = d0 + cells[_u(r)]
        if kept:  # dst[t + i] += sum over j of src[base + j n + i]
            if n == 2:  # a short last run: one sum per kept cell, over the run before it
                a0 = 0.0
                a1 = 0.0
                for j in range(w):
                    a0 += src[_u(base + 2 * j)]
                    a1 += src[_u(base + 2 * j + 1)]
                dst[_u(t)] += a0
                dst[_u(t + 1)] += a1
            else:
                for j in range(w):
                    b = base + j * n
                    for i in range(n):
                        dst[_u(t + i)] += src[_u(b + i)]
        elif n == 2:  # dst[t + j] += sum over i of src[base + j n + i]
            for j in range(w):
                dst[_u(t + j)] += src[_u(base + 2 * j)] + src[_u(base + 2 * j + 1)]
        else:
            for j in range(w):
                b = base + j * n
                acc = 0.0
                for i in range(n):
                    acc += src[_u(b + i)]
                dst[_u(t + j)] += acc


@numba.njit(inline="always", **_JIT)
def _broadcast(src, s0, dst, d0, f, f0, add, q, plans):  # pragma: no cover - compiled
    """dst[d0 + k] = src[s0 + k] * f[f0 + cell(k)] (or + when `add`) over plan q's table, where
    cell(k) is the marginal cell of table cell k."""
    kept, w, n, cells = _entry(q, plans)
    for r in range(cells.size):
        a = s0 + r * w * n
        b = d0 + r * w * n
        t = f0 + cells[_u(r)]
        if kept and n == 2:  # a short last run, kept: two values a row
            v0 = f[_u(t)]
            v1 = f[_u(t + 1)]
            for j in range(w):
                dst[_u(b + 2 * j)] = _apply(src[_u(a + 2 * j)], v0, add)
                dst[_u(b + 2 * j + 1)] = _apply(src[_u(a + 2 * j + 1)], v1, add)
        elif kept:
            for j in range(w):
                for i in range(n):
                    dst[_u(b + j * n + i)] = _apply(src[_u(a + j * n + i)], f[_u(t + i)], add)
        else:
            for j in range(w):
                v = f[_u(t + j)]
                for i in range(n):
                    dst[_u(b + j * n + i)] = _apply(src[_u(a + j * n + i)], v, add)


@numba.njit(inline="always", **_JIT)
def _apply(x, v, add):  # pragma: no cover - compiled
    return x + v if add else x * v


@numba.njit(inline="always", **_JIT)
def _fold(work, out, terms, plans, add):  # pragma: no cover - compiled
    """The entries of `work` (a vector on the measured cells) into `out` (node tables), in
    reverse order: a nested entry into its container's segment of `work`, the others into
    their host's cells of `out`; added when `add`, else multiplied."""
    host_at, nested, measured_at, _measured_end = terms
    for j in range(host_at.size - 1, -1, -1):
        h = host_at[j]
        if nested[j]:
            _broadcast(work, h, work, h, work, measured_at[j], add, j, plans)
        else:
            _broadcast(out, h, out, h, work, measured_at[j], add, j, plans)


@numba.njit(**_JIT)
def exponentiate(phi, starts, sizes, probs):  # pragma: no cover - compiled
    """probs = exp(phi - max) node by node (a node whose maximum is not finite: shift 0)."""
    for i in range(starts.size):
        s = starts[i]
        e = s + sizes[i]
        top = -np.inf
        for k in range(s, e):
            if phi[_u(k)] > top:
                top = phi[_u(k)]
        if not np.isfinite(top):
            top = 0.0
        for k in range(s, e):
            probs[_u(k)] = math.exp(phi[_u(k)] - top)


@numba.njit(**_JIT)
def calibrate(probs, scratch, out, sent, buf, tree, plans, total, rescale):  # pragma: no cover
    """Node marginals `out` (counts summing to `total` in every component) of the node tables
    `probs` (each at most 1 a cell, left unchanged; `scratch` is overwritten).

    `tree` is (starts, sizes, child, parent, child_plan, parent_plan, sep_at, sep_size,
    roots): node k's cells are starts[k] : starts[k] + sizes[k]; collect edge e sends from
    child[e] to parent[e] by plans child_plan[e] and parent_plan[e] onto their separator,
    whose message lives in sent[sep_at[e] : sep_at[e] + sep_size[e]].

    Collect: each child's separator sums (rescaled to a maximum of 1 when `rescale`) multiply
    into its parent. Roots are scaled to `total`. Distribute: each child's marginal is its
    collected table times the ratio of its parent's separator marginal to the message it
    sent (0 where it sent 0).
    """
    starts, sizes, child, parent, child_plan, parent_plan, sep_at, sep_size, roots = tree
    for k in range(probs.size):
        scratch[_u(k)] = probs[_u(k)]
    for e in range(child.size):
        ss = sep_at[e]
        sz = sep_size[e]
        for t in range(ss, ss + sz):
            sent[_u(t)] = 0.0
        _reduce(scratch, starts[child[e]], sent, ss, child_plan[e], plans)
        p0 = starts[parent[e]]
        top = 0.0
        if rescale:
            for t in range(ss, ss + sz):
                top = max(top, sent[_u(t)])
        if top > 0.0:
            for t in range(sz):
                buf[_u(t)] = sent[_u(ss + t)] / top
            _broadcast(scratch, p0, scratch, p0, buf, 0, False, parent_plan[e], plans)
        else:
            _broadcast(scratch, p0, scratch, p0, sent, ss, False, parent_plan[e], plans)
    for r in roots:
        s = starts[r]
        e = s + sizes[r]
        mass = 0.0
        for k in range(s, e):
            mass += scratch[_u(k)]
        factor = total / mass if mass > 0.0 else 0.0
        for k in range(s, e):
            out[_u(k)] = scratch[_u(k)] * factor
    for e in range(child.size - 1, -1, -1):
        ss = sep_at[e]
        sz = sep_size[e]
        for t in range(sz):
            buf[_u(t)] = 0.0
        _reduce(out, starts[parent[e]], buf, 0, parent_plan[e], plans)
        for t in range(sz):
            raw = sent[_u(ss + t)]
            buf[_u(t)] = buf[_u(t)] / raw if raw > 0.0 else 0.0
        c0 = starts[child[e]]
        _broadcast(scratch, c0, out, c0, buf, 0, False, child_plan[e], plans)


@numba.njit(**_JIT)
def project(mu, m, terms, plans):  # pragma: no cover - compiled
    """m = the measured marginals of node marginals `mu`.

    `terms` is (host_at, nested, measured_at, measured_end): entry j (in order) is summed by
    plan j from the table at host_at[j] of `mu` or, when nested[j], of `m` itself (a measured
    marginal containing it, computed by an earlier entry), into
    m[measured_at[j] : measured_end[j]].
    """
    host_at, nested, measured_at, _measured_end = terms
    for t in range(m.size):
        m[_u(t)] = 0.0
    for j in range(host_at.size):
        if nested[j]:
            _reduce(m, host_at[j], m, measured_at[j], j, plans)
        else:
            _reduce(mu, host_at[j], m, measured_at[j], j, plans)


@numba.njit(**_JIT)
def lift(v, work, phi, terms, plans):  # pragma: no cover - compiled
    """phi += the transpose of `project` applied to `v` (a vector on the measured cells):
    entries in reverse order, a nested one added into its container's segment of `work` (a
    copy of `v`), the others into `phi`."""
    for t in range(v.size):
        work[_u(t)] = v[_u(t)]
    _fold(work, phi, terms, plans, True)


@numba.njit(**_JIT)
def propose(
    current, g, step, factors, new, starts, sizes, terms, plans, factor_range, node_floor
):  # pragma: no cover - compiled
    """new = current * exp(-step * lift(g)), renormalised to a maximum of 1 per node.

    exp(-step * g) is taken on the measured cells, shifted within each measured clique so
    that its largest factor is 1 (a constant per node, which the calibration's normalisation
    removes); in reverse order each entry's factors multiply into its container's (nested) or
    into its host node's cells. Returns False, leaving `new` unspecified, when a factor falls
    below exp(-factor_range) or a node's largest cell below `node_floor`: the step must then
    be taken from the log-potentials.
    """
    host_at, _nested, measured_at, measured_end = terms
    for j in range(host_at.size):
        lo = measured_at[j]
        hi = measured_end[j]
        top = -np.inf
        for t in range(lo, hi):
            f = -step * g[_u(t)]
            factors[_u(t)] = f
            top = max(top, f)
        for t in range(lo, hi):
            f = factors[_u(t)] - top
            if not f >= -factor_range:  # also catches NaN
                return False
            factors[_u(t)] = math.exp(f)
    for k in range(current.size):
        new[_u(k)] = current[_u(k)]
    _fold(factors, new, terms, plans, False)
    for i in range(starts.size):
        s = starts[i]
        e = s + sizes[i]
        top = 0.0
        for k in range(s, e):
            top = max(top, new[_u(k)])
        if not top >= node_floor:
            return False
        if top != 1.0:
            inv = 1.0 / top
            for k in range(s, e):
                new[_u(k)] *= inv
    return True


@numba.njit(**_JIT)
def score(m, y, precision, g, current_m, current_g):  # pragma: no cover - compiled
    """The loss 0.5 * sum(precision (m - y)^2) at measured marginals `m`, its gradient into
    `g`, and <current_g, current_m - m> (the decrease a step from the current iterate to `m`
    is expected to bring, per unit step)."""
    loss = 0.0
    lin = 0.0
    for t in range(m.size):
        diff = m[_u(t)] - y[_u(t)]
        gt = precision[_u(t)] * diff
        g[_u(t)] = gt
        loss += gt * diff
        lin += current_g[_u(t)] * (current_m[_u(t)] - m[_u(t)])
    return 0.5 * loss, lin


@numba.njit(**_JIT)
def evaluate(
    probs, scratch, mu, sent, buf, m, g, current_m, current_g, y, precision, tree, terms, plans,
    total, rescale,
):  # pragma: no cover - compiled
    """`calibrate` the node tables `probs` into `mu` (by the tree's plans, plans[0]),
    `project` them into `m` (by the measured cliques' plans, plans[1]) and `score` them
    (gradient into `g`): what an iteration needs after its step, in one call."""
    calibrate(probs, scratch, mu, sent, buf, tree, plans[0], total, rescale)
    project(mu, m, terms, plans[1])
    return score(m, y, precision, g, current_m, current_g)


@numba.njit(**_JIT)
def descend(
    probs, mu, m, g, current, loss, alpha, count, since_exact, travelled, phi0, phi, v, work,
    factors, scratch, sent, buf, y, precision, tree, terms, plans, total, rescale, exact_every,
    factor_range, node_floor, tally,
):  # pragma: no cover - compiled
    """`count` Armijo steps of mirror descent on a junction tree's node tables.

    The iterate is row `current` of `probs`, `mu`, `m` and `g` (node tables, node marginals,
    measured marginals, gradient); the other row holds the proposal. A step of size `alpha`
    is taken multiplicatively (`propose`) unless `exact_every` accepted steps have passed since
    the last exact one or `propose` declines; it is then taken from the log-potentials,
    phi0 - lift(travelled + alpha g). It is accepted when the loss falls by at least half its
    linearised decrease, alpha <g, m - m'>: then travelled += alpha g, the rows swap and alpha
    grows by 1.01; otherwise alpha halves. `tally` counts [steps, multiplicative proposals,
    declined ones]. Returns (current, loss, alpha, since_exact).
    """
    starts = tree[0]
    sizes = tree[1]
    for _ in range(count):
        c = current
        n = 1 - current
        exact = since_exact >= exact_every
        if not exact:
            tally[1] += 1
            if not propose(
                probs[c], g[c], alpha, factors, probs[n], starts, sizes, terms, plans[1],
                factor_range, node_floor,
            ):
                tally[2] += 1
                exact = True
        if exact:
            gc = g[c]
            for t in range(v.size):
                v[_u(t)] = -(travelled[_u(t)] + alpha * gc[_u(t)])
            for k in range(phi.size):
                phi[_u(k)] = phi0[_u(k)]
            lift(v, work, phi, terms, plans[1])
            exponentiate(phi, starts, sizes, probs[n])
        tally[0] += 1
        new_loss, lin = evaluate(
            probs[n], scratch, mu[n], sent, buf, m[n], g[n], m[c], g[c], y, precision, tree,
            terms, plans, total, rescale,
        )
        if loss - new_loss >= 0.5 * alpha * lin:
            gc = g[c]
            for t in range(travelled.size):
                travelled[_u(t)] += alpha * gc[_u(t)]
            current = n
            loss = new_loss
            since_exact = 0 if exact else since_exact + 1
            alpha = alpha * 1.01
        else:
            alpha = alpha * 0.5
    return current, loss, alpha, since_exact


#: `junction_cells` saturates here: a count this large means "at least this many cells".
CELLS_CAP = 1 << 62


@numba.njit(inline="always", **_JIT)
def _cells(mask, sizes):  # pragma: no cover - compiled
    """Cells of the columns in bit mask `mask` (saturating at CELLS_CAP)."""
    out = 1
    for j in range(sizes.size):
        if mask >> j & 1:
            s = sizes[j]
            out = CELLS_CAP if out > CELLS_CAP // s else out * s
    return out


@numba.njit(**_JIT)
def junction_cells(adj, present, sizes):  # pragma: no cover - compiled
    """Cells of the junction tree of a model graph on at most 62 columns, as
    `domain.JunctionTreeSizer.cells_of_graph` (`adj[j]` the bit mask of column j's
    neighbours, overwritten; `present` the mask of the columns in the model). Counts
    saturate at CELLS_CAP: any count that reaches it is returned as CELLS_CAP."""
    d = sizes.size
    edges = 0
    for j in range(d):
        a = adj[j]
        while a:
            a &= a - 1
            edges += 1
    edges //= 2
    if edges > 0 and edges == d - 1:
        seen = 1
        frontier = 1
        while frontier:
            nxt = 0
            for j in range(d):
                if frontier >> j & 1:
                    nxt |= adj[j]
            frontier = nxt & ~seen
            seen |= nxt
        if seen == (1 << d) - 1:  # a tree: its own junction tree
            total = 0
            for i in range(d):
                for j in range(i + 1, d):
                    if adj[i] >> j & 1:
                        total = min(CELLS_CAP, total + _cells((1 << i) | (1 << j), sizes))
            return total
    cost = np.ones(d, dtype=np.int64)
    for j in range(d):
        if present >> j & 1:
            cost[j] = _cells(adj[j] | 1 << j, sizes)
    alive = np.ones(d, dtype=np.bool_)
    blocks = np.zeros(d, dtype=np.int64)
    for step in range(d):
        v = -1
        for j in range(d):  # the cheapest; ties to the first in domain order
            if alive[j] and (v < 0 or cost[j] < cost[v]):
                v = j
        alive[v] = False
        nbrs = adj[v]
        blocks[step] = nbrs | 1 << v
        for j in range(d):
            if nbrs >> j & 1:
                adj[j] = (adj[j] | nbrs) & ~(1 << j) & ~(1 << v)
                cost[j] = _cells(adj[j] | 1 << j, sizes)
    total = 0
    for i in range(d):
        b = blocks[i]
        keep = True
        for k in range(d):
            o = blocks[k]
            if (o == b and k < i) or (o != b and b & o == b):
                keep = False  # a repeat, or inside a larger block
                break
        if keep:
            total = min(CELLS_CAP, total + _cells(b, sizes))
    return total


def as_index(values: np.ndarray | Sequence[int]) -> np.ndarray:
    """An index map as the kernels take it (int64, contiguous)."""
    return np.ascontiguousarray(np.asarray(values, dtype=np.int64))


def terms(
    host_at: Sequence[int],
    measured_at: Sequence[int],
    measured_end: Sequence[int],
    nested: Sequence[int] | None = None,
) -> tuple[np.ndarray, ...]:
    """The `terms` of `project`, `lift` and `propose`: entry j reads the table at host_at[j]
    (of the node tables, or of the measured cells when nested[j]; none nested by default)
    into measured cells measured_at[j] : measured_end[j]."""
    flags = [0] * len(host_at) if nested is None else nested
    return tuple(as_index(a) for a in (host_at, flags, measured_at, measured_end))


def _initialise() -> None:
    """Call one kernel on a table of one cell. numba's first call in a process sets up its
    compiler and typing machinery (about 0.4 s on a 2-core machine, whatever the kernel);
    done here, it is paid where the imports of numba, JAX and mbi are, not inside the first
    fit."""
    one = as_index([1])
    exponentiate(np.zeros(1), as_index([0]), one, np.empty(1))


_initialise()
