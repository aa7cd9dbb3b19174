"""Tests of SafesChain: privacy accounting, the post-processing boundary, seeds, hooks, output."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from thirdparty_synth import IndependentMarginals

import safes_framework
from safes_framework import FairnessOutput, FairnessTransformer, SafesChain, Schema, hookimpl
from safes_framework.base import StageContext, Synthesizer
from safes_framework.chain import ROW_COUNT_ASSUMPTION, apply_fairness
from safes_framework.errors import BudgetExceededError, ConfigError, DomainError
from safes_framework.plugins import PluginManager
from safes_framework.primitives import PrivateTable


class Spy(FairnessTransformer):
    """Records what the fairness stage hands it; flips nothing."""

    name = "spy"

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def fit(self, data: pd.DataFrame, schema: Schema) -> Spy:
        self.calls.append(("fit", data, schema))
        return self

    def transform(self, data: pd.DataFrame, rng: np.random.Generator) -> FairnessOutput:
        self.calls.append(("transform", data, rng))
        return FairnessOutput(data, np.ones(len(data)))


class Observer:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    @hookimpl
    def safes_stage_started(self, run: Any, stage: str) -> None:
        self.events.append(("start", stage))

    @hookimpl
    def safes_stage_finished(self, run: Any, stage: str, seconds: float) -> None:
        self.events.append(("finish", stage))

    @hookimpl
    def safes_privacy_spent(self, run: Any, entry: Any, epsilon: float, delta: float) -> None:
        self.events.append(("spent", epsilon))

    @hookimpl
    def safes_progress(self, run: Any, stage: str, step: int, total: Any, message: str) -> None:
        self.events.append(("progress", message))


def _chain(pm: PluginManager | None = None, **kwargs: Any) -> SafesChain:
    synth = IndependentMarginals(epsilon=1.0, delta=1e-6)
    return SafesChain(synth, plugin_manager=pm or PluginManager(load_entrypoints=False), **kwargs)


def test_release_spends_exactly_the_budget(table: pd.DataFrame, schema: Schema) -> None:
    release = _chain(seed=3).run(table, schema)
    assert len(release.data) == len(table)
    assert list(release.data.columns) == list(schema.names)
    assert release.privacy.epsilon <= 1.0 * (1 + 1e-9)
    assert release.privacy.epsilon == pytest.approx(1.0, abs=1e-6)
    assert release.privacy.budget == (1.0, 1e-6)
    assert release.privacy.assumptions == (ROW_COUNT_ASSUMPTION,)
    assert [e["label"] for e in release.privacy.ledger] == ["measure"]
    assert set(release.timings) == {"synthesizer", "sample"}
    schema.validate(release.data)


def test_same_seed_same_release_and_other_seed_differs(table: pd.DataFrame, schema: Schema) -> None:
    a = _chain(seed=11).run(table, schema).data
    b = _chain(seed=11).run(table, schema).data
    c = _chain(seed=12).run(table, schema).data
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_unseeded_run_records_a_seed_that_reproduces_it(
    table: pd.DataFrame, schema: Schema
) -> None:
    first = _chain().run(table, schema)
    again = _chain(seed=first.seeds["root"]).run(table, schema)
    pd.testing.assert_frame_equal(first.data, again.data)


def testapply_fairness_sees_synthetic_table_and_schema_only(
    table: pd.DataFrame, schema: Schema
) -> None:
    spy = Spy()
    release = _chain(fairness=spy, seed=5).run(table, schema)
    (fit, data, got_schema), (transform, tdata, rng) = spy.calls
    assert (fit, transform) == ("fit", "transform")
    assert got_schema is schema
    assert isinstance(rng, np.random.Generator)
    assert data is not table and tdata is not table
    # What the transformer saw is the synthetic table, which the release carries.
    pd.testing.assert_frame_equal(data.reset_index(drop=True), release.data)
    assert not data.equals(table)
    # The boundary function itself cannot receive anything else.
    params = list(inspect.signature(apply_fairness).parameters)
    assert params == ["fairness", "synthetic", "schema", "rng"]
    assert release.weights is not None and release.timings.keys() >= {"fairness"}


def test_lifecycle_hooks_follow_the_run(table: pd.DataFrame, schema: Schema) -> None:
    pm = PluginManager(load_entrypoints=False)
    obs = Observer()
    pm.register(obs, name="observer")
    _chain(pm, fairness=Spy(), seed=1).run(table, schema)
    kinds = [e[0] for e in obs.events]
    assert obs.events[0] == ("start", "synthesizer")
    assert ("finish", "fairness") in obs.events
    assert kinds.count("spent") == 1 and ("progress", "measured") in obs.events
    assert kinds.index("spent") < kinds.index("finish")


class Greedy(Synthesizer):
    """Tries to measure twice with the whole budget each time."""

    def fit(self, data: PrivateTable, ctx: StageContext) -> None:
        sigma = float(np.sqrt(1 / (2 * data.accountant.plan_zcdp())))
        data.measure([("sex",)], sigma)
        data.measure([("race",)], sigma)

    def sample(self, rows: int, rng: np.random.Generator) -> np.ndarray:
        raise AssertionError("never reached")


def test_overspending_synthesizer_is_stopped_before_noise(
    table: pd.DataFrame, schema: Schema
) -> None:
    pm = PluginManager(load_entrypoints=False)
    obs = Observer()
    pm.register(obs, name="observer")
    chain = SafesChain(Greedy(epsilon=1.0, delta=1e-6), seed=0, plugin_manager=pm)
    with pytest.raises(BudgetExceededError):
        chain.run(table, schema)
    assert [e for e in obs.events if e[0] == "spent"] == [("spent", pytest.approx(1.0))]


def test_bad_input_fails_before_any_spend(table: pd.DataFrame, schema: Schema) -> None:
    pm = PluginManager(load_entrypoints=False)
    obs = Observer()
    pm.register(obs, name="observer")
    bad = table.assign(edu=table["edu"].where(table.index != 7, 9))
    with pytest.raises(DomainError, match="'edu'.*9"):
        _chain(pm, seed=0).run(bad, schema)
    assert obs.events == []


def test_rows_argument_and_validation(table: pd.DataFrame, schema: Schema) -> None:
    release = _chain(seed=0, rows=123).run(table, schema)
    assert len(release.data) == 123 and release.privacy.assumptions == ()
    with pytest.raises(ConfigError):
        _chain(rows=0)
    with pytest.raises(ConfigError):
        _chain(seed=-1)
    with pytest.raises(ConfigError, match="configured Synthesizer"):
        SafesChain("mst")  # type: ignore[arg-type]


def test_save_writes_release_privacy_and_run(
    table: pd.DataFrame, schema: Schema, tmp_path: Path
) -> None:
    release = _chain(fairness=Spy(), seed=2).run(table, schema)
    out = release.save(tmp_path / "out", extra={"input": {"dataset": "toy"}})
    written = pd.read_csv(out / "release.csv")
    assert list(written.columns) == [*schema.names, "weight"]
    privacy = json.loads((out / "privacy.json").read_text())
    assert privacy["epsilon"] == pytest.approx(1.0, abs=1e-6)
    assert privacy["ledger"][0]["count"] == 4
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 2 and run["input"] == {"dataset": "toy"}
    assert set(run["timings"]) == {"synthesizer", "sample", "fairness"}
    assert run["versions"]["safes-framework"] == safes_framework.__version__
    with pytest.raises(ConfigError, match="not empty"):
        release.save(out)


def test_mst_through_the_chain_is_budget_exact_and_seeded(
    table: pd.DataFrame, schema: Schema
) -> None:
    synth = safes_framework.synthesizer("mst", epsilon=2.0, delta=1e-9)
    pm = PluginManager(load_entrypoints=False)
    a = SafesChain(synth, seed=4, plugin_manager=pm).run(table, schema)
    b = SafesChain(
        safes_framework.synthesizer("mst", epsilon=2.0, delta=1e-9), seed=4, plugin_manager=pm
    ).run(table, schema)
    assert a.privacy.epsilon <= 2.0 * (1 + 1e-9)
    assert a.privacy.epsilon == pytest.approx(2.0, abs=1e-6)
    pd.testing.assert_frame_equal(a.data, b.data)
    schema.validate(a.data)
    labels = [e["label"] for e in a.privacy.ledger]
    assert labels[0] == "one-way marginals" and labels[-1] == "two-way marginals"
    assert labels.count("spanning-tree edge") == len(schema.names) - 1
