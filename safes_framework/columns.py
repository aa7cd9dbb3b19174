"""The column types of a schema: declared domains, values encoded to codes and decoded back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .errors import DomainError, DtypeError, SchemaError

Scalar = str | int | float | bool


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
