"""Tests of AIM's estimation machinery in `safes_plugins.pgm`: numpy junction trees, mirror
descent engines (against each other and against mbi itself), combined measurements, sampling."""

from __future__ import annotations

import importlib
import itertools

import mbi
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safes_plugins import pgm
from safes_plugins.pgm import kernels

# The module, not the `pgm.domain` function of the same name.
pgm_domain = importlib.import_module("safes_plugins.pgm.domain")

SIZES = {"a": 2, "b": 3, "c": 2, "d": 4, "e": 3, "f": 2}


def _joint(dom, potentials: dict[tuple[str, ...], np.ndarray], total: float) -> np.ndarray:
    """Brute-force joint table of log-potentials over the whole domain."""
    attrs = list(dom.attributes)
    log = np.zeros(tuple(dom[a] for a in attrs))
    for clique, table in potentials.items():
        log = log + pgm.junction_tree._expand_np(table, clique, attrs)
    p = np.exp(log - log.max())
    return p * (total / p.sum())


def _project(joint: np.ndarray, dom, clique: tuple[str, ...]) -> np.ndarray:
    attrs = list(dom.attributes)
    drop = tuple(i for i, a in enumerate(attrs) if a not in clique)
    kept = [a for a in attrs if a in clique]
    out = joint.sum(axis=drop)
    return np.transpose(out, [kept.index(a) for a in clique])


@pytest.fixture
def dom():
    return pgm.domain(SIZES)


