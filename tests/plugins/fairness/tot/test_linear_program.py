"""TOT's optimum: hand-solved cases, an independent dense formulation, AIF360's Adult figure."""

from __future__ import annotations

import itertools

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from safes_plugins.fairness.tot import TOT, solvers
from safes_plugins.fairness.tot.distortion import (
    FORBIDDEN,
    Distortion,
    FunctionDistortion,
    Moves,
    Ordinal,
)
from safes_plugins.fairness.tot.linear_program import Targets, TotProgram
from safes_plugins.fairness.tot.solvers import solve, solve_highs_colgen

from safes_framework import datasets
from safes_framework.errors import ConfigError, InfeasibleError, SolverError
from safes_framework.schema import Categorical, Integer, Schema
from safes_framework.testing import toy_schema, toy_table

# -- a case solved by hand -----------------------------------------------------------------------
# Two groups of 50 rows, no feature, a binary label: P(1 | A) = 0.6, P(1 | B) = 0.2. Only
# 1 -> 0 flips are allowed. Lowering A's rate by a and B's by b costs TV = (a + b) / 2 and the
# difference bound needs a - b >= 0.4 - eta: optimum (0.4 - eta) / 2.

HAND = Schema(
    columns=(Categorical("g", ("A", "B")), Categorical("y", (0, 1))),
    protected=("g",),
    label="y",
    favorable=1,
)


def hand_table() -> pd.DataFrame:
    return pd.DataFrame(
        {"g": ["A"] * 50 + ["B"] * 50, "y": [1] * 30 + [0] * 20 + [1] * 10 + [0] * 40}
    )


def down_only(flip_cost: float = 0.0) -> Distortion:
    return Distortion((Moves("y", {(0, 1): FORBIDDEN, (1, 0): flip_cost}),))


@pytest.mark.parametrize("eta, optimum", [(0.2, 0.1), (0.0, 0.2), (0.35, 0.025), (0.5, 0.0)])
def test_hand_solved_optimum(eta: float, optimum: float) -> None:
    tot = TOT(eta, distortion=down_only(), clist=(), dlist=()).fit(hand_table(), HAND)
    assert tot.objective_value_ == pytest.approx(optimum, abs=1e-9)
    assert tot.status_ == "optimal"


def test_hand_solved_infeasibility_names_the_smallest_feasible_eta() -> None:
    # Flips cost 1 and are bounded by 0.2 on average over groups given y = 1, where
    # p(A | y=1) = 0.75: A's flip probability <= 0.2667, a <= 0.16, so eta >= 0.24.
    tot = TOT(0.2, distortion=down_only(1.0), clist=(0.99,), dlist=(0.2,))
    with pytest.raises(InfeasibleError, match=r"smallest feasible eta is 0\.24\b") as info:
        tot.fit(hand_table(), HAND)
    assert "discrimination" in str(info.value) and "raise the non-zero dlist" in str(info.value)
    ok = TOT(0.24 + 1e-7, distortion=down_only(1.0), clist=(0.99,), dlist=(0.2,))
    assert ok.fit(hand_table(), HAND).objective_value_ == pytest.approx(0.08, abs=1e-6)
    # Per group the bound is on A itself: a <= 0.6 * 0.2 = 0.12, eta >= 0.28.
    per = TOT(0.2, distortion=down_only(1.0), clist=(0.99,), dlist=(0.2,), per_group=True)
    with pytest.raises(InfeasibleError, match=r"smallest feasible eta is 0\.28\b"):
        per.fit(hand_table(), HAND)


def test_infeasibility_from_forbidden_moves_says_dlist_cannot_help() -> None:
    no_moves = Distortion((Moves("y", change=FORBIDDEN),))
    with pytest.raises(InfeasibleError, match="does not help") as info:
        TOT(0.1, distortion=no_moves, clist=(0.99,), dlist=(0.1,)).fit(hand_table(), HAND)
    assert "smallest feasible eta is 0.4" in str(info.value)


# -- an independent dense formulation (AIF360's OptimPreproc problem, written with cvxpy) ---------


