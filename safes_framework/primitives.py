"""DP primitives: how a synthesizer reads the sensitive table; each charges the accountant."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from .access import Clique, CompressedSource, CountSource, fetch_marginals
from .errors import ConfigError, PrivacyError
from .privacy import ExponentialMechanism, Gaussian, RDPAccountant
from .privacy.noise import INT_LIMIT, NoiseSource

if TYPE_CHECKING:
    from .privacy.events import DpEvent
    from .schema import Schema

logger = logging.getLogger(__name__)

#: Selection scores are exact integers in units of 1/SCORE_UNITS of a record (estimates are
#: rounded to that lattice first), so their sensitivity is exactly SCORE_UNITS.
SCORE_UNITS = 2**16


@dataclass(frozen=True)
class Measurement:
    """A noisy marginal: integer counts of `clique` plus discrete Gaussian noise of std `sigma`.

    `values` (int64) is flattened in C order of the clique's domain sizes. Add/remove-one
    neighbouring: one record changes one cell by 1, so the L2 sensitivity of a marginal is 1.
    """

    clique: Clique
    values: np.ndarray
    sigma: float


class PrivateTable:
    """The handle a synthesizer gets on the sensitive table: public schema plus DP primitives.

    It never exposes rows or exact counts. Every primitive asks the accountant before drawing
    noise (a spend beyond the budget raises `BudgetExceededError` and nothing is drawn), then
    draws from the run's noise source: `SecureNoise` (exact, OS entropy) for releases, or
    `SeededNoise` (a caller's secret seed, floating-point) for experiments.

    Args:
        source: where the rows live.
        schema: the public schema (domains come from here).
        accountant: the run's ledger and budget filter.
        noise: the run's noise source.
        stage: the stage name recorded in the ledger.
    """

    def __init__(
        self,
        source: CountSource,
        schema: Schema,
        accountant: RDPAccountant,
        noise: NoiseSource,
        *,
        stage: str = "synthesizer",
    ) -> None:
        if not isinstance(noise, NoiseSource):
            raise PrivacyError(
                f"PrivateTable needs a NoiseSource, got {type(noise).__name__}: SecureNoise() "
                "for a release, or SeededNoise(seed_sequence) for a reproducible experiment"
            )
        self._source = source
        self._sizes = dict(source.sizes)
        self.schema = schema
        self.accountant = accountant
        self._noise = noise
        self._stage = stage
        self._audit = {"rows_read": False}  # shared with compressed views

    # -- public facts --------------------------------------------------------------------------

    @property
    def sizes(self) -> dict[str, int]:
        """Public domain size of every column (after compression, if this is a compressed view)."""
        return dict(self._sizes)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self._sizes)

    @property
    def rows_read(self) -> bool:
        """Whether a mechanism has read raw rows through `rows` (on this table or a view)."""
        return self._audit["rows_read"]

    def domain_size(self, clique: Sequence[str]) -> int:
        """Cells of the marginal on `clique` (an exact integer)."""
        return math.prod(self._sizes[c] for c in clique)

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
        The view shares this table's accountant and noise source.
        """
        view = PrivateTable.__new__(PrivateTable)
        view.__dict__.update(self.__dict__)
        view._source = CompressedSource(self._source, mapping)
        view._sizes = dict(view._source.sizes)
        return view

    def secret_seed(self, purpose: str) -> np.random.SeedSequence:
        """A seed for a mechanism that draws its own noise (DP-SGD through torch, say).

        From OS entropy on the release path, from the caller's secret seed in experiments;
        never recorded. The privacy report lists `purpose` and says that this noise is the
        mechanism's own floating-point noise. Declare the mechanism's events (`rows`) before
        drawing from it.
        """
        return self._noise.secret_seed(purpose)

    # -- Gaussian measurement ------------------------------------------------------------------

    def measure(
        self, cliques: Sequence[Sequence[str]], sigma: float, *, label: str = "measure"
    ) -> list[Measurement]:
        """Measure the marginals on `cliques` with discrete Gaussian noise of std `sigma`.

        Charged as `len(cliques)` Gaussian mechanisms with noise multiplier `sigma` (L2
        sensitivity 1 per marginal under add/remove-one; the discrete Gaussian has the
        continuous one's Rényi curve for integer queries, Canonne, Kamath & Steinke 2020).
        """
        checked = [self._check_clique(c) for c in cliques]
        if not checked:
            return []
        if isinstance(sigma, bool) or not (
            isinstance(sigma, (int, float, np.floating)) and np.isfinite(sigma) and sigma > 0
        ):
            raise PrivacyError(f"noise std sigma must be positive and finite, got {sigma!r}")
        self.accountant.compose(
            Gaussian(noise_multiplier=float(sigma)),
            count=len(checked),
            stage=self._stage,
            label=label,
        )
        exact = fetch_marginals(self._source, checked)  # one scan for all, where the source can
        out = []
        for clique in checked:
            counts = exact[clique]
            noisy = self._noise.discrete_gaussian(counts, float(sigma))
            noisy.setflags(write=False)
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

        Quality of candidate r: `(w_r / max w) * (||M_r(D) - estimate_r||_1 - penalty_r)`,
        where M_r(D) are the exact counts and `estimate_r` comes from public information (the
        model fitted to earlier noisy measurements). Under add/remove-one, each quality moves
        by at most 1. The choice is drawn with probability proportional to
        exp(epsilon * quality / 2) and charged as an `ExponentialMechanism(epsilon)`
        (bounded-range analysis, rho = epsilon^2 / 8).

        The qualities are computed exactly, as integers in units of 1/`SCORE_UNITS` of a
        record: estimates and penalties are first rounded to that lattice (public
        post-processing), the L1 errors summed in integers and the weight ratios applied as
        exact fractions, rounded down. The integer score then has sensitivity exactly
        `SCORE_UNITS` (flooring cannot widen an integer gap), so floating-point rounding can
        never raise the sensitivity above what is charged. The argmax of the scores plus
        Gumbel noise of scale 2 * SCORE_UNITS / epsilon is drawn by the noise source.

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
        if isinstance(epsilon, bool) or not (
            isinstance(epsilon, (int, float, np.floating)) and np.isfinite(epsilon) and epsilon > 0
        ):
            raise PrivacyError(f"selection epsilon must be positive and finite, got {epsilon!r}")
        w = np.ones(len(checked)) if weights is None else np.asarray(weights, dtype=np.float64)
        pen = np.zeros(len(checked)) if penalties is None else np.asarray(penalties, float)
        if w.shape != (len(checked),) or pen.shape != (len(checked),):
            raise ConfigError("weights and penalties need one entry per candidate")
        if (w < 0).any() or not np.isfinite(w).all() or w.max() <= 0:
            raise ConfigError("weights must be finite, non-negative, and not all zero")
        if not np.isfinite(pen).all() or (np.abs(pen) * SCORE_UNITS > INT_LIMIT).any():
            raise ConfigError("penalties must be finite and below 2**46 in magnitude")
        get = estimates if callable(estimates) else estimates.__getitem__
        cells = [self.domain_size(c) for c in checked]
        values = []
        for c, size in zip(checked, cells, strict=True):
            e = np.asarray(get(c), dtype=np.float64).ravel()
            if e.shape != (size,):
                raise ConfigError(f"estimate for {c} has {e.size} cells, expected {size}")
            values.append(e)
        starts = np.cumsum([0, *cells[:-1]])
        flat = np.concatenate(values)
        magnitude = np.add.reduceat(np.abs(flat), starts) * SCORE_UNITS
        bad = ~(np.isfinite(magnitude) & (magnitude <= INT_LIMIT))
        if bad.any():
            raise ConfigError(
                f"estimate for {checked[int(np.argmax(bad))]} must be finite, with absolute "
                "values summing below 2**46"
            )
        lattice = np.rint(flat * SCORE_UNITS).astype(np.int64)
        self.accountant.compose(
            ExponentialMechanism(epsilon=float(epsilon)), stage=self._stage, label=label
        )
        exact = fetch_marginals(self._source, checked)  # one scan for the round, where possible
        counts = np.concatenate([np.asarray(exact[c], dtype=np.int64).ravel() for c in checked])
        if int(np.add.reduceat(counts, starts).max()) > INT_LIMIT // SCORE_UNITS:
            raise PrivacyError("tables of more than 2**46 records cannot be scored exactly")
        # Integer arithmetic throughout: |counts - estimate| summed per candidate, less the
        # penalty, times w_r / max w as an exact fraction, rounded down.
        errors = np.add.reduceat(np.abs(counts * SCORE_UNITS - lattice), starts)
        offsets = np.rint(pen * SCORE_UNITS).astype(np.int64)
        w_max = Fraction(float(w.max()))
        ratios: dict[float, Fraction] = {}
        scores = []
        for error, offset, w_r in zip(errors.tolist(), offsets.tolist(), w.tolist(), strict=True):
            ratio = ratios.get(w_r)
            if ratio is None:
                ratio = ratios[w_r] = Fraction(w_r) / w_max
            scores.append((error - offset) * ratio.numerator // ratio.denominator)
        # Gumbel scale 2*Delta/epsilon with Delta = SCORE_UNITS; rounded up, so that the
        # mechanism's epsilon is at most the one charged.
        scale = float(np.nextafter(2.0 * SCORE_UNITS / float(epsilon), np.inf))
        return checked[self._noise.noisy_max(scores, scale)]

    # -- quantiles -----------------------------------------------------------------------------

    def quantiles(
        self,
        column: str,
        quantiles: Sequence[Fraction | float],
        *,
        epsilon: float,
        label: str = "quantiles",
    ) -> list[int]:
        """For each quantile q, a boundary b in 1..size-1 of `column`'s codes, by the
        exponential mechanism: about a share q of the records has a code below b.

        Candidate b splits the codes into those below b and the rest; with c(b) the exact
        number of records below b, n the number of records and q = a/m in lowest terms, its
        integer score is -|m c(b) - a n|. Adding or removing one record moves c(b) - q n by
        1 - q or q, so the score moves by at most Delta = max(a, m - a). The choice is the
        argmax of the scores plus Gumbel noise of scale 2 Delta / epsilon (rounded up), drawn
        by the run's noise source: exactly the exponential mechanism with `epsilon`, charged as
        one `ExponentialMechanism(epsilon)` per quantile before anything is read. A float
        quantile is taken as the nearest fraction with a denominator of at most 2**20.

        Args:
            column: the column (its codes must be ordered: a binned or integer column).
            quantiles: the target shares, each strictly between 0 and 1.
            epsilon: each selection's epsilon.
            label: the ledger label.

        Returns:
            One boundary per quantile, in the order given (not necessarily increasing).
        """
        (col,) = self._check_clique((column,))
        size = self._sizes[col]
        if size < 2:
            raise ConfigError(f"column {col!r} has a single code: it has no quantiles")
        if isinstance(epsilon, bool) or not (
            isinstance(epsilon, (int, float, np.floating)) and np.isfinite(epsilon) and epsilon > 0
        ):
            raise PrivacyError(f"quantile epsilon must be positive and finite, got {epsilon!r}")
        targets = []
        for q in quantiles:
            f = Fraction(q).limit_denominator(2**20) if not isinstance(q, Fraction) else q
            if not 0 < f < 1:
                raise ConfigError(f"quantiles must lie strictly between 0 and 1, got {q!r}")
            targets.append(f)
        if not targets:
            return []
        self.accountant.compose(
            ExponentialMechanism(epsilon=float(epsilon)),
            count=len(targets),
            stage=self._stage,
            label=label,
        )
        counts = np.asarray(self._source.marginal((col,)), dtype=np.int64)
        n = int(counts.sum())
        below = np.cumsum(counts)[:-1]  # records with a code below b, for b = 1..size-1
        out = []
        for f in targets:
            a, m = f.numerator, f.denominator
            if m * max(n, 1) > INT_LIMIT:
                raise PrivacyError("the table is too large to score this quantile exactly")
            scores = -np.abs(m * below - a * n)
            delta = max(a, m - a)
            scale = float(np.nextafter(2.0 * delta / float(epsilon), np.inf))
            out.append(1 + self._noise.noisy_max(scores.tolist(), scale))
        return out

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
        self._audit["rows_read"] = True
        return self._source.rows()

    def describe(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "sizes": self.sizes}
