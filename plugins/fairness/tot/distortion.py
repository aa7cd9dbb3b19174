"""Distortion metrics for TOT as data: per-column move costs, built-in specs, the generic
default, distortion files (TOML/JSON), sparse targets."""

from __future__ import annotations

import json
import math
import os
import tomllib
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import numpy as np
import pandas as pd

from safes_framework.errors import ConfigError
from safes_framework.schema import Categorical, Column, Schema

#: A cost that no bound allows: such a move never gets a variable in the LP.
FORBIDDEN = math.inf

#: Dense evaluations a callable distortion may need (sources x all target cells).
MAX_CALLABLE_PAIRS = 50_000_000
MAX_SCALAR_CALLABLE_PAIRS = 2_000_000

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


@dataclass(frozen=True)
class FunctionDistortion:
    """The escape hatch: a distortion given by a Python function of old and new values.

    Args:
        fn: with `vectorized=False`, `fn(old, new) -> float` where `old` and `new` are
            `{column: label}` dicts of one cell each (AIF360's `distortion_fun` signature); with
            `vectorized=True`, the dicts hold equal-length numpy arrays of labels and `fn`
            returns an array of costs.
        vectorized: see `fn`. The scalar form calls `fn` once per (source cell, target cell)
            pair, so it suits small domains only.
        name: a name for reports (default: the function's name).

    Every source cell is evaluated against every cell of the domain, so the number of cells
    bounds what a function can handle; declare an `Distortion` for large domains.
    """

    fn: Callable[..., Any]
    vectorized: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ConfigError(f"FunctionDistortion needs a callable, got {self.fn!r}")
        if not self.name:
            object.__setattr__(self, "name", getattr(self.fn, "__qualname__", repr(self.fn)))

    def _costs(
        self, schema: Schema, columns: Sequence[str], old: np.ndarray, new: np.ndarray
    ) -> np.ndarray:
        cols = [schema[c] for c in columns]
        if self.vectorized:
            o = {c.name: c.decode(old[:, j]) for j, c in enumerate(cols)}
            n = {c.name: c.decode(new[:, j]) for j, c in enumerate(cols)}
            out = np.asarray(self.fn(o, n), dtype=np.float64)
            if out.shape != (old.shape[0],):
                raise ConfigError(
                    f"distortion function {self.name!r} returned shape {out.shape}, expected "
                    f"({old.shape[0]},)"
                )
        else:
            labels_old = [c.decode(old[:, j]).tolist() for j, c in enumerate(cols)]
            labels_new = [c.decode(new[:, j]).tolist() for j, c in enumerate(cols)]
            names = [c.name for c in cols]
            out = np.fromiter(
                (
                    self.fn(dict(zip(names, o, strict=False)), dict(zip(names, n, strict=False)))
                    for o, n in zip(
                        zip(*labels_old, strict=False), zip(*labels_new, strict=False), strict=False
                    )
                ),
                dtype=np.float64,
                count=old.shape[0],
            )
        bad = ~(out >= 0)
        if bad.any():
            raise ConfigError(
                f"distortion function {self.name!r} returned {out[bad][0]!r}; costs must be "
                "non-negative numbers (or FORBIDDEN)"
            )
        return out

    def _all_cells(self, schema: Schema, columns: Sequence[str]) -> np.ndarray:
        sizes = [schema[c].size for c in columns]
        return np.stack(np.unravel_index(np.arange(math.prod(sizes)), sizes), axis=1)

    def targets(
        self, schema: Schema, columns: Sequence[str], sources: np.ndarray, forbidden_at: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        C = math.prod(schema[c].size for c in columns)
        S = sources.shape[0]
        limit = MAX_CALLABLE_PAIRS if self.vectorized else MAX_SCALAR_CALLABLE_PAIRS
        if S * C > limit:
            raise ConfigError(
                f"distortion function {self.name!r} would be evaluated on {S} x {C} = {S * C:,} "
                f"cell pairs (limit {limit:,}"
                + ("" if self.vectorized else "; pass vectorized=True for a numpy function")
                + "); declare the distortion with Ordinal/Moves terms instead"
            )
        cells = self._all_cells(schema, columns)
        chunk = max(1, 2_000_000 // max(C, 1))
        srcs, codes, costs = [], [], []
        for lo in range(0, S, chunk):
            block = sources[lo : lo + chunk]
            old = np.repeat(block, C, axis=0)
            new = np.tile(cells, (block.shape[0], 1))
            cost = self._costs(schema, columns, old, new)
            keep = cost < forbidden_at
            srcs.append(np.repeat(np.arange(lo, lo + block.shape[0]), C)[keep])
            codes.append(new[keep])
            costs.append(cost[keep])
        return np.concatenate(srcs), np.concatenate(codes), np.concatenate(costs)

    def matrix(self, schema: Schema, columns: Sequence[str]) -> np.ndarray:
        cells = self._all_cells(schema, columns)
        C = cells.shape[0]
        return self._costs(
            schema, columns, np.repeat(cells, C, axis=0), np.tile(cells, (C, 1))
        ).reshape(C, C)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "function": True, "vectorized": self.vectorized}


# -- built-in specifications (Calmon et al. 2017, supplementary Sec. 4.3) ------------------------

#: Adult: rules checked in order, first match wins (= max of per-column costs, as costs
#: decrease down the list): education-reduced lowered or raised by more than one step: 3;
#: age-decade moved by more than a decade: 3; by exactly a decade: 2; income 1 -> 0: 1.
ADULT = Distortion(
    name="adult",
    combine="max",
    terms=(
        Ordinal("education-reduced", up=(0.0, 3.0), down=(3.0,)),
        Ordinal("age-decade", up=(2.0, 3.0)),
        Moves("income>50K", {(1, 0): 1.0}),
    ),
)

#: COMPAS: costs add up: label flipped (either way) 2; |change| of age_cat and of
#: priors_count; c_charge_degree M (0) -> F (1) 2, F -> M 1.
COMPAS = Distortion(
    name="compas",
    combine="sum",
    terms=(
        Moves("two_year_recid", change=2.0),
        Ordinal("age_cat", up=1.0),
        Ordinal("priors_count", up=1.0),
        Moves("c_charge_degree", {(0, 1): 2.0, (1, 0): 1.0}),
    ),
)

BUILTIN: dict[str, Distortion] = {"adult": ADULT, "compas": COMPAS}


class GenericDistortionWarning(UserWarning):
    """TOT fell back to the generic default distortion: one written for the domain is better."""


def generic(schema: Schema, columns: Sequence[str]) -> Distortion:
    """The generic default distortion for any schema (costs add up, `combine="sum"`).

    Each non-protected attribute costs 1 per step along its order when it has one (integer
    columns, binned columns, categorical columns declared `ordered`) and 1 for any change
    otherwise; the label costs 1 when it flips. Under TOT's default thresholds (0.99, 1.99,
    2.99) with bounds (0.1, 0.05, 0), a record may then change in one step with probability at
    most 0.1, in two with at most 0.05, and never in three or more.

    Args:
        schema: the public schema.
        columns: the columns TOT may change (the non-protected ones, label last).
    """
    terms: list[Term] = []
    for name in columns:
        col = schema[name]
        unordered = isinstance(col, Categorical) and not col.ordered
        if name == schema.label or unordered:
            terms.append(Moves(name, change=1.0))
        else:
            terms.append(Ordinal(name, up=1.0))
    return Distortion(terms=tuple(terms), combine="sum", name="generic")


# -- distortion files ---------------------------------------------------------------------------

_FILE_SUFFIXES = (".toml", ".json")


def is_file(spec: object) -> bool:
    """Whether a `distortion=` value names a distortion file (a path ending .toml or .json)."""
    return isinstance(spec, os.PathLike) or (
        isinstance(spec, str) and spec.lower().endswith(_FILE_SUFFIXES)
    )


def _file_cost(where: str, value: Any) -> float:
    if isinstance(value, str) and value.lower() == "forbidden":
        return FORBIDDEN
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: a cost must be a number or \"forbidden\", got {value!r}")
    return float(value)


