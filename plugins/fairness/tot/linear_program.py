"""The sparse linear program of optimized pre-processing (Calmon et al. 2017) and its pieces."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph

from .solvers import LinearProgram

Constraint = Literal["difference", "ratio"]


@dataclass(frozen=True)
class Cells:
    """The empirical distribution p(d, x, y) of a table, on its non-empty cells only.

    A row of the program is a non-empty (d, x, y) cell; a source is a non-empty (x, y) cell.
    Cells are mixed-radix indices over the schema's domain sizes (X columns, then Y last).

    Attributes:
        row_key: (R,) sorted keys group * n_cells + cell of the non-empty (d, x, y) cells.
        row_group: (R,) group (joint protected value) index of each row.
        row_src: (R,) index into the sources of each row's (x, y) cell.
        row_mass: (R,) p(d, x, y).
        source_cell: (S,) sorted cell indices of the non-empty (x, y) cells.
        source_codes: (S, m) their codes.
        source_mass: (S,) p(x, y).
        groups: (K,) sorted indices of the non-empty groups.
        group_mass: (K,) p(d).
        row_gpos: (R,) position of each row's group in `groups`.
        label_marginal: (L,) p(y) over the label's whole domain.
        n_cells: number of (x, y) cells of the domain.
    """

    row_key: np.ndarray
    row_group: np.ndarray
    row_src: np.ndarray
    row_mass: np.ndarray
    source_cell: np.ndarray
    source_codes: np.ndarray
    source_mass: np.ndarray
    groups: np.ndarray
    group_mass: np.ndarray
    row_gpos: np.ndarray
    label_marginal: np.ndarray
    n_cells: int

    @classmethod
    def from_codes(cls, group: np.ndarray, cell: np.ndarray, sizes: tuple[int, ...]) -> Cells:
        """Summarise a table given each record's group index and (x, y) cell index."""
        n_cells = math.prod(sizes)
        key = group.astype(np.int64) * n_cells + cell
        row_key, counts = np.unique(key, return_counts=True)
        n = float(len(key))
        row_group, row_cell = np.divmod(row_key, n_cells)
        row_mass = counts / n
        source_cell, row_src = np.unique(row_cell, return_inverse=True)
        source_mass = np.bincount(row_src, weights=row_mass)
        groups, row_gpos = np.unique(row_group, return_inverse=True)
        group_mass = np.bincount(row_gpos, weights=row_mass)
        source_codes = np.stack(np.unravel_index(source_cell, sizes), axis=1).astype(np.int64)
        labels = cell % sizes[-1]
        label_marginal = np.bincount(labels, minlength=sizes[-1]) / n
        return cls(
            row_key,
            row_group,
            row_src.astype(np.int64),
            row_mass,
            source_cell,
            source_codes,
            source_mass,
            groups,
            group_mass,
            row_gpos.astype(np.int64),
            label_marginal,
            n_cells,
        )


@dataclass(frozen=True)
class Targets:
    """The allowed moves of every source cell, as CSR over sources.

    Attributes:
        ptr: (S + 1,) moves of source s are ptr[s]:ptr[s + 1].
        cell: (E,) target cell index.
        label: (E,) target label code.
        cost: (E,) distortion of the move.
    """

    ptr: np.ndarray
    cell: np.ndarray
    label: np.ndarray
    cost: np.ndarray

    @classmethod
    def build(
        cls,
        cells: Cells,
        src: np.ndarray,
        codes: np.ndarray,
        cost: np.ndarray,
        sizes: tuple[int, ...],
        *,
        prune: bool = True,
    ) -> Targets:
        """CSR of the moves `src` -> `codes` with `cost`, optionally without dominated moves.

        A move to a cell with no mass is dominated when the same source can move, at no
        greater cost, to a cell with mass and the same label: both count alike for
        discrimination and distortion, and mass arriving where p = 0 only adds to the total
        variation while mass arriving at a cell with mass never does. Dropping dominated moves
        leaves the optimum unchanged.
        """
        order = np.argsort(src, kind="stable")
        src, codes, cost = src[order], codes[order], cost[order]
        cell = np.ravel_multi_index(codes.T, sizes).astype(np.int64)
        label = codes[:, -1].astype(np.int64)
        if prune and len(cell):
            L = sizes[-1]
            pos = np.minimum(np.searchsorted(cells.source_cell, cell), len(cells.source_cell) - 1)
            observed = cells.source_cell[pos] == cell
            best = np.full(len(cells.source_cell) * L, np.inf)
            np.minimum.at(best, src[observed] * L + label[observed], cost[observed])
            keep = observed | (cost < best[src * L + label])
            src, cell, label, cost = src[keep], cell[keep], label[keep], cost[keep]
        deg = np.bincount(src, minlength=len(cells.source_cell))
        return cls(np.concatenate(([0], np.cumsum(deg))), cell, label, cost)


