"""The sparse linear program of optimized pre-processing (Calmon et al. 2017); its pieces
(`program_pieces`) and its centring program (`centring_program`) are importable from here too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

from .centring_program import Centring, CentringProgram
from .lp_types import LinearProgram
from .program_pieces import Cells, Layout, Targets, _csr

__all__ = ["CentringProgram", "Cells", "Constraint", "Layout", "Targets", "TotProgram"]

Constraint = Literal["difference", "ratio"]


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


class TotProgram(Centring):
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
