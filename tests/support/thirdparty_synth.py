"""A synthesizer written the way a third-party plugin author would write one (for tests)."""

from __future__ import annotations

import numpy as np

from safes_framework import hookimpl
from safes_framework.base import StageContext, Synthesizer
from safes_framework.primitives import PrivateTable
from safes_framework.registry import Registry


class IndependentMarginals(Synthesizer):
    """A toy-sized but honest DP synthesizer: noisy 1-way marginals, columns sampled independently.

    Written exactly as a third-party plugin would be: it sees only the PrivateTable.
    """

    name = "independent"
    estimates_rows = True

    def fit(self, data: PrivateTable, ctx: StageContext) -> None:
        rho = data.accountant.plan_zcdp()
        d = len(data.columns)
        sigma = float(np.sqrt(d / (2 * rho)))
        ms = data.measure([(c,) for c in data.columns], sigma)
        # Each noisy marginal's sum estimates n with variance sigma^2 * cells: combine them.
        precision = np.array([1.0 / m.values.size for m in ms])
        sums = np.array([m.values.sum() for m in ms], dtype=float)
        self._total = float((precision * sums).sum() / precision.sum())
        self._probs = []
        for m in ms:
            p = np.clip(m.values, 0, None)
            self._probs.append(p / p.sum() if p.sum() > 0 else np.full(p.size, 1 / p.size))
        ctx.progress(1, 1, "measured")

    def estimated_rows(self) -> float:
        return self._total

    def sample(self, rows: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([rng.choice(p.size, size=rows, p=p) for p in self._probs], axis=1)


@hookimpl
def safes_register_synthesizers(register: Registry) -> None:
    register.add("independent", IndependentMarginals, description="independent noisy marginals")
