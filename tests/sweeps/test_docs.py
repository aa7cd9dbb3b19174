"""Docs stay honest: every built-in metric, config key and sweep option is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import safes_framework as sf
from safes_framework.cli import build_parser

DOCS = Path(__file__).resolve().parents[2] / "docs"
BUILTIN_METRICS = [
    e.name for e in sf.get_plugin_manager().metrics if e.plugin == "safes_plugins.metrics"
]


@pytest.mark.parametrize("name", BUILTIN_METRICS)
def test_every_builtin_metric_has_a_section(name: str) -> None:
    text = (DOCS / "metrics.md").read_text()
    assert re.search(rf"^## `{name}`", text, re.M), f"{name} missing from docs/metrics.md"


@pytest.mark.parametrize(
    "key",
    [
        "datasets",
        "log10_epsilons",
        "no_dp",
        "no_fairness",
        "repeats",
        "original_repeats",
        "seed",
        "delta",
        "eta_param",
        "use",
        "metric",
        "test_size",
        "random_state",
    ],
)
def test_every_config_key_is_in_the_sweep_docs(key: str) -> None:
    assert re.search(rf"^{key} = ", (DOCS / "sweeps.md").read_text(), re.M), key


@pytest.mark.parametrize("command", ["sweep", "validate"])
def test_every_sweep_option_is_in_the_sweep_docs(command: str) -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = (DOCS / "sweeps.md").read_text()
    for action in sub.choices[command]._actions:
        for opt in action.option_strings:
            if opt.startswith("--") and opt != "--help":
                assert opt in text, f"safes {command} {opt} missing from docs/sweeps.md"
