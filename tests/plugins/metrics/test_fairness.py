"""Fairness metrics: against fairlearn on the same predictions, and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from safes_plugins.metrics.downstream import Predictions, downstream_predictions
from safes_plugins.metrics.fairness import model_fairness_values

import safes_framework as sf
from safes_framework import Categorical, Schema
from safes_framework.base import MetricInputs
from safes_framework.errors import ConfigError, SafesError, SchemaError


def _expand(pred: Predictions, schema: Schema) -> pd.DataFrame:
    """Row-level test data and predictions, expanded from the metric's cells."""
    reps = pred.counts.astype(np.int64)
    cells = np.repeat(pred.cells, reps, axis=0)
    y_true, y_pred, _ = pred.rows()
    frame = schema.decode(cells)
    frame["y_true"], frame["y_pred"] = y_true, y_pred
    return frame


def _privileged(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    sex = frame["sex"].to_numpy() == 1
    region = frame["region"].isin(["north", "south"]).to_numpy()
    return {"sex": sex, "region": region, "sex*region": sex & region}


def test_model_fairness_matches_fairlearn_on_the_same_predictions(
    schema: Schema, release: pd.DataFrame, train: pd.DataFrame, test_table: pd.DataFrame
) -> None:
    inputs = MetricInputs(release=release, schema=schema, train=train, test=test_table)
    result = sf.metric("model_fairness").compute(inputs)
    pred, _ = downstream_predictions(inputs, weighted=True, model_params={}, metric="t")
    rows = _expand(pred, schema)
    assert len(rows) == len(test_table)
    for group, priv in _privileged(rows).items():
        y, yhat = rows["y_true"], rows["y_pred"]
        frame = MetricFrame(
            metrics={
                "sr": selection_rate,
                "tpr": true_positive_rate,
                "fpr": false_positive_rate,
                "fnr": false_negative_rate,
            },
            y_true=y,
            y_pred=yhat,
            sensitive_features=priv,
        ).by_group
        u, p = frame.loc[False], frame.loc[True]
        v = result.values
        assert v[f"spd[{group}]"] == pytest.approx(u["sr"] - p["sr"], abs=1e-12)
        assert v[f"eod[{group}]"] == pytest.approx(u["tpr"] - p["tpr"], abs=1e-12)
        assert v[f"fnrd[{group}]"] == pytest.approx(u["fnr"] - p["fnr"], abs=1e-12)
        assert v[f"aod[{group}]"] == pytest.approx(
            0.5 * ((u["fpr"] - p["fpr"]) + (u["tpr"] - p["tpr"])), abs=1e-12
        )
        assert v[f"di[{group}]"] == pytest.approx(u["sr"] / p["sr"], abs=1e-12)
        # fairlearn's own (unsigned) aggregates
        assert abs(v[f"spd[{group}]"]) == pytest.approx(
            demographic_parity_difference(y, yhat, sensitive_features=priv), abs=1e-12
        )
        assert min(v[f"di[{group}]"], 1 / v[f"di[{group}]"]) == pytest.approx(
            demographic_parity_ratio(y, yhat, sensitive_features=priv), abs=1e-12
        )
        assert abs(v[f"eod[{group}]"]) == pytest.approx(
            equal_opportunity_difference(y, yhat, sensitive_features=priv), abs=1e-12
        )
        assert max(abs(v[f"eod[{group}]"]), abs(u["fpr"] - p["fpr"])) == pytest.approx(
            equalized_odds_difference(y, yhat, sensitive_features=priv), abs=1e-12
        )


def test_downstream_model_on_distinct_rows_equals_the_fit_on_all_rows(
    schema: Schema, release: pd.DataFrame, train: pd.DataFrame, test_table: pd.DataFrame
) -> None:
    from sklearn.linear_model import LogisticRegression

    inputs = MetricInputs(release=release, schema=schema, train=train, test=test_table)
    pred, _ = downstream_predictions(inputs, weighted=True, model_params={}, metric="t")

    def onehot(df: pd.DataFrame) -> np.ndarray:
        return np.column_stack(
            [
                (df["sex"] == 1).to_numpy(float),
                *(df["region"] == r for r in ("north", "south", "east")),
                *(df["age"] == a for a in range(5)),
            ]
        ).astype(float)

    model = LogisticRegression().fit(onehot(release), release["y"])
    rows = _expand(pred, schema)
    np.testing.assert_allclose(
        np.repeat(pred.y_score, pred.counts.astype(int)),
        model.predict_proba(onehot(rows))[:, 1],
        atol=1e-4,
    )
    assert (rows["y_pred"].to_numpy() == model.predict(onehot(rows))).mean() > 0.999


def _hand_predictions() -> tuple[Predictions, Schema]:
    schema = Schema(
        columns=(Categorical("sex", (0, 1)), Categorical("y", (0, 1))),
        protected=("sex",),
        label="y",
        favorable=1,
        privileged={"sex": (1,)},
    )
    # privileged (sex=1): y = 1 1 0 0, predicted 1 0 1 0
    # unprivileged (sex=0): y = 1 1 1 0, predicted 1 1 0 0
    sex = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    y = np.array([1, 1, 0, 0, 1, 1, 1, 0])
    yhat = np.array([1, 0, 1, 0, 1, 1, 0, 0])
    pred = Predictions(
        cells=np.column_stack([sex, y]),
        counts=np.ones(8),
        y_true=y,
        y_pred=yhat,
        y_score=yhat * 0.5 + 0.25,
    )
    return pred, schema


def test_model_fairness_hand_computed() -> None:
    pred, schema = _hand_predictions()
    v, sizes = model_fairness_values(pred, schema)
    # selection 2/4 vs 2/4; TPR 2/3 vs 1/2; FPR 0 vs 1/2; FNR 1/3 vs 1/2
    assert v["spd[sex]"] == pytest.approx(0.0)
    assert v["eod[sex]"] == pytest.approx(2 / 3 - 1 / 2)
    assert v["aod[sex]"] == pytest.approx(0.5 * ((0 - 0.5) + (2 / 3 - 1 / 2)))
    assert v["fnrd[sex]"] == pytest.approx(1 / 3 - 1 / 2)
    assert v["di[sex]"] == pytest.approx(1.0)
    assert sizes == {"sex": {"privileged": 4.0, "unprivileged": 4.0}}
    assert "sex*" not in " ".join(v)  # one protected attribute: no intersection


def test_disparate_impact_is_nan_when_the_privileged_group_is_never_selected() -> None:
    pred, schema = _hand_predictions()
    yhat = np.where(pred.cells[:, 0] == 1, 0, pred.y_pred)
    v, _ = model_fairness_values(
        Predictions(pred.cells, pred.counts, pred.y_true, yhat, pred.y_score), schema
    )
    assert math.isnan(v["di[sex]"])
    assert v["spd[sex]"] == pytest.approx(0.5)


def test_mean_outcome_difference_hand_computed() -> None:
    schema = Schema(
        columns=(Categorical("a", (0, 1)), Categorical("b", ("x", "y")), Categorical("y", (0, 1))),
        protected=("a", "b"),
        label="y",
        favorable=0,
        privileged={"a": (1,), "b": ("x",)},
    )
    release = pd.DataFrame(
        {
            "a": [1, 1, 1, 0, 0, 0, 0, 1],
            "b": ["x", "x", "y", "x", "y", "y", "x", "x"],
            "y": [0, 0, 1, 0, 1, 1, 1, 1],
        }
    )
    r = sf.metric("mean_outcome_difference").compute(MetricInputs(release=release, schema=schema))
    # favourable is y = 0. a: unpriv rows 3,4,5,6 -> 1/4; priv rows 0,1,2,7 -> 2/4
    assert r.values["mod[a]"] == pytest.approx(1 / 4 - 2 / 4)
    # b: priv (x) rows 0,1,3,6,7 -> 3/5; unpriv (y) rows 2,4,5 -> 0/3
    assert r.values["mod[b]"] == pytest.approx(0 - 3 / 5)
    # a*b privileged: a=1 and b=x: rows 0,1,7 -> 2/3; others 2,3,4,5,6 -> 1/5
    assert r.values["mod[a*b]"] == pytest.approx(1 / 5 - 2 / 3)
    assert "release" in r.measured_on
    # weights: row 7 counted 3 times, row 2 not at all
    w = np.array([1, 1, 0, 1, 1, 1, 1, 3], dtype=float)
    rw = sf.metric("mean_outcome_difference").compute(
        MetricInputs(release=release, schema=schema, weights=w)
    )
    assert rw.values["mod[a]"] == pytest.approx(1 / 4 - 2 / 5)
    assert "weighted" in rw.measured_on
    ru = sf.metric("mean_outcome_difference", weighted=False).compute(
        MetricInputs(release=release, schema=schema, weights=w)
    )
    assert ru.values == r.values and "unweighted" in ru.measured_on


def test_mean_outcome_difference_matches_fairlearn_selection_rates(
    schema: Schema, release: pd.DataFrame
) -> None:
    r = sf.metric("mean_outcome_difference").compute(MetricInputs(release=release, schema=schema))
    priv = _privileged(release)
    for group, mask in priv.items():
        sr = MetricFrame(
            metrics=selection_rate,
            y_true=release["y"],
            y_pred=release["y"],
            sensitive_features=mask,
        ).by_group
        assert r.values[f"mod[{group}]"] == pytest.approx(sr.loc[False] - sr.loc[True], abs=1e-12)


def test_mean_outcome_difference_of_an_absent_group_is_nan(schema: Schema) -> None:
    release = pd.DataFrame(
        {"sex": [1, 1, 1], "region": ["north"] * 3, "age": [0, 1, 2], "y": [0, 1, 1]}
    )
    r = sf.metric("mean_outcome_difference").compute(MetricInputs(release=release, schema=schema))
    assert math.isnan(r.values["mod[sex]"])
    assert r.details["group_sizes"]["sex"] == {"privileged": 3.0, "unprivileged": 0.0}


def test_weighted_training_equals_training_on_repeated_rows(
    schema: Schema, release: pd.DataFrame, train: pd.DataFrame, test_table: pd.DataFrame
) -> None:
    w = np.random.default_rng(0).integers(0, 4, len(release)).astype(float)
    weighted = sf.metric("model_fairness").compute(
        MetricInputs(release=release, schema=schema, weights=w, train=train, test=test_table)
    )
    repeated = release.loc[release.index.repeat(w.astype(int))].reset_index(drop=True)
    plain = sf.metric("model_fairness").compute(
        MetricInputs(release=repeated, schema=schema, train=train, test=test_table)
    )
    for k, v in plain.values.items():
        assert weighted.values[k] == pytest.approx(v, abs=1e-6), k
    assert "weighted" in weighted.measured_on


def test_single_class_release_raises_a_clear_error(
    schema: Schema, release: pd.DataFrame, test_table: pd.DataFrame
) -> None:
    one = release.assign(y=1)
    with pytest.raises(SafesError, match="single class"):
        sf.metric("model_fairness").compute(
            MetricInputs(release=one, schema=schema, test=test_table)
        )


def test_missing_test_table_names_the_metric(schema: Schema, release: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="model_fairness.*test"):
        sf.metric("model_fairness").compute(MetricInputs(release=release, schema=schema))


def test_undeclared_privileged_values_raise(release: pd.DataFrame) -> None:
    schema = Schema(
        columns=(Categorical("sex", (0, 1)), Categorical("y", (0, 1))),
        protected=("sex",),
        label="y",
        favorable=1,
    )
    with pytest.raises(SchemaError, match="privileged"):
        sf.metric("mean_outcome_difference").compute(
            MetricInputs(release=release[["sex", "y"]], schema=schema)
        )


@pytest.mark.parametrize("params", [{"table": "nope"}, {"weighted": "yes"}, {"intersection": 1}])
def test_bad_mean_outcome_difference_params_raise(params: dict) -> None:
    with pytest.raises(ConfigError):
        sf.metric("mean_outcome_difference", **params)


def test_bad_model_params_raise() -> None:
    with pytest.raises(ConfigError, match="model_params"):
        sf.metric("model_fairness", model_params={"no_such_option": 1})
