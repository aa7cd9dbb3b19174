"""TOT as a plugin: the fitted map meets its constraints, seeded transform, synthetic gaps, API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safes_plugins.fairness.tot import TOT
from safes_plugins.fairness.tot.distortion import Distortion, Moves, Ordinal

import safes_framework
from safes_framework import datasets
from safes_framework.errors import ConfigError, DataError
from safes_framework.plugins import DEFAULT_PLUGINS, PluginManager
from safes_framework.testing import check_fairness_transformer, toy_schema, toy_table

TOY_DIST = Distortion(
    (Ordinal("edu", up=(1.0, 3.0), down=(2.0, 3.0)), Moves("income", {(1, 0): 1.0})),
    combine="max",
)


@pytest.fixture(scope="module")
def adult_train() -> pd.DataFrame:
    return datasets.train_test_split("adult")[0]


def map_constraints(tot: TOT) -> dict[str, float]:
    """Recompute the map's constraints from `tot.mapping()` alone, with pandas."""
    m = tot.mapping()
    schema = tot.schema_
    d, xy = list(schema.protected), list(tot.xy_columns_)
    codes = schema.encode(tot._train)  # noqa: SLF001 (the test keeps the table it fitted on)
    p = codes.groupby(d + xy).size() / len(codes)
    enc = pd.DataFrame({c: schema[c].encode(m[c]) for c in d + xy})
    for c in xy:
        enc[c + "'"] = schema[c].encode(m[c + "'"].rename(c))
    enc["P"] = m["probability"].to_numpy()
    enc["p"] = p.reindex(pd.MultiIndex.from_frame(enc[d + xy])).to_numpy()
    row_sums = enc.groupby(d + xy)["P"].sum()
    label = schema.label
    enc["mass"] = enc["p"] * enc["P"]
    pd_ = codes.groupby(d).size() / len(codes)
    q = (
        enc[enc[label + "'"] == schema.favorable_code]
        .groupby(d)["mass"]
        .sum()
        .reindex(pd_.index, fill_value=0.0)
        / pd_
    )
    cost = tot.distortion_.matrix(schema, xy)
    sizes = [schema[c].size for c in xy]
    src = np.ravel_multi_index(enc[xy].to_numpy().T, sizes)
    dst = np.ravel_multi_index(enc[[c + "'" for c in xy]].to_numpy().T, sizes)
    enc["cost"] = cost[src, dst]
    pxy = codes.groupby(xy).size() / len(codes)
    out = {
        "row_sum_error": float((row_sums - 1).abs().max()),
        "difference": float(q.max() - q.min()),
        "ratio": float((q / (codes[label] == schema.favorable_code).mean() - 1).abs().max()),
        "protected_changed": 0.0,
    }
    for ck in tot.clist:
        hit = enc[enc["cost"] >= ck]
        avg = hit.groupby(xy)["mass"].sum() / pxy.reindex(hit.groupby(xy).size().index)
        out[f"avg>={ck}"] = float(avg.max()) if len(avg) else 0.0
        per = hit.groupby(d + xy)["P"].sum()
        out[f"group>={ck}"] = float(per.max()) if len(per) else 0.0
    return out


def fit(tot: TOT, df: pd.DataFrame, schema) -> TOT:
    tot.fit(df, schema)
    tot._train = df  # noqa: SLF001
    return tot


@pytest.mark.parametrize("constraint, eta", [("difference", 0.025), ("ratio", 0.2)])
def test_fitted_map_meets_every_constraint_on_adult(adult_train, constraint, eta) -> None:
    tot = fit(
        TOT(eta, distortion="adult", constraint=constraint), adult_train, datasets.schema("adult")
    )
    got = map_constraints(tot)
    assert got["row_sum_error"] < 1e-9
    assert got[constraint] <= eta + 1e-7
    assert got["avg>=0.99"] <= 0.1 + 1e-7 and got["avg>=1.99"] <= 0.05 + 1e-7
    assert got["avg>=2.99"] == 0.0  # forbidden moves have no entry at all
    assert tot.discrimination_ == pytest.approx(got[constraint], abs=1e-9)


def test_per_group_bounds_hold_for_every_group(adult_train) -> None:
    tot = fit(TOT(0.05, distortion="adult", per_group=True), adult_train, datasets.schema("adult"))
    got = map_constraints(tot)
    assert got["group>=0.99"] <= 0.1 + 1e-7 and got["group>=1.99"] <= 0.05 + 1e-7
    assert got["difference"] <= 0.05 + 1e-7
    averaged = TOT(0.05, distortion="adult").fit(adult_train, datasets.schema("adult"))
    assert tot.objective_value_ >= averaged.objective_value_ - 1e-9  # stricter bound


