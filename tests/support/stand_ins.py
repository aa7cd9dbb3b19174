"""Fast stand-in plugins for the evaluation and sweep tests (registered in this process only)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from safes_framework import (
    FairnessOutput,
    FairnessTransformer,
    Metric,
    MetricInputs,
    MetricResult,
    Schema,
    StageContext,
    Synthesizer,
    hookimpl,
    register_plugin,
    unregister_plugin,
)
from safes_framework.errors import InfeasibleError, SafesError
from safes_framework.primitives import PrivateTable
from safes_framework.registry import Registry


class FastIndependent(Synthesizer):
    """Noisy one-way marginals, columns sampled independently; fails below epsilon 0.005."""

    name = "fast-independent"

    def fit(self, data: PrivateTable, ctx: StageContext) -> None:
        if self.epsilon < 0.005:
            raise SafesError("fast-independent: epsilon below 0.005 is not supported")
        rho = data.accountant.plan_zcdp()
        sigma = float(np.sqrt(len(data.columns) / (2 * rho)))
        self._probs = []
        for m in data.measure([(c,) for c in data.columns], sigma):
            p = np.clip(m.values, 0, None) + 1e-9
            self._probs.append(p / p.sum())

    def sample(self, rows: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([rng.choice(p.size, size=rows, p=p) for p in self._probs], axis=1)


class FlipLabels(FairnessTransformer):
    """Flips a share of unprivileged unfavourable labels; infeasible for eta < 0.01."""

    name = "flip-labels"

    def __init__(self, eta: float = 0.05) -> None:
        self.eta = eta

    def fit(self, data: pd.DataFrame, schema: Schema) -> FlipLabels:
        if self.eta < 0.01:
            raise InfeasibleError(f"flip-labels: eta={self.eta} is below 0.01; relax eta")
        self._schema = schema
        return self

    def transform(self, data: pd.DataFrame, rng: np.random.Generator) -> FairnessOutput:
        s = self._schema
        out = data.copy()
        attr = s.protected[0]
        unpriv = ~out[attr].isin(s.privileged[attr])
        unfav = out[s.label] != s.favorable
        flip = unpriv & unfav & (rng.random(len(out)) < 0.3)
        out.loc[flip, s.label] = s.favorable
        return FairnessOutput(out, np.where(flip, 0.5, 1.0))

    def params(self) -> dict:
        return {"eta": self.eta}


class Broken(Metric):
    """A metric that always fails."""

    name = "broken"

    def compute(self, inputs: MetricInputs) -> MetricResult:
        raise ValueError("this metric is broken on purpose")


class FastPlugins:
    @hookimpl
    def safes_register_synthesizers(self, register: Registry) -> None:
        register.add("fast-independent", FastIndependent)

    @hookimpl
    def safes_register_fairness_transformers(self, register: Registry) -> None:
        register.add("flip-labels", FlipLabels)

    @hookimpl
    def safes_register_metrics(self, register: Registry) -> None:
        register.add("broken", Broken)


@pytest.fixture
def fast_plugins() -> Iterator[None]:
    """Register the stand-ins for one test (in-process executors only)."""
    name = register_plugin(FastPlugins(), name="sweep-test-plugins")
    try:
        yield
    finally:
        unregister_plugin(name)