# A loop (needs triangulation), a separate component and a lone attribute.
CLIQUES = [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d"), ("e",), ("f",)]


def test_tree_marginals_match_the_brute_force_joint(dom) -> None:
    rng = np.random.default_rng(0)
    potentials = {c: rng.normal(0, 1.5, tuple(SIZES[a] for a in c)) for c in CLIQUES}
    tree = pgm.JunctionTree(dom, CLIQUES)
    theta = np.concatenate([potentials[c].ravel() for c in tree.cliques])
    marginals = pgm.TreeMarginals(tree, tree.tables(tree.calibrate(theta, 1000.0)), 1000.0)
    joint = _joint(dom, potentials, 1000.0)
    for r in (1, 2, 3):
        for clique in itertools.permutations(SIZES, r):
            np.testing.assert_allclose(
                marginals(clique),
                _project(joint, dom, clique),
                rtol=1e-9,
                atol=1e-9,
                err_msg=str(clique),
            )


def test_tree_marginals_read_an_mbi_model(dom) -> None:
    import mbi

    rng = np.random.default_rng(1)
    cliques = [("b", "a"), ("b", "c"), ("d", "e")]  # one clique out of the domain's order
    tables = {c: rng.normal(0, 1, tuple(SIZES[a] for a in c)) for c in cliques}
    potentials = mbi.CliqueVector(
        dom,
        cliques,
        {c: mbi.Factor(mbi.Domain(c, tuple(SIZES[a] for a in c)), tables[c]) for c in cliques},
    )
    # from_model reads the potentials only; the stored marginals are not used.
    model = mbi.MarkovRandomField(potentials=potentials, marginals=potentials, total=500.0)
    ours = pgm.TreeMarginals.from_model(model)
    joint = _joint(dom, tables, 500.0)
    for c in [("a", "b"), ("c", "b"), ("e", "d"), ("a", "e"), ("a", "c", "f")]:
        np.testing.assert_allclose(ours(c), _project(joint, dom, c), rtol=1e-9, atol=1e-9)


def test_measurement_log_combines_by_inverse_variance() -> None:
    log = pgm.MeasurementLog()
    log.add(("a",), np.array([10.0, 20.0]), 2.0)
    log.add(("a",), np.array([14.0, 16.0]), 1.0)
    log.add(("b",), np.array([1.0, 2.0, 3.0]), 3.0)
    y, sigma = log.value(("a",))
    np.testing.assert_allclose(y, [(10 / 4 + 14) / (1 / 4 + 1), (20 / 4 + 16) / (1 / 4 + 1)])
    np.testing.assert_allclose(sigma, (1 / 4 + 1) ** -0.5)
    assert log.cliques == (("a",), ("b",)) and len(log) == 2 and ("b",) in log
    assert len(log.measurements()) == 2


def test_measurement_log_takes_per_cell_noise() -> None:
    log = pgm.MeasurementLog()
    log.add(("a",), np.array([10.0, 20.0, 30.0]), np.array([1.0, 1.0, 2.0]))
    y, sigma = log.value(("a",))
    np.testing.assert_allclose(sigma, [1.0, 1.0, 2.0])
    (m,) = log.measurements()
    # Same loss term as the per-cell stds: ((w * mu - w * y) / s_min)^2, w = s_min / s.
    mu = np.array([11.0, 18.0, 36.0])
    expected = 0.5 * np.sum(((mu - y) / sigma) ** 2)
    q = m.query(mbi.Factor(mbi.Domain(("a",), (3,)), mu))
    got = 0.5 * np.sum(((np.asarray(q) - m.noisy_measurement) / m.stddev) ** 2)
    assert got == pytest.approx(expected)


def _log(dom, seed: int = 0) -> pgm.MeasurementLog:
    rng = np.random.default_rng(seed)
    truth = (
        rng.dirichlet(np.ones(int(np.prod(list(SIZES.values()))))).reshape(tuple(SIZES.values()))
        * 2000
    )
    log = pgm.MeasurementLog()
    for clique in [
        ("a",),
        ("b",),
        ("c",),
        ("d",),
        ("e",),
        ("f",),
        ("a", "b"),
        ("b", "c"),
        ("c", "d"),
        ("a", "d"),
        ("d", "e"),
        ("b", "c"),
    ]:
        counts = _project(truth, dom, clique).ravel()
        sigma = float(rng.choice([5.0, 10.0]))
        log.add(clique, counts + rng.normal(0, sigma, counts.size), sigma)
    return log


def test_tree_and_dense_mirror_descent_give_the_same_iterates(dom) -> None:
    # Same algorithm, two representations: identical iterates (until, after many more
    # iterations, rounding flips a borderline line-search decision).
    log = _log(dom)
    everything = [c for r in (1, 2) for c in itertools.combinations(SIZES, r)]
    tree = pgm.TreeMirrorDescent(dom).estimate(log, iters=150)
    dense = pgm.DenseMirrorDescent(dom, everything).estimate(log, iters=150)
    assert tree.step_size == pytest.approx(dense.step_size, rel=1e-12)
    for clique in everything:
        np.testing.assert_allclose(
            tree.marginals(clique),
            dense.marginals(clique),
            rtol=1e-7,
            atol=1e-7,
            err_msg=str(clique),
        )


def test_warm_start_continues_where_the_last_fit_stopped(dom) -> None:
    log = _log(dom, seed=2)
    md = pgm.TreeMirrorDescent(dom)
    first = md.estimate(log, iters=100)
    warm = md.estimate(log, iters=100, warm_start=first, step_size=first.step_size)
    straight = md.estimate(log, iters=200)
    for clique in [("a", "b"), ("d", "e")]:
        np.testing.assert_allclose(warm.marginals(clique), straight.marginals(clique), rtol=1e-9)


def test_tol_stops_early(dom) -> None:
    log = _log(dom, seed=3)
    md = pgm.TreeMirrorDescent(dom)
    loose = md.estimate(log, iters=5000, tol=1e-3)
    tight = md.estimate(log, iters=5000, tol=1e-6)
    # Whole blocks of CALLBACK_EVERY steps, at least the two the rule compares.
    assert 2 * 50 <= loose.iterations < tight.iterations < 5000
    assert loose.iterations % 50 == 0


@pytest.mark.slow
def test_numpy_engines_reproduce_mbi_mirror_descent(dom) -> None:
    # mbi (JAX) compiles its program here: slow on a small CPU, hence marked slow.
    log = _log(dom, seed=4)
    ours = pgm.TreeMirrorDescent(dom).estimate(log, iters=200)
    theirs = pgm.estimate_graph(dom, log, iters=200)
    reference = pgm.TreeMarginals.from_model(theirs)
    for clique in [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d"), ("d", "e"), ("f",)]:
        np.testing.assert_allclose(
            ours.marginals(clique), reference(clique), rtol=1e-6, atol=1e-6, err_msg=str(clique)
        )


def test_sampling_follows_the_model_and_the_given_generator_only(dom) -> None:
    rng = np.random.default_rng(5)
    potentials = {c: rng.normal(0, 1.0, tuple(SIZES[a] for a in c)) for c in CLIQUES}
    tree = pgm.JunctionTree(dom, CLIQUES)
    theta = np.concatenate([potentials[c].ravel() for c in tree.cliques])
    marginals = pgm.TreeMarginals(tree, tree.tables(tree.calibrate(theta, 1.0)), 1.0)
    state = np.random.get_state()  # noqa: NPY002  (checking it is left alone)
    rows = pgm.sample_tree(marginals, 40_000, np.random.default_rng(0))
    assert np.array_equal(np.random.get_state()[1], state[1])  # noqa: NPY002
    again = pgm.sample_tree(marginals, 40_000, np.random.default_rng(0))
    assert all(np.array_equal(rows[a], again[a]) for a in SIZES)
    for clique in [("a", "b"), ("a", "c"), ("c", "d"), ("e", "f")]:
        shape = tuple(SIZES[a] for a in clique)
        counts = (
            np.bincount(
                np.ravel_multi_index(tuple(rows[a] for a in clique), shape),
                minlength=int(np.prod(shape)),
            )
            / 40_000
        )
        assert 0.5 * np.abs(counts - marginals.vector(clique)).sum() < 0.02, clique


def test_model_size_cache_matches_mbi(dom) -> None:
    cache = pgm.ModelSizeCache(dom)
    measured = [("a", "b"), ("b", "c"), ("a",)]
    for extra in [("c", "d"), ("a", "c"), ("e",)]:
        assert cache.size_with(measured, extra) == pgm.model_size_mb(
            dom, [("a", "b"), ("b", "c"), extra]
        )
        assert cache.size_with(measured, extra) == cache.size_with(measured[::-1], extra)


def test_inverse_std_weighting_is_mbi_1_0s_loss() -> None:
    # mbi 1.0's estimation loss weights each measurement's squared residual by 1 / sigma; the
    # combined term must equal the sum of the separate terms up to a constant.
    rng = np.random.default_rng(4)
    y1, y2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = 2.0, 5.0
    log = pgm.MeasurementLog("inverse_std")
    log.add(("a", "b"), y1, s1)
    log.add(("a", "b"), y2, s2)
    ybar, sd = log.value(("a", "b"))
    w = log.loss_weights()
    np.testing.assert_allclose(w, 1 / s1 + 1 / s2)
    np.testing.assert_allclose(ybar, (y1 / s1 + y2 / s2) / (1 / s1 + 1 / s2))
    np.testing.assert_allclose(sd, np.sqrt(2.0) / (1 / s1 + 1 / s2))  # std of that mean

    def separate(mu: np.ndarray) -> float:
        return float(((mu - y1) ** 2).sum() / s1 + ((mu - y2) ** 2).sum() / s2)

    mu_a, mu_b = rng.normal(size=6), rng.normal(size=6)
    combined = [float((w * (mu - ybar) ** 2).sum()) for mu in (mu_a, mu_b)]
    assert separate(mu_a) - separate(mu_b) == pytest.approx(combined[0] - combined[1])
    default = pgm.MeasurementLog()
    default.add(("a", "b"), y1, s1)
    np.testing.assert_allclose(default.loss_weights(), 1 / s1**2)


SIZER_SIZES = {"a": 7, "b": 3, "c": 11, "d": 2, "e": 5, "f": 13, "g": 4, "h": 6}
SIZER_CHAIN = list(itertools.pairwise(SIZER_SIZES))  # a tree


def _random_clique_sets(seed: int, count: int):  # type: ignore[no-untyped-def]
    """`count` random sets of 1-8 pairs and triples of SIZER_SIZES's columns, half of them
    with every one-way marginal too."""
    rng = np.random.default_rng(seed)
    names = list(SIZER_SIZES)
    pool = list(itertools.combinations(names, 2)) + list(itertools.combinations(names, 3))
    for _ in range(count):
        picks = [pool[i] for i in rng.choice(len(pool), rng.integers(1, 9), replace=False)]
        yield [(a,) for a in names] + picks if rng.random() < 0.5 else picks


def test_junction_tree_sizer_matches_mbi_on_random_clique_sets() -> None:
    dom = pgm.domain(SIZER_SIZES)
    sizer = pgm.JunctionTreeSizer(dom)
    for picks in _random_clique_sets(3, 150):
        assert sizer.size_mb(picks) == pgm.model_size_mb(dom, picks), picks
    assert sizer.size_mb(SIZER_CHAIN) == pgm.model_size_mb(dom, SIZER_CHAIN)  # its own tree


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 9), min_size=2, max_size=11),
    data=st.data(),
)
def test_compiled_sizer_matches_the_python_one(sizes, data) -> None:
    names = [f"x{j}" for j in range(len(sizes))]
    sizer = pgm.JunctionTreeSizer(pgm.domain(dict(zip(names, sizes, strict=True))))
    cliques = data.draw(st.lists(
        st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True).map(
            lambda c: tuple(sorted(c, key=names.index))
        ),
        min_size=1, max_size=10,
    ))
    adj, present = sizer.graph(cliques)
    assert sizer.cells_of_graph(list(adj), present) == sizer._cells_of_graph(list(adj), present)


