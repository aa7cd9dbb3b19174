"""Tests of the compiled kernels of the tree engine (`safes_plugins.pgm.kernels`): the plans
that sum tables onto marginals and broadcast marginals back, the multiplicative step against
the log-space step, and the fall-back to it."""

from __future__ import annotations

import math

import mbi
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safes_plugins import pgm
from safes_plugins.pgm import estimation, kernels


@st.composite
def _tables(draw):
    """A table shape (sizes 1-5, with 2 common, as the binary columns of real data) and a
    subset of its axes."""
    shape = tuple(draw(st.lists(st.sampled_from([1, 2, 2, 3, 4, 5]), min_size=1, max_size=5)))
    kept = tuple(k for k in range(len(shape)) if draw(st.booleans()))
    return shape, kept


def _one_plan(shape, kept):
    plans = kernels.Plans()
    plans.add(shape, kept)
    size = math.prod(shape[k] for k in kept)
    at, end = kernels.as_index([0]), kernels.as_index([size])
    return plans.arrays(), at, end, size


@settings(max_examples=150, deadline=None)
@given(_tables(), st.integers(0, 2**32 - 1))
def test_a_plan_sums_onto_and_broadcasts_from_any_subset_of_axes(case, seed) -> None:
    shape, kept = case
    rng = np.random.default_rng(seed)
    table = rng.uniform(0.1, 2.0, shape)
    plans, at, end, size = _one_plan(shape, kept)
    dropped = tuple(k for k in range(len(shape)) if k not in kept)
    expected = table.sum(axis=dropped).ravel()

    out = np.full(size, np.nan)
    zero = kernels.as_index([0])
    terms = (zero, zero, at, end)
    kernels.project(table.ravel(), out, terms, plans)
    np.testing.assert_allclose(out, expected, rtol=1e-12)

    marginal = rng.normal(size=size)
    broadcast = marginal.reshape([shape[k] if k in kept else 1 for k in range(len(shape))])
    flat = table.ravel().copy()
    kernels.lift(marginal, np.empty(size), flat, terms, plans)
    np.testing.assert_allclose(flat, (table + broadcast).ravel(), rtol=1e-12)

    factors = np.empty(size)
    new = np.empty(table.size)
    g = rng.normal(size=size)
    ok = kernels.propose(
        table.ravel() / table.max(), g, 0.3, factors, new, zero, kernels.as_index([table.size]),
        terms, plans, kernels.FACTOR_RANGE, kernels.NODE_FLOOR,
    )
    assert ok
    step = table * np.exp(-0.3 * g).reshape(broadcast.shape)
    np.testing.assert_allclose(new, (step / step.max()).ravel(), rtol=1e-12)


def test_plans_of_a_table_offset_in_a_longer_vector_touch_only_it() -> None:
    plans = kernels.Plans()
    plans.add((3, 2, 4), (0, 2))
    flat = np.arange(40.0)
    out = np.zeros(12 + 5)
    terms = (kernels.as_index([7]), kernels.as_index([0]), kernels.as_index([5]),
             kernels.as_index([17]))
    kernels.project(flat, out, terms, plans.arrays())
    expected = flat[7:31].reshape(3, 2, 4).sum(axis=1).ravel()
    np.testing.assert_array_equal(out[:5], 0.0)
    np.testing.assert_allclose(out[5:], expected)


def test_nested_entries_read_and_write_through_the_marginal_that_contains_them() -> None:
    # A (3, 2, 4) node; entry 0 is its (0, 2) marginal, entry 1 the (2,) marginal summed from
    # entry 0's cells (nested), entry 2 the (1,) marginal from the node.
    rng = np.random.default_rng(5)
    node = rng.uniform(0.1, 1.0, (3, 2, 4))
    plans = kernels.Plans()
    plans.add((3, 2, 4), (0, 2))
    plans.add((3, 4), (1,))
    plans.add((3, 2, 4), (1,))
    host_at = kernels.as_index([0, 0, 0])  # entry 1 from measured cell 0 (entry 0's segment)
    nested = kernels.as_index([0, 1, 0])
    at, end = kernels.as_index([0, 12, 16]), kernels.as_index([12, 16, 18])
    m = np.empty(18)
    terms = (host_at, nested, at, end)
    kernels.project(node.ravel(), m, terms, plans.arrays())
    np.testing.assert_allclose(m[:12], node.sum(axis=1).ravel())
    np.testing.assert_allclose(m[12:16], node.sum(axis=(0, 1)))
    np.testing.assert_allclose(m[16:], node.sum(axis=(0, 2)))
    # The transpose: each entry's vector lands in the node, the nested one through entry 0.
    v = rng.normal(size=18)
    phi = np.zeros(24)
    kernels.lift(v, np.empty(18), phi, terms, plans.arrays())
    expected = (
        v[:12].reshape(3, 1, 4) + v[12:16].reshape(1, 1, 4) + v[16:].reshape(1, 2, 1)
    )
    np.testing.assert_allclose(phi, np.broadcast_to(expected, (3, 2, 4)).ravel())
    # And the multiplicative step: exp(-a g) of all three entries, renormalised.
    g = rng.normal(size=18)
    new = np.empty(24)
    ok = kernels.propose(
        node.ravel() / node.max(), g, 0.7, np.empty(18), new, kernels.as_index([0]),
        kernels.as_index([24]), terms, plans.arrays(), kernels.FACTOR_RANGE,
        kernels.NODE_FLOOR,
    )
    assert ok
    step = node * np.exp(-0.7 * np.broadcast_to(
        g[:12].reshape(3, 1, 4) + g[12:16].reshape(1, 1, 4) + g[16:].reshape(1, 2, 1), (3, 2, 4)
    ))
    np.testing.assert_allclose(new, (step / step.max()).ravel(), rtol=1e-12)


