"""The measurement log: noisy marginals combined per clique by inverse-variance weighting."""

from __future__ import annotations

from collections.abc import Sequence

import mbi
import numpy as np
from mbi import estimation as mbi_estimation

from .domain import Clique


class MeasurementLog:
    """The noisy marginals of a run, combined per clique by inverse-variance weighting.

    Measurements y_1..y_k of one clique with noise stds s_1..s_k carry the same information as
    the single measurement sum(y_i / s_i^2) / sum(1 / s_i^2) with std sum(1 / s_i^2)^(-1/2): the
    L2 estimation loss differs by a constant only. One loss term per clique keeps the
    structure of the estimation program (and so its JIT compilation) a function of the set of
    measured cliques, however often each is measured. Cliques keep their first-measured order.
    """

    def __init__(self) -> None:
        self._weighted: dict[Clique, np.ndarray] = {}
        self._precision: dict[Clique, np.ndarray] = {}

    def add(self, clique: Sequence[str], values: np.ndarray, sigma: float | np.ndarray) -> None:
        """Record a measurement of `clique`: flattened counts plus N(0, sigma^2) noise.

        `sigma` is one noise std for every cell, or one per cell (e.g. a cell that is the sum
        of k merged cells, each with noise std s, has std s * sqrt(k)).
        """
        clique = tuple(clique)
        values = np.asarray(values, dtype=np.float64).ravel()
        precision = np.broadcast_to(1.0 / np.asarray(sigma, dtype=np.float64) ** 2, values.shape)
        if clique in self._weighted:
            if self._weighted[clique].shape != values.shape:
                raise ValueError(f"measurement of {clique} changed size")
            self._weighted[clique] = self._weighted[clique] + precision * values
            self._precision[clique] = self._precision[clique] + precision
        else:
            self._weighted[clique] = precision * values
            self._precision[clique] = precision.copy()

    def __contains__(self, clique: object) -> bool:
        return clique in self._precision

    def __len__(self) -> int:
        return len(self._precision)

    @property
    def cliques(self) -> tuple[Clique, ...]:
        """The measured cliques, in the order they were first measured."""
        return tuple(self._precision)

    def value(self, clique: Clique) -> tuple[np.ndarray, np.ndarray]:
        """The combined measurement of `clique` and its per-cell noise std."""
        precision = self._precision[clique]
        return self._weighted[clique] / precision, precision**-0.5

    def measurements(self) -> list[mbi.LinearMeasurement]:
        """The combined measurements as mbi `LinearMeasurement`s (one per clique).

        A clique with unequal per-cell stds becomes a weighted query with the smallest std:
        ((w * mu - w * y) / s_min)^2 with w = s_min / s is the same loss term.
        """
        out = []
        for clique in self._precision:
            y, sigma = self.value(clique)
            s_min = float(sigma.min())
            if np.allclose(sigma, s_min, rtol=1e-12, atol=0.0):
                out.append(mbi.LinearMeasurement(y, clique, stddev=s_min))
            else:
                w = s_min / sigma
                out.append(
                    mbi.LinearMeasurement(w * y, clique, stddev=s_min, query=mbi.WeightedQuery(w))
                )
        return out

    def total(self) -> float:
        """Minimum-variance unbiased estimate of the number of records (at least 1)."""
        return float(mbi_estimation.minimum_variance_unbiased_total(self.measurements()))
