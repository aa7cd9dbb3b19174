"""The solvers TOT can use, HiGHS (highspy) and cvxpy's solvers, behind one `solve`; the program
types (`lp_types`), HiGHS itself (`highs`) and the analytic centre (`centre`) are importable
from here too."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from safes_framework.errors import ConfigError

from .centre import Centre, analytic_centre, face_support
from .highs import _solve_highs, solve_highs_colgen
from .lp_types import LinearProgram, LPResult, Status

__all__ = [
    "COLGEN_ABOVE",
    "Centre",
    "LPResult",
    "LinearProgram",
    "Status",
    "analytic_centre",
    "face_support",
    "normalize_solver",
    "solve",
    "solve_highs_colgen",
]

#: Above this many variables, a program given seed columns is solved by column generation.
COLGEN_ABOVE = 100_000


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