def dense_optimum(
    df: pd.DataFrame,
    schema: Schema,
    dist: np.ndarray,
    eta: float,
    constraint: str,
    clist,
    dlist,
    smoothing: float = 0.0,
) -> float:
    """The problem as AIF360's OptTools states it: a full |DXY| x |XY| map, marginals by masks.

    `smoothing` is AIF360's 1e-10 added to p(d, x, y) and p(x, y) in the distortion rows.
    """
    d_cols = list(schema.protected)
    xy_cols = [c for c in schema.names if c not in d_cols and c != schema.label] + [schema.label]
    codes = schema.encode(df)
    d_sizes = [schema[c].size for c in d_cols]
    xy_sizes = [schema[c].size for c in xy_cols]
    nD, nXY = int(np.prod(d_sizes)), int(np.prod(xy_sizes))
    g = np.ravel_multi_index(codes[d_cols].to_numpy().T, d_sizes)
    c = np.ravel_multi_index(codes[xy_cols].to_numpy().T, xy_sizes)
    pdxy = np.bincount(g * nXY + c, minlength=nD * nXY) / len(df)
    pxy = pdxy.reshape(nD, nXY).sum(axis=0)
    pd_ = pdxy.reshape(nD, nXY).sum(axis=1)
    ylab = np.arange(nXY) % xy_sizes[-1]
    py = np.bincount(ylab, weights=pxy, minlength=xy_sizes[-1])
    P = cp.Variable((nD * nXY, nXY), nonneg=True)
    cons = [cp.sum(P, axis=1) == 1]
    q = pdxy @ P
    obj = cp.Minimize(cp.norm1(q - pxy) / 2)
    ymask = np.stack([(ylab == y).astype(float) for y in range(xy_sizes[-1])], axis=1)
    groups = [k for k in range(nD) if pd_[k] > 0]
    Q = {
        k: (pdxy[k * nXY : (k + 1) * nXY] / pd_[k]) @ P[k * nXY : (k + 1) * nXY, :] @ ymask
        for k in groups
    }
    if constraint == "difference":
        for k, k2 in itertools.combinations(groups, 2):
            cons += [Q[k] - Q[k2] <= eta, Q[k2] - Q[k] <= eta]
    else:
        for k in groups:
            cons += [Q[k] <= py * (1 + eta), Q[k] >= py * (1 - eta)]
    # AIF360's Pxy_xhyh = diag(1 / p(x, y)) Mask' diag(p(d, x, y)) P: the conditional
    # averaged over groups, one row per (x, y).
    num = (pdxy + smoothing).reshape(nD, nXY)
    den = pxy + smoothing
    w = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    avg = np.hstack([np.diag(w[k]) for k in range(nD)]) @ P
    for ck, dk in zip(clist, dlist, strict=True):
        cons.append(cp.sum(cp.multiply((dist >= ck).astype(float), avg), axis=1) <= dk)
    prob = cp.Problem(obj, cons)
    prob.solve(solver=cp.HIGHS)
    assert prob.status == "optimal", prob.status
    return float(prob.value)


TOY_DIST = Distortion(
    (Ordinal("edu", up=(1.0, 3.0), down=(2.0, 3.0)), Moves("income", {(1, 0): 1.0})),
    combine="max",
)


@pytest.mark.parametrize(
    "constraint, eta", [("difference", 0.02), ("difference", 0.08), ("ratio", 0.1), ("ratio", 0.3)]
)
def test_optimum_equals_an_independent_dense_formulation(constraint: str, eta: float) -> None:
    schema, df = toy_schema(), toy_table(600, seed=3)
    df = df[~((df.edu == 4) & (df.income == 0))]  # an empty (x, y) cell
    tot = TOT(eta, distortion=TOY_DIST, constraint=constraint).fit(df, schema)
    dist = TOY_DIST.matrix(schema, ("edu", "income"))
    want = dense_optimum(df, schema, dist, eta, constraint, tot.clist, tot.dlist)
    assert tot.objective_value_ == pytest.approx(want, abs=1e-6)


def test_aggregated_and_full_formulations_agree_on_adult() -> None:
    train, _ = datasets.train_test_split("adult")
    tot = TOT(0.025, distortion="adult").fit(train, datasets.schema("adult"))
    p = tot.program_
    assert p.aggregate
    full = TotProgram(
        p.cells, p.targets, p.constraint, p.thresholds, p.bounds, False, aggregate=False
    )
    lp, _ = full.lp(0.025)
    res = solve(lp, "highs")
    assert res.objective == pytest.approx(tot.objective_value_, abs=1e-9)
    assert tot.n_variables_ < lp.shape[1] / 2


# -- the paper's data ---------------------------------------------------------------------------


def test_adult_difference_eta_0025_is_aif360s_exact_optimum() -> None:
    # AIF360's OptimPreproc (interior point) reports 0.0249224; the exact LP optimum is 0.0249216.
    train, _ = datasets.train_test_split("adult")
    tot = TOT(0.025, distortion="adult").fit(train, datasets.schema("adult"))
    assert tot.objective_value_ == pytest.approx(0.0249216, abs=1e-6)
    assert tot.discrimination_ <= 0.025 + 1e-9


