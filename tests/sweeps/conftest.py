"""Fixtures of the sweep tests: the fast stand-in plugins."""

from stand_ins import fast_plugins

__all__ = ["fast_plugins"]
