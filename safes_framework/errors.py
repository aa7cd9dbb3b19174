"""The exception hierarchy of safes-framework: every error the library raises on purpose."""

from __future__ import annotations


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
