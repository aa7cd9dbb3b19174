"""Shared helpers for the privacy tests: Hypothesis strategies and the dp-accounting bridge."""

from __future__ import annotations

import logging
import math

import dp_accounting as dpa
import numpy as np
import pytest
from dp_accounting.rdp import rdp_privacy_accountant as dpa_rdp
from hypothesis import strategies as st

from safes_framework.privacy import (
    ZCDP,
    ExponentialMechanism,
    Gaussian,
    Laplace,
    SubsampledGaussian,
)

# Integer orders only: there both libraries evaluate the subsampled Gaussian in closed form
# (at fractional orders dp-accounting sums |binomial| terms, an overestimate; see
# test_analysis.py), and dp-accounting's pure-Python loops stay fast up to order 256.
INTEGER_ORDERS = np.array([*range(2, 65), 72, 80, 96, 112, 128, 160, 192, 224, 256], float)

gaussians = st.builds(Gaussian, st.floats(0.5, 50.0))
laplaces = st.builds(Laplace, st.floats(0.5, 50.0))
zcdps = st.builds(ZCDP, st.floats(1e-5, 0.5))
exponentials = st.builds(ExponentialMechanism, st.floats(1e-3, 1.0))
subsampled = st.builds(
    SubsampledGaussian,
    st.sampled_from([1e-3, 0.01, 0.05, 0.2, 1.0]),
    st.sampled_from([0.8, 1.1, 2.0, 5.0]),
)
events = st.one_of(gaussians, laplaces, zcdps, exponentials, subsampled)
counts = st.integers(1, 50)
compositions = st.lists(st.tuples(events, counts), min_size=1, max_size=5)
deltas = st.sampled_from([1e-10, 1e-9, 1e-6, 1e-5, 1e-3])


def to_dp_accounting(event: object) -> dpa.DpEvent:
    """The dp-accounting event with the same RDP curve."""
    if isinstance(event, Gaussian):
        return dpa.GaussianDpEvent(event.noise_multiplier)
    if isinstance(event, Laplace):
        return dpa.LaplaceDpEvent(event.noise_multiplier)
    if isinstance(event, ZCDP | ExponentialMechanism):
        # rho-zCDP has the RDP curve rho * alpha of a Gaussian with sigma = 1 / sqrt(2 rho).
        return dpa.GaussianDpEvent(1.0 / math.sqrt(2.0 * event.rho))
    if isinstance(event, SubsampledGaussian):
        return dpa.PoissonSampledDpEvent(
            event.sampling_rate, dpa.GaussianDpEvent(event.noise_multiplier)
        )
    raise TypeError(event)


def reference_accountant(
    composition: list[tuple[object, int]], orders: np.ndarray
) -> dpa_rdp.RdpAccountant:
    ref = dpa_rdp.RdpAccountant(orders=list(orders))
    for event, count in composition:
        ref.compose(to_dp_accounting(event), count)
    return ref


@pytest.fixture(autouse=True)
def _quiet_dp_accounting() -> None:
    """dp-accounting logs a warning for every fractional order its series gives up on."""
    logging.getLogger("absl").setLevel(logging.ERROR)