def _file_steps(where: str, value: Any) -> CostSteps:
    if isinstance(value, list):
        return [_file_cost(where, v) for v in value]
    return _file_cost(where, value)


def _only(where: str, table: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}")


def distortion_from_dict(doc: Mapping[str, Any], *, source: str = "distortion") -> Distortion:
    """A `Distortion` from its document form (a distortion file, or `Distortion.describe()`).

    Top level: `name`, `combine` ("max" or "sum") and `terms`, a list of tables with `kind`
    "ordinal" (`column`, `up`, optional `down`) or "moves" (`column`, optional `change`, and
    `costs`: a list of `{from, to, cost}` tables or `[from, to, cost]` lists, in the schema's
    labels). A cost is a number, or `"forbidden"` (or `inf` in TOML) for FORBIDDEN; `up` and
    `down` are a cost per step or a list of costs of 1, 2, ... steps.

    Raises:
        ConfigError: naming the source, the term and the key that is wrong.
    """
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source}: a distortion must be a table of keys")
    _only(source, doc, ("name", "combine", "terms"))
    terms_doc = doc.get("terms", [])
    if not isinstance(terms_doc, list):
        raise ConfigError(f"{source}: terms must be a list of tables ([[terms]] in TOML)")
    terms: list[Term] = []
    for i, t in enumerate(terms_doc, 1):
        where = f"{source}, term {i}"
        if not isinstance(t, Mapping) or not isinstance(t.get("column"), str):
            raise ConfigError(f"{where}: a term is a table with a column name")
        where = f"{source}, term {i} (column {t['column']!r})"
        try:
            terms.append(_term_from_dict(t, where))
        except ConfigError as exc:
            raise ConfigError(str(exc) if source in str(exc) else f"{where}: {exc}") from None
    name = doc.get("name", "custom")
    if not isinstance(name, str):
        raise ConfigError(f"{source}: name must be a string")
    try:
        return Distortion(terms=tuple(terms), combine=doc.get("combine", "max"), name=name)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _term_from_dict(t: Mapping[str, Any], where: str) -> Term:
    kind = t.get("kind")
    if kind == "ordinal":
        _only(where, t, ("kind", "column", "up", "down"))
        if "up" not in t:
            raise ConfigError(f"{where}: an ordinal term needs up")
        down = t.get("down")
        return Ordinal(
            t["column"],
            up=_file_steps(where, t["up"]),
            down=None if down is None else _file_steps(where, down),
        )
    if kind == "moves":
        _only(where, t, ("kind", "column", "costs", "change"))
        costs: list[tuple[Scalar, Scalar, float]] = []
        for c in t.get("costs", []):
            if isinstance(c, Mapping):
                _only(where + ", costs", c, ("from", "to", "cost"))
                if not {"from", "to", "cost"} <= set(c):
                    raise ConfigError(f"{where}: each cost needs from, to and cost")
                costs.append((c["from"], c["to"], _file_cost(where, c["cost"])))
            elif isinstance(c, list) and len(c) == 3:
                costs.append((c[0], c[1], _file_cost(where, c[2])))
            else:
                raise ConfigError(
                    f"{where}: a cost is {{from, to, cost}} or [from, to, cost], got {c!r}"
                )
        return Moves(t["column"], tuple(costs), change=_file_cost(where, t.get("change", 0.0)))
    raise ConfigError(f"{where}: kind must be \"ordinal\" or \"moves\", got {kind!r}")


