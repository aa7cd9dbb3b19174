"""Tests of the AIM synthesizer plugin: budget, determinism, accuracy, guardrails, API and CLI."""

from __future__ import annotations

import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safes_plugins.synthesizers.aim import AIM

import safes_framework
from safes_framework import Categorical, Integer, SafesChain, Schema, StageContext
from safes_framework.access import InMemorySource
from safes_framework.cli import main
from safes_framework.errors import ConfigError, SafesError
from safes_framework.plugins import PluginManager
from safes_framework.primitives import PrivateTable
from safes_framework.privacy import RDPAccountant
from safes_framework.privacy.noise import SeededNoise
from safes_framework.testing import check_synthesizer, toy_schema, toy_table

FAST = {"max_iters": 200}


def _private_table(
    table: pd.DataFrame, schema: Schema, epsilon: float, delta: float = 1e-9, seed: int = 0
) -> PrivateTable:
    acc = RDPAccountant(budget=(epsilon, delta))
    source = InMemorySource(schema.encode_array(table), schema.sizes)
    return PrivateTable(source, schema, acc, SeededNoise(np.random.SeedSequence(seed)))


def _fit(
    table: pd.DataFrame, schema: Schema, epsilon: float = 1.0, seed: int = 0, **params: object
) -> tuple[AIM, PrivateTable]:
    synth = AIM(epsilon=epsilon, delta=1e-9, **{**FAST, **params})
    data = _private_table(table, schema, epsilon, seed=seed)
    synth.fit(data, StageContext("synthesizer"))
    return synth, data


def _mean_tvd(real: np.ndarray, fake: np.ndarray, sizes: list[int], order: int) -> float:
    errors = []
    for cols in itertools.combinations(range(len(sizes)), order):
        shape = tuple(sizes[c] for c in cols)
        size = int(np.prod(shape))
        p = np.bincount(np.ravel_multi_index(tuple(real[:, c] for c in cols), shape),
                        minlength=size) / len(real)
        q = np.bincount(np.ravel_multi_index(tuple(fake[:, c] for c in cols), shape),
                        minlength=size) / len(fake)
        errors.append(0.5 * np.abs(p - q).sum())
    return float(np.mean(errors))


# -- budget ----------------------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [0.1, 1.0, 8.0])
def test_ledger_ends_at_the_requested_epsilon_and_never_above(epsilon: float) -> None:
    synth, data = _fit(toy_table(2000, seed=1), toy_schema(), epsilon=epsilon)
    spent = data.accountant.epsilon(1e-9)
    assert spent <= epsilon
    assert epsilon - spent <= 1e-6
    labels = [e.label for e in data.accountant.entries]
    assert labels[0] == "one-way marginals"
    assert labels[-1] == f"round {len(synth.history_)} measurement"
    assert synth.history_[-1].final and not any(r.final for r in synth.history_[:-1])


def test_budget_is_exact_when_rounds_is_small() -> None:
    synth, data = _fit(toy_table(500, seed=2), toy_schema(), epsilon=0.5, rounds=4)
    assert 0.5 - 1e-6 <= data.accountant.epsilon(1e-9) <= 0.5
    assert len(synth.history_) >= 1


def test_measurement_share_is_nine_tenths_of_each_round() -> None:
    synth, _ = _fit(toy_table(1000, seed=3), toy_schema(), epsilon=1.0)
    for r in synth.history_[:-1]:
        rho_measure, rho_select = 1 / (2 * r.sigma**2), r.epsilon**2 / 8
        assert rho_measure / (rho_measure + rho_select) == pytest.approx(0.9)


# -- contract, determinism -------------------------------------------------------------------


def test_contract_check_passes() -> None:
    check_synthesizer(lambda epsilon, delta: AIM(epsilon, delta, **FAST))


def test_same_seed_same_table_through_the_chain() -> None:
    table, schema = toy_table(1000, seed=4), toy_schema()
    pm = PluginManager(load_entrypoints=False)

    def run(seed: int) -> pd.DataFrame:
        synth = safes_framework.synthesizer("aim", epsilon=1.0, delta=1e-9, **FAST)
        return SafesChain(synth, seed=seed, plugin_manager=pm).run(table, schema).data

    first, again, other = run(7), run(7), run(8)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)


# -- accuracy ----------------------------------------------------------------------------------