def test_elimination_order_is_mbis_greedy_order() -> None:
    from mbi import junction_tree as mbi_junction_tree

    dom = pgm.domain(SIZER_SIZES)
    sizer = pgm.JunctionTreeSizer(dom)
    for picks in _random_clique_sets(8, 100):
        expected = mbi_junction_tree.greedy_order(dom, picks)[0]
        assert sizer.elimination_order(picks) == expected, picks
    assert sizer.elimination_order(SIZER_CHAIN) is None  # a tree: mbi orders it itself


def test_clique_routes_are_mbis_clique_mapping() -> None:
    sizes = {"a": 7, "b": 3, "c": 11, "d": 2, "e": 5, "f": 13}
    dom = pgm.domain(sizes)
    rng = np.random.default_rng(9)
    names = list(sizes)
    pool = [c for r in (1, 2, 3) for c in itertools.combinations(names, r)]
    for _ in range(60):
        cliques = [pool[i] for i in rng.choice(len(pool), rng.integers(2, 12), replace=False)]
        maximal = mbi.clique_utils.maximal_subset(cliques)
        asked = cliques + [pool[i] for i in rng.choice(len(pool), 5)]
        assert pgm_domain.clique_routes(maximal, asked, dom) == (
            mbi.clique_utils.clique_mapping(maximal, asked, dom)
        )


