"""What a chain run returns: the released table with its privacy report, settings and timings."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .base import MetricResult
from .errors import ConfigError
from .outputs import staged_directory, staged_file
from .schema import Continuous, Schema

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
    "opendp",
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


#: The mark on everything that reads the real table: evaluations are not part of a release.
NOT_PRIVATE = (
    "NOT differentially private: computed on the real (sensitive) table; for the data "
    "owner's own evaluation, not for publication"
)

#: The files of a release directory; nothing else is ever written there.
RELEASE_FILES = ("release.csv", "privacy.json", "run.json")


@dataclass(frozen=True)
class RunInfo:
    """Identity and settings of one chain run (handed to lifecycle hooks).

    It holds no seed: the noise of a release is never reproducible from anything recorded,
    and a caller's seed (experiments) is a secret that stays with the caller.

    Attributes:
        run_id: unique id of the run (random, from OS entropy).
        synthesizer: registered name (or class name) of the synthesizer, and its parameters.
        fairness: name of the fairness transformer, or None, and its parameters.
        metrics: names of the metrics (an evaluation: not written into the release).
        seeded: whether the DP noise comes from a caller's seed (an experiment) rather than
            from fresh OS entropy (a release).
        binning: the budget split of DP bin edges (`BinPlan.to_dict`), when the schema has any.
        fairness_failure: when the fairness stage failed after synthesis: the transformer's
            name and parameters and the error (the release then has no fairness).
        made_from: for a release made from another by `fair_release` (`safes fair`): the
            source release's run id and fairness.
    """

    run_id: str
    synthesizer: str
    synthesizer_params: Mapping[str, Any]
    fairness: str | None = None
    fairness_params: Mapping[str, Any] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    seeded: bool = False
    binning: Mapping[str, Any] | None = None
    fairness_failure: Mapping[str, Any] | None = None
    made_from: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "run_id": self.run_id,
            "synthesizer": {"name": self.synthesizer, "params": _jsonable(self.synthesizer_params)},
            "fairness": None
            if self.fairness is None
            else {"name": self.fairness, "params": _jsonable(self.fairness_params)},
            "seeded": self.seeded,
        }
        for key in ("binning", "fairness_failure", "made_from"):
            if getattr(self, key) is not None:
                out[key] = _jsonable(getattr(self, key))
        return out

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> RunInfo:
        """The run of a saved `run.json` (the inverse of `to_dict`)."""
        fairness = record.get("fairness")
        return cls(
            run_id=record["run_id"],
            synthesizer=record["synthesizer"]["name"],
            synthesizer_params=record["synthesizer"]["params"],
            fairness=None if fairness is None else fairness["name"],
            fairness_params={} if fairness is None else fairness["params"],
            seeded=bool(record.get("seeded", False)),
            binning=record.get("binning"),
            fairness_failure=record.get("fairness_failure"),
            made_from=record.get("made_from"),
        )


@dataclass(frozen=True)
class PrivacyReport:
    """The privacy guarantee of a release.

    Attributes:
        epsilon: epsilon spent, at `delta` (never above the budget).
        delta: the delta of the guarantee.
        budget: the declared (epsilon, delta) budget.
        ledger: every spend, in order (stage, mechanism, parameters, count).
        neighbouring: the neighbouring relation the guarantee is stated for.
        noise: where the noise came from and how it was drawn (see `NoiseSource.describe`).
        release_size: how the number of released rows was chosen.
        assumptions: what the guarantee relies on beyond the mathematics.
    """

    epsilon: float
    delta: float
    budget: tuple[float, float]
    ledger: tuple[Mapping[str, Any], ...]
    neighbouring: str = "add/remove one record"
    noise: Mapping[str, Any] = field(default_factory=dict)
    release_size: str = ""
    assumptions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "budget": {"epsilon": self.budget[0], "delta": self.budget[1]},
            "neighbouring": self.neighbouring,
            "noise": _jsonable(self.noise),
            "release_size": self.release_size,
            "assumptions": list(self.assumptions),
            "ledger": [_jsonable(e) for e in self.ledger],
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> PrivacyReport:
        """The report of a saved `privacy.json` (the inverse of `to_dict`)."""
        return cls(
            epsilon=float(record["epsilon"]),
            delta=float(record["delta"]),
            budget=(float(record["budget"]["epsilon"]), float(record["budget"]["delta"])),
            ledger=tuple(record["ledger"]),
            neighbouring=record["neighbouring"],
            noise=record["noise"],
            release_size=record["release_size"],
            assumptions=tuple(record["assumptions"]),
        )


@dataclass(frozen=True)
class Release:
    """A differentially private (and possibly fairer) release, with in-memory evaluation.

    Only `data`, `weights`, `privacy`, `schema`, `run`, `seeds` and `versions` are part of the
    release; `save` writes those and nothing else. `timings` and `metrics` read the real table
    (directly, or through its size) and stay in memory for research code; `save_evaluation`
    writes them to a separate file marked as not private.

    Attributes:
        data: the released table, in the schema's labels.
        weights: per-row sample weights for downstream training, or None.
        privacy: the (epsilon, delta) guarantee, its ledger and the noise it used.
        schema: the public schema of `data`.
        run: the run's identity and settings.
        seeds: seeds of the post-processing stages (sampling from the fitted model, the
            fairness transform), when they are independent of the DP noise; empty when they
            were derived from a caller's secret seed (they would reveal it).
        versions: versions of Python and the packages involved.
        timings: wall seconds per stage (not part of the release: they grow with the data).
        metrics: results of the chain's metrics (evaluation, not part of the release).
    """

    data: pd.DataFrame
    weights: np.ndarray | None
    privacy: PrivacyReport
    schema: Schema
    run: RunInfo
    seeds: Mapping[str, Any]
    versions: Mapping[str, str]
    timings: Mapping[str, float] = field(default_factory=dict)
    metrics: Mapping[str, MetricResult] = field(default_factory=dict)

    def run_record(self) -> dict[str, Any]:
        """`run.json`: settings, released row count, post-processing seeds, versions, schema."""
        return {
            **self.run.to_dict(),
            "rows": len(self.data),
            "weights": self.weights is not None,
            "seeds": _jsonable(self.seeds),
            "versions": dict(self.versions),
            "schema": self.schema.to_dict(),
        }

    def evaluation_record(self) -> dict[str, Any]:
        """Metrics and timings of the run, marked as not private (never part of a release)."""
        return {
            "warning": NOT_PRIVATE,
            "run_id": self.run.run_id,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
            "timings": {k: round(v, 6) for k, v in self.timings.items()},
        }

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Release:
        """A saved release: `release.csv`, `privacy.json` and `run.json` of `directory`.

        The table is read in the dtypes the schema declares (see `Schema.decode`) and checked
        against it; a `weight` column becomes `weights`. Nothing else is read: no original
        data, no evaluation. Metrics and timings are empty.

        Raises:
            ConfigError: `directory` is not a release directory, or a file is unreadable.
            DataError: the table does not fit the release's schema.
        """
        from .io import read_table

        directory = Path(directory)
        if not directory.is_dir():
            raise ConfigError(f"release directory {str(directory)!r} does not exist")
        missing = [f for f in RELEASE_FILES if not (directory / f).is_file()]
        if missing:
            raise ConfigError(
                f"{str(directory)!r} is not a release directory: {missing[0]} is missing "
                f"(a release holds {', '.join(RELEASE_FILES)})"
            )
        try:
            run = json.loads((directory / "run.json").read_text())
            privacy = PrivacyReport.from_dict(
                json.loads((directory / "privacy.json").read_text())
            )
            info = RunInfo.from_dict(run)
            schema = Schema.from_dict(run["schema"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"release {str(directory)!r}: cannot read run.json / privacy.json: {exc!r}"
            ) from None
        data = read_table(directory / "release.csv", schema=schema)
        weights = None
        if run.get("weights"):
            if "weight" not in data.columns:
                raise ConfigError(f"release {str(directory)!r}: release.csv has no weight column")
            weights = data.pop("weight").to_numpy(dtype=np.float64)
        data = data.loc[:, [c for c in schema.names if c in data.columns]]
        schema.validate(data)
        for col in schema.columns:
            if isinstance(col, Continuous) and not col.integer:
                data[col.name] = data[col.name].astype(np.float64)
        return cls(
            data=data,
            weights=weights,
            privacy=privacy,
            schema=schema,
            run=info,
            seeds=run.get("seeds", {}),
            versions=run.get("versions", {}),
        )

    def save(
        self,
        out: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        extra: Mapping[str, Any] | None = None,
        format: str = "csv",
    ) -> Path:
        """Write `release.csv`, `privacy.json` and `run.json` into directory `out`.

        With `format="parquet"` the table is `release.parquet` instead of `release.csv`.

        Nothing else goes there: metrics and timings read the real table and belong in
        `save_evaluation`'s file. Files are written to a temporary directory first and moved
        into place together, so an error never leaves a half-written release. Weights, if any,
        are a `weight` column of `release.csv`. `extra` is merged into `run.json` (public
        settings such as the dataset's name; never a seed or a statistic of the real table).

        The temporary directory is `out`'s sibling `.safes-partial-<host>-<pid>-...`
        (`outputs.staged_directory`); one left by a process killed while saving is removed by
        the next save into the same parent directory.

        Raises:
            ConfigError: `out` is not empty (without `overwrite`), is a file, or cannot be
                created.
        """
        from .streaming import release_file, write_table

        table_file = release_file(format)
        with staged_directory(out, overwrite=overwrite) as tmp:
            table = self.data
            if self.weights is not None:
                table = table.assign(weight=self.weights)
            write_table(tmp / table_file, [table], format)
            (tmp / "privacy.json").write_text(json.dumps(self.privacy.to_dict(), indent=2))
            (tmp / "run.json").write_text(
                json.dumps({**self.run_record(), **_jsonable(extra or {})}, indent=2)
            )
        return Path(out)

    def save_evaluation(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write metrics and timings to the JSON file `path`, marked as not private.

        Keep it outside the release directory and do not publish it: it is computed on the
        real table.
        """
        path = Path(path)
        with staged_file(path, overwrite=overwrite) as tmp:
            tmp.write_text(json.dumps(self.evaluation_record(), indent=2))
        return path


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
