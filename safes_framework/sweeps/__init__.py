"""Sweeps (research, not releases): config, result store, executors, the driver, summaries.

A sweep runs the evaluation protocol (`safes_framework.evaluation`) over datasets x epsilon x
eta x repeats, stores one row per metric value as units finish, and resumes after an
interruption. `safes sweep` and `safes validate` are in `commands`.
"""

from .config import EXECUTORS, FORMATS, SweepConfig
from .running import run_sweep
from .store import ResultStore, read_results
from .summary import SweepSummary

__all__ = [
    "EXECUTORS",
    "FORMATS",
    "ResultStore",
    "SweepConfig",
    "SweepSummary",
    "read_results",
    "run_sweep",
]
