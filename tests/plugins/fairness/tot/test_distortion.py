"""Distortion specs of TOT: built-ins equal the paper's definitions; sparse targets; errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from safes_plugins.fairness.tot.distortion import (
    ADULT,
    COMPAS,
    FORBIDDEN,
    Distortion,
    FunctionDistortion,
    GenericDistortionWarning,
    Moves,
    Ordinal,
    generic,
    resolve,
)

from safes_framework.datasets import schema as bundled_schema
from safes_framework.errors import ConfigError
from safes_framework.schema import Categorical, Integer, Schema
from safes_framework.testing import toy_schema

ADULT_XY = ("age-decade", "education-reduced", "income>50K")
COMPAS_XY = ("age_cat", "c_charge_degree", "priors_count", "two_year_recid")


def adult_rule(old: dict, new: dict) -> float:
    """The SAFES paper's Adult distortion, rules checked in order (values, not codes)."""
    de = new["education-reduced"] - old["education-reduced"]
    if de < 0 or de > 1:
        return 3.0
    da = abs(new["age-decade"] - old["age-decade"])
    if da > 10:
        return 3.0
    if da == 10:
        return 2.0
    if old["income>50K"] == 1 and new["income>50K"] == 0:
        return 1.0
    return 0.0


def compas_rule(old: dict, new: dict) -> float:
    """The SAFES paper's COMPAS distortion, costs added (M = 0, F = 1)."""
    cost = 2.0 if old["two_year_recid"] != new["two_year_recid"] else 0.0
    cost += abs(old["age_cat"] - new["age_cat"]) + abs(old["priors_count"] - new["priors_count"])
    charge = (old["c_charge_degree"], new["c_charge_degree"])
    cost += {(0, 1): 2.0, (1, 0): 1.0}.get(charge, 0.0)
    return cost


def dense_reference(schema: Schema, columns: tuple[str, ...], rule) -> np.ndarray:
    values = [
        schema[c].categories
        if hasattr(schema[c], "categories")
        else tuple(range(schema[c].low, schema[c].high + 1))
        for c in columns
    ]
    cells = [dict(zip(columns, v, strict=True)) for v in itertools.product(*values)]
    return np.array([[rule(o, n) for n in cells] for o in cells])


def test_adult_spec_equals_the_papers_rules_on_the_whole_domain() -> None:
    schema = bundled_schema("adult")
    got = ADULT.matrix(schema, ADULT_XY)
    assert got.shape == (144, 144)
    np.testing.assert_array_equal(got, dense_reference(schema, ADULT_XY, adult_rule))


def test_compas_spec_equals_the_papers_costs_on_the_whole_domain() -> None:
    schema = bundled_schema("compas")
    got = COMPAS.matrix(schema, COMPAS_XY)
    np.testing.assert_array_equal(got, dense_reference(schema, COMPAS_XY, compas_rule))


def test_function_distortion_scalar_and_vectorized_equal_the_declared_one() -> None:
    schema = bundled_schema("adult")

    def vectorized(old: dict, new: dict) -> np.ndarray:
        de = new["education-reduced"] - old["education-reduced"]
        da = np.abs(new["age-decade"] - old["age-decade"])
        inc = (old["income>50K"] == 1) & (new["income>50K"] == 0)
        return np.select([(de < 0) | (de > 1), da > 10, da == 10, inc], [3.0, 3.0, 2.0, 1.0], 0.0)

    declared = ADULT.matrix(schema, ADULT_XY)
    np.testing.assert_array_equal(FunctionDistortion(adult_rule).matrix(schema, ADULT_XY), declared)
    np.testing.assert_array_equal(
        FunctionDistortion(vectorized, vectorized=True).matrix(schema, ADULT_XY), declared
    )


@pytest.mark.parametrize(
    "spec, name, xy", [(ADULT, "adult", ADULT_XY), (COMPAS, "compas", COMPAS_XY)]
)
def test_sparse_targets_are_the_dense_matrix_below_the_forbidden_threshold(spec, name, xy) -> None:
    schema = bundled_schema(name)
    dense = spec.matrix(schema, xy)
    sizes = [schema[c].size for c in xy]
    all_cells = np.stack(np.unravel_index(np.arange(dense.shape[0]), sizes), axis=1)
    for forbidden_at in (2.99, 1.99, np.inf):
        src, codes, cost = spec.targets(schema, xy, all_cells, forbidden_at)
        assert (np.diff(src) >= 0).all()
        cell = np.ravel_multi_index(codes.T, sizes)
        got = np.full(dense.shape, np.nan)
        got[src, cell] = cost
        want = np.where(dense < forbidden_at, dense, np.nan)
        np.testing.assert_array_equal(got, want)


