"""Sparse linear programs and the solvers TOT can use: HiGHS (highspy) and cvxpy's solvers."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from safes_framework.errors import ConfigError

logger = logging.getLogger(__name__)

Status = Literal["optimal", "optimal_inaccurate", "infeasible", "failed"]


@dataclass(frozen=True)
class LinearProgram:
    """min c'x  s.t.  row_lower <= A x <= row_upper,  col_lower <= x <= col_upper.

    Infinite bounds are +-inf. Equal row bounds make an equality.
    """

    c: np.ndarray
    A: sp.csc_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.A.shape  # type: ignore[return-value]

    def violation(self, x: np.ndarray) -> np.ndarray:
        """Per-row violation of the row bounds at `x` (0 where satisfied)."""
        ax = self.A @ x
        return np.maximum(np.maximum(self.row_lower - ax, ax - self.row_upper), 0.0)


@dataclass(frozen=True)
class LPResult:
    """What a solver said.

    Attributes:
        status: "optimal", "optimal_inaccurate" (solved to reduced accuracy), "infeasible"
            (proved infeasible) or "failed" (anything else: limits, numerical trouble, errors).
        x: the primal solution when solved, else None.
        objective: c'x when solved, else None.
        solver: the solver's name and version ("HiGHS 1.16.0", "cvxpy 1.9.3 / CLARABEL").
        detail: the solver's own status text.
        seconds: wall time of the solve.
    """

    status: Status
    x: np.ndarray | None
    objective: float | None
    solver: str
    detail: str
    seconds: float


def normalize_solver(name: str) -> str:
    """The canonical solver name: "highs", "clarabel" or "cvxpy:NAME"; ConfigError otherwise."""
    if not isinstance(name, str):
        raise ConfigError(f"tot: solver must be a string, got {name!r}")
    key = name.strip().lower()
    if key in ("highs", "clarabel"):
        return key
    if key.startswith("cvxpy:") and len(key) > 6:
        import cvxpy as cp

        wanted = key[6:].upper()
        if wanted not in cp.installed_solvers():
            raise ConfigError(
                f"tot: cvxpy solver {wanted!r} is not installed; installed: "
                f"{sorted(cp.installed_solvers())}"
            )
        return f"cvxpy:{wanted.lower()}"
    raise ConfigError(
        f"tot: unknown solver {name!r}; use 'highs' (default, HiGHS simplex through highspy), "
        "'clarabel' (interior point through cvxpy) or 'cvxpy:NAME' for another cvxpy solver"
    )


def solve(
    lp: LinearProgram,
    solver: str,
    options: Mapping[str, Any] | None = None,
    seed_columns: np.ndarray | None = None,
) -> LPResult:
    """Solve `lp` with `solver` (a `normalize_solver` name), passing `options` to the solver.

    `seed_columns` (a boolean mask over the columns) allows column generation with HiGHS on
    programs of more than COLGEN_ABOVE variables: see `solve_highs_colgen` for what the seed
    must guarantee.
    """
    solver = normalize_solver(solver)
    if solver == "highs":
        if seed_columns is not None and lp.shape[1] > COLGEN_ABOVE and not seed_columns.all():
            return solve_highs_colgen(lp, seed_columns, dict(options or {}))
        return _solve_highs(lp, dict(options or {}))
    name = "CLARABEL" if solver == "clarabel" else solver.split(":", 1)[1].upper()
    return _solve_cvxpy(lp, name, dict(options or {}))


# -- HiGHS --------------------------------------------------------------------------------------

_banner_lock = threading.Lock()
_banner_done = False


def _new_highs() -> Any:
    """A `highspy.Highs`; the first one of a process is built with C stdout silenced, since
    HiGHS prints a banner on construction that would otherwise land in the user's stdout."""
    global _banner_done
    import highspy

    with _banner_lock:
        if _banner_done:
            return highspy.Highs()
        _banner_done = True
        try:
            sys.stdout.flush()
            saved = os.dup(1)
        except (OSError, ValueError, AttributeError):
            return highspy.Highs()
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            h = highspy.Highs()
            try:
                ctypes.CDLL(None).fflush(None)
            except Exception:  # no C library handle (e.g. Windows): nothing buffered to lose
                pass
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
        return h


#: Up to this many variables HiGHS skips presolve (on small programs it costs more than it
#: saves); above IPM_ABOVE it runs its interior-point method, with crossover to a vertex so
#: the answer is still exact, instead of dual simplex. Options the user passes win.
NO_PRESOLVE_UP_TO = 5_000
IPM_ABOVE = 20_000
#: Above this many variables, a program given seed columns is solved by column generation.
COLGEN_ABOVE = 100_000
#: A column enters when its reduced cost is below minus this.
PRICING_TOL = 1e-9


