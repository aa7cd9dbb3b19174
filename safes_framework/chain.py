"""SafesChain: DP synthesis, then fairness on the synthetic table only, then metrics."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import secrets
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
from .errors import ConfigError, SafesError
from .ingest import DEFAULT_CHUNK_ROWS
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
        plugin_manager: PluginManager | None = None,
    ) -> None:
        self._pm = plugin_manager or get_plugin_manager()
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
        """
        fitted = self._fit(data, schema, test, backend, chunk_rows)
        run, timings, rows = fitted.run, fitted.timings, fitted.rows
        seeds = fitted.seeds
        with self._stage(run, "sample", timings):
            (synthetic,) = sample_chunks(
                self.synthesizer, schema, rows, np.random.default_rng(seeds["sample"]),
                chunk_rows=rows, name=run.synthesizer,
            )

        output = FairnessOutput(synthetic)
        if self.fairness is not None:
            with self._stage(run, "fairness", timings):
                output = apply_fairness(
                    self.fairness, synthetic, schema, np.random.default_rng(seeds["fairness"])
                )
            # Settings resolved while fitting (e.g. an automatic choice) are what the release
            # should record.
            run = dataclasses.replace(run, fairness_params=self.fairness.params())

        results: dict[str, MetricResult] = {}
        if self.metrics:
            with self._stage(run, "metrics", timings):
                inputs = MetricInputs(
                    release=output.data,
                    schema=schema,
                    weights=output.weights,
                    train=data,
                    test=test,
                    seed=seeds["metrics"] % 2**63,
                )
                for m in self.metrics:
                    results[_component_name(m)] = m.compute(inputs)
        release = Release(
            data=output.data,
            weights=output.weights,
            privacy=fitted.privacy,
            schema=schema,
            run=run,
            seeds=fitted.recorded_seeds,
            versions=versions(),
            timings=timings,
            metrics=results,
        )
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
        target = Path(out)
        if target.exists() and any(target.iterdir()) and not overwrite:
            raise ConfigError(f"output directory {str(target)!r} is not empty (pass overwrite)")
        fitted = self._fit(data, schema, None, backend, chunk_rows)
        run, timings = fitted.run, fitted.timings
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
        """Check the input, run the synthesizer on it, and settle the release size."""
        if not isinstance(schema, Schema):
            raise ConfigError(
                f"schema must be a safes_framework.Schema, got {type(schema).__name__}"
            )
        if self.metrics and not isinstance(data, pd.DataFrame):
            raise ConfigError(
                "metrics read the real table: pass it as a pandas DataFrame to use metrics"
            )
        # Reads, checks and encodes the whole input before any budget is spent.
        source = open_source(data, schema, backend=backend, chunk_rows=chunk_rows)
        if test is not None:
            schema.validate(test)
        noise, seeds, recorded_seeds = self._streams()
        run = RunInfo(
            run_id=uuid.uuid4().hex,
            synthesizer=_component_name(self.synthesizer),
            synthesizer_params=self.synthesizer.params(),
            fairness=None if self.fairness is None else _component_name(self.fairness),
            fairness_params={} if self.fairness is None else self.fairness.params(),
            metrics=tuple(_component_name(m) for m in self.metrics),
            seeded=self.seed is not None,
        )
        budget = (self.synthesizer.epsilon, self.synthesizer.delta)
        accountant = RDPAccountant(budget=budget)
        accountant.on_spend = lambda entry: self._pm.privacy_spent(
            run, entry, accountant.epsilon(budget[1]), budget[1]
        )
        timings: dict[str, float] = {}
        self._pm.run_started(run)

        with self._stage(run, "synthesizer", timings) as ctx:
            table = PrivateTable(source, schema, accountant, noise, stage="synthesizer")
            self.synthesizer.fit(table, ctx)
        rows_read = table.rows_read
        del source, table  # nothing after synthesis needs the sensitive rows
        if self.rows is None:
            rows = _release_size(self.synthesizer, run.synthesizer)
            release_size = ESTIMATED_SIZE
        else:
            rows = self.rows
            release_size = f"chosen by the caller (rows={rows})"
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
        return _Fitted(run, timings, rows, seeds, recorded_seeds, privacy)

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
    """A fitted chain's state between synthesis and sampling."""

    run: RunInfo
    timings: dict[str, float]
    rows: int
    seeds: dict[str, int]
    recorded_seeds: dict[str, int]
    privacy: PrivacyReport


def _release_size(synthesizer: Synthesizer, name: str) -> int:
    """The default release size: the synthesizer's DP estimate of n, rounded, at least 1."""
    estimate = synthesizer.estimated_rows()
    if isinstance(estimate, bool) or not isinstance(estimate, (int, float, np.number)):
        raise SafesError(
            f"synthesizer {name!r} returned {estimate!r} as its row-count estimate, not a number"
        )
    if not math.isfinite(float(estimate)):
        raise SafesError(f"synthesizer {name!r} returned a non-finite row-count estimate")
    return max(1, int(round(float(estimate))))


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