SIZES = {"a": 2, "b": 3, "c": 2, "d": 4, "e": 3, "f": 2}
CLIQUES = [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d"), ("e",), ("f",), ("b", "e")]


def _log(dom, seed: int = 0, scale: float = 1.0) -> pgm.MeasurementLog:
    rng = np.random.default_rng(seed)
    log = pgm.MeasurementLog()
    for clique in CLIQUES + [("a",), ("d",)]:
        log.add(clique, rng.uniform(20, 200, dom.size(clique)) * scale, 2.0)
    return log


def _fit(dom, log, **kwargs) -> pgm.TreeFit:
    return pgm.TreeMirrorDescent(dom).estimate(log, iters=400, **kwargs)


def _marginals(fit: pgm.TreeFit) -> np.ndarray:
    return np.concatenate([fit.marginals.vector(c) for c in CLIQUES])


@pytest.fixture
def dom():
    return pgm.domain(SIZES)


def test_multiplicative_steps_give_the_log_space_iterates(dom, monkeypatch) -> None:
    log = _log(dom)
    fast = _fit(dom, log)
    monkeypatch.setattr(estimation, "EXACT_EVERY", 0)  # every step from the log-potentials
    exact = _fit(dom, log)
    # The same Armijo decisions (hence step size), and marginals equal to rounding relative
    # to the total (cells the fit drives to ~1e-12 agree to that, not to 1e-9 of themselves).
    assert fast.step_size == pytest.approx(exact.step_size, rel=1e-12)
    atol = 1e-9 * log.total()
    np.testing.assert_allclose(_marginals(fast), _marginals(exact), rtol=1e-9, atol=atol)


def _tallied_fit(dom, log, **kwargs) -> tuple[pgm.TreeFit, np.ndarray]:
    """A fit, and its iterate's tally [steps, multiplicative proposals, declined]."""
    tallies = []
    original = estimation._TreeIterate.__init__

    def init(self, *args):  # type: ignore[no-untyped-def]
        original(self, *args)
        tallies.append(self.tally)

    estimation._TreeIterate.__init__ = init  # type: ignore[method-assign]
    try:
        fit = _fit(dom, log, **kwargs)
    finally:
        estimation._TreeIterate.__init__ = original  # type: ignore[method-assign]
    (tally,) = tallies
    return fit, tally


def test_a_step_whose_factors_could_underflow_is_taken_in_log_space(dom, monkeypatch) -> None:
    log = _log(dom, seed=1)
    reference, tally = _tallied_fit(dom, log)
    assert tally[0] == 400 and tally[1] > 0 and tally[2] == 0  # nothing declined by default
    # No factor may fall below 1 - 1e-300: every multiplicative step is declined.
    monkeypatch.setattr(kernels, "FACTOR_RANGE", 0.0)
    declined, tally = _tallied_fit(dom, log)
    assert tally[0] == 400 and tally[1] > 0 and tally[2] == tally[1]
    np.testing.assert_allclose(
        _marginals(declined), _marginals(reference), rtol=1e-9, atol=1e-9 * log.total()
    )


def test_steps_large_enough_to_underflow_a_node_still_fit(dom) -> None:
    # Counts in the hundreds of thousands and a large carried step: early factors span far
    # more than exp(-FACTOR_RANGE), so the first steps fall back to log space.
    log = _log(dom, seed=2, scale=1e4)
    fit = _fit(dom, log, step_size=1.0)
    assert np.isfinite(_marginals(fit)).all()
    total = log.total()
    for clique in CLIQUES:
        assert fit.marginals(clique).sum() == pytest.approx(total, rel=1e-9)


def test_tree_engine_still_reproduces_mbi_on_a_forest(dom) -> None:
    log = _log(dom, seed=3)
    fit = _fit(dom, log)
    model = mbi.estimation.MirrorDescent().estimate(
        dom, log.measurements(), known_total=log.total(), iters=400
    )
    for clique in CLIQUES:
        np.testing.assert_allclose(
            fit.marginals(clique), np.asarray(model.project(clique).datavector(flatten=False)),
            rtol=1e-5, atol=1e-5 * log.total(),
        )
