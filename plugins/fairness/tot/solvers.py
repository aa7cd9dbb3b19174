"""Sparse linear programs and the solvers TOT can use: HiGHS (highspy) and cvxpy's solvers."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping
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
        row_dual: multipliers of the rows at the optimum (reduced costs c - A'y), when the
            solver gives them exactly (HiGHS); None otherwise.
    """

    status: Status
    x: np.ndarray | None
    objective: float | None
    solver: str
    detail: str
    seconds: float
    row_dual: np.ndarray | None = None


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
        sol = h.getSolution()
        x = np.asarray(sol.col_value, dtype=np.float64)
        y = np.asarray(sol.row_dual, dtype=np.float64) if sol.dual_valid else None
        return LPResult("optimal", x, float(lp.c @ x), name, detail, seconds, y)
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
    return LPResult("optimal", x, float(lp.c @ x), name, detail, seconds, y)


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

#: A reduced cost above this (times max(1, max |c|)) fixes its coordinate at zero on the optimal
#: face; one below minus this means the dual given is not feasible.
CENTRE_DUAL_TOL = 1e-11
#: Largest residual |b - Ax| (relative to max(1, |b|)) accepted for the centre.
CENTRE_FEASIBILITY_TOL = 1e-9
#: Newton's method stops after a full step whose squared Newton decrement was below this (the
#: error left is then of the order of its square).
CENTRE_DECREMENT_TOL = 1e-10
#: Newton steps allowed before the face is taken to have no point positive in every coordinate.
CENTRE_MAX_ITER = 60
#: Faces with more coordinates than this are read by the interior point before Newton's
#: method is tried (on large programs some coordinates are nearly always forced to zero in ways
#: the structure does not reveal, and a failed Newton run costs as much as the interior point).
CENTRE_INTERIOR_FIRST_ABOVE = 50_000
#: The auxiliary LP is tried only on faces up to this many coordinates.
CENTRE_AUXILIARY_UP_TO = 50_000
#: A point of the face given as a start is moved this far into the interior.
CENTRE_START_SHIFT = 0.1


@dataclass(frozen=True)
class Centre:
    """The result of `analytic_centre`.

    Attributes:
        x: the centre (zero outside the optimal face), or None if it could not be computed.
        face: boolean mask of the coordinates not identically zero on the optimal face (as far
            as it was determined).
        residual: largest |b - Ax| at x.
        iterations: Newton steps, all rounds together.
        face_from: how the face was found: "dual" (an optimal dual and the program's
            structure), "interior point" or "auxiliary LP" (see `analytic_centre`).
        seconds: wall time.
        detail: why it stopped.
    """

    x: np.ndarray | None
    face: np.ndarray | None
    residual: float
    iterations: int
    face_from: str
    seconds: float
    detail: str


