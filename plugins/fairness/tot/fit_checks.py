"""What TOT's fit checks and says when it fails: the map against its bounds, groups without rows,
a failed or an infeasible solve (with the binding family named), in the schema's labels."""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np

from safes_framework.errors import DataError, SolverError
from safes_framework.schema import Schema

from .linear_program import TotProgram
from .lp_types import LPResult
from .program_pieces import Cells
from .solvers import solve

#: Largest violation of any constraint accepted from a solver (probabilities).
FEASIBILITY_TOL = 1e-6

_OTHER_SOLVER = {"highs": "solver='clarabel'"}


class FitChecks:
    """Mixin of `TOT`: the checks of a fit and the messages of its errors and warnings."""

    eta: float
    constraint: Literal["difference", "ratio"]
    clist: tuple[float, ...]
    dlist: tuple[float, ...]
    solver: str
    solver_options: dict[str, Any]
    missing_groups: Literal["skip", "raise"]
    schema_: Schema
    protected_: tuple[str, ...]
    xy_columns_: tuple[str, ...]
    group_sizes_: tuple[int, ...]

    def _check_map(self, prog: TotProgram, P: np.ndarray, result: LPResult) -> None:
        """Check the map itself against the discrimination and distortion bounds."""
        checks = [("discrimination", prog.discrimination(P), self.eta)]
        checks += [
            (f"excess distortion (cost >= {c:g})", v, d)
            for c, d, v in zip(prog.thresholds, prog.bounds, prog.excess_distortion(P), strict=True)
        ]
        for what, value, bound in checks:
            if value > bound + FEASIBILITY_TOL:
                raise SolverError(
                    f"tot: the map from {result.solver} ({result.detail}) has {what} "
                    f"{value:.8g} > {bound:g} (tolerance {FEASIBILITY_TOL:g}); {self._suggest()}"
                )

    def _missing_groups(self, cells: Cells) -> tuple[tuple[Any, ...], ...]:
        n_groups = math.prod(self.group_sizes_)
        empty = np.setdiff1d(np.arange(n_groups), cells.groups)
        if empty.size == 0:
            return ()
        labels = tuple(self._group_labels(int(g)) for g in empty)
        names = ", ".join(f"{dict(zip(self.protected_, lab, strict=False))}" for lab in labels[:4])
        more = "" if len(labels) <= 4 else f" and {len(labels) - 4} more"
        msg = (
            f"tot: {len(labels)} group(s) of the protected attributes {list(self.protected_)} "
            f"have no rows: {names}{more}"
        )
        if self.missing_groups == "raise":
            raise DataError(
                msg + "; pass missing_groups='skip' to constrain only the groups present"
            )
        if len(cells.groups) < 2:
            warnings.warn(
                msg + "; with fewer than two groups the discrimination constraint is void",
                stacklevel=3,
            )
        else:
            warnings.warn(
                msg + "; the discrimination constraint covers the groups present "
                "only, and rows of the missing groups are left unchanged by "
                "transform",
                stacklevel=3,
            )
        return labels

    def _label(self, column: str, code: int) -> Any:
        v = self.schema_[column].decode(np.array([int(code)]))[0]
        return v.item() if isinstance(v, np.generic) else v

    def _group_labels(self, g: int) -> tuple[Any, ...]:
        codes = np.unravel_index(g, self.group_sizes_)
        return tuple(self._label(c, int(k)) for c, k in zip(self.protected_, codes, strict=False))

    def _labels(self, codes: np.ndarray) -> dict[str, Any]:
        return {c: self._label(c, int(k)) for c, k in zip(self.xy_columns_, codes, strict=False)}

    def _suggest(self) -> str:
        other = _OTHER_SOLVER.get(self.solver, "solver='highs'")
        return f"try {other}, or pass solver_options to the solver"

    def _failed_message(self, result: LPResult) -> str:
        return (
            f"tot: the solver {result.solver} failed ({result.detail}) after "
            f"{result.seconds:.2f} s; this is not a proof of infeasibility; {self._suggest()}"
        )

    def _infeasible_message(self, prog: TotProgram, result: LPResult) -> str:
        """Name the binding family: solve for the smallest feasible eta with and without the
        non-zero excess-distortion bounds."""
        form = (
            "difference: |P(y'|d) - P(y'|d')|"
            if self.constraint == "difference"
            else "ratio: |P(y'|d) / P(y) - 1|"
        )
        head = (
            f"tot: infeasible ({result.solver}: {result.detail}): no map meets the "
            f"discrimination bound eta={self.eta:g} ({form} <= eta) together with the "
            f"excess-distortion bounds clist={list(self.clist)}, dlist={list(self.dlist)}"
        )
        try:
            with_d = self._min_eta(prog, distortion=True)
            without = self._min_eta(prog, distortion=False) if prog.thresholds else with_d
        except SolverError as exc:
            return head + f". (Diagnosis failed: {exc})"
        if with_d is None:
            return (
                head + ". The excess-distortion constraints cannot be met even without the "
                "discrimination bound; raise dlist"
            )
        forbidden = [c for c, d in zip(self.clist, self.dlist, strict=True) if d == 0]
        msg = (
            head + f". The discrimination constraint binds: with these distortion bounds "
            f"the smallest feasible eta is {with_d:.6g}; use eta >= {with_d:.6g}"
        )
        if without is not None and without < with_d - 1e-9:
            msg += (
                f", or raise the non-zero dlist bounds (with only the moves of bound 0 "
                f"forbidden, the smallest feasible eta is {max(without, 0.0):.6g})"
            )
        else:
            what = f"cost >= {min(forbidden):g}, bound 0" if forbidden else "cost FORBIDDEN"
            msg += (
                f". Raising the non-zero dlist bounds does not help: the forbidden moves "
                f"({what}) bind; allow some of them, or change the distortion"
            )
        return msg

    def _min_eta(self, prog: TotProgram, *, distortion: bool) -> float | None:
        lp, _ = prog.lp(None, distortion=distortion)
        res = solve(lp, self.solver, self.solver_options, prog.seed_columns(lp.shape[1]))
        if res.status == "infeasible":
            return None
        if res.x is None:
            raise SolverError(self._failed_message(res))
        return float(res.objective)  # type: ignore[arg-type]