def test_transform_is_seeded_and_follows_the_map(adult_train) -> None:
    schema = datasets.schema("adult")
    tot = TOT(0.025, distortion="adult").fit(adult_train, schema)
    a = tot.transform(adult_train, np.random.default_rng(7)).data
    b = tot.transform(adult_train, np.random.default_rng(7)).data
    c = tot.transform(adult_train, np.random.default_rng(8)).data
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    for p in schema.protected:
        assert (a[p] == adult_train[p]).all()
    assert list(a.columns) == list(schema.names) and a.index.equals(adult_train.index)
    # The transformed table's favourable rate per group is the map's, up to sampling noise.
    rate = a.groupby(list(schema.protected))["income>50K"].mean()
    assert rate.max() - rate.min() < 0.025 + 0.03
    tv = (
        0.5
        * (
            a.groupby(["age-decade", "education-reduced", "income>50K"])
            .size()
            .sub(
                adult_train.groupby(["age-decade", "education-reduced", "income>50K"]).size(),
                fill_value=0,
            )
            .abs()
            .sum()
        )
        / len(a)
    )
    assert tv == pytest.approx(tot.objective_value_, abs=0.01)


def test_contract_on_the_toy_table() -> None:
    check_fairness_transformer(lambda: TOT(0.05, distortion=TOY_DIST))


def test_synthetic_table_with_missing_categories_and_cells() -> None:
    schema = toy_schema()
    df = toy_table(800, seed=5)
    df = df[(df.edu != 2) & ~((df.sex == 1) & (df.edu == 4))]  # a category and some cells gone
    tot = TOT(0.05, distortion=TOY_DIST).fit(df, schema)
    out = tot.transform(df, np.random.default_rng(0)).data
    schema.validate(out)
    assert tot.program_.cells.n_cells == 5 * 2  # the schema's domain, not the observed values
    # Moves into the unobserved category are allowed by the distortion and stay aligned.
    m = tot.mapping()
    assert set(m["edu'"]) <= set(range(5))
    assert (m["edu'"] - m["edu"]).abs().max() <= 1  # two steps cost 3: forbidden


def test_a_missing_group_is_skipped_with_a_warning_or_raises() -> None:
    schema = toy_schema()
    df = toy_table(800, seed=5)
    df = df[~((df.sex == 0) & (df.race == 1))]
    with pytest.warns(UserWarning, match=r"1 group\(s\).*no rows: \{'sex': 0, 'race': 1\}"):
        tot = TOT(0.05, distortion=TOY_DIST).fit(df, schema)
    assert tot.skipped_groups_ == ((0, 1),)
    other = toy_table(50, seed=9)
    out = tot.transform(other, np.random.default_rng(0)).data
    missing = (other.sex == 0) & (other.race == 1)
    pd.testing.assert_frame_equal(out[missing], other[missing])
    with pytest.raises(DataError, match="no rows"):
        TOT(0.05, distortion=TOY_DIST, missing_groups="raise").fit(df, schema)


def light_manager() -> PluginManager:
    """A manager with only this plugin (loading every built-in imports jax: seconds)."""
    return PluginManager(load_entrypoints=False, builtins=("safes_plugins.fairness.tot",))


