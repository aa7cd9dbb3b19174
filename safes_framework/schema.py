"""The public schema: declared column domains, protected attributes, label; encoding to codes."""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .errors import (
    DataError,
    DomainError,
    DtypeError,
    EmptyDataError,
    MissingColumnError,
    SchemaError,
)

logger = logging.getLogger(__name__)

Scalar = str | int | float | bool


class NonPrivateDomainWarning(UserWarning):
    """A domain was read from the data itself, which is not differentially private."""


def _py(value: Any) -> Any:
    """Numpy scalars to plain Python, so that domains compare and serialise predictably."""
    return value.item() if isinstance(value, np.generic) else value


def _first_bad(values: pd.Series, bad: np.ndarray) -> object:
    return _py(values.to_numpy()[np.flatnonzero(bad)[0]])


@dataclass(frozen=True)
class Categorical:
    """A column whose values are one of a declared list of categories (code = position).

    Args:
        name: column name.
        categories: the allowed values, in code order. Strings, integers, floats or booleans.
        ordered: whether the order of `categories` is meaningful (education levels, say);
            distortions that count steps (TOT's generic default) then count them along it.
    """

    name: str
    categories: tuple[Scalar, ...]
    ordered: bool = False
    kind: ClassVar[str] = "categorical"

    def __post_init__(self) -> None:
        if isinstance(self.categories, (str, bytes)) or not isinstance(self.categories, Iterable):
            raise SchemaError(
                f"column {self.name!r}: categories must be a list, got {self.categories!r}"
            )
        cats = tuple(_py(c) for c in self.categories)
        object.__setattr__(self, "categories", cats)
        if not isinstance(self.ordered, bool):
            raise SchemaError(f"column {self.name!r}: ordered must be true or false")
        if not cats:
            raise SchemaError(f"column {self.name!r}: a categorical column needs >= 1 category")
        if len(set(cats)) != len(cats):
            dup = next(c for c in cats if cats.count(c) > 1)
            raise SchemaError(f"column {self.name!r}: category {dup!r} is declared twice")
        for c in cats:
            if not isinstance(c, (str, int, float, bool)) or (isinstance(c, float) and c != c):
                raise SchemaError(f"column {self.name!r}: category {c!r} is not a str/int/float")

    @property
    def size(self) -> int:
        return len(self.categories)

    def encode(self, values: pd.Series) -> np.ndarray:
        """Codes of `values`; raises DomainError naming the first value outside the categories."""
        codes = pd.Index(list(self.categories)).get_indexer(pd.Series(values).to_numpy())
        bad = codes < 0
        if bad.any():
            value = _first_bad(values, bad)
            hint = ""
            if any(isinstance(c, str) for c in self.categories) != isinstance(value, str):
                hint = f" (value type {type(value).__name__} vs declared categories; check dtypes)"
            raise DomainError(
                f"column {self.name!r}: value {value!r} is not one of the declared categories "
                f"{list(self.categories)!r}{hint}",
                column=self.name,
                value=value,
            )
        return codes.astype(np.int64)

    def decode(self, codes: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if all(isinstance(c, int) and not isinstance(c, bool) for c in self.categories):
            return np.asarray(self.categories, dtype=np.int64)[codes]  # no object array
        cats = np.empty(len(self.categories), dtype=object)
        cats[:] = list(self.categories)
        out = cats[codes]
        if all(isinstance(c, (int, bool)) for c in self.categories):
            return out.astype(
                np.int64 if not all(isinstance(c, bool) for c in self.categories) else bool
            )
        if all(isinstance(c, (int, float)) for c in self.categories):
            return out.astype(np.float64)
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "kind": self.kind, "categories": list(self.categories)
        }
        if self.ordered:
            out["ordered"] = True
        return out


