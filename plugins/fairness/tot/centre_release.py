"""TOT's `choice="centre"`: the analytic centre of the optimal maps, released in place of the
solver's vertex once its total variation is checked against the LP's optimum."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable

import numpy as np

from safes_framework.errors import SolverError

from .centre import analytic_centre
from .linear_program import TotProgram
from .lp_types import LinearProgram, LPResult
from .program_pieces import Layout
from .solvers import solve

logger = logging.getLogger(__name__)

#: The released map's total variation may exceed the LP optimum by at most this.
CENTRE_OBJECTIVE_TOL = 1e-8


class ReleasesCentre:
    """Mixin of `TOT`: the centre of the optimal maps of a fit, checked like every released map
    (`_check_map`, from `FitChecks`)."""

    eta: float
    choice_: str
    centre_seconds_: float
    _check_map: Callable[[TotProgram, np.ndarray, LPResult], None]

    def _centre(
        self,
        prog: TotProgram,
        lp: LinearProgram,
        layout: Layout,
        vertex: np.ndarray,
        result: LPResult,
    ) -> np.ndarray:
        """The analytic centre of the optimal maps (see `TotProgram.centring_program`)."""
        start = time.perf_counter()
        cp = prog.centring_program(self.eta)
        row_dual = result.row_dual
        if row_dual is None:
            # An optimal dual fixes the optimal face; HiGHS gives one exactly.
            exact = solve(lp, "highs", None, prog.seed_columns(lp.shape[1]))
            row_dual = exact.row_dual if exact.status == "optimal" else None
        cen = None
        if row_dual is not None:
            cen = analytic_centre(
                cp.A,
                cp.b,
                cp.c,
                prog.centring_dual(cp, layout, row_dual),
                cp.free,
                zeros=lambda f: prog.centring_zeros(cp, f),
                point=prog.centring_point(cp, vertex),
            )
        self.centre_seconds_ = time.perf_counter() - start
        if cen is None or cen.x is None:
            # Happens on nearly degenerate programs (eta within ~1e-7 of its smallest feasible
            # value): said loudly and recorded in choice_, never silently.
            why = (
                "HiGHS gave no optimal dual"
                if cen is None
                else f"{cen.detail}, after {cen.iterations} Newton steps"
            )
            warnings.warn(
                f"tot: the centre of the optimal maps could not be computed ({why}); "
                f"releasing {result.solver}'s vertex instead (choice_ = 'vertex')",
                stacklevel=3,
            )
            self.choice_ = "vertex"
            return vertex
        self.choice_ = "centre"
        P = cen.x[: prog.V]
        P = P / np.bincount(prog.var_row, weights=P, minlength=prog.R)[prog.var_row]
        optimum = prog.total_variation(vertex)
        tv = prog.total_variation(P)
        if tv > optimum + CENTRE_OBJECTIVE_TOL:
            raise SolverError(
                f"tot: the centre of the optimal maps has total variation {tv:.10g}, above the "
                f"optimum {optimum:.10g} of {result.solver} by more than "
                f"{CENTRE_OBJECTIVE_TOL:g}; pass choice='vertex' to release the solver's vertex"
            )
        self._check_map(prog, P, result)
        logger.info(
            "tot: centre of the optimal maps in %.3f s (%d Newton steps%s), TV %.10g (vertex "
            "%.10g)",
            self.centre_seconds_,
            cen.iterations,
            "" if cen.face_from == "dual" else f", face from the {cen.face_from}",
            tv,
            optimum,
        )
        return P
