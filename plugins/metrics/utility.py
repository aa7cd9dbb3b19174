"""Utility metrics: downstream model utility, propensity-score KS, marginal TVD, workload error."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from safes_framework.base import Metric, MetricInputs, MetricResult
from safes_framework.errors import ConfigError
from safes_framework.schema import Schema

from .downstream import (
    DownstreamModelMetric,
    Predictions,
    check_model_params,
    confusion,
    design_matrix,
    fit_weighted,
    make_model,
    rates,
    weighted_auc,
)
from .tables import (
    DENSE_CELLS,
    ReadsReference,
    aggregate,
    check_bool,
    check_reference,
    encode_table,
    group_masks,
    mixed_radix,
    release_weights,
)

# -- model utility ----------------------------------------------------------------------------

UTILITY_SCORES = ("accuracy", "f1", "precision", "recall", "specificity", "roc_auc")


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


class PropensityKS(ReadsReference, Metric):
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


class MarginalTVD(ReadsReference, Metric):
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


class WorkloadError(ReadsReference, Metric):
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
