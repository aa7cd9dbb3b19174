"""Tests of the MST plugin and its numpy junction-tree engine."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from safes_plugins import pgm
from safes_plugins.synthesizers.mst import _decompress, _simplex_fit, _support_mapping

import safes_framework
from safes_framework import Categorical, SafesChain, Schema
from safes_framework.errors import ConfigError, SmallTableWarning
from safes_framework.plugins import PluginManager
from safes_framework.testing import toy_schema, toy_table


def _run(df: pd.DataFrame, schema: Schema, epsilon: float, seed: int, **kw: object):
    synth = safes_framework.synthesizer("mst", epsilon=epsilon, delta=1e-9, **kw)
    pm = PluginManager(load_entrypoints=False)
    return SafesChain(synth, seed=seed, plugin_manager=pm).run(df, schema), synth


def _tvd2(a: pd.DataFrame, b: pd.DataFrame, schema: Schema) -> float:
    ca, cb = schema.encode_array(a), schema.encode_array(b)
    sizes = list(schema.sizes.values())
    out = []
    for i, j in itertools.combinations(range(len(sizes)), 2):
        shape = (sizes[i], sizes[j])
        p = np.bincount(np.ravel_multi_index((ca[:, i], ca[:, j]), shape), minlength=np.prod(shape))
        q = np.bincount(np.ravel_multi_index((cb[:, i], cb[:, j]), shape), minlength=np.prod(shape))
        out.append(0.5 * np.abs(p / p.sum() - q / q.sum()).sum())
    return float(np.mean(out))


def test_ledger_ends_at_the_requested_epsilon_and_never_above() -> None:
    for eps in (0.1, 1.0, 5.0):
        release, _ = _run(toy_table(500), toy_schema(), eps, seed=0)
        assert release.privacy.epsilon <= eps * (1 + 1e-9)
        assert release.privacy.epsilon == pytest.approx(eps, abs=1e-6)


def test_spanning_tree_has_d_minus_1_edges() -> None:
    _, synth = _run(toy_table(500), toy_schema(), 1.0, seed=1)
    assert len(synth.cliques_) == len(toy_schema().names) - 1
    nodes = {a for c in synth.cliques_ for a in c}
    assert nodes == set(toy_schema().names)


def test_error_falls_as_epsilon_grows() -> None:
    df, schema = toy_table(4000, seed=3), toy_schema()
    low = np.mean([_tvd2(df, _run(df, schema, 0.05, seed=s)[0].data, schema) for s in range(3)])
    high = np.mean([_tvd2(df, _run(df, schema, 20.0, seed=s)[0].data, schema) for s in range(3)])
    assert high < 0.5 * low


def test_tiny_inputs_work() -> None:
    schema = toy_schema()
    one_row = toy_table(1)
    with pytest.warns(SmallTableWarning, match="single record"):
        release, synth = _run(one_row, schema, 1.0, seed=0)
    assert len(release.data) == max(1, round(synth.estimated_rows())) >= 1
    constant = toy_table(300).assign(race=1)
    release, _ = _run(constant, schema, 1.0, seed=0)
    schema.validate(release.data)
    single = Schema((Categorical("g", ("only",)), Categorical("y", (0, 1))), ("g",), "y", 1)
    release, _ = _run(pd.DataFrame({"g": ["only"] * 50, "y": [0, 1] * 25}), single, 1.0, 0)
    assert (release.data["g"] == "only").all()


def test_bad_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="iters"):
        safes_framework.synthesizer("mst", epsilon=1.0, delta=1e-9, iters=0)
    with pytest.raises(ConfigError, match="epsilon"):
        safes_framework.synthesizer("mst", epsilon=-1.0, delta=1e-9)


def test_compression_merges_rare_codes_and_decompresses_inside_their_preimage() -> None:
    mapping = _support_mapping(np.array([100.0, 2.0, 50.0, -3.0]), threshold=10.0)
    assert mapping.tolist() == [0, 2, 1, 2]
    assert _support_mapping(np.array([100.0, 50.0]), threshold=10.0) is None
    codes = _decompress(np.array([0, 1, 2, 2, 2, 2]), mapping, np.random.default_rng(0))
    assert codes[:2].tolist() == [0, 2] and set(codes[2:]) <= {1, 3}


def test_simplex_fit_is_the_weighted_projection() -> None:
    y, w = np.array([5.0, -1.0, 3.0]), np.array([1.0, 1.0, 0.25])
    x = _simplex_fit(y, w, total=6.0)
    assert x.sum() == pytest.approx(6.0) and (x >= 0).all()
    # KKT: x_i = max(0, y_i - lam / w_i) for one lam
    lam = (y[0] - x[0]) * w[0]
    assert x[2] == pytest.approx(max(0.0, y[2] - lam / w[2]))


def _brute_force_fit(sizes, log, total):
    """The MST loss minimised over the full joint table (softmax parameters, L-BFGS)."""
    from scipy.optimize import minimize

    shape = tuple(sizes.values())
    names = list(sizes)
    terms = [(c, *log.value(c)) for c in log.cliques]

    def loss_grad(theta):
        p = np.exp(theta - theta.max())
        p /= p.sum()
        mu = (p * total).reshape(shape)
        loss, g_mu = 0.0, np.zeros(shape)
        for clique, y, sd in terms:
            drop = tuple(i for i, a in enumerate(names) if a not in clique)
            d = (mu.sum(axis=drop).ravel() - y) / sd
            loss += 0.5 * d @ d
            g = (d / sd).reshape([sizes[a] for a in clique])
            g_mu = g_mu + g.reshape([sizes[a] if a in clique else 1 for a in names])
        g_mu = g_mu.ravel() * total
        return loss, p * (g_mu - p @ g_mu)

    res = minimize(
        loss_grad,
        np.zeros(int(np.prod(shape))),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 5000, "gtol": 1e-10, "ftol": 1e-14},
    )
    p = np.exp(res.x - res.x.max())
    return (p / p.sum() * total).reshape(shape)


def test_engine_with_per_cell_noise_matches_a_brute_force_fit() -> None:
    """MST's compressed one-way measurements carry per-cell noise; the fit must honour it."""
    rng = np.random.default_rng(0)
    sizes = {"a": 3, "b": 2, "c": 4}
    truth = rng.dirichlet(np.ones(24)).reshape(3, 2, 4) * 1000
    log = pgm.MeasurementLog()
    for c in [("a", "b"), ("b", "c")]:
        counts = truth.sum(axis=tuple(i for i, a in enumerate("abc") if a not in c)).ravel()
        log.add(c, counts + rng.normal(0, 5, counts.size), 5.0)
    counts = truth.sum(axis=(1, 2))
    log.add(("a",), counts + rng.normal(0, 5, 3), np.array([5.0, 5.0, 20.0]))
    fit = pgm.TreeMirrorDescent(pgm.domain(sizes)).estimate(log, iters=3000)
    ref = _brute_force_fit(sizes, log, log.total())
    np.testing.assert_allclose(fit.marginals(("b", "c")), ref.sum(axis=0), atol=0.5)
    np.testing.assert_allclose(fit.marginals(("a",)), ref.sum(axis=(1, 2)), atol=0.5)
