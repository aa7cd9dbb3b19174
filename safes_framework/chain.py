"""SafesChain: DP synthesis, then fairness on the synthetic table only, then metrics."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import secrets
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from .access import Clique, InMemorySource
from .backends import open_source
from .base import (
    FairnessOutput,
    FairnessTransformer,
    Metric,
    MetricInputs,
    MetricResult,
    StageContext,
    Synthesizer,
)
from .binning import DEFAULT_BIN_SHARE, check_share, choose_edges, plan_bins
from .binning import STAGE as BINNING
from .errors import (
    BudgetExceededError,
    ConfigError,
    FairnessStageError,
    MetricsStageError,
    PrivacyError,
    PrivacyWarning,
    SafesError,
    SmallTableWarning,
)
from .ingest import DEFAULT_CHUNK_ROWS, encode_table
from .outputs import check_output_dir
from .plugins import PluginManager, get_plugin_manager
from .primitives import PrivateTable
from .privacy import RDPAccountant
from .privacy.accountant import NEIGHBOURING
from .privacy.noise import NoiseSource, SecureNoise, SeededNoise
from .release import PrivacyReport, Release, RunInfo, _jsonable, versions
from .schema import Schema
from .streaming import (
    StreamedRelease,
    release_file,
    sample_chunks,
    save_directory,
    write_streamed_release,
)

logger = logging.getLogger(__name__)

#: What every release's guarantee relies on beyond the mathematics (see docs/privacy.md).
ASSUMPTIONS = (
    "every record takes values in the schema's declared domain, and the schema is public "
    "(it was not read from the data)",
    "the table has at least one record",
)
SEED_ASSUMPTION = (
    "the caller's seed stays secret: whoever holds it can reproduce the noise, and then the "
    "release protects nobody"
)
ROWS_ASSUMPTION = (
    "the synthesizer's use of the rows it read matches the privacy events it declared first"
)
ESTIMATED_SIZE = (
    "a DP estimate of the number of records (the synthesizer's noisy total: post-processing "
    "of its measurements), rounded, at least 1"
)


def _component_name(obj: object) -> str:
    return getattr(obj, "name", "") or type(obj).__name__


class SafesChain:
    """Compose a DP synthesizer, an optional fairness transformer and metrics.

    The synthesizer is the only stage that reads the sensitive table, through DP primitives
    that charge an accountant whose budget is the synthesizer's (epsilon, delta). The fairness
    stage receives the synthetic table and the public schema and nothing else, so by the
    post-processing property the release keeps the synthesizer's guarantee. Metrics run last;
    they may read real data and are an evaluation, not part of the release.

    Args:
        synthesizer: a configured `Synthesizer` (see `safes_framework.synthesizer`).
        fairness: a `FairnessTransformer`, a registered name, or None for plain DP synthesis.
        metrics: `Metric` instances or registered names.
        seed: None (the default, and the only choice for a release): the DP noise is exact and
            drawn from OS entropy that is never recorded; post-processing stages get fresh
            seeds that the release records. An integer makes the whole run reproducible for
            experiments: the noise is then floating-point and derived from this seed, which
            is a secret: it is never written anywhere, and the guarantee holds only while it
            stays secret (the privacy report says so).
        rows: number of released rows; None releases the synthesizer's DP estimate of the
            number of records (a synthesizer without one needs rows=N).
        bin_share: the share of the budget (as zCDP) spent on DP bin edges, when the schema
            has columns declared with `edges = "dp"` (`QuantileBinned`); see
            `safes_framework.binning` and docs/privacy.md.
        plugin_manager: the manager whose lifecycle hooks observe the run (default: global).
    """

    def __init__(
        self,
        synthesizer: Synthesizer,
        fairness: FairnessTransformer | str | None = None,
        metrics: Sequence[Metric | str] = (),
        seed: int | None = None,
        *,
        rows: int | None = None,
        bin_share: float = DEFAULT_BIN_SHARE,
        plugin_manager: PluginManager | None = None,
    ) -> None:
        self._pm = plugin_manager or get_plugin_manager()
        self.bin_share = check_share(bin_share)
        if not isinstance(synthesizer, Synthesizer):
            raise ConfigError(
                f"synthesizer must be a configured Synthesizer, got {synthesizer!r}; use "
                "safes_framework.synthesizer(name, epsilon=..., delta=...)"
            )
        if isinstance(fairness, str):
            fairness = self._pm.fairness_transformers.create(fairness)
        if fairness is not None and not isinstance(fairness, FairnessTransformer):
            raise ConfigError(f"fairness must be a FairnessTransformer or a name, got {fairness!r}")
        resolved = []
        for m in metrics:
            m = self._pm.metrics.create(m) if isinstance(m, str) else m
            if not isinstance(m, Metric):
                raise ConfigError(f"metrics must be Metric instances or names, got {m!r}")
            resolved.append(m)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ConfigError(f"seed must be a non-negative integer or None, got {seed!r}")
        if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
            raise ConfigError(f"rows must be a positive integer or None, got {rows!r}")
        if rows is None and not synthesizer.estimates_rows:
            raise ConfigError(
                f"synthesizer {_component_name(synthesizer)!r} gives no DP estimate of the "
                "number of records, and releasing as many rows as the input would reveal it; "
                "pass rows=N (--rows N)"
            )
        self.synthesizer = synthesizer
        self.fairness = fairness
        self.metrics = tuple(resolved)
        self.seed = seed
        self.rows = rows

    def _streams(self) -> tuple[NoiseSource, dict[str, int], dict[str, int]]:
        """The noise source, the post-processing seeds, and which of them may be recorded.

        Seeded (an experiment): everything derives from the caller's seed, so nothing is
        recorded (a derived seed could give the secret away). Unseeded (a release): the noise
        is `SecureNoise` (OS entropy, never seen here) and each post-processing stage gets a
        fresh seed of its own, independent of the noise, which the release records.
        """
        if self.seed is not None:
            root = np.random.SeedSequence(self.seed)
            noise_seq, *post = root.spawn(4)
            seeds = {
                stage: int.from_bytes(seq.generate_state(4, np.uint32).tobytes(), "little") >> 1
                for stage, seq in zip(("sample", "fairness", "metrics"), post, strict=True)
            }
            return SeededNoise(noise_seq), seeds, {}
        seeds = {stage: secrets.randbits(127) for stage in ("sample", "fairness", "metrics")}
        recorded = {"sample": seeds["sample"]}
        if self.fairness is not None:
            recorded["fairness"] = seeds["fairness"]
        return SecureNoise(), seeds, recorded

    def plan(self, schema: Schema, *, test: bool = False) -> dict[str, Any]:
        """Check everything that needs no data, and return the run's plan.

        `run` calls this before it reads the sensitive table, so that no error that could be
        known without the data comes after budget is spent; `safes run --dry-run` prints it.
        It checks that every metric has the real tables it reads, plans the budget split (DP
        bin edges, then the synthesizer), and runs the synthesizer's and the fairness
        transformer's pre-flight checks on the schema (with provisional equal-width edges for
        columns whose edges are DP quantiles: the domain sizes are the same).

        Args:
            schema: the public schema.
            test: whether a real test table will be given to `run`.

        Returns:
            A JSON-serialisable plan: budget (epsilon, delta, the zCDP rho of the whole budget
            and what the synthesizer gets), binning, synthesizer, fairness, metrics, rows.

        Raises:
            ConfigError: a metric lacks a table, or a plugin's pre-flight refuses the schema.
        """
        if not isinstance(schema, Schema):
            raise ConfigError(
                f"schema must be a safes_framework.Schema, got {type(schema).__name__}"
            )
        for m in self.metrics:
            missing = sorted(set(m.reads()) - {"train"} - ({"test"} if test else set()))
            if missing:
                raise ConfigError(
                    f"metric {_component_name(m)!r} reads the real {missing[0]} table, and "
                    "none is given; pass run(..., test=TABLE) (safes run --test FILE) or drop "
                    "the metric"
                )
        budget = (self.synthesizer.epsilon, self.synthesizer.delta)
        trial = RDPAccountant(budget=budget)
        rho_total = _planned_rho(trial)
        bins = plan_bins(schema, trial, self.bin_share)
        if bins is not None:
            bins.charge(trial)
        provisional = schema.provisional()
        table = PrivateTable(
            _DomainOnly(provisional.sizes),
            provisional,
            trial.copy(),
            SeededNoise(np.random.SeedSequence(0)),
            stage="synthesizer",
        )
        synth = self.synthesizer.preflight(table)
        fair = None if self.fairness is None else self.fairness.preflight(provisional)
        return _jsonable(
            {
                "budget": {
                    "epsilon": budget[0],
                    "delta": budget[1],
                    "rho": rho_total,
                    "synthesizer_rho": _planned_rho(trial),
                },
                "binning": None if bins is None else bins.to_dict(),
                "synthesizer": {"name": _component_name(self.synthesizer), **synth},
                "fairness": None
                if self.fairness is None
                else {"name": _component_name(self.fairness), **(fair or {})},
                "metrics": [_component_name(m) for m in self.metrics],
                "rows": "DP estimate" if self.rows is None else self.rows,
            }
        )

    def run(
        self,
        data: Any,
        schema: Schema,
        *,
        test: pd.DataFrame | None = None,
        backend: str = "auto",
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> Release:
        """Run the chain on the sensitive table `data` declared by `schema`.

        Everything that needs no data is checked first (`plan`), then the table is read,
        validated and encoded, and only then is budget spent: DP bin edges, if the schema
        declares any, then the synthesizer.

        Args:
            data: the sensitive table (schema labels): a pandas DataFrame, a path to a CSV or
                Parquet file, a pyarrow Table, or a DuckDB relation. It is read in chunks of
                `chunk_rows` rows and never held whole as labels (see `safes_framework.ingest`).
            schema: its public schema.
            test: an optional real held-out table for metrics.
            backend: where marginals are counted: "memory" (compact codes in memory), "duckdb"
                (counted in place, for tables larger than memory), "dask", or "auto" (see
                `safes_framework.backends.choose_backend`). Every backend gives the same
                exact counts, so the release does not depend on it.
            chunk_rows: rows per chunk when reading and encoding.

        Returns:
            The release (data, weights, privacy report, post-processing seeds, versions), with
            timings and metrics kept in memory only.

        Raises:
            FairnessStageError: the fairness stage failed after synthesis; its `release`
                attribute holds the DP synthetic release without fairness (nothing paid for is
                lost).
            MetricsStageError: a metric failed; its `release` is the complete release.
        """
        fitted = self._fit(data, schema, test, backend, chunk_rows)
        run, timings, rows, seeds = fitted.run, fitted.timings, fitted.rows, fitted.seeds
        privacy, recorded_seeds, schema = fitted.privacy, fitted.recorded_seeds, fitted.schema
        with self._stage(run, "sample", timings):
            (synthetic,) = sample_chunks(
                self.synthesizer, schema, rows, np.random.default_rng(seeds["sample"]),
                chunk_rows=rows, name=run.synthesizer,
            )

        output = FairnessOutput(synthetic)
        if self.fairness is not None:
            try:
                with self._stage(run, "fairness", timings):
                    output = apply_fairness(
                        self.fairness, synthetic, schema, np.random.default_rng(seeds["fairness"])
                    )
            except Exception as exc:
                self._fairness_failed(
                    exc, run, synthetic, privacy, schema, recorded_seeds, timings
                )
            # Settings resolved while fitting (e.g. an automatic choice) are what the release
            # should record.
            run = dataclasses.replace(run, fairness_params=self.fairness.params())

        results: dict[str, MetricResult] = {}
        release = Release(
            data=output.data,
            weights=output.weights,
            privacy=privacy,
            schema=schema,
            run=run,
            seeds=recorded_seeds,
            versions=versions(),
            timings=timings,
            metrics=results,
        )
        if self.metrics:
            inputs = MetricInputs(
                release=output.data,
                schema=schema,
                weights=output.weights,
                train=data,
                test=test,
                seed=seeds["metrics"] % 2**63,
            )
            name = ""
            try:
                with self._stage(run, "metrics", timings):
                    for m in self.metrics:
                        name = _component_name(m)
                        results[name] = m.compute(inputs)
            except Exception as exc:
                self._pm.run_finished(run, release)
                raise MetricsStageError(
                    f"metric {name!r} failed after the release was made: {exc}. The release "
                    "is complete and kept: this error's `release` holds it (metrics are an "
                    "evaluation, not part of it)",
                    release=release,
                ) from exc
        self._pm.run_finished(run, release)
        return release

    def stream(
        self,
        data: Any,
        schema: Schema,
        out: str | os.PathLike[str],
        *,
        format: str = "csv",
        overwrite: bool = False,
        extra: Mapping[str, Any] | None = None,
        backend: str = "auto",
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> StreamedRelease:
        """Run the synthesizer and write the release to directory `out` in chunks of rows.

        Like `run` followed by `Release.save`, but the synthetic table is sampled, decoded and
        written `chunk_rows` rows at a time (CSV or Parquet, by `format`), so memory is bounded
        by the fitted model, not by the number of released rows. A release of at most
        `chunk_rows` rows is the one `run` gives with the same seed. Needs a chain without a
        fairness transformer or metrics (they need the whole synthetic table).

        Returns:
            Where the release went, its row count and its records (timings in memory only).
        """
        release_file(format)
        if self.fairness is not None or self.metrics:
            raise ConfigError(
                "a streamed release has no fairness stage or metrics (they need the whole "
                "synthetic table); use run() and Release.save()"
            )
        target = check_output_dir(out, overwrite=overwrite)
        fitted = self._fit(data, schema, None, backend, chunk_rows)
        run, timings, schema = fitted.run, fitted.timings, fitted.schema
        vers = versions()

        def record(rows: int) -> dict[str, Any]:
            return {**run.to_dict(), "rows": rows, "weights": False,
                    "seeds": dict(fitted.recorded_seeds), "versions": vers,
                    "schema": schema.to_dict(), **dict(extra or {})}

        with self._stage(run, "sample", timings):
            chunks = sample_chunks(
                self.synthesizer, schema, fitted.rows,
                np.random.default_rng(fitted.seeds["sample"]), chunk_rows=chunk_rows,
                name=run.synthesizer,
            )
            rows = save_directory(
                target,
                lambda tmp: write_streamed_release(
                    tmp, chunks, format, fitted.privacy.to_dict(), record
                ),
                overwrite=overwrite,
            )
        release = StreamedRelease(
            path=target, file=release_file(format), rows=rows, privacy=fitted.privacy,
            run=run, schema=schema, seeds=fitted.recorded_seeds, versions=vers,
            timings=timings,
        )
        self._pm.run_finished(run, release)
        return release

    def _fit(
        self,
        data: Any,
        schema: Schema,
        test: pd.DataFrame | None,
        backend: str,
        chunk_rows: int,
    ) -> _Fitted:
        """Check, read and encode the input, spend the budget, and settle the release size."""
        self.plan(schema, test=test is not None)  # public checks, before the data is read
        if self.metrics and not isinstance(data, pd.DataFrame):
            raise ConfigError(
                "metrics read the real table: pass it as a pandas DataFrame to use metrics"
            )
        grid = schema.grid() if schema.dp_binned else schema
        # Reads, checks and encodes the whole input before any budget is spent. DP bin edges
        # re-code the grid's cells, so they need the codes in memory.
        if schema.dp_binned:
            codes = np.stack(encode_table(data, grid, chunk_rows=chunk_rows).arrays, axis=1)
            source = None
            n_records = codes.shape[0]
        else:
            source = open_source(data, schema, backend=backend, chunk_rows=chunk_rows)
            n_records = source.num_rows()
        if test is not None:
            grid.validate(test)
        if n_records == 1:
            # Depends on the exact size: for the caller (the data owner), never in the release.
            warnings.warn(
                "the table has a single record: differential privacy hides it, so the release "
                "is noise and carries no information about it; check the input",
                SmallTableWarning,
                stacklevel=3,
            )
        noise, seeds, recorded_seeds = self._streams()
        budget = (self.synthesizer.epsilon, self.synthesizer.delta)
        accountant = RDPAccountant(budget=budget)
        bins = plan_bins(schema, accountant, self.bin_share)
        run = RunInfo(
            run_id=uuid.uuid4().hex,
            synthesizer=_component_name(self.synthesizer),
            synthesizer_params=self.synthesizer.params(),
            fairness=None if self.fairness is None else _component_name(self.fairness),
            fairness_params={} if self.fairness is None else self.fairness.params(),
            metrics=tuple(_component_name(m) for m in self.metrics),
            seeded=self.seed is not None,
            binning=None if bins is None else bins.to_dict(),
        )
        accountant.on_spend = lambda entry: self._pm.privacy_spent(
            run, entry, accountant.epsilon(budget[1]), budget[1]
        )
        timings: dict[str, float] = {}
        self._pm.run_started(run)

        if source is None:
            if bins is not None:
                with self._stage(run, BINNING, timings):
                    table = PrivateTable(
                        InMemorySource(codes, grid.sizes), grid, accountant, noise, stage=BINNING
                    )
                    schema, codes = choose_edges(table, schema, codes, bins)
                    del table
            source = InMemorySource(codes, schema.sizes)
            del codes
        with self._stage(run, "synthesizer", timings) as ctx:
            table = PrivateTable(source, schema, accountant, noise, stage="synthesizer")
            self.synthesizer.fit(table, ctx)
        rows_read = table.rows_read
        del source, table  # nothing after synthesis needs the sensitive rows
        estimate = (
            _row_estimate(self.synthesizer, run.synthesizer)
            if self.synthesizer.estimates_rows
            else None
        )
        if self.rows is None:
            assert estimate is not None  # checked in __init__
            rows = max(1, int(round(estimate)))
            release_size = ESTIMATED_SIZE
        else:
            rows = self.rows
            release_size = f"chosen by the caller (rows={rows})"
        _warn_if_delta_is_large(budget[1], estimate if estimate is not None else float(rows))
        assumptions: tuple[str, ...] = ASSUMPTIONS
        if self.seed is not None:
            assumptions += (SEED_ASSUMPTION,)
        if rows_read:
            assumptions += (ROWS_ASSUMPTION,)
        privacy = PrivacyReport(
            epsilon=accountant.epsilon(budget[1]),
            delta=budget[1],
            budget=budget,
            ledger=tuple(e.to_dict() for e in accountant.entries),
            neighbouring=NEIGHBOURING,
            noise=noise.describe(),
            release_size=release_size,
            assumptions=assumptions,
        )
        return _Fitted(run, timings, rows, seeds, recorded_seeds, privacy, schema)

    def _fairness_failed(
        self,
        exc: Exception,
        run: RunInfo,
        synthetic: pd.DataFrame,
        privacy: PrivacyReport,
        schema: Schema,
        recorded_seeds: dict[str, int],
        timings: dict[str, float],
    ) -> NoReturn:
        """Raise `FairnessStageError` carrying the DP synthetic release without fairness."""
        assert self.fairness is not None
        name = _component_name(self.fairness)
        failure = {
            "name": name,
            "params": self.fairness.params(),
            "error": type(exc).__name__,
            "message": str(exc),
        }
        run = dataclasses.replace(
            run, fairness=None, fairness_params={}, fairness_failure=failure
        )
        release = Release(
            data=synthetic,
            weights=None,
            privacy=privacy,
            schema=schema,
            run=run,
            seeds={k: v for k, v in recorded_seeds.items() if k != "fairness"},
            versions=versions(),
            timings=timings,
        )
        self._pm.run_finished(run, release)
        raise FairnessStageError(
            f"the fairness stage ({name}) failed after synthesis: {exc}. The DP synthetic "
            "table is kept: this error's `release` is a release without fairness; save it "
            "and apply fairness to it again (fair_release, or safes fair) at no further "
            "privacy cost",
            release=release,
        ) from exc

    @contextmanager
    def _stage(self, run: RunInfo, stage: str, timings: dict[str, float]) -> Iterator[StageContext]:
        self._pm.stage_started(run, stage)
        ctx = StageContext(
            stage, lambda step, total, msg: self._pm.progress(run, stage, step, total, msg)
        )
        start = time.perf_counter()
        yield ctx
        timings[stage] = time.perf_counter() - start
        self._pm.stage_finished(run, stage, timings[stage])


@dataclass(frozen=True)
class _Fitted:
    """A fitted chain's state between synthesis and sampling (`schema`: with DP edges resolved)."""

    run: RunInfo
    timings: dict[str, float]
    rows: int
    seeds: dict[str, int]
    recorded_seeds: dict[str, int]
    privacy: PrivacyReport
    schema: Schema


