"""Distortion files: the TOML and JSON form of a `Distortion` (docs/fairness.md), read into
the declarative language with errors that name the file, the term and the key."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from safes_framework.errors import ConfigError

from .distortion_types import FORBIDDEN, CostSteps, Distortion, Moves, Ordinal, Scalar, Term

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