@dataclass(frozen=True)
class Layout:
    """Where things are in a program built by `TotProgram.lp`.

    Attributes:
        n_core: number of model variables (they come first; see `TotProgram`).
        families: constraint family -> slice of program rows.
    """

    n_core: int
    families: dict[str, slice]


@dataclass(frozen=True)
class CentringProgram:
    """The per-cell program of `TotProgram.centring_program`: min c'z s.t. A z = b, z >= 0
    except the columns in `free`.

    Columns: the map P (V), u and w per cell (C each), one slack per inequality (the
    discrimination rows first, then the excess-distortion rows), g = Q(y | d) (K * L, free).
    Rows: P's rows sum to one (R), one balance per cell (C), g = Q P (K * L), the inequalities.

    Attributes:
        A, b, c, free: the program.
        weight: (C,) a_c, the scale of cell c's balance row (its mass, or for a cell without
            mass the largest mass that can reach it).
        observed: (S,) position among the C cells of each source cell.
        source, target: (V,) position among the C cells of each map entry's source and target.
        n_disc: number of discrimination inequalities.
        first_inequality: row of the first inequality (the discrimination ones come first).
        first_free: column of the first free column (g; the free columns come last).
    """

    A: sp.csr_matrix
    b: np.ndarray
    c: np.ndarray
    free: np.ndarray
    weight: np.ndarray
    observed: np.ndarray
    source: np.ndarray
    target: np.ndarray
    n_disc: int
    first_inequality: int
    first_free: int

    @property
    def n_cells(self) -> int:
        return len(self.weight)


