"""Tests of DP bin edges: the declared budget split, the edges chosen, the re-coding, the chain."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from thirdparty_synth import IndependentMarginals

from safes_framework import Categorical, SafesChain, Schema
from safes_framework.access import InMemorySource
from safes_framework.binning import BinPlan, choose_edges, ledger_label, plan_bins, spaced
from safes_framework.errors import ConfigError
from safes_framework.primitives import PrivateTable
from safes_framework.privacy import RDPAccountant
from safes_framework.privacy.noise import SeededNoise
from safes_framework.schema import Continuous, QuantileBinned


def _schema(bins: int = 4, grid: int = 100) -> Schema:
    return Schema(
        (
            Categorical("g", ("a", "b", "c")),
            QuantileBinned("income", 0, 1000, bins, grid=grid),
            QuantileBinned("age", 18, 80, 3, integer=True),
            Categorical("y", ("no", "yes")),
        ),
        protected=("g",), label="y", favorable="yes",
    )


def _table(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "g": rng.choice(["a", "b", "c"], n),
            "income": np.clip(rng.gamma(2.0, 120.0, n), 0, 1000),
            "age": rng.integers(18, 81, n),
            "y": rng.choice(["no", "yes"], n),
        }
    )


def test_the_budget_share_is_split_equally_over_every_edge() -> None:
    acc = RDPAccountant(budget=(1.0, 1e-9))
    plan = plan_bins(_schema(bins=4), acc, 0.2)
    assert isinstance(plan, BinPlan)
    assert plan.edges == {"income": 3, "age": 2}
    assert plan.rho_total == pytest.approx(acc.plan_zcdp())
    assert plan.rho == pytest.approx(0.2 * plan.rho_total)
    assert plan.epsilon == pytest.approx(math.sqrt(8 * plan.rho / 5))
    plan.charge(acc)
    assert [(e.label, e.count) for e in acc.entries] == [
        (ledger_label("income"), 3), (ledger_label("age"), 2)
    ]
    # What remains for the synthesizer is the other 80% of rho (zCDP composes exactly).
    assert acc.plan_zcdp() == pytest.approx(0.8 * plan.rho_total, rel=1e-6)
    assert plan_bins(_schema().replace_columns({
        "income": Continuous("income", (0, 500, 1000)),
        "age": Continuous("age", (18, 50, 80)),
    }), acc, 0.2) is None
    with pytest.raises(ConfigError, match="bin_share"):
        plan_bins(_schema(), RDPAccountant(budget=(1.0, 1e-9)), 1.0)


def test_colliding_choices_are_spaced_apart_on_the_grid() -> None:
    assert spaced([5, 5, 5], 10).tolist() == [5, 6, 7]
    assert spaced([9, 9, 9], 10).tolist() == [7, 8, 9]
    assert spaced([3, 1, 2], 4).tolist() == [1, 2, 3]
    out = spaced([1, 1, 1, 1], 5)
    assert out.tolist() == [1, 2, 3, 4]


def test_edges_are_grid_points_and_codes_are_the_resolved_schemas() -> None:
    schema, data = _schema(), _table()
    grid = schema.grid()
    codes = grid.encode_array(data)
    acc = RDPAccountant(budget=(1.0, 1e-9))
    plan = plan_bins(schema, acc, 0.5)
    assert plan is not None
    table = PrivateTable(InMemorySource(codes, grid.sizes), grid, acc, SeededNoise(
        np.random.SeedSequence(4)), stage="binning")
    resolved, binned = choose_edges(table, schema, codes, plan)
    income = resolved["income"]
    assert isinstance(income, Continuous) and income.size == 4
    assert income.edges[0] == 0 and income.edges[-1] == 1000
    assert set(income.edges) <= set(QuantileBinned("income", 0, 1000, 4, grid=100).grid_edges())
    age = resolved["age"]
    assert isinstance(age, Continuous) and age.integer and age.size == 3
    assert (binned == resolved.encode_array(data)).all()  # re-coding is exact
    assert (codes == grid.encode_array(data)).all()  # the grid codes are left alone
    assert not resolved.dp_binned
    # Equal-frequency bins: each holds about a quarter of the records at this budget.
    shares = np.bincount(binned[:, 1], minlength=4) / len(data)
    assert np.abs(shares - 0.25).max() < 0.1


def test_the_chain_charges_edges_first_and_releases_the_resolved_schema() -> None:
    schema, data = _schema(), _table()
    synth = IndependentMarginals(epsilon=1.0, delta=1e-9)
    release = SafesChain(synth, seed=5, rows=400, bin_share=0.1).run(data, schema)
    ledger = release.privacy.ledger
    assert [e["stage"] for e in ledger[:2]] == ["binning", "binning"]
    assert [e["label"] for e in ledger[:2]] == ["bin edges of 'income'", "bin edges of 'age'"]
    assert release.privacy.epsilon <= 1.0
    assert release.privacy.epsilon == pytest.approx(1.0, abs=1e-6)  # the budget, exactly
    assert release.run.binning is not None and release.run.binning["share"] == 0.1
    assert not release.schema.dp_binned
    release.schema.validate(release.data)
    assert release.data["age"].dtype == np.int64
    assert release.data["income"].nunique() > 100  # drawn within bins, not 4 midpoints
    record = release.run_record()
    assert record["schema"]["columns"][1]["kind"] == "continuous"
    assert isinstance(record["schema"]["columns"][1]["edges"], list)