def _planned_rho(accountant: RDPAccountant) -> float | None:
    """The zCDP rho that remains on `accountant`, or None when the grid certifies none."""
    try:
        return accountant.plan_zcdp()
    except BudgetExceededError:
        return None


def _row_estimate(synthesizer: Synthesizer, name: str) -> float:
    """The synthesizer's DP estimate of the number of records (post-processing of its noise)."""
    estimate = synthesizer.estimated_rows()
    if isinstance(estimate, bool) or not isinstance(estimate, (int, float, np.number)):
        raise SafesError(
            f"synthesizer {name!r} returned {estimate!r} as its row-count estimate, not a number"
        )
    if not math.isfinite(float(estimate)):
        raise SafesError(f"synthesizer {name!r} returned a non-finite row-count estimate")
    return float(estimate)


def _warn_if_delta_is_large(delta: float, rows: float) -> None:
    """Warn when delta >= 1/n, with n the DP estimate of the number of records.

    A mechanism that publishes each record with probability delta is (0, delta)-DP, so a
    delta of 1/n or more permits publishing about one record outright. The exact n is
    sensitive, so the rule uses the synthesizer's DP estimate (or the caller's `rows` when
    there is none): it reveals nothing the release does not.
    """
    n = max(1.0, rows)
    if delta * n >= 1:
        warnings.warn(
            f"delta={delta:g} is not below 1/n ~ {1 / n:.3g} (n ~ {n:,.0f}, the DP estimate of "
            "the number of records): with delta >= 1/n the guarantee allows publishing about "
            "one record outright; use a delta far below 1/n (e.g. 1e-9)",
            PrivacyWarning,
            stacklevel=3,
        )