def _csr(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    return sp.csr_matrix((vals, (rows, cols)), shape=shape)


@dataclass(frozen=True)
class _Core:
    """A formulation's model variables z and the linear pieces every program needs.

    mapping: rows with bounds (validity of the map); fidelity: (S, nz) with q_c / p_c = F z;
    Qz, q0: Q(y | d) = Qz z + q0 (rows group-major, K * L); dist: per binding threshold, the
    excess-distortion rows (bounded by its delta).
    """

    lower: np.ndarray
    upper: np.ndarray
    mapping: sp.csr_matrix
    map_lower: np.ndarray
    map_upper: np.ndarray
    fidelity: sp.csr_matrix
    Qz: sp.csr_matrix
    q0: np.ndarray
    dist: list[sp.csr_matrix]


class TotProgram:
    """The LP of optimized pre-processing on the non-empty cells only.

    The map P(x', y' | d, x, y) has one entry per non-empty (d, x, y) and allowed move; a
    move whose cost reaches a threshold with bound 0 has no entry at all. The program is
    (Calmon et al. 2017, Sec. 3, with AIF360's choices):

    - objective, total variation: TV(p_XY, q_XY) = sum_{c: p_c > 0} (p_c - q_c)^+, exact
      because p and q both sum to one (one slack per non-empty (x, y));
    - discrimination, Q(y | d) = sum_{x, y} p(d, x, y) P(y | d, x, y) / p(d):
      "difference" (AIF360's form): max_d Q(y | d) - min_d Q(y | d) <= eta for every y
      (equivalent to the pairwise bounds, with lo_y, hi_y variables);
      "ratio" (Calmon et al. 2017, eq. 3): |Q(y | d) / p(y) - 1| <= eta;
    - excess distortion (eq. 5): for each threshold c_k with 0 < delta_k < 1, averaged over
      groups (AIF360's form): sum_d p(d | x, y) P(cost >= c_k | d, x, y) <= delta_k for every
      (x, y), or per group: P(cost >= c_k | d, x, y) <= delta_k for every (d, x, y).

    Two exact formulations. "full": z = P itself. "aggregated" (averaged distortion only):
    z = (Pbar(x', y' | x, y), P(y' | d, x, y) for y' < L - 1), the group-averaged map and each
    group's label law; fidelity and distortion depend on P only through Pbar, discrimination
    only through the label laws, and any pair that agrees on p(y' | x, y) is realised by
    P(t | d, x, y) = P(y_t | d, x, y) Pbar(t | x, y) / Pbar(y_t | x, y). It has about half
    the variables.

    Args:
        cells: the table's distribution.
        targets: allowed moves per source cell.
        constraint: "difference" or "ratio".
        thresholds: c_k of the bounds that need rows (0 < delta_k < 1).
        bounds: the matching delta_k.
        per_group: bound excess distortion per (d, x, y) instead of averaged over d.
        aggregate: use the aggregated formulation (default: whenever `per_group` is False).
    """

    def __init__(
        self,
        cells: Cells,
        targets: Targets,
        constraint: Constraint,
        thresholds: tuple[float, ...],
        bounds: tuple[float, ...],
        per_group: bool,
        aggregate: bool | None = None,
    ) -> None:
        self.cells = cells
        self.targets = targets
        self.constraint = constraint
        self.thresholds = thresholds
        self.bounds = bounds
        self.per_group = per_group
        self.aggregate = (not per_group) if aggregate is None else bool(aggregate)
        if self.aggregate and per_group:
            raise ValueError("the aggregated formulation bounds averaged distortion only")
        c, t = cells, targets
        self.R, self.S = len(c.row_key), len(c.source_cell)
        self.K, self.L = len(c.groups), len(c.label_marginal)
        # The map's entries: row r's moves are those of its source cell.
        deg = np.diff(t.ptr)
        counts = deg[c.row_src]
        self.V = int(counts.sum())
        self.row_ptr = np.concatenate(([0], np.cumsum(counts)))
        self.var_row = np.repeat(np.arange(self.R), counts)
        within = np.arange(self.V) - self.row_ptr[:-1][self.var_row]
        self.var_move = t.ptr[c.row_src][self.var_row] + within
        # Q(y | d) of a map P: rows group-major (k * L + y).
        vr, vm = self.var_row, self.var_move
        self.Q = _csr(
            c.row_gpos[vr] * self.L + t.label[vm],
            np.arange(self.V),
            c.row_mass[vr] / c.group_mass[c.row_gpos[vr]],
            (self.K * self.L, self.V),
        )
        self.D = [self._dist_rows(thr) for thr in thresholds]
        self.core = self._aggregated() if self.aggregate else self._full()

    # -- formulations ----------------------------------------------------------------------------

    def _fidelity(
        self, move_src: np.ndarray, move: np.ndarray, weight: np.ndarray, nz: int
    ) -> sp.csr_matrix:
        """(S, nz): q_c / p_c for observed c, from variables `move` weighted by `weight`."""
        c = self.cells
        tcell = self.targets.cell[move]
        pos = np.minimum(np.searchsorted(c.source_cell, tcell), self.S - 1)
        hit = c.source_cell[pos] == tcell
        vals = weight[hit] / c.source_mass[pos[hit]]
        return _csr(pos[hit], np.flatnonzero(hit), vals, (self.S, nz))

    def _dist_rows(self, thr: float) -> sp.csr_matrix:
        """Excess-distortion rows of a map P for threshold `thr` (empty rows dropped)."""
        c, t = self.cells, self.targets
        vr, vm = self.var_row, self.var_move
        sel = t.cost[vm] >= thr
        if self.per_group:
            rows, vals = vr[sel], np.ones(int(sel.sum()))
        else:
            rows = c.row_src[vr[sel]]
            vals = (c.row_mass / c.source_mass[c.row_src])[vr[sel]]
        _, rows = np.unique(rows, return_inverse=True)
        return _csr(rows, np.flatnonzero(sel), vals, (int(rows.max(initial=-1)) + 1, self.V))

    def _full(self) -> _Core:
        c, V, R = self.cells, self.V, self.R
        mapping = _csr(self.var_row, np.arange(V), np.ones(V), (R, V))
        fid = self._fidelity(self.var_row, self.var_move, c.row_mass[self.var_row], V)
        return _Core(
            np.zeros(V),
            np.full(V, np.inf),
            mapping,
            np.ones(R),
            np.ones(R),
            fid,
            self.Q,
            np.zeros(self.K * self.L),
            self.D,
        )

    def _aggregated(self) -> _Core:
        c, t = self.cells, self.targets
        S, R, K, L = self.S, self.R, self.K, self.L
        E = len(t.cell)
        Lm = L - 1
        nz = E + R * Lm
        e_src = np.repeat(np.arange(S), np.diff(t.ptr))
        # z = [Pbar(e | s) for every move e; P(y | r) for y < L - 1, row-major].
        lab = lambda r, y: E + r * Lm + y  # noqa: E731
        blocks_r, blocks_c, blocks_v = [], [], []
        # Pbar rows sum to one (S rows).
        blocks_r.append(e_src)
        blocks_c.append(np.arange(E))
        blocks_v.append(np.ones(E))
        # Coupling, y < L - 1: sum_{e: y_e = y} Pbar(e | s) = sum_d p(d | s) P(y | d, s).
        ey = t.label < Lm
        blocks_r.append(S + e_src[ey] * Lm + t.label[ey])
        blocks_c.append(np.flatnonzero(ey))
        blocks_v.append(np.ones(int(ey.sum())))
        r_all = np.repeat(np.arange(R), Lm)
        y_all = np.tile(np.arange(Lm), R)
        blocks_r.append(S + c.row_src[r_all] * Lm + y_all)
        blocks_c.append(lab(r_all, y_all))
        blocks_v.append(-(c.row_mass / c.source_mass[c.row_src])[r_all])
        n_rows = S + S * Lm
        lo = [np.ones(S), np.zeros(S * Lm)]
        hi = [np.ones(S), np.zeros(S * Lm)]
        if L > 2:  # label laws: sum_{y < L-1} P(y | r) <= 1
            blocks_r.append(n_rows + r_all)
            blocks_c.append(lab(r_all, y_all))
            blocks_v.append(np.ones(R * Lm))
            lo.append(np.full(R, -np.inf))
            hi.append(np.ones(R))
            n_rows += R
        mapping = _csr(
            np.concatenate(blocks_r),
            np.concatenate(blocks_c),
            np.concatenate(blocks_v),
            (n_rows, nz),
        )
        fid = self._fidelity(e_src, np.arange(E), c.source_mass[e_src], nz)
        # Q(y | d) = sum_r p(r) / p(d) P(y | r); the last label is one minus the others.
        w = (c.row_mass / c.group_mass[c.row_gpos])[r_all]
        g = c.row_gpos[r_all]
        rows = np.concatenate((g * L + y_all, g * L + Lm))
        cols = np.concatenate((lab(r_all, y_all), lab(r_all, y_all)))
        vals = np.concatenate((w, -w))
        Qz = _csr(rows, cols, vals, (K * L, nz))
        q0 = np.zeros(K * L)
        q0[Lm::L] = 1.0
        dist = []
        for thr in self.thresholds:
            sel = t.cost >= thr
            _, rws = np.unique(e_src[sel], return_inverse=True)
            dist.append(
                _csr(
                    rws,
                    np.flatnonzero(sel),
                    np.ones(int(sel.sum())),
                    (int(rws.max(initial=-1)) + 1, nz),
                )
            )
        upper = np.concatenate((np.full(E, np.inf), np.ones(R * Lm)))
        return _Core(
            np.zeros(nz), upper, mapping, np.concatenate(lo), np.concatenate(hi), fid, Qz, q0, dist
        )

    # -- the program -----------------------------------------------------------------------------

    def lp(self, eta: float | None, *, distortion: bool = True) -> tuple[LinearProgram, Layout]:
        """The program for a fixed `eta` (minimise TV), or, with `eta=None`, the program that
        minimises the discrimination bound itself (the smallest feasible eta).

        Args:
            eta: the discrimination bound, or None to minimise it.
            distortion: include the excess-distortion rows (moves with bound 0 are always
                excluded).
        """
        core, c = self.core, self.cells
        nz, S, L, KL = core.mapping.shape[1], self.S, self.L, self.K * self.L
        diff = self.constraint == "difference"
        minimize = eta is None
        # Columns: z | fidelity slacks (S) | lo (L), hi (L) if difference | t if minimising.
        n_lohi = 2 * L if diff else 0
        i_s, i_lo, i_hi = nz, nz + S, nz + S + L
        i_t = nz + S + n_lohi
        n = i_t + (1 if minimize else 0)
        blocks: list[sp.csr_matrix] = []
        lower: list[np.ndarray] = []
        upper: list[np.ndarray] = []
        families: dict[str, slice] = {}
        top = 0
        inf = np.inf

        def add(name: str, A: sp.spmatrix, lo: np.ndarray, hi: np.ndarray) -> None:
            nonlocal top
            A = sp.csr_matrix(A)
            if A.shape[1] < n:
                A = sp.hstack([A, sp.csr_matrix((A.shape[0], n - A.shape[1]))], format="csr")
            blocks.append(A)
            lower.append(np.asarray(lo, dtype=np.float64))
            upper.append(np.asarray(hi, dtype=np.float64))
            families[name] = slice(top, top + A.shape[0])
            top += A.shape[0]

        def cols(idx: np.ndarray, vals: np.ndarray, m: int) -> sp.csr_matrix:
            """(m, n) with one entry per row i at column idx[i]."""
            return _csr(np.arange(m), idx, vals, (m, n))

        add("mapping", core.mapping, core.map_lower, core.map_upper)
        # Fidelity, scaled by 1 / p_c: slack_c + q_c / p_c >= 1; slack_c costs p_c.
        add("fidelity", sp.hstack([core.fidelity, sp.eye(S, n - nz)]), np.ones(S), np.full(S, inf))
        Qn = sp.hstack([core.Qz, sp.csr_matrix((KL, n - nz))], format="csr")
        ylab = np.tile(np.arange(L), self.K)
        if diff:
            # lo_y <= Q(y | d) <= hi_y, hi_y - lo_y <= eta (or <= t).
            add(
                "discrimination",
                sp.vstack(
                    [
                        Qn - cols(i_hi + ylab, np.ones(KL), KL),
                        Qn - cols(i_lo + ylab, np.ones(KL), KL),
                    ]
                ),
                np.r_[np.full(KL, -inf), -core.q0],
                np.r_[-core.q0, np.full(KL, inf)],
            )
            gap = cols(i_hi + np.arange(L), np.ones(L), L) - cols(
                i_lo + np.arange(L), np.ones(L), L
            )
            if minimize:
                gap = gap - cols(np.full(L, i_t), np.ones(L), L)
            add(
                "discrimination gap",
                gap,
                np.full(L, -inf),
                np.zeros(L) if eta is None else np.full(L, float(eta)),
            )
        else:
            py = np.tile(c.label_marginal, self.K)
            if minimize:  # p(y)(1 - t) <= Q <= p(y)(1 + t)
                tcol = cols(np.full(KL, i_t), py, KL)
                add(
                    "discrimination",
                    sp.vstack([Qn - tcol, Qn + tcol]),
                    np.r_[np.full(KL, -inf), py - core.q0],
                    np.r_[py - core.q0, np.full(KL, inf)],
                )
            else:
                e = float(eta)  # type: ignore[arg-type]
                add("discrimination", Qn, py * (1 - e) - core.q0, py * (1 + e) - core.q0)
        if distortion:
            for thr, delta, Dk in zip(self.thresholds, self.bounds, core.dist, strict=True):
                add(
                    f"excess distortion (cost >= {thr:g}, bound {delta:g})",
                    Dk,
                    np.full(Dk.shape[0], -inf),
                    np.full(Dk.shape[0], delta),
                )
        A = sp.vstack(blocks, format="csc")
        cost = np.zeros(n)
        if minimize:
            cost[i_t] = 1.0
        else:
            cost[i_s : i_s + S] = c.source_mass
        col_lower = np.concatenate(
            (core.lower, np.zeros(S), np.full(n_lohi, -inf), np.zeros(n - i_t))
        )
        col_upper = np.concatenate((core.upper, np.full(n - nz, inf)))
        lp = LinearProgram(
            cost, A, np.concatenate(lower), np.concatenate(upper), col_lower, col_upper
        )
        return lp, Layout(nz, families)

    def seed_columns(self, n: int) -> np.ndarray:
        """Columns to start column generation from, as a mask over a program of `n` columns
        built by `lp`: every non-map column, and for each source and target label only the
        cheapest moves.

        Any feasible map stays feasible when each source's mass on a label is moved to that
        label's cheapest move (the labels, and so discrimination, are unchanged, and no cost
        grows), so the restricted program is feasible exactly when the full one is.
        """
        t, L = self.targets, self.L
        e_src = np.repeat(np.arange(self.S), np.diff(t.ptr))
        key = e_src * L + t.label
        best = np.full(self.S * L, np.inf)
        np.minimum.at(best, key, t.cost)
        cheapest = t.cost <= best[key]
        mask = np.ones(n, dtype=bool)
        if self.aggregate:
            mask[: len(t.cell)] = cheapest
        else:
            mask[: self.V] = cheapest[self.var_move]
        return mask

    # -- the centring program ---------------------------------------------------------------------

    def centring_program(self, eta: float) -> CentringProgram:
        """The per-cell program in standard form, min c'z s.t. A z = b, z >= 0 (except the free
        columns), whose optimal face is the set of optimal maps and whose analytic centre is
        the map TOT releases.

        z = [P (one entry per (d, x, y) row and allowed move) | u, w (per cell) | one slack per
        inequality | g = Q(y | d) for y < L - 1, free]. Rows: each row of P sums to one; per
        cell c of the sources and targets, (q_c - p_c) / a_c = u_c - w_c with a_c = p_c (or,
        for a cell without mass, the largest mass that can reach it), so TV = sum_c a_c (u_c +
        w_c) / 2 at an optimum; g = Q P; every inequality of the program as it is stated, on
        g and Q(L - 1 | d) = 1 - sum_y g: per pair of groups, label value and sign,
        +-(Q(y | d) - Q(y | d')) <= eta (difference) or, per group and label value, both sides
        of p(y)(1 - eta) <= Q(y | d) <= p(y)(1 + eta) (ratio); every excess-distortion bound.
        The barrier of the centre is then sum_e log P_e + sum_c log |q_c - p_c| + the log of
        each inequality's slack, the terms of Calmon et al.'s program written as AIF360 0.6.1's
        `OptTools` writes it (up to constants); g carries no barrier term.
        """
        c, t = self.cells, self.targets
        V, R, K, L = self.V, self.R, self.K, self.L
        tcell = t.cell[self.var_move]
        cells = np.union1d(c.source_cell, tcell)
        C = len(cells)
        tpos = np.searchsorted(cells, tcell)
        observed = np.searchsorted(cells, c.source_cell)
        mass = np.zeros(C)
        mass[observed] = c.source_mass
        reach = np.zeros(C)
        np.maximum.at(reach, tpos, c.row_mass[self.var_row])
        a = np.where(mass > 0, mass, reach)
        # The inequalities on Q(y | d) (all K * L of them) ...
        KL, Lm = K * L, L - 1
        gi = np.arange(KL)
        blocks: list[sp.csr_matrix] = []
        rhs: list[np.ndarray] = []
        if self.constraint == "difference":
            pairs = np.array(list(itertools.combinations(range(K), 2)), dtype=np.int64)
            pairs = pairs.reshape(-1, 2)
            rows = np.arange(len(pairs) * L)
            k1 = np.repeat(pairs[:, 0], L) * L + np.tile(np.arange(L), len(pairs))
            k2 = np.repeat(pairs[:, 1], L) * L + np.tile(np.arange(L), len(pairs))
            diff = _csr(
                np.r_[rows, rows],
                np.r_[k1, k2],
                np.r_[np.ones(len(rows)), -np.ones(len(rows))],
                (len(rows), KL),
            )
            blocks += [diff, -diff]
            rhs += [np.full(len(rows), float(eta))] * 2
        else:
            py = np.tile(c.label_marginal, K)
            blocks += [_csr(gi, gi, np.ones(KL), (KL, KL)), _csr(gi, gi, -np.ones(KL), (KL, KL))]
            rhs += [py * (1 + eta), -py * (1 - eta)]
        # ... on g, with Q(L - 1 | d) = 1 - sum_{y < L - 1} g(y | d): Q = T g + t0.
        gk, gy = np.divmod(np.arange(K * Lm), max(Lm, 1))
        T = _csr(
            np.r_[gk * L + gy, gk * L + Lm],
            np.r_[np.arange(K * Lm), np.arange(K * Lm)],
            np.r_[np.ones(K * Lm), -np.ones(K * Lm)],
            (KL, K * Lm),
        )
        t0 = np.zeros(KL)
        t0[Lm::L] = 1.0
        disc = sp.vstack([sp.csr_matrix((0, KL)), *blocks], format="csr")
        n_g = disc.shape[0]
        G = sp.coo_matrix(disc @ T)
        rhs_all = np.concatenate(
            (*rhs, *[np.full(Dk.shape[0], dk) for Dk, dk in zip(self.D, self.bounds, strict=True)])
        )
        rhs_all[:n_g] -= disc @ t0
        D = sp.coo_matrix(sp.vstack([sp.csr_matrix((0, V)), *self.D], format="csr"))
        m_in = n_g + D.shape[0]
        Q = sp.coo_matrix(self.Q[(np.arange(K)[:, None] * L + np.arange(Lm)).ravel()])
        # Assemble rows [sums R | balance C | g = QP K(L-1) | inequalities], columns
        # [P V | u C | w C | slacks | g K(L-1)].
        b0, q0, i0 = R, R + C, R + C + K * Lm
        u0, w0, s0, g0 = V, V + C, V + 2 * C, V + 2 * C + m_in
        cols_c, v = np.arange(C), np.arange(V)
        ent_r = [
            self.var_row,
            b0 + tpos,
            b0 + cols_c,
            b0 + cols_c,
            q0 + Q.row,
            q0 + np.arange(K * Lm),
            i0 + n_g + D.row,
            i0 + np.arange(m_in),
            i0 + G.row,
        ]
        ent_c = [
            v,
            v,
            u0 + cols_c,
            w0 + cols_c,
            Q.col,
            g0 + np.arange(K * Lm),
            D.col,
            s0 + np.arange(m_in),
            g0 + G.col,
        ]
        ent_v = [
            np.ones(V),
            c.row_mass[self.var_row] / a[tpos],
            -np.ones(C),
            np.ones(C),
            Q.data,
            -np.ones(K * Lm),
            D.data,
            np.ones(m_in),
            G.data,
        ]
        n_rows, n_cols = i0 + m_in, g0 + K * Lm
        A = sp.csr_matrix(
            (np.concatenate(ent_v), (np.concatenate(ent_r), np.concatenate(ent_c))),
            shape=(n_rows, n_cols),
        )
        b = np.concatenate((np.ones(R), mass / a, np.zeros(K * Lm), rhs_all))
        cost = np.concatenate((np.zeros(V), a / 2, a / 2, np.zeros(m_in + K * Lm)))
        free = np.zeros(n_cols, dtype=bool)
        free[g0:] = True
        return CentringProgram(
            A, b, cost, free, a, observed, observed[c.row_src[self.var_row]], tpos, n_g, i0, g0
        )

    def centring_point(self, cp: CentringProgram, P: np.ndarray) -> np.ndarray:
        """The point of the centring program `cp` of the map P (one probability per entry):
        g = Q P, u and w the positive and negative parts of each cell's (q_c - p_c) / a_c,
        every slack from its row. It meets A z = b when P meets the map's constraints."""
        V, C, R = self.V, cp.n_cells, self.R
        z = np.zeros(cp.A.shape[1])
        z[:V] = P
        z[cp.first_free :] = cp.A[R + C : cp.first_inequality, :V] @ P
        rest = cp.b - cp.A @ z
        balance = rest[R : R + C]
        z[V : V + C] = np.maximum(-balance, 0.0)
        z[V + C : V + 2 * C] = np.maximum(balance, 0.0)
        z[V + 2 * C : cp.first_free] = np.maximum(rest[cp.first_inequality :], 0.0)
        return z

    def centring_dual(
        self, cp: CentringProgram, layout: Layout, row_dual: np.ndarray
    ) -> np.ndarray:
        """Row multipliers of the centring program `cp` that are an optimal dual of it, from
        an optimal dual `row_dual` of the program `lp(eta)` built with `layout` (either
        formulation; HiGHS's sign convention, reduced costs c - A'y).

        Both programs have the same optimal maps, and their multipliers correspond: the
        fidelity rows' give the cells' balance multipliers (shifted by a_c / 2, the centring
        program counting |q_c - p_c| where the LP counts (p_c - q_c)^+); the discrimination
        rows' (on Q(y | d) against the largest and smallest over the groups), spread over the
        pairs of groups as a product plan from the groups at the largest to those at the
        smallest, give those of the pairwise inequalities, and these those of g = Q P; the
        excess-distortion rows are the same rows. The multiplier of each row sum is then the
        largest that keeps every reduced cost non-negative, which makes the dual objective
        equal to the LP's.

        With a binary label the pairwise inequality for label 0 and the reversed one for label
        1 are the same constraint (Q(1 | d) = 1 - Q(0 | d)); both get the average of their
        multipliers, which is also optimal.
        """
        y = np.asarray(row_dual, dtype=np.float64)
        R, K, L = self.R, self.K, self.L
        KL = K * L
        fam = layout.families
        beta = -cp.weight / 2
        beta[cp.observed] += y[fam["fidelity"]]
        ineq: list[np.ndarray] = []
        if self.constraint == "difference":
            d = y[fam["discrimination"]]
            hi, lo = d[:KL].reshape(K, L), d[KL:].reshape(K, L)
            gap = y[fam["discrimination gap"]]
            pairs = np.array(list(itertools.combinations(range(K), 2)), dtype=np.int64)
            pairs = pairs.reshape(-1, 2)
            share = np.divide(1.0, -gap, out=np.zeros(L), where=gap < 0)
            up = hi[pairs[:, 0]] * lo[pairs[:, 1]] * share  # Q(y|k1) - Q(y|k2) <= eta
            down = hi[pairs[:, 1]] * lo[pairs[:, 0]] * share  # Q(y|k2) - Q(y|k1) <= eta
            if L == 2:
                up0, down1 = (up[:, 0] + down[:, 1]) / 2, (down[:, 0] + up[:, 1]) / 2
                up[:, 0], down[:, 1] = up0, up0
                down[:, 0], up[:, 1] = down1, down1
            ineq += [up.ravel(), down.ravel()]
        else:
            q = y[fam["discrimination"]]
            ineq += [np.minimum(q, 0.0), -np.maximum(q, 0.0)]
        for name, rows in fam.items():
            if name.startswith("excess distortion"):
                ineq.append(y[rows])
        lam = np.concatenate(ineq)
        # g = Q P's multipliers make the free columns' reduced costs zero.
        gamma = cp.A[cp.first_inequality :, cp.first_free :].T @ lam
        dual = np.concatenate((np.zeros(R), beta, gamma, lam))
        reduced = cp.c[: self.V] - cp.A[:, : self.V].T @ dual
        alpha = np.full(R, np.inf)
        np.minimum.at(alpha, self.var_row, reduced)
        dual[:R] = np.where(np.isfinite(alpha), alpha, 0.0)
        return dual

    def centring_zeros(self, cp: CentringProgram, face: np.ndarray) -> np.ndarray:
        """`face` (a mask of the centring program's columns) without the columns that the
        balance of mass proves zero on every point of the face.

        Mass moved from cell s to another cell c is a flow on the arc s -> c; cell c's net
        inflow q_c - p_c = a_c (u_c - w_c) can be positive only if u_c is in the face, negative
        only if w_c is. A flow decomposes into cycles and paths from cells that lose mass to
        cells that gain it, so an arc can carry mass only if it lies on a cycle of face arcs
        or on a path of face arcs from a cell whose w is in the face to one whose u is; u_c
        (w_c) can be positive only if such a path reaches c (leaves c). Repeated until nothing
        changes.
        """
        V, C = self.V, cp.n_cells
        u, w = V + np.arange(C), V + C + np.arange(C)
        moves = np.flatnonzero(cp.source != cp.target)
        face = face.copy()
        while True:
            on = moves[face[moves]]
            s, t = cp.source[on], cp.target[on]
            graph = sp.csr_matrix((np.ones(len(on)), (s, t)), shape=(C, C))
            _, comp = csgraph.connected_components(graph, directed=True, connection="strong")
            from_loss = _reachable(C, s, t, face[w])
            to_gain = _reachable(C, t, s, face[u])
            arc = (comp[s] == comp[t]) | (from_loss[s] & to_gain[t])
            drop = np.concatenate((on[~arc], u[face[u] & ~from_loss], w[face[w] & ~to_gain]))
            if not len(drop):
                return face
            face[drop] = False

    # -- reading a solution ----------------------------------------------------------------------

    def to_map(self, x: np.ndarray) -> np.ndarray:
        """The map P (one probability per entry, rows summing to one) of a solution."""
        if not self.aggregate:
            P = np.clip(x[: self.V], 0.0, None)
        else:
            c, t = self.cells, self.targets
            E, L, Lm = len(t.cell), self.L, self.L - 1
            pbar = np.clip(x[:E], 0.0, None)
            laws = np.clip(x[E : E + self.R * Lm].reshape(self.R, Lm), 0.0, None)
            laws = np.column_stack((laws, np.clip(1.0 - laws.sum(axis=1), 0.0, None)))
            e_src = np.repeat(np.arange(self.S), np.diff(t.ptr))
            by_label = np.bincount(e_src * L + t.label, weights=pbar, minlength=self.S * L)
            vm = self.var_move
            denom = by_label[c.row_src[self.var_row] * L + t.label[vm]]
            with np.errstate(divide="ignore", invalid="ignore"):
                P = np.where(denom > 0, laws[self.var_row, t.label[vm]] * pbar[vm] / denom, 0.0)
        sums = np.bincount(self.var_row, weights=P, minlength=self.R)
        return P / sums[self.var_row]

    def total_variation(self, P: np.ndarray) -> float:
        """TV(p_XY, q_XY) of the map, over all cells (0.5 * L1)."""
        c, t = self.cells, self.targets
        moved = t.cell[self.var_move]
        cells = np.union1d(moved, c.source_cell)
        q = np.bincount(
            np.searchsorted(cells, moved),
            weights=c.row_mass[self.var_row] * P,
            minlength=len(cells),
        )
        p = np.bincount(
            np.searchsorted(cells, c.source_cell), weights=c.source_mass, minlength=len(cells)
        )
        return 0.5 * float(np.abs(q - p).sum())

    def label_given_group(self, P: np.ndarray) -> np.ndarray:
        """(K, L) Q(y' | d) of the map for the non-empty groups."""
        return np.asarray(self.Q @ P).reshape(self.K, self.L)

    def discrimination(self, P: np.ndarray) -> float:
        """The map's discrimination in this program's form (what eta bounds)."""
        Q = self.label_given_group(P)
        if self.constraint == "difference":
            return float((Q.max(axis=0) - Q.min(axis=0)).max())
        py = self.cells.label_marginal
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(py > 0, np.abs(Q / py - 1.0), np.where(Q > 0, np.inf, 0.0))
        return float(r.max())

    def excess_distortion(self, P: np.ndarray) -> list[float]:
        """Largest excess-distortion probability per binding threshold (this program's form)."""
        return [float((Dk @ P).max()) if Dk.shape[0] else 0.0 for Dk in self.D]


def _reachable(n: int, tail: np.ndarray, head: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Mask of the nodes reachable from the nodes in `start` along the arcs tail -> head."""
    sources = np.flatnonzero(start)
    rows = np.concatenate((tail, np.full(len(sources), n)))
    cols = np.concatenate((head, sources))
    graph = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n + 1, n + 1))
    seen = np.zeros(n + 1, dtype=bool)
    seen[csgraph.breadth_first_order(graph, n, directed=True, return_predecessors=False)] = True
    return seen[:n]
