"""Sweep configs: the paper's grid by default, TOML, command-line overrides, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from safes_framework.cli import build_parser, main
from safes_framework.errors import ConfigError
from safes_framework.evaluation import PAPER_EPSILONS, MetricSpec
from safes_framework.sweeps import SweepConfig
from safes_framework.sweeps.commands import config_from_args

EXAMPLE = """
[sweep]
datasets = ["compas"]
log10_epsilons = [-1, 0]
repeats = 3
seed = 11
delta = 1e-8

[sweep.etas]
compas = [0.08, 0.15]

[synthesizer]
name = "mst"
iters = 500

[fairness]
name = "tot"
eta_param = "eta"

[metrics]
use = ["model_utility", "tvd", "tvd_paper"]

[metrics.tvd_paper]
metric = "tvd"
paper_compatible = true
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


def test_the_default_grid_is_the_papers() -> None:
    config = SweepConfig()
    assert config.epsilons == PAPER_EPSILONS and config.repeats == 35
    assert dict(config.etas) == {"adult": (0.025, 0.1), "compas": (0.08, 0.15)}
    # 2 datasets x 8 epsilon columns x 3 fairness settings x 35 repeats, Original once
    assert config.cells() == 2 * (8 * 3 - 1) * 35 + 2
    assert len(config.units()) == 2 * 8 * 35


def test_toml_config_is_read_and_round_trips(tmp_path: Path) -> None:
    config = SweepConfig.from_toml(_write(tmp_path, EXAMPLE))
    assert config.datasets == ("compas",)
    assert config.epsilons == pytest.approx((0.1, 1.0))
    assert config.seed == 11 and config.repeats == 3
    p = config.protocol
    assert (p.synthesizer, dict(p.synthesizer_params)) == ("mst", {"iters": 500})
    assert p.fairness == "tot" and p.delta == 1e-8
    assert p.metrics == (
        MetricSpec("model_utility", "model_utility"),
        MetricSpec("tvd", "tvd"),
        MetricSpec("tvd_paper", "tvd", {"paper_compatible": True}),
    )
    assert SweepConfig.from_dict(config.to_dict()) == config
    # 3 columns (no DP, 0.1, 1) x 3 settings x 3 repeats, Original once
    assert config.cells() == 3 * 3 * 3 - 2


def test_units_leave_out_done_cells_and_keep_their_seeds(tmp_path: Path) -> None:
    config = SweepConfig.from_toml(_write(tmp_path, EXAMPLE))
    units = config.units()
    done = {"compas|dp|eps=0.1|eta=none|r=0", "compas|safes|eps=0.1|eta=0.08|r=0"}
    left = config.units(done)
    first = next(u for u in left if u.epsilon == 0.1 and u.repeat == 0)
    assert [s.label for s in first.settings] == ["SAFES(eps=0.1, eta=0.15)"]
    assert first.seed == next(u.seed for u in units if u.epsilon == 0.1 and u.repeat == 0)
    wider = config.with_overrides(epsilons=(0.01, 0.1, 1.0), repeats=5)
    seeds = {(u.epsilon, u.repeat): u.seed for u in wider.units()}
    assert all(seeds[(u.epsilon, u.repeat)] == u.seed for u in units)


