"""The declarative distortion language of TOT: per-column move costs (`Ordinal`, `Moves`)
combined over columns (`Distortion`), `FORBIDDEN`, and what TOT needs from any distortion."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast

import numpy as np
import pandas as pd

from safes_framework.errors import ConfigError
from safes_framework.schema import Column, Schema

#: A cost that no bound allows: such a move never gets a variable in the LP.
FORBIDDEN = math.inf

Scalar = str | int | float | bool
CostSteps = float | Sequence[float]


def _check_cost(where: str, value: float) -> float:
    v = float(value)
    if not (v >= 0) or math.isnan(v):
        raise ConfigError(
            f"{where}: costs must be non-negative numbers (or FORBIDDEN), got {value!r}"
        )
    return v


def _steps(where: str, spec: CostSteps) -> float | tuple[float, ...]:
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return _check_cost(where, spec)
    try:
        steps = tuple(_check_cost(where, v) for v in spec)  # type: ignore[union-attr]
    except TypeError:
        raise ConfigError(
            f"{where}: expected a number or a sequence of numbers, got {spec!r}"
        ) from None
    if not steps:
        raise ConfigError(f"{where}: give at least one step cost")
    return steps


def _step_costs(spec: float | tuple[float, ...], k: np.ndarray) -> np.ndarray:
    """Cost of moving k >= 1 steps: linear (`spec` per step) or `spec[k-1]`, last entry repeated."""
    if isinstance(spec, float):
        return spec * k.astype(np.float64)
    table = np.asarray(spec, dtype=np.float64)
    return table[np.minimum(k, len(table)) - 1]


@dataclass(frozen=True)
class Ordinal:
    """Cost of moving an ordered column by k steps of its codes (the schema's declared order).

    Args:
        column: the column (an Integer, a Categorical in meaningful order, or binned).
        up: cost of moving k steps up: a number is a cost per step (k * up); a sequence gives
            the cost of 1, 2, ... steps, its last entry applying to all longer moves.
        down: the same for moving down; None means the same as `up` (symmetric).

    Example: `Ordinal("education-reduced", up=(0, 3), down=(3,))` lets education rise by one
    step for free and makes every other move cost 3.
    """

    column: str
    up: CostSteps
    down: CostSteps | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "up", _steps(f"Ordinal({self.column!r}).up", self.up))
        if self.down is not None:
            object.__setattr__(self, "down", _steps(f"Ordinal({self.column!r}).down", self.down))

    def matrix(self, col: Column) -> np.ndarray:
        """(size, size) costs, rows old code, columns new code."""
        k = np.arange(col.size)
        step = k[None, :] - k[:, None]
        out = np.zeros((col.size, col.size))
        upm, downm = step > 0, step < 0
        out[upm] = _step_costs(self.up, step[upm])  # type: ignore[arg-type]
        down = self.up if self.down is None else self.down
        out[downm] = _step_costs(down, -step[downm])  # type: ignore[arg-type]
        return out

    def describe(self) -> dict[str, Any]:
        return {"kind": "ordinal", "column": self.column, "up": self.up, "down": self.down}


@dataclass(frozen=True)
class Moves:
    """Cost of changing a column from one value to another, in the schema's labels.

    Args:
        column: the column.
        costs: {(old, new): cost} for listed moves.
        change: cost of any other change (staying costs 0).

    Example: `Moves("income>50K", {(1, 0): 1})` charges 1 for turning a favourable label into
    an unfavourable one; `Moves("two_year_recid", change=2)` charges 2 for any flip.
    """

    column: str
    costs: Mapping[tuple[Scalar, Scalar], float] | tuple[tuple[Scalar, Scalar, float], ...] = ()
    change: float = 0.0

    def __post_init__(self) -> None:
        where = f"Moves({self.column!r})"
        items = (
            self.costs.items()
            if isinstance(self.costs, Mapping)
            else (((o, n), c) for o, n, c in self.costs)
        )
        norm = []
        for key, cost in items:
            if not (isinstance(key, tuple) and len(key) == 2):
                raise ConfigError(f"{where}: keys must be (old, new) pairs, got {key!r}")
            norm.append((key[0], key[1], _check_cost(where, cost)))
        object.__setattr__(self, "costs", tuple(norm))
        object.__setattr__(self, "change", _check_cost(where, self.change))

    def matrix(self, col: Column) -> np.ndarray:
        """(size, size) costs, rows old code, columns new code."""
        out = np.full((col.size, col.size), float(self.change))
        np.fill_diagonal(out, 0.0)
        triples = cast(tuple[tuple[Scalar, Scalar, float], ...], self.costs)
        if triples:
            olds = col.encode(pd.Series([o for o, _, _ in triples], dtype=object))
            news = col.encode(pd.Series([n for _, n, _ in triples], dtype=object))
            out[olds, news] = [c for _, _, c in triples]
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "moves",
            "column": self.column,
            "costs": [list(t) for t in self.costs],
            "change": self.change,
        }


Term = Ordinal | Moves


class DistortionSpec(Protocol):
    """What TOT needs from a distortion metric."""

    name: str

    def targets(
        self, schema: Schema, columns: Sequence[str], sources: np.ndarray, forbidden_at: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Allowed moves from each source cell.

        Args:
            schema: the public schema.
            columns: the cell's columns (X then Y), in mixed-radix order.
            sources: (S, m) codes of the source cells.
            forbidden_at: moves costing this much or more get no entry (inf: only FORBIDDEN).

        Returns:
            `src` (E,) index into `sources`, sorted; `codes` (E, m) target codes; `cost` (E,).
        """
        ...

    def matrix(self, schema: Schema, columns: Sequence[str]) -> np.ndarray:
        """The dense (C, C) distortion over all cells (rows old, columns new); small domains."""
        ...

    def describe(self) -> dict[str, Any] | str:
        """A JSON-serialisable description (recorded in the release)."""
        ...


@dataclass(frozen=True)
class Distortion:
    """A declared distortion metric: per-column move costs combined by max or by sum.

    A column no term mentions may change at no cost. Protected attributes never change, so
    terms on them are rejected.

    Args:
        terms: `Ordinal` and `Moves` terms (several terms on one column combine like columns).
        combine: "max" (the most expensive column change; a priority list of rules with
            decreasing costs, as Calmon et al.'s Adult metric) or "sum" (costs add up, as
            their COMPAS metric).
        name: a name for reports.
    """

    terms: tuple[Term, ...] = field(default_factory=tuple)
    combine: Literal["max", "sum"] = "max"
    name: str = "custom"

    def __post_init__(self) -> None:
        terms = tuple(self.terms)
        object.__setattr__(self, "terms", terms)
        for t in terms:
            if not isinstance(t, (Ordinal, Moves)):
                raise ConfigError(
                    f"distortion {self.name!r}: {t!r} is not an Ordinal or Moves term"
                )
        if self.combine not in ("max", "sum"):
            raise ConfigError(
                f"distortion {self.name!r}: combine must be 'max' or 'sum', got {self.combine!r}"
            )

    def column_matrices(self, schema: Schema, columns: Sequence[str]) -> list[np.ndarray]:
        """One (size, size) cost matrix per column of `columns` (zeros where no term applies)."""
        unknown = [t.column for t in self.terms if t.column not in schema]
        if unknown:
            raise ConfigError(
                f"distortion {self.name!r} has a term on column {unknown[0]!r}, which the schema "
                f"does not declare (columns: {list(schema.names)})"
            )
        fixed = [t.column for t in self.terms if t.column not in columns]
        if fixed:
            raise ConfigError(
                f"distortion {self.name!r} has a term on column {fixed[0]!r}, which TOT never "
                f"changes (a protected attribute); remove the term"
            )
        mats = []
        for name in columns:
            col = schema[name]
            mine = [t.matrix(col) for t in self.terms if t.column == name]
            if not mine:
                mats.append(np.zeros((col.size, col.size)))
            elif self.combine == "max":
                mats.append(np.maximum.reduce(mine))
            else:
                mats.append(np.add.reduce(mine))
        return mats

    def targets(
        self, schema: Schema, columns: Sequence[str], sources: np.ndarray, forbidden_at: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mats = self.column_matrices(schema, columns)
        S = sources.shape[0]
        src = np.arange(S)
        cost = np.zeros(S)
        codes = np.empty((S, 0), dtype=np.int64)
        # Expand column by column: each step repeats every partial move once per allowed new
        # value of the next column (CSR of allowed moves per old value), vectorised.
        for j, M in enumerate(mats):
            allowed = M < forbidden_at
            deg = allowed.sum(axis=1)
            ptr = np.concatenate(([0], np.cumsum(deg)))
            new_vals = np.nonzero(allowed)[1]
            old = sources[src, j]
            reps = deg[old]
            first = np.repeat(ptr[old], reps)
            within = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
            nv = new_vals[first + within]
            src = np.repeat(src, reps)
            step_cost = M[np.repeat(old, reps), nv]
            prev = np.repeat(cost, reps)
            cost = np.maximum(prev, step_cost) if self.combine == "max" else prev + step_cost
            codes = np.column_stack((np.repeat(codes, reps, axis=0), nv))
            if self.combine == "sum":  # costs are non-negative: a partial sum only grows
                keep = cost < forbidden_at
                src, cost, codes = src[keep], cost[keep], codes[keep]
        return src, codes, cost

    def matrix(self, schema: Schema, columns: Sequence[str]) -> np.ndarray:
        mats = self.column_matrices(schema, columns)
        sizes = [m.shape[0] for m in mats]
        out = np.zeros((1, 1))
        for M, size in zip(mats, sizes, strict=False):
            # Mixed radix, last column fastest: (a, b) x (a', b') -> combine(M_a, M_b).
            big = out[:, None, :, None]
            small = M[None, :, None, :]
            both = np.maximum(big, small) if self.combine == "max" else big + small
            out = both.reshape(out.shape[0] * size, out.shape[1] * size)
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "combine": self.combine,
            "terms": [t.describe() for t in self.terms],
        }
