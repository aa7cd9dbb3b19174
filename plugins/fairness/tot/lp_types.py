"""The sparse linear program TOT's solvers take, and what a solver says of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

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
