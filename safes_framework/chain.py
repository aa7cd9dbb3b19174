"""SafesChain: DP synthesis, then fairness on the synthetic table only, then metrics."""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .access import InMemorySource
from .backends import open_source
from .base import (
    FairnessOutput,
    FairnessTransformer,
    Metric,
    MetricInputs,
    MetricResult,
    StageContext,
    Synthesizer,
    _component_name,
)
from .binning import DEFAULT_BIN_SHARE, check_share, choose_edges, plan_bins
from .binning import STAGE as BINNING
from .errors import ConfigError, MetricsStageError, SmallTableWarning
from .fairness_stage import _fairness_failed, apply_fairness, fair_release
from .guarantee import (
    ASSUMPTIONS,
    ESTIMATED_SIZE,
    ROWS_ASSUMPTION,
    SEED_ASSUMPTION,
    _row_estimate,
    _warn_if_delta_is_large,
)
from .ingest import DEFAULT_CHUNK_ROWS, encode_table
from .outputs import check_output_dir
from .planning import plan_chain
from .plugins import PluginManager, get_plugin_manager
from .primitives import PrivateTable
from .privacy import RDPAccountant
from .privacy.accountant import NEIGHBOURING
from .privacy.noise import NoiseSource, SecureNoise, SeededNoise
from .release import PrivacyReport, Release, RunInfo, versions
from .schema import Schema
from .streaming import (
    StreamedRelease,
    release_file,
    sample_chunks,
    save_directory,
    write_streamed_release,
)

__all__ = [
    "ASSUMPTIONS",
    "ESTIMATED_SIZE",
    "ROWS_ASSUMPTION",
    "SEED_ASSUMPTION",
    "SafesChain",
    "apply_fairness",
    "fair_release",
]

logger = logging.getLogger(__name__)


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
        return plan_chain(
            schema, self.synthesizer, self.fairness, self.metrics,
            rows=self.rows, bin_share=self.bin_share, test=test,
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
                _fairness_failed(
                    self._pm, self.fairness, exc, run, synthetic, privacy, schema,
                    recorded_seeds, timings,
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