def test_compas_at_eta_005_is_infeasible() -> None:
    train, _ = datasets.train_test_split("compas")
    with pytest.raises(InfeasibleError, match="smallest feasible eta is 0.0687"):
        TOT(0.05, distortion="compas").fit(train, datasets.schema("compas"))


@pytest.mark.slow
@pytest.mark.parametrize("name, eta", [("adult", 0.025), ("compas", 0.08)])
def test_bundled_optimum_equals_aif360s_dense_problem_with_its_smoothing(
    name: str, eta: float
) -> None:
    train, _ = datasets.train_test_split(name)
    schema = datasets.schema(name)
    tot = TOT(eta, distortion=name).fit(train, schema)
    xy = tot.xy_columns_
    want = dense_optimum(
        train,
        schema,
        tot.distortion_.matrix(schema, xy),
        eta,
        "difference",
        tot.clist,
        tot.dlist,
        smoothing=1e-10,
    )
    assert tot.objective_value_ == pytest.approx(want, abs=1e-6)


def test_clarabel_agrees_with_highs() -> None:
    train, _ = datasets.train_test_split("compas")
    schema = datasets.schema("compas")
    a = TOT(0.08, distortion="compas").fit(train, schema)
    b = TOT(0.08, distortion="compas", solver="clarabel").fit(train, schema)
    assert b.objective_value_ == pytest.approx(a.objective_value_, abs=1e-6)
    assert "CLARABEL" in b.solver_ and "HiGHS" in a.solver_


# -- solver failure is not infeasibility --------------------------------------------------------


def test_solver_failure_raises_solver_error_naming_the_solver_and_an_alternative() -> None:
    schema, df = toy_schema(), toy_table(600, seed=3)
    tot = TOT(
        0.02, distortion=TOY_DIST, solver_options={"simplex_iteration_limit": 0, "presolve": "off"}
    )
    with pytest.raises(SolverError, match=r"HiGHS.*failed.*not a proof of infeasibility.*clarabel"):
        tot.fit(df, schema)


def test_clarabel_failure_suggests_highs() -> None:
    schema, df = toy_schema(), toy_table(600, seed=3)
    tot = TOT(0.02, distortion=TOY_DIST, solver="clarabel", solver_options={"max_iter": 1})
    with pytest.raises(SolverError, match=r"CLARABEL.*highs"):
        tot.fit(df, schema)


def test_integer_domain_columns_and_unobserved_values() -> None:
    schema = Schema(
        columns=(Categorical("d", (0, 1)), Integer("x", 0, 6), Categorical("y", (0, 1))),
        protected=("d",),
        label="y",
        favorable=1,
    )
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"d": rng.integers(0, 2, 300), "x": rng.integers(1, 4, 300)})
    df["y"] = (rng.random(300) < 0.2 + 0.3 * df.d).astype(int)
    dist = Distortion((Ordinal("x", up=(1.0, 3.0)), Moves("y", change=1.0)), combine="sum")
    tot = TOT(0.12, distortion=dist).fit(df, schema)
    want = dense_optimum(
        df, schema, dist.matrix(schema, ("x", "y")), 0.12, "difference", tot.clist, tot.dlist
    )
    assert tot.objective_value_ == pytest.approx(want, abs=1e-6)


def test_pruning_dominated_moves_keeps_the_optimum() -> None:
    schema, df = toy_schema(), toy_table(400, seed=11)
    df = df[df.edu < 3]  # edu 3 and 4 unobserved: moves there are dominated or needed
    tot = TOT(0.05, distortion=TOY_DIST).fit(df, schema)
    p = tot.program_
    src = np.repeat(np.arange(len(p.cells.source_cell)), np.diff(p.targets.ptr))
    spec_src, codes, cost = TOY_DIST.targets(schema, tot.xy_columns_, p.cells.source_codes, 2.99)
    full = Targets.build(p.cells, spec_src, codes, cost, tot.cell_sizes_, prune=False)
    assert len(full.cell) > len(src)  # something was pruned
    prog = TotProgram(p.cells, full, p.constraint, p.thresholds, p.bounds, False)
    res = solve(prog.lp(0.05)[0], "highs")
    assert res.objective == pytest.approx(tot.objective_value_, abs=1e-9)