def test_compiled_sizer_saturates_beyond_any_model() -> None:
    names = [f"x{j}" for j in range(30)]
    sizer = pgm.JunctionTreeSizer(pgm.domain(dict.fromkeys(names, 1000)))
    exact = sizer._cells_of_graph(*sizer.graph([tuple(names)]))
    assert exact == 1000**30
    assert sizer.cells([tuple(names)]) == kernels.CELLS_CAP
    five = [tuple(names[:5])]
    assert sizer.cells(five) == sizer._cells_of_graph(*sizer.graph(five)) < kernels.CELLS_CAP


def _compiled_calibration(tree: pgm.JunctionTree, phi: np.ndarray, total: float) -> np.ndarray:
    """The compiled kernels' node marginals for node log-potentials `phi`."""
    compiled = tree.compiled
    probs = np.empty_like(phi)
    kernels.exponentiate(phi, compiled.starts, compiled.sizes, probs)
    return compiled.calibrate(probs, np.empty_like(phi), total)


def test_compiled_message_passing_matches_log_space_calibration(dom) -> None:
    tree = pgm.JunctionTree(dom, CLIQUES)
    rng = np.random.default_rng(0)
    for rescale in (False, True):  # messages rescaled only for trees of very many cells
        tree.__dict__.pop("compiled", None)
        tree._rescale = rescale
        for scale in (0.1, 5.0, 60.0):
            theta = rng.normal(0, scale, tree.clique_offsets[tree.cliques[-1]][1])
            np.testing.assert_allclose(
                _compiled_calibration(tree, tree.node_potentials(theta), 1234.0),
                tree.calibrate(theta, 1234.0),
                rtol=1e-9, atol=1e-9 * 1234.0,
            )


