"""The public schema: its columns, protected attributes and label; tables encoded to codes."""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .columns import (
    DEFAULT_GRID,
    DRAWS,
    Categorical,
    Column,
    Continuous,
    Integer,
    QuantileBinned,
    Scalar,
    _py,
)
from .errors import (
    DataError,
    DomainError,
    DtypeError,
    EmptyDataError,
    MissingColumnError,
    SchemaError,
)

__all__ = [
    "DEFAULT_GRID",
    "DRAWS",
    "Categorical",
    "Column",
    "Continuous",
    "Integer",
    "NonPrivateDomainWarning",
    "QuantileBinned",
    "Scalar",
    "Schema",
    "check_unique_columns",
    "column_from_dict",
]

logger = logging.getLogger(__name__)


class NonPrivateDomainWarning(UserWarning):
    """A domain was read from the data itself, which is not differentially private."""


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
