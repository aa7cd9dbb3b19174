"""Tests of SafesChain: privacy accounting, the post-processing boundary, seeds, hooks, output."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from thirdparty_synth import IndependentMarginals

import safes_framework
from safes_framework import (
    FairnessOutput,
    FairnessTransformer,
    SafesChain,
    Schema,
    hookimpl,
    outputs,
)
from safes_framework.base import StageContext, Synthesizer
from safes_framework.chain import ASSUMPTIONS, ESTIMATED_SIZE, SEED_ASSUMPTION, apply_fairness
from safes_framework.errors import (
    BudgetExceededError,
    ConfigError,
    DomainError,
    PrivacyWarning,
    SmallTableWarning,
)
from safes_framework.outputs import PARTIAL_PREFIX
from safes_framework.plugins import PluginManager
from safes_framework.primitives import PrivateTable
from safes_framework.testing import toy_table


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
    release = _chain().run(table, schema)
    assert list(release.data.columns) == list(schema.names)
    assert release.privacy.epsilon <= 1.0
    assert release.privacy.epsilon == pytest.approx(1.0, abs=1e-6)
    assert release.privacy.budget == (1.0, 1e-6)
    assert release.privacy.assumptions == ASSUMPTIONS
    assert release.privacy.release_size == ESTIMATED_SIZE
    assert release.privacy.noise["source"] == "secure"
    assert [e["label"] for e in release.privacy.ledger] == ["measure"]
    assert set(release.timings) == {"synthesizer", "sample"}
    schema.validate(release.data)


def test_default_release_size_is_the_synthesizers_dp_estimate(
    table: pd.DataFrame, schema: Schema
) -> None:
    synth = IndependentMarginals(epsilon=1.0, delta=1e-6)
    release = SafesChain(synth, plugin_manager=PluginManager(load_entrypoints=False)).run(
        table, schema
    )
    assert len(release.data) == max(1, round(synth.estimated_rows()))


def test_synthesizer_without_a_row_estimate_needs_rows_before_any_spend(
    table: pd.DataFrame, schema: Schema
) -> None:
    class NoEstimate(IndependentMarginals):
        estimates_rows = False

    with pytest.raises(ConfigError, match="rows=N"):
        SafesChain(NoEstimate(epsilon=1.0, delta=1e-6))
    release = SafesChain(NoEstimate(epsilon=1.0, delta=1e-6), rows=50).run(table, schema)
    assert len(release.data) == 50
    assert release.privacy.release_size == "chosen by the caller (rows=50)"


def test_same_seed_same_release_and_other_seed_differs(table: pd.DataFrame, schema: Schema) -> None:
    a = _chain(seed=11).run(table, schema).data
    b = _chain(seed=11).run(table, schema).data
    c = _chain(seed=12).run(table, schema).data
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_seeded_run_says_so_and_records_no_seed(table: pd.DataFrame, schema: Schema) -> None:
    release = _chain(seed=987_654_321).run(table, schema)
    assert release.run.seeded and release.seeds == {}
    assert release.privacy.noise["source"] == "seeded"
    assert "for experiments" in release.privacy.noise["measurements"]
    assert release.privacy.assumptions == (*ASSUMPTIONS, SEED_ASSUMPTION)
    assert "987654321" not in json.dumps(release.run_record())
    assert not hasattr(release.run, "seed")


def test_unseeded_runs_differ_and_record_only_post_processing_seeds(
    table: pd.DataFrame, schema: Schema
) -> None:
    first = _chain(fairness=Spy()).run(table, schema)
    second = _chain(fairness=Spy()).run(table, schema)
    assert not first.run.seeded
    assert set(first.seeds) == {"sample", "fairness"}
    assert first.seeds != second.seeds
    assert not first.data.equals(second.data)


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
    chain = SafesChain(Greedy(epsilon=1.0, delta=1e-6), seed=0, rows=10, plugin_manager=pm)
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
    assert len(release.data) == 123
    assert release.privacy.release_size == "chosen by the caller (rows=123)"
    with pytest.raises(ConfigError):
        _chain(rows=0)
    with pytest.raises(ConfigError):
        _chain(seed=-1)
    with pytest.raises(ConfigError, match="configured Synthesizer"):
        SafesChain("mst")  # type: ignore[arg-type]


def test_save_writes_release_privacy_and_run_only(
    table: pd.DataFrame, schema: Schema, tmp_path: Path
) -> None:
    release = _chain(fairness=Spy(), metrics=["mean_outcome_difference"]).run(table, schema)
    out = release.save(tmp_path / "out", extra={"input": {"dataset": "toy"}})
    assert sorted(p.name for p in out.iterdir()) == ["privacy.json", "release.csv", "run.json"]
    written = pd.read_csv(out / "release.csv")
    assert list(written.columns) == [*schema.names, "weight"]
    privacy = json.loads((out / "privacy.json").read_text())
    assert privacy["epsilon"] == pytest.approx(1.0, abs=1e-6)
    assert privacy["ledger"][0]["count"] == 4
    assert privacy["noise"]["source"] == "secure"
    run = json.loads((out / "run.json").read_text())
    assert run["input"] == {"dataset": "toy"} and run["seeds"] == release.seeds
    assert "timings" not in run and "metrics" not in run and "seed" not in run
    assert run["versions"]["safes-framework"] == safes_framework.__version__
    with pytest.raises(ConfigError, match="not empty"):
        release.save(out)
    evaluation = json.loads(release.save_evaluation(tmp_path / "eval.json").read_text())
    assert evaluation["warning"].startswith("NOT differentially private")
    assert set(evaluation["metrics"]) == {"mean_outcome_difference"}
    assert set(evaluation["timings"]) == {"synthesizer", "sample", "fairness", "metrics"}


def test_mst_through_the_chain_is_budget_exact_and_seeded(
    table: pd.DataFrame, schema: Schema
) -> None:
    synth = safes_framework.synthesizer("mst", epsilon=2.0, delta=1e-9)
    pm = PluginManager(load_entrypoints=False)
    a = SafesChain(synth, seed=4, plugin_manager=pm).run(table, schema)
    b = SafesChain(
        safes_framework.synthesizer("mst", epsilon=2.0, delta=1e-9), seed=4, plugin_manager=pm
    ).run(table, schema)
    assert a.privacy.epsilon <= 2.0
    assert a.privacy.epsilon == pytest.approx(2.0, abs=1e-6)
    pd.testing.assert_frame_equal(a.data, b.data)
    schema.validate(a.data)
    labels = [e["label"] for e in a.privacy.ledger]
    assert labels[0] == "one-way marginals" and labels[-1] == "two-way marginals"
    assert labels.count("spanning-tree edge") == len(schema.names) - 1


# -- checks before any budget is spent --------------------------------------------------------


class Spent(IndependentMarginals):
    """Records whether fit ran (budget would have been spent)."""

    fitted = False

    def fit(self, data: PrivateTable, ctx: StageContext) -> None:
        type(self).fitted = True
        super().fit(data, ctx)


class Picky(Spy):
    """A fairness transformer whose pre-flight refuses schemas without a column 'zip'."""

    name = "picky"

    def preflight(self, schema: Schema) -> dict[str, Any]:
        if "zip" not in schema:
            raise ConfigError("picky: distortion names column 'zip', which the schema lacks")
        return {}


def _spent_chain(**kwargs: Any) -> SafesChain:
    Spent.fitted = False
    return SafesChain(
        Spent(epsilon=1.0, delta=1e-6), plugin_manager=PluginManager(load_entrypoints=False),
        **kwargs,
    )


def test_checks_without_data_come_before_the_data_is_read(
    table: pd.DataFrame, schema: Schema
) -> None:
    bad = table.assign(edu=99)  # would fail validation: the public checks must come first
    with pytest.raises(ConfigError, match="reads the real test table"):
        _spent_chain(metrics=["model_utility"]).run(bad, schema)
    with pytest.raises(ConfigError, match="'zip'"):
        _spent_chain(fairness=Picky()).run(bad, schema)
    assert not Spent.fitted


def test_tot_distortion_must_agree_with_the_schema_before_any_spend(
    table: pd.DataFrame, schema: Schema
) -> None:
    from safes_plugins.fairness.tot import Distortion, Ordinal

    wrong = Distortion(terms=(Ordinal("age", up=1),))
    tot = safes_framework.fairness_transformer("tot", eta=0.1, distortion=wrong)
    with pytest.raises(ConfigError, match="'age', which the schema does not declare"):
        _spent_chain(fairness=tot).run(table, schema)
    protected = Distortion(terms=(Ordinal("sex", up=1),))
    tot = safes_framework.fairness_transformer("tot", eta=0.1, distortion=protected)
    with pytest.raises(ConfigError, match="protected attribute"):
        _spent_chain(fairness=tot).run(table, schema)
    assert not Spent.fitted


def test_model_size_pre_flight_fails_before_any_spend(
    table: pd.DataFrame, schema: Schema
) -> None:
    aim = safes_framework.synthesizer("aim", epsilon=1.0, delta=1e-9, max_model_size=1e-6)
    chain = SafesChain(aim, plugin_manager=PluginManager(load_entrypoints=False))
    with pytest.raises(ConfigError, match="max_model_size"):
        chain.plan(schema)
    with pytest.raises(ConfigError, match="max_model_size"):
        chain.run(table.assign(edu=99), schema)  # refused before the data is validated


def test_plan_reports_the_budget_split_and_the_plugins_plans(schema: Schema) -> None:
    tot = safes_framework.fairness_transformer("tot", eta=0.1, distortion="generic")
    plan = _spent_chain(fairness=tot).plan(schema)
    budget = plan["budget"]
    assert budget["epsilon"] == 1.0 and budget["synthesizer_rho"] == pytest.approx(budget["rho"])
    assert plan["binning"] is None
    assert plan["fairness"]["distortion"] == "generic"
    assert plan["fairness"]["groups"] == 4 and plan["fairness"]["cells"] == 10
    json.dumps(plan)
    mst = safes_framework.synthesizer("mst", epsilon=1.0, delta=1e-9)
    summary = SafesChain(mst).plan(schema)["synthesizer"]
    assert summary["name"] == "mst" and summary["model_mb_at_most"] > 0
    assert not Spent.fitted


# -- paid-for synthetic data is kept ----------------------------------------------------------


class Infeasible(FairnessTransformer):
    """Always infeasible after fitting (as TOT with too small an eta)."""

    name = "infeasible"

    def fit(self, data: pd.DataFrame, schema: Schema) -> Infeasible:
        from safes_framework.errors import InfeasibleError

        raise InfeasibleError("infeasible: the smallest feasible eta is 0.07")

    def transform(self, data: pd.DataFrame, rng: np.random.Generator) -> FairnessOutput:
        raise AssertionError("never reached")

    def params(self) -> dict[str, Any]:
        return {"eta": 0.01}


def test_a_failed_fairness_stage_keeps_the_dp_release(
    table: pd.DataFrame, schema: Schema, tmp_path: Path
) -> None:
    from safes_framework.errors import FairnessStageError, InfeasibleError

    chain = _chain(fairness=Infeasible(), metrics=["mean_outcome_difference"])
    with pytest.raises(FairnessStageError, match="failed after synthesis") as info:
        chain.run(table, schema)
    assert isinstance(info.value.__cause__, InfeasibleError)
    release = info.value.release
    assert release.run.fairness is None and release.weights is None
    assert release.run.fairness_failure == {
        "name": "infeasible", "params": {"eta": 0.01}, "error": "InfeasibleError",
        "message": "infeasible: the smallest feasible eta is 0.07",
    }
    assert release.privacy.epsilon == pytest.approx(1.0, abs=1e-6)
    assert set(release.seeds) == {"sample"} and not release.metrics
    schema.validate(release.data)
    out = release.save(tmp_path / "dp")
    run = json.loads((out / "run.json").read_text())
    assert run["fairness"] is None and run["fairness_failure"]["error"] == "InfeasibleError"


def test_fair_release_is_post_processing_of_a_saved_release(
    table: pd.DataFrame, schema: Schema, tmp_path: Path
) -> None:
    from safes_framework.chain import fair_release
    from safes_framework.release import Release

    first = _chain().run(table, schema)
    saved = Release.load(first.save(tmp_path / "dp"))
    tot = safes_framework.fairness_transformer("tot", eta=0.2, distortion="generic")
    fair = fair_release(saved, tot, seed=3)
    assert fair.privacy == first.privacy
    assert fair.run.made_from == {"run_id": first.run.run_id, "fairness": None}
    assert fair.run.run_id != first.run.run_id and fair.run.fairness == "tot"
    assert fair.seeds == {"fairness": 3}
    assert fair.run.fairness_params["distortion"]["name"] == "generic"
    schema.validate(fair.data)
    assert (fair.data["sex"] == saved.data["sex"]).all()  # protected attributes kept
    again = fair_release(saved, tot, seed=3)
    pd.testing.assert_frame_equal(fair.data, again.data)
    assert fair_release(saved, tot).seeds["fairness"] != 3  # fresh by default
    out = fair.save(tmp_path / "fair")
    assert (out / "privacy.json").read_text() == (tmp_path / "dp" / "privacy.json").read_text()
    weighted = _chain(fairness=Spy()).run(table, schema)
    with pytest.raises(ConfigError, match="sample weights"):
        fair_release(weighted, tot)


class Broken(safes_framework.Metric):
    """A metric that fails on every release."""

    name = "broken"

    def compute(self, inputs: safes_framework.MetricInputs) -> safes_framework.MetricResult:
        raise ValueError("cannot fit a classifier on one class")


def test_a_failed_metric_keeps_the_complete_release(table: pd.DataFrame, schema: Schema) -> None:
    from safes_framework.errors import MetricsStageError

    chain = _chain(fairness=Spy(), metrics=["mean_outcome_difference", Broken()])
    with pytest.raises(MetricsStageError, match="metric 'broken' failed") as info:
        chain.run(table, schema)
    release = info.value.release
    assert release.run.fairness == "spy" and release.weights is not None
    assert set(release.metrics) == {"mean_outcome_difference"}
    assert release.privacy.epsilon == pytest.approx(1.0, abs=1e-6)


def test_delta_not_below_one_over_the_estimated_n_warns(
    table: pd.DataFrame, schema: Schema
) -> None:
    synth = safes_framework.synthesizer("mst", epsilon=1.0, delta=0.01)
    with pytest.warns(PrivacyWarning, match=r"delta=0.01 is not below 1/n") as record:
        release = SafesChain(synth).run(table, schema)
    # n in the message is the DP estimate (the release size), not the table's exact size
    assert f"n ~ {len(release.data):,}" in str(record[0].message)
    synth = safes_framework.synthesizer("mst", epsilon=1.0, delta=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivacyWarning)
        SafesChain(synth, seed=0).run(table, schema)


def test_a_one_record_table_warns_before_any_spend(schema: Schema) -> None:
    seen: list[list[warnings.WarningMessage]] = []
    warned_at_spend: list[bool] = []

    class Watch:
        @hookimpl
        def safes_privacy_spent(self, run: object, entry: object) -> None:
            warned_at_spend.append(any(w.category is SmallTableWarning for w in seen[0]))

    pm = PluginManager(load_entrypoints=False)
    pm.register(Watch(), name="watch")
    synth = safes_framework.synthesizer("mst", epsilon=1.0, delta=1e-9)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        seen.append(record)
        SafesChain(synth, seed=0, plugin_manager=pm).run(toy_table(1, seed=2), schema)
    [small] = [w for w in record if w.category is SmallTableWarning]
    assert "single record" in str(small.message) and small.filename == __file__
    assert warned_at_spend and all(warned_at_spend)


def test_save_leaves_no_staging_folder_and_cleans_a_dead_writers(
    table: pd.DataFrame, schema: Schema, tmp_path: Path
) -> None:
    synth = safes_framework.synthesizer("mst", epsilon=1.0, delta=1e-9)
    release = SafesChain(synth, seed=0).run(table, schema)
    dead = _dead_pid()
    stale = tmp_path / f"{PARTIAL_PREFIX}{outputs._host()}-{dead}-abc"
    stale.mkdir()
    (stale / "release.csv").write_text("sex,race\n0,")
    alive = tmp_path / f"{PARTIAL_PREFIX}{outputs._host()}-{os.getppid()}-abc"
    alive.mkdir()
    elsewhere = tmp_path / f"{PARTIAL_PREFIX}otherhost-{dead}-abc"
    elsewhere.mkdir()
    release.save(tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["out", alive.name, elsewhere.name]
    )
    with pytest.raises(ConfigError, match="not empty"):
        release.save(tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["out", alive.name, elsewhere.name]
    )


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
