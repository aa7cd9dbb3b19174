"""Fairness metrics: mean outcome difference of a table, and group fairness of a downstream model.

Every difference is unprivileged minus privileged (AIF360's sign convention, the paper's): a
negative value means the unprivileged group gets the favourable outcome less often. Groups are
each protected attribute's declared privileged values, and their intersection ("race*sex":
privileged when privileged on every attribute, as in the paper).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from safes_framework.base import Metric, MetricInputs, MetricResult
from safes_framework.errors import ConfigError
from safes_framework.schema import Schema

from .downstream import DownstreamModelMetric, Predictions, confusion, rates
from .tables import aggregate, check_bool, encode_table, favorable, group_masks, release_weights

_TABLES = ("release", "train", "test")


def _rate(fav: np.ndarray, weight: np.ndarray) -> float:
    total = float(weight.sum())
    return float((fav * weight).sum() / total) if total > 0 else math.nan


class MeanOutcomeDifference(Metric):
    """Dataset fairness: P(label favourable | unprivileged) - P(label favourable | privileged)
    in a table, for each protected attribute and their intersection (`mod[<group>]`).

    NaN when a group is absent from the table (the counts are in `details`).

    Args:
        table: which table to measure: "release" (default), or the real "train" / "test".
        weighted: count released rows by their sample weights (reweighing), if any.
        intersection: also report the intersection of the protected attributes.
    """

    name = "mean_outcome_difference"

    def __init__(
        self, *, table: str = "release", weighted: bool = True, intersection: bool = True
    ) -> None:
        if table not in _TABLES:
            raise ConfigError(
                f"metric {self.name!r}: table must be one of {list(_TABLES)}, got {table!r}"
            )
        self.table = table
        self.weighted = check_bool(weighted, "weighted", self.name)
        self.intersection = check_bool(intersection, "intersection", self.name)

    def params(self) -> dict[str, Any]:
        return {"table": self.table, "weighted": self.weighted, "intersection": self.intersection}

    def reads(self) -> frozenset[str]:
        return frozenset() if self.table == "release" else frozenset({self.table})

    def compute(self, inputs: MetricInputs) -> MetricResult:
        schema = inputs.schema
        codes = encode_table(getattr(inputs, self.table), schema, self.table, self.name)
        if self.table == "release":
            w, how = release_weights(inputs, self.weighted, self.name)
        else:
            w, how = None, f"real {self.table} table"
        cells, counts = aggregate(codes, list(schema.sizes.values()), w)
        fav = favorable(cells, schema)
        values: dict[str, float] = {}
        sizes: dict[str, dict[str, float]] = {}
        for g, priv in group_masks(cells, schema, self.intersection).items():
            unpriv = counts * ~priv
            values[f"mod[{g}]"] = _rate(fav, unpriv) - _rate(fav, counts * priv)
            sizes[g] = {
                "privileged": float((counts * priv).sum()),
                "unprivileged": float(unpriv.sum()),
            }
        words = (
            f"{how}; P({schema.label} = {schema.favorable!r} | "
            "unprivileged) - P(... | privileged)"
        )
        return MetricResult(self.name, values, words, {"group_sizes": sizes})


MODEL_FAIRNESS = ("spd", "aod", "eod", "fnrd", "di")


class ModelFairness(DownstreamModelMetric):
    """Group fairness of a logistic regression trained on the release and tested on the real
    test table, per protected attribute and their intersection.

    Values per group g (unprivileged minus privileged, positive = favourable prediction):
    `spd[g]` statistical parity difference (selection rates), `aod[g]` average odds difference
    (mean of the FPR and TPR differences), `eod[g]` equal opportunity difference (TPR),
    `fnrd[g]` false-negative-rate difference, and `di[g]` disparate impact (ratio of selection
    rates, unprivileged over privileged). NaN where a rate is undefined (empty denominator).

    Args:
        weighted: train with the release's sample weights, if it has any.
        model_params: keyword arguments of scikit-learn's `LogisticRegression`.
        intersection: also report the intersection of the protected attributes.
    """

    name = "model_fairness"

    def _values(self, pred: Predictions, schema: Schema) -> tuple[dict[str, float], dict[str, Any]]:
        return model_fairness_values(pred, schema, self.intersection)

    def _measured_on(self, words: str) -> str:
        return f"{words}; unprivileged minus privileged"


def model_fairness_values(
    pred: Predictions, schema: Schema, intersection: bool = True
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """`ModelFairness`'s values (and the group sizes) from predictions on the test table."""
    groups = group_masks(pred.cells, schema, intersection)
    masks = np.stack([m for priv in groups.values() for m in (priv, ~priv)])
    r = rates(confusion(pred, masks))
    values: dict[str, float] = {}
    sizes: dict[str, dict[str, float]] = {}
    for i, g in enumerate(groups):
        p, u = 2 * i, 2 * i + 1
        sr_p, sr_u = r["selection_rate"][p], r["selection_rate"][u]
        values[f"spd[{g}]"] = float(sr_u - sr_p)
        fpr_diff, tpr_diff = r["fpr"][u] - r["fpr"][p], r["tpr"][u] - r["tpr"][p]
        values[f"aod[{g}]"] = float(0.5 * (fpr_diff + tpr_diff))
        values[f"eod[{g}]"] = float(tpr_diff)
        values[f"fnrd[{g}]"] = float(r["fnr"][u] - r["fnr"][p])
        values[f"di[{g}]"] = float(sr_u / sr_p) if sr_p > 0 else math.nan
        sizes[g] = {"privileged": float(r["n"][p]), "unprivileged": float(r["n"][u])}
    return values, sizes