def test_registry_and_params() -> None:
    assert "safes_plugins.fairness.tot" in DEFAULT_PLUGINS
    tot = light_manager().fairness_transformers.create("tot", eta=0.025, distortion="adult")
    assert isinstance(tot, TOT)
    json.dumps(tot.params())
    json.dumps(TOT(0.1, distortion=TOY_DIST).params())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eta": -0.1}, "eta"),
        ({"eta": float("nan")}, "eta"),
        ({"constraint": "odds"}, "constraint"),
        ({"clist": (1.0,), "dlist": (0.1, 0.2)}, "differ in length"),
        ({"dlist": (0.1, 0.05, 1.5)}, "dlist"),
        ({"solver": "gurobi"}, "unknown solver"),
        ({"solver": "cvxpy:NOPE"}, "not installed"),
        ({"distortion": "german"}, "unknown distortion"),
        ({"missing_groups": "ignore"}, "missing_groups"),
    ],
)
def test_bad_settings_raise_config_error(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        TOT(**{"eta": 0.05, **kwargs})


def test_transform_before_fit_raises() -> None:
    with pytest.raises(ConfigError, match="fit before transform"):
        TOT(0.05).transform(toy_table(10), np.random.default_rng(0))


def test_chain_runs_tot_on_the_synthetic_table_only() -> None:
    from thirdparty_synth import IndependentMarginals

    schema, df = toy_schema(), toy_table(1000, seed=2)
    chain = safes_framework.SafesChain(
        IndependentMarginals(epsilon=1.0, delta=1e-6),
        TOT(0.05, distortion=TOY_DIST),
        seed=3,
        plugin_manager=light_manager(),
    )
    release = chain.run(df, schema)
    schema.validate(release.data)
    assert release.run.fairness == "tot" and release.run.fairness_params["eta"] == 0.05
    q = release.data.groupby(["sex", "race"])["income"].mean()
    assert q.max() - q.min() < 0.05 + 0.08


@pytest.mark.slow
@pytest.mark.parametrize(
    "args", [["--fairness", "tot", "--eta", "0.2"], ["--fairness", "reweighing"]]
)
def test_cli_runs_the_fairness_stage(tmp_path, args) -> None:
    from safes_framework.cli import main

    out = tmp_path / "release"
    code = main(
        [
            "run",
            "--dataset",
            "compas",
            "--epsilon",
            "1",
            "--seed",
            "0",
            *args,
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    run = json.loads((out / "run.json").read_text())
    assert run["fairness"]["name"] == args[1]
    release = pd.read_csv(out / "release.csv")
    assert len(release) == run["rows"] and abs(len(release) - 5278) < 200
    assert ("weight" in release.columns) == (args[1] == "reweighing")


# -- any schema: the generic default, distortion files, pre-flight ------------------------------


def _loans(n: int = 1500) -> tuple[pd.DataFrame, safes_framework.Schema]:
    from safes_framework import Categorical, Continuous, Schema

    rng = np.random.default_rng(8)
    group = rng.choice(["A", "B", "C"], n, p=[0.5, 0.3, 0.2])
    age = rng.integers(18, 81, n)
    job = rng.choice(["clerk", "nurse", "driver"], n)
    income = rng.gamma(3.0, 15_000.0, n).clip(0, 199_999)
    p = 0.25 + 0.25 * (group == "A") + 0.2 * (income > 45_000)
    schema = Schema(
        (
            Categorical("group", ("A", "B", "C")),
            Continuous("age", (18, 30, 45, 60, 80), integer=True),
            Categorical("job", ("clerk", "nurse", "driver")),
            Continuous("income", (0, 25_000, 45_000, 70_000, 200_000)),
            Categorical("approved", ("no", "yes")),
        ),
        protected=("group",), label="approved", favorable="yes", privileged={"group": ("A",)},
    )
    data = pd.DataFrame({
        "group": group, "age": age, "job": job, "income": income,
        "approved": np.where(rng.random(n) < p, "yes", "no"),
    })
    return data, schema


def test_tot_runs_on_any_schema_with_the_generic_default_and_warns() -> None:
    from safes_plugins.fairness.tot import GenericDistortionWarning

    data, schema = _loans()
    tot = TOT(eta=0.05)
    with pytest.warns(GenericDistortionWarning, match="written for your domain is better"):
        out = tot.fit_transform(data, schema, np.random.default_rng(1))
    assert tot.params()["distortion"]["name"] == "generic"
    assert tot.discrimination_ <= 0.05 + 1e-6 and tot.excess_distortion_[2.99] == 0.0
    schema.validate(out.data)
    assert (out.data["group"] == data["group"]).all()
    # Changed binned values are drawn inside their new bins: integers stay integers.
    assert out.data["age"].dtype == np.int64 and out.data["income"].dtype == np.float64
    changed = out.data["income"] != data["income"]
    assert changed.any()
    assert out.data.loc[changed, "income"].nunique() > 4  # not the bins' midpoints
    check_fairness_transformer(lambda: TOT(eta=0.05, distortion="generic"),
                               table=data, schema=schema)


def test_a_distortion_file_path_is_read_at_construction(tmp_path: Path) -> None:
    data, schema = _loans()
    path = tmp_path / "loans.toml"
    path.write_text(
        'name = "loans"\ncombine = "sum"\n'
        '[[terms]]\nkind = "moves"\ncolumn = "approved"\n'
        'costs = [{ from = "no", to = "yes", cost = 1 }, { from = "yes", to = "no", cost = 2 }]\n'
        '[[terms]]\nkind = "moves"\ncolumn = "job"\nchange = "forbidden"\n'
    )
    made = safes_framework.fairness_transformer("tot", eta=0.1, distortion=str(path))
    assert isinstance(made, TOT) and made.distortion.name == "loans"  # type: ignore[union-attr]
    made.fit(data, schema)
    params = made.params()
    assert params["distortion_file"] == str(path) and params["distortion"]["name"] == "loans"
    json.dumps(params)
    with pytest.raises(ConfigError, match="cannot read distortion file"):
        TOT(distortion=str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match='"generic", a path to a .toml distortion file'):
        TOT(distortion="loans")


def test_preflight_sizes_the_program_and_leaves_a_fitted_map_alone() -> None:
    data, schema = _loans()
    tot = TOT(eta=0.1, distortion="generic").fit(data, schema)
    before = tot.transform(data, np.random.default_rng(0)).data
    other = toy_schema()
    plan = tot.preflight(other)
    assert plan == {
        "distortion": "generic", "groups": 4, "cells": 10, "moves": plan["moves"],
        "moves_counted": "exactly",
    }
    assert 10 < plan["moves"] <= 100
    assert tot.schema_ is schema
    pd.testing.assert_frame_equal(tot.transform(data, np.random.default_rng(0)).data, before)
    with pytest.raises(ConfigError, match="'edu'"):
        TOT(distortion=Distortion((Ordinal("edu", up=1),))).preflight(schema)


def test_the_generic_fallback_warns_once_across_preflight_and_fit() -> None:
    import warnings

    from safes_plugins.fairness.tot import GenericDistortionWarning

    data, schema = _loans()
    tot = TOT(eta=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tot.preflight(schema)
        tot.preflight(schema.provisional())  # an equal schema
        tot.fit(data, schema)
    assert sum(issubclass(w.category, GenericDistortionWarning) for w in caught) == 1