@dataclass(frozen=True)
class Integer:
    """An integer column with public inclusive bounds (code = value - low)."""

    name: str
    low: int
    high: int
    kind: ClassVar[str] = "integer"

    def __post_init__(self) -> None:
        for bound in ("low", "high"):
            v = _py(getattr(self, bound))
            if isinstance(v, bool) or not isinstance(v, int):
                raise SchemaError(f"column {self.name!r}: {bound}={v!r} is not an integer")
            object.__setattr__(self, bound, v)
        if self.high < self.low:
            raise SchemaError(f"column {self.name!r}: high={self.high} < low={self.low}")

    @property
    def size(self) -> int:
        return self.high - self.low + 1

    def encode(self, values: pd.Series) -> np.ndarray:
        arr = _numeric(self.name, values)
        if arr.dtype.kind == "f":
            nonint = ~np.isfinite(arr) | (arr != np.round(arr))
            if nonint.any():
                value = _first_bad(values, nonint)
                cls = DomainError if value is None or value != value else DtypeError
                raise cls(
                    f"column {self.name!r}: value {value!r} is not an integer",
                    column=self.name,
                    value=value,
                )
        out = (arr.astype(np.int64) if arr.dtype.kind != "i" else arr) - self.low
        bad = (out < 0) | (out >= self.size)
        if bad.any():
            value = _first_bad(values, bad)
            raise DomainError(
                f"column {self.name!r}: value {value!r} is outside the declared bounds "
                f"[{self.low}, {self.high}]",
                column=self.name,
                value=value,
            )
        return out.astype(np.int64)

    def decode(self, codes: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        return np.asarray(codes, dtype=np.int64) + self.low

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "low": self.low, "high": self.high}


DRAWS = ("uniform", "midpoint")


@dataclass(frozen=True)
class Continuous:
    """A real-valued (or integer-valued) column cut into bins by public edges.

    Bin i is [edges[i], edges[i+1]); the last bin also holds its upper edge. Decoding a code
    gives a value inside its bin: a uniform draw (`draw="uniform"`, the default) when a
    generator is passed, otherwise, and with `draw="midpoint"`, the bin's midpoint.

    Args:
        name: column name.
        edges: the public bin edges, finite and increasing.
        integer: the values are integers (ages, counts): encoding refuses fractions,
            decoding draws an integer of the bin (every bin must contain one) and returns int64.
        draw: "uniform" or "midpoint" (see above).
    """

    name: str
    edges: tuple[float, ...]
    integer: bool = False
    draw: str = "uniform"
    kind: ClassVar[str] = "continuous"

    def __post_init__(self) -> None:
        try:
            edges = tuple(float(e) for e in self.edges)
        except (TypeError, ValueError):
            raise SchemaError(
                f"column {self.name!r}: bin edges must be a list of numbers, got {self.edges!r}"
            ) from None
        object.__setattr__(self, "edges", edges)
        if len(edges) < 2:
            raise SchemaError(f"column {self.name!r}: needs at least two bin edges")
        if not all(np.isfinite(edges)) or any(
            b <= a for a, b in zip(edges, edges[1:], strict=False)
        ):
            raise SchemaError(f"column {self.name!r}: bin edges must be finite and increasing")
        _check_draw(self.name, self.integer, self.draw)
        if self.integer:
            lo, hi = self._integer_range()
            empty = np.flatnonzero(hi < lo)
            if empty.size:
                i = int(empty[0])
                raise SchemaError(
                    f"column {self.name!r}: bin [{edges[i]:g}, {edges[i + 1]:g}"
                    f"{']' if i == len(edges) - 2 else ')'} holds no integer; an integer-valued "
                    "column needs an integer in every bin"
                )

    @classmethod
    def equal_width(
        cls, name: str, low: float, high: float, bins: int, *, integer: bool = False,
        draw: str = "uniform",
    ) -> Continuous:
        """`bins` bins of equal width between the public bounds `low` and `high`."""
        _check_bins(name, bins)
        low, high = _bounds(name, low, high, integer)
        return cls(name, tuple(np.linspace(low, high, bins + 1)), integer=integer, draw=draw)

    @property
    def size(self) -> int:
        return len(self.edges) - 1

    def _integer_range(self) -> tuple[np.ndarray, np.ndarray]:
        """The smallest and largest integer of every bin (the last bin holds its upper edge)."""
        e = np.asarray(self.edges)
        lo = np.ceil(e[:-1])
        hi = np.ceil(e[1:]) - 1
        hi[-1] = np.floor(e[-1])
        return lo.astype(np.int64), hi.astype(np.int64)

    def encode(self, values: pd.Series) -> np.ndarray:
        arr = _numeric(self.name, values).astype(np.float64)
        edges = np.asarray(self.edges)
        bad = ~np.isfinite(arr) | (arr < edges[0]) | (arr > edges[-1])
        if bad.any():
            value = _first_bad(values, bad)
            raise DomainError(
                f"column {self.name!r}: value {value!r} is outside the declared bin range "
                f"[{edges[0]:g}, {edges[-1]:g}]",
                column=self.name,
                value=value,
            )
        if self.integer:
            nonint = arr != np.round(arr)
            if nonint.any():
                value = _first_bad(values, nonint)
                raise DtypeError(
                    f"column {self.name!r}: value {value!r} is not an integer (the column is "
                    "declared integer-valued)",
                    column=self.name,
                    value=value,
                )
        codes = np.searchsorted(edges, arr, side="right") - 1
        return np.minimum(codes, self.size - 1).astype(np.int64)

    def decode(self, codes: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.int64)
        uniform = rng is not None and self.draw == "uniform"
        if self.integer:
            lo, hi = self._integer_range()
            a, b = lo[codes], hi[codes]
            if uniform:
                assert rng is not None
                return rng.integers(a, b + 1).astype(np.int64)
            return (a + (b - a) // 2).astype(np.int64)
        edges = np.asarray(self.edges)
        lo, hi = edges[codes], edges[codes + 1]
        if not uniform:
            return (lo + hi) / 2.0
        assert rng is not None
        out = lo + (hi - lo) * rng.random(len(lo))
        # Rounding must not push a draw onto the upper edge of a bin that excludes it.
        inner = codes < self.size - 1
        out[inner] = np.minimum(out[inner], np.nextafter(hi[inner], -np.inf))
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "edges": list(self.edges)}
        if self.integer:
            out["integer"] = True
        if self.draw != "uniform":
            out["draw"] = self.draw
        return out


