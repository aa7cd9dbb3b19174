"""The pure RDP mathematics: mechanism curves, conversion to (epsilon, delta), planning helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dp_accounting.rdp import rdp_privacy_accountant as dpa_rdp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize

from safes_framework.errors import PrivacyError
from safes_framework.privacy import DEFAULT_ORDERS, analysis, zcdp_rho_for

SGM_CASES = [(0.01, 1.1), (0.001, 5.0), (0.05, 0.3), (0.2, 0.6), (0.5, 1.0), (0.9, 2.0)]


def sgm_rdp_by_quadrature(q: float, sigma: float, alpha: float) -> float:
    """D_alpha of the sampled Gaussian from the defining integral (MTZ 2019, Sec. 3)."""
    shift = 0.5 / sigma**2
    log_norm = math.log(sigma * math.sqrt(2 * math.pi))

    def integrand(z: float) -> float:
        # pdf(z) [(1 - q + q L(z))^alpha - 1], L the likelihood ratio of N(1, s^2) to N(0, s^2).
        u = z / sigma**2 - shift
        if u < 30:
            log_mix = math.log1p(q * math.expm1(u))
        else:
            log_mix = float(np.logaddexp(math.log1p(-q), math.log(q) + u))
        log_pdf = -0.5 * (z / sigma) ** 2 - log_norm
        if alpha * log_mix < 50:
            return math.exp(log_pdf) * math.expm1(alpha * log_mix)
        return math.exp(log_pdf + alpha * log_mix) - math.exp(log_pdf)

    top = 12 * sigma + alpha * 2 + 5
    a_minus_1 = sum(
        integrate.quad(integrand, lo, hi, epsabs=0, epsrel=1e-13, limit=400)[0]
        for lo, hi in [(-np.inf, -10 * sigma), (-10 * sigma, 0), (0, top), (top, np.inf)]
    )
    return math.log1p(a_minus_1) / (alpha - 1)


# -- default grid ------------------------------------------------------------------------------


def test_default_orders_are_fine_near_one_and_reach_large_orders() -> None:
    orders = DEFAULT_ORDERS
    assert 300 <= orders.size <= 1000
    assert orders[0] <= 1.01 and orders[-1] >= 1e4
    assert (np.diff(orders) > 0).all()
    assert set(range(2, 65)) <= set(orders.tolist())
    with pytest.raises(ValueError):
        orders[0] = 3.0  # the module constant is read-only


# -- Gaussian, zCDP, Laplace -------------------------------------------------------------------


def test_gaussian_rdp_is_alpha_over_two_sigma_squared() -> None:
    np.testing.assert_allclose(
        analysis.rdp_gaussian(2.0, [2.0, 10.0]), [2.0 / 8.0, 10.0 / 8.0], rtol=1e-15
    )


def test_zcdp_rdp_is_rho_times_alpha() -> None:
    np.testing.assert_allclose(analysis.rdp_zcdp(0.3, [1.5, 4.0]), [0.45, 1.2], rtol=1e-15)


@pytest.mark.parametrize("b", [0.05, 0.3, 1.0, 5.0, 200.0])
def test_laplace_rdp_matches_dp_accounting_on_the_default_grid(b: float) -> None:
    ours = analysis.rdp_laplace(b, DEFAULT_ORDERS)
    theirs = np.array([dpa_rdp._laplace_rdp(1.0 / b, a) for a in DEFAULT_ORDERS])
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-300)


def test_laplace_rdp_at_order_one_is_the_kl_limit_and_continuous() -> None:
    b = 2.0
    eps = 1.0 / b
    at_one, near_one = analysis.rdp_laplace(b, [1.0, 1.0 + 1e-9])
    assert at_one == pytest.approx(eps + math.expm1(-eps), rel=1e-14)
    assert near_one == pytest.approx(at_one, rel=1e-8)


def test_laplace_rdp_at_huge_orders_tends_to_pure_epsilon_without_overflow() -> None:
    with np.errstate(all="raise"):
        values = analysis.rdp_laplace(0.01, [1e3, 1e8, 1e300])
    assert np.isfinite(values).all()
    assert values[-1] == pytest.approx(100.0, rel=1e-12)
    assert (values <= 100.0 + 1e-12).all()


# -- subsampled Gaussian -----------------------------------------------------------------------


@pytest.mark.parametrize(("q", "sigma"), SGM_CASES)
def test_subsampled_gaussian_matches_dp_accounting_at_integer_orders(
    q: float, sigma: float
) -> None:
    orders = np.array([2, 3, 4, 5, 8, 13, 32, 64, 100, 256], float)
    ours = analysis.rdp_subsampled_gaussian(q, sigma, orders)
    theirs = dpa_rdp._compute_rdp_poisson_subsampled_gaussian(q, sigma, orders)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)


@pytest.mark.parametrize(("q", "sigma"), SGM_CASES)
def test_subsampled_gaussian_at_fractional_orders_is_below_dp_accounting_and_exact(
    q: float, sigma: float
) -> None:
    # dp-accounting sums |C(alpha, i)| over the alternating tail, an overestimate by up to tens
    # of percent at orders in (1, 2); we sum with signs and bound the remainder (Leibniz), so
    # we are at most theirs (up to our 1e-14 rounding allowance on log A), and equal to the
    # defining integral.
    orders = np.array([1.01, 1.25, 1.5, 1.9, 2.5, 3.7, 7.5, 20.5])
    ours = analysis.rdp_subsampled_gaussian(q, sigma, orders)
    theirs = dpa_rdp._compute_rdp_poisson_subsampled_gaussian(q, sigma, orders)
    finite = np.isfinite(theirs)
    slack = 1e-12 * theirs + 2e-14 / (orders - 1)
    assert (ours[finite] <= (theirs + slack)[finite]).all()
    for alpha, value in zip(orders[[1, 3, 5]], ours[[1, 3, 5]], strict=True):
        exact = sgm_rdp_by_quadrature(q, sigma, alpha)  # itself good to ~1e-8
        assert exact * (1 - 1e-8) <= value <= exact * (1 + 1e-6) + 2e-14 / (alpha - 1)


def test_subsampled_gaussian_is_an_upper_bound_even_when_tiny() -> None:
    # Here log A_alpha ~ 1e-16: the series alone is rounding noise; the bound must still hold.
    q, sigma = 1e-6, 30.0
    orders = np.array([1.5, 2.0, 7.5, 64.0])
    ours = analysis.rdp_subsampled_gaussian(q, sigma, orders)
    for alpha, value in zip(orders, ours, strict=True):
        assert value >= sgm_rdp_by_quadrature(q, sigma, alpha) * (1 - 1e-8)
    # At alpha = 2 the closed form is q^2 (e^{1/sigma^2} - 1), exactly.
    assert ours[1] == pytest.approx(math.log1p(q**2 * math.expm1(1 / sigma**2)), rel=1e-13)
    assert (ours > 0).all()


def test_subsampled_gaussian_with_full_sampling_is_the_gaussian() -> None:
    np.testing.assert_array_equal(
        analysis.rdp_subsampled_gaussian(1.0, 1.3, DEFAULT_ORDERS),
        analysis.rdp_gaussian(1.3, DEFAULT_ORDERS),
    )


@settings(max_examples=15, deadline=None)
@given(q=st.floats(1e-4, 0.99), sigma=st.floats(0.4, 20.0))
def test_subsampled_gaussian_is_monotone_in_order_and_below_the_gaussian(
    q: float, sigma: float
) -> None:
    orders = np.concatenate([1 + np.geomspace(1e-3, 1, 15, endpoint=False), np.arange(2, 40)])
    rdp = analysis.rdp_subsampled_gaussian(q, sigma, orders)
    assert (rdp >= 0).all() and np.isfinite(rdp).all()
    # Monotone up to the 1e-14 rounding allowance on log A at fractional orders.
    assert (np.diff(rdp) >= -1e-12 * rdp[1:] - 2e-14 / (orders[:-1] - 1)).all()
    assert (rdp <= analysis.rdp_gaussian(sigma, orders)).all()


def test_subsampled_gaussian_orders_beyond_the_series_limits_get_the_gaussian_bound() -> None:
    rdp = analysis.rdp_subsampled_gaussian(0.01, 1.0, [1.0, 20_000.5])
    np.testing.assert_array_equal(rdp, analysis.rdp_gaussian(1.0, [1.0, 20_000.5]))


# -- conversion --------------------------------------------------------------------------------


def _continuous_optimum(rho: float, delta: float) -> float:
    def eps(alpha: float) -> float:
        return (
            rho * alpha + math.log1p(-1 / alpha) - (math.log(delta) + math.log(alpha)) / (alpha - 1)
        )

    res = optimize.minimize_scalar(
        eps, bounds=(1.0001, 1e6), method="bounded", options={"xatol": 1e-10}
    )
    return float(res.fun)


@pytest.mark.parametrize(("rho", "delta"), [(0.1, 1e-9), (1e-4, 1e-9), (2.0, 1e-6), (0.01, 1e-5)])
def test_zcdp_conversion_is_close_to_the_continuous_optimum(rho: float, delta: float) -> None:
    exact = _continuous_optimum(rho, delta)
    ours = analysis.rdp_to_epsilon(DEFAULT_ORDERS, rho * DEFAULT_ORDERS, delta)
    assert exact * (1 - 1e-12) <= ours <= exact * (1 + 1e-3)


def test_epsilon_ignores_infinite_and_nan_orders() -> None:
    orders = np.array([2.0, 8.0, 32.0])
    finite = analysis.rdp_to_epsilon(orders[1:2], [0.5], 1e-6)
    assert analysis.rdp_to_epsilon(orders, [np.inf, 0.5, np.nan], 1e-6) == finite


def test_epsilon_is_infinite_when_no_order_gives_a_bound() -> None:
    assert analysis.rdp_to_epsilon([2.0, 3.0], [np.inf, np.nan], 1e-6) == math.inf
    assert analysis.rdp_to_delta([2.0, 3.0], [np.inf, np.inf], 1.0) == 1.0


def test_nothing_composed_means_zero_epsilon_and_zero_delta() -> None:
    zeros = np.zeros_like(DEFAULT_ORDERS)
    assert analysis.rdp_to_epsilon(DEFAULT_ORDERS, zeros, 1e-9) == 0.0
    assert analysis.rdp_to_delta(DEFAULT_ORDERS, zeros, 0.0) == 0.0


def test_epsilon_is_clipped_at_zero() -> None:
    assert analysis.rdp_to_epsilon([2.0, 50.0], [1e-12, 1e-10], 0.5) == 0.0


@pytest.mark.parametrize("delta", [0.0, -1e-5, 1.0, 2.0, math.nan, "0.1"])
def test_bad_delta_raises(delta: object) -> None:
    with pytest.raises(PrivacyError, match="delta"):
        analysis.rdp_to_epsilon([2.0], [0.1], delta)  # type: ignore[arg-type]


@settings(max_examples=30, deadline=None)
@given(rho=st.floats(1e-5, 5.0), delta=st.floats(1e-12, 0.1))
def test_delta_of_epsilon_inverts_epsilon_of_delta(rho: float, delta: float) -> None:
    rdp = rho * DEFAULT_ORDERS
    eps = analysis.rdp_to_epsilon(DEFAULT_ORDERS, rdp, delta)
    back = analysis.rdp_to_delta(DEFAULT_ORDERS, rdp, eps)
    assert back <= delta * (1 + 1e-9)
    if eps > 0:  # (at eps = 0 the clip makes delta(0) smaller than delta)
        assert back == pytest.approx(delta, rel=1e-6)


def test_conversion_agrees_with_dp_accounting_on_the_same_curve() -> None:
    rdp = analysis.rdp_subsampled_gaussian(0.02, 1.0, DEFAULT_ORDERS) * 500
    for delta in (1e-9, 1e-5):
        theirs, _ = dpa_rdp.compute_epsilon(DEFAULT_ORDERS, rdp, delta)
        assert analysis.rdp_to_epsilon(DEFAULT_ORDERS, rdp, delta) == pytest.approx(
            theirs, rel=1e-12
        )
    eps = 1.5
    theirs_delta, _ = dpa_rdp.compute_delta(DEFAULT_ORDERS, rdp, eps)
    assert analysis.rdp_to_delta(DEFAULT_ORDERS, rdp, eps) == pytest.approx(theirs_delta, rel=1e-9)


# -- planning helpers --------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(eps=st.floats(0.01, 20.0), delta=st.floats(1e-12, 1e-3))
def test_zcdp_rho_for_fits_and_is_the_largest_that_fits(eps: float, delta: float) -> None:
    rho = zcdp_rho_for(eps, delta)
    assert analysis.rdp_to_epsilon(DEFAULT_ORDERS, rho * DEFAULT_ORDERS, delta) <= eps
    bigger = rho * (1 + 1e-9)
    assert analysis.rdp_to_epsilon(DEFAULT_ORDERS, bigger * DEFAULT_ORDERS, delta) > eps


def test_zcdp_rho_for_known_value() -> None:
    # rho = 1 converts to epsilon ~ 2 sqrt(log(1/delta)) + 1 style numbers; check both ways.
    rho = zcdp_rho_for(1.0, 1e-6)
    assert analysis.rdp_to_epsilon(DEFAULT_ORDERS, rho * DEFAULT_ORDERS, 1e-6) == pytest.approx(
        1.0, rel=1e-9
    )
    assert rho == pytest.approx(0.0243559, rel=1e-5)


def test_zcdp_rho_for_rejects_a_non_positive_epsilon() -> None:
    with pytest.raises(PrivacyError, match="epsilon"):
        zcdp_rho_for(0.0, 1e-6)


@pytest.mark.parametrize("b", [1e6, 1e10, 1e14])
def test_laplace_rdp_with_tiny_epsilon_is_non_negative_and_at_most_the_zcdp_bound(b: float) -> None:
    rdp = analysis.rdp_laplace(b, DEFAULT_ORDERS)
    assert (rdp >= 0).all()
    assert (rdp <= DEFAULT_ORDERS / (2 * b * b) * (1 + 1e-12)).all()
