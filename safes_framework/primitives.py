"""DP primitives: how a synthesizer reads the sensitive table; each charges the accountant."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .access import Clique, CompressedSource, CountSource
from .errors import ConfigError, PrivacyError
from .privacy import ExponentialMechanism, Gaussian, RDPAccountant

if TYPE_CHECKING:
    from .privacy.events import DpEvent
    from .schema import Schema

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Measurement:
    """A noisy marginal: counts of `clique` plus i.i.d. Gaussian noise of std `sigma`.

    `values` is flattened in C order of the clique's domain sizes. Add/remove-one neighbouring:
    one record changes one cell by 1, so the L2 sensitivity of a marginal is 1.
    """

    clique: Clique
    values: np.ndarray
    sigma: float


class PrivateTable:
    """The handle a synthesizer gets on the sensitive table: public schema plus DP primitives.

    It never exposes rows or exact counts. Every primitive asks the accountant before drawing
    noise (a spend beyond the budget raises `BudgetExceededError` and nothing is drawn), then
    draws from its own generator spawned from the run's seed, one stream per call.

    Args:
        source: where the rows live.
        schema: the public schema (domains come from here).
        accountant: the run's ledger and budget filter.
        seed: the stage's seed sequence; each primitive call spawns a child.
        stage: the stage name recorded in the ledger.
    """

    def __init__(
        self,
        source: CountSource,
        schema: Schema,
        accountant: RDPAccountant,
        seed: np.random.SeedSequence,
        *,
        stage: str = "synthesizer",
    ) -> None:
        self._source = source
        self._sizes = dict(source.sizes)
        self.schema = schema
        self.accountant = accountant
        self._seed = seed
        self._stage = stage

    # -- public facts --------------------------------------------------------------------------

    @property
    def sizes(self) -> dict[str, int]:
        """Public domain size of every column (after compression, if this is a compressed view)."""
        return dict(self._sizes)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self._sizes)

    def domain_size(self, clique: Sequence[str]) -> int:
        return int(np.prod([self._sizes[c] for c in clique], dtype=np.int64))

    def secret_seed(self, purpose: str) -> np.random.SeedSequence:
        """A seed for a mechanism that draws its own noise (DP-SGD), never recorded.

        Args:
            purpose: what the seed is for (e.g. "dp-sgd"), for the record of noise sources.

        Returns:
            A fresh child of the stage's seed stream: the mechanism's noise must come from it
            (and from nothing else), so a seeded run is reproducible.
        """
        logger.debug("secret seed handed out for %s", purpose)
        return self._seed.spawn(1)[0]

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng(self._seed.spawn(1)[0])

    def _check_clique(self, clique: Sequence[str]) -> Clique:
        clique = tuple(clique)
        unknown = [c for c in clique if c not in self._sizes]
        if unknown:
            raise ConfigError(f"unknown column {unknown[0]!r} in marginal {clique}")
        if len(set(clique)) != len(clique):
            raise ConfigError(f"marginal {clique} names a column twice")
        return clique

    def compressed(self, mapping: Mapping[str, np.ndarray]) -> PrivateTable:
        """A view on the same table with some columns' codes merged by public `mapping`s.

        `mapping[col][i]` is the new code of original code i (a surjection onto 0..k-1). The
        mapping must be public: derived from the schema or from earlier noisy measurements.
        The view shares this table's accountant and seed stream.
        """
        view = PrivateTable.__new__(PrivateTable)
        view.__dict__.update(self.__dict__)
        view._source = CompressedSource(self._source, mapping)
        view._sizes = dict(view._source.sizes)
        return view

    # -- Gaussian measurement ------------------------------------------------------------------

    def measure(
        self, cliques: Sequence[Sequence[str]], sigma: float, *, label: str = "measure"
    ) -> list[Measurement]:
        """Measure the marginals on `cliques` with Gaussian noise of std `sigma` on each count.

        Charged as `len(cliques)` Gaussian mechanisms with noise multiplier `sigma` (L2
        sensitivity 1 per marginal under add/remove-one).
        """
        checked = [self._check_clique(c) for c in cliques]
        if not checked:
            return []
        if not (np.isfinite(sigma) and sigma > 0):
            raise PrivacyError(f"noise std sigma must be positive and finite, got {sigma!r}")
        self.accountant.compose(
            Gaussian(noise_multiplier=float(sigma)),
            count=len(checked),
            stage=self._stage,
            label=label,
        )
        rng = self._rng()
        out = []
        for clique in checked:
            counts = self._source.marginal(clique)
            noisy = counts + rng.normal(0.0, sigma, size=counts.shape)
            out.append(Measurement(clique, noisy, float(sigma)))
        return out

    # -- selection -----------------------------------------------------------------------------

    def select(
        self,
        candidates: Sequence[Sequence[str]],
        *,
        epsilon: float,
        estimates: Mapping[Clique, np.ndarray] | Callable[[Clique], np.ndarray],
        weights: Sequence[float] | None = None,
        penalties: Sequence[float] | None = None,
        label: str = "select",
    ) -> Clique:
        """Pick the candidate marginal worst fitted by its estimate, by the exponential mechanism.

        Quality of candidate r: `w_r * (||M_r(D) - estimate_r||_1 - penalty_r)`, where M_r(D)
        are the exact counts and `estimate_r` comes from public information (the model fitted to
        earlier noisy measurements). Under add/remove-one, ||M_r(D) - e||_1 moves by at most 1,
        so the score sensitivity is max_r w_r. The choice is drawn with probability proportional
        to exp(epsilon * q_r / (2 * sensitivity)) and charged as an `ExponentialMechanism(epsilon)`
        (bounded-range analysis, rho = epsilon^2 / 8).

        Args:
            candidates: the marginals to choose from.
            epsilon: the exponential mechanism's epsilon.
            estimates: current estimate (flattened counts) of each candidate, or a callable.
            weights: non-negative weight of each candidate (default 1).
            penalties: public offset subtracted from each candidate's error (default 0), e.g.
                AIM's expected noise magnitude sqrt(2/pi) * sigma * cells.
        """
        checked = [self._check_clique(c) for c in candidates]
        if not checked:
            raise ConfigError("select() needs at least one candidate")
        if not (np.isfinite(epsilon) and epsilon > 0):
            raise PrivacyError(f"selection epsilon must be positive and finite, got {epsilon!r}")
        w = np.ones(len(checked)) if weights is None else np.asarray(weights, dtype=np.float64)
        pen = np.zeros(len(checked)) if penalties is None else np.asarray(penalties, float)
        if w.shape != (len(checked),) or pen.shape != (len(checked),):
            raise ConfigError("weights and penalties need one entry per candidate")
        if (w < 0).any() or not np.isfinite(w).all() or w.max() <= 0:
            raise ConfigError("weights must be finite, non-negative, and not all zero")
        sensitivity = float(w.max())
        get = estimates if callable(estimates) else estimates.__getitem__
        est = [np.asarray(get(c), dtype=np.float64).ravel() for c in checked]
        for c, e in zip(checked, est, strict=True):
            if e.shape != (self.domain_size(c),):
                raise ConfigError(
                    f"estimate for {c} has {e.size} cells, expected {self.domain_size(c)}"
                )
        self.accountant.compose(
            ExponentialMechanism(epsilon=float(epsilon)), stage=self._stage, label=label
        )
        rng = self._rng()
        errors = np.array(
            [np.abs(self._source.marginal(c) - e).sum() for c, e in zip(checked, est, strict=True)]
        )
        scores = w * (errors - pen)
        logits = epsilon * scores / (2.0 * sensitivity)
        # Gumbel-max: argmax(logits + Gumbel) is a draw from softmax(logits).
        choice = int(np.argmax(logits + rng.gumbel(size=logits.shape)))
        return checked[choice]

    # -- raw rows (mechanisms that must touch records, e.g. DP-SGD) ----------------------------

    def rows(self, events: Sequence[tuple[DpEvent, int]], *, label: str = "rows") -> np.ndarray:
        """The (n, d) code matrix, released only after every declared event has been charged.

        A mechanism that reads records directly (DP-SGD) declares its whole privacy cost up
        front; if the events do not fit the budget nothing is charged and nothing is returned.
        The caller is responsible for its mechanism matching the declared events.
        """
        if not events:
            raise PrivacyError("declare at least one event before reading rows")
        trial = self.accountant.copy()
        for event, count in events:
            trial.compose(event, count=count, stage=self._stage, label=label)
        for event, count in events:
            self.accountant.compose(event, count=count, stage=self._stage, label=label)
        return self._source.rows()

    def describe(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "sizes": self.sizes}
