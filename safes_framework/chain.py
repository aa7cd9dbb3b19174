"""SafesChain: DP synthesis, then fairness on the synthetic table only, then metrics."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
import uuid
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
from .errors import ConfigError, DataError, SafesError
from .plugins import PluginManager, get_plugin_manager
from .primitives import PrivateTable
from .privacy import RDPAccountant
from .release import PrivacyReport, Release, RunInfo, versions
from .schema import Schema

logger = logging.getLogger(__name__)

ROW_COUNT_ASSUMPTION = (
    "the release has as many rows as the input: the input's row count is treated as public "
    "(pass rows=N to release a chosen number of rows instead)"
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
        seed: root seed; None draws a fresh one (recorded in the release).
        rows: number of released rows; None releases as many rows as the input (the row count
            is then treated as public and the privacy report says so).
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
        self.synthesizer = synthesizer
        self.fairness = fairness
        self.metrics = tuple(resolved)
        self.seed = seed
        self.rows = rows

    def run(
        self, data: pd.DataFrame, schema: Schema, *, test: pd.DataFrame | None = None
    ) -> Release:
        """Run the chain on the sensitive table `data` declared by `schema`.

        Args:
            data: the sensitive table (schema labels).
            schema: its public schema.
            test: an optional real held-out table for metrics.

        Returns:
            The release (data, weights, privacy report, timings, seeds, versions, metrics).
        """
        if not isinstance(schema, Schema):
            raise ConfigError(
                f"schema must be a safes_framework.Schema, got {type(schema).__name__}"
            )
        codes = schema.encode_array(data)  # validates before any budget is spent
        if test is not None:
            schema.validate(test)
        root_seed = self.seed if self.seed is not None else secrets.randbits(63)
        root = np.random.SeedSequence(root_seed)
        synth_seq, sample_seq, fair_seq, metric_seq = root.spawn(4)
        run = RunInfo(
            run_id=uuid.uuid4().hex,
            seed=root_seed,
            synthesizer=_component_name(self.synthesizer),
            synthesizer_params=self.synthesizer.params(),
            fairness=None if self.fairness is None else _component_name(self.fairness),
            fairness_params={} if self.fairness is None else self.fairness.params(),
            metrics=tuple(_component_name(m) for m in self.metrics),
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
            table = PrivateTable(source, schema, accountant, synth_seq, stage="synthesizer")
            self.synthesizer.fit(table, ctx)
        assumptions: tuple[str, ...] = ()
        if self.rows is None:
            rows = source.num_rows()
            assumptions = (ROW_COUNT_ASSUMPTION,)
        else:
            rows = self.rows
        del source, table, codes  # nothing after synthesis needs the sensitive rows

        with self._stage(run, "sample", timings):
            synth_codes = self.synthesizer.sample(rows, np.random.default_rng(sample_seq))
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
                    self.fairness, synthetic, schema, np.random.default_rng(fair_seq)
                )
            # Settings resolved while fitting (e.g. an automatic choice) are what the release
            # should record.
            run = dataclasses.replace(run, fairness_params=self.fairness.params())

        spent = accountant.epsilon(budget[1])
        privacy = PrivacyReport(
            epsilon=spent,
            delta=budget[1],
            budget=budget,
            ledger=tuple(e.to_dict() for e in accountant.entries),
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
                    seed=int(metric_seq.generate_state(1)[0]),
                )
                for m in self.metrics:
                    results[_component_name(m)] = m.compute(inputs)
        release = Release(
            data=output.data,
            weights=output.weights,
            privacy=privacy,
            timings=timings,
            schema=schema,
            run=run,
            seeds={
                "root": root_seed,
                "derivation": "SeedSequence(root).spawn(4): synthesizer, sample, fairness, metrics",
            },
            versions=versions(),
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