def test_a_cell_without_any_allowed_move_is_named() -> None:
    stuck = Distortion((Moves("y", change=FORBIDDEN),), name="stuck")
    assert TOT(0.5, distortion=stuck, clist=(), dlist=()).fit(hand_table(), HAND)
    everything = FunctionDistortion(lambda old, new: FORBIDDEN)
    with pytest.raises(InfeasibleError, match=r"cell \{'y': \d\} has no allowed move"):
        TOT(0.5, distortion=everything, clist=(), dlist=()).fit(hand_table(), HAND)


@pytest.mark.parametrize("constraint, eta", [("difference", 0.08), ("ratio", 0.3)])
def test_three_valued_label_matches_the_dense_formulation(constraint: str, eta: float) -> None:
    schema = Schema(
        columns=(
            Categorical("d", (0, 1)),
            Integer("x", 0, 3),
            Categorical("y", ("lo", "mid", "hi")),
        ),
        protected=("d",),
        label="y",
        favorable="hi",
    )
    rng = np.random.default_rng(1)
    d = rng.integers(0, 2, 500)
    mid_or_lo = np.where(rng.random(500) < 0.5, "mid", "lo")
    y = np.where(rng.random(500) < 0.2 + 0.25 * d, "hi", mid_or_lo)
    df = pd.DataFrame({"d": d, "x": rng.integers(0, 4, 500), "y": y})
    dist = Distortion((Ordinal("x", up=(1.0, 3.0)), Moves("y", change=1.0)), combine="max")
    tot = TOT(eta, distortion=dist, constraint=constraint).fit(df, schema)
    assert tot.program_.aggregate and tot.program_.L == 3
    want = dense_optimum(
        df, schema, dist.matrix(schema, ("x", "y")), eta, constraint, tot.clist, tot.dlist
    )
    assert tot.objective_value_ == pytest.approx(want, abs=1e-6)
    assert tot.discrimination_ <= eta + 1e-7


# -- column generation --------------------------------------------------------------------------


@pytest.mark.parametrize("aggregate", [True, False])
@pytest.mark.parametrize("eta", [0.025, None])
def test_column_generation_reaches_the_full_programs_optimum(
    aggregate: bool, eta: float | None
) -> None:
    train, _ = datasets.train_test_split("adult")
    p = TOT(0.025, distortion="adult").fit(train, datasets.schema("adult")).program_
    prog = TotProgram(
        p.cells, p.targets, p.constraint, p.thresholds, p.bounds, False, aggregate=aggregate
    )
    lp, _ = prog.lp(eta)
    seed = prog.seed_columns(lp.shape[1])
    assert 0 < seed.sum() < lp.shape[1]
    full = solve(lp, "highs")
    cg = solve_highs_colgen(lp, seed)
    assert cg.status == full.status == "optimal"
    assert cg.objective == pytest.approx(full.objective, abs=1e-9)
    assert lp.violation(cg.x).max() <= 1e-9
    assert "column generation" in cg.detail


def test_column_generation_in_fit_keeps_the_optimum_and_infeasibility(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    train, _ = datasets.train_test_split("adult")
    schema = datasets.schema("adult")
    want = TOT(0.025, distortion="adult").fit(train, schema)
    monkeypatch.setattr(solvers, "COLGEN_ABOVE", 0)
    calls = []

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return solve_highs_colgen(*args, **kwargs)

    monkeypatch.setattr(solvers, "solve_highs_colgen", spy)
    got = TOT(0.025, distortion="adult").fit(train, schema)
    assert calls and got.objective_value_ == pytest.approx(want.objective_value_, abs=1e-9)
    compas, _ = datasets.train_test_split("compas")
    with pytest.raises(InfeasibleError, match="0.0687507"):
        TOT(0.05, distortion="compas").fit(compas, datasets.schema("compas"))


# -- the choice among optimal maps ----------------------------------------------------------------


@pytest.mark.parametrize("name, eta", [("compas", 0.15), ("compas", 0.08), ("adult", 0.1)])
def test_released_map_is_the_same_with_highs_and_clarabel(name: str, eta: float) -> None:
    train, _ = datasets.train_test_split(name)
    schema = datasets.schema(name)
    highs = TOT(eta, distortion=name).fit(train, schema)
    clarabel = TOT(eta, distortion=name, solver="clarabel").fit(train, schema)
    vertex = TOT(eta, distortion=name, choice="vertex").fit(train, schema)
    assert highs.choice_ == clarabel.choice_ == "centre" and vertex.choice_ == "vertex"
    assert np.abs(highs.map_ - clarabel.map_).max() <= 1e-6
    # the optimum is not unique here: the rule, not the solver, picks the map
    assert np.abs(highs.map_ - vertex.map_).max() > 0.1
    assert highs.objective_value_ == pytest.approx(vertex.objective_value_, abs=1e-8)
    assert highs.discrimination_ <= eta + 1e-7


def test_centre_maximises_the_log_barrier_over_the_optimal_maps() -> None:
    # compas at eta = 0.15 has optimum 0: the optimal maps are those with q = p. Their analytic
    # centre, written independently with cvxpy: entries, pairwise discrimination (both signs,
    # every label) and excess-distortion slacks in the barrier.
    train, _ = datasets.train_test_split("compas")
    tot = TOT(0.15, distortion="compas").fit(train, datasets.schema("compas"))
    p = tot.program_
    assert tot.objective_value_ <= 1e-12
    P = cp.Variable(p.V)
    rows = _sparse_rows(p)
    terms = [cp.sum(cp.log(P))]
    for k, k2 in itertools.combinations(range(p.K), 2):
        for y in range(p.L):
            d = p.Q[k * p.L + y] @ P - p.Q[k2 * p.L + y] @ P
            terms += [cp.log(0.15 - d), cp.log(0.15 + d)]
    for Dk, dk in zip(p.D, p.bounds, strict=True):
        terms.append(cp.sum(cp.log(dk - Dk @ P)))
    full = TotProgram(p.cells, p.targets, p.constraint, p.thresholds, p.bounds, False, False)
    cons = [rows @ P == 1, full.core.fidelity @ P == 1]
    tight = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}
    cp.Problem(cp.Maximize(sum(terms)), cons).solve(solver=cp.CLARABEL, **tight)
    assert np.abs(tot.map_ - P.value).max() <= 1e-5  # cvxpy's accuracy on this problem


