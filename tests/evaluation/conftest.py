"""Fixtures of the evaluation-protocol and report tests: the fast stand-in plugins."""

from stand_ins import fast_plugins

__all__ = ["fast_plugins"]
