"""Distortion metrics for TOT as data, the public module of the distortion language: its terms
(`distortion_types`), functions (`function_distortion`) and files (`distortion_files`),
importable from here, the built-in specs, the generic default, and the resolution and size of a
`distortion=` value."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from safes_framework.errors import ConfigError
from safes_framework.schema import Categorical, Schema

from .distortion_files import distortion_from_dict, is_file, load_distortion
from .distortion_types import (
    FORBIDDEN,
    CostSteps,
    Distortion,
    DistortionSpec,
    Moves,
    Ordinal,
    Scalar,
    Term,
)
from .function_distortion import FunctionDistortion

__all__ = [
    "ADULT",
    "BUILTIN",
    "COMPAS",
    "FORBIDDEN",
    "MAX_COUNTED_MOVES",
    "CostSteps",
    "Distortion",
    "DistortionSpec",
    "FunctionDistortion",
    "GenericDistortionWarning",
    "Moves",
    "Ordinal",
    "Scalar",
    "Term",
    "distortion_from_dict",
    "generic",
    "is_file",
    "load_distortion",
    "move_count",
    "resolve",
]

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
