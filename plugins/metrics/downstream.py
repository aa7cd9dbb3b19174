"""The downstream model of the model metrics: a weighted logistic regression on the release,
its predictions on the real test table, confusion counts and rates per group.
"""

from __future__ import annotations

import logging
import math
import warnings
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from safes_framework.base import Metric, MetricInputs, MetricResult
from safes_framework.errors import ConfigError, SafesError
from safes_framework.schema import Schema

from .tables import aggregate, check_bool, encode_table, favorable, release_weights

logger = logging.getLogger(__name__)


# -- design matrix and the downstream model ---------------------------------------------------


def design_matrix(cells: np.ndarray, schema: Schema, columns: Sequence[str]) -> np.ndarray:
    """Features of `columns`: a 0/1 indicator of code 1 for two-valued columns, one-hot over the
    declared domain for larger ones, nothing for one-valued ones (the paper's AIF360 encoding)."""
    index = {n: j for j, n in enumerate(schema.names)}
    blocks = []
    for name in columns:
        size = schema[name].size
        col = cells[:, index[name]]
        if size == 2:
            blocks.append((col == 1).astype(np.float64)[:, None])
        elif size > 2:
            blocks.append(np.eye(size, dtype=np.float64)[col])
    if not blocks:
        return np.zeros((cells.shape[0], 0))
    return np.hstack(blocks)


def make_model(model_params: Mapping[str, Any] | None, metric: str, seed: int) -> Any:
    """A scikit-learn `LogisticRegression` with `model_params` (default: sklearn's defaults)."""
    from sklearn.linear_model import LogisticRegression

    params = dict(model_params or {})
    params.setdefault("random_state", seed % (2**32))
    try:
        return LogisticRegression(**params)
    except TypeError as exc:
        raise ConfigError(
            f"metric {metric!r}: bad model_params {dict(model_params or {})}: {exc}"
        ) from None


def check_model_params(model_params: Any, metric: str) -> dict[str, Any]:
    if model_params is None:
        return {}
    if not isinstance(model_params, Mapping):
        raise ConfigError(
            f"metric {metric!r}: model_params must be a mapping, got {model_params!r}"
        )
    make_model(model_params, metric, 0)
    return dict(model_params)


def fit_weighted(model: Any, x: np.ndarray, y: np.ndarray, w: np.ndarray, metric: str) -> bool:
    """Fit `model` with sample weights; return whether the solver converged."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            model.fit(x, y, sample_weight=w)
        except ValueError as exc:
            raise ConfigError(f"metric {metric!r}: the model could not be fitted: {exc}") from None
    return not any(issubclass(c.category, ConvergenceWarning) for c in caught)


@dataclass(frozen=True)
class Predictions:
    """Predictions of the downstream model on the distinct rows of the real test table.

    Attributes:
        cells: (k, d) distinct test rows (codes).
        counts: (k,) how many test rows each cell stands for.
        y_true: (k,) 1 where the true label is favourable.
        y_pred: (k,) 1 where the model predicts the favourable label.
        y_score: (k,) the model's probability of the favourable label.
        details: model settings and fit diagnostics.
    """

    cells: np.ndarray
    counts: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    y_score: np.ndarray
    details: Mapping[str, Any] = field(default_factory=dict)

    def rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-row (y_true, y_pred, y_score), expanded from the cells (tests, plots)."""
        reps = self.counts.astype(np.int64)
        return (
            np.repeat(self.y_true, reps),
            np.repeat(self.y_pred, reps),
            np.repeat(self.y_score, reps),
        )


def downstream_predictions(
    inputs: MetricInputs, *, weighted: bool, model_params: Mapping[str, Any], metric: str
) -> tuple[Predictions, str]:
    """Train the downstream classifier on the release, predict the real test table.

    The classifier sees every non-label column (protected attributes included) encoded by
    `design_matrix`; its target is "label is favourable". Release weights, if any and if
    `weighted`, are sample weights.

    Returns:
        The predictions and the words saying what they were computed on.

    Raises:
        SafesError: the release holds a single label value, so no classifier can be trained.
    """
    schema = inputs.schema
    sizes = list(schema.sizes.values())
    release = encode_table(inputs.release, schema, "release", metric)
    test = encode_table(inputs.test, schema, "test", metric)
    w, how = release_weights(inputs, weighted, metric)
    cells, counts = aggregate(release, sizes, w)
    keep = counts > 0
    cells, counts = cells[keep], counts[keep]
    y = favorable(cells, schema)
    if np.unique(y).size < 2:
        value = schema.favorable if y[0] == 1 else "not " + repr(schema.favorable)
        raise SafesError(
            f"metric {metric!r}: every row of the release has label {schema.label!r} = {value}; "
            "a classifier cannot be trained on a single class"
        )
    features = [n for n in schema.names if n != schema.label]
    model = make_model(model_params, metric, inputs.seed)
    converged = fit_weighted(model, design_matrix(cells, schema, features), y, counts, metric)
    tcells, tcounts = aggregate(test, sizes)
    x_test = design_matrix(tcells, schema, features)
    pos = int(np.flatnonzero(model.classes_ == 1)[0])
    pred = Predictions(
        cells=tcells,
        counts=tcounts,
        y_true=favorable(tcells, schema),
        y_pred=model.predict(x_test).astype(np.int64),
        y_score=model.predict_proba(x_test)[:, pos],
        details={
            "model": "LogisticRegression",
            "model_params": dict(model_params),
            "converged": converged,
            "features": features,
            "positive_class": f"{schema.label} = {schema.favorable!r} (favourable)",
        },
    )
    words = (
        f"LogisticRegression trained on the {how}, evaluated on the real test table; "
        "positive class = favourable label"
    )
    return pred, words


