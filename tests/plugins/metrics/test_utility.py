"""Utility metrics: model scores, propensity KS, marginal TVD (correct and paper-compatible),
workload error; checked against scikit-learn / scipy / the paper's pandas code and by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from safes_plugins.metrics.downstream import Predictions, downstream_predictions, weighted_auc
from safes_plugins.metrics.utility import model_utility_values, weighted_ks
from scipy.stats import ks_2samp
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

import safes_framework as sf
from safes_framework import Categorical, Integer, Schema
from safes_framework.base import MetricInputs
from safes_framework.errors import ConfigError, DataError

BUILTIN = (
    "mean_outcome_difference",
    "model_fairness",
    "model_utility",
    "propensity_ks",
    "tvd",
    "workload_error",
)


def test_builtin_metrics_are_registered_as_plugins() -> None:
    registry = sf.get_plugin_manager().metrics
    for name in BUILTIN:
        assert registry.entry(name).plugin == "safes_plugins.metrics"


def test_model_utility_matches_scikit_learn_overall_and_per_group(
    schema: Schema, release: pd.DataFrame, train: pd.DataFrame, test_table: pd.DataFrame
) -> None:
    inputs = MetricInputs(release=release, schema=schema, train=train, test=test_table)
    result = sf.metric("model_utility").compute(inputs)
    pred, _ = downstream_predictions(inputs, weighted=True, model_params={}, metric="t")
    reps = pred.counts.astype(int)
    cells = np.repeat(pred.cells, reps, axis=0)
    y, yhat, score = pred.rows()
    priv = {"sex": cells[:, 0] == 1, "region": cells[:, 1] <= 1}
    priv["sex*region"] = priv["sex"] & priv["region"]
    scorers = {
        "accuracy": lambda t, p, s: accuracy_score(t, p),
        "f1": lambda t, p, s: f1_score(t, p),
        "precision": lambda t, p, s: precision_score(t, p),
        "recall": lambda t, p, s: recall_score(t, p),
        "specificity": lambda t, p, s: recall_score(t, p, pos_label=0),
        "roc_auc": lambda t, p, s: roc_auc_score(t, s),
    }
    for name, f in scorers.items():
        assert result.values[name] == pytest.approx(f(y, yhat, score), abs=1e-12), name
        for g, m in priv.items():
            p, u = f(y[m], yhat[m], score[m]), f(y[~m], yhat[~m], score[~m])
            assert result.values[f"{name}[{g}=privileged]"] == pytest.approx(p, abs=1e-12)
            assert result.values[f"{name}[{g}=unprivileged]"] == pytest.approx(u, abs=1e-12)
            assert result.values[f"{name}[{g}:difference]"] == pytest.approx(u - p, abs=1e-12)
    assert "real test table" in result.measured_on


def test_model_utility_hand_computed() -> None:
    schema = Schema(
        columns=(Categorical("sex", (0, 1)), Categorical("y", (0, 1))),
        protected=("sex",),
        label="y",
        favorable=1,
        privileged={"sex": (1,)},
    )
    sex = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    y = np.array([1, 1, 0, 0, 1, 1, 1, 0])
    yhat = np.array([1, 0, 1, 0, 1, 1, 0, 0])
    score = np.array([0.9, 0.4, 0.6, 0.1, 0.8, 0.7, 0.3, 0.2])
    pred = Predictions(np.column_stack([sex, y]), np.ones(8), y, yhat, score)
    v, sizes = model_utility_values(pred, schema)
    # tp 3, fp 1, tn 2, fn 2
    assert v["accuracy"] == pytest.approx(5 / 8)
    assert v["precision"] == pytest.approx(3 / 4)
    assert v["recall"] == pytest.approx(3 / 5)
    assert v["specificity"] == pytest.approx(2 / 3)
    assert v["f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    # privileged: positives 0.9, 0.4; negatives 0.6, 0.1 -> pairs won 3 of 4
    assert v["roc_auc[sex=privileged]"] == pytest.approx(3 / 4)
    assert v["roc_auc[sex=unprivileged]"] == pytest.approx(1.0)
    assert v["accuracy[sex:difference]"] == pytest.approx(3 / 4 - 2 / 4)
    assert sizes == {"overall": 8.0, "sex=privileged": 4.0, "sex=unprivileged": 4.0}


def test_auc_is_nan_for_a_group_with_one_class() -> None:
    assert math.isnan(weighted_auc(np.array([1, 1]), np.array([0.2, 0.3]), np.ones(2)))


def test_weighted_auc_matches_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 400)
    s = rng.integers(0, 10, 400) / 10  # many ties
    w = rng.random(400) * 3
    assert weighted_auc(y, s, w) == pytest.approx(roc_auc_score(y, s, sample_weight=w), abs=1e-12)


def test_weighted_ks_with_integer_weights_equals_scipy_on_repeated_values() -> None:
    rng = np.random.default_rng(6)
    x, y = rng.random(30).round(2), rng.random(40).round(2)
    wx, wy = rng.integers(1, 5, 30), rng.integers(1, 5, 40)
    expected = ks_2samp(np.repeat(x, wx), np.repeat(y, wy)).statistic
    assert weighted_ks(x, wx.astype(float), y, wy.astype(float)) == pytest.approx(expected)


def test_propensity_ks_is_zero_for_the_real_table_and_matches_direct_computation(
    schema: Schema, release: pd.DataFrame, train: pd.DataFrame
) -> None:
    from sklearn.linear_model import LogisticRegression

    same = sf.metric("propensity_ks").compute(
        MetricInputs(release=train, schema=schema, train=train)
    )
    assert same.values["ks"] == pytest.approx(0.0, abs=1e-9)
    r = sf.metric("propensity_ks").compute(
        MetricInputs(release=release, schema=schema, train=train)
    )
    both = pd.concat([train, release], ignore_index=True)
    x = np.column_stack(
        [
            (both["sex"] == 1),
            *(both["region"] == c for c in ("north", "south", "east")),
            *(both["age"] == a for a in range(5)),
            (both["y"] == 1),
        ]
    ).astype(float)
    label = np.r_[np.zeros(len(train)), np.ones(len(release))]
    score = LogisticRegression().fit(x, label).predict_proba(x)[:, 1]
    direct = ks_2samp(score[label == 0], score[label == 1])
    assert r.values["ks"] == pytest.approx(direct.statistic, abs=1e-6)
    assert r.values["ks_pvalue"] == pytest.approx(direct.pvalue, rel=1e-3)
    assert "train" in r.measured_on


def test_propensity_ks_weighted_release_has_no_pvalue(
    schema: Schema, release: pd.DataFrame, train: pd.DataFrame
) -> None:
    w = np.random.default_rng(0).random(len(release)) + 0.5
    r = sf.metric("propensity_ks").compute(
        MetricInputs(release=release, schema=schema, train=train, weights=w)
    )
    assert 0 <= r.values["ks"] <= 1 and math.isnan(r.values["ks_pvalue"])


def _paper_tvd(real: pd.DataFrame, synth: pd.DataFrame, cols: list[str]) -> float:
    """The SAFES code's TVD (custom_metrics.TVD): value_counts subtracted, NaNs skipped."""
    return float(
        (real[cols].value_counts(normalize=True) - synth[cols].value_counts(normalize=True))
        .abs()
        .sum()
        / 2
    )