@pytest.mark.parametrize(
    "text,match",
    [
        ("[sweep]\nrepeat = 3\n", "unknown key 'repeat' in \\[sweep\\]"),
        ("[sweep]\nepsilons = [1]\nlog10_epsilons = [0]\n", "not both"),
        ("[sweep]\ndatasets = ['mnist']\n", "unknown dataset 'mnist'.*adult"),
        ("[sweep]\nepsilons = [0, 1]\n", "positive"),
        ("[sweep]\nrepeats = 'many'\n", "integer"),
        ("[sweep]\ndatasets = ['adult-full']\n", "no etas for dataset 'adult-full'"),
        ("[metrics]\nuse = ['tvd']\n[metrics.ks]\nmetric = 'propensity_ks'\n", "not listed"),
        ("[bogus]\nx = 1\n", "unknown key 'bogus' at the top level"),
        ("[sweep\n", "not valid TOML"),
    ],
)
def test_bad_configs_raise_clear_errors(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SweepConfig.from_toml(_write(tmp_path, text))


def test_fairness_none_and_transformers_without_a_bound() -> None:
    none = SweepConfig.from_dict(
        {
            "sweep": {"datasets": ["compas"], "epsilons": [1.0], "repeats": 2},
            "fairness": {"name": "none"},
        }
    )
    assert [s.kind for _, ss in none.columns("compas") for s in ss] == ["original", "dp"]
    rew = SweepConfig.from_dict(
        {
            "sweep": {"datasets": ["compas"], "epsilons": [1.0]},
            "fairness": {"name": "reweighing", "eta_param": "none"},
        }
    )
    labels = [s.label for _, ss in rew.columns("compas") for s in ss]
    assert labels == ["Original", "Fair", "DP(eps=1)", "SAFES(eps=1)"]


def test_command_line_overrides_the_config(tmp_path: Path) -> None:
    path = _write(tmp_path, EXAMPLE)
    args = build_parser().parse_args(
        [
            "sweep",
            str(path),
            "--out",
            "x",
            "--epsilons",
            "0.5",
            "--repeats",
            "2",
            "--synthesizer",
            "aim",
            "--etas",
            "0.2",
            "--metrics",
            "tvd_paper,model_fairness",
        ]
    )
    config = config_from_args(args)
    assert config.epsilons == (0.5,) and config.repeats == 2 and config.seed == 11
    assert config.protocol.synthesizer == "aim"
    assert dict(config.protocol.synthesizer_params) == {}  # mst's iters dropped with mst
    assert config.etas_for("compas") == (0.2,)
    assert [m.alias for m in config.protocol.metrics] == ["tvd_paper", "model_fairness"]
    assert config.protocol.metrics[0].params == {"paper_compatible": True}


def test_safes_validate_prints_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _write(tmp_path, EXAMPLE)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "cells (dataset x setting x repeat): 25" in out and "config OK" in out


def test_safes_validate_rejects_a_missing_plugin(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = _write(tmp_path, EXAMPLE.replace('name = "mst"', 'name = "nosuch"'))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "synthesizer 'nosuch' is not installed" in err and "mst" in err


def test_safes_validate_rejects_bad_metric_params(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = _write(tmp_path, EXAMPLE.replace("paper_compatible = true", "paper_compatible = 3"))
    assert main(["validate", str(path)]) == 2
    assert "paper_compatible" in capsys.readouterr().err


def test_a_distortion_file_in_the_fairness_table_reaches_tot(tmp_path: Path) -> None:
    from safes_framework.evaluation import _make_fairness

    dist = tmp_path / "compas-strict.toml"
    dist.write_text(
        'name = "compas-strict"\ncombine = "sum"\n'
        '[[terms]]\nkind = "moves"\ncolumn = "two_year_recid"\nchange = 3\n'
        '[[terms]]\nkind = "ordinal"\ncolumn = "priors_count"\nup = 1\n'
    )
    text = EXAMPLE.replace('eta_param = "eta"', f'eta_param = "eta"\ndistortion = "{dist}"')
    config = SweepConfig.from_toml(_write(tmp_path, text))
    config.validate()  # builds TOT with the file, for every eta
    tot = _make_fairness(config.protocol, 0.08)
    assert tot.params()["distortion"]["name"] == "compas-strict"
    assert tot.params()["distortion_file"] == str(dist)
    broken = text.replace(str(dist), str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="cannot read distortion file"):
        SweepConfig.from_toml(_write(tmp_path, broken)).validate()


def test_a_transformer_without_a_bound_needs_no_eta_param(
    capsys: pytest.CaptureFixture,
) -> None:
    rew = SweepConfig.from_dict(
        {"sweep": {"datasets": ["compas"], "epsilons": [1.0]}, "fairness": {"name": "reweighing"}}
    )
    assert rew.protocol.eta_param is None
    assert [s.label for _, ss in rew.columns("compas") for s in ss] == [
        "Original", "Fair", "DP(eps=1)", "SAFES(eps=1)"
    ]
    tot = SweepConfig.from_dict({"fairness": {"name": "tot"}})
    assert tot.protocol.eta_param == "eta"
    assert SweepConfig().with_overrides(fairness="reweighing").protocol.eta_param is None
    # the command line, which needed --fairness-param eta_param=none
    assert main(["validate", "--dataset", "compas", "--fairness", "reweighing"]) == 0
    assert "config OK" in capsys.readouterr().out


def test_the_documented_v3_comparison_configs_parse() -> None:
    # docs/results.md runs these four sweeps by hand (too long for CI): at least they parse.
    from pathlib import Path

    configs = sorted((Path(__file__).resolve().parents[2] / "docs/results/v3").glob("*.toml"))
    assert len(configs) == 4
    for path in configs:
        config = SweepConfig.from_toml(path)
        config.check_grid()
        assert config.protocol.synthesizer in ("aim", "dpctgan")
