"""Privacy events: validation, immutability, RDP curves and ledger descriptions."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from safes_framework.errors import PrivacyError, SafesError
from safes_framework.privacy import (
    DEFAULT_ORDERS,
    ZCDP,
    DpEvent,
    ExponentialMechanism,
    Gaussian,
    Laplace,
    SubsampledGaussian,
)

BAD_POSITIVE = [0, 0.0, -1.0, math.nan, math.inf, -math.inf, True, "1.0", None]


@pytest.mark.parametrize("bad", BAD_POSITIVE)
@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda v: Gaussian(noise_multiplier=v), "noise_multiplier"),
        (lambda v: Laplace(noise_multiplier=v), "noise_multiplier"),
        (lambda v: ZCDP(rho=v), "rho"),
        (lambda v: ExponentialMechanism(epsilon=v), "epsilon"),
        (lambda v: SubsampledGaussian(sampling_rate=0.1, noise_multiplier=v), "noise_multiplier"),
        (lambda v: SubsampledGaussian(sampling_rate=v, noise_multiplier=1.0), "sampling_rate"),
    ],
)
def test_bad_parameter_raises_privacy_error_naming_parameter_and_value(
    make: object, name: str, bad: object
) -> None:
    with pytest.raises(PrivacyError) as info:
        make(bad)  # type: ignore[operator]
    assert name in str(info.value)
    assert repr(bad) in str(info.value)
    assert isinstance(info.value, SafesError)


@pytest.mark.parametrize("q", [1.0000001, 2.0])
def test_sampling_rate_above_one_is_refused(q: float) -> None:
    with pytest.raises(PrivacyError, match=r"sampling_rate must be in \(0, 1\]"):
        SubsampledGaussian(sampling_rate=q, noise_multiplier=1.0)


def test_events_are_frozen_hashable_and_normalised_to_float() -> None:
    g = Gaussian(noise_multiplier=np.float32(2.0))  # type: ignore[arg-type]
    assert type(g.noise_multiplier) is float
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.noise_multiplier = 3.0  # type: ignore[misc]
    assert g == Gaussian(2) and hash(g) == hash(Gaussian(2.0))


def test_events_satisfy_the_event_protocol() -> None:
    for event in (
        Gaussian(1.0),
        Laplace(1.0),
        ZCDP(0.1),
        ExponentialMechanism(0.1),
        SubsampledGaussian(0.1, 1.0),
    ):
        assert isinstance(event, DpEvent)


def test_to_dict_names_the_type_and_parameters() -> None:
    assert SubsampledGaussian(0.01, 1.1).to_dict() == {
        "type": "SubsampledGaussian",
        "sampling_rate": 0.01,
        "noise_multiplier": 1.1,
    }
    assert ExponentialMechanism(0.5).to_dict() == {"type": "ExponentialMechanism", "epsilon": 0.5}
    assert ZCDP(0.2).to_dict() == {"type": "ZCDP", "rho": 0.2}


@pytest.mark.parametrize("eps", [1e-3, 0.1, 1.0, 7.0])
def test_exponential_mechanism_equals_zcdp_with_rho_eps_squared_over_eight(eps: float) -> None:
    em = ExponentialMechanism(epsilon=eps)
    assert em.rho == eps**2 / 8
    np.testing.assert_array_equal(em.rdp(DEFAULT_ORDERS), ZCDP(eps**2 / 8).rdp(DEFAULT_ORDERS))


def test_zcdp_equals_gaussian_with_matching_noise() -> None:
    rho = 0.02
    np.testing.assert_allclose(
        ZCDP(rho).rdp(DEFAULT_ORDERS),
        Gaussian(1 / math.sqrt(2 * rho)).rdp(DEFAULT_ORDERS),
        rtol=1e-14,
    )


def test_subsampled_gaussian_with_full_sampling_equals_gaussian() -> None:
    np.testing.assert_array_equal(
        SubsampledGaussian(1.0, 0.9).rdp(DEFAULT_ORDERS), Gaussian(0.9).rdp(DEFAULT_ORDERS)
    )


def test_laplace_curve_is_pure_dp_bounded() -> None:
    rdp = Laplace(noise_multiplier=4.0).rdp(DEFAULT_ORDERS)
    assert (rdp <= 0.25 + 1e-15).all() and (np.diff(rdp) >= 0).all()