def analytic_centre(
    A: sp.spmatrix,
    b: np.ndarray,
    c: np.ndarray,
    y: np.ndarray,
    free: np.ndarray | None = None,
    *,
    zeros: Callable[[np.ndarray], np.ndarray] | None = None,
    point: np.ndarray | None = None,
    max_iter: int = CENTRE_MAX_ITER,
) -> Centre:
    """The analytic centre of the optimal face of  min c'x  s.t.  A x = b,  x_j >= 0 (j not
    in the mask `free`), given an optimal dual `y` (row multipliers) of that program.

    The optimal face F is the set of optimal x; its analytic centre is the unique point of F
    maximising sum_j log x_j over the coordinates j not identically zero on F (free ones carry
    no term). It is the limit of the central path (Megiddo 1989; Guler & Ye 1993), the point
    interior-point solvers approach, and depends on the program only, not on any solution of
    it or on the dual used.

    By complementary slackness, for any optimal dual F = {x feasible: x_j = 0 wherever the
    reduced cost r_j = c_j - A_j'y > 0}. What is left are the coordinates that the equalities
    force to zero on F: `zeros`, if given, maps a mask of possible coordinates to a smaller
    one, removing only coordinates proven zero on F (knowledge of the program's structure).
    Newton's method for  max sum log x_j  s.t.  A_F x = b  (infeasible start; Boyd &
    Vandenberghe 2004, sec. 10.3) then either converges, which proves that every remaining
    coordinate is positive somewhere on F (and certifies `y`: a feasible x with x_j = 0
    wherever r_j > 0 proves both optimal), or finds no point positive in all of them. Then
    the coordinates that can be positive are read from an interior-point method on F
    (`interior_face`; first, on faces of more than CENTRE_INTERIOR_FIRST_ABOVE coordinates)
    and Newton's method starts again from its point; should that fail too, one auxiliary LP
    (`face_support`) finds them exactly. All rounds share one factorisation pattern and
    start from `point`, if given (a point of the optimal face, such as the LP's solution),
    shifted by CENTRE_START_SHIFT into the interior.
    """
    start = time.perf_counter()
    A = sp.csc_matrix(A, dtype=np.float64)
    n = A.shape[1]
    b = np.asarray(b, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    free = np.zeros(n, dtype=bool) if free is None else np.asarray(free, dtype=bool)
    newton, how = 0, "dual"

    def result(x: np.ndarray | None, face: np.ndarray | None, res: float, detail: str) -> Centre:
        return Centre(x, face, res, newton, how, time.perf_counter() - start, detail)

    r = c - A.T @ np.asarray(y, dtype=np.float64)
    tol = CENTRE_DUAL_TOL * max(1.0, float(np.abs(c).max(initial=0.0)))
    worst = max(float(-r[~free].min(initial=0.0)), float(np.abs(r[free]).max(initial=0.0)))
    if worst > tol:
        return result(
            None, None, np.inf, f"the dual is not feasible (reduced cost off by {worst:.2e})"
        )
    face = free | (r <= tol)
    if zeros is not None:
        face = zeros(face)
    idx = np.flatnonzero(face)
    system = _FaceSystem(A[:, idx], b, free[idx])
    rounds = ["dual", "interior point", "auxiliary LP"]
    if len(idx) > CENTRE_INTERIOR_FIRST_ABOVE:
        rounds.remove("dual")
    if len(idx) > CENTRE_AUXILIARY_UP_TO:
        rounds.remove("auxiliary LP")
    active = np.ones(len(idx), dtype=bool)
    if point is None:
        x0 = np.where(free[idx], 0.0, 1.0)
    else:
        x0 = np.where(free[idx], point[idx], np.maximum(point[idx], 0.0) + CENTRE_START_SHIFT)
    detail, res, xf = "no interior point", np.inf, x0
    for how in rounds:
        readings: list[tuple[np.ndarray, np.ndarray]] = [(active, x0)]
        if how == "interior point":
            pair = system.interior(x0)
            if pair is None:
                continue
            xi, si = pair
            # x_j >= s_j, read more widely while the face so read cannot meet A x = b.
            readings = [(free[idx] | (xi >= ratio * si), xi) for ratio in CENTRE_IPM_READINGS]
        elif how == "auxiliary LP":
            aux = face_support(A, b, face, free)
            if aux is None:
                continue
            readings = [(aux[0][idx], aux[1][idx])]
        for active, x0 in readings:
            xf, detail, res, steps = system.newton(np.where(active, x0, 0.0), active, max_iter)
            newton += steps
            if detail != "inconsistent":
                break
        if detail not in ("no interior point", "inconsistent"):
            break
        logger.debug("centring: %s on a face of %d coordinates", detail, active.sum())
    mask = np.zeros(n, dtype=bool)
    mask[idx[active]] = True
    if detail != "central":
        return result(None, mask, res, detail)
    out = np.zeros(n)
    out[idx] = np.where(active, xf, 0.0)
    return result(out, mask, res, detail)


def face_support(
    A: sp.spmatrix, b: np.ndarray, face: np.ndarray, free: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The coordinates not identically zero on {x: A x = b, x_j >= 0 (j not free), x_j = 0 off
    `face`}, and a point of that set positive in all of them; None if the set is empty.

    One LP (Freund, Roundy & Todd 1985) on the homogenised set, solved by HiGHS:
    max sum_j t_j  s.t.  A (t + s) = theta b,  0 <= t_j <= 1,  s_j >= 0  over the signed
    coordinates of `face` (free ones enter as they are), theta >= 0. Its feasible points form
    a cone, so sums of them are feasible: at an optimum t_j = 1 exactly for the coordinates
    that can be positive and 0 for the others, and (t + s) / theta is a point of the set
    positive in every coordinate that can be.
    """
    A = sp.csc_matrix(A)
    m = A.shape[0]
    idx = np.flatnonzero(face)
    signed, unsigned = idx[~free[idx]], idx[free[idx]]
    k, f = len(signed), len(unsigned)
    As = A[:, signed]
    aux = LinearProgram(
        np.concatenate((-np.ones(k), np.zeros(k + f + 1))),
        sp.hstack(
            [As, As, A[:, unsigned], sp.csc_matrix(-np.asarray(b).reshape(-1, 1))], format="csc"
        ),
        np.zeros(m),
        np.zeros(m),
        np.concatenate((np.zeros(2 * k), np.full(f, -np.inf), [0.0])),
        np.concatenate((np.ones(k), np.full(k + f + 1, np.inf))),
    )
    res = _solve_highs(aux, {"presolve": "on"})
    if res.status != "optimal" or res.x is None:
        return None
    t, s, theta = res.x[:k], res.x[k : 2 * k], float(res.x[-1])
    positive = t > 0.5
    if theta <= 0:
        return None
    support = np.zeros(len(face), dtype=bool)
    support[signed[positive]] = True
    support[unsigned] = True
    x = np.zeros(len(face))
    x[signed[positive]] = (t + s)[positive] / theta
    x[unsigned] = res.x[2 * k : 2 * k + f] / theta
    logger.debug("face support: %d of %d coordinates can be positive", positive.sum(), k)
    return support, x


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
#: Readings x_j >= ratio * s_j tried in turn while the face read cannot meet A x = b.
CENTRE_IPM_READINGS = (1.0, 1e-2, 1e-4, 1e-6)
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
