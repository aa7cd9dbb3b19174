"""TOT: Calmon et al. (2017) optimized pre-processing as a sparse LP, as a fairness plugin."""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from safes_framework import hookimpl
from safes_framework.base import FairnessOutput, FairnessTransformer
from safes_framework.errors import ConfigError, DataError, InfeasibleError, SolverError
from safes_framework.registry import Registry
from safes_framework.schema import Schema

from . import distortion as distortions
from .distortion import Distortion, FunctionDistortion
from .linear_program import Cells, Layout, Targets, TotProgram
from .solvers import LinearProgram, LPResult, analytic_centre, normalize_solver, solve

logger = logging.getLogger(__name__)

#: Largest violation of any constraint accepted from a solver (probabilities).
FEASIBILITY_TOL = 1e-6
#: The released map's total variation may exceed the LP optimum by at most this.
CENTRE_OBJECTIVE_TOL = 1e-8

_OTHER_SOLVER = {"highs": "solver='clarabel'"}


class TOT(FairnessTransformer):
    """Optimized pre-processing (Calmon, Wei, Vinzamuri, Ramamurthy, Varshney, NeurIPS 2017).

    Learns a randomized map P(x', y' | d, x, y) that keeps the protected attributes D (all
    protected columns of the schema, taken jointly) and minimises the total variation between
    p(x, y) and the transformed p(x', y'), subject to a discrimination bound `eta` and bounds on
    excess distortion; `transform` replaces each record's (x, y) with one draw from its row.
    The LP is built on the table's non-empty cells only and solved exactly (HiGHS by default).

    Args:
        eta: the discrimination bound (>= 0).
        distortion: "adult" or "compas" (the paper's metrics for the bundled tables),
            "generic" (`distortion.generic`: 1 per step or change of each attribute, 1 for a
            label flip, added), a path to a distortion file (.toml or .json, read at once), a
            `Distortion` of `Ordinal`/`Moves` terms, a `FunctionDistortion` or a function
            `fn(old: dict, new: dict) -> float`; None ("auto") picks the built-in whose
            columns are the schema's non-protected columns, else the generic default (with
            a `GenericDistortionWarning`).
        constraint: "difference" (|P(y'|d) - P(y'|d')| <= eta for every pair of groups and
            every label value; AIF360's and the SAFES paper's form) or "ratio"
            (|P(y'|d) / P(y) - 1| <= eta; Calmon et al. eq. 3).
        clist: distortion thresholds c_k.
        dlist: bounds delta_k: a move costing >= c_k has probability <= delta_k. A bound of 0
            forbids such moves outright.
        per_group: bound excess distortion for every (d, x, y) (the paper's eq. 5) instead of
            on the conditional averaged over groups given (x, y) (AIF360's form, default).
        solver: "highs" (HiGHS dual simplex through highspy; exact vertex solutions),
            "clarabel" (interior point through cvxpy) or "cvxpy:NAME".
        solver_options: passed to the solver (HiGHS option names, or cvxpy `solve` keywords).
        missing_groups: what to do when a group (a joint protected value of the schema's
            domain) has no row: "skip" (warn, constrain the groups present, leave later rows
            of that group unchanged) or "raise".
        choice: which optimal map to release when there are several: "centre" (default) the
            analytic centre of the set of optimal maps, the same whatever `solver` (see
            docs/fairness.md), or "vertex" the vertex the solver returned.

    Attributes (after `fit`):
        objective_value_: the optimal total variation TV(p_XY, p_X'Y').
        status_: "optimal" or "optimal_inaccurate".
        solver_: the solver's name and version.
        discrimination_: the fitted map's discrimination, in the chosen form.
        excess_distortion_: largest excess-distortion probability per threshold of `clist`.
        n_variables_, n_constraints_: size of the LP.
        skipped_groups_: groups of the domain without rows (labels), when skipped.
        choice_: "centre" or "vertex": which optimal map was released.
        fit_seconds_, solve_seconds_, centre_seconds_: wall times.
    """

    name = "tot"

    def __init__(
        self,
        eta: float = 0.05,
        *,
        distortion: str | Distortion | FunctionDistortion | Callable[..., Any] | None = None,
        constraint: Literal["difference", "ratio"] = "difference",
        clist: Sequence[float] = (0.99, 1.99, 2.99),
        dlist: Sequence[float] = (0.1, 0.05, 0.0),
        per_group: bool = False,
        solver: str = "highs",
        solver_options: Mapping[str, Any] | None = None,
        missing_groups: Literal["skip", "raise"] = "skip",
        choice: Literal["centre", "vertex"] = "centre",
    ) -> None:
        if (
            isinstance(eta, bool)
            or not isinstance(eta, (int, float))
            or not (math.isfinite(eta) and eta >= 0)
        ):
            raise ConfigError(f"tot: eta must be a finite number >= 0, got {eta!r}")
        if constraint not in ("difference", "ratio"):
            raise ConfigError(
                f"tot: constraint must be 'difference' or 'ratio', got {constraint!r}"
            )
        try:
            cl = tuple(float(c) for c in clist)
            dl = tuple(float(d) for d in dlist)
        except (TypeError, ValueError):
            raise ConfigError(
                f"tot: clist and dlist must be sequences of numbers, got {clist!r}, {dlist!r}"
            ) from None
        if len(cl) != len(dl):
            raise ConfigError(f"tot: clist {list(cl)} and dlist {list(dl)} differ in length")
        if any(not (math.isfinite(c) and c > 0) for c in cl):
            raise ConfigError(f"tot: clist thresholds must be finite and > 0, got {list(cl)}")
        if any(not (0 <= d <= 1) for d in dl):
            raise ConfigError(f"tot: dlist bounds must lie in [0, 1], got {list(dl)}")
        if missing_groups not in ("skip", "raise"):
            raise ConfigError(
                f"tot: missing_groups must be 'skip' or 'raise', got {missing_groups!r}"
            )
        if choice not in ("centre", "vertex"):
            raise ConfigError(f"tot: choice must be 'centre' or 'vertex', got {choice!r}")
        self.distortion_file: str | None = None
        if distortions.is_file(distortion):
            self.distortion_file = str(distortion)
            distortion = distortions.load_distortion(distortion)  # type: ignore[arg-type]
        elif isinstance(distortion, str) and distortion not in (
            *distortions.BUILTIN, "auto", "generic"
        ):
            raise ConfigError(
                f"tot: unknown distortion {distortion!r}; built-ins: {sorted(distortions.BUILTIN)}"
                ', "generic", a path to a .toml distortion file, a Distortion(...) or a function'
            )
        self.eta = float(eta)
        self.distortion = distortion
        self.constraint = constraint
        self.clist = cl
        self.dlist = dl
        self.per_group = bool(per_group)
        self.solver = normalize_solver(solver)
        self.solver_options = dict(solver_options or {})
        self.missing_groups = missing_groups
        self.choice = choice
        self._fitted = False
        self._resolved: list[tuple[Schema, Distortion | FunctionDistortion]] = []

    def params(self) -> dict[str, Any]:
        # After fit, report the distortion actually used (e.g. what "auto" resolved to).
        d = getattr(self, "distortion_", None) or self.distortion
        if d is not None and d is distortions.BUILTIN.get(getattr(d, "name", "")):
            dist: Any = d.name
        elif isinstance(d, (Distortion, FunctionDistortion)):
            dist = d.describe()
        elif d is None or isinstance(d, str):
            dist = d or "auto"
        else:
            dist = getattr(d, "__qualname__", repr(d))
        file = {} if self.distortion_file is None else {"distortion_file": self.distortion_file}
        return {
            "eta": self.eta,
            "constraint": self.constraint,
            "distortion": dist,
            **file,
            "clist": list(self.clist),
            "dlist": list(self.dlist),
            "per_group": self.per_group,
            "solver": self.solver,
            "solver_options": dict(self.solver_options),
            "missing_groups": self.missing_groups,
            "choice": self.choice,
        }

    # -- encoding --------------------------------------------------------------------------------

    def _index(self, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(codes, group index, (x, y) cell index) of every record."""
        schema = self.schema_
        codes = schema.encode_array(data)
        names = list(schema.names)
        d_idx = [names.index(c) for c in self.protected_]
        xy_idx = [names.index(c) for c in self.xy_columns_]
        group = np.ravel_multi_index(codes[:, d_idx].T, self.group_sizes_)
        cell = np.ravel_multi_index(codes[:, xy_idx].T, self.cell_sizes_)
        return codes, group.astype(np.int64), cell.astype(np.int64)

    # -- fit -------------------------------------------------------------------------------------

    def fit(self, data: pd.DataFrame, schema: Schema) -> TOT:
        """Solve the LP on `data` (schema labels), using `schema`'s domain.

        Raises:
            InfeasibleError: no map meets the bounds (names the binding family, what to relax).
            SolverError: the solver failed; names it and suggests another.
            ConfigError: bad distortion for this schema, or a domain too large to index.
            DataError: `data` does not fit `schema`, or a group has no rows and
                `missing_groups="raise"`.
        """
        start = time.perf_counter()
        self._fitted = False  # a failed re-fit must not leave the previous map usable
        spec = self._domain(schema)

        _, group, cell = self._index(data)
        cells = Cells.from_codes(group, cell, self.cell_sizes_)
        self.skipped_groups_ = self._missing_groups(cells)

        forbidden_at = self._forbidden_at()
        src, tcodes, tcost = spec.targets(
            schema, self.xy_columns_, cells.source_codes, forbidden_at
        )
        targets = Targets.build(cells, src, tcodes, tcost, self.cell_sizes_)
        deg = np.diff(targets.ptr)
        if (deg == 0).any():
            s = int(np.flatnonzero(deg == 0)[0])
            raise InfeasibleError(
                f"tot: infeasible: the cell {self._labels(cells.source_codes[s])} has no allowed "
                f"move: every target, staying put included, is forbidden (cost FORBIDDEN, or "
                f">= {forbidden_at:g} where dlist bounds by 0). Give staying put a cost of 0 "
                "in the distortion, or a positive bound to that threshold"
            )
        binding = [
            (c, d)
            for c, d in zip(self.clist, self.dlist, strict=False)
            if 0 < d < 1 and c < forbidden_at
        ]
        prog = TotProgram(
            cells,
            targets,
            self.constraint,
            tuple(c for c, _ in binding),
            tuple(d for _, d in binding),
            self.per_group,
        )
        lp, layout = prog.lp(self.eta)
        self.n_variables_, self.n_constraints_ = lp.shape[1], lp.shape[0]
        logger.info(
            "tot: LP with %d variables, %d constraints, %d nonzeros",
            lp.shape[1],
            lp.shape[0],
            lp.A.nnz,
        )
        result = solve(lp, self.solver, self.solver_options, prog.seed_columns(lp.shape[1]))
        self.solve_seconds_ = result.seconds
        if result.status == "infeasible":
            raise InfeasibleError(self._infeasible_message(prog, result))
        if result.status == "failed" or result.x is None:
            raise SolverError(self._failed_message(result))
        viol = lp.violation(result.x)
        worst = float(viol.max()) if viol.size else 0.0
        if worst > FEASIBILITY_TOL:
            fam = next(
                f for f, s in layout.families.items() if viol[s].size and viol[s].max() == worst
            )
            raise SolverError(
                f"tot: {result.solver} returned a solution ({result.detail}) that violates the "
                f"{fam} constraints by {worst:.2e} (tolerance {FEASIBILITY_TOL:g}); "
                f"{self._suggest()}"
            )
        if result.status == "optimal_inaccurate":
            warnings.warn(
                f"tot: {result.solver} solved to reduced accuracy ({result.detail}); the "
                f"solution was checked against every constraint to {FEASIBILITY_TOL:g}",
                stacklevel=2,
            )
        P = prog.to_map(result.x)
        self._check_map(prog, P, result)
        self.centre_seconds_ = 0.0
        self.choice_ = "vertex"
        if self.choice == "centre":
            P = self._centre(prog, lp, layout, P, result)
        self.program_ = prog
        self.map_ = P
        self.status_ = result.status
        self.solver_ = result.solver
        self.objective_value_ = prog.total_variation(P)
        self.discrimination_ = prog.discrimination(P)
        self.excess_distortion_ = self._excess(prog, P)
        self._prepare_sampling(prog, P)
        self._fitted = True
        self.fit_seconds_ = time.perf_counter() - start
        logger.info(
            "tot: %s in %.3f s, TV = %.7f (%s)",
            self.status_,
            self.fit_seconds_,
            self.objective_value_,
            self.solver_,
        )
        return self

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

    def _domain(self, schema: Schema) -> Distortion | FunctionDistortion:
        """Index the schema's domain (groups, (x, y) cells) and resolve the distortion."""
        if not isinstance(schema, Schema):
            raise ConfigError(f"tot: schema must be a safes_framework.Schema, got {schema!r}")
        self.schema_ = schema
        self.protected_ = tuple(schema.protected)
        self.xy_columns_ = tuple(
            c for c in schema.names if c not in schema.protected and c != schema.label
        ) + (schema.label,)
        self.group_sizes_ = tuple(schema[c].size for c in self.protected_)
        self.cell_sizes_ = tuple(schema[c].size for c in self.xy_columns_)
        n_groups, n_cells = math.prod(self.group_sizes_), math.prod(self.cell_sizes_)
        if n_groups * n_cells >= 2**62:
            raise ConfigError(
                f"tot: the domain has {n_groups} groups x {n_cells} (x, y) cells, too many to "
                "index; coarsen some columns or drop them from the schema"
            )
        # Resolved once per schema (shared with pre-flight copies): a fallback warns once.
        cached = next((d for sch, d in self._resolved if sch == schema), None)
        spec = cached or distortions.resolve(self.distortion, schema, self.xy_columns_)
        if cached is None:
            self._resolved.append((schema, spec))
        self.distortion_ = spec
        return spec

    def _forbidden_at(self) -> float:
        """The smallest threshold whose bound is 0: moves costing that much get no variable."""
        return min(
            (c for c, d in zip(self.clist, self.dlist, strict=False) if d == 0), default=np.inf
        )

    def preflight(self, schema: Schema) -> dict[str, Any]:
        """Resolve the distortion on `schema` and size the LP, without data.

        Checks that the distortion's columns agree with the schema (unknown or protected
        columns, labels outside a column's domain) and that the domain can be indexed.
        Returns the distortion's name, the number of groups and (x, y) cells, and the number
        of moves the distortion allows over the whole domain (`distortion.move_count`): the
        LP has at most one map variable per allowed move of each non-empty cell.
        """
        probe = copy.copy(self)  # a fitted transformer keeps its own domain
        spec = probe._domain(schema)
        moves, exact = distortions.move_count(
            spec, schema, probe.xy_columns_, self._forbidden_at()
        )
        return {
            "distortion": spec.name,
            "groups": math.prod(probe.group_sizes_),
            "cells": math.prod(probe.cell_sizes_),
            "moves": moves,
            "moves_counted": "exactly" if exact else "upper bound",
        }

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

    def _excess(self, prog: TotProgram, P: np.ndarray) -> dict[float, float]:
        values = dict(zip(prog.thresholds, prog.excess_distortion(P), strict=False))
        return {c: values.get(c, 0.0) for c in self.clist}

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

    # -- transform -------------------------------------------------------------------------------

    def _prepare_sampling(self, prog: TotProgram, P: np.ndarray) -> None:
        within = np.cumsum(P)
        starts = prog.row_ptr[:-1]
        base = within[starts] - P[starts]
        self._cum = prog.var_row + (within - base[prog.var_row])
        self._row_ptr = prog.row_ptr
        self._row_key = prog.cells.row_key
        self._var_cell = prog.targets.cell[prog.var_move]

    def transform(self, data: pd.DataFrame, rng: np.random.Generator) -> FairnessOutput:
        """Replace each record's (x, y) by a draw from its row of the fitted map.

        Records whose (d, x, y) cell was empty when fitting (possible only when transforming
        another table) are left unchanged. Returns the table in the schema's labels (declared
        columns, in schema order, the input's index); no weights.
        """
        if not self._fitted:
            raise ConfigError("tot: call fit before transform")
        if not isinstance(rng, np.random.Generator):
            raise ConfigError(f"tot: rng must be a numpy Generator, got {type(rng).__name__}")
        codes, group, cell = self._index(data)
        n_cells = math.prod(self.cell_sizes_)
        key = group * n_cells + cell
        pos = np.minimum(np.searchsorted(self._row_key, key), len(self._row_key) - 1)
        found = self._row_key[pos] == key
        u = rng.random(len(key))
        rows = pos[found]
        idx = np.searchsorted(self._cum, rows + u[found], side="right")
        idx = np.clip(idx, self._row_ptr[rows], self._row_ptr[rows + 1] - 1)
        new_cell = cell.copy()
        new_cell[found] = self._var_cell[idx]
        if (~found).any():
            logger.warning(
                "tot: %d record(s) fall in (d, x, y) cells that were empty at fit "
                "time and are left unchanged",
                int((~found).sum()),
            )
        new_xy = np.stack(np.unravel_index(new_cell, self.cell_sizes_), axis=1)
        out = data.loc[:, list(self.schema_.names)].copy()
        names = list(self.schema_.names)
        for j, c in enumerate(self.xy_columns_):
            changed = new_xy[:, j] != codes[:, names.index(c)]
            if changed.any():
                col = self.schema_[c]
                values = out[c].to_numpy(dtype=object, copy=True)
                values[changed] = col.decode(new_xy[changed, j], rng)
                out[c] = pd.Series(values, index=out.index).astype(out[c].dtype)
        return FairnessOutput(out)

    # -- inspection ------------------------------------------------------------------------------

    def mapping(self, threshold: float = 0.0) -> pd.DataFrame:
        """The fitted map in long form: one row per (d, x, y) -> (x', y') with probability
        above `threshold`, in the schema's labels (target columns suffixed with "'")."""
        if not self._fitted:
            raise ConfigError("tot: call fit before mapping")
        prog, P = self.program_, self.map_
        keep = P > threshold
        rows = prog.var_row[keep]
        g, c = np.divmod(self._row_key[rows], math.prod(self.cell_sizes_))
        dcodes = np.unravel_index(g, self.group_sizes_)
        xcodes = np.unravel_index(c, self.cell_sizes_)
        tcodes = np.unravel_index(self._var_cell[keep], self.cell_sizes_)
        out: dict[str, Any] = {}
        for name, k in zip(self.protected_, dcodes, strict=False):
            out[name] = self.schema_[name].decode(np.asarray(k))
        for name, k in zip(self.xy_columns_, xcodes, strict=False):
            out[name] = self.schema_[name].decode(np.asarray(k))
        for name, k in zip(self.xy_columns_, tcodes, strict=False):
            out[name + "'"] = self.schema_[name].decode(np.asarray(k))
        out["probability"] = P[keep]
        return pd.DataFrame(out)


@hookimpl
def safes_register_fairness_transformers(register: Registry) -> None:
    register.add(
        "tot",
        TOT,
        description="Calmon et al. 2017 optimized pre-processing (TOT), exact sparse LP",
    )
