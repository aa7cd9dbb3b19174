"""Reweighing (Kamiran and Calders 2012) as a fairness plugin: weights, table unchanged."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from safes_framework import hookimpl
from safes_framework.base import FairnessOutput, FairnessTransformer
from safes_framework.errors import ConfigError, SchemaError
from safes_framework.registry import Registry
from safes_framework.schema import Schema

logger = logging.getLogger(__name__)


class Reweighing(FairnessTransformer):
    """Kamiran and Calders (2012, Knowl. Inf. Syst. 33(1), Sec. 4.2) reweighing.

    Every record of group g with label y gets the weight w(g, y) = P(g) P(y) / P(g, y), the
    ratio of the probability expected if group and label were independent to the observed
    one. Under these weights the label is independent of the group (P_w(y | g) = P(y) for every
    group that has every label value) and the weights sum to the number of rows (when a group
    lacks a label value, they fall short by n P(g) P(y) for each missing value; a warning says
    so). The weights are computed over the schema's domain, so missing categories never
    misalign them. The table itself is
    returned unchanged; the weights travel with the release, and downstream training uses them
    as `sample_weight`.

    Args:
        attributes: the protected attribute(s) whose joint values form the groups; None (the
            default) uses all of the schema's protected attributes jointly.

    Attributes (after `fit`):
        weights_: DataFrame with one row per (group, label) cell seen at fit time: the
            protected columns, the label, count and weight.
        unbalanced_groups_: groups (labels) whose rows all carry one label; reweighing cannot
            give them the other label.
    """

    name = "reweighing"

    def __init__(self, attributes: str | Sequence[str] | None = None) -> None:
        if attributes is not None:
            attributes = (attributes,) if isinstance(attributes, str) else tuple(attributes)
            if not attributes or not all(isinstance(a, str) for a in attributes):
                raise ConfigError(
                    f"reweighing: attributes must be a column name or a non-empty list of "
                    f"names, got {attributes!r}"
                )
        self.attributes: tuple[str, ...] | None = attributes
        self._fitted = False

    def params(self) -> dict[str, Any]:
        return {"attributes": None if self.attributes is None else list(self.attributes)}

    def _keys(self, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        codes = self.schema_.encode(data)
        group = (
            np.ravel_multi_index(
                tuple(codes[a].to_numpy() for a in self.attributes_), self.group_sizes_
            )
            if self.attributes_
            else np.zeros(len(data), dtype=np.int64)
        )
        return group.astype(np.int64), codes[self.schema_.label].to_numpy()

    def fit(self, data: pd.DataFrame, schema: Schema) -> Reweighing:
        """Count groups and labels of `data` (schema labels) over the schema's domain."""
        if not isinstance(schema, Schema):
            raise ConfigError(
                f"reweighing: schema must be a safes_framework.Schema, got {schema!r}"
            )
        attrs = schema.protected if self.attributes is None else self.attributes
        for a in attrs:
            if a not in schema.protected:
                raise SchemaError(
                    f"reweighing: column {a!r} is not a protected attribute of the schema "
                    f"(protected: {list(schema.protected)})"
                )
        self.schema_ = schema
        self.attributes_ = tuple(attrs)
        self.group_sizes_ = tuple(schema[a].size for a in attrs)
        n_labels = schema[schema.label].size
        group, label = self._keys(data)
        n_groups = math.prod(self.group_sizes_)
        # Counts over the declared domain: a cell missing from the data is a zero, never a
        # misaligned index.
        joint = (
            np.bincount(group * n_labels + label, minlength=n_groups * n_labels)
            .reshape(n_groups, n_labels)
            .astype(np.float64)
        )
        n = joint.sum()
        pg, py = joint.sum(axis=1) / n, joint.sum(axis=0) / n
        with np.errstate(divide="ignore", invalid="ignore"):
            # Kamiran and Calders (2012), Sec. 4.2: W(g, y) = P(g) P(y) / P(g, y).
            table = np.where(joint > 0, np.outer(pg, py) / (joint / n), np.nan)
        self.table_ = table
        present = joint.sum(axis=1) > 0
        unbalanced = present & ((joint > 0).sum(axis=1) < (py > 0).sum())
        self.unbalanced_groups_ = tuple(
            self._group_labels(int(g)) for g in np.flatnonzero(unbalanced)
        )
        if self.unbalanced_groups_:
            warnings.warn(
                f"reweighing: group(s) {list(self.unbalanced_groups_)} of {list(self.attributes_)} "
                "lack some label value; weighting cannot equalise P(y | group) for them",
                stacklevel=2,
            )
        rows = np.argwhere(joint > 0)
        frame: dict[str, Any] = {}
        for a, k in zip(
            self.attributes_, np.unravel_index(rows[:, 0], self.group_sizes_), strict=True
        ):
            frame[a] = schema[a].decode(np.asarray(k))
        frame[schema.label] = schema[schema.label].decode(rows[:, 1])
        frame["count"] = joint[rows[:, 0], rows[:, 1]].astype(np.int64)
        frame["weight"] = table[rows[:, 0], rows[:, 1]]
        self.weights_ = pd.DataFrame(frame)
        self._fitted = True
        return self

    def _group_labels(self, g: int) -> tuple[Any, ...]:
        codes = np.unravel_index(g, self.group_sizes_)
        out = []
        for a, k in zip(self.attributes_, codes, strict=True):
            v = self.schema_[a].decode(np.array([int(k)]))[0]
            out.append(v.item() if isinstance(v, np.generic) else v)
        return tuple(out)

    def transform(self, data: pd.DataFrame, rng: np.random.Generator) -> FairnessOutput:
        """The table unchanged (declared columns, schema order) with one weight per row.

        Rows whose (group, label) cell was empty at fit time (only when transforming another
        table) get weight 1. `rng` is not used: reweighing is deterministic.
        """
        if not self._fitted:
            raise ConfigError("reweighing: call fit before transform")
        group, label = self._keys(data)
        w = self.table_[group, label]
        unseen = np.isnan(w)
        if unseen.any():
            logger.warning(
                "reweighing: %d row(s) fall in (group, label) cells empty at fit "
                "time and get weight 1",
                int(unseen.sum()),
            )
            w = np.where(unseen, 1.0, w)
        return FairnessOutput(data.loc[:, list(self.schema_.names)].copy(), w)


@hookimpl
def safes_register_fairness_transformers(register: Registry) -> None:
    register.add(
        "reweighing",
        Reweighing,
        description="Kamiran & Calders reweighing: sample weights, table unchanged",
    )
