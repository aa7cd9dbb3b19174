"""The exception and warning hierarchy of safes-framework: what the library raises on purpose."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .release import Release


class SafesError(Exception):
    """Root of every error raised on purpose by safes-framework and its built-in plugins."""


class SchemaError(SafesError):
    """A schema declaration is inconsistent (unknown column, bad bounds, bad label...)."""


class DataError(SafesError):
    """A table does not fit its declared schema.

    Attributes:
        column: the offending column, or None when the problem is the table as a whole.
        value: the offending value, when there is one.
    """

    def __init__(self, message: str, *, column: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.column = column
        self.value = value


class MissingColumnError(DataError):
    """A column declared in the schema is absent from the table."""


class DomainError(DataError):
    """A value lies outside the declared domain of its column (includes NaN)."""


class DtypeError(DataError):
    """A column has a dtype that cannot hold values of its declared kind."""


class EmptyDataError(DataError):
    """The table has no rows."""


class PrivacyError(SafesError):
    """Misuse of the privacy machinery (bad mechanism parameters, bad budget)."""


class BudgetExceededError(PrivacyError):
    """A spend would push the ledger past its declared (epsilon, delta) budget.

    Raised before any noise is drawn; nothing is recorded.
    """


class PluginError(SafesError):
    """A plugin could not be loaded, registered or found."""


class ExecutorError(SafesError):
    """A sweep's executor lost every unit it was given (the first worker's error says why)."""


class UnknownPluginError(PluginError):
    """No plugin of that kind is registered under that name."""


class PluginUnavailableError(PluginError):
    """A registered component cannot run here, e.g. its optional dependencies are missing."""


class ConfigError(SafesError):
    """Bad settings given to a plugin, a chain, a sweep or the command line."""


class InfeasibleError(SafesError):
    """An optimisation problem has no solution; the message names the binding constraint."""


class SolverError(SafesError):
    """A numerical solver failed (as opposed to proving infeasibility)."""


class ReleaseKeptError(SafesError):
    """A stage after synthesis failed; the release that was paid for is not lost.

    Attributes:
        release: the release as far as it got (see the subclasses); save it.
    """

    def __init__(self, message: str, *, release: Release) -> None:
        super().__init__(message)
        self.release = release


class FairnessStageError(ReleaseKeptError):
    """The fairness stage failed after synthesis; the DP synthetic data is not lost.

    `release` is the release without fairness (the DP synthetic table, `run.fairness` None,
    `run.fairness_failure` saying what failed). Save it and apply fairness to it again
    (`fair_release`, `safes fair`): post-processing, no further privacy cost.
    """


class MetricsStageError(ReleaseKeptError):
    """A metric failed after the release was made; `release` is complete (with the metrics
    that succeeded). Metrics are an evaluation, not part of the release."""

class SafesWarning(UserWarning):
    """Root of the warnings issued on purpose by safes-framework."""


class PrivacyWarning(SafesWarning):
    """A setting is legal but weakens the guarantee (e.g. delta of the order of 1/n)."""


class PluginWarning(SafesWarning):
    """A third-party plugin failed to load or register and was disabled."""


class SmallTableWarning(SafesWarning):
    """The sensitive table is too small for a release to carry information (one record)."""
