"""Reweighing: weights sum to n, equalise P(y | g) under weighting, table unchanged."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from safes_plugins.fairness.reweighing import Reweighing

from safes_framework import datasets
from safes_framework.errors import ConfigError, SchemaError
from safes_framework.plugins import DEFAULT_PLUGINS, PluginManager
from safes_framework.testing import check_fairness_transformer, toy_schema, toy_table


def weighted_rates(df: pd.DataFrame, w: np.ndarray, groups: list[str], label: str) -> pd.Series:
    tab = df.assign(w=w, wy=w * (df[label] == 1))
    g = tab.groupby(groups)
    return g["wy"].sum() / g["w"].sum()


@pytest.mark.parametrize("name", ["adult", "compas"])
def test_weights_sum_to_n_and_equalise_the_label_rate(name: str) -> None:
    df, schema = datasets.load(name)
    out = Reweighing().fit_transform(df, schema, np.random.default_rng(0))
    assert out.weights.sum() == pytest.approx(len(df))
    rates = weighted_rates(df, out.weights, list(schema.protected), schema.label)
    assert rates.to_numpy() == pytest.approx(np.full(len(rates), (df[schema.label] == 1).mean()))
    pd.testing.assert_frame_equal(out.data, df)


def test_weight_formula_on_a_small_table() -> None:
    schema = toy_schema()
    df = toy_table(500, seed=4)
    rw = Reweighing().fit(df, schema)
    w = rw.transform(df, np.random.default_rng(0)).weights
    row = df.iloc[0]
    n = len(df)
    g = (df.sex == row.sex) & (df.race == row.race)
    y = df.income == row.income
    expected = (g.sum() / n) * (y.sum() / n) / ((g & y).sum() / n)
    assert w[0] == pytest.approx(expected)
    assert rw.weights_["count"].sum() == n


def test_one_attribute_by_option() -> None:
    schema = toy_schema()
    df = toy_table(500, seed=4)
    w = Reweighing(attributes="sex").fit_transform(df, schema, np.random.default_rng(0)).weights
    rates = weighted_rates(df, w, ["sex"], "income")
    assert rates.iloc[0] == pytest.approx(rates.iloc[1])
    assert w.sum() == pytest.approx(len(df))
    with pytest.raises(SchemaError, match="'edu' is not a protected attribute"):
        Reweighing(attributes="edu").fit(df, schema)


def test_missing_groups_and_one_label_groups() -> None:
    schema = toy_schema()
    df = toy_table(500, seed=4)
    df = df[~((df.sex == 0) & (df.race == 0))]  # a whole group missing
    df = df[~((df.sex == 1) & (df.race == 1) & (df.income == 1))]  # a group with one label
    with pytest.warns(UserWarning, match=r"\(1, 1\).*lack some label"):
        rw = Reweighing().fit(df, schema)
    out = rw.transform(df, np.random.default_rng(0))
    assert np.isfinite(out.weights).all()
    # The one-label group keeps its P(g) P(y) for the label it has only: the total falls
    # short of n by n P(g) P(y = 1) for that group.
    n, g11 = len(df), ((df.sex == 1) & (df.race == 1)).mean()
    assert out.weights.sum() == pytest.approx(n * (1 - g11 * (df.income == 1).mean()))
    unseen = toy_table(40, seed=8)
    w = rw.transform(unseen, np.random.default_rng(0)).weights
    fresh = ((unseen.sex == 0) & (unseen.race == 0)).to_numpy()
    assert (w[fresh] == 1.0).all()


def test_contract_registry_and_params() -> None:
    check_fairness_transformer(Reweighing)
    assert "safes_plugins.fairness.reweighing" in DEFAULT_PLUGINS
    pm = PluginManager(load_entrypoints=False, builtins=("safes_plugins.fairness.reweighing",))
    rw = pm.fairness_transformers.create("reweighing", attributes=["sex"])
    assert json.loads(json.dumps(rw.params())) == {"attributes": ["sex"]}
    with pytest.raises(ConfigError, match="accepted parameters"):
        pm.fairness_transformers.create("reweighing", eta=0.1)
    with pytest.raises(ConfigError, match="attributes"):
        Reweighing(attributes=[])
    with pytest.raises(ConfigError, match="fit before transform"):
        Reweighing().transform(toy_table(5), np.random.default_rng(0))