def _tvd_schema() -> Schema:
    return Schema(
        columns=(
            Categorical("a", (0, 1, 2)),
            Categorical("b", (0, 1)),
            Integer("c", 0, 3),
            Categorical("y", (0, 1)),
        ),
        protected=("b",),
        label="y",
        favorable=1,
        privileged={"b": (1,)},
    )


def test_tvd_hand_computed_full_domain_and_paper_compatible() -> None:
    schema = _tvd_schema()
    real = pd.DataFrame(
        {"a": [0, 0, 1, 1], "b": [0, 1, 0, 1], "c": [0, 1, 2, 3], "y": [0, 1, 0, 1]}
    )
    rel = pd.DataFrame({"a": [0, 2, 2, 2], "b": [0, 1, 0, 1], "c": [0, 1, 2, 3], "y": [0, 1, 0, 1]})
    inputs = MetricInputs(release=rel, schema=schema, train=real)
    full = sf.metric("tvd", orders=[1]).compute(inputs)
    # a: p = (.5, .5, 0), q = (.25, 0, .75) -> (.25 + .5 + .75) / 2 = .75; b, c, y identical
    assert full.values["tvd_1way"] == pytest.approx(0.75 / 4)
    assert full.details["per_marginal"]["a"] == pytest.approx(0.75)
    paper = sf.metric("tvd", orders=[1], paper_compatible=True).compute(inputs)
    # only a = 0 is in both tables: |.5 - .25| / 2
    assert paper.details["per_marginal"]["a"] == pytest.approx(0.125)
    assert "PAPER-COMPATIBLE" in paper.measured_on
    assert "PAPER" not in full.measured_on
    assert sf.metric("tvd").compute(
        MetricInputs(release=real, schema=schema, train=real)
    ).values == {"tvd_1way": 0, "tvd_2way": 0, "tvd_3way": 0}


def test_tvd_paper_compatible_reproduces_the_paper_code_and_full_domain_is_larger() -> None:
    schema = _tvd_schema()
    rng = np.random.default_rng(3)

    def table(n: int, p: list[float]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "a": rng.choice(3, n, p=p),
                "b": rng.integers(0, 2, n),
                "c": rng.integers(0, 4, n),
                "y": rng.integers(0, 2, n),
            }
        )

    real, rel = table(60, [0.6, 0.4, 0.0]), table(50, [0.2, 0.3, 0.5])
    inputs = MetricInputs(release=rel, schema=schema, train=real)
    paper = sf.metric("tvd", paper_compatible=True).compute(inputs)
    full = sf.metric("tvd").compute(inputs)
    for k in (1, 2, 3):
        combos = list(itertools.combinations(schema.names, k))
        expected = np.mean([_paper_tvd(real, rel, list(c)) for c in combos])
        assert paper.values[f"tvd_{k}way"] == pytest.approx(expected, abs=1e-12)
        assert full.values[f"tvd_{k}way"] > paper.values[f"tvd_{k}way"]


