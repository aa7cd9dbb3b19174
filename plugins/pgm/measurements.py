"""The measurement log: noisy marginals combined per clique by inverse-variance weighting."""

from __future__ import annotations

from collections.abc import Sequence

import mbi
import numpy as np

from .domain import Clique, cells, clique_routes

#: Weights of a measurement's squared residual in the estimation loss (see MeasurementLog).
LOSS_WEIGHTINGS = ("inverse_variance", "inverse_std")

class MeasurementLog:
    """The noisy marginals of a run, combined per clique by the estimation loss's weights.

    Measurements y_1..y_k of one clique with noise stds s_1..s_k carry the same information as
    the single measurement sum(y_i / s_i^2) / sum(1 / s_i^2) with std sum(1 / s_i^2)^(-1/2): the
    L2 estimation loss differs by a constant only. One loss term per clique keeps the
    structure of the estimation program (and so its JIT compilation) a function of the set of
    measured cliques, however often each is measured. Cliques keep their first-measured order.

    Args:
        weighting: the weight of a measurement's squared residual in the estimation loss:
            "inverse_variance" (1 / sigma^2, the least-squares weight; mbi 2.0) or
            "inverse_std" (1 / sigma, mbi 1.0's estimation loss, for exact comparisons).
    """

    def __init__(self, weighting: str = "inverse_variance") -> None:
        if weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"weighting must be one of {LOSS_WEIGHTINGS}, got {weighting!r}")
        self.weighting = weighting
        self._weighted: dict[Clique, np.ndarray] = {}  # sum of w_i y_i
        self._precision: dict[Clique, np.ndarray] = {}  # sum of w_i: the loss weight
        self._variance: dict[Clique, np.ndarray] = {}  # sum of w_i^2 sigma_i^2
        self._combined: dict[Clique, tuple[np.ndarray, float, np.ndarray | None]] = {}

    def add(self, clique: Sequence[str], values: np.ndarray, sigma: float | np.ndarray) -> None:
        """Record a measurement of `clique`: flattened counts plus N(0, sigma^2) noise.

        `sigma` is one noise std for every cell, or one per cell (e.g. a cell that is the sum
        of k merged cells, each with noise std s, has std s * sqrt(k)).
        """
        clique = tuple(clique)
        self._combined.pop(clique, None)
        values = np.asarray(values, dtype=np.float64).ravel()
        sd = np.broadcast_to(np.asarray(sigma, dtype=np.float64), values.shape)
        w = 1.0 / sd**2 if self.weighting == "inverse_variance" else 1.0 / sd
        if clique in self._weighted:
            if self._weighted[clique].shape != values.shape:
                raise ValueError(f"measurement of {clique} changed size")
            self._weighted[clique] = self._weighted[clique] + w * values
            self._precision[clique] = self._precision[clique] + w
            self._variance[clique] = self._variance[clique] + (w * sd) ** 2
        else:
            self._weighted[clique] = w * values
            self._precision[clique] = w.copy()
            self._variance[clique] = (w * sd) ** 2

    def __contains__(self, clique: object) -> bool:
        return clique in self._precision

    def __len__(self) -> int:
        return len(self._precision)

    @property
    def cliques(self) -> tuple[Clique, ...]:
        """The measured cliques, in the order they were first measured."""
        return tuple(self._precision)

    def value(self, clique: Clique) -> tuple[np.ndarray, np.ndarray]:
        """The combined measurement of `clique` (the loss-weighted mean of its measurements)
        and its per-cell noise std."""
        weight = self._precision[clique]
        return self._weighted[clique] / weight, np.sqrt(self._variance[clique]) / weight

    def loss_weights(self) -> np.ndarray:
        """The weight of each cell's squared residual in the estimation loss, stacked in the
        order of `cliques`."""
        return np.concatenate([self._precision[c] for c in self._precision])

    def _combined_query(self, clique: Clique) -> tuple[np.ndarray, float, np.ndarray | None]:
        """The combined measurement of `clique` as one query: (y, std, weights or None).

        A clique with unequal per-cell stds becomes a weighted query with the smallest std:
        ((w * mu - w * y) / s_min)^2 with w = s_min / s is the same loss term.
        """
        out = self._combined.get(clique)
        if out is None:
            y, sigma = self.value(clique)
            s_min = float(sigma.min())
            if np.allclose(sigma, s_min, rtol=1e-12, atol=0.0):
                out = (y, s_min, None)
            else:
                w = s_min / sigma
                out = (w * y, s_min, w)
            self._combined[clique] = out
        return out

    def measurements(self) -> list[mbi.LinearMeasurement]:
        """The combined measurements as mbi `LinearMeasurement`s (one per clique), weighted
        queries where a clique's per-cell stds differ (see `_combined_query`)."""
        out = []
        for clique in self._precision:
            y, s_min, w = self._combined_query(clique)
            if w is None:
                out.append(mbi.LinearMeasurement(y, clique, stddev=s_min))
            else:
                out.append(
                    mbi.LinearMeasurement(y, clique, stddev=s_min, query=mbi.WeightedQuery(w))
                )
        return out

    def total(self) -> float:
        """Minimum-variance unbiased estimate of the number of records (at least 1).

        mbi's `minimum_variance_unbiased_total` of `measurements()`, in the same arithmetic
        without building them: the weighted mean of the identity queries' sums, each weighted
        by 1 / (std^2 cells).
        """
        estimates, variances = [], []
        for clique in self._precision:
            y, s_min, w = self._combined_query(clique)
            if w is None:
                estimates.append(np.sum(y))
                variances.append(s_min**2 * np.size(y))
        if not estimates:
            return 1.0
        weights = 1.0 / np.array(variances)
        return max(1.0, float(np.average(np.array(estimates), weights=weights)))

    def lipschitz(self, dom: mbi.Domain) -> float:
        """mbi's `calculate_l2_lipschitz_from_metadata` of `measurements()` (the Lipschitz
        constant of the L2 loss's gradient), in the same arithmetic without building them."""
        cliques = list(self._precision)
        routing = clique_routes(mbi.clique_utils.maximal_subset(cliques), cliques, dom)
        blocks: dict[Clique, float] = {}
        for clique in cliques:
            _y, s_min, w = self._combined_query(clique)
            q_norm_sq = 1.0 if w is None else float(np.max(np.asarray(w) ** 2))
            containing = routing[clique]
            proj_norm_sq = cells(dom, containing) / cells(dom, clique)
            contribution = q_norm_sq / max(s_min, 1e-12) ** 2 * proj_norm_sq
            blocks[containing] = blocks.get(containing, 0.0) + contribution
        return max(blocks.values()) if blocks else 1.0
