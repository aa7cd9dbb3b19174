"""Newton's method and a primal-dual interior point on A x = b over the columns of a face,
sharing one factorisation of the quasi-definite system: the numerical steps of the analytic
centre."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)

#: Largest residual |b - Ax| (relative to max(1, |b|)) accepted for the centre.
CENTRE_FEASIBILITY_TOL = 1e-9
#: Newton's method stops after a full step whose squared Newton decrement was below this (the
#: error left is then of the order of its square).
CENTRE_DECREMENT_TOL = 1e-10
#: Static regularisation of the quasi-definite system (Newton's method, the interior point).
_REGULARISATION = 1e-12
_IPM_REGULARISATION = 1e-8
#: Weight that holds a coordinate at zero in the shared system (it leaves the face).
_HELD = 1e30
#: The interior-point method reads the face once x's / n is below CENTRE_IPM_TOL and every
#: x_j / s_j is outside (1 / CENTRE_IPM_GAP, CENTRE_IPM_GAP), or once it cannot reduce x's / n
#: further below CENTRE_IPM_TOL (then as x_j >= s_j).
CENTRE_IPM_TOL = 1e-9
CENTRE_IPM_GAP = 10.0
CENTRE_IPM_MAX_ITER = 60


class _KKT:
    """Newton's system under A x = b, the quasi-definite matrix [[-H, A'], [A, r I]] with H
    diagonal (the log barrier's diag(x)^-2, or the interior point's diag(s / x), on the signed
    coordinates, 0 on the free ones), of a fixed pattern, factorised by QDLDL with static
    regularisation r and a proximal weight 1 on the free coordinates, and refined against the
    system without either.

    The upper triangle QDLDL reads is built directly from A's rows; only diagonals change
    between factorisations.
    """

    def __init__(self, A: sp.spmatrix) -> None:
        R = sp.csr_matrix(A)
        R.sort_indices()
        m, n = R.shape
        self.n, self.A, self.AT = n, R, R.T.tocsr()
        # Columns 0..n-1 hold only the diagonal; column n + i holds row i of A, then r.
        counts = np.concatenate((np.ones(n, dtype=np.int64), np.diff(R.indptr) + 1))
        indptr = np.concatenate(([0], np.cumsum(counts)))
        indices = np.empty(indptr[-1], dtype=np.int32)
        data = np.empty(indptr[-1])
        indices[:n] = np.arange(n)
        self.ends = indptr[n + 1 :] - 1
        body = np.ones(indptr[-1], dtype=bool)
        body[:n] = False
        body[self.ends] = False
        indices[body] = R.indices
        data[body] = R.data
        indices[self.ends] = n + np.arange(m)
        self.K = sp.csc_matrix((data, indices, indptr), shape=(n + m, n + m))
        self.solver: Any = None
        self.w = np.ones(n)

    def factor(self, w: np.ndarray, reg: float, free: np.ndarray) -> None:
        """Factorise for the diagonal w (zero on the `free` coordinates, which get the proximal
        weight 1 in the factorisation only: solutions are refined against w itself)."""
        import qdldl

        self.w = np.where(free, 0.0, w)
        self.K.data[: self.n] = -np.where(free, 1.0, w) - reg
        self.K.data[self.ends] = reg
        if self.solver is None:
            self.solver = qdldl.Solver(self.K, upper=True)
        else:
            self.solver.update(self.K, upper=True)

    def solve(self, rhs: np.ndarray, accuracy: float = 1e-13) -> np.ndarray:
        """The solution, refined until both block rows hold to `accuracy` times their
        right-hand side (at least 1) or refinement stops helping."""
        n = self.n
        z = self.solver.solve(rhs)
        tol = accuracy * np.maximum(
            1.0, [np.abs(rhs[:n]).max(initial=0.0), np.abs(rhs[n:]).max(initial=0.0)]
        )
        last = np.inf
        for _ in range(10):
            dx, v = z[:n], z[n:]
            r = rhs - np.concatenate((self.AT @ v - self.w * dx, self.A @ dx))
            err = np.array([np.abs(r[:n]).max(initial=0.0), np.abs(r[n:]).max(initial=0.0)])
            worst = float((err / tol).max())
            if worst <= 1.0 or worst >= last:
                break
            last = worst
            z = z + self.solver.solve(r)
        return z  # type: ignore[no-any-return]


class _FaceSystem:
    """A x = b on the columns of a face, with one `_KKT` shared by Newton's method and the
    interior-point method; coordinates outside `active` are held at zero."""

    def __init__(self, A: sp.spmatrix, b: np.ndarray, free: np.ndarray) -> None:
        self.A = sp.csr_matrix(A)
        self.b, self.free = b, free
        self.scale = max(1.0, float(np.abs(b).max(initial=0.0)))
        self.kkt = _KKT(self.A)

    def newton(
        self, x: np.ndarray, active: np.ndarray, max_iter: int
    ) -> tuple[np.ndarray, str, float, int]:
        """Newton's method for  max sum log x_j (signed active j)  s.t.  A x = b,  x_j = 0 off
        `active`, from x (> 0 on the signed active coordinates):
        (x, "central" | "no interior point" | "inconsistent" | failure, residual, steps):
        "no interior point" when the steps keep stopping at the boundary, "inconsistent" when
        full steps cannot meet A x = b (no solution on the face).

        While infeasible, each step goes 0.99 of the way to the boundary at most (a full step
        makes A x = b hold); once feasible, steps minimise the barrier along the direction.
        """
        A, b, free, scale = self.A, self.b, self.free, self.scale
        sg = active & ~free
        x = np.where(active, x, 0.0)
        xs_safe = np.where(sg, x, 1.0)
        res = float(np.abs(b - A @ x).max(initial=0.0))
        feasible = res <= CENTRE_FEASIBILITY_TOL * scale
        stuck, step_no = 0, 0
        for step_no in range(1, max_iter + 1):
            rp = b - A @ x
            xs_safe = np.where(sg, x, 1.0)
            w = np.where(sg, 1.0 / xs_safe**2, np.where(active, 0.0, _HELD))
            try:
                self.kkt.factor(w, _REGULARISATION, free & active)
            except Exception as exc:  # qdldl signals a zero pivot with an exception
                return x, f"centring factorisation failed ({exc})", res, step_no
            # [-H, A'; A, 0] [dx; v] = [-1/x; rp] (0 for the free and the held coordinates)
            z = self.kkt.solve(np.concatenate((np.where(sg, -1.0 / xs_safe, 0.0), rp)))
            dx = np.where(active, z[: len(x)], 0.0)
            dxs, xs = dx[sg], x[sg]
            dec = float(np.sum((dxs / xs) ** 2))
            t_max = _to_boundary(xs, dxs)
            if not feasible:
                t = min(1.0, 0.99 * t_max)
            elif t_max > 1.0 and dec < 0.25:
                t = 1.0
            else:
                t = _barrier_step(xs, dxs, t_max)
            x = x + t * dx
            res = float(np.abs(b - A @ x).max(initial=0.0))
            logger.debug(
                "centring %d: decrement %.3g, step %.3g, residual %.3g", step_no, dec, t, res
            )
            feasible = res <= CENTRE_FEASIBILITY_TOL * scale
            if t == 1.0 and dec <= CENTRE_DECREMENT_TOL and feasible:
                return x, "central", res, step_no
            # Full steps that do not reach A x = b: it has no solution on the face.
            stuck = stuck + 1 if t == 1.0 and not feasible else 0
            if stuck >= 3:
                return x, "inconsistent", res, step_no
        return x, "no interior point", res, step_no

    def interior(
        self, x0: np.ndarray | None = None, max_iter: int = CENTRE_IPM_MAX_ITER
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """An interior-point pair (x, s), from x0 (> 0 on the signed coordinates) if given, from
        which the coordinates that can be positive are read (x_j > s_j); None if it does not
        get there.

        Mehrotra's predictor-corrector method (Wright 1997, ch. 10) for  min 0  s.t. A x = b,
        x_j >= 0 (j not free): its iterates tend to a strictly complementary pair (Guler & Ye
        1993), x_j > 0 exactly where x can be positive and the dual slack s_j > 0 exactly where
        it cannot.
        """
        A, b, fr, scale = self.A, self.b, self.free, self.scale
        sg = ~fr
        ns = max(int(sg.sum()), 1)
        x = np.where(fr, 0.0, 1.0) if x0 is None else x0.copy()
        s = np.where(fr, 0.0, 1.0)
        y = np.zeros(A.shape[0])
        best: tuple[float, np.ndarray, np.ndarray] | None = None
        for _ in range(max_iter):
            rp = b - A @ x
            rd = -(A.T @ y) - s
            mu = float(x[sg] @ s[sg]) / ns
            primal = float(np.abs(rp).max(initial=0.0))
            dual = float(np.abs(rd).max(initial=0.0))
            if not np.isfinite(mu + primal + dual):
                break
            ratio = x[sg] / np.where(s[sg] > 0, s[sg], np.finfo(float).tiny)
            unclear = int(((ratio > 1 / CENTRE_IPM_GAP) & (ratio < CENTRE_IPM_GAP)).sum())
            logger.debug(
                "interior point: mu %.3g, primal %.3g, dual %.3g, %d unclear",
                mu,
                primal,
                dual,
                unclear,
            )
            if (
                mu <= CENTRE_IPM_TOL
                and primal <= CENTRE_FEASIBILITY_TOL * scale
                and dual <= CENTRE_FEASIBILITY_TOL
            ):
                if best is None or mu < best[0]:
                    best = (mu, x.copy(), s.copy())
                if not unclear:
                    break
            elif best is not None:
                break  # it lost accuracy after reading the face once: keep that reading
            xs = np.where(fr, 1.0, x)
            try:
                self.kkt.factor(np.where(fr, 0.0, s / xs), _IPM_REGULARISATION, fr)
            except Exception:  # qdldl signals a zero pivot with an exception
                break
            dx, dy, ds = _ipm_direction(self.kkt, fr, xs, s, rd, rp, np.zeros(len(x)))
            ap, ad = _ipm_lengths(x[sg], s[sg], dx[sg], ds[sg], 1.0)
            mu_aff = float((x + ap * dx)[sg] @ (s + ad * ds)[sg]) / ns
            sigma = (mu_aff / mu) ** 3 if mu > 0 else 0.0
            target = np.where(fr, 0.0, sigma * mu - dx * ds)
            dx, dy, ds = _ipm_direction(self.kkt, fr, xs, s, rd, rp, target)
            ap, ad = _ipm_lengths(x[sg], s[sg], dx[sg], ds[sg], 0.99)
            x, y, s = x + ap * dx, y + ad * dy, s + ad * ds
        if best is None:
            return None
        return best[1], best[2]


def _ipm_direction(
    kkt: _KKT,
    free: np.ndarray,
    x: np.ndarray,
    s: np.ndarray,
    rd: np.ndarray,
    rp: np.ndarray,
    target: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The step solving A dx = rp, A'dy + ds = rd, S dx + X ds = target - XS (free
    coordinates: A'dy = rd), with `kkt` factorised for s / x."""
    # -(s/x) dx + A'dy = rd + s - target/x, then ds = target/x - s - (s/x) dx.
    z = kkt.solve(np.concatenate((np.where(free, rd, rd + s - target / x), rp)), 1e-11)
    dx, dy = z[: len(x)], z[len(x) :]
    return dx, dy, np.where(free, 0.0, target / x - s - (s / x) * dx)