def test_tvd_weighted_release_equals_repeated_rows() -> None:
    schema = _tvd_schema()
    rng = np.random.default_rng(4)
    real = pd.DataFrame(
        {
            "a": rng.integers(0, 3, 80),
            "b": rng.integers(0, 2, 80),
            "c": rng.integers(0, 4, 80),
            "y": rng.integers(0, 2, 80),
        }
    )
    rel = real.sample(40, random_state=1).reset_index(drop=True)
    w = rng.integers(0, 4, 40)
    weighted = sf.metric("tvd").compute(
        MetricInputs(release=rel, schema=schema, train=real, weights=w.astype(float))
    )
    repeated = rel.loc[rel.index.repeat(w)]
    plain = sf.metric("tvd").compute(MetricInputs(release=repeated, schema=schema, train=real))
    assert weighted.values == pytest.approx(plain.values)


def test_workload_error_is_twice_the_tvd_and_accepts_a_workload() -> None:
    schema = _tvd_schema()
    real = pd.DataFrame(
        {"a": [0, 0, 1, 1], "b": [0, 1, 0, 1], "c": [0, 1, 2, 3], "y": [0, 1, 0, 1]}
    )
    rel = real.assign(a=[0, 2, 2, 2])
    inputs = MetricInputs(release=rel, schema=schema, train=real)
    r = sf.metric("workload_error", workload=[["a"], ["b", "y"]]).compute(inputs)
    assert r.values["l1"] == pytest.approx((1.5 + 0.0) / 2)
    assert r.values["tvd"] == pytest.approx(r.values["l1"] / 2)
    assert r.values["max_l1"] == pytest.approx(1.5)
    default = sf.metric("workload_error").compute(inputs)
    assert len(default.details["workload"]) == 4  # all 3-way marginals of 4 columns
    with pytest.raises(ConfigError, match="'zzz'"):
        sf.metric("workload_error", workload=[["zzz"]]).compute(inputs)


def test_tvd_counts_large_domains_over_occupied_cells() -> None:
    schema = Schema(
        columns=(
            Integer("u", 0, 9999),
            Integer("v", 0, 9999),
            Integer("w", 0, 999),
            Categorical("y", (0, 1)),
        ),
        protected=("y",),
        label="u",
        favorable=0,
        privileged={"y": (1,)},
    )
    rng = np.random.default_rng(0)
    real = pd.DataFrame(
        {
            "u": rng.integers(0, 10000, 300),
            "v": rng.integers(0, 10000, 300),
            "w": rng.integers(0, 1000, 300),
            "y": rng.integers(0, 2, 300),
        }
    )
    rel = real.copy()
    rel.loc[:9, "w"] = (rel.loc[:9, "w"] + 1) % 1000
    r = sf.metric("tvd", orders=[3]).compute(MetricInputs(release=rel, schema=schema, train=real))
    paper = sf.metric("tvd", orders=[3], paper_compatible=True).compute(
        MetricInputs(release=rel, schema=schema, train=real)
    )
    expected = np.mean(
        [_paper_tvd(real, rel, list(c)) for c in itertools.combinations(schema.names, 3)]
    )
    assert paper.values["tvd_3way"] == pytest.approx(expected)
    assert r.values["tvd_3way"] > 0


@pytest.mark.parametrize(
    "name,params",
    [
        ("tvd", {"orders": [0]}),
        ("tvd", {"orders": "x"}),
        ("tvd", {"reference": "release"}),
        ("tvd", {"paper_compatible": "no"}),
        ("workload_error", {"ways": 0}),
        ("workload_error", {"workload": "ab"}),
        ("propensity_ks", {"model_params": 3}),
        ("model_utility", {"model_params": {"C": 1, "bogus": 2}}),
    ],
)
def test_bad_params_raise_config_errors(name: str, params: dict) -> None:
    with pytest.raises(ConfigError):
        sf.metric(name, **params)


def test_bad_weights_raise(schema: Schema, release: pd.DataFrame, train: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="weights"):
        sf.metric("tvd").compute(
            MetricInputs(release=release, schema=schema, train=train, weights=np.ones(3))
        )


def test_release_outside_the_domain_names_table_and_column(
    schema: Schema, release: pd.DataFrame, train: pd.DataFrame
) -> None:
    bad = release.assign(age=release["age"] + 10)
    with pytest.raises(DataError, match="release table.*'age'"):
        sf.metric("tvd").compute(MetricInputs(release=bad, schema=schema, train=train))