def _configured_highs(n_vars: int, options: dict[str, Any]) -> Any:
    """A silent `highspy.Highs` with the size defaults for `n_vars` variables and `options`."""
    import highspy

    if n_vars <= NO_PRESOLVE_UP_TO:
        options = {"presolve": "off", **options}
    elif n_vars > IPM_ABOVE:
        options = {"solver": "ipm", **options}
    h = _new_highs()
    h.setOptionValue("output_flag", False)
    for key, value in options.items():
        if h.setOptionValue(key, value) != highspy.HighsStatus.kOk:
            raise ConfigError(f"tot: HiGHS rejected option {key}={value!r}")
    return h


def _highs_model(lp: LinearProgram) -> Any:
    import highspy

    m, n = lp.shape
    A = sp.csc_matrix(lp.A)
    model = highspy.HighsLp()
    model.num_col_ = n
    model.num_row_ = m
    model.col_cost_ = lp.c
    model.col_lower_ = lp.col_lower
    model.col_upper_ = lp.col_upper
    model.row_lower_ = lp.row_lower
    model.row_upper_ = lp.row_upper
    model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    model.a_matrix_.num_col_ = n
    model.a_matrix_.num_row_ = m
    model.a_matrix_.start_ = A.indptr
    model.a_matrix_.index_ = A.indices
    model.a_matrix_.value_ = A.data
    return model


def _solve_highs(lp: LinearProgram, options: dict[str, Any]) -> LPResult:
    import highspy

    h = _configured_highs(lp.shape[1], options)
    model = _highs_model(lp)
    name = f"HiGHS {h.version()}"
    start = time.perf_counter()
    run_status = h.passModel(model)
    if run_status == highspy.HighsStatus.kOk:
        run_status = h.run()
    seconds = time.perf_counter() - start
    status = h.getModelStatus()
    detail = h.modelStatusToString(status)
    MS = highspy.HighsModelStatus
    if status == MS.kOptimal:
        x = np.asarray(h.getSolution().col_value, dtype=np.float64)
        return LPResult("optimal", x, float(lp.c @ x), name, detail, seconds)
    return _highs_not_optimal(h, name, run_status, seconds)


def _highs_not_optimal(h: Any, name: str, run_status: Any, seconds: float) -> LPResult:
    import highspy

    status = h.getModelStatus()
    detail = h.modelStatusToString(status)
    MS = highspy.HighsModelStatus
    # The objective is bounded below on every TOT program, so "unbounded or infeasible" means
    # infeasible.
    if status in (MS.kInfeasible, MS.kUnboundedOrInfeasible):
        return LPResult("infeasible", None, None, name, detail, seconds)
    return LPResult("failed", None, None, name, f"{detail} (run status {run_status})", seconds)