def test_error_falls_as_epsilon_grows() -> None:
    table, schema = toy_table(4000, seed=5), toy_schema()
    real = schema.encode_array(table)
    sizes = list(schema.sizes.values())
    errors = {}
    for epsilon in (0.05, 10.0):
        tvds = []
        for seed in range(3):
            synth, _ = _fit(table, schema, epsilon=epsilon, seed=seed)
            fake = synth.sample(len(table), np.random.default_rng(seed))
            tvds.append(_mean_tvd(real, fake, sizes, 2))
        errors[epsilon] = float(np.mean(tvds))
    assert errors[10.0] < 0.5 * errors[0.05], errors


def test_selection_prefers_the_marginal_the_model_gets_wrong() -> None:
    # Two perfectly correlated columns and two independent ones: with a large budget the
    # correlated pair is the first marginal chosen.
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, 5000)
    table = pd.DataFrame({"a": a, "b": a, "c": rng.integers(0, 4, 5000),
                          "d": rng.integers(0, 2, 5000)})
    schema = Schema(columns=(*(Integer(c, 0, 3) for c in "abc"), Categorical("d", (0, 1))),
                    protected=("c",), label="d", favorable=1)
    synth, _ = _fit(table, schema, epsilon=20.0)
    assert synth.history_[0].clique == ("a", "b")


# -- sampling ------------------------------------------------------------------------------------


def test_sample_returns_requested_rows_in_the_domain() -> None:
    schema = toy_schema()
    synth, _ = _fit(toy_table(800, seed=6), schema)
    for rows in (1, 13, 3000):
        out = synth.sample(rows, np.random.default_rng(0))
        assert out.shape == (rows, len(schema.columns))
        schema.check_codes(out)


def test_sample_before_fit_raises() -> None:
    with pytest.raises(SafesError, match="fit"):
        AIM(1.0, 1e-9).sample(5, np.random.default_rng(0))


# -- tiny and degenerate inputs --------------------------------------------------------------


def test_one_row_table_works() -> None:
    schema = toy_schema()
    synth, data = _fit(toy_table(1, seed=0), schema)
    assert data.accountant.epsilon(1e-9) <= 1.0
    schema.check_codes(synth.sample(10, np.random.default_rng(0)))


def test_constant_column_and_single_category_column_work() -> None:
    schema = Schema(columns=(
        Categorical("one", ("only",)),
        Integer("x", 0, 3),
        Integer("k", 0, 9),
        Categorical("y", (0, 1)),
    ), protected=("one",), label="y", favorable=1)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2, 600)  # x never takes 2 or 3
    table = pd.DataFrame({"one": ["only"] * 600, "x": x, "k": [7] * 600,
                          "y": (x + rng.integers(0, 2, 600)) % 2})
    synth, data = _fit(table, schema, epsilon=5.0)
    out = synth.sample(600, np.random.default_rng(0))
    assert (out[:, 0] == 0).all()
    assert (out[:, 2] == 7).mean() > 0.9  # the constant column stays (nearly) constant
    assert 5.0 - 1e-6 <= data.accountant.epsilon(1e-9) <= 5.0


def test_single_column_source_works() -> None:
    # A schema always has a protected column and a label; AIM itself only needs one column.
    codes = np.random.default_rng(0).integers(0, 6, (300, 1))
    acc = RDPAccountant(budget=(1.0, 1e-9))
    data = PrivateTable(InMemorySource(codes, {"x": 6}), toy_schema(), acc,
                        SeededNoise(np.random.SeedSequence(0)))
    synth = AIM(1.0, 1e-9, **FAST)
    synth.fit(data, StageContext("synthesizer"))
    assert synth.sample(50, np.random.default_rng(0)).shape == (50, 1)
    assert 1.0 - 1e-6 <= acc.epsilon(1e-9) <= 1.0


# -- pre-flight guardrails: clear errors before any budget is spent ----------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"workload": [("sex", "nope")]}, "workload column 'nope'"),
        ({"rounds": 2}, "rounds=2 is below the number of columns"),
        ({"max_model_size": 1e-6}, "one-way marginals alone need"),
        ({"max_cells": 3}, "raise max_cells to at least 4"),
    ],
)
def test_preflight_errors_spend_nothing(params: dict[str, object], message: str) -> None:
    synth = AIM(1.0, 1e-9, **params)  # type: ignore[arg-type]
    data = _private_table(toy_table(100), toy_schema(), 1.0)
    with pytest.raises(ConfigError, match=message):
        synth.fit(data, StageContext("synthesizer"))
    assert data.accountant.entries == []


