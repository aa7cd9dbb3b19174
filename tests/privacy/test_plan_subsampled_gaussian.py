"""Planning DP-SGD: the smallest noise multiplier of a run of Poisson-subsampled Gaussians."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest

from safes_framework.errors import BudgetExceededError, PrivacyError
from safes_framework.privacy import (
    ZCDP,
    Gaussian,
    RDPAccountant,
    SubsampledGaussian,
    analysis,
    max_zcdp_rho,
)

from .conftest import INTEGER_ORDERS, reference_accountant

#: (sampling rate, steps, epsilon, delta): DP-SGD runs from small to large epsilon.
RUNS = [
    (0.11, 45, 0.9, 1e-9),
    (0.01, 1000, 1.0, 1e-5),
    (0.05, 200, 0.5, 1e-6),
    (0.2, 50, 10.0, 1e-9),
]

needs_opacus = pytest.mark.skipif(
    importlib.util.find_spec("opacus") is None,
    reason="opacus is in the dpsgd extra: pip install 'safes-framework[dpsgd]'",
)


def _spent(q: float, sigma: float, steps: int, budget: tuple[float, float]) -> RDPAccountant:
    acc = RDPAccountant(budget=(budget[0] * 2, budget[1]))
    acc.compose(SubsampledGaussian(q, sigma), count=steps)
    return acc


@pytest.mark.parametrize(("q", "steps", "eps", "delta"), RUNS)
def test_planned_multiplier_spends_the_budget_and_a_slightly_smaller_one_does_not_fit(
    q: float, steps: int, eps: float, delta: float
) -> None:
    acc = RDPAccountant(budget=(eps, delta))
    sigma = acc.plan_subsampled_gaussian(q, steps)
    acc.compose(SubsampledGaussian(q, sigma), count=steps)  # fits: no BudgetExceededError
    assert eps * (1 - 1e-6) <= acc.epsilon(delta) <= eps
    smaller = sigma * (1 - 1e-6)
    assert _spent(q, smaller, steps, (eps, delta)).epsilon(delta) > eps


def test_plan_accounts_for_what_was_already_spent() -> None:
    acc = RDPAccountant(budget=(1.0, 1e-9))
    acc.compose(Gaussian(60.0), count=5, label="one-way marginals")
    sigma = acc.plan_subsampled_gaussian(0.1, 50)
    fresh = RDPAccountant(budget=(1.0, 1e-9)).plan_subsampled_gaussian(0.1, 50)
    assert sigma > fresh
    acc.compose(SubsampledGaussian(0.1, sigma), count=50)
    assert acc.epsilon(1e-9) == pytest.approx(1.0, rel=1e-6)
    assert acc.epsilon(1e-9) <= 1.0


def test_full_batch_plan_is_the_gaussian_plan() -> None:
    acc = RDPAccountant(budget=(1.0, 1e-6))
    assert acc.plan_subsampled_gaussian(1.0, 20) == pytest.approx(acc.plan_gaussian(20), rel=1e-6)


def test_subsampling_needs_less_noise_than_the_full_batch() -> None:
    acc = RDPAccountant(budget=(1.0, 1e-6))
    multipliers = [acc.plan_subsampled_gaussian(q, 100) for q in (0.01, 0.1, 0.5, 1.0)]
    assert multipliers == sorted(multipliers)


def test_an_explicit_target_is_planned_and_the_budget_still_bounds_it() -> None:
    acc = RDPAccountant(budget=(1.0, 1e-6))
    half = acc.plan_subsampled_gaussian(0.1, 100, epsilon=0.5)
    assert _spent(0.1, half, 100, (1.0, 1e-6)).epsilon(1e-6) <= 0.5
    assert acc.plan_subsampled_gaussian(0.1, 100, epsilon=5.0) == pytest.approx(
        acc.plan_subsampled_gaussian(0.1, 100), rel=1e-6
    )


@pytest.mark.parametrize(
    ("q", "steps"), [(0.0, 10), (1.5, 10), (float("nan"), 10), (0.1, 0), (0.1, 2.5), (0.1, True)]
)
def test_bad_sampling_rate_or_steps_are_refused(q: float, steps: object) -> None:
    with pytest.raises(PrivacyError):
        RDPAccountant(budget=(1.0, 1e-6)).plan_subsampled_gaussian(q, steps)  # type: ignore[arg-type]


def test_plan_when_the_budget_is_spent_raises() -> None:
    acc = RDPAccountant(budget=(1.0, 1e-6))
    acc.compose(ZCDP(max_zcdp_rho(acc.orders, acc.rdp, 1.0, 1e-6)))  # all of it, no margin
    with pytest.raises(BudgetExceededError):
        acc.plan_subsampled_gaussian(0.1, 10)


def test_plan_without_budget_needs_a_target() -> None:
    with pytest.raises(PrivacyError, match="budget"):
        RDPAccountant().plan_subsampled_gaussian(0.1, 10)
    sigma = RDPAccountant().plan_subsampled_gaussian(0.1, 10, epsilon=1.0, delta=1e-6)
    assert _spent(0.1, sigma, 10, (1.0, 1e-6)).epsilon(1e-6) <= 1.0


@pytest.mark.parametrize(("q", "steps", "eps", "delta"), RUNS[:3])
def test_planned_run_matches_dp_accounting_at_integer_orders(
    q: float, steps: int, eps: float, delta: float
) -> None:
    sigma = RDPAccountant(budget=(eps, delta)).plan_subsampled_gaussian(q, steps)
    ours = RDPAccountant(orders=INTEGER_ORDERS)
    ours.compose(SubsampledGaussian(q, sigma), count=steps)
    theirs = reference_accountant([(SubsampledGaussian(q, sigma), steps)], INTEGER_ORDERS)
    assert ours.epsilon(delta) == pytest.approx(theirs.get_epsilon(delta), rel=1e-9)
    # The default grid adds fractional orders near 1, so it certifies at most that epsilon.
    assert theirs.get_epsilon(delta) >= eps * (1 - 1e-6)


@needs_opacus
@pytest.mark.parametrize(("q", "steps", "eps", "delta"), RUNS)
def test_curve_agrees_with_opacus_rdp_where_opacus_is_exact(
    q: float, steps: int, eps: float, delta: float
) -> None:
    from opacus.accountants.analysis import rdp as opacus_rdp

    sigma = RDPAccountant(budget=(eps, delta)).plan_subsampled_gaussian(q, steps)
    orders = np.arange(2.0, 64.0)  # opacus evaluates integer orders in closed form
    ours = steps * analysis.rdp_subsampled_gaussian(q, sigma, orders)
    theirs = opacus_rdp.compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=orders)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)


@needs_opacus
@pytest.mark.parametrize(("q", "steps", "eps", "delta"), RUNS)
def test_plan_agrees_with_opacus_within_one_percent_and_never_exceeds_the_budget(
    q: float, steps: int, eps: float, delta: float
) -> None:
    from opacus.accountants import RDPAccountant as OpacusRDP
    from opacus.accountants.utils import get_noise_multiplier

    sigma = RDPAccountant(budget=(eps, delta)).plan_subsampled_gaussian(q, steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "optimal order is the largest alpha"
        theirs = get_noise_multiplier(
            target_epsilon=eps, target_delta=delta, sample_rate=q, steps=steps,
            accountant="rdp", epsilon_tolerance=1e-4,
        )
        opacus = OpacusRDP()
        opacus.history = [(sigma, q, steps)]
        opacus_eps = opacus.get_epsilon(delta)
    # The core's grid is finer (and exact at fractional orders), so it never needs more noise.
    assert sigma <= theirs * (1 + 1e-9)
    assert sigma == pytest.approx(theirs, rel=0.01)
    assert opacus_eps == pytest.approx(eps, rel=0.01)
    assert _spent(q, sigma, steps, (eps, delta)).epsilon(delta) <= eps