def _sparse_rows(p: TotProgram) -> object:
    import scipy.sparse as sp

    return sp.csr_matrix((np.ones(p.V), (p.var_row, np.arange(p.V))), shape=(p.R, p.V))


def test_vertex_choice_and_bad_choice() -> None:
    with pytest.raises(ConfigError, match="choice must be"):
        TOT(0.1, choice="middle")
    schema, df = toy_schema(), toy_table(600, seed=3)
    tot = TOT(0.05, distortion=TOY_DIST, choice="vertex").fit(df, schema)
    assert tot.choice_ == "vertex" and tot.params()["choice"] == "vertex"


# -- the centring program's optimal face -----------------------------------------------------------


@pytest.mark.parametrize(
    "constraint, eta, per_group",
    [("difference", 0.08, False), ("ratio", 0.3, False), ("difference", 0.08, True)],
)
def test_lp_dual_gives_an_optimal_dual_of_the_centring_program(
    constraint: str, eta: float, per_group: bool
) -> None:
    schema, df = toy_schema(), toy_table(600, seed=3)
    tot = TOT(
        eta, distortion=TOY_DIST, constraint=constraint, per_group=per_group, choice="vertex"
    ).fit(df, schema)
    p = tot.program_
    assert p.aggregate is not per_group
    lp, layout = p.lp(eta)
    res = solve(lp, "highs")
    cp = p.centring_program(eta)
    y = p.centring_dual(cp, layout, res.row_dual)
    reduced = cp.c - cp.A.T @ y
    assert reduced[~cp.free].min() >= -1e-12
    assert np.abs(reduced[cp.free]).max(initial=0.0) <= 1e-12
    assert cp.b @ y == pytest.approx(res.objective, abs=1e-12)  # dual objective = optimum
    point = p.centring_point(cp, tot.map_)
    assert np.abs(cp.A @ point - cp.b).max() <= 1e-12 and point[~cp.free].min() >= 0
    assert reduced @ point == pytest.approx(0.0, abs=1e-12)  # complementary slackness


@pytest.mark.parametrize("name, eta", [("compas", 0.15), ("adult", 0.1)])
def test_flow_balance_removes_only_coordinates_zero_on_the_optimal_face(
    name: str, eta: float
) -> None:
    train, _ = datasets.train_test_split(name)
    tot = TOT(eta, distortion=name, choice="vertex").fit(train, datasets.schema(name))
    p = tot.program_
    lp, layout = p.lp(eta)
    cp = p.centring_program(eta)
    y = p.centring_dual(cp, layout, solve(lp, "highs").row_dual)
    face = cp.free | (cp.c - cp.A.T @ y <= 1e-11)
    kept = p.centring_zeros(cp, face)
    exact, _ = solvers.face_support(cp.A, cp.b, face, cp.free)
    assert kept.sum() < face.sum()  # the optimum is 0 here: q = p forces moves to zero
    assert (exact <= kept).all()
    assert (exact == kept).all()  # and on these tables nothing else is forced
