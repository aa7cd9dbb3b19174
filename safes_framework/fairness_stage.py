"""The fairness stage: a transformer applied to a synthetic table, in a chain or to a release."""

from __future__ import annotations

import dataclasses
import secrets
import time
import uuid
from typing import NoReturn

import numpy as np
import pandas as pd

from .base import FairnessOutput, FairnessTransformer, _component_name
from .errors import ConfigError, FairnessStageError, SafesError
from .plugins import PluginManager, get_plugin_manager
from .release import PrivacyReport, Release, RunInfo, versions
from .schema import Schema


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


def _fairness_failed(
    pm: PluginManager,
    fairness: FairnessTransformer,
    exc: Exception,
    run: RunInfo,
    synthetic: pd.DataFrame,
    privacy: PrivacyReport,
    schema: Schema,
    recorded_seeds: dict[str, int],
    timings: dict[str, float],
) -> NoReturn:
    """Raise `FairnessStageError` carrying the DP synthetic release without fairness."""
    name = _component_name(fairness)
    failure = {
        "name": name,
        "params": fairness.params(),
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
    pm.run_finished(run, release)
    raise FairnessStageError(
        f"the fairness stage ({name}) failed after synthesis: {exc}. The DP synthetic "
        "table is kept: this error's `release` is a release without fairness; save it "
        "and apply fairness to it again (fair_release, or safes fair) at no further "
        "privacy cost",
        release=release,
    ) from exc


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
