"""Utility metrics (downstream model, propensity KS, marginal TVD, workload error) and the
shared machinery of every built-in metric: encoding, aggregation, groups, the downstream model.

Every table is reduced to its distinct rows (cells of the declared domain) with a count or a
summed weight before anything is fitted or counted: a logistic regression fitted on distinct
rows with counts as sample weights has exactly the objective of the fit on all rows, and the
metrics below only ever need weighted counts. Marginals are `np.bincount` over mixed-radix
codes; nothing loops over rows or over a domain.
"""

from __future__ import annotations

import itertools
import logging
import math
import warnings
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from safes_framework.base import Metric, MetricInputs, MetricResult
from safes_framework.errors import ConfigError, DataError, SafesError
from safes_framework.schema import Schema

logger = logging.getLogger(__name__)

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


# -- model utility ----------------------------------------------------------------------------

UTILITY_SCORES = ("accuracy", "f1", "precision", "recall", "specificity", "roc_auc")


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


class ModelUtility(DownstreamModelMetric):
    """Accuracy, F1, precision, recall, specificity and ROC AUC of a logistic regression
    trained on the release and tested on the real test table; overall and per group.

    Values: `<score>` overall, `<score>[<group>=privileged]`, `<score>[<group>=unprivileged]`
    and `<score>[<group>:difference]` (unprivileged minus privileged) for every protected
    attribute and their intersection. The positive class is the favourable label.

    Args:
        weighted: train with the release's sample weights, if it has any.
        model_params: keyword arguments of scikit-learn's `LogisticRegression`.
        intersection: also report the intersection of the protected attributes.
    """

    name = "model_utility"

    def _values(self, pred: Predictions, schema: Schema) -> tuple[dict[str, float], dict[str, Any]]:
        return model_utility_values(pred, schema, self.intersection)


def model_utility_values(
    pred: Predictions, schema: Schema, intersection: bool = True
) -> tuple[dict[str, float], dict[str, float]]:
    """`ModelUtility`'s values (and the group sizes) from predictions on the test table."""
    groups = group_masks(pred.cells, schema, intersection)
    names = ["overall"]
    masks = [np.ones(pred.cells.shape[0], dtype=bool)]
    for g, priv in groups.items():
        names += [f"{g}=privileged", f"{g}=unprivileged"]
        masks += [priv, ~priv]
    stacked = np.stack(masks)
    r = rates(confusion(pred, stacked))
    r["roc_auc"] = np.array(
        [weighted_auc(pred.y_true, pred.y_score, pred.counts * m) for m in stacked]
    )
    values: dict[str, float] = {}
    for score in UTILITY_SCORES:
        values[score] = float(r[score][0])
        for i, g in enumerate(groups):
            p, u = float(r[score][1 + 2 * i]), float(r[score][2 + 2 * i])
            values[f"{score}[{g}=privileged]"] = p
            values[f"{score}[{g}=unprivileged]"] = u
            values[f"{score}[{g}:difference]"] = u - p
    return values, {n: float(k) for n, k in zip(names, r["n"], strict=True)}


# -- propensity-score KS ----------------------------------------------------------------------


def weighted_ks(x: np.ndarray, wx: np.ndarray, y: np.ndarray, wy: np.ndarray) -> float:
    """Two-sample KS statistic sup |F_x - F_y| of weighted empirical distributions."""
    grid = np.unique(np.concatenate([x, y]))
    fx = np.cumsum(np.bincount(np.searchsorted(grid, x), weights=wx, minlength=grid.size))
    fy = np.cumsum(np.bincount(np.searchsorted(grid, y), weights=wy, minlength=grid.size))
    return float(np.max(np.abs(fx / fx[-1] - fy / fy[-1])))