def _ipm_lengths(
    x: np.ndarray, s: np.ndarray, dx: np.ndarray, ds: np.ndarray, frac: float
) -> tuple[float, float]:
    """Primal and dual step lengths: `frac` of the way to the boundary, at most 1."""
    return min(1.0, frac * _to_boundary(x, dx)), min(1.0, frac * _to_boundary(s, ds))


def _to_boundary(v: np.ndarray, dv: np.ndarray) -> float:
    """The largest t with v + t dv >= 0 (inf if dv >= 0)."""
    neg = dv < 0
    if not neg.any():
        return np.inf
    with np.errstate(over="ignore"):
        return float((-v[neg] / dv[neg]).min())


def _barrier_step(x: np.ndarray, dx: np.ndarray, t_max: float) -> float:
    """argmin over 0 <= t < t_max of -sum log(x + t dx) (safeguarded Newton in one variable)."""
    lo, hi = 0.0, t_max
    t = 1.0 if t_max > 2.0 else 0.5 * t_max
    for _ in range(50):
        z = dx / (x + t * dx)
        g, h = -float(z.sum()), float(z @ z)
        if g < 0:
            lo = t
        else:
            hi = t
        nxt = t - g / h if h > 0 else hi
        if not lo < nxt < hi:
            nxt = 0.5 * (lo + hi) if np.isfinite(hi) else 2.0 * t
        if abs(nxt - t) <= 1e-12 * t:
            return nxt
        t = nxt
    return t
