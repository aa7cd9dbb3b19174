"""Tests of the DP primitives: charging, noise scale, selection, compression, raw rows."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from safes_framework import Schema
from safes_framework.access import CompressedSource, InMemorySource
from safes_framework.errors import BudgetExceededError, ConfigError, DataError, PrivacyError
from safes_framework.primitives import PrivateTable
from safes_framework.privacy import ExponentialMechanism, Gaussian, RDPAccountant
from safes_framework.privacy.noise import SecureNoise, SeededNoise

NOISE = ["secure", "seeded"]


def _table(
    table: pd.DataFrame,
    schema: Schema,
    budget: tuple[float, float] | None = None,
    seed: int | None = 0,
) -> PrivateTable:
    source = InMemorySource(schema.encode_array(table), schema.sizes)
    noise = SecureNoise() if seed is None else SeededNoise(np.random.SeedSequence(seed))
    return PrivateTable(source, schema, RDPAccountant(budget=budget), noise)


def test_private_table_refuses_a_bare_seed(table: pd.DataFrame, schema: Schema) -> None:
    source = InMemorySource(schema.encode_array(table), schema.sizes)
    with pytest.raises(PrivacyError, match="SecureNoise"):
        PrivateTable(source, schema, RDPAccountant(), np.random.SeedSequence(0))  # type: ignore[arg-type]


def test_marginals_are_bincounts_over_mixed_radix_codes(
    table: pd.DataFrame, schema: Schema
) -> None:
    source = InMemorySource(schema.encode_array(table), schema.sizes)
    counts = source.marginal(("edu", "sex"))
    expected = pd.crosstab(table["edu"], table["sex"]).reindex(range(5), fill_value=0)
    assert counts.shape == (10,)
    assert (counts.reshape(5, 2) == expected.to_numpy()).all()
    assert source.marginal(()).tolist() == [len(table)]


def test_measure_charges_one_gaussian_per_marginal(table: pd.DataFrame, schema: Schema) -> None:
    pt = _table(table, schema)
    ms = pt.measure([("sex",), ("race", "edu")], sigma=3.0, label="m")
    assert [m.clique for m in ms] == [("sex",), ("race", "edu")]
    assert ms[1].values.shape == (10,)
    (entry,) = pt.accountant.entries
    assert entry.count == 2 and entry.label == "m"
    ref = RDPAccountant()
    ref.compose(Gaussian(noise_multiplier=3.0), count=2)
    assert pt.accountant.epsilon(1e-6) == pytest.approx(ref.epsilon(1e-6))


@pytest.mark.parametrize("kind", NOISE)
def test_measurement_noise_is_integer_with_the_stated_scale(
    table: pd.DataFrame, schema: Schema, kind: str
) -> None:
    pt = _table(table, schema, seed=None if kind == "secure" else 0)
    exact = InMemorySource(schema.encode_array(table), schema.sizes).marginal(("edu",))
    draws = [pt.measure([("edu",)], 4.0)[0].values for _ in range(400)]
    assert all(d.dtype == np.int64 for d in draws)
    noise = np.concatenate([d - exact for d in draws])
    assert noise.mean() == pytest.approx(0.0, abs=0.3)
    assert noise.std() == pytest.approx(4.0, rel=0.05)


def test_spend_beyond_budget_raises_before_noise(table: pd.DataFrame, schema: Schema) -> None:
    pt = _table(table, schema, budget=(1.0, 1e-6), seed=9)
    with pytest.raises(BudgetExceededError):
        pt.measure([("sex",)], sigma=0.01)
    assert pt.accountant.entries == [] or len(pt.accountant.entries) == 0
    after_failure = pt.measure([("sex",)], sigma=5.0)[0].values
    fresh = _table(table, schema, budget=(1.0, 1e-6), seed=9).measure([("sex",)], 5.0)[0].values
    assert (after_failure == fresh).all()  # the failed call consumed no randomness


@pytest.mark.parametrize("kind", NOISE)
def test_select_prefers_the_worst_estimate(table: pd.DataFrame, schema: Schema, kind: str) -> None:
    pt = _table(table, schema, seed=None if kind == "secure" else 0)
    source = InMemorySource(schema.encode_array(table), schema.sizes)
    cands = [("sex", "race"), ("edu", "income"), ("race", "income")]
    est = {c: source.marginal(c).copy() for c in cands}
    est[("edu", "income")] = np.zeros(10)  # far off
    picks = {pt.select(cands, epsilon=5.0, estimates=est) for _ in range(20)}
    assert picks == {("edu", "income")}
    assert pt.accountant.entries[0].event == ExponentialMechanism(epsilon=5.0).to_dict()


@pytest.mark.parametrize("kind", NOISE)
def test_select_draws_from_the_exponential_mechanism(
    table: pd.DataFrame, schema: Schema, kind: str
) -> None:
    pt = _table(table, schema, seed=None if kind == "secure" else 0)
    source = InMemorySource(schema.encode_array(table), schema.sizes)
    cands = [("sex",), ("race",)]
    est = {
        ("sex",): source.marginal(("sex",)) + np.array([1.0, 0.0]),
        ("race",): source.marginal(("race",)) + np.array([2.0, 1.0]),
    }
    eps = 1.0
    # scores 1 and 3, sensitivity 1: P(race) = e^{1.5} / (e^{0.5} + e^{1.5})
    picks = [pt.select(cands, epsilon=eps, estimates=est) for _ in range(3000)]
    freq = np.mean([p == ("race",) for p in picks])
    assert freq == pytest.approx(np.exp(1.5) / (np.exp(0.5) + np.exp(1.5)), abs=0.03)


def test_select_weights_scale_scores_exactly(table: pd.DataFrame, schema: Schema) -> None:
    # weights 1 and 3: qualities (1/3) * 1 and 1 * 3 -> P(race) = e^{1.5} / (e^{1/6} + e^{1.5})
    pt = _table(table, schema, seed=1)
    source = InMemorySource(schema.encode_array(table), schema.sizes)
    est = {
        ("sex",): source.marginal(("sex",)) + np.array([1.0, 0.0]),
        ("race",): source.marginal(("race",)) + np.array([2.0, 1.0]),
    }
    picks = [
        pt.select([("sex",), ("race",)], epsilon=1.0, estimates=est, weights=[1.0, 3.0])
        for _ in range(3000)
    ]
    freq = np.mean([p == ("race",) for p in picks])
    assert freq == pytest.approx(np.exp(1.5) / (np.exp(1 / 6) + np.exp(1.5)), abs=0.03)


class _RecordedScores(SeededNoise):
    """Seeded noise that keeps the integer scores each noisy max was given."""

    def __init__(self) -> None:
        super().__init__(np.random.SeedSequence(0))
        self.scores: list[list[int]] = []

    def noisy_max(self, scores, scale):  # type: ignore[no-untyped-def]
        self.scores.append(list(scores))
        return super().noisy_max(scores, scale)


def test_select_scores_are_the_exact_integer_qualities(
    table: pd.DataFrame, schema: Schema
) -> None:
    # Each score is floor((w_r / max w) * (sum |SCORE_UNITS * count - rint(SCORE_UNITS *
    # estimate)| - rint(SCORE_UNITS * penalty))), computed here with Python integers and
    # fractions, candidate by candidate.
    from safes_framework.primitives import SCORE_UNITS

    source = InMemorySource(schema.encode_array(table), schema.sizes)
    noise = _RecordedScores()
    pt = PrivateTable(source, schema, RDPAccountant(), noise)
    rng = np.random.default_rng(7)
    cands = [("sex",), ("race", "edu"), ("edu", "income"), ("sex", "race", "income"), ("edu",)]
    for _ in range(25):
        est = {c: source.marginal(c) + rng.normal(0, 30, source.marginal(c).size) for c in cands}
        weights = rng.choice([0.5, 1.0, 1.7, 3.0], len(cands))
        penalties = rng.uniform(-5, 40, len(cands))
        pt.select(cands, epsilon=1.0, estimates=est, weights=weights, penalties=penalties)
        expected = []
        for c, w_r, p_r in zip(cands, weights, penalties, strict=True):
            units = [int(x) for x in source.marginal(c) * SCORE_UNITS]
            lattice = [int(round(float(x) * SCORE_UNITS)) for x in est[c]]
            error = sum(abs(a - b) for a, b in zip(units, lattice, strict=True))
            quality = (error - int(round(float(p_r) * SCORE_UNITS))) * (
                Fraction(float(w_r)) / Fraction(float(max(weights)))
            )
            expected.append(int(np.floor(quality)))
        assert noise.scores[-1] == expected


def test_select_names_the_candidate_whose_estimate_is_not_finite(
    table: pd.DataFrame, schema: Schema
) -> None:
    pt = _table(table, schema)
    est = {("sex",): np.zeros(2), ("race",): np.array([1.0, np.nan])}
    with pytest.raises(ConfigError, match=r"estimate for \('race',\) must be finite"):
        pt.select([("sex",), ("race",)], epsilon=1.0, estimates=est)
    est[("race",)] = np.array([2.0**46, 2.0**46])
    with pytest.raises(ConfigError, match="summing below 2"):
        pt.select([("sex",), ("race",)], epsilon=1.0, estimates=est)
    assert len(pt.accountant.entries) == 0


def test_select_validates_inputs(table: pd.DataFrame, schema: Schema) -> None:
    pt = _table(table, schema)
    with pytest.raises(ConfigError, match="unknown column 'zip'"):
        pt.select([("zip",)], epsilon=1.0, estimates={})
    with pytest.raises(ConfigError, match="cells"):
        pt.select([("sex",)], epsilon=1.0, estimates={("sex",): np.zeros(3)})
    with pytest.raises(PrivacyError):
        pt.select([("sex",)], epsilon=0.0, estimates={("sex",): np.zeros(2)})
    assert len(pt.accountant.entries) == 0


def test_compressed_view_aggregates_counts(table: pd.DataFrame, schema: Schema) -> None:
    source = InMemorySource(schema.encode_array(table), schema.sizes)
    mapping = {"edu": np.array([0, 0, 1, 2, 2])}
    comp = CompressedSource(source, mapping)
    assert comp.sizes["edu"] == 3
    full = source.marginal(("sex", "edu")).reshape(2, 5)
    merged = np.stack([full[:, :2].sum(1), full[:, 2], full[:, 3:].sum(1)], axis=1)
    assert (comp.marginal(("sex", "edu")).reshape(2, 3) == merged).all()
    with pytest.raises(DataError, match="onto"):
        CompressedSource(source, {"edu": np.array([0, 0, 2, 2, 2])})


def test_rows_are_released_only_after_declared_events_fit(
    table: pd.DataFrame, schema: Schema
) -> None:
    pt = _table(table, schema, budget=(1.0, 1e-6))
    with pytest.raises(BudgetExceededError):
        pt.rows([(Gaussian(noise_multiplier=0.5), 1000)])
    assert len(pt.accountant.entries) == 0
    rows = pt.rows([(Gaussian(noise_multiplier=20.0), 1)])
    assert rows.shape == (len(table), 4) and not rows.flags.writeable
    assert len(pt.accountant.entries) == 1


# -- quantiles ----------------------------------------------------------------------------------


class _Counting(InMemorySource):
    """An in-memory source that records how often it is read."""

    reads = 0

    def marginal(self, clique: tuple[str, ...]) -> np.ndarray:
        type(self).reads += 1
        return super().marginal(clique)


@pytest.mark.parametrize("noise", NOISE)
def test_quantiles_with_a_large_epsilon_find_the_exact_boundaries(
    noise: str, table: pd.DataFrame, schema: Schema
) -> None:
    pt = _table(table, schema, seed=None if noise == "secure" else 3)
    got = pt.quantiles("edu", [Fraction(1, 2), 0.25], epsilon=1e4, label="q")
    below = np.cumsum(np.bincount(table["edu"], minlength=5))[:-1]
    n = len(table)
    for b, q in zip(got, (0.5, 0.25), strict=True):
        assert b == 1 + int(np.argmin(np.abs(below - q * n)))
    entry = pt.accountant.entries[-1]
    assert (entry.count, entry.label, dict(entry.event)) == (
        2, "q", {"type": "ExponentialMechanism", "epsilon": 1e4}
    )


def test_quantiles_are_charged_before_anything_is_read(
    table: pd.DataFrame, schema: Schema
) -> None:
    source = _Counting(schema.encode_array(table), schema.sizes)
    pt = PrivateTable(
        source, schema, RDPAccountant(budget=(0.5, 1e-9)), SeededNoise(np.random.SeedSequence(0))
    )
    _Counting.reads = 0
    with pytest.raises(BudgetExceededError):
        pt.quantiles("edu", [0.5] * 5, epsilon=1.0)
    assert _Counting.reads == 0 and not pt.accountant.entries
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        pt.quantiles("edu", [1.0], epsilon=0.1)
    with pytest.raises(PrivacyError, match="epsilon must be positive"):
        pt.quantiles("edu", [0.5], epsilon=0.0)
    assert _Counting.reads == 0


def test_quantile_choices_follow_the_exponential_mechanism(schema: Schema) -> None:
    # edu codes: 4 records at 0, 2 at 1, 4 at 2 (nothing above): n = 10, median q = 1/2.
    # Scores -|2 c(b) - 10| for b = 1..4: c = 4, 6, 10, 10 -> -2, -2, -10, -10; Delta = 1.
    rows = pd.DataFrame({"sex": 0, "race": 0, "edu": [0] * 4 + [1] * 2 + [2] * 4, "income": 0})
    pt = _table(rows, schema, seed=11)
    eps = 0.5
    draws = np.array([pt.quantiles("edu", [0.5], epsilon=eps)[0] for _ in range(6000)])
    weights = np.exp(eps * np.array([-2, -2, -10, -10]) / 2)
    expected = weights / weights.sum()
    observed = np.bincount(draws, minlength=5)[1:] / draws.size
    assert np.allclose(observed, expected, atol=0.02)