class PropensityKS(Metric):
    """The SAFES paper's propensity-score KS: a logistic regression separates real rows from
    released rows; the KS distance between the two groups' scores (0 = indistinguishable).

    As in the paper, the classifier is fitted and scored on the pooled rows themselves (every
    column, label included, encoded as in `design_matrix`). Values: `ks` and `ks_pvalue`
    (scipy's two-sample test; NaN for a weighted release, where no p-value is defined).

    Args:
        reference: the real table compared with the release: "train" (the paper) or "test".
        weighted: count released rows by their sample weights, if the release has any.
        model_params: keyword arguments of scikit-learn's `LogisticRegression`.
    """

    name = "propensity_ks"

    def __init__(
        self,
        *,
        reference: str = "train",
        weighted: bool = True,
        model_params: Mapping[str, Any] | None = None,
    ) -> None:
        self.reference = check_reference(reference, self.name)
        self.weighted = check_bool(weighted, "weighted", self.name)
        self.model_params = check_model_params(model_params, self.name)

    def params(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "weighted": self.weighted,
            "model_params": self.model_params,
        }

    def compute(self, inputs: MetricInputs) -> MetricResult:
        from scipy.stats import ks_2samp

        schema = inputs.schema
        sizes = list(schema.sizes.values())
        real = encode_table(getattr(inputs, self.reference), schema, self.reference, self.name)
        rel = encode_table(inputs.release, schema, "release", self.name)
        w, how = release_weights(inputs, self.weighted, self.name)
        rcells, rcounts = aggregate(real, sizes)
        scells, scounts = aggregate(rel, sizes, w)
        if w is not None:  # weights rescaled so the release keeps its row count
            scounts = scounts * (len(rel) / scounts.sum())
        keep = scounts > 0
        scells, scounts = scells[keep], scounts[keep]
        cells = np.vstack([rcells, scells])
        y = np.concatenate([np.zeros(len(rcells), np.int64), np.ones(len(scells), np.int64)])
        counts = np.concatenate([rcounts, scounts])
        model = make_model(self.model_params, self.name, inputs.seed)
        x = design_matrix(cells, schema, schema.names)
        converged = fit_weighted(model, x, y, counts, self.name)
        score = model.predict_proba(x)[:, int(np.flatnonzero(model.classes_ == 1)[0])]
        sr, ss = score[: len(rcells)], score[len(rcells) :]
        if w is None:
            res = ks_2samp(
                np.repeat(sr, rcounts.astype(np.int64)), np.repeat(ss, scounts.astype(np.int64))
            )
            ks, pvalue = float(res.statistic), float(res.pvalue)
        else:
            ks, pvalue = weighted_ks(sr, rcounts, ss, scounts), math.nan
        words = (
            f"logistic-regression propensity scores of the real {self.reference} table "
            f"pooled with the {how}, fitted and scored in-sample; KS between the two score "
            "distributions"
        )
        return MetricResult(
            self.name,
            {"ks": ks, "ks_pvalue": pvalue},
            words,
            {"converged": converged, "model_params": self.model_params},
        )


# -- marginals --------------------------------------------------------------------------------


def marginal_tvds(
    ref: np.ndarray,
    ref_w: np.ndarray | None,
    rel: np.ndarray,
    rel_w: np.ndarray | None,
    sizes: Sequence[int],
    cliques: Sequence[Sequence[int]],
    paper_compatible: bool = False,
) -> np.ndarray:
    """Total-variation distance between the normalised marginals of two tables, per clique.

    With `paper_compatible`, only cells present (non-zero) in both tables are summed: the SAFES
    code subtracted pandas `value_counts` and summed with NaNs skipped.
    """
    out = np.empty(len(cliques))
    for i, clique in enumerate(cliques):
        csizes = [sizes[j] for j in clique]
        a = mixed_radix(ref[:, clique], csizes)
        b = mixed_radix(rel[:, clique], csizes)
        cells = math.prod(csizes)
        if a is None or b is None or cells > DENSE_CELLS:  # count occupied cells only
            both = np.unique(
                np.vstack([ref[:, clique], rel[:, clique]]), axis=0, return_inverse=True
            )[1].reshape(-1)
            a, b, cells = both[: len(ref)], both[len(ref) :], int(both.max()) + 1
        p = np.bincount(a, weights=ref_w, minlength=cells)
        q = np.bincount(b, weights=rel_w, minlength=cells)
        diff = np.abs(p / p.sum() - q / q.sum())
        if paper_compatible:
            diff = diff[(p > 0) & (q > 0)]
        out[i] = 0.5 * diff.sum()
    return out


def _check_orders(orders: Any, metric: str) -> tuple[int, ...]:
    if isinstance(orders, (int, np.integer)) and not isinstance(orders, bool):
        orders = (orders,)
    try:
        out = tuple(sorted({int(o) for o in orders}))
    except (TypeError, ValueError):
        raise ConfigError(
            f"metric {metric!r}: orders must be positive integers, got {orders!r}"
        ) from None
    if not out or out[0] < 1 or any(int(o) != o for o in orders):
        raise ConfigError(f"metric {metric!r}: orders must be positive integers, got {orders!r}")
    return out


