"""Contract checks that any synthesizer or fairness plugin can run against itself."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from .access import InMemorySource
from .base import FairnessOutput, FairnessTransformer, StageContext, Synthesizer
from .errors import BudgetExceededError
from .primitives import PrivateTable
from .privacy import RDPAccountant
from .privacy.noise import SecureNoise, SeededNoise
from .schema import Categorical, Integer, Schema


def toy_schema() -> Schema:
    """A small public schema: two protected binary attributes, an ordinal feature, a label."""
    return Schema(
        columns=(
            Categorical("sex", (0, 1)),
            Categorical("race", (0, 1)),
            Integer("edu", 0, 4),
            Categorical("income", (0, 1)),
        ),
        protected=("sex", "race"),
        label="income",
        favorable=1,
        privileged={"sex": (1,), "race": (1,)},
    )


def toy_table(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    """A table for `toy_schema` with dependence between every column and the label."""
    rng = np.random.default_rng(seed)
    sex = rng.integers(0, 2, n)
    race = rng.integers(0, 2, n)
    edu = np.minimum(rng.poisson(1 + sex + race, n), 4)
    income = (rng.random(n) < 0.15 + 0.1 * sex + 0.05 * edu).astype(int)
    return pd.DataFrame({"sex": sex, "race": race, "edu": edu, "income": income})


def check_synthesizer(
    factory: Callable[..., Synthesizer],
    *,
    epsilon: float = 1.0,
    delta: float = 1e-6,
    table: pd.DataFrame | None = None,
    schema: Schema | None = None,
) -> None:
    """Assert the synthesizer contract; raises AssertionError naming the broken clause.

    Checks: it spends through the accountant and never beyond (epsilon, delta); it returns
    codes of the requested shape inside the schema's domain; the same seed gives the same
    table; it does not touch numpy's global random state; it runs on exact noise from OS
    entropy (`SecureNoise`, the release path); if it declares `estimates_rows`, its estimate is
    a finite positive number.

    Args:
        factory: called as `factory(epsilon=..., delta=...)`.
        epsilon: budget used for the checks.
        delta: budget used for the checks.
        table: data to synthesize (default `toy_table()`).
        schema: its schema (default `toy_schema()`).
    """
    schema = schema or toy_schema()
    table = toy_table() if table is None else table
    codes = schema.encode_array(table)

    # Build both instances first: importing a plugin's dependencies may touch numpy's global
    # state (importing jax does), which is not the synthesizer's doing.
    synths = [factory(epsilon=epsilon, delta=delta) for _ in range(2)]
    for synth in synths:
        assert isinstance(synth, Synthesizer), "factory must return a Synthesizer"

    def run(seed: int | None, synth: Synthesizer) -> tuple[np.ndarray, RDPAccountant]:
        acc = RDPAccountant(budget=(epsilon, delta))
        noise = SecureNoise() if seed is None else SeededNoise(np.random.SeedSequence(seed))
        pt = PrivateTable(InMemorySource(codes, schema.sizes), schema, acc, noise)
        synth.fit(pt, StageContext("synthesizer"))
        return synth.sample(57, np.random.default_rng(seed or 0)), acc

    state = np.random.get_state(legacy=True)  # noqa: NPY002  (checking it is left alone)
    try:
        out, acc = run(0, synths[0])
    except BudgetExceededError as exc:  # pragma: no cover - reported as a contract failure
        raise AssertionError(f"synthesizer tried to overspend its budget: {exc}") from exc
    now = np.random.get_state(legacy=True)  # noqa: NPY002
    assert isinstance(now, tuple) and isinstance(state, tuple)
    assert np.array_equal(now[1], state[1]) and now[2] == state[2], (
        "synthesizer used numpy's global random state"
    )
    assert len(acc.entries) > 0, "synthesizer read nothing through the DP primitives"
    assert acc.epsilon(delta) <= epsilon, "spent more than the budget"
    out = np.asarray(out)
    assert out.shape == (57, len(schema.columns)), f"sample returned shape {out.shape}"
    schema.check_codes(out)
    if synths[0].estimates_rows:
        estimate = synths[0].estimated_rows()
        assert isinstance(estimate, (int, float, np.number)) and np.isfinite(estimate), (
            f"estimated_rows() returned {estimate!r}, not a finite number"
        )
    again, _ = run(0, synths[1])
    assert np.array_equal(out, again), "the same seed gave different tables"
    secure, acc = run(None, factory(epsilon=epsilon, delta=delta))
    assert acc.epsilon(delta) <= epsilon, "spent more than the budget on exact noise"
    schema.check_codes(np.asarray(secure))


def check_fairness_transformer(
    factory: Callable[[], FairnessTransformer],
    *,
    table: pd.DataFrame | None = None,
    schema: Schema | None = None,
) -> None:
    """Assert the fairness-transformer contract; raises AssertionError naming the broken clause.

    Checks: output in the schema's domain with the protected attributes unchanged; weights, if
    any, one finite non-negative value per row; the same seed gives the same output; the input
    frame is not modified.
    """
    schema = schema or toy_schema()
    table = toy_table() if table is None else table
    before = table.copy()
    out = factory().fit_transform(table, schema, np.random.default_rng(0))
    assert isinstance(out, FairnessOutput), "fit_transform must return a FairnessOutput"
    pd.testing.assert_frame_equal(table, before, obj="input table (was modified)")
    schema.validate(out.data)
    assert len(out.data) == len(table), "row count changed"
    for p in schema.protected:
        assert (out.data[p].to_numpy() == table[p].to_numpy()).all(), f"protected {p!r} changed"
    if out.weights is not None:
        w = np.asarray(out.weights, dtype=float)
        assert w.shape == (len(table),) and np.isfinite(w).all() and (w >= 0).all(), (
            "weights must be one finite non-negative value per row"
        )
    again = factory().fit_transform(table, schema, np.random.default_rng(0))
    pd.testing.assert_frame_equal(out.data, again.data, obj="same seed, different output")
