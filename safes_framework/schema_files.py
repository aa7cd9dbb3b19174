"""Schema files: the TOML (and JSON) format of docs/data.md, and drafts read from a table."""

from __future__ import annotations

import json
import math
import os
import re
import textwrap
import tomllib
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError, EmptyDataError, MissingColumnError, SchemaError
from .schema import (
    Categorical,
    Column,
    Continuous,
    Integer,
    NonPrivateDomainWarning,
    Scalar,
    Schema,
)

__all__ = [
    "DRAFT_NOTICE",
    "draft_schema",
    "is_draft",
    "read_schema",
    "read_schema_document",
    "schema_to_toml",
]

#: What every draft says, in the file and on the terminal.
DRAFT_NOTICE = (
    "This schema was read from the data and is NOT private: the categories and bounds below "
    "are facts about the sensitive rows. Before the file is used for a release, make every "
    "category and bound public knowledge (a code book, a published range), then delete the "
    "line `draft = true`."
)

#: Integer columns with at most this many values become `integer` columns in a draft;
#: wider ones become integer-valued binned columns.
DRAFT_MAX_INTEGER_VALUES = 100
#: Bins of a binned column in a draft.
DRAFT_BINS = 10


# -- reading ------------------------------------------------------------------------------------


def read_schema_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw document of a schema file: TOML for `.toml`, JSON for `.json`.

    Raises:
        ConfigError: the file cannot be read, has another suffix, or does not parse.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ConfigError(
            f"schema file {str(path)!r}: expected a .toml or .json file, got {suffix or 'none'!r}"
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read schema file {str(path)!r}: {exc.strerror}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8")) if suffix == ".toml" else json.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        kind = "TOML" if suffix == ".toml" else "JSON"
        raise ConfigError(f"schema file {str(path)!r} is not valid {kind}: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"schema file {str(path)!r} must hold a table of keys")
    return doc


def is_draft(document: Mapping[str, Any]) -> bool:
    """Whether a schema document still carries `draft = true` (unreviewed, read from data)."""
    return document.get("draft") is True


def read_schema(path: str | os.PathLike[str]) -> Schema:
    """A `Schema` from a TOML or JSON file (docs/data.md gives the format).

    A draft (`draft = true`, from `safes schema draft`) is read with a
    `NonPrivateDomainWarning`; `safes run` refuses it.

    Raises:
        ConfigError: the file cannot be read or parsed.
        SchemaError: the declarations are wrong; the message names the file and the column.
    """
    doc = read_schema_document(path)
    try:
        schema = Schema.from_dict(doc)
    except SchemaError as exc:
        raise SchemaError(f"schema file {str(path)!r}: {exc}") from None
    if is_draft(doc):
        warnings.warn(
            f"schema file {str(path)!r} is a draft read from the data (draft = true) and is "
            "NOT private until every category and bound is public knowledge (docs/data.md)",
            NonPrivateDomainWarning,
            stacklevel=2,
        )
    return schema


# -- writing ------------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise SchemaError(f"cannot write {value!r} to a TOML schema")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def schema_to_toml(
    schema: Schema,
    *,
    header: Sequence[str] = (),
    notes: Mapping[str, str] | None = None,
    draft: bool = False,
) -> str:
    """The TOML document of `schema` (the format `read_schema` reads).

    Args:
        schema: the schema.
        header: comment lines written first.
        notes: a comment per column name, written above its `[[columns]]` table.
        draft: write `draft = true` (a file `safes run` refuses until it is reviewed).
    """
    notes = notes or {}
    doc = schema.to_dict()
    lines = [f"# {h}".rstrip() for h in header]
    wrap = textwrap.TextWrapper(width=98, break_on_hyphens=False)
    if draft:
        lines.append("draft = true")
    lines += [
        f"protected = {_toml_value(doc['protected'])}",
        f"label = {_toml_value(doc['label'])}",
        f"favorable = {_toml_value(doc['favorable'])}",
    ]
    if doc["privileged"]:
        lines += ["", "[privileged]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc["privileged"].items()]
    for col in doc["columns"]:
        lines.append("")
        if col["name"] in notes:
            lines += [f"# {n}".rstrip() for n in wrap.wrap(notes[col["name"]])]
        lines.append("[[columns]]")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in col.items()]
    return "\n".join(lines) + "\n"


# -- drafting from data (not private) -----------------------------------------------------------


def _match_value(column: Column, text: Scalar, what: str) -> Scalar:
    """The value of `column`'s domain that `text` (from the command line) names."""
    if not isinstance(column, (Categorical, Integer)):
        raise SchemaError(f"column {column.name!r}: a {what} needs a categorical column")
    values: Iterable[Scalar] = (
        column.categories
        if isinstance(column, Categorical)
        else range(column.low, column.high + 1)
    )
    for v in values:
        if v == text or str(v) == str(text) or (isinstance(v, bool) and str(v).lower() == text):
            return v
    shown = list(values)[:20] if isinstance(column, Categorical) else f"{column.low}..{column.high}"
    raise SchemaError(f"column {column.name!r}: {what} {text!r} is not one of its values {shown}")


def _draft_column(name: str, s: pd.Series, categorical: bool) -> tuple[Column, str]:
    if s.isna().any():
        raise DataError(
            f"column {name!r} has missing values; a schema cannot encode them: fill or drop "
            "them before drafting",
            column=name,
        )
    if categorical or s.dtype == bool or not pd.api.types.is_numeric_dtype(s.dtype):
        values = {v.item() if isinstance(v, np.generic) else v for v in s.unique()}
        if len({type(v) for v in values}) > 1:
            values = {str(v) for v in values}
        cats = tuple(sorted(values))  # type: ignore[type-var]
        return Categorical(name, cats), (
            f"{len(cats)} categories read from the data; list every public category, in a "
            "meaningful order with ordered = true if there is one"
        )
    lo, hi = s.min(), s.max()
    if pd.api.types.is_integer_dtype(s.dtype):
        lo, hi = int(lo), int(hi)
        if hi - lo + 1 <= DRAFT_MAX_INTEGER_VALUES:
            return Integer(name, lo, hi), (
                f"bounds {lo}..{hi} read from the data; replace them with public bounds"
            )
        high = hi if hi > lo else lo + 1
        col = Continuous.equal_width(name, lo, high, DRAFT_BINS, integer=True)
        return col, (
            f"range {lo}..{hi} read from the data; replace the edges with public ones, or use "
            'low, high and bins with edges = "dp" for DP quantile edges (spends budget)'
        )
    low, high = math.floor(float(lo)), math.ceil(float(hi))
    high = high if high > low else low + 1
    col = Continuous.equal_width(name, low, high, DRAFT_BINS)
    return col, (
        f"range {float(lo):g}..{float(hi):g} read from the data; replace the edges with public "
        'ones, or use low, high and bins with edges = "dp" for DP quantile edges (spends budget)'
    )


def draft_schema(
    df: pd.DataFrame,
    *,
    protected: Sequence[str],
    label: str,
    favorable: Scalar,
    privileged: Mapping[str, Sequence[Scalar]] | None = None,
) -> tuple[Schema, dict[str, str]]:
    """A draft schema read from `df`, with a review note per column. NOT private: warns.

    Strings, booleans, the protected columns and the label become categorical columns of the
    values seen; integers with at most 100 values become `integer` columns, wider integers
    integer-valued binned columns, floats binned columns (10 equal-width bins between the
    observed extremes, rounded outwards). Values given as text (`favorable`, `privileged`)
    are matched to the column's values.

    Raises:
        MissingColumnError, DataError: a named column is absent, or a column has missing values.
        SchemaError: the label or a privileged value does not fit.
    """
    warnings.warn(
        "a draft schema is read from the data and is NOT private: its categories and bounds "
        "are facts about the sensitive rows; review it before use (docs/data.md)",
        NonPrivateDomainWarning,
        stacklevel=2,
    )

    if len(df) == 0:
        raise EmptyDataError("cannot draft a schema from an empty table")
    for name in (*protected, label, *(privileged or {})):
        if name not in df.columns:
            raise MissingColumnError(
                f"column {name!r} is not in the table (columns: {list(map(str, df.columns))})",
                column=name,
            )
    cols, notes = [], {}
    for name in df.columns:
        key = str(name)
        col, note = _draft_column(key, df[name], key in protected or key == label)
        cols.append(col)
        notes[key] = note
    by_name = {c.name: c for c in cols}
    fav = _match_value(by_name[label], favorable, "favorable value")
    priv = {
        k: tuple(_match_value(by_name[k], v, "privileged value") for v in vals)
        for k, vals in (privileged or {}).items()
    }
    schema = Schema(tuple(cols), tuple(protected), label, fav, priv)
    return schema, notes
