"""MST (McKenna, Miklau, Sheldon 2021): maximum-spanning-tree marginals on the mbi engine."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from safes_framework import hookimpl
from safes_framework.base import StageContext, Synthesizer
from safes_framework.errors import ConfigError, SafesError
from safes_framework.primitives import Measurement, PrivateTable
from safes_framework.registry import Registry

from .. import pgm

logger = logging.getLogger(__name__)


class MST(Synthesizer):
    """MST: noisy 1-way marginals, a maximum spanning tree of 2-way marginals chosen by the
    exponential mechanism, noisy 2-way marginals, then a graphical model fitted with mbi.

    The zCDP budget planned from (epsilon, delta) is split in thirds, as in the paper: the d
    one-way marginals, the d-1 selections, and the d-1 two-way measurements. Rare values are
    merged using the noisy one-way counts only (threshold 3 sigma, as in the paper).

    Args:
        epsilon: privacy budget epsilon.
        delta: privacy budget delta.
        iters: mirror-descent iterations of the final estimation.
        compress: merge values whose noisy one-way count is below 3 sigma.
    """

    name = "mst"
    estimates_rows = True

    def __init__(
        self,
        epsilon: float,
        delta: float,
        *,
        iters: int = 1000,
        compress: bool = True,
    ) -> None:
        super().__init__(epsilon, delta)
        if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
            raise ConfigError(f"mst: iters must be a positive integer, got {iters!r}")
        self.iters = iters
        self.compress = bool(compress)
        self._model: pgm.TreeMarginals | None = None
        self._mapping: dict[str, np.ndarray] = {}
        self._columns: tuple[str, ...] = ()
        self.cliques_: list[tuple[str, ...]] = []

    def params(self) -> dict[str, Any]:
        return {**super().params(), "iters": self.iters, "compress": self.compress}

    def preflight(self, data: PrivateTable) -> dict[str, Any]:
        """The model's size from the public domain: d one-way and d - 1 two-way marginals.

        Nothing to refuse (MST's model is a tree, linear in the two-way marginals' sizes); the
        summary bounds the model by the d - 1 largest pairs.
        """
        columns = data.columns
        pairs = sorted(
            (data.domain_size(p) for p in itertools.combinations(columns, 2)), reverse=True
        )
        cells = sum(data.sizes.values()) + sum(pairs[: max(len(columns) - 1, 0)])
        return {
            "columns": len(columns),
            "candidate_pairs": len(pairs),
            "largest_pair_cells": pairs[0] if pairs else 0,
            "model_mb_at_most": cells * 8 / 2**20,
        }

    def fit(self, data: PrivateTable, ctx: StageContext) -> None:
        acc = data.accountant
        columns = data.columns
        d = len(columns)
        rho = acc.plan_zcdp()
        # One third each: d one-way marginals (L2 sensitivity sqrt(d) jointly), d-1 selections,
        # d-1 two-way marginals (McKenna et al. 2021, Sec. 4).
        sigma1 = float(np.sqrt(d / (2.0 * rho / 3.0)))
        ctx.progress(0, 4, "measuring one-way marginals")
        ones = data.measure([(c,) for c in columns], sigma1, label="one-way marginals")

        mapping: dict[str, np.ndarray] = {}
        if self.compress:
            for m in ones:
                mp = _support_mapping(m.values, 3.0 * m.sigma)
                if mp is not None:
                    mapping[m.clique[0]] = mp
        view = data.compressed(mapping) if mapping else data
        log = pgm.MeasurementLog()
        for m in ones:
            col = m.clique[0]
            if col in mapping:
                # The merged cell is the sum of k noisy cells: its noise std is sigma * sqrt(k).
                merged = mapping[col] == mapping[col].max()
                y = np.append(m.values[~merged], m.values[merged].sum())
                sd = np.append(
                    np.full(int((~merged).sum()), m.sigma), m.sigma * np.sqrt(merged.sum())
                )
                log.add(m.clique, y, sd)
            else:
                log.add(m.clique, m.values, m.sigma)
        total = _total_estimate(ones)

        cliques: list[tuple[str, ...]] = []
        if d > 1:
            ctx.progress(1, 4, "selecting a spanning tree of two-way marginals")
            # The model fitted to one-way measurements alone is a product distribution: fit
            # each noisy one-way marginal to the simplex of the estimated total and multiply.
            probs = {}
            for (col,) in log.cliques:
                y, sd = log.value((col,))
                probs[col] = _simplex_fit(y, 1.0 / sd**2, total) / total
            estimates = {
                (a, b): total * np.outer(probs[a], probs[b]).ravel()
                for a, b in itertools.combinations(columns, 2)
            }
            eps_select = float(np.sqrt(8.0 * (rho / 3.0) / (d - 1)))
            component = {c: i for i, c in enumerate(columns)}
            for _ in range(d - 1):
                candidates = [p for p in estimates if component[p[0]] != component[p[1]]]
                a, b = view.select(
                    candidates, epsilon=eps_select, estimates=estimates, label="spanning-tree edge"
                )
                old, new = component[b], component[a]
                component = {c: (new if k == old else k) for c, k in component.items()}
                cliques.append((a, b))
            ctx.progress(2, 4, "measuring two-way marginals")
            # The last third: exactly what the accountant says is left (sqrt((d-1)/(2 rho/3))
            # up to rounding), so the run ends on its budget and never a bit above it.
            sigma2 = acc.plan_gaussian(d - 1)
            twos = view.measure(cliques, sigma2, label="two-way marginals")
            for m in twos:
                log.add(m.clique, m.values, m.sigma)
        ctx.progress(3, 4, "estimating the graphical model")
        engine = pgm.TreeMirrorDescent(pgm.domain(view.sizes))
        self._model = engine.estimate(log, iters=self.iters).marginals
        self._mapping = mapping
        self._columns = columns
        self.cliques_ = cliques
        ctx.progress(4, 4, "done")

    def estimated_rows(self) -> float:
        """The model's total: the minimum-variance combination of the noisy marginals' sums."""
        if self._model is None:
            raise SafesError("mst: call fit() before estimated_rows()")
        return self._model.total

    def sample(self, rows: int, rng: np.random.Generator) -> np.ndarray:
        if self._model is None:
            raise SafesError("mst: call fit() before sample()")
        data = pgm.sample_tree(self._model, rows, rng)
        out = np.empty((rows, len(self._columns)), dtype=np.int64, order="F")
        for j, c in enumerate(self._columns):
            codes = data.pop(c)
            out[:, j] = _decompress(codes, self._mapping[c], rng) if c in self._mapping else codes
        return out  # column-major: each column is contiguous for decoding


def _simplex_fit(values: np.ndarray, weights: np.ndarray, total: float) -> np.ndarray:
    """argmin_x sum_i w_i (x_i - y_i)^2 subject to x >= 0 and sum x = total.

    The KKT conditions give x_i = max(0, y_i - lam / w_i) for a scalar lam, found by bisection
    (the sum is decreasing in lam).
    """
    y = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if total <= 0:
        return np.zeros_like(y)
    lo = float(np.min((y - total) * w)) - 1.0
    hi = float(np.max(y * w)) + 1.0
    for _ in range(200):
        lam = 0.5 * (lo + hi)
        s = np.maximum(0.0, y - lam / w).sum()
        lo, hi = (lam, hi) if s > total else (lo, lam)
        if hi - lo <= 1e-12 * max(1.0, abs(lam)):
            break
    x = np.maximum(0.0, y - hi / w)
    return x * (total / x.sum()) if x.sum() > 0 else np.full_like(y, total / y.size)


def _total_estimate(measurements: Sequence[Measurement]) -> float:
    """Minimum-variance unbiased estimate of the record count from noisy full marginals."""
    sums = np.array([m.values.sum() for m in measurements])
    variances = np.array([m.sigma**2 * m.values.size for m in measurements])
    return max(1.0, float(np.average(sums, weights=1.0 / variances)))


def _support_mapping(values: np.ndarray, threshold: float) -> np.ndarray | None:
    """Map codes with noisy count >= threshold to themselves, the rest to one extra code.

    Returns None when every code is kept (nothing to compress). Codes are renumbered densely:
    kept codes first (in order), then the merged code.
    """
    keep = values >= threshold
    if keep.all():
        return None
    mapping = np.empty(values.size, dtype=np.int64)
    mapping[keep] = np.arange(int(keep.sum()))
    mapping[~keep] = int(keep.sum())
    return mapping


def _decompress(codes: np.ndarray, mapping: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Original codes from compressed ones; a merged code becomes a uniform draw of its preimage."""
    merged_code = int(mapping.max())
    preimage_kept = np.flatnonzero(mapping < merged_code)
    merged = np.flatnonzero(mapping == merged_code)
    out = np.empty_like(codes)
    is_merged = codes == merged_code
    out[~is_merged] = preimage_kept[codes[~is_merged]]
    out[is_merged] = rng.choice(merged, size=int(is_merged.sum()))
    return out


@hookimpl
def safes_register_synthesizers(register: Registry) -> None:
    register.add("mst", MST, description="MST (McKenna et al. 2021) on mbi")