def solve_highs_colgen(
    lp: LinearProgram, seed: np.ndarray, options: Mapping[str, Any] | None = None
) -> LPResult:
    """Solve `lp` exactly by column generation with HiGHS, starting from the columns in `seed`.

    Solves the program restricted to the current columns, prices every other column by its
    reduced cost c_j - A_j' y at the restricted optimum's row duals y, adds those below
    -PRICING_TOL and re-solves (warm-started from the previous basis) until none is left: the
    restricted optimum, with the other columns at zero, is then an optimum of `lp`. Every
    column outside `seed` must have lower bound 0 (and no upper bound below it), and the seed
    must be feasible whenever `lp` is (so that "infeasible" on the restricted program holds
    for `lp`).
    """
    import highspy

    options = dict(options or {})
    seed = np.asarray(seed, dtype=bool)
    m, n = lp.shape
    if seed.shape != (n,):
        raise ValueError(f"seed mask has shape {seed.shape}, the program has {n} columns")
    outside = ~seed
    if (lp.col_lower[outside] != 0).any() or (lp.col_upper[outside] < 0).any():
        raise ValueError("column generation needs lower bound 0 on the columns outside the seed")
    A = sp.csc_matrix(lp.A)
    AT = A.T.tocsr()
    cols = np.flatnonzero(seed)
    restricted = LinearProgram(
        lp.c[cols], A[:, cols], lp.row_lower, lp.row_upper, lp.col_lower[cols], lp.col_upper[cols]
    )
    # Simplex throughout: each round re-starts from the previous round's basis.
    h = _configured_highs(NO_PRESOLVE_UP_TO + 1, {"solver": "simplex", **options})
    name = f"HiGHS {h.version()}"
    start = time.perf_counter()
    in_model = seed.copy()
    rounds = 0
    run_status = h.passModel(_highs_model(restricted))
    if run_status == highspy.HighsStatus.kError:
        return _highs_not_optimal(h, name, run_status, time.perf_counter() - start)
    while True:
        run_status = h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return _highs_not_optimal(h, name, run_status, time.perf_counter() - start)
        y = np.asarray(h.getSolution().row_dual, dtype=np.float64)
        reduced = lp.c - AT @ y
        reduced[in_model] = 0.0
        enter = np.flatnonzero(reduced < -PRICING_TOL)
        logger.debug(
            "column generation round %d: %d columns, %d enter", rounds, len(cols), len(enter)
        )
        if not len(enter):
            break
        Ae = A[:, enter]
        added = h.addCols(
            len(enter),
            lp.c[enter],
            lp.col_lower[enter],
            lp.col_upper[enter],
            Ae.nnz,
            Ae.indptr[:-1].astype(np.int32),
            Ae.indices.astype(np.int32),
            Ae.data,
        )
        if added != highspy.HighsStatus.kOk:
            return LPResult(
                "failed",
                None,
                None,
                name,
                f"HiGHS could not add {len(enter)} columns (status {added})",
                time.perf_counter() - start,
            )
        cols = np.concatenate((cols, enter))
        in_model[enter] = True
        rounds += 1
    seconds = time.perf_counter() - start
    x = np.zeros(n)
    x[cols] = np.asarray(h.getSolution().col_value, dtype=np.float64)
    detail = f"{h.modelStatusToString(h.getModelStatus())} (column generation: {rounds} rounds, "
    detail += f"{len(cols)} of {n} columns)"
    return LPResult("optimal", x, float(lp.c @ x), name, detail, seconds)


# -- cvxpy --------------------------------------------------------------------------------------


def _solve_cvxpy(lp: LinearProgram, solver: str, options: dict[str, Any]) -> LPResult:
    import cvxpy as cp

    m, n = lp.shape
    A = sp.csr_matrix(lp.A)
    x = cp.Variable(n)
    cons = []
    eq = lp.row_lower == lp.row_upper
    lo = ~eq & np.isfinite(lp.row_lower)
    up = ~eq & np.isfinite(lp.row_upper)
    if eq.any():
        cons.append(A[eq] @ x == lp.row_lower[eq])
    if lo.any():
        cons.append(A[lo] @ x >= lp.row_lower[lo])
    if up.any():
        cons.append(A[up] @ x <= lp.row_upper[up])
    cl, cu = np.isfinite(lp.col_lower), np.isfinite(lp.col_upper)
    if cl.any():
        cons.append(x[np.flatnonzero(cl)] >= lp.col_lower[cl])
    if cu.any():
        cons.append(x[np.flatnonzero(cu)] <= lp.col_upper[cu])
    prob = cp.Problem(cp.Minimize(lp.c @ x), cons)
    name = f"cvxpy {cp.__version__} / {solver}"
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # cvxpy warns of inaccurate solutions; the status says so and TOT reports it.
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            prob.solve(solver=solver, **options)
    except cp.error.SolverError as exc:
        return LPResult("failed", None, None, name, str(exc), time.perf_counter() - start)
    seconds = time.perf_counter() - start
    st = prob.status
    if st in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) and x.value is not None:
        xv = np.asarray(x.value, dtype=np.float64)
        kind: Status = "optimal" if st == cp.OPTIMAL else "optimal_inaccurate"
        return LPResult(kind, xv, float(lp.c @ xv), name, st, seconds)
    if st in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        return LPResult("infeasible", None, None, name, st, seconds)
    return LPResult("failed", None, None, name, str(st), seconds)


# -- the analytic centre of the optimal face ------------------------------------------------------

#: The interior-point phase stops when x's / n is below this (the optimal face is read from it).
CENTRE_IPM_TOL = 1e-10
#: Largest residual |b - Ax| (relative to max(1, |b|)) accepted for the centre.
CENTRE_FEASIBILITY_TOL = 1e-9
CENTRE_MAX_ITER = 100