def test_adult_leaves_about_a_dozen_targets_per_cell_instead_of_144() -> None:
    schema = bundled_schema("adult")
    sizes = [schema[c].size for c in ADULT_XY]
    cells = np.stack(np.unravel_index(np.arange(144), sizes), axis=1)
    src, _, _ = ADULT.targets(schema, ADULT_XY, cells, 2.99)
    assert np.bincount(src).max() == 12


def test_ordinal_steps_linear_and_tabulated() -> None:
    col = Integer("e", 0, 4)
    m = Ordinal("e", up=1.5).matrix(col)
    assert m[0, 4] == 6.0 and m[4, 0] == 6.0 and m[2, 2] == 0.0
    m = Ordinal("e", up=(0, 3), down=(1, 2, 5)).matrix(col)
    assert (m[0, 1], m[0, 2], m[0, 4]) == (0.0, 3.0, 3.0)
    assert (m[4, 3], m[4, 2], m[4, 1], m[4, 0]) == (1.0, 2.0, 5.0, 5.0)


def test_moves_are_given_in_labels_not_codes() -> None:
    col = Categorical("c", ("M", "F", "O"))
    m = Moves("c", {("M", "F"): 2, ("F", "M"): 1}, change=FORBIDDEN).matrix(col)
    assert m[0, 1] == 2 and m[1, 0] == 1 and np.isinf(m[0, 2]) and m[2, 2] == 0


def test_sum_combination_prunes_partial_costs() -> None:
    schema = Schema(
        columns=(
            Categorical("d", (0, 1)),
            Integer("a", 0, 3),
            Integer("b", 0, 3),
            Categorical("y", (0, 1)),
        ),
        protected=("d",),
        label="y",
        favorable=1,
    )
    spec = Distortion(
        (Ordinal("a", up=1.0), Ordinal("b", up=1.0), Moves("y", change=1.0)), combine="sum"
    )
    xy = ("a", "b", "y")
    dense = spec.matrix(schema, xy)
    cells = np.stack(np.unravel_index(np.arange(32), (4, 4, 2)), axis=1)
    src, codes, cost = spec.targets(schema, xy, cells, 2.0)
    assert len(src) == int((dense < 2.0).sum())
    assert cost.max() < 2.0


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Ordinal("a", up=-1.0), "non-negative"),
        (lambda: Moves("a", {(0,): 1.0}), "pairs"),
        (lambda: Distortion((Ordinal("a", up=1.0),), combine="mean"), "combine"),
        (lambda: Distortion(("a",)), "not an Ordinal"),
        (lambda: FunctionDistortion(3), "callable"),
    ],
)
def test_bad_specs_raise_config_errors(make, match) -> None:
    with pytest.raises(ConfigError, match=match):
        make()


def test_terms_on_protected_or_unknown_columns_are_rejected() -> None:
    schema = bundled_schema("adult")
    with pytest.raises(ConfigError, match="'race'.*never changes"):
        Distortion((Moves("race", change=1.0),)).matrix(schema, ADULT_XY)
    with pytest.raises(ConfigError, match="'nope'.*does not declare"):
        Distortion((Moves("nope", change=1.0),)).matrix(schema, ADULT_XY)


def test_resolve_picks_builtins_by_name_or_columns() -> None:
    assert resolve(None, bundled_schema("adult"), ADULT_XY) is ADULT
    assert resolve("auto", bundled_schema("compas"), COMPAS_XY) is COMPAS
    assert resolve("compas", bundled_schema("compas"), COMPAS_XY) is COMPAS
    assert isinstance(resolve(adult_rule, bundled_schema("adult"), ADULT_XY), FunctionDistortion)
    toy = toy_schema()
    with pytest.warns(GenericDistortionWarning, match="domain is better"):
        fallback = resolve(None, toy, ("edu", "income"))
    assert fallback == generic(toy, ("edu", "income"))
    with pytest.raises(ConfigError, match="unknown distortion 'german'"):
        resolve("german", bundled_schema("adult"), ADULT_XY)
