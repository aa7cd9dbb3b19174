"""SafesChain: DP synthesis, then fairness on the synthetic table only, then metrics."""

from __future__ import annotations

import dataclasses
import logging
import math
import secrets
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd

from .access import InMemorySource
from .base import (
    FairnessOutput,
    FairnessTransformer,
    Metric,
    MetricInputs,
    MetricResult,
    StageContext,
    Synthesizer,
)
from .errors import ConfigError, DataError, PrivacyWarning, SafesError, SmallTableWarning
from .plugins import PluginManager, get_plugin_manager
from .primitives import PrivateTable
from .privacy import RDPAccountant
from .privacy.accountant import NEIGHBOURING
from .privacy.noise import NoiseSource, SecureNoise, SeededNoise
from .release import PrivacyReport, Release, RunInfo, versions
from .schema import Schema

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
        self, data: pd.DataFrame, schema: Schema, *, test: pd.DataFrame | None = None
    ) -> Release:
        """Run the chain on the sensitive table `data` declared by `schema`.

        Args:
            data: the sensitive table (schema labels).
            schema: its public schema.
            test: an optional real held-out table for metrics.

        Returns:
            The release (data, weights, privacy report, post-processing seeds, versions), with
            timings and metrics kept in memory only.
        """
        if not isinstance(schema, Schema):
            raise ConfigError(
                f"schema must be a safes_framework.Schema, got {type(schema).__name__}"
            )
        codes = schema.encode_array(data)  # validates before any budget is spent
        if test is not None:
            schema.validate(test)
        if len(codes) == 1:
            # Depends on the exact size: for the caller (the data owner), never in the release.
            warnings.warn(
                "the table has a single record: differential privacy hides it, so the release "
                "is noise and carries no information about it; check the input",
                SmallTableWarning,
                stacklevel=2,
            )
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

        source = InMemorySource(codes, schema.sizes)
        with self._stage(run, "synthesizer", timings) as ctx:
            table = PrivateTable(source, schema, accountant, noise, stage="synthesizer")
            self.synthesizer.fit(table, ctx)
        rows_read = table.rows_read
        del source, table, codes  # nothing after synthesis needs the sensitive rows
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

        with self._stage(run, "sample", timings):
            synth_codes = self.synthesizer.sample(rows, np.random.default_rng(seeds["sample"]))
            try:
                synth_codes = schema.check_codes(synth_codes)
            except DataError as exc:
                raise SafesError(
                    f"synthesizer {run.synthesizer!r} returned codes outside the schema: {exc}"
                ) from exc
            if synth_codes.shape[0] != rows:
                raise SafesError(
                    f"synthesizer {run.synthesizer!r} returned {synth_codes.shape[0]} rows, "
                    f"{rows} were asked for"
                )
            synthetic = schema.decode(synth_codes)

        output = FairnessOutput(synthetic)
        if self.fairness is not None:
            with self._stage(run, "fairness", timings):
                output = apply_fairness(
                    self.fairness, synthetic, schema, np.random.default_rng(seeds["fairness"])
                )
            # Settings resolved while fitting (e.g. an automatic choice) are what the release
            # should record.
            run = dataclasses.replace(run, fairness_params=self.fairness.params())

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
            privacy=privacy,
            schema=schema,
            run=run,
            seeds=recorded_seeds,
            versions=versions(),
            timings=timings,
            metrics=results,
        )
        self._pm.run_finished(run, release)
        return release

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
