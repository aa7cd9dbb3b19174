"""The tables every built-in metric reads: encoding, weights, aggregation to cells, groups.

Every table is reduced to its distinct rows (cells of the declared domain) with a count or a
summed weight before anything is fitted or counted: a logistic regression fitted on distinct
rows with counts as sample weights has exactly the objective of the fit on all rows, and the
metrics only ever need weighted counts. Marginals are `np.bincount` over mixed-radix codes;
nothing loops over rows or over a domain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from safes_framework.base import MetricInputs
from safes_framework.errors import ConfigError, DataError
from safes_framework.schema import Schema

#: Largest marginal domain counted densely; larger ones are counted over their occupied cells.
DENSE_CELLS = 1 << 22
_MAX_RADIX = np.iinfo(np.int64).max


# -- inputs -----------------------------------------------------------------------------------


def encode_table(df: pd.DataFrame | None, schema: Schema, role: str, metric: str) -> np.ndarray:
    """The (n, d) codes of `df` in schema order; errors name the metric and the table's role."""
    if df is None:
        raise ConfigError(
            f"metric {metric!r} needs the real {role} table; pass it in MetricInputs.{role} "
            f"(SafesChain.run(..., test=...) for the test table)"
        )
    try:
        return schema.encode_array(df)
    except DataError as exc:
        raise type(exc)(
            f"metric {metric!r}, {role} table: {exc}", column=exc.column, value=exc.value
        ) from None


def release_weights(
    inputs: MetricInputs, weighted: bool, metric: str
) -> tuple[np.ndarray | None, str]:
    """The release's weights (or None) and the words that say how the release was counted."""
    if inputs.weights is None:
        return None, "release"
    if not weighted:
        return None, "release, unweighted (its sample weights ignored)"
    w = np.asarray(inputs.weights, dtype=np.float64)
    if w.shape != (len(inputs.release),) or not np.isfinite(w).all() or (w < 0).any():
        raise DataError(
            f"metric {metric!r}: the release's weights must be one finite non-negative number "
            f"per row ({len(inputs.release)} rows), got shape {w.shape}"
        )
    if w.sum() <= 0:
        raise DataError(f"metric {metric!r}: the release's weights sum to zero")
    return w, "release weighted by its sample weights"


class ReadsReference:
    """Mixin of metrics that compare the release with the real table named by `reference`."""

    reference: str

    def reads(self) -> frozenset[str]:
        return frozenset({self.reference})


def check_reference(reference: str, metric: str) -> str:
    if reference not in ("train", "test"):
        raise ConfigError(
            f"metric {metric!r}: reference must be 'train' or 'test', got {reference!r}"
        )
    return reference


def check_bool(value: Any, name: str, metric: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"metric {metric!r}: {name} must be true or false, got {value!r}")
    return bool(value)


# -- aggregation ------------------------------------------------------------------------------


def mixed_radix(codes: np.ndarray, sizes: Sequence[int]) -> np.ndarray | None:
    """One int64 id per row (C order of `sizes`), or None if the domain overflows int64."""
    total = 1
    for s in sizes:
        total *= int(s)
        if total > _MAX_RADIX:
            return None
    ids = np.zeros(codes.shape[0], dtype=np.int64)
    for j, s in enumerate(sizes):
        ids *= int(s)
        ids += codes[:, j]
    return ids


def aggregate(
    codes: np.ndarray, sizes: Sequence[int], weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of `codes` and their counts (or summed weights).

    Returns:
        (cells, counts): an (k, d) array of distinct rows and a (k,) float array.
    """
    ids = mixed_radix(codes, sizes)
    if ids is None:
        cells, inverse = np.unique(codes, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
    else:
        _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        cells = codes[first]
    counts = np.bincount(inverse, weights=weights, minlength=cells.shape[0]).astype(np.float64)
    return cells, counts


# -- groups -----------------------------------------------------------------------------------


def group_masks(
    cells: np.ndarray, schema: Schema, intersection: bool = True
) -> dict[str, np.ndarray]:
    """Privileged-membership masks over rows/cells: one per protected attribute, and (with more
    than one attribute) their intersection, named "a*b", privileged when privileged in all.

    Raises:
        SchemaError: a protected attribute has no declared privileged values.
    """
    index = {n: j for j, n in enumerate(schema.names)}
    masks = {a: np.isin(cells[:, index[a]], schema.privileged_codes(a)) for a in schema.protected}
    if intersection and len(schema.protected) > 1:
        masks["*".join(schema.protected)] = np.logical_and.reduce(list(masks.values()))
    return masks


def favorable(cells: np.ndarray, schema: Schema) -> np.ndarray:
    """1 where the label is the favourable value, else 0."""
    return (cells[:, schema.names.index(schema.label)] == schema.favorable_code).astype(np.int64)
