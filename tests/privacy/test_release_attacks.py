"""Attacks on the release as published: an adversary holds the release files and two neighbours.

Each test plays an attack that separated neighbouring tables before the noise became secret,
the row count private and the real-data metrics left the release, and checks it now fails; a
companion check shows the same attack succeeds against the weakness it targets, so the test
can fail.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import safes_framework
from safes_framework import SafesChain, Schema
from safes_framework.plugins import PluginManager
from safes_framework.testing import toy_schema, toy_table

from .audit import clopper_pearson

PM = PluginManager(load_entrypoints=False)


def _mst(epsilon: float = 1.0) -> Any:
    return safes_framework.synthesizer("mst", epsilon=epsilon, delta=1e-9, iters=50)


def _numbers(value: Any) -> set[int]:
    """Every integer written in a JSON document (numbers, and digit runs inside strings)."""
    out: set[int] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            out |= _numbers(k) | _numbers(v)
    elif isinstance(value, list):
        for v in value:
            out |= _numbers(v)
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        out.add(value)
    elif isinstance(value, float):
        if value.is_integer():
            out.add(int(value))
    elif isinstance(value, str):
        out |= {int(m) for m in re.findall(r"\b\d+\b", value)}
        out |= {int(m, 16) for m in re.findall(r"\b[0-9a-f]{16,}\b", value)}
    return out


def _release_values(out: Path) -> set[int]:
    values: set[int] = set()
    for name in ("run.json", "privacy.json"):
        values |= _numbers(json.loads((out / name).read_text()))
    return values


def _neighbours() -> tuple[pd.DataFrame, pd.DataFrame, Schema]:
    table = toy_table(400, seed=3)
    return table, table.iloc[1:].reset_index(drop=True), toy_schema()


def _rerun_guess(
    candidates: set[int], target: bytes, tables: tuple[pd.DataFrame, ...], schema: Schema,
    tmp: Path, rows: int,
) -> int | None:
    """Rerun the public configuration with every candidate seed on each neighbour."""
    for seed in sorted(candidates):
        for which, table in enumerate(tables):
            again = SafesChain(_mst(), "reweighing", seed=seed, rows=rows, plugin_manager=PM)
            path = again.run(table, schema).save(tmp / f"r{seed % 997}-{which}", overwrite=True)
            if (path / "release.csv").read_bytes() == target:
                return which
    return None


@pytest.mark.slow
def test_rerunning_with_every_value_in_the_release_does_no_better_than_chance(
    tmp_path: Path,
) -> None:
    d, d_minus_one, schema = _neighbours()
    rng = np.random.default_rng(2024)
    trials, correct, reproduced = 6, 0, 0
    for t in range(trials):
        truth = int(rng.integers(2))
        chain = SafesChain(_mst(), "reweighing", rows=300, plugin_manager=PM)
        out = chain.run((d, d_minus_one)[truth], schema).save(tmp_path / f"release{t}")
        candidates = {v for v in _release_values(out) if v >= 0}
        target = (out / "release.csv").read_bytes()
        guess = _rerun_guess(candidates, target, (d, d_minus_one), schema, tmp_path, 300)
        reproduced += guess is not None
        correct += (guess if guess is not None else int(rng.integers(2))) == truth
    assert reproduced == 0
    _, upper = clopper_pearson(correct, trials, 0.01)
    lower, _ = clopper_pearson(correct, trials, 0.01)
    assert lower <= 0.5 <= upper


def test_the_rerun_attack_wins_when_the_noise_seed_is_known(tmp_path: Path) -> None:
    # The same attacker, handed the secret seed of an experiment, identifies the table.
    d, d_minus_one, schema = _neighbours()
    for truth in (0, 1):
        chain = SafesChain(_mst(), "reweighing", seed=77, rows=300, plugin_manager=PM)
        out = chain.run((d, d_minus_one)[truth], schema).save(tmp_path / f"seeded{truth}")
        assert 77 not in _release_values(out)  # the secret is not in the files...
        target = (out / "release.csv").read_bytes()
        guess = _rerun_guess({77}, target, (d, d_minus_one), schema, tmp_path, 300)
        assert guess == truth  # ...and it is all the attacker would need


def test_default_release_size_is_close_to_n_but_usually_differs() -> None:
    table, schema = toy_table(1000, seed=5), toy_schema()
    sizes = [
        len(SafesChain(_mst(), plugin_manager=PM).run(table, schema).data) for _ in range(20)
    ]
    assert sum(s != len(table) for s in sizes) >= 15
    assert all(abs(s - len(table)) <= 100 for s in sizes), sizes
    assert len(set(sizes)) > 5


def _forbidden_counts(table: pd.DataFrame, schema: Schema) -> set[int]:
    """n and the exact count of every protected group, label value and their joints."""
    cols = [*schema.protected, schema.label]
    counts = {len(table)}
    for r in range(1, len(cols) + 1):
        for combo in itertools.combinations(cols, r):
            counts |= {int(c) for c in table.groupby(list(combo)).size()}
    return {c for c in counts if c >= 20}  # small numbers are everywhere (codes, counts)


def test_with_rows_set_no_release_file_holds_n_or_a_group_count(tmp_path: Path) -> None:
    table, schema = toy_table(1237, seed=8), toy_schema()
    forbidden = _forbidden_counts(table, schema)
    chain = SafesChain(
        _mst(), "reweighing", metrics=["mean_outcome_difference", "tvd", "workload_error"],
        rows=777, plugin_manager=PM,
    )
    release = chain.run(table, schema)
    out = release.save(tmp_path / "release", extra={"input": {"dataset": "toy"}})
    assert sorted(p.name for p in out.iterdir()) == ["privacy.json", "release.csv", "run.json"]
    leaked = _release_values(out) & forbidden
    csv = pd.read_csv(out / "release.csv")
    leaked |= {int(v) for v in csv.to_numpy().ravel() if float(v).is_integer()} & forbidden
    assert not leaked
    run = json.loads((out / "run.json").read_text())
    assert not {"timings", "metrics", "seed"} & set(run)
    # The evaluation, which does read the real table, goes elsewhere and says so...
    evaluation = release.save_evaluation(tmp_path / "evaluation.json")
    record = json.loads(evaluation.read_text())
    assert record["warning"].startswith("NOT differentially private")
    # ...and even there the plain-words descriptions carry no exact real counts.
    for result in record["metrics"].values():
        assert not _numbers(result["measured_on"]) & forbidden, result["measured_on"]


def test_the_file_scan_finds_a_leaked_count(tmp_path: Path) -> None:
    table, schema = toy_table(1237, seed=8), toy_schema()
    release = SafesChain(_mst(), rows=777, plugin_manager=PM).run(table, schema)
    out = release.save(tmp_path / "leaky", extra={"note": f"made from {len(table)} rows"})
    assert _release_values(out) & _forbidden_counts(table, schema) == {1237}