def apply_fairness(
    fairness: FairnessTransformer,
    synthetic: pd.DataFrame,
    schema: Schema,
    rng: np.random.Generator,
) -> FairnessOutput:
    """Apply a fairness transformer to a synthetic table: the post-processing boundary.

    The transformer sees the synthetic table (a copy) and the public schema only; its output is
    validated against the schema and its weights checked. The chain's fairness stage is this
    call; use it directly to apply several transformers to one synthetic table (as the
    evaluation protocol does to pair DP and SAFES settings on the same synthesis).

    Raises:
        SafesError: the transformer returned something other than a valid `FairnessOutput`.
    """
    out = fairness.fit_transform(synthetic.copy(), schema, rng)
    if not isinstance(out, FairnessOutput):
        raise SafesError(
            f"fairness transformer {_component_name(fairness)!r} returned "
            f"{type(out).__name__}, not a FairnessOutput"
        )
    schema.validate(out.data)
    if out.weights is not None:
        w = np.asarray(out.weights, dtype=np.float64)
        if w.shape != (len(out.data),) or not np.isfinite(w).all() or (w < 0).any():
            raise SafesError(
                f"fairness transformer {_component_name(fairness)!r} returned invalid weights "
                "(need one finite non-negative weight per row)"
            )
        out = FairnessOutput(out.data, w)
    return out