def test_workload_marginal_too_big_for_the_model_warns() -> None:
    schema = Schema(columns=(Integer("a", 0, 999), Integer("b", 0, 999), Integer("c", 0, 1)),
                    protected=("a",), label="c", favorable=1)
    synth = AIM(1.0, 1e-9, max_model_size=1.0, max_cells=10**6)
    data = _private_table(pd.DataFrame({"a": [0], "b": [0], "c": [0]}), schema, 1.0)
    with pytest.warns(UserWarning, match="can never be measured"):
        summary = synth.preflight(data)
    assert summary["never_measurable"] == [("a", "b")]
    assert data.accountant.entries == []


@pytest.mark.parametrize(
    "params",
    [{"degree": 0}, {"max_cells": -1}, {"rounds": 0}, {"max_iters": 1.5},
     {"max_model_size": 0}, {"engine": "gpu"}, {"workload": []}, {"workload": "sex"},
     {"workload": [("sex", "sex")]}, {"workload": [(("sex", "race"), -1.0)]}],
)
def test_bad_parameters_raise_config_error(params: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="aim"):
        AIM(1.0, 1e-9, **params)  # type: ignore[arg-type]


def test_user_workload_restricts_the_candidates() -> None:
    synth, data = _fit(toy_table(1000, seed=7), toy_schema(),
                       workload=[(("edu", "sex"), 2.0), ("income", "edu")])
    chosen = {r.clique for r in synth.history_}
    assert chosen <= {("sex",), ("race",), ("edu",), ("income",), ("sex", "edu"),
                      ("edu", "income")}
    assert synth.params()["workload"] == [[["edu", "sex"], 2.0], [["income", "edu"], 1.0]]


# -- progress, registration, CLI ---------------------------------------------------------------


def test_progress_reports_rounds_and_budget() -> None:
    calls: list[tuple[int, int | None, str]] = []
    synth = AIM(1.0, 1e-9, **FAST)
    data = _private_table(toy_table(500), toy_schema(), 1.0)
    synth.fit(data, StageContext("synthesizer", lambda s, t, m: calls.append((s, t, m))))
    assert calls[0][0] == 0 and "one-way" in calls[0][2]
    assert "budget used" in calls[1][2]
    last = calls[-1]
    assert last[0] == last[1] == len(synth.history_) and "100.0%" in last[2]


def test_registered_as_aim_with_its_parameters() -> None:
    synth = safes_framework.synthesizer("aim", epsilon=2.0, delta=1e-8, degree=3, rounds=40)
    assert isinstance(synth, AIM)
    params = synth.params()
    assert params == {"epsilon": 2.0, "delta": 1e-8, "degree": 3, "max_cells": 10_000,
                      "max_model_size": 80.0, "rounds": 40, "max_iters": 1000,
                      "workload": None, "engine": "auto",
                      "loss_weighting": "inverse_variance"}


def test_cli_runs_aim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schema, table = toy_schema(), toy_table(300)
    data, spec, out = tmp_path / "d.csv", tmp_path / "s.json", tmp_path / "out"
    table.to_csv(data, index=False)
    spec.write_text(schema.to_json())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code = main(["run", "--data", str(data), "--schema", str(spec), "--synthesizer", "aim",
                     "--epsilon", "1", "--seed", "0", "--synth-param", "max_iters=100",
                     "--rows", "300", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "aim: round" in captured.err
    privacy = json.loads((out / "privacy.json").read_text())
    assert 1 - 1e-6 <= privacy["epsilon"] <= 1
    assert len(pd.read_csv(out / "release.csv")) == 300


def test_aim_loss_weighting_option() -> None:
    assert AIM(1.0, 1e-9).params()["loss_weighting"] == "inverse_variance"
    assert AIM(1.0, 1e-9, loss_weighting="inverse_std").loss_weighting == "inverse_std"
    with pytest.raises(ConfigError, match="loss_weighting"):
        AIM(1.0, 1e-9, loss_weighting="sqrt")
    with pytest.raises(ConfigError, match="engine 'mbi'"):
        AIM(1.0, 1e-9, engine="mbi", loss_weighting="inverse_std")
