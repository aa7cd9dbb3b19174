"""The evaluation protocol: settings, seeds, one repeat as one call, failures with reasons."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import safes_framework as sf
from safes_framework.base import MetricInputs
from safes_framework.errors import ConfigError, InfeasibleError, UnknownPluginError
from safes_framework.evaluation import (
    PAPER_EPSILONS,
    REASON_CHARS,
    ROW_COLUMNS,
    MetricSpec,
    Protocol,
    Setting,
    Unit,
    _reason,
    cell_key,
    derive_seed,
    run_unit,
    split,
    unit_seed,
)

FAST = Protocol(
    synthesizer="fast-independent",
    fairness="flip-labels",
    metrics=(
        MetricSpec("model_utility", "model_utility"),
        MetricSpec("mod", "mean_outcome_difference"),
    ),
)


def _unit(
    epsilon: float | None, settings: tuple[Setting, ...], repeat: int = 0, protocol: Protocol = FAST
) -> Unit:
    return Unit(
        "compas", epsilon, repeat, unit_seed(7, "compas", epsilon, repeat), settings, protocol
    )


def test_paper_grid_constants() -> None:
    assert len(PAPER_EPSILONS) == 7
    assert PAPER_EPSILONS[0] == pytest.approx(0.01) and PAPER_EPSILONS[-1] == pytest.approx(10)
    assert Protocol().synthesizer == "aim" and Protocol().fairness == "tot"
    assert Protocol().delta == 1e-9


@pytest.mark.parametrize(
    "kind,eps,eta",
    [
        ("dp", None, None),
        ("original", 1.0, None),
        ("original", None, 0.1),
        ("safes", None, 0.1),
        ("nope", None, None),
    ],
)
def test_inconsistent_settings_raise(kind: str, eps: float | None, eta: float | None) -> None:
    with pytest.raises(ConfigError):
        Setting(kind, eps, eta)


def test_setting_labels() -> None:
    assert Setting("original").label == "Original"
    assert Setting("safes", 0.1, 0.025).label == "SAFES(eps=0.1, eta=0.025)"
    assert Setting("fair", None, 0.1).label == "Fair(eta=0.1)"


def test_seeds_depend_only_on_the_sweep_seed_and_coordinates() -> None:
    a = unit_seed(1, "adult", 0.1, 3)
    assert a == unit_seed(1, "adult", 0.1, 3)
    others = {
        unit_seed(2, "adult", 0.1, 3),
        unit_seed(1, "compas", 0.1, 3),
        unit_seed(1, "adult", 1.0, 3),
        unit_seed(1, "adult", 0.1, 4),
        unit_seed(1, "adult", None, 3),
    }
    assert a not in others and len(others) == 5
    assert 0 <= a < 2**63
    assert derive_seed(a, "fairness", "x") != derive_seed(a, "fairness", "y")


def test_original_repeat_reproduces_the_papers_original_row() -> None:
    rows = run_unit(
        _unit(
            None,
            (Setting("original"),),
            protocol=Protocol(
                fairness=None,
                metrics=(
                    MetricSpec("model_utility", "model_utility"),
                    MetricSpec("model_fairness", "model_fairness"),
                ),
            ),
        )
    )
    df = pd.DataFrame(rows)
    assert list(df.columns) == list(ROW_COLUMNS)
    value = df.set_index(["metric", "key"])["value"]
    # the SAFES authors' pipeline on compas: Original accuracy 0.675, model SPD by race -0.280
    assert value["model_utility", "accuracy"] == pytest.approx(0.675, abs=5e-4)
    assert value["model_fairness", "spd[race]"] == pytest.approx(-0.280, abs=5e-4)
    assert (df["status"] == "ok").all()
    assert df["cell"].unique().tolist() == ["compas|original|eps=none|eta=none|r=0"]
    assert math.isnan(df["epsilon"].iloc[0]) and df["synthesizer"].iloc[0] == ""


def test_original_metrics_equal_metrics_on_the_real_split() -> None:
    train, test, schema = split("compas")
    direct = sf.metric("mean_outcome_difference").compute(
        MetricInputs(release=train, schema=schema, train=train, test=test)
    )
    rows = pd.DataFrame(
        run_unit(
            _unit(
                None,
                (Setting("original"),),
                protocol=Protocol(
                    fairness=None, metrics=(MetricSpec("mod", "mean_outcome_difference"),)
                ),
            )
        )
    )
    got = rows[rows["metric"] == "mod"].set_index("key")["value"].to_dict()
    assert got == pytest.approx(dict(direct.values))


def test_dp_and_safes_of_a_repeat_share_one_synthetic_table(fast_plugins: None) -> None:
    settings = (Setting("dp", 1.0), Setting("safes", 1.0, 0.1), Setting("safes", 1.0, 0.2))
    df = pd.DataFrame(run_unit(_unit(1.0, settings)))
    assert (df["status"] == "ok").all()
    run = df[df["metric"] == "run"].pivot_table(index="key", columns="cell", values="value")
    assert run.loc["seconds_synthesizer"].nunique() == 1  # synthesized once
    assert run.loc["epsilon_spent"].max() <= 1.0 + 1e-9
    assert "seconds_fairness" in run.index
    assert set(df.loc[df["setting"] == "safes", "fairness"]) == {"flip-labels"}
    assert set(df.loc[df["setting"] == "dp", "fairness"]) == {""}
    mod = df[(df["metric"] == "mod") & (df["key"] == "mod[race]")].set_index("setting")
    assert mod.loc["dp", "value"] != mod.loc["safes", "value"].iloc[0]


def test_a_repeat_is_reproducible(fast_plugins: None) -> None:
    settings = (Setting("dp", 0.5), Setting("safes", 0.5, 0.1))
    strip = ["value"]
    a = pd.DataFrame(run_unit(_unit(0.5, settings)))
    b = pd.DataFrame(run_unit(_unit(0.5, settings)))
    keep = ~a["key"].str.startswith("seconds_")
    pd.testing.assert_frame_equal(a[keep][strip], b[keep][strip])


def test_infeasible_fairness_is_recorded_with_its_reason(fast_plugins: None) -> None:
    settings = (Setting("dp", 1.0), Setting("safes", 1.0, 0.001), Setting("fair", None, 0.001))
    df = pd.DataFrame(run_unit(_unit(1.0, settings[:2])))
    failed = df[df["status"] == "failed"]
    assert len(failed) == 1
    row = failed.iloc[0]
    assert row["setting"] == "safes" and row["metric"] == "*"
    assert row["reason"].startswith("fairness: InfeasibleError: flip-labels: eta=0.001")
    assert (df.loc[df["setting"] == "dp", "status"] == "ok").all()
    with pytest.raises(InfeasibleError):
        run_unit(_unit(1.0, settings[:2]), strict=True)


def test_failed_synthesis_fails_every_setting_of_the_repeat(fast_plugins: None) -> None:
    settings = (Setting("dp", 0.001), Setting("safes", 0.001, 0.1))
    df = pd.DataFrame(run_unit(_unit(0.001, settings)))
    assert len(df) == 2 and (df["status"] == "failed").all()
    assert df["reason"].str.startswith("synthesizer: SafesError: fast-independent").all()


def test_failed_metric_is_recorded_and_the_others_still_run(fast_plugins: None) -> None:
    proto = Protocol(
        synthesizer="fast-independent",
        fairness=None,
        metrics=(MetricSpec("broken", "broken"), MetricSpec("mod", "mean_outcome_difference")),
    )
    df = pd.DataFrame(run_unit(_unit(1.0, (Setting("dp", 1.0),), protocol=proto)))
    bad = df[df["status"] == "failed"]
    assert bad[["metric", "key"]].values.tolist() == [["broken", "*"]]
    assert "ValueError: this metric is broken on purpose" in bad["reason"].iloc[0]
    assert (df.loc[df["metric"] == "mod", "status"] == "ok").all()


def test_cell_keys_are_stable() -> None:
    assert cell_key("adult", Setting("safes", 0.1, 0.025), 3) == "adult|safes|eps=0.1|eta=0.025|r=3"


def test_protocol_check_names_what_is_installed(fast_plugins: None) -> None:
    with pytest.raises(UnknownPluginError, match=r"'nope' is not installed \(installed: .*mst"):
        Protocol(synthesizer="nope").check()
    with pytest.raises(UnknownPluginError, match="fairness transformer 'nada'.*none"):
        Protocol(synthesizer="mst", fairness="nada").check()
    with pytest.raises(ConfigError, match="accepted parameters"):
        Protocol(synthesizer="mst", synthesizer_params={"bogus": 1}, fairness=None).check()
    with pytest.raises(ConfigError, match="tvd"):
        Protocol(
            synthesizer="mst", fairness=None, metrics=(MetricSpec("t", "tvd", {"orders": [0]}),)
        ).check()
    Protocol(synthesizer="fast-independent", fairness="flip-labels").check([0.1])


def test_a_long_failure_reason_is_cut_at_a_word_not_inside_one() -> None:
    words = " ".join(f"word{i}" for i in range(1000))
    reason = _reason("fairness", InfeasibleError(words))
    assert len(reason) <= REASON_CHARS and reason.endswith(" …")
    assert reason[:-2].split(" ")[-1] in words.split(" ")
    short = _reason("fairness", InfeasibleError("use eta >= 0.0687507"))
    assert short == "fairness: InfeasibleError: use eta >= 0.0687507"