@dataclass(frozen=True)
class Centre:
    """The result of `analytic_centre`.

    Attributes:
        x: the centre (zero outside the optimal face), or None if the method failed.
        face: boolean mask of the coordinates not identically zero on the optimal face.
        residual: largest |b - Ax| at x.
        iterations: interior-point steps, then Newton centring steps.
        seconds: wall time.
        detail: why it stopped.
    """

    x: np.ndarray | None
    face: np.ndarray | None
    residual: float
    iterations: tuple[int, int]
    seconds: float
    detail: str


class _KKT:
    """The quasi-definite system [[-W, A'], [A, r I]] of a fixed pattern, factorised by QDLDL
    (static regularisation r, iterative refinement against the system without it).

    Only the diagonal changes between factorisations: the upper triangle QDLDL reads is built
    once and its diagonal entries overwritten in place.
    """

    def __init__(self, A: sp.csr_matrix, reg: float = 1e-9) -> None:
        m, n = A.shape
        self.n, self.reg = n, reg
        full = sp.bmat([[-sp.eye(n), A.T], [A, reg * sp.eye(m)]], format="csc").sorted_indices()
        upper = sp.triu(full, format="csc").sorted_indices()
        self.K, self.K0 = upper, full.copy()
        self.diag = _diagonal_positions(upper)[:n]
        diag0 = _diagonal_positions(self.K0)
        self.diag0 = diag0[:n]
        self.K0.data[diag0[n:]] = 0.0
        self.solver: Any = None

    def factor(self, w: np.ndarray) -> None:
        import qdldl

        self.K.data[self.diag] = -w - self.reg
        self.K0.data[self.diag0] = -w
        if self.solver is None:
            self.solver = qdldl.Solver(self.K, upper=True)
        else:
            self.solver.update(self.K, upper=True)

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        z = self.solver.solve(rhs)
        norm = max(1.0, float(np.abs(rhs).max(initial=0.0)))
        for _ in range(10):
            r = rhs - self.K0 @ z
            if float(np.abs(r).max(initial=0.0)) <= 1e-13 * norm:
                break
            z = z + self.solver.solve(r)
        return z  # type: ignore[no-any-return]


def _diagonal_positions(K: sp.csc_matrix) -> np.ndarray:
    """Positions in `K.data` of the diagonal entries, in column order (all present)."""
    rows, cols = K.indices, np.repeat(np.arange(K.shape[1]), np.diff(K.indptr))
    return np.flatnonzero(rows == cols)


def _to_boundary(v: np.ndarray, dv: np.ndarray) -> float:
    neg = dv < 0
    return float((-v[neg] / dv[neg]).min()) if neg.any() else np.inf


