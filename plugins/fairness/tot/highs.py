"""HiGHS (highspy) on TOT's programs: settings by size, a silent first construction, and exact
column generation over the columns of a seed."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from safes_framework.errors import ConfigError

from .lp_types import LinearProgram, LPResult

logger = logging.getLogger(__name__)

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