def load_distortion(path: str | os.PathLike[str]) -> Distortion:
    """A `Distortion` from a TOML (`.toml`) or JSON (`.json`) file (docs/fairness.md).

    Raises:
        ConfigError: the file cannot be read or parsed, or a declaration is wrong.
    """
    path = Path(path)
    if path.suffix.lower() not in _FILE_SUFFIXES:
        raise ConfigError(f"distortion file {str(path)!r}: expected a .toml or .json file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read distortion file {str(path)!r}: {exc.strerror}") from None
    try:
        doc = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"distortion file {str(path)!r} does not parse: {exc}") from None
    return distortion_from_dict(doc, source=f"distortion file {str(path)!r}")


# -- resolution and size ------------------------------------------------------------------------


def resolve(
    spec: str | os.PathLike[str] | Distortion | FunctionDistortion | Callable[..., Any] | None,
    schema: Schema,
    columns: Iterable[str],
) -> Distortion | FunctionDistortion:
    """The distortion to use for `schema`.

    `None` or "auto" picks the built-in whose columns are exactly the schema's non-protected
    columns (the bundled `adult` and `compas` tables) and otherwise the generic default, with
    a `GenericDistortionWarning`; "generic" picks the generic default without warning; a
    name picks a built-in; a path ending .toml or .json is read (`load_distortion`); a plain
    callable is wrapped as a scalar `FunctionDistortion`.
    """
    columns = tuple(columns)
    cols = set(columns)
    if spec is None or spec == "auto":
        for name, d in BUILTIN.items():
            if _BUILTIN_COLUMNS[name] == cols:
                return d
        warnings.warn(
            "tot: no built-in distortion fits this schema's columns "
            f"{sorted(cols)}; using the generic default (1 per step or change of each "
            "attribute, 1 for a label flip, costs added). A distortion written for your "
            "domain is better: pass distortion=FILE.toml or a Distortion (docs/fairness.md)",
            GenericDistortionWarning,
            stacklevel=3,
        )
        return generic(schema, columns)
    if spec == "generic":
        return generic(schema, columns)
    if is_file(spec):
        return load_distortion(spec)  # type: ignore[arg-type]
    if isinstance(spec, str):
        if spec not in BUILTIN:
            raise ConfigError(
                f"tot: unknown distortion {spec!r}; built-ins: {sorted(BUILTIN)}, \"generic\", "
                "a path to a .toml distortion file, a Distortion(...) or a function"
            )
        return BUILTIN[spec]
    if isinstance(spec, (Distortion, FunctionDistortion)):
        return spec
    if callable(spec):
        return FunctionDistortion(spec)
    raise ConfigError(f"tot: distortion must be a name, a Distortion or a function, got {spec!r}")