class MarginalTVD(Metric):
    """Total-variation distance between the release and a real table, averaged over every
    1-, 2- and 3-way marginal (one value per order: `tvd_1way`, `tvd_2way`, `tvd_3way`).

    Each marginal is compared on its full declared domain: a cell present in one table and
    absent from the other counts. `paper_compatible=True` reproduces the SAFES code instead,
    which skipped every cell absent from either table (so it under-states the distance), and
    says so in `measured_on`.

    Args:
        orders: the marginal orders (default 1, 2, 3); orders above the column count are skipped.
        paper_compatible: skip cells absent from either table, as the paper's code did.
        reference: "train" (default) or "test".
        weighted: count released rows by their sample weights, if the release has any.
    """

    name = "tvd"

    def __init__(
        self,
        *,
        orders: Sequence[int] = (1, 2, 3),
        paper_compatible: bool = False,
        reference: str = "train",
        weighted: bool = True,
    ) -> None:
        self.orders = _check_orders(orders, self.name)
        self.paper_compatible = check_bool(paper_compatible, "paper_compatible", self.name)
        self.reference = check_reference(reference, self.name)
        self.weighted = check_bool(weighted, "weighted", self.name)

    def params(self) -> dict[str, Any]:
        return {
            "orders": list(self.orders),
            "paper_compatible": self.paper_compatible,
            "reference": self.reference,
            "weighted": self.weighted,
        }

    def compute(self, inputs: MetricInputs) -> MetricResult:
        schema = inputs.schema
        sizes = list(schema.sizes.values())
        real = encode_table(getattr(inputs, self.reference), schema, self.reference, self.name)
        rel = encode_table(inputs.release, schema, "release", self.name)
        w, how = release_weights(inputs, self.weighted, self.name)
        d = len(sizes)
        values: dict[str, float] = {}
        per: dict[str, float] = {}
        for k in self.orders:
            if k > d:
                continue
            cliques = list(itertools.combinations(range(d), k))
            tv = marginal_tvds(real, None, rel, w, sizes, cliques, self.paper_compatible)
            values[f"tvd_{k}way"] = float(tv.mean())
            per.update(
                {
                    "+".join(schema.names[j] for j in c): float(t)
                    for c, t in zip(cliques, tv, strict=True)
                }
            )
        rule = (
            "PAPER-COMPATIBLE: cells absent from either table are skipped, as in the SAFES "
            "code; this under-states the distance"
            if self.paper_compatible
            else "every cell of each marginal's declared domain counts"
        )
        words = (
            f"{how} vs the real {self.reference} table; mean TVD over all k-way marginals "
            f"for k in {list(self.orders)}; {rule}"
        )
        return MetricResult(self.name, values, words, {"per_marginal": per})


class WorkloadError(Metric):
    """Synthesizer accuracy: mean error over a workload of marginals between the release and a
    real table (McKenna et al.'s workload error), on the full declared domain.

    Values: `l1` (mean L1 distance of normalised marginals), `tvd` (= l1 / 2) and `max_l1`.

    Args:
        workload: the marginals, as lists of column names; default all `ways`-way marginals.
        ways: order of the default workload (default 3, as in the AIM paper).
        reference: "train" (default) or "test".
        weighted: count released rows by their sample weights, if the release has any.
    """

    name = "workload_error"

    def __init__(
        self,
        *,
        workload: Sequence[Sequence[str]] | None = None,
        ways: int = 3,
        reference: str = "train",
        weighted: bool = True,
    ) -> None:
        if isinstance(ways, bool) or not isinstance(ways, (int, np.integer)) or ways < 1:
            raise ConfigError(
                f"metric {self.name!r}: ways must be a positive integer, got {ways!r}"
            )
        if workload is not None:
            if (
                isinstance(workload, str)
                or not all(
                    not isinstance(m, str) and len(m) > 0 and all(isinstance(c, str) for c in m)
                    for m in workload
                )
                or len(workload) == 0
            ):
                raise ConfigError(
                    f"metric {self.name!r}: workload must be a non-empty list of "
                    f"lists of column names, got {workload!r}"
                )
            workload = [tuple(m) for m in workload]
        self.workload = workload
        self.ways = int(ways)
        self.reference = check_reference(reference, self.name)
        self.weighted = check_bool(weighted, "weighted", self.name)

    def params(self) -> dict[str, Any]:
        return {
            "workload": None if self.workload is None else [list(m) for m in self.workload],
            "ways": self.ways,
            "reference": self.reference,
            "weighted": self.weighted,
        }

    def compute(self, inputs: MetricInputs) -> MetricResult:
        schema = inputs.schema
        index = {n: j for j, n in enumerate(schema.names)}
        if self.workload is None:
            k = min(self.ways, len(index))
            cliques = list(itertools.combinations(range(len(index)), k))
            what = f"all {k}-way marginals"
        else:
            for m in self.workload:
                for c in m:
                    if c not in index:
                        raise ConfigError(
                            f"metric {self.name!r}: workload column {c!r} is not "
                            f"in the schema {list(schema.names)}"
                        )
            cliques = [tuple(index[c] for c in m) for m in self.workload]
            what = f"{len(cliques)} given marginals"
        real = encode_table(getattr(inputs, self.reference), schema, self.reference, self.name)
        rel = encode_table(inputs.release, schema, "release", self.name)
        w, how = release_weights(inputs, self.weighted, self.name)
        l1 = 2.0 * marginal_tvds(real, None, rel, w, list(schema.sizes.values()), cliques)
        words = (
            f"{how} vs the real {self.reference} table; workload = {what}; L1 distance of "
            "normalised marginals on the full declared domain"
        )
        return MetricResult(
            self.name,
            {"l1": float(l1.mean()), "tvd": float(l1.mean() / 2), "max_l1": float(l1.max())},
            words,
            {"workload": [[schema.names[j] for j in c] for c in cliques]},
        )
