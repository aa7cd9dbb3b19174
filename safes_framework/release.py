"""What a chain run returns: the released table with its privacy report, settings and timings."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .base import MetricResult
from .errors import ConfigError
from .schema import Schema

_VERSIONED = (
    "safes-framework",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "mbi",
    "jax",
    "cvxpy",
    "pluggy",
)


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape a release."""
    out = {"python": platform.python_version()}
    for dist in _VERSIONED:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


@dataclass(frozen=True)
class RunInfo:
    """Identity and settings of one chain run (handed to lifecycle hooks).

    Attributes:
        run_id: unique id of the run.
        seed: the root seed (entropy of the run's `SeedSequence`); rerunning with it reproduces
            the release.
        synthesizer: registered name (or class name) of the synthesizer, and its parameters.
        fairness: name of the fairness transformer, or None, and its parameters.
        metrics: names of the metrics.
    """

    run_id: str
    seed: int
    synthesizer: str
    synthesizer_params: Mapping[str, Any]
    fairness: str | None = None
    fairness_params: Mapping[str, Any] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "seed": self.seed,
            "synthesizer": {"name": self.synthesizer, "params": _jsonable(self.synthesizer_params)},
            "fairness": None
            if self.fairness is None
            else {"name": self.fairness, "params": _jsonable(self.fairness_params)},
            "metrics": list(self.metrics),
        }


@dataclass(frozen=True)
class PrivacyReport:
    """The privacy guarantee of a release.

    Attributes:
        epsilon: epsilon spent, at `delta` (never above the budget).
        delta: the delta of the guarantee.
        budget: the declared (epsilon, delta) budget.
        ledger: every spend, in order (stage, mechanism, parameters, count).
        neighbouring: the neighbouring relation the guarantee is stated for.
        assumptions: public facts the release relies on beyond the schema (e.g. the row count).
    """

    epsilon: float
    delta: float
    budget: tuple[float, float]
    ledger: tuple[Mapping[str, Any], ...]
    neighbouring: str = "add/remove one record"
    assumptions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "budget": {"epsilon": self.budget[0], "delta": self.budget[1]},
            "neighbouring": self.neighbouring,
            "assumptions": list(self.assumptions),
            "ledger": [_jsonable(e) for e in self.ledger],
        }


@dataclass(frozen=True)
class Release:
    """A differentially private (and possibly fairer) release.

    Attributes:
        data: the released table, in the schema's labels.
        weights: per-row sample weights for downstream training, or None.
        privacy: the (epsilon, delta) guarantee and its ledger.
        timings: wall seconds per stage.
        schema: the public schema of `data`.
        run: the run's identity and settings.
        seeds: the root seed and how stage seeds were derived.
        versions: versions of Python and the packages involved.
        metrics: results of the chain's metrics (evaluation, not part of the release).
    """

    data: pd.DataFrame
    weights: np.ndarray | None
    privacy: PrivacyReport
    timings: Mapping[str, float]
    schema: Schema
    run: RunInfo
    seeds: Mapping[str, Any]
    versions: Mapping[str, str]
    metrics: Mapping[str, MetricResult] = field(default_factory=dict)

    def run_record(self) -> dict[str, Any]:
        """Settings, seeds, versions, timings and metrics as a JSON-serialisable dict."""
        return {
            **self.run.to_dict(),
            "rows": len(self.data),
            "weights": self.weights is not None,
            "seeds": _jsonable(self.seeds),
            "versions": dict(self.versions),
            "timings": {k: round(v, 6) for k, v in self.timings.items()},
            "schema": self.schema.to_dict(),
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
        }

    def save(
        self,
        out: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write `release.csv`, `privacy.json` and `run.json` into directory `out`.

        Files are written to a temporary directory first and moved into place together, so an
        error never leaves a half-written release. Weights, if any, are a `weight` column of
        `release.csv`. `extra` is merged into `run.json` (e.g. the dataset's name).
        """
        out = Path(out)
        if out.exists() and any(out.iterdir()) and not overwrite:
            raise ConfigError(f"output directory {str(out)!r} is not empty (pass overwrite)")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".safes-", dir=out.parent))
        try:
            table = self.data
            if self.weights is not None:
                table = table.assign(weight=self.weights)
            table.to_csv(tmp / "release.csv", index=False)
            (tmp / "privacy.json").write_text(json.dumps(self.privacy.to_dict(), indent=2))
            (tmp / "run.json").write_text(
                json.dumps({**self.run_record(), **_jsonable(extra or {})}, indent=2)
            )
            out.mkdir(exist_ok=True)
            for f in ("release.csv", "privacy.json", "run.json"):
                os.replace(tmp / f, out / f)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return out


def _jsonable(value: Any) -> Any:
    """Plain JSON types from numpy scalars/arrays, tuples and nested mappings."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)
