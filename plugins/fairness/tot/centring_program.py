"""The centring program of a TOT program: the LP in standard form, per cell, whose optimal face
is the set of optimal maps and whose analytic centre is the map TOT releases; a map's point of
it, an optimal dual of it from the LP's, and the zeros that the balance of mass proves."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph

from .program_pieces import Cells, Layout, Targets, _csr


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


class Centring:
    """Mixin of `TotProgram`: its centring program, the point and the optimal dual of it that
    the LP's map and dual give, and the columns the balance of mass proves zero."""

    cells: Cells
    targets: Targets
    constraint: str
    bounds: tuple[float, ...]
    V: int
    R: int
    K: int
    L: int
    Q: sp.csr_matrix
    D: list[sp.csr_matrix]
    var_row: np.ndarray
    var_move: np.ndarray

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


def _reachable(n: int, tail: np.ndarray, head: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Mask of the nodes reachable from the nodes in `start` along the arcs tail -> head."""
    sources = np.flatnonzero(start)
    rows = np.concatenate((tail, np.full(len(sources), n)))
    cols = np.concatenate((head, sources))
    graph = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n + 1, n + 1))
    seen = np.zeros(n + 1, dtype=bool)
    seen[csgraph.breadth_first_order(graph, n, directed=True, return_predecessors=False)] = True
    return seen[:n]
