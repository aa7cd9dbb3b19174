"""Empirical audits of `measure` and `select` on neighbouring tables, and the lattice test.

An audit runs a primitive many times on D and on D plus one record, picks a distinguishing
event and turns Clopper-Pearson bounds on its two frequencies into a lower bound on epsilon
(Jagielski, Ullman & Oprea 2020). It must stay below what the ledger claims; run against a
claim that is too small, the same audit must catch it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from safes_framework import Categorical, Schema
from safes_framework.access import InMemorySource
from safes_framework.primitives import PrivateTable
from safes_framework.privacy import ExponentialMechanism, Gaussian, RDPAccountant
from safes_framework.privacy.noise import SecureNoise

from .audit import epsilon_lower_bound, granularity, lattice_impossible_share

DELTA = 1e-9
SCHEMA = Schema(
    (Categorical("x", (0, 1)), Categorical("y", (0, 1)), Categorical("g", (0, 1))),
    protected=("g",), label="y", favorable=1,
)


def _private(table: pd.DataFrame) -> PrivateTable:
    source = InMemorySource(SCHEMA.encode_array(table), SCHEMA.sizes)
    return PrivateTable(source, SCHEMA, RDPAccountant(), SecureNoise())


def _neighbours() -> tuple[pd.DataFrame, pd.DataFrame]:
    d = pd.DataFrame({"x": [0] * 6 + [1] * 4, "y": [0, 1] * 5, "g": [0, 1] * 5})
    plus = pd.concat([d, pd.DataFrame({"x": [0], "y": [0], "g": [0]})], ignore_index=True)
    return d, plus


def _claimed(event: object) -> float:
    acc = RDPAccountant()
    acc.compose(event)  # type: ignore[arg-type]
    return acc.epsilon(DELTA)


def _measure_audit(sigma: float, runs: int) -> float:
    d, plus = _neighbours()
    outputs = []
    for table in (d, plus):
        pt = _private(table)
        outputs.append(np.array([pt.measure([("x",)], sigma)[0].values[0] for _ in range(runs)]))
    # Threshold events y >= t for a few t beyond the larger count; the best one is reported.
    base = 7  # count of x = 0 in D + 1
    best = 0.0
    for t in base + sigma * np.array([1.0, 2.0, 3.0]):
        best = max(best, epsilon_lower_bound(outputs[1] >= t, outputs[0] >= t, DELTA))
    return best


@pytest.mark.slow
def test_measure_audit_stays_below_its_claim_and_catches_a_false_one() -> None:
    sigma = 1.0
    found = _measure_audit(sigma, runs=3000)
    assert found < _claimed(Gaussian(sigma))
    # The same evidence against the claim of a 10x larger noise: caught.
    assert found > _claimed(Gaussian(10 * sigma))


def _select_audit(epsilon: float, runs: int) -> float:
    d, plus = _neighbours()
    counts = InMemorySource(SCHEMA.encode_array(d), SCHEMA.sizes)
    # Estimates below D's x counts and above its y counts: the added record (x=0, y=0) raises
    # x's error by 1 and lowers y's by 1, the largest move of the score vector one record can
    # make. A public penalty puts x 4 behind, where the ratio of the two choices is largest.
    est = {("x",): counts.marginal(("x",)) - 5.0, ("y",): counts.marginal(("y",)) + 5.0}
    chosen = []
    for table in (d, plus):
        pt = _private(table)
        chosen.append(np.array([
            pt.select([("x",), ("y",)], epsilon=epsilon, estimates=est, penalties=[4.0, 0.0])
            == ("x",)
            for _ in range(runs)
        ]))
    return epsilon_lower_bound(chosen[1], chosen[0], DELTA)


@pytest.mark.slow
def test_select_audit_stays_below_its_claim_and_catches_a_false_one() -> None:
    epsilon = 1.0
    found = _select_audit(epsilon, runs=4000)
    claim = epsilon  # pure epsilon-DP (the ledger's zCDP charge implies it)
    assert found < claim
    assert found > claim / 3  # a ledger charging a third of it would be caught
    assert _claimed(ExponentialMechanism(epsilon)) >= claim / 3


def _quantile_audit(epsilon: float, runs: int) -> float:
    # Codes 0..2 with counts (4, 2, 4): the median's scores -|2 c(b) - n| are (-2, -2) for
    # b = 1, 2. One more record at code 0 makes them (-1, -3): the gap moves by 2 Delta
    # (Delta = 1), the largest move one record can make, so P[b = 2] falls from 1/2 to
    # 1 / (1 + e^epsilon): a ratio of (1 + e^epsilon) / 2 between neighbours.
    schema = Schema(
        (Categorical("x", (0, 1, 2)), Categorical("g", (0, 1))),
        protected=("g",), label="x", favorable=1,
    )
    d = pd.DataFrame({"x": [0] * 4 + [1] * 2 + [2] * 4, "g": 0})
    plus = pd.concat([d, pd.DataFrame({"x": [0], "g": [0]})], ignore_index=True)
    chosen = []
    for table in (d, plus):
        pt = PrivateTable(
            InMemorySource(schema.encode_array(table), schema.sizes), schema, RDPAccountant(),
            SecureNoise(),
        )
        chosen.append(np.array(
            [pt.quantiles("x", [0.5], epsilon=epsilon)[0] == 2 for _ in range(runs)]
        ))
    return epsilon_lower_bound(chosen[0], chosen[1], DELTA)


@pytest.mark.slow
def test_quantile_audit_stays_below_its_claim_and_catches_a_false_one() -> None:
    epsilon = 1.0
    found = _quantile_audit(epsilon, runs=4000)
    assert found < epsilon  # the exponential mechanism is epsilon-DP
    assert found > epsilon / 3  # a ledger charging a third of it would be caught


def test_default_noise_leaves_no_lattice() -> None:
    d, plus = _neighbours()
    outputs = []
    for table in (d, plus):
        pt = _private(table)
        values = np.concatenate([pt.measure([("x", "y")], 3.0)[0].values for _ in range(500)])
        assert values.dtype == np.int64
        outputs.append(values.astype(np.float64))
    assert lattice_impossible_share(outputs[0], outputs[1]) == 0.0
    assert (granularity(np.concatenate(outputs)) == 0).all()


def test_the_lattice_test_catches_floating_point_gaussian_noise() -> None:
    # What `measure` did with rng.normal: a count of 0 and of 1 plus N(0, 3^2) in floats.
    rng = np.random.default_rng(0)
    zero = 0.0 + rng.normal(0.0, 3.0, 20_000)
    one = 1.0 + rng.normal(0.0, 3.0, 20_000)
    # About 3% of the outputs identify the count outright: epsilon is infinite below that delta.
    assert lattice_impossible_share(zero, one) > 0.01