#: Default number of cells of the public grid on which DP bin edges are chosen.
DEFAULT_GRID = 1000


@dataclass(frozen=True)
class QuantileBinned:
    """A continuous column with public bounds whose bin edges are DP quantiles.

    The domain is public: the bounds and the number of bins. The edges inside the bounds are
    chosen when a chain runs, before synthesis, by the exponential mechanism on a public grid
    of `grid` cells between the bounds (one selection per edge, aiming at equal-frequency bins;
    see docs/privacy.md, "DP bin edges"), charged to the run's ledger. After that the column
    is an ordinary `Continuous` column with those edges (`resolve`), which the release's schema
    records.

    Args:
        name: column name.
        low, high: public bounds (inclusive) of the values.
        bins: number of bins (the column's domain size).
        grid: cells of the public grid of candidate edges (integer columns: at most one cell
            per integer step).
        integer: the values are integers (see `Continuous`).
        draw: "uniform" or "midpoint" (see `Continuous`).
    """

    name: str
    low: float
    high: float
    bins: int
    grid: int = DEFAULT_GRID
    integer: bool = False
    draw: str = "uniform"
    kind: ClassVar[str] = "continuous"

    def __post_init__(self) -> None:
        _check_bins(self.name, self.bins)
        low, high = _bounds(self.name, self.low, self.high, self.integer)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        if isinstance(self.grid, bool) or not isinstance(self.grid, int) or self.grid < 1:
            raise SchemaError(f"column {self.name!r}: grid must be a positive integer")
        _check_draw(self.name, self.integer, self.draw)
        cells = len(self.grid_edges()) - 1
        if cells < self.bins:
            raise SchemaError(
                f"column {self.name!r}: {self.bins} bins need at least {self.bins} grid cells "
                f"between {low:g} and {high:g}, there are {cells}; lower bins or raise grid"
            )

    @property
    def size(self) -> int:
        return self.bins

    def grid_edges(self) -> tuple[float, ...]:
        """The public grid: `low`, the candidate edges, `high` (integer steps if `integer`)."""
        if self.integer:
            span = int(self.high - self.low)
            step = max(1, -(-span // self.grid))
            inner = np.arange(self.low + step, self.high, step)
            return (self.low, *map(float, inner), self.high)
        return tuple(map(float, np.linspace(self.low, self.high, self.grid + 1)))

    def fine(self) -> Continuous:
        """The column on the public grid (what the DP quantiles are computed on)."""
        return Continuous(self.name, self.grid_edges(), integer=self.integer, draw=self.draw)

    def provisional(self) -> Continuous:
        """Equal-width bins of the same count: the domain's shape for checks before a run."""
        return Continuous.equal_width(
            self.name, self.low, self.high, self.bins, integer=False, draw=self.draw
        )

    def resolve(self, edges: Sequence[float]) -> Continuous:
        """The column with DP-chosen `edges` (from `low` to `high`, `bins` + 1 of them)."""
        edges = tuple(float(e) for e in edges)
        if len(edges) != self.bins + 1 or edges[0] != self.low or edges[-1] != self.high:
            raise SchemaError(
                f"column {self.name!r}: expected {self.bins + 1} edges from {self.low:g} to "
                f"{self.high:g}, got {list(edges)}"
            )
        return Continuous(self.name, edges, integer=self.integer, draw=self.draw)

    def encode(self, values: pd.Series) -> np.ndarray:
        raise SchemaError(
            f"column {self.name!r}: its bin edges are DP quantiles chosen when a chain runs "
            '(edges = "dp"); run it through SafesChain, or encode with Schema.grid()'
        )

    def decode(self, codes: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        raise SchemaError(
            f"column {self.name!r}: its bin edges are DP quantiles not chosen yet (edges = "
            '"dp"); decode with the release\'s schema'
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "kind": self.kind, "edges": "dp", "low": _num_out(self.low),
            "high": _num_out(self.high), "bins": self.bins,
        }
        if self.grid != DEFAULT_GRID:
            out["grid"] = self.grid
        if self.integer:
            out["integer"] = True
        if self.draw != "uniform":
            out["draw"] = self.draw
        return out


def _num_out(v: float) -> int | float:
    return int(v) if float(v).is_integer() else float(v)


def _check_bins(name: str, bins: object) -> None:
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise SchemaError(f"column {name!r}: bins must be a positive integer, got {bins!r}")


def _check_draw(name: str, integer: object, draw: object) -> None:
    if not isinstance(integer, bool):
        raise SchemaError(f"column {name!r}: integer must be true or false, got {integer!r}")
    if draw not in DRAWS:
        raise SchemaError(f"column {name!r}: draw must be one of {list(DRAWS)}, got {draw!r}")


def _bounds(name: str, low: object, high: object, integer: bool) -> tuple[float, float]:
    for what, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not np.isfinite(
            float(v)  # type: ignore[arg-type]
        ):
            raise SchemaError(f"column {name!r}: {what}={v!r} is not a finite number")
        if integer and not float(v).is_integer():  # type: ignore[arg-type]
            raise SchemaError(f"column {name!r}: {what}={v!r} of an integer column is not whole")
    lo, hi = float(low), float(high)  # type: ignore[arg-type]
    if hi <= lo:
        raise SchemaError(f"column {name!r}: high={hi:g} must exceed low={lo:g}")
    return lo, hi


Column = Categorical | Integer | Continuous | QuantileBinned


def _numeric(name: str, values: pd.Series) -> np.ndarray:
    """The numbers of a column; DtypeError naming the first value that is not one."""
    dtype = values.dtype
    textual = pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
    if pd.api.types.is_bool_dtype(dtype) or not (pd.api.types.is_numeric_dtype(dtype) or textual):
        raise DtypeError(
            f"column {name!r}: dtype {dtype} cannot hold numbers "
            f"(first value {_py(values.iloc[0])!r})",
            column=name,
            value=_py(values.iloc[0]),
        )
    if not textual:
        if isinstance(dtype, np.dtype):
            return values.to_numpy()
        return values.to_numpy(dtype=np.float64, na_value=np.nan)  # nullable extension dtypes
    # Text or objects: each value must be a number or a string that reads as one (a CSV
    # column with one stray word is read as text); name the first that is neither.
    objects = values.to_numpy(dtype=object)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    flags = np.fromiter((isinstance(v, (bool, np.bool_)) for v in objects), bool, len(objects))
    bad = flags | (np.isnan(numbers) & values.notna().to_numpy())
    if bad.any():
        value = _py(objects[np.flatnonzero(bad)[0]])
        raise DtypeError(
            f"column {name!r}: value {value!r} is not a number", column=name, value=value
        )
    return numbers


def check_unique_columns(names: Iterable[object], source: str = "the table") -> None:
    """Raise a DataError naming the first column name that occurs twice in `names`.

    Pandas renames a repeated CSV header (`age`, `age.1`), so readers call this on the raw
    header; `Schema.encode` calls it on a frame's columns.
    """
    seen: set[str] = set()
    for name in names:
        key = str(name)
        if key in seen:
            raise DataError(
                f"column {key!r} appears twice in {source}; give every column its own name",
                column=key,
            )
        seen.add(key)


_TOP_KEYS = ("columns", "protected", "label", "favorable", "privileged", "description", "draft")
_COLUMN_KEYS = {
    "categorical": ("name", "kind", "categories", "ordered"),
    "integer": ("name", "kind", "low", "high"),
    "continuous": ("name", "kind", "edges", "low", "high", "bins", "grid", "integer", "draw"),
}


def column_from_dict(spec: Mapping[str, Any]) -> Column:
    """One column from its document form (a `[[columns]]` table of a schema file).

    `kind = "continuous"` takes public `edges`; or `low`, `high` and `bins` for equal-width
    bins; or `edges = "dp"` with `low`, `high` and `bins` for DP quantile edges.

    Raises:
        SchemaError: naming the column and the key that is missing, unknown or wrong.
    """
    if not isinstance(spec, Mapping):
        raise SchemaError(f"a column must be a table of keys, got {spec!r}")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise SchemaError(f"a column has no name (a non-empty string): {dict(spec)!r}")
    kind = spec.get("kind")
    if kind not in _COLUMN_KEYS:
        raise SchemaError(
            f"column {name!r}: kind must be one of {', '.join(_COLUMN_KEYS)}, got {kind!r}"
        )
    allowed = _COLUMN_KEYS[kind]
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise SchemaError(
            f"column {name!r} ({kind}): unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}"
        )

    def need(*keys: str) -> None:
        missing = [k for k in keys if k not in spec]
        if missing:
            raise SchemaError(f"column {name!r} ({kind}): missing key {missing[0]!r}")

    if kind == "categorical":
        need("categories")
        return Categorical(name, spec["categories"], ordered=spec.get("ordered", False))
    if kind == "integer":
        need("low", "high")
        return Integer(name, spec["low"], spec["high"])
    extra = {k: spec[k] for k in ("integer", "draw") if k in spec}
    edges = spec.get("edges")
    if edges == "dp":
        need("low", "high", "bins")
        return QuantileBinned(
            name, spec["low"], spec["high"], spec["bins"], spec.get("grid", DEFAULT_GRID), **extra
        )
    if "grid" in spec:
        raise SchemaError(f'column {name!r}: grid goes with edges = "dp"')
    if edges is None:
        need("low", "high", "bins")
        return Continuous.equal_width(name, spec["low"], spec["high"], spec["bins"], **extra)
    if isinstance(edges, str):
        raise SchemaError(
            f'column {name!r}: edges must be a list of numbers or "dp", got {edges!r}'
        )
    clash = [k for k in ("low", "high", "bins") if k in spec]
    if clash:
        raise SchemaError(
            f"column {name!r}: give edges, or low, high and bins, not both ({clash[0]!r})"
        )
    return Continuous(name, edges, **extra)


@dataclass(frozen=True)
class Schema:
    """The public description of a table: every column's domain, protected attributes, label.

    Args:
        columns: the declared columns, in order.
        protected: names of the protected attributes (one or more).
        label: name of the binary outcome column.
        favorable: the favourable value of the label (a value of the label's domain).
        privileged: for each protected attribute, the values that form its privileged group.
            Optional; fairness metrics that compare privileged with unprivileged groups need it.
    """

    columns: tuple[Column, ...]
    protected: tuple[str, ...]
    label: str
    favorable: Scalar
    privileged: Mapping[str, tuple[Scalar, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cols = tuple(self.columns)
        object.__setattr__(self, "columns", cols)
        names = [c.name for c in cols]
        if not cols:
            raise SchemaError("a schema needs at least one column")
        for c in cols:
            if not isinstance(c, (Categorical, Integer, Continuous, QuantileBinned)):
                raise SchemaError(
                    f"{c!r} is not a Categorical, Integer, Continuous or QuantileBinned column"
                )
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise SchemaError(f"column {sorted(dup)[0]!r} is declared twice")
        protected = (self.protected,) if isinstance(self.protected, str) else tuple(self.protected)
        object.__setattr__(self, "protected", protected)
        if not protected:
            raise SchemaError("declare at least one protected attribute")
        for p in (*protected, self.label):
            if p not in names:
                raise SchemaError(f"column {p!r} is named as protected/label but not declared")
        if self.label in protected:
            raise SchemaError(f"column {self.label!r} cannot be both the label and protected")
        lab = self[self.label]
        if isinstance(lab, (Continuous, QuantileBinned)):
            raise SchemaError(f"label column {self.label!r} must be categorical or integer")
        for p in protected:
            if isinstance(self[p], QuantileBinned):
                raise SchemaError(
                    f"protected column {p!r} cannot have DP bin edges: its groups must be "
                    "public; declare its categories or public edges"
                )
        favorable = _py(self.favorable)
        object.__setattr__(self, "favorable", favorable)
        self._check_value(lab, favorable, "favorable label value")
        priv: dict[str, tuple[Scalar, ...]] = {}
        for col, vals in dict(self.privileged).items():
            if col not in protected:
                raise SchemaError(f"privileged values given for {col!r}, which is not protected")
            tup = (vals,) if isinstance(vals, (str, int, float, bool)) else tuple(vals)
            for v in tup:
                self._check_value(self[col], _py(v), "privileged value")
            priv[col] = tuple(_py(v) for v in tup)
        object.__setattr__(self, "privileged", priv)

    @staticmethod
    def _check_value(col: Column, value: Any, what: str) -> None:
        try:
            col.encode(pd.Series([value]))
        except DataError:
            raise SchemaError(
                f"column {col.name!r}: {what} {value!r} is not in its domain"
            ) from None

    # -- lookup -------------------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def sizes(self) -> dict[str, int]:
        """Domain size (number of codes) of every column, in schema order."""
        return {c.name: c.size for c in self.columns}

    @property
    def favorable_code(self) -> int:
        return int(self[self.label].encode(pd.Series([self.favorable]))[0])

    def privileged_codes(self, column: str) -> np.ndarray:
        """Codes of the privileged values of a protected column; SchemaError if undeclared."""
        if column not in self.privileged:
            raise SchemaError(
                f"no privileged values declared for protected column {column!r}; "
                "pass privileged={...} to the Schema"
            )
        return self[column].encode(pd.Series(list(self.privileged[column])))

    def __getitem__(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise SchemaError(f"unknown column {name!r}; declared columns: {list(self.names)}")

    def __contains__(self, name: object) -> bool:
        return name in self.names

    # -- columns with DP bin edges -------------------------------------------------------------

    @property
    def dp_binned(self) -> tuple[QuantileBinned, ...]:
        """The columns whose bin edges are DP quantiles chosen when a chain runs."""
        return tuple(c for c in self.columns if isinstance(c, QuantileBinned))

    def replace_columns(self, columns: Mapping[str, Column]) -> Schema:
        """A copy with the named columns replaced (same names, same order)."""
        for name, col in columns.items():
            self[name]  # raises for an unknown column
            if col.name != name:
                raise SchemaError(f"replacement for column {name!r} is named {col.name!r}")
        return Schema(
            columns=tuple(columns.get(c.name, c) for c in self.columns),
            protected=self.protected,
            label=self.label,
            favorable=self.favorable,
            privileged=self.privileged,
        )

    def grid(self) -> Schema:
        """Columns with DP bin edges on their public grid (what the DP quantiles read)."""
        return self.replace_columns({c.name: c.fine() for c in self.dp_binned})

    def provisional(self) -> Schema:
        """Columns with DP bin edges as equal-width bins of the same count.

        The domain sizes are those of the release's schema, so checks that need only sizes
        (model sizes, a fairness transformer's plan) can run before any edge is chosen.
        """
        return self.replace_columns({c.name: c.provisional() for c in self.dp_binned})

    # -- encoding ------------------------------------------------------------------------------

    def validate(self, df: pd.DataFrame) -> None:
        """Raise a DataError if `df` does not fit the schema (same checks as `encode`).

        Columns with DP bin edges are checked against their public bounds.
        """
        (self.grid() if self.dp_binned else self).encode(df)

    def encode(self, df: pd.DataFrame) -> pd.DataFrame:
        """Integer codes of every declared column, in schema order.

        Columns of `df` that the schema does not declare are left out (with a warning).

        Raises:
            EmptyDataError, MissingColumnError, DomainError, DtypeError: naming column and value.
        """
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
        check_unique_columns(df.columns)
        missing = [n for n in self.names if n not in df.columns]
        if missing:
            raise MissingColumnError(
                f"column {missing[0]!r} is declared in the schema but missing from the table "
                f"(table has {list(map(str, df.columns))})",
                column=missing[0],
            )
        if len(df) == 0:
            raise EmptyDataError("the table has no rows")
        extra = [str(c) for c in df.columns if c not in self.names]
        if extra:
            warnings.warn(
                f"columns {extra} are not declared in the schema and are ignored", stacklevel=2
            )
        return pd.DataFrame({c.name: c.encode(df[c.name]) for c in self.columns}, index=df.index)

    def encode_array(self, df: pd.DataFrame) -> np.ndarray:
        """Codes as an (n, d) int64 array in schema order."""
        return self.encode(df).to_numpy(dtype=np.int64)

    def check_codes(self, codes: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Validate an (n, d) array (or frame) of codes against the domain sizes; return it."""
        arr = np.asarray(codes)
        if arr.ndim != 2 or arr.shape[1] != len(self.columns):
            raise DataError(f"expected codes of shape (n, {len(self.columns)}), got {arr.shape}")
        if arr.dtype.kind not in "iu":
            raise DtypeError(f"codes must be integers, got dtype {arr.dtype}")
        if arr.shape[0] == 0:
            return arr
        low, high = arr.min(axis=0), arr.max(axis=0)  # one pass over the rows
        for j, c in enumerate(self.columns):
            if low[j] >= 0 and high[j] < c.size:
                continue
            bad = (arr[:, j] < 0) | (arr[:, j] >= c.size)
            if bad.any():
                v = int(arr[np.flatnonzero(bad)[0], j])
                raise DomainError(
                    f"column {c.name!r}: code {v} outside 0..{c.size - 1}", column=c.name, value=v
                )
        return arr

    def decode(
        self, codes: pd.DataFrame | np.ndarray, rng: np.random.Generator | None = None
    ) -> pd.DataFrame:
        """Values (in the schema's labels) from an (n, d) array or frame of codes.

        Binned columns give a value inside each bin: a uniform draw from `rng`, or the
        midpoint without one (see `Continuous`). Dtypes follow the declaration: int64 for
        integer columns and integer-valued binned ones, float64 for binned ones, and the
        categories' type (int64, float64, bool or object strings) for categorical ones.
        """
        arr = self.check_codes(codes)
        return pd.DataFrame({c.name: c.decode(arr[:, j], rng) for j, c in enumerate(self.columns)})

    # -- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [c.to_dict() for c in self.columns],
            "protected": list(self.protected),
            "label": self.label,
            "favorable": self.favorable,
            "privileged": {k: list(v) for k, v in self.privileged.items()},
        }

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Schema:
        """A schema from its document form (`to_dict`; the JSON and TOML files, docs/data.md).

        Raises:
            SchemaError: naming the key, column or value that is wrong.
        """
        if not isinstance(spec, Mapping):
            raise SchemaError(f"a schema specification must be a mapping, got {spec!r}")
        unknown = sorted(set(spec) - set(_TOP_KEYS))
        if unknown:
            raise SchemaError(
                f"unknown key {unknown[0]!r} in the schema; allowed: {', '.join(_TOP_KEYS)}"
            )
        for key in ("columns", "protected", "label", "favorable"):
            if key not in spec:
                raise SchemaError(f"the schema has no {key!r}")
        columns = spec["columns"]
        if isinstance(columns, (str, Mapping)) or not isinstance(columns, Sequence):
            raise SchemaError("columns must be a list of column tables ([[columns]] in TOML)")
        protected = spec["protected"]
        protected = (protected,) if isinstance(protected, str) else protected
        privileged = spec.get("privileged", {})
        if not isinstance(privileged, Mapping):
            raise SchemaError("privileged must map protected columns to lists of values")
        try:
            return cls(
                columns=tuple(column_from_dict(c) for c in columns),
                protected=tuple(protected),
                label=spec["label"],
                favorable=spec["favorable"],
                privileged={
                    k: (v,) if isinstance(v, (str, int, float, bool)) else tuple(v)
                    for k, v in privileged.items()
                },
            )
        except TypeError as exc:
            raise SchemaError(f"malformed schema specification: {exc}") from None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Schema:
        """Read a TOML (`.toml`) or JSON (`.json`) schema file (see docs/data.md)."""
        from .schema_files import read_schema

        return read_schema(path)

    def to_toml(self) -> str:
        """The schema as a TOML document (the format of docs/data.md)."""
        from .schema_files import schema_to_toml

        return schema_to_toml(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> Schema:
        return cls.from_dict(json.loads(text))

    # -- non-private convenience ---------------------------------------------------------------

    @classmethod
    def infer(
        cls,
        df: pd.DataFrame,
        *,
        protected: str | Sequence[str],
        label: str,
        favorable: Scalar,
        privileged: Mapping[str, Iterable[Scalar]] | None = None,
        bins: int = 10,
    ) -> Schema:
        """Read a schema off the data. NOT differentially private: warns every time.

        Integer columns become `Integer(min, max)`, float columns `Continuous` with `bins`
        equal-width bins between min and max, everything else `Categorical` (sorted values).
        The observed minimum, maximum and set of categories are facts about the sensitive rows;
        declare the domain from public knowledge for a private release.
        """
        warnings.warn(
            "Schema.infer reads the domain (categories, min and max) from the data itself; "
            "this is not differentially private. Declare the schema from public knowledge "
            "for a private release.",
            NonPrivateDomainWarning,
            stacklevel=2,
        )
        if len(df) == 0:
            raise EmptyDataError("cannot infer a schema from an empty table")
        cols: list[Column] = []
        for name in df.columns:
            s = df[name]
            if s.isna().any():
                raise DomainError(f"column {name!r}: NaN values cannot be encoded", column=name)
            if pd.api.types.is_integer_dtype(s.dtype) and s.dtype != bool:
                cols.append(Integer(str(name), int(s.min()), int(s.max())))
            elif pd.api.types.is_float_dtype(s.dtype):
                lo, hi = float(s.min()), float(s.max())
                hi = hi if hi > lo else lo + 1.0
                cols.append(Continuous(str(name), tuple(np.linspace(lo, hi, bins + 1))))
            else:
                cats = sorted({_py(v) for v in s.unique()}, key=lambda v: (str(type(v)), v))
                cols.append(Categorical(str(name), tuple(cats)))
        return cls(
            columns=tuple(cols),
            protected=(protected,) if isinstance(protected, str) else tuple(protected),
            label=label,
            favorable=favorable,
            privileged={k: tuple(v) for k, v in (privileged or {}).items()},
        )