#: Largest number of moves counted exactly by `move_count` (beyond it: an upper bound).
MAX_COUNTED_MOVES = 5_000_000


def move_count(
    spec: Distortion | FunctionDistortion,
    schema: Schema,
    columns: Sequence[str],
    forbidden_at: float,
) -> tuple[int, bool]:
    """How many (cell, target cell) moves the distortion allows over the whole domain.

    The LP gets at most one variable per allowed move of each non-empty source cell, so this
    sizes it before any data exists. Returns (count, exact): with `combine="max"` a move is
    allowed exactly when every column's move is, so the count is the product of the columns'
    allowed moves; with `combine="sum"` that product is an upper bound, counted exactly when
    it is at most `MAX_COUNTED_MOVES`. A function is bounded by cells x cells.
    """
    if isinstance(spec, FunctionDistortion):
        cells = math.prod(schema[c].size for c in columns)
        return cells * cells, False
    mats = spec.column_matrices(schema, columns)
    bound = math.prod(int((m < forbidden_at).sum()) for m in mats)
    if spec.combine == "max":
        return bound, True
    if bound > MAX_COUNTED_MOVES:
        return bound, False
    sizes = [m.shape[0] for m in mats]
    sources = np.stack(np.unravel_index(np.arange(math.prod(sizes)), sizes), axis=1)
    src, _, _ = spec.targets(schema, columns, sources, forbidden_at)
    return int(src.size), True


_BUILTIN_COLUMNS = {
    "adult": {"age-decade", "education-reduced", "income>50K"},
    "compas": {"age_cat", "c_charge_degree", "priors_count", "two_year_recid"},
}
