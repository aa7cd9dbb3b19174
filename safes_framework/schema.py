"""The public schema: declared column domains, protected attributes, label; encoding to codes."""

from __future__ import annotations

import json
import logging
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
    """

    name: str
    categories: tuple[Scalar, ...]
    kind: ClassVar[str] = "categorical"

    def __post_init__(self) -> None:
        cats = tuple(_py(c) for c in self.categories)
        object.__setattr__(self, "categories", cats)
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
        return {"name": self.name, "kind": self.kind, "categories": list(self.categories)}


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


@dataclass(frozen=True)
class Continuous:
    """A real-valued column cut into bins by public edges.

    Bin i is [edges[i], edges[i+1]); the last bin also holds its upper edge. Decoding gives the
    bin midpoint, or a uniform draw inside the bin when a generator is passed.
    """

    name: str
    edges: tuple[float, ...]
    kind: ClassVar[str] = "continuous"

    def __post_init__(self) -> None:
        edges = tuple(float(e) for e in self.edges)
        object.__setattr__(self, "edges", edges)
        if len(edges) < 2:
            raise SchemaError(f"column {self.name!r}: needs at least two bin edges")
        if not all(np.isfinite(edges)) or any(
            b <= a for a, b in zip(edges, edges[1:], strict=False)
        ):
            raise SchemaError(f"column {self.name!r}: bin edges must be finite and increasing")

    @property
    def size(self) -> int:
        return len(self.edges) - 1

    def encode(self, values: pd.Series) -> np.ndarray:
        arr = _numeric(self.name, values).astype(np.float64)
        edges = np.asarray(self.edges)
        bad = ~np.isfinite(arr) | (arr < edges[0]) | (arr > edges[-1])
        if bad.any():
            value = _first_bad(values, bad)
            raise DomainError(
                f"column {self.name!r}: value {value!r} is outside the declared bin range "
                f"[{edges[0]}, {edges[-1]}]",
                column=self.name,
                value=value,
            )
        codes = np.searchsorted(edges, arr, side="right") - 1
        return np.minimum(codes, self.size - 1).astype(np.int64)

    def decode(self, codes: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        edges = np.asarray(self.edges)
        lo, hi = edges[codes], edges[np.asarray(codes) + 1]
        if rng is None:
            return (lo + hi) / 2.0
        return lo + (hi - lo) * rng.random(len(lo))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "edges": list(self.edges)}


Column = Categorical | Integer | Continuous
_KINDS: dict[str, type] = {"categorical": Categorical, "integer": Integer, "continuous": Continuous}


def _numeric(name: str, values: pd.Series) -> np.ndarray:
    if values.dtype == bool or not (
        pd.api.types.is_numeric_dtype(values.dtype) or values.dtype == object
    ):
        raise DtypeError(
            f"column {name!r}: dtype {values.dtype} cannot hold numbers "
            f"(first value {_py(values.iloc[0])!r})",
            column=name,
            value=_py(values.iloc[0]),
        )
    try:
        return np.asarray(values.to_numpy(dtype=np.float64 if values.dtype == object else None))
    except (TypeError, ValueError):
        value = next(v for v in values if not isinstance(v, (int, float, np.number)))
        raise DtypeError(
            f"column {name!r}: value {value!r} is not a number", column=name, value=value
        ) from None


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
            if not isinstance(c, (Categorical, Integer, Continuous)):
                raise SchemaError(f"{c!r} is not a Categorical, Integer or Continuous column")
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
        if isinstance(lab, Continuous):
            raise SchemaError(f"label column {self.label!r} must be categorical or integer")
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

    # -- encoding ------------------------------------------------------------------------------

    def validate(self, df: pd.DataFrame) -> None:
        """Raise a DataError if `df` does not fit the schema (same checks as `encode`)."""
        self.encode(df)

    def encode(self, df: pd.DataFrame) -> pd.DataFrame:
        """Integer codes of every declared column, in schema order.

        Columns of `df` that the schema does not declare are left out (with a warning).

        Raises:
            EmptyDataError, MissingColumnError, DomainError, DtypeError: naming column and value.
        """
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
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
        """Values (in the schema's labels) from an (n, d) array or frame of codes."""
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
        try:
            cols = []
            for c in spec["columns"]:
                c = dict(c)
                kind = c.pop("kind")
                if kind not in _KINDS:
                    raise SchemaError(f"column {c.get('name')!r}: unknown kind {kind!r}")
                if kind == "categorical":
                    c["categories"] = tuple(c["categories"])
                if kind == "continuous":
                    c["edges"] = tuple(c["edges"])
                cols.append(_KINDS[kind](**c))
            return cls(
                columns=tuple(cols),
                protected=tuple(spec["protected"]),
                label=spec["label"],
                favorable=spec["favorable"],
                privileged={k: tuple(v) for k, v in spec.get("privileged", {}).items()},
            )
        except (KeyError, TypeError) as exc:
            raise SchemaError(f"malformed schema specification: {exc!r}") from None

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