def analytic_centre(
    A: sp.spmatrix,
    b: np.ndarray,
    c: np.ndarray,
    free: np.ndarray | None = None,
    *,
    max_iter: int = CENTRE_MAX_ITER,
) -> Centre:
    """The analytic centre of the optimal face of  min c'x  s.t.  A x = b,  x_j >= 0 (j not
    in the mask `free`).

    The optimal face F is the set of optimal x; its analytic centre is the unique point of F
    maximising sum_j log x_j over the coordinates j not identically zero on F. It is the limit
    of the central path (Megiddo 1989; Guler & Ye 1993), the point interior-point solvers
    approach, and depends on the program only, not on any solution of it.

    Two phases. (1) CLARABEL's interior point (called directly) to CENTRE_IPM_TOL; its iterate
    is nearly strictly complementary, so F's coordinates are read as those with x_j >= s_j
    (more widely if A_F x = b then cannot be met; coordinates phase 2 drives to zero are
    dropped). (2) Newton's method for  max sum_{j in F} log x_j  s.t.  A_F x_F = b  from that
    iterate (infeasible start, backtracking; Boyd & Vandenberghe 2004, sec. 10.3), to full
    accuracy. Both phases solve quasi-definite systems with QDLDL. A must have full row rank
    and the program a strictly positive feasible point.
    """
    start = time.perf_counter()
    A = sp.csr_matrix(A, dtype=np.float64)
    m, n = A.shape
    b = np.asarray(b, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    scale = max(1.0, float(np.abs(b).max(initial=0.0)))
    import clarabel

    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = CENTRE_IPM_TOL
    settings.tol_feas = settings.tol_ktratio = CENTRE_IPM_TOL
    settings.max_iter = max_iter
    free = np.zeros(n, dtype=bool) if free is None else np.asarray(free, dtype=bool)
    signed = np.flatnonzero(~free)
    ns = len(signed)
    ipm = clarabel.DefaultSolver(
        sp.csc_matrix((n, n)),
        c,
        sp.vstack(
            [A, sp.csr_matrix((-np.ones(ns), (np.arange(ns), signed)), shape=(ns, n))],
            format="csc",
        ),
        np.concatenate((b, np.zeros(ns))),
        [clarabel.ZeroConeT(m), clarabel.NonnegativeConeT(ns)],
        settings,
    )
    sol = ipm.solve()
    it = int(sol.iterations)
    if str(sol.status) not in ("Solved", "AlmostSolved"):
        return Centre(
            None, None, np.inf, (it, 0), time.perf_counter() - start, f"Clarabel: {sol.status}"
        )
    x = np.asarray(sol.x, dtype=np.float64)
    s = np.zeros(n)
    s[signed] = np.asarray(sol.z, dtype=np.float64)[m:]
    x = np.where(free, x, np.maximum(x, 1e-300))
    newton, detail, res = 0, "centring iteration limit", np.inf
    for ratio in CENTRE_RATIOS:
        face = free | (x >= ratio * s)
        for _ in range(CENTRE_ROUNDS):
            xf, detail, res, steps = _centre_on(
                A[:, face], b, x[face], free[face], scale, 5 * max_iter
            )
            newton += steps
            if detail != "vanishing":
                break
            # Coordinates that Newton drives to zero are zero on the whole face (the interior
            # point left them just above its tolerance): drop them and centre again.
            idx = np.flatnonzero(face)
            face[idx[xf < CENTRE_VANISH * x[idx]]] = False
        if detail != "inconsistent":
            break
        # A coordinate needed to meet A x = b was read as zero: read the face more widely.
    if detail != "central":
        return Centre(None, face, res, (it, newton), time.perf_counter() - start, detail)
    out = np.zeros(n)
    out[face] = xf
    return Centre(out, face, res, (it, newton), time.perf_counter() - start, detail)


#: A face coordinate is dropped when centring shrinks it below this fraction of its start.
CENTRE_VANISH = 1e-6
CENTRE_ROUNDS = 4
#: The face is read as {x_j >= ratio * s_j}, with the next ratio when A_F x = b cannot be met.
CENTRE_RATIOS = (1.0, 1e-2, 1e-4, 1e-6)


def _centre_on(
    A: sp.spmatrix, b: np.ndarray, x: np.ndarray, free: np.ndarray, scale: float, max_iter: int
) -> tuple[np.ndarray, str, float, int]:
    """Newton's method for  max sum_{j not free} log x_j  s.t.  A x = b  from x (> 0 where not
    free): (x, "central" | "vanishing" | failure, residual, steps)."""
    A = sp.csr_matrix(A)
    kf = _KKT(A, reg=1e-12)
    x0, sg = x.copy(), ~free
    res = float(np.abs(b - A @ x).max(initial=0.0))
    stalled = 0
    for newton in range(1, max_iter + 1):
        rp = b - A @ x
        try:
            kf.factor(np.where(free, 1.0, 1.0 / x**2))
        except Exception as exc:  # qdldl signals a zero pivot with an exception
            return x, f"centring factorisation failed ({exc})", res, newton
        # [-X^-2, A'; A, 0] [dx; nu] = [-1/x; rp]; the free coordinates have no barrier, and
        # a proximal weight 1 (which leaves the fixed point unchanged) keeps the system
        # quasi-definite.
        z = kf.solve(np.concatenate((np.where(free, 0.0, -1.0 / x), rp)))
        dx = z[: len(x)]
        dec = float(np.sum((dx[sg] / x[sg]) ** 2))
        # the damped step of a self-concordant barrier, never past the boundary
        step = 1.0 / (1.0 + np.sqrt(dec)) if dec > 0.25 else 1.0
        step = min(step, 0.99 * _to_boundary(x[sg], dx[sg]))
        logger.debug("centring %d: decrement %.3g, step %.3g, residual %.3g", newton, dec, step,
                     res)
        x = x + step * dx
        res = float(np.abs(b - A @ x).max(initial=0.0))
        if step == 1.0 and dec <= 1e-18 and res <= CENTRE_FEASIBILITY_TOL * scale:
            return x, "central", res, newton
        if newton % 25 == 0 and (x[sg] < CENTRE_VANISH * x0[sg]).any():
            return x, "vanishing", res, newton
        if dec <= 1e-20 and res > CENTRE_FEASIBILITY_TOL * scale:
            stalled += 1
            if stalled >= 3:
                return x, "inconsistent", res, newton
        else:
            stalled = 0
    return x, "centring iteration limit", res, max_iter