def test_column_draws_round_each_group_to_within_one_of_its_expectation() -> None:
    rng = np.random.default_rng(1)
    cond = rng.dirichlet(np.ones(5), size=7)
    groups = rng.integers(0, 7, 5000)
    drawn = pgm.sampling._draw_column(groups, cond, np.random.default_rng(2))
    counts = np.zeros((7, 5))
    np.add.at(counts, (groups, drawn), 1)
    expected = np.bincount(groups, minlength=7)[:, None] * cond
    assert np.abs(counts - expected).max() < 1.0 + 1e-9
    again = pgm.sampling._draw_column(groups, cond, np.random.default_rng(2))
    assert np.array_equal(drawn, again)
    # Within a group the codes land in random order, not in row order.
    first = drawn[groups == 0]
    assert not np.all(np.diff(first) >= 0)


def test_work_bound_caps_iterations_by_model_cells(dom) -> None:
    log = pgm.MeasurementLog()
    rng = np.random.default_rng(0)
    for clique in CLIQUES:
        size = int(np.prod([SIZES[a] for a in clique]))
        log.add(clique, rng.uniform(50, 150, size), 1.0)
    engine = pgm.TreeMirrorDescent(dom)
    tree = engine.tree(tuple(tuple(dom.canonical(c)) for c in mbi.clique_utils.maximal_subset(
        list(log.cliques))))
    cells = tree.offsets[tree.nodes[-1]][1]
    assert engine.estimate(log, iters=500, max_work=7 * cells).iterations == 7
    assert engine.estimate(log, iters=500, max_work=0.5 * cells).iterations == 1
    assert engine.estimate(log, iters=60).iterations == 60


def test_measurement_log_total_and_lipschitz_are_mbis(dom) -> None:
    from mbi import estimation as mbi_estimation
    from mbi import marginal_loss

    log = _log(dom)
    log.add(("d",), np.arange(4.0), np.array([1.0, 1.0, 2.0, 3.0]))  # a weighted query
    assert log.total() == mbi_estimation.minimum_variance_unbiased_total(log.measurements())
    assert log.lipschitz(dom) == marginal_loss.calculate_l2_lipschitz_from_metadata(
        dom, log.measurements()
    )


def test_node_potentials_split_any_way_give_the_same_calibration(dom) -> None:
    tree = pgm.JunctionTree(dom, CLIQUES)
    rng = np.random.default_rng(4)
    theta = rng.normal(0, 3.0, tree.clique_offsets[tree.cliques[-1]][1])
    phi = tree.node_potentials(theta)
    # A term over ('a', 'c') moved from one node containing it to another: same joint.
    first, second = [n for n in tree.nodes if {"a", "c"} <= set(n)]
    term = rng.normal(0, 1.0, (2, 2))
    moved = phi.copy()
    for node, sign in ((first, 1.0), (second, -1.0)):
        view = moved[slice(*tree.offsets[node])].reshape(tree.shapes[node])
        view += sign * pgm.junction_tree._expand_np(term, ("a", "c"), node)
    np.testing.assert_allclose(
        _compiled_calibration(tree, moved, 100.0), tree.calibrate(theta, 100.0),
        rtol=1e-9, atol=1e-9,
    )
