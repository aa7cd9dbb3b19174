"""The interfaces a plugin implements: synthesizer, fairness transformer, metric."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from .errors import ConfigError

if TYPE_CHECKING:
    from .primitives import PrivateTable
    from .schema import Schema


class StageContext:
    """What a running stage may use besides its inputs: progress reporting and its stage name.

    Args:
        stage: the stage's name ("synthesizer", "fairness", ...).
        progress: callable(step, total, message) forwarded to the `safes_progress` hook.
    """

    def __init__(
        self, stage: str, progress: Callable[[int, int | None, str], None] | None = None
    ) -> None:
        self.stage = stage
        self._progress = progress

    def progress(self, step: int, total: int | None = None, message: str = "") -> None:
        """Report that `step` of `total` units of work are done."""
        if self._progress is not None:
            self._progress(step, total, message)


# -- synthesizers -----------------------------------------------------------------------------


class Synthesizer(ABC):
    """A differentially private synthesizer.

    `fit` reads the sensitive table only through the `PrivateTable`'s DP primitives (which
    charge the run's accountant, whose budget is this synthesizer's (epsilon, delta)); `sample`
    is post-processing of what `fit` learned and may be called any number of times.

    The number of records is sensitive under add/remove neighbouring, so a release of as many
    rows as the input would reveal it. A synthesizer that holds a DP estimate of it after
    `fit` (a noisy total its model already carries costs nothing more) sets `estimates_rows`
    and implements `estimated_rows`; the chain then releases that many rows by default. One
    that cannot leaves `estimates_rows` False, and the chain requires `rows=N` from the caller
    before any budget is spent.

    Args:
        epsilon: the privacy budget's epsilon (> 0).
        delta: the privacy budget's delta (0 < delta < 1).
    """

    name: ClassVar[str] = ""
    #: Whether `estimated_rows()` gives a DP estimate of the number of records after `fit`.
    estimates_rows: ClassVar[bool] = False

    def __init__(self, epsilon: float, delta: float) -> None:
        if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
            raise ConfigError(f"epsilon must be a positive finite number, got {epsilon!r}")
        if not (isinstance(delta, (int, float)) and 0 < delta < 1):
            raise ConfigError(f"delta must lie strictly between 0 and 1, got {delta!r}")
        self.epsilon = float(epsilon)
        self.delta = float(delta)

    @abstractmethod
    def fit(self, data: PrivateTable, ctx: StageContext) -> None:
        """Learn a model of the table through `data`'s DP primitives."""

    @abstractmethod
    def sample(self, rows: int, rng: np.random.Generator) -> np.ndarray:
        """Draw `rows` synthetic records as an (rows, d) integer code matrix in schema order."""

    def preflight(self, data: PrivateTable) -> dict[str, Any]:
        """Check the settings against the public schema before any budget is spent.

        The chain calls it before the first DP primitive runs (and `safes run --dry-run`
        without reading any data), with a `PrivateTable` whose `columns`, `sizes` and
        `domain_size` are the release's domain and which refuses every primitive. Raise a
        `ConfigError` for settings that cannot run on this domain (a model too large, say);
        return a JSON-serialisable summary of the plan (shown by `--dry-run`). Part of the
        budget may already be spent when `fit` runs (DP bin edges): plan from what remains
        (`data.accountant.plan_zcdp()`). The default checks nothing.
        """
        return {}

    def estimated_rows(self) -> float:
        """A DP estimate of the number of records, computed in `fit` from noisy outputs only.

        Override together with `estimates_rows = True`. The chain rounds it to the release size
        (at least 1 row).
        """
        raise ConfigError(
            f"synthesizer {self.name or type(self).__name__!r} gives no DP estimate of the "
            "number of records; pass rows=N (--rows N) to choose the release size"
        )

    def params(self) -> dict[str, Any]:
        """The settings that define this synthesizer (recorded in the release)."""
        return {"epsilon": self.epsilon, "delta": self.delta}


# -- fairness transformers --------------------------------------------------------------------


@dataclass(frozen=True)
class FairnessOutput:
    """What a fairness transformer returns.

    Attributes:
        data: the transformed table, in the schema's labels.
        weights: per-row sample weights for downstream training, or None.
    """

    data: pd.DataFrame
    weights: np.ndarray | None = None


class FairnessTransformer(ABC):
    """A fairness transformer: post-processing of the synthetic table.

    It receives the synthetic table and the public schema only, never the original data, so the
    release keeps the synthesizer's (epsilon, delta) guarantee.
    """

    name: ClassVar[str] = ""

    @abstractmethod
    def fit(self, data: pd.DataFrame, schema: Schema) -> FairnessTransformer:
        """Learn the transformation from `data` (schema labels). Returns self."""

    @abstractmethod
    def transform(self, data: pd.DataFrame, rng: np.random.Generator) -> FairnessOutput:
        """Apply the learned transformation to `data`."""

    def fit_transform(
        self, data: pd.DataFrame, schema: Schema, rng: np.random.Generator
    ) -> FairnessOutput:
        return self.fit(data, schema).transform(data, rng)

    def preflight(self, schema: Schema) -> dict[str, Any]:
        """Check the settings against `schema` before any budget is spent, without data.

        The chain calls it before synthesis (and `safes run --dry-run`); raise a `ConfigError`
        for settings that cannot work on this schema (a distortion naming an unknown column,
        say), and return a JSON-serialisable summary of the plan. Columns with DP bin edges
        appear with provisional equal-width edges of the same count. The default checks
        nothing.
        """
        return {}

    def params(self) -> dict[str, Any]:
        """The settings that define this transformer (recorded in the release)."""
        return {}


# -- metrics ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricInputs:
    """Everything a metric may look at. Reading `train`/`test` is evaluation, not release.

    Attributes:
        release: the released table (schema labels).
        weights: the release's sample weights, or None.
        schema: the public schema.
        train: the real training table the release was made from, if given.
        test: a real held-out table, if given.
        seed: seed for any randomness the metric needs (model fitting, splits).
    """

    release: pd.DataFrame
    schema: Schema
    weights: np.ndarray | None = None
    train: pd.DataFrame | None = None
    test: pd.DataFrame | None = None
    seed: int = 0


@dataclass(frozen=True)
class MetricResult:
    """A metric's values and a statement of what they were computed on.

    Attributes:
        metric: the metric's registered name.
        values: named numbers (e.g. {"spd[sex]": -0.05}).
        measured_on: plain words on the data and groups used (e.g. "release, weighted").
        details: anything else worth keeping (JSON-serialisable).
    """

    metric: str
    values: Mapping[str, float]
    measured_on: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "values": {k: float(v) for k, v in self.values.items()},
            "measured_on": self.measured_on,
            "details": dict(self.details),
        }


class Metric(ABC):
    """A metric: a pure function of its inputs that says what it measured on."""

    name: ClassVar[str] = ""

    @abstractmethod
    def compute(self, inputs: MetricInputs) -> MetricResult:
        """Compute the metric."""

    def reads(self) -> frozenset[str]:
        """The real tables this metric reads: a subset of {"train", "test"}.

        The chain checks before any budget is spent that each is available (a metric that
        reads "test" needs `SafesChain.run(..., test=...)`). The default is the empty set.
        """
        return frozenset()

    def params(self) -> dict[str, Any]:
        return {}


def _component_name(obj: object) -> str:
    """The name a stage component is known by: its registered name, else its class name."""
    return getattr(obj, "name", "") or type(obj).__name__
