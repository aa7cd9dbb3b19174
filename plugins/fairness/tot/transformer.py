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
from safes_framework.errors import ConfigError, InfeasibleError, SolverError
from safes_framework.registry import Registry
from safes_framework.schema import Schema

from . import distortion as distortions
from .centre_release import ReleasesCentre
from .distortion import Distortion, FunctionDistortion
from .fit_checks import FEASIBILITY_TOL, FitChecks
from .linear_program import TotProgram
from .program_pieces import Cells, Targets
from .solvers import normalize_solver, solve

logger = logging.getLogger(__name__)


class TOT(FitChecks, ReleasesCentre, FairnessTransformer):
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

    def _excess(self, prog: TotProgram, P: np.ndarray) -> dict[float, float]:
        values = dict(zip(prog.thresholds, prog.excess_distortion(P), strict=False))
        return {c: values.get(c, 0.0) for c in self.clist}

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