def confusion(pred: Predictions, masks: np.ndarray) -> np.ndarray:
    """(G, 4) weighted confusion counts [tn, fp, fn, tp] of the (G, k) boolean row masks."""
    onehot = np.eye(4)[2 * pred.y_true + pred.y_pred]  # index 2*y + y_hat
    return (masks * pred.counts) @ onehot


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def rates(conf: np.ndarray) -> dict[str, np.ndarray]:
    """Per-group rates from `confusion` counts; NaN where a rate's denominator is zero."""
    tn, fp, fn, tp = conf.T
    n = tn + fp + fn + tp
    return {
        "selection_rate": _ratio(tp + fp, n),
        "tpr": _ratio(tp, tp + fn),
        "fpr": _ratio(fp, fp + tn),
        "fnr": _ratio(fn, fn + tp),
        "accuracy": _ratio(tp + tn, n),
        # precision and F1 follow scikit-learn's zero_division=0 (the paper's default)
        "precision": np.where(tp + fp > 0, _ratio(tp, tp + fp), 0.0),
        "recall": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "f1": np.where(2 * tp + fp + fn > 0, _ratio(2 * tp, 2 * tp + fp + fn), 0.0),
        "n": n,
    }


def weighted_auc(y_true: np.ndarray, score: np.ndarray, weight: np.ndarray) -> float:
    """ROC AUC with sample weights (ties count one half, as scikit-learn's trapezoids); NaN
    when only one class has positive weight (the paper's convention)."""
    wp = weight * (y_true == 1)
    wn = weight * (y_true == 0)
    total_p, total_n = wp.sum(), wn.sum()
    if total_p <= 0 or total_n <= 0:
        return math.nan
    _, inverse = np.unique(score, return_inverse=True)
    pos = np.bincount(inverse, weights=wp)
    neg = np.bincount(inverse, weights=wn)
    below = np.cumsum(neg) - neg  # negative weight with a strictly lower score
    return float((pos * (below + 0.5 * neg)).sum() / (total_p * total_n))


class DownstreamModelMetric(Metric):
    """A metric of a logistic regression trained on the release and tested on real data.

    Subclasses say which numbers to compute from the predictions (`_values`).

    Args:
        weighted: train with the release's sample weights, if it has any.
        model_params: keyword arguments of scikit-learn's `LogisticRegression`.
        intersection: also report the intersection of the protected attributes.
    """

    def __init__(
        self,
        *,
        weighted: bool = True,
        model_params: Mapping[str, Any] | None = None,
        intersection: bool = True,
    ) -> None:
        self.weighted = check_bool(weighted, "weighted", self.name)
        self.intersection = check_bool(intersection, "intersection", self.name)
        self.model_params = check_model_params(model_params, self.name)

    def params(self) -> dict[str, Any]:
        return {
            "weighted": self.weighted,
            "model_params": self.model_params,
            "intersection": self.intersection,
        }

    def reads(self) -> frozenset[str]:
        return frozenset({"test"})

    @abstractmethod
    def _values(self, pred: Predictions, schema: Schema) -> tuple[dict[str, float], dict[str, Any]]:
        """The metric's values and the group sizes, from the test-set predictions."""

    def _measured_on(self, words: str) -> str:
        return words

    def compute(self, inputs: MetricInputs) -> MetricResult:
        pred, words = downstream_predictions(
            inputs, weighted=self.weighted, model_params=self.model_params, metric=self.name
        )
        values, sizes = self._values(pred, inputs.schema)
        return MetricResult(
            self.name, values, self._measured_on(words), {**pred.details, "group_sizes": sizes}
        )