class _DomainOnly:
    """A `CountSource` that knows the public domain only: pre-flight checks read no data."""

    def __init__(self, sizes: dict[str, int]) -> None:
        self._sizes = dict(sizes)

    @property
    def sizes(self) -> dict[str, int]:
        return self._sizes

    def _refuse(self) -> NoReturn:
        raise PrivacyError(
            "a pre-flight check called a DP primitive; pre-flight checks see the public "
            "domain only (columns and sizes)"
        )

    def marginal(self, clique: Clique) -> np.ndarray:
        self._refuse()

    def num_rows(self) -> int:
        self._refuse()

    def rows(self) -> np.ndarray:
        self._refuse()


def fair_release(
    release: Release,
    fairness: FairnessTransformer | str,
    *,
    seed: int | None = None,
    plugin_manager: PluginManager | None = None,
) -> Release:
    """A new release: `fairness` applied to a saved (or in-memory) release's table.

    Post-processing of the release alone: no original data is read, nothing is spent, and the
    new release carries the same privacy report. Its run has a new id, the source's
    synthesizer, the new fairness settings, `made_from` (the source's run id and fairness),
    and a fresh post-processing seed for the transform (or `seed`, recorded either way: it
    drives post-processing only, independent of the DP noise).

    Args:
        release: the source release, e.g. `Release.load(directory)`.
        fairness: a `FairnessTransformer` or a registered name.
        seed: the transform's seed (default: fresh from OS entropy).
        plugin_manager: where to find a fairness transformer given by name.

    Raises:
        ConfigError: the release carries sample weights (from reweighing), which a new
            transform would drop, or the transformer's pre-flight refuses the schema.
    """
    pm = plugin_manager or get_plugin_manager()
    if isinstance(fairness, str):
        fairness = pm.fairness_transformers.create(fairness)
    if not isinstance(fairness, FairnessTransformer):
        raise ConfigError(f"fairness must be a FairnessTransformer or a name, got {fairness!r}")
    if release.weights is not None:
        raise ConfigError(
            f"the release carries sample weights from fairness {release.run.fairness!r}; a new "
            "transform would drop them: start from a release without fairness"
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ConfigError(f"seed must be a non-negative integer or None, got {seed!r}")
    fairness.preflight(release.schema)
    fseed = secrets.randbits(127) if seed is None else seed
    start = time.perf_counter()
    output = apply_fairness(fairness, release.data, release.schema, np.random.default_rng(fseed))
    seconds = time.perf_counter() - start
    run = RunInfo(
        run_id=uuid.uuid4().hex,
        synthesizer=release.run.synthesizer,
        synthesizer_params=release.run.synthesizer_params,
        fairness=_component_name(fairness),
        fairness_params=fairness.params(),
        seeded=release.run.seeded,
        binning=release.run.binning,
        made_from={"run_id": release.run.run_id, "fairness": release.run.fairness},
    )
    return Release(
        data=output.data,
        weights=output.weights,
        privacy=release.privacy,
        schema=release.schema,
        run=run,
        seeds={"fairness": fseed},
        versions=versions(),
        timings={"fairness": seconds},
    )
