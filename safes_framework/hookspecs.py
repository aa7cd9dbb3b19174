"""Every hook specification of safes-framework, grouped by phase."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .privacy import LedgerEntry
    from .registry import Registry
    from .release import Release, RunInfo

hookspec = pluggy.HookspecMarker("safes_framework")

# -------------------------------------------------------------------------------------------
# Registration: called once when the plugin manager is built. Each hook receives a typed
# registry; call `register.add(name, factory, description=...)` for every component.
# -------------------------------------------------------------------------------------------


@hookspec
def safes_register_synthesizers(register: Registry) -> None:
    """Register differentially private synthesizers.

    Called once per plugin when the plugin manager first needs synthesizers.

    Args:
        register: a `Registry` of `safes_framework.Synthesizer` factories. Call
            `register.add("name", SynthesizerClass, description="...")`. The factory is called
            with the user's keyword parameters (at least `epsilon` and `delta`) and must return
            a `Synthesizer`.
    """


@hookspec
def safes_register_fairness_transformers(register: Registry) -> None:
    """Register fairness transformers (post-processing of the synthetic table).

    Called once per plugin when the plugin manager first needs fairness transformers.

    Args:
        register: a `Registry` of `safes_framework.FairnessTransformer` factories. Call
            `register.add("name", TransformerClass, description="...")`.
    """


@hookspec
def safes_register_metrics(register: Registry) -> None:
    """Register metrics (fairness and utility evaluations).

    Called once per plugin when the plugin manager first needs metrics.

    Args:
        register: a `Registry` of `safes_framework.Metric` factories. Call
            `register.add("name", MetricClass, description="...")`.
    """


# -------------------------------------------------------------------------------------------
# Run lifecycle: observers (progress bars, loggers, experiment trackers) follow a chain run.
# Return values are ignored.
# -------------------------------------------------------------------------------------------


@hookspec
def safes_run_started(run: RunInfo) -> None:
    """A chain run begins.

    Args:
        run: the run's identity and settings (id, seed, stage names, parameters).
    """


@hookspec
def safes_stage_started(run: RunInfo, stage: str) -> None:
    """A stage of the run begins.

    Args:
        run: the run.
        stage: "synthesizer", "sample", "fairness" or "metrics".
    """


@hookspec
def safes_stage_finished(run: RunInfo, stage: str, seconds: float) -> None:
    """A stage of the run ended successfully.

    Args:
        run: the run.
        stage: the stage's name.
        seconds: its wall time.
    """


@hookspec
def safes_privacy_spent(run: RunInfo, entry: LedgerEntry, epsilon: float, delta: float) -> None:
    """A DP primitive charged the run's accountant (after the charge was recorded).

    Args:
        run: the run.
        entry: the ledger entry just recorded (stage, label, mechanism, count).
        epsilon: the epsilon spent so far, at the run's `delta`.
        delta: the run's delta.
    """


@hookspec
def safes_progress(run: RunInfo, stage: str, step: int, total: int | None, message: str) -> None:
    """A long stage reports progress.

    Args:
        run: the run.
        stage: the stage reporting.
        step: units of work done so far.
        total: the expected total, or None if unknown.
        message: a short human-readable note (e.g. "round 3: measured ('age', 'sex')").
    """


@hookspec
def safes_run_finished(run: RunInfo, release: Release) -> None:
    """A chain run finished and produced `release`.

    Args:
        run: the run.
        release: the release (data, weights, privacy report, timings); for a release
            written in chunks (`SafesChain.stream`), a `StreamedRelease` (its directory, row
            count and records, no data in memory).
    """
