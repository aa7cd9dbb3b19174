"""Distortion specs of TOT: built-ins equal the paper's definitions; sparse targets; errors."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

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
    load_distortion,
    move_count,
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


# -- the generic default and distortion files ---------------------------------------------------


def _loans() -> Schema:
    from safes_framework.schema import Continuous

    return Schema(
        (
            Categorical("group", ("A", "B", "C")),
            Continuous("age", (18, 30, 50, 80), integer=True),
            Categorical("education", ("none", "school", "college"), ordered=True),
            Categorical("job", ("clerk", "nurse", "driver")),
            Categorical("approved", ("no", "yes")),
        ),
        protected=("group",), label="approved", favorable="yes",
    )


LOANS_XY = ("age", "education", "job", "approved")


def test_generic_counts_steps_changes_and_label_flips() -> None:
    schema = _loans()
    g = generic(schema, LOANS_XY)
    assert g.combine == "sum" and g.name == "generic"
    M = g.matrix(schema, LOANS_XY)
    sizes = [schema[c].size for c in LOANS_XY]
    cells = list(itertools.product(*(range(k) for k in sizes)))
    for i, a in enumerate(cells):
        for j, b in enumerate(cells):
            expected = (
                abs(a[0] - b[0]) + abs(a[1] - b[1]) + (a[2] != b[2]) + (a[3] != b[3])
            )
            assert M[i, j] == expected


DISTORTION_TOML = """
name = "loans"
combine = "sum"

[[terms]]
kind = "moves"
column = "approved"
costs = [{ from = "no", to = "yes", cost = 1 }, { from = "yes", to = "no", cost = 2 }]

[[terms]]
kind = "ordinal"
column = "education"
up = [1, "forbidden"]
down = "forbidden"

[[terms]]
kind = "ordinal"
column = "age"
up = [1, inf]

[[terms]]
kind = "moves"
column = "job"
change = "forbidden"
"""

DISTORTION_PY = Distortion(
    name="loans",
    combine="sum",
    terms=(
        Moves("approved", {("no", "yes"): 1, ("yes", "no"): 2}),
        Ordinal("education", up=(1, FORBIDDEN), down=FORBIDDEN),
        Ordinal("age", up=(1, FORBIDDEN)),
        Moves("job", change=FORBIDDEN),
    ),
)


def test_a_distortion_file_is_the_same_language_as_the_classes(tmp_path: Path) -> None:
    path = tmp_path / "loans.toml"
    path.write_text(DISTORTION_TOML)
    loaded = load_distortion(path)
    schema = _loans()
    assert np.array_equal(loaded.matrix(schema, LOANS_XY), DISTORTION_PY.matrix(schema, LOANS_XY))
    assert loaded.name == "loans" and loaded.combine == "sum"
    # JSON, and the description recorded in a release, read back to the same metric.
    as_json = tmp_path / "loans.json"
    described = DISTORTION_PY.describe()
    as_json.write_text(json.dumps(described).replace("Infinity", '"forbidden"'))
    again = load_distortion(as_json)
    assert np.array_equal(again.matrix(schema, LOANS_XY), DISTORTION_PY.matrix(schema, LOANS_XY))
    assert resolve(str(path), schema, LOANS_XY) == loaded


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('combine = "sum"\n[[terms]]\nkind = "steps"\ncolumn = "age"', "kind must be"),
        ('[[terms]]\nkind = "ordinal"\ncolumn = "age"', "needs up"),
        ('[[terms]]\nkind = "ordinal"\ncolumn = "age"\nup = 1\nside = 2', "unknown key 'side'"),
        ('[[terms]]\nkind = "moves"\ncolumn = "job"\ncosts = [{ from = "a", cost = 1 }]',
         "needs from, to and cost"),
        ('[[terms]]\nkind = "moves"\ncolumn = "job"\nchange = "high"', 'or "forbidden"'),
        ('combine = "min"', "combine must be"),
        ("terms = [", "does not parse"),
    ],
)
def test_bad_distortion_files_name_the_file_and_the_term(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_distortion(path)
    assert "bad.toml" in str(info.value)


def test_move_counts_size_the_program_without_data() -> None:
    schema = _loans()
    for spec in (DISTORTION_PY, generic(schema, LOANS_XY)):
        sizes = [schema[c].size for c in LOANS_XY]
        sources = np.stack(np.unravel_index(np.arange(np.prod(sizes)), sizes), axis=1)
        src, _, _ = spec.targets(schema, LOANS_XY, sources, 2.99)
        assert move_count(spec, schema, LOANS_XY, 2.99) == (src.size, True)
    as_max = Distortion(terms=DISTORTION_PY.terms, combine="max")
    count, exact = move_count(as_max, schema, LOANS_XY, 2.99)
    sources = np.stack(np.unravel_index(np.arange(3 * 3 * 3 * 2), (3, 3, 3, 2)), axis=1)
    assert exact and count == as_max.targets(schema, LOANS_XY, sources, 2.99)[0].size


def test_a_negative_cost_in_a_file_names_the_file_and_the_term(tmp_path: Path) -> None:
    path = tmp_path / "neg.toml"
    path.write_text('[[terms]]\nkind = "ordinal"\ncolumn = "age"\nup = -1\n')
    with pytest.raises(ConfigError, match=r"neg\.toml', term 1 \(column 'age'\).*non-negative"):
        load_distortion(path)
