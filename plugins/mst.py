"""MST (McKenna, Miklau, Sheldon 2021): maximum-spanning-tree marginals on the mbi engine."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import numpy as np

from safes_framework import hookimpl
from safes_framework.base import StageContext, Synthesizer
from safes_framework.errors import ConfigError, SafesError
from safes_framework.primitives import PrivateTable
from safes_framework.registry import Registry

from . import _mbi

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
        select_iters: iterations of the estimation on one-way marginals used for selection.
        compress: merge values whose noisy one-way count is below 3 sigma.
    """

    name = "mst"

    def __init__(
        self,
        epsilon: float,
        delta: float,
        *,
        iters: int = 2500,
        select_iters: int = 250,
        compress: bool = True,
    ) -> None:
        super().__init__(epsilon, delta)
        for pname, v in (("iters", iters), ("select_iters", select_iters)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"mst: {pname} must be a positive integer, got {v!r}")
        self.iters = iters
        self.select_iters = select_iters
        self.compress = bool(compress)
        self._model: Any = None
        self._mapping: dict[str, np.ndarray] = {}
        self._columns: tuple[str, ...] = ()
        self.cliques_: list[tuple[str, ...]] = []

    def params(self) -> dict[str, Any]:
        return {**super().params(), "iters": self.iters, "select_iters": self.select_iters,
                "compress": self.compress}

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
                mp = _mbi.support_mapping(m.values, 3.0 * m.sigma)
                if mp is not None:
                    mapping[m.clique[0]] = mp
        view = data.compressed(mapping) if mapping else data
        dom = _mbi.domain(view.sizes)
        log1 = [
            _mbi.compress_measurement(m, mapping[m.clique[0]]) if m.clique[0] in mapping
            else _mbi.linear_measurement(m)
            for m in ones
        ]

        cliques: list[tuple[str, ...]] = []
        if d > 1:
            ctx.progress(1, 4, "selecting a spanning tree of two-way marginals")
            base = _mbi.estimate(dom, log1, iters=self.select_iters)
            estimates = {
                pair: _mbi.marginal(base, pair) for pair in itertools.combinations(columns, 2)
            }
            eps_select = float(np.sqrt(8.0 * (rho / 3.0) / (d - 1)))
            component = {c: i for i, c in enumerate(columns)}
            for _ in range(d - 1):
                candidates = [p for p in estimates if component[p[0]] != component[p[1]]]
                a, b = view.select(candidates, epsilon=eps_select, estimates=estimates,
                                   label="spanning-tree edge")
                old, new = component[b], component[a]
                component = {c: (new if k == old else k) for c, k in component.items()}
                cliques.append((a, b))
            ctx.progress(2, 4, "measuring two-way marginals")
            sigma2 = float(np.sqrt((d - 1) / (2.0 * rho / 3.0)))
            twos = view.measure(cliques, sigma2, label="two-way marginals")
            log1 = log1 + [_mbi.linear_measurement(m) for m in twos]
        ctx.progress(3, 4, "estimating the graphical model")
        self._model = _mbi.estimate(dom, log1, iters=self.iters)
        self._mapping = mapping
        self._columns = columns
        self.cliques_ = cliques
        ctx.progress(4, 4, "done")

    def sample(self, rows: int, rng: np.random.Generator) -> np.ndarray:
        if self._model is None:
            raise SafesError("mst: call fit() before sample()")
        data = _mbi.sample(self._model, rows, rng)
        cols = []
        for c in self._columns:
            codes = data[c]
            if c in self._mapping:
                codes = _mbi.decompress(codes, self._mapping[c], rng)
            cols.append(codes)
        return np.stack(cols, axis=1)


@hookimpl
def safes_register_synthesizers(register: Registry) -> None:
    register.add("mst", MST, description="MST (McKenna et al. 2021) on mbi")
