"""The RDP accountant: composition, budget filter, planning, ledger and export."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safes_framework.errors import BudgetExceededError, PrivacyError
from safes_framework.privacy import (
    DEFAULT_ORDERS,
    ZCDP,
    ExponentialMechanism,
    Gaussian,
    Laplace,
    LedgerEntry,
    RDPAccountant,
    SubsampledGaussian,
    max_zcdp_rho,
    rdp_to_epsilon,
)
from safes_framework.privacy.accountant import PLAN_MARGIN

from .conftest import INTEGER_ORDERS, compositions, deltas, events, reference_accountant

BUDGET = (1.0, 1e-6)


def composed(composition: list[tuple[Any, int]], **kwargs: Any) -> RDPAccountant:
    acc = RDPAccountant(**kwargs)
    for event, count in composition:
        acc.compose(event, count)
    return acc


# -- the acceptance surface --------------------------------------------------------------------


def test_acceptance_example_matches_dp_accounting() -> None:
    acc = RDPAccountant()
    acc.compose(Gaussian(noise_multiplier=2.0), count=10)
    acc.compose(Laplace(noise_multiplier=5.0))
    acc.compose(ZCDP(rho=0.01))
    acc.compose(ExponentialMechanism(epsilon=0.1))
    acc.compose(SubsampledGaussian(sampling_rate=0.01, noise_multiplier=1.1), count=1000)
    eps = acc.epsilon(delta=1e-6)
    assert isinstance(eps, float)
    assert eps == pytest.approx(9.2366, abs=1e-4)
    # Same composition in dp-accounting, on the default orders up to 256 (its pure-Python
    # subsampled-Gaussian loops are slow at the large orders, which do not matter here).
    orders = DEFAULT_ORDERS[DEFAULT_ORDERS <= 256]
    composition = [(e, c) for e, c in zip(events_of(acc), counts_of(acc), strict=True)]
    ours = composed(composition, orders=orders).epsilon(1e-6)
    theirs = reference_accountant(composition, orders).get_epsilon(1e-6)
    # The optimum is at a fractional order (~4.02), where dp-accounting's series overestimates
    # slightly: ours is at most theirs, and within 1e-7.
    assert theirs * (1 - 1e-7) <= ours <= theirs
    assert ours == eps


def events_of(acc: RDPAccountant) -> list[Any]:
    kinds = {
        cls.__name__: cls
        for cls in (Gaussian, Laplace, ZCDP, ExponentialMechanism, SubsampledGaussian)
    }
    out = []
    for entry in acc.entries:
        params = dict(entry.event)
        out.append(kinds[params.pop("type")](**params))
    return out


def counts_of(acc: RDPAccountant) -> list[int]:
    return [entry.count for entry in acc.entries]


# -- agreement with dp-accounting --------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(composition=compositions, delta=deltas)
def test_epsilon_matches_dp_accounting_on_random_compositions(
    composition: list[tuple[Any, int]], delta: float
) -> None:
    acc = composed(composition, orders=INTEGER_ORDERS)
    ref = reference_accountant(composition, INTEGER_ORDERS)
    ours, theirs = acc.epsilon(delta), ref.get_epsilon(delta)
    # Same orders and same conversion: never below theirs, and equal up to float noise (they
    # additionally report 0 when delta >= sqrt(1 - exp(-rdp)), which only matters near 0).
    assert ours >= theirs * (1 - 1e-9) - 1e-12
    assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-6)
    if 0 < ours < 50:
        back = acc.delta(ours)
        assert back <= delta * (1 + 1e-9)
        assert ref.get_delta(ours) == pytest.approx(back, rel=1e-6, abs=1e-15)


@settings(max_examples=10, deadline=None)
@given(
    composition=st.lists(
        st.tuples(
            st.one_of(
                st.builds(Gaussian, st.floats(0.5, 50.0)),
                st.builds(Laplace, st.floats(0.5, 50.0)),
                st.builds(ZCDP, st.floats(1e-5, 0.5)),
            ),
            st.integers(1, 50),
        ),
        min_size=1,
        max_size=4,
    ),
    delta=deltas,
)
def test_epsilon_matches_dp_accounting_on_the_default_grid(
    composition: list[tuple[Any, int]], delta: float
) -> None:
    acc = composed(composition)
    ref = reference_accountant(composition, DEFAULT_ORDERS)
    ours, theirs = acc.epsilon(delta), ref.get_epsilon(delta)
    assert ours >= theirs * (1 - 1e-9) - 1e-12
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-9)


# -- composition properties --------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(composition=compositions, extra=events, delta=deltas)
def test_composing_any_event_never_lowers_epsilon(
    composition: list[tuple[Any, int]], extra: Any, delta: float
) -> None:
    acc = composed(composition, orders=INTEGER_ORDERS)
    before = acc.epsilon(delta)
    acc.compose(extra)
    assert acc.epsilon(delta) >= before


@settings(max_examples=25, deadline=None)
@given(event=events, k=st.integers(1, 30))
def test_count_k_equals_k_single_composes(event: Any, k: int) -> None:
    once = RDPAccountant(orders=INTEGER_ORDERS)
    once.compose(event, count=k)
    many = RDPAccountant(orders=INTEGER_ORDERS)
    for _ in range(k):
        many.compose(event)
    np.testing.assert_allclose(once.rdp, many.rdp, rtol=1e-12)
    assert once.epsilon(1e-6) == pytest.approx(many.epsilon(1e-6), rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(composition=compositions, d1=deltas, d2=deltas)
def test_epsilon_is_decreasing_in_delta(
    composition: list[tuple[Any, int]], d1: float, d2: float
) -> None:
    acc = composed(composition, orders=INTEGER_ORDERS)
    lo, hi = sorted((d1, d2))
    assert acc.epsilon(lo) >= acc.epsilon(hi)


def test_empty_accountant_has_spent_nothing() -> None:
    acc = RDPAccountant(budget=BUDGET)
    assert acc.epsilon(1e-9) == 0.0 and acc.delta(0.0) == 0.0
    assert acc.spent == (0.0, 1e-6) and acc.remaining_epsilon == 1.0


@pytest.mark.parametrize("count", [0, -3, 1.5, 2.0, True, "2", None])
def test_count_must_be_a_positive_int(count: object) -> None:
    acc = RDPAccountant()
    with pytest.raises(PrivacyError, match="count"):
        acc.compose(Gaussian(1.0), count)  # type: ignore[arg-type]
    assert acc.entries == [] and not acc.rdp.any()


def test_numpy_integer_count_is_accepted() -> None:
    acc = RDPAccountant()
    assert acc.compose(Gaussian(1.0), np.int64(3)).count == 3  # type: ignore[arg-type]


# -- the budget filter -------------------------------------------------------------------------


def test_spend_beyond_budget_raises_before_noise() -> None:
    acc = RDPAccountant(budget=BUDGET)
    spends: list[LedgerEntry] = []
    acc.on_spend = spends.append
    acc.compose(Gaussian(20.0), count=2, stage="synthesizer", label="first")
    rng = np.random.default_rng(7)
    state = rng.bit_generator.state
    rdp_before, entries_before = acc.rdp, acc.entries

    def noisy_count(true_count: float, sigma: float) -> float:
        # A DP primitive: charge first, then draw noise.
        acc.compose(Gaussian(sigma), stage="synthesizer", label="too much")
        return true_count + rng.normal(0.0, sigma)

    with pytest.raises(BudgetExceededError) as info:
        noisy_count(100.0, 0.5)
    assert rng.bit_generator.state == state  # no noise was drawn
    np.testing.assert_array_equal(acc.rdp, rdp_before)
    assert acc.entries == entries_before and len(spends) == 1
    message = str(info.value)
    assert "'too much'" in message and "noise_multiplier=0.5" in message
    assert "spent so far epsilon=" in message and "remaining" in message
    assert "epsilon=1" in message


def test_budget_exceeded_error_is_a_privacy_error() -> None:
    assert issubclass(BudgetExceededError, PrivacyError)


@settings(max_examples=25, deadline=None)
@given(composition=compositions, eps=st.floats(0.1, 10.0), delta=deltas)
def test_spends_are_recorded_exactly_while_they_fit_the_budget(
    composition: list[tuple[Any, int]], eps: float, delta: float
) -> None:
    acc = RDPAccountant(budget=(eps, delta), orders=INTEGER_ORDERS)
    free = RDPAccountant(orders=INTEGER_ORDERS)
    for event, count in composition:
        free.compose(event, count)
        fits = free.epsilon(delta) <= eps
        assert acc.can_afford(event, count) == fits or abs(free.epsilon(delta) - eps) < 1e-8
        before = acc.rdp
        if fits:
            entry = acc.compose(event, count)
            assert entry.epsilon_after == pytest.approx(free.epsilon(delta), rel=1e-12)
        else:
            with pytest.raises(BudgetExceededError):
                acc.compose(event, count)
            np.testing.assert_array_equal(acc.rdp, before)
            break
    assert acc.epsilon(delta) <= eps


def test_can_afford_records_nothing() -> None:
    acc = RDPAccountant(budget=BUDGET)
    assert acc.can_afford(Gaussian(10.0), 3)
    assert not acc.can_afford(Gaussian(0.1))
    assert acc.entries == [] and not acc.rdp.any()


def test_without_budget_everything_is_affordable_and_spent_needs_a_delta() -> None:
    acc = RDPAccountant()
    assert acc.can_afford(Gaussian(0.01), 10**6)
    assert acc.remaining_epsilon == math.inf
    with pytest.raises(PrivacyError, match="budget"):
        _ = acc.spent
    assert acc.compose(Gaussian(1.0)).epsilon_after is None


@pytest.mark.parametrize(
    "budget",
    [
        (0.0, 1e-6),
        (-1.0, 1e-6),
        (math.inf, 1e-6),
        (1.0, 0.0),
        (1.0, 1.0),
        (1.0,),
        "eps",
        (True, 1e-6),
        (1.0, math.nan),
    ],
)
def test_bad_budget_is_refused(budget: object) -> None:
    with pytest.raises(PrivacyError, match="budget"):
        RDPAccountant(budget=budget)  # type: ignore[arg-type]


@pytest.mark.parametrize("orders", [[], [1.0, 2.0], [0.5], [2.0, math.inf], [[2.0, 3.0]]])
def test_bad_orders_are_refused(orders: object) -> None:
    with pytest.raises(PrivacyError, match="order"):
        RDPAccountant(orders=orders)  # type: ignore[arg-type]


def test_custom_orders_are_sorted_and_deduplicated() -> None:
    acc = RDPAccountant(orders=[8.0, 2.0, 8.0, 1.5])
    np.testing.assert_array_equal(acc.orders, [1.5, 2.0, 8.0])


# -- third-party events ------------------------------------------------------------------------


class _PluginEvent:
    def __init__(self, curve: Any) -> None:
        self.curve = curve

    def rdp(self, orders: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.curve, dtype=float), orders.shape).copy()

    def to_dict(self) -> dict[str, Any]:
        return {"type": "PluginEvent"}


def test_a_plugin_event_with_rdp_and_to_dict_is_accepted() -> None:
    acc = RDPAccountant(orders=[2.0, 4.0])
    entry = acc.compose(_PluginEvent([0.1, 0.2]), label="dp-sgd")
    np.testing.assert_allclose(acc.rdp, [0.1, 0.2])
    assert entry.event == {"type": "PluginEvent"}


def test_nan_in_an_event_curve_counts_as_no_bound_at_that_order() -> None:
    acc = RDPAccountant(orders=[2.0, 4.0])
    acc.compose(_PluginEvent([np.nan, 0.2]))
    assert acc.rdp[0] == math.inf
    assert acc.epsilon(1e-6) == rdp_to_epsilon([4.0], [0.2], 1e-6)


class _WrongShape(_PluginEvent):
    def rdp(self, orders: np.ndarray) -> np.ndarray:
        return np.full(orders.size + 1, 0.1)


@pytest.mark.parametrize("event", [object(), _PluginEvent([-0.1, 0.2]), _WrongShape(0.0)])
def test_malformed_events_are_refused(event: object) -> None:
    acc = RDPAccountant(orders=[2.0, 4.0])
    with pytest.raises(PrivacyError):
        acc.compose(event)  # type: ignore[arg-type]
    assert acc.entries == []


# -- planning ----------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    eps=st.floats(0.05, 10.0),
    delta=st.sampled_from([1e-9, 1e-6, 1e-5]),
    used=st.one_of(st.just(0.0), st.floats(0.05, 0.7)),
)
def test_plan_zcdp_fits_and_a_slightly_larger_rho_does_not(
    eps: float, delta: float, used: float
) -> None:
    acc = RDPAccountant(budget=(eps, delta))
    if used > 0:
        acc.compose(ZCDP(acc.plan_zcdp(epsilon=used * eps)), label="earlier stage")
    rho = acc.plan_zcdp()
    trial = acc.copy()
    trial.compose(ZCDP(rho))
    assert trial.epsilon(delta) <= eps
    larger = rho * (1 + 3 * PLAN_MARGIN)
    assert rdp_to_epsilon(acc.orders, acc.rdp + larger * acc.orders, delta) > eps
    assert not acc.can_afford(ZCDP(rho * (1 + 1e-6)))


@settings(max_examples=25, deadline=None)
@given(
    eps=st.floats(0.05, 10.0),
    delta=st.sampled_from([1e-9, 1e-6, 1e-5]),
    count=st.integers(1, 300),
)
def test_a_plan_converted_by_hand_passes_the_exact_filter(
    eps: float, delta: float, count: int
) -> None:
    # What plugin authors write: sigma = sqrt(k / (2 rho)), epsilon = sqrt(8 rho) per part.
    acc = RDPAccountant(budget=(eps, delta))
    rho = acc.plan_zcdp()
    acc.compose(Gaussian(math.sqrt(count / (2 * rho / 2))), count)
    acc.compose(ExponentialMechanism(math.sqrt(8 * (rho / 2) / count)), count)
    assert acc.epsilon(delta) <= eps


@settings(max_examples=25, deadline=None)
@given(
    eps=st.floats(0.05, 10.0),
    delta=st.sampled_from([1e-9, 1e-6, 1e-5]),
    count=st.integers(1, 500),
    used=st.one_of(st.just(0.0), st.floats(0.05, 0.7)),
)
def test_plan_gaussian_fits_and_a_slightly_smaller_sigma_does_not(
    eps: float, delta: float, count: int, used: float
) -> None:
    acc = RDPAccountant(budget=(eps, delta))
    if used > 0:
        acc.compose(ExponentialMechanism(math.sqrt(8 * acc.plan_zcdp(epsilon=used * eps))))
    sigma = acc.plan_gaussian(count)
    trial = acc.copy()
    trial.compose(Gaussian(sigma), count)
    assert trial.epsilon(delta) <= eps
    smaller = acc.rdp + count * Gaussian(sigma * (1 - 3 * PLAN_MARGIN)).rdp(acc.orders)
    assert rdp_to_epsilon(acc.orders, smaller, delta) > eps
    assert not acc.can_afford(Gaussian(sigma * (1 - 1e-6)), count)


def test_plan_gaussian_scales_with_sensitivity() -> None:
    acc = RDPAccountant(budget=BUDGET)
    std = acc.plan_gaussian(4, sensitivity=3.0)
    assert std == pytest.approx(3.0 * acc.plan_gaussian(4), rel=1e-12)
    assert acc.can_afford(Gaussian(std / 3.0), 4)


def test_plan_gaussian_is_exact_for_a_known_case() -> None:
    # One Gaussian at rho = zcdp_rho_for(1, 1e-6): sigma = 1 / sqrt(2 rho).
    acc = RDPAccountant(budget=BUDGET)
    assert acc.plan_gaussian(1) == pytest.approx(1 / math.sqrt(2 * 0.0243559), rel=1e-5)


def test_plan_with_an_explicit_target_never_exceeds_the_budget() -> None:
    acc = RDPAccountant(budget=BUDGET)
    assert acc.plan_zcdp(epsilon=5.0) == acc.plan_zcdp()
    half = acc.plan_zcdp(epsilon=0.5)
    assert half < acc.plan_zcdp()
    other_delta = acc.plan_zcdp(epsilon=0.5, delta=1e-3)
    assert other_delta > half


def test_plan_without_budget_needs_a_target() -> None:
    acc = RDPAccountant()
    with pytest.raises(PrivacyError, match="budget"):
        acc.plan_zcdp()
    assert acc.plan_zcdp(epsilon=1.0, delta=1e-6) == pytest.approx(0.0243559, rel=1e-5)


def test_plan_for_an_epsilon_below_what_the_grid_can_certify_says_so() -> None:
    acc = RDPAccountant(budget=BUDGET)
    with pytest.raises(BudgetExceededError, match="cannot certify"):
        acc.plan_zcdp(epsilon=1e-9)


def test_plan_when_the_budget_is_spent_raises() -> None:
    acc = RDPAccountant(budget=BUDGET)
    acc.compose(ZCDP(max_zcdp_rho(acc.orders, acc.rdp, *BUDGET)))
    with pytest.raises(BudgetExceededError, match="no zCDP spend fits"):
        acc.plan_zcdp()
    with pytest.raises(BudgetExceededError):
        acc.plan_gaussian(3)


# -- ledger, callback and export ---------------------------------------------------------------


def test_on_spend_is_called_after_each_recorded_spend() -> None:
    acc = RDPAccountant(budget=BUDGET)
    seen: list[tuple[LedgerEntry, int]] = []
    acc.on_spend = lambda entry: seen.append((entry, len(acc.entries)))
    first = acc.compose(Gaussian(20.0), 2, stage="synthesizer", label="one-way")
    acc.compose(ExponentialMechanism(0.1), stage="synthesizer", label="select")
    assert [e for e, _ in seen] == acc.entries and seen[0] == (first, 1)
    assert first == LedgerEntry("synthesizer", "one-way", first.event, 2, first.epsilon_after)


def test_copy_is_independent_and_does_not_notify() -> None:
    acc = RDPAccountant(budget=BUDGET)
    calls: list[LedgerEntry] = []
    acc.on_spend = calls.append
    acc.compose(Gaussian(10.0))
    twin = acc.copy()
    twin.compose(Gaussian(10.0))
    assert len(calls) == 1 and len(acc.entries) == 1 and len(twin.entries) == 2
    assert twin.epsilon(1e-6) > acc.epsilon(1e-6)


def test_ledger_entries_are_read_only() -> None:
    acc = RDPAccountant()
    entry = acc.compose(Gaussian(1.0))
    with pytest.raises(TypeError):
        entry.event["noise_multiplier"] = 100.0  # type: ignore[index]
    acc.entries.clear()
    assert len(acc.entries) == 1
    acc.rdp[:] = 0
    assert acc.rdp.any()


def test_ledger_exports_budget_entries_and_final_guarantee_as_json() -> None:
    acc = RDPAccountant(budget=BUDGET)
    acc.compose(Gaussian(15.0), 3, stage="synthesizer", label="one-way marginals")
    acc.compose(ExponentialMechanism(0.05), 2, stage="synthesizer", label="select")
    acc.compose(SubsampledGaussian(0.01, 2.0), 10, stage="fit")
    data = json.loads(acc.to_json())
    assert data["budget"] == {"epsilon": 1.0, "delta": 1e-6}
    assert data["neighbouring"] == "add/remove one record"
    assert data["summary"] == {
        "entries": 3,
        "mechanisms": 15,
        "by_type": {"Gaussian": 3, "ExponentialMechanism": 2, "SubsampledGaussian": 10},
        "by_stage": {"synthesizer": 5, "fit": 10},
    }
    assert data["entries"][0] == {
        "stage": "synthesizer",
        "label": "one-way marginals",
        "event": {"type": "Gaussian", "noise_multiplier": 15.0},
        "count": 3,
        "epsilon_after": acc.entries[0].epsilon_after,
    }
    assert data["final"] == {"epsilon": acc.spent[0], "delta": 1e-6}
    afters = [e["epsilon_after"] for e in data["entries"]]
    assert afters == sorted(afters) and afters[-1] == acc.spent[0]


def test_export_without_budget_states_the_guarantee_at_a_given_delta() -> None:
    acc = RDPAccountant()
    acc.compose(Gaussian(3.0))
    assert acc.to_dict()["final"] is None and acc.to_dict()["budget"] is None
    assert acc.to_dict(delta=1e-5)["final"] == {"epsilon": acc.epsilon(1e-5), "delta": 1e-5}


@pytest.mark.parametrize(("eps", "delta"), [(0.0, 1e-6), (1.0, 0.0), (math.nan, 1e-6)])
def test_bad_planning_target_is_refused(eps: float, delta: float) -> None:
    with pytest.raises(PrivacyError, match="planning target"):
        RDPAccountant(budget=BUDGET).plan_zcdp(epsilon=eps, delta=delta)
