"""The SAFES paper's evaluation protocol: settings, one repeat as one function call, result rows.

Protocol (Giddens, Lang & Liu, SAFES, Sec. 5): each bundled dataset is split 75/25 with
`random_state=50`; synthesis and fairness use the training part only; the metrics train a
logistic regression on the release (with its weights, if any) and evaluate it on the real test
part. Four settings:

- Original: the real training table itself;
- DP(epsilon): the synthesizer's output at budget (epsilon, delta);
- Fair(eta): the fairness transformer applied to the real training table (no DP);
- SAFES(epsilon, eta): the fairness transformer applied to the DP synthetic table.

One *unit* is one repeat of one (dataset, epsilon) column of the grid: the synthetic table is
drawn once and every fairness setting of that column is applied to it, so DP(epsilon) and
SAFES(epsilon, eta) of a repeat are paired (the paper drew them independently; each cell's
distribution is the same, the comparison between cells has less noise, and synthesis runs once
instead of once per eta). A failure (an infeasible fairness program at small epsilon, a metric
that cannot be computed) is recorded as a row with status "failed" and its reason.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .base import FairnessOutput, MetricInputs
from .errors import ConfigError, UnknownPluginError
from .schema import Schema

logger = logging.getLogger(__name__)

#: The paper's privacy budgets: epsilon = 10^k for k = -2, -1.5, ..., 1.
PAPER_LOG10_EPSILONS: tuple[float, ...] = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0)
PAPER_EPSILONS: tuple[float, ...] = tuple(10.0**k for k in PAPER_LOG10_EPSILONS)
#: The paper's fairness bounds eta per dataset.
PAPER_ETAS: Mapping[str, tuple[float, ...]] = {"adult": (0.025, 0.1), "compas": (0.08, 0.15)}
PAPER_DELTA = 1e-9
#: What a sweep's output is, stated in every sweep store and report.
RESEARCH_NOTE = (
    "research output, not a private release: the DP noise is seeded floating-point noise "
    "(reproducible from the sweep seed), synthetic tables have the training part's exact "
    "size, and every metric is computed on the real tables"
)
PAPER_REPEATS = 35

#: Setting kinds, in report order.
KINDS: tuple[str, ...] = ("original", "fair", "dp", "safes")

#: Columns of a result row, in order.
ROW_COLUMNS: tuple[str, ...] = (
    "cell",
    "dataset",
    "setting",
    "epsilon",
    "log10_epsilon",
    "eta",
    "repeat",
    "seed",
    "synthesizer",
    "fairness",
    "metric",
    "key",
    "value",
    "status",
    "reason",
    "measured_on",
)


@dataclass(frozen=True)
class Setting:
    """One setting of the protocol.

    Attributes:
        kind: "original", "dp", "fair" or "safes".
        epsilon: the privacy budget's epsilon (dp, safes), else None.
        eta: the fairness bound (fair, safes), else None; also None for a fairness transformer
            that takes no bound (reweighing).
    """

    kind: str
    epsilon: float | None = None
    eta: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"setting kind must be one of {list(KINDS)}, got {self.kind!r}")
        private = self.kind in ("dp", "safes")
        if private != (self.epsilon is not None):
            raise ConfigError(
                f"setting {self.kind!r} {'needs' if private else 'takes no'} "
                f"epsilon (got {self.epsilon!r})"
            )
        if self.kind in ("original", "dp") and self.eta is not None:
            raise ConfigError(f"setting {self.kind!r} takes no eta (got {self.eta!r})")

    @property
    def fair(self) -> bool:
        return self.kind in ("fair", "safes")

    @property
    def label(self) -> str:
        eps = f"eps={self.epsilon:.4g}" if self.epsilon is not None else ""
        eta = f"eta={self.eta:g}" if self.eta is not None else ""
        inner = ", ".join(x for x in (eps, eta) if x)
        name = {"original": "Original", "dp": "DP", "fair": "Fair", "safes": "SAFES"}[self.kind]
        return f"{name}({inner})" if inner else name


@dataclass(frozen=True)
class MetricSpec:
    """A metric of the protocol: the name it is stored under, the registered metric, params.

    Attributes:
        alias: name in the results (default: the registered name).
        name: registered metric name.
        params: keyword parameters of the metric.
    """

    alias: str
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"alias": self.alias, "name": self.name, "params": dict(self.params)}


#: The metrics of the protocol by default: every built-in metric.
DEFAULT_METRICS: tuple[MetricSpec, ...] = tuple(
    MetricSpec(n, n)
    for n in (
        "mean_outcome_difference",
        "model_fairness",
        "model_utility",
        "propensity_ks",
        "tvd",
        "workload_error",
    )
)


@dataclass(frozen=True)
class Protocol:
    """What stays fixed over a sweep: components, their parameters, delta, metrics, split.

    Attributes:
        synthesizer: registered synthesizer (the paper: "aim").
        synthesizer_params: its parameters besides epsilon and delta.
        fairness: registered fairness transformer (the paper: "tot"), or None.
        fairness_params: its parameters besides the bound.
        eta_param: the name of the transformer's parameter that receives eta, or None for a
            transformer without a bound (reweighing).
        delta: the privacy budget's delta.
        metrics: the metrics measured on every release.
        test_size: test share of the split (the paper: 0.25).
        random_state: seed of the split (the paper: 50).
    """

    synthesizer: str = "aim"
    synthesizer_params: Mapping[str, Any] = field(default_factory=dict)
    fairness: str | None = "tot"
    fairness_params: Mapping[str, Any] = field(default_factory=dict)
    eta_param: str | None = "eta"
    delta: float = PAPER_DELTA
    metrics: tuple[MetricSpec, ...] = DEFAULT_METRICS
    test_size: float = 0.25
    random_state: int = 50

    def to_dict(self) -> dict[str, Any]:
        return {
            "synthesizer": self.synthesizer,
            "synthesizer_params": dict(self.synthesizer_params),
            "fairness": self.fairness,
            "fairness_params": dict(self.fairness_params),
            "eta_param": self.eta_param,
            "delta": self.delta,
            "metrics": [m.to_dict() for m in self.metrics],
            "test_size": self.test_size,
            "random_state": self.random_state,
        }

    def fingerprint(self) -> str:
        """A short stable hash of the protocol (results of different protocols never mix)."""
        import json

        text = json.dumps(self.to_dict(), sort_keys=True, default=repr)
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    # -- checks without running ---------------------------------------------------------------

    def check(self, etas: Sequence[float | None] = ()) -> None:
        """Build every component once with its parameters, so that a sweep fails before it
        starts rather than in its thousandth repeat.

        Raises:
            ConfigError: a component is not installed (naming what is, and how to choose
                another) or rejects its parameters.
        """
        from .plugins import get_plugin_manager

        pm = get_plugin_manager()
        if not (isinstance(self.delta, float) and 0 < self.delta < 1):
            raise ConfigError(f"delta must lie strictly between 0 and 1, got {self.delta!r}")
        _installed(
            pm.synthesizers,
            "synthesizer",
            self.synthesizer,
            'the paper uses AIM; choose another with synthesizer = "mst" under '
            "[synthesizer] in the sweep config or --synthesizer on the command line",
        )
        pm.synthesizers.create(
            self.synthesizer, epsilon=1.0, delta=self.delta, **self.synthesizer_params
        )
        if self.fairness is not None:
            _installed(
                pm.fairness_transformers,
                "fairness transformer",
                self.fairness,
                'the paper uses TOT; choose another with name = "..." under '
                '[fairness] (or "none") in the sweep config or --fairness',
            )
            for eta in etas or (None,):
                _make_fairness(self, eta)
        for spec in self.metrics:
            _installed(pm.metrics, "metric", spec.name, "see `safes plugins`")
            pm.metrics.create(spec.name, **spec.params)


def _installed(registry: Any, kind: str, name: str, hint: str) -> None:
    if name not in registry:
        installed = ", ".join(registry.names()) or "none"
        raise UnknownPluginError(
            f"{kind} {name!r} is not installed (installed: {installed}); {hint}"
        )


def _make_fairness(protocol: Protocol, eta: float | None) -> Any:
    from .plugins import get_plugin_manager

    params = dict(protocol.fairness_params)
    if eta is not None:
        if protocol.eta_param is None:
            raise ConfigError(
                f"fairness transformer {protocol.fairness!r} takes no bound "
                f"(eta_param is none) but eta={eta} was given"
            )
        params[protocol.eta_param] = eta
    assert protocol.fairness is not None
    return get_plugin_manager().fairness_transformers.create(protocol.fairness, **params)


@dataclass(frozen=True)
class Unit:
    """One repeat of one (dataset, epsilon) column of the grid: one call of `run_unit`.

    Attributes:
        dataset: bundled dataset name.
        epsilon: the privacy budget, or None for the no-DP column (Original, Fair).
        repeat: repeat index (0-based).
        seed: the unit's seed (derived from the sweep seed, see `unit_seed`).
        settings: the settings evaluated on this repeat's table (all with this epsilon).
        protocol: components, parameters and metrics.
    """

    dataset: str
    epsilon: float | None
    repeat: int
    seed: int
    settings: tuple[Setting, ...]
    protocol: Protocol

    @property
    def label(self) -> str:
        eps = "no DP" if self.epsilon is None else f"eps={self.epsilon:.4g}"
        return f"{self.dataset} {eps} repeat {self.repeat}"


def cell_key(dataset: str, setting: Setting, repeat: int) -> str:
    """The key of one (dataset, setting, repeat) cell of the results (stable across runs)."""
    eps = "none" if setting.epsilon is None else repr(float(setting.epsilon))
    eta = "none" if setting.eta is None else repr(float(setting.eta))
    return f"{dataset}|{setting.kind}|eps={eps}|eta={eta}|r={repeat}"


def _words(text: str) -> tuple[int, ...]:
    """Four 32-bit words of a stable hash of `text` (a spawn key independent of grid order)."""
    digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


def derive_seed(seed: int, *path: str | int) -> int:
    """A 63-bit seed from `SeedSequence(seed, spawn_key=...)` keyed by `path`, so that a unit's
    seed depends only on the sweep seed and its own coordinates, not on the grid around it."""
    key: list[int] = []
    for part in path:
        key.extend(_words(str(part)) if isinstance(part, str) else (int(part),))
    state = np.random.SeedSequence(seed, spawn_key=tuple(key)).generate_state(2, np.uint32)
    return int((int(state[0]) << 32 | int(state[1])) & (2**63 - 1))


def unit_seed(sweep_seed: int, dataset: str, epsilon: float | None, repeat: int) -> int:
    """The seed of one repeat of a (dataset, epsilon) column."""
    eps = "none" if epsilon is None else repr(float(epsilon))
    return derive_seed(sweep_seed, dataset, eps, repeat)


# -- data ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def split(
    dataset: str, test_size: float = 0.25, random_state: int = 50
) -> tuple[pd.DataFrame, pd.DataFrame, Schema]:
    """(train, test, schema) of a bundled dataset with the paper's split (cached per process;
    do not modify the frames)."""
    from . import datasets

    train, test = datasets.train_test_split(dataset, test_size=test_size, random_state=random_state)
    return train, test, datasets.schema(dataset)


def one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """A context with one BLAS/OpenMP thread per library (restored on exit).

    The models and marginals here are tiny: extra BLAS threads only add synchronisation
    overhead (scipy's L-BFGS-B runs ~50x slower with two OpenBLAS threads on a busy 2-core
    machine) and oversubscribe the cores the other sweep workers use. The libraries are loaded
    first, since a limit only reaches libraries already loaded. Set $SAFES_KEEP_THREADS to opt
    out.
    """
    if os.environ.get("SAFES_KEEP_THREADS"):
        return contextlib.nullcontext()
    try:
        import scipy.optimize  # noqa: F401  (loads scipy's OpenBLAS)
        import sklearn.linear_model  # noqa: F401
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - both ship with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


# -- one repeat -----------------------------------------------------------------------------------


#: Longest failure reason stored (the text is cut at a word boundary beyond it).
REASON_CHARS = 2000


def _reason(stage: str, exc: BaseException) -> str:
    text = f"{stage}: {type(exc).__name__}: {' '.join(str(exc).split())}"
    if len(text) <= REASON_CHARS:
        return text
    return text[: text.rfind(" ", 0, REASON_CHARS - 2)] + " …"


def run_unit(unit: Unit, *, strict: bool = False) -> list[dict[str, Any]]:
    """Run one repeat: build each setting's release and measure it with every metric.

    Args:
        unit: what to run.
        strict: re-raise the first failure instead of recording it (debugging).

    Returns:
        Result rows (dicts with the keys of `ROW_COLUMNS`): per setting, one row per metric
        value, plus "run" rows (seconds per stage, epsilon spent, rows released). A setting
        whose release could not be made gets one row with metric "*" and status "failed"; a
        metric that failed gets one row with key "*" and status "failed"; both carry the reason.
    """
    with one_blas_thread():
        return _run_unit(unit, strict)


def _run_unit(unit: Unit, strict: bool) -> list[dict[str, Any]]:
    from .chain import SafesChain, apply_fairness
    from .plugins import get_plugin_manager

    pm = get_plugin_manager()
    proto = unit.protocol
    train, test, schema = split(unit.dataset, proto.test_size, proto.random_state)
    rows: list[dict[str, Any]] = []

    # the table every setting of this unit starts from: the real training part, or DP synthesis
    base: pd.DataFrame | None = train
    base_error: str | None = None
    run_values: dict[str, float] = {}
    if unit.epsilon is not None:
        start = time.perf_counter()
        try:
            synth = pm.synthesizers.create(
                proto.synthesizer,
                epsilon=unit.epsilon,
                delta=proto.delta,
                **proto.synthesizer_params,
            )
            # Research, not a release: seeded (floating-point) noise and the training part's
            # exact size, as in the SAFES paper's protocol (RESEARCH_NOTE).
            release = SafesChain(
                synth,
                seed=derive_seed(unit.seed, "synthesizer"),
                rows=len(train),
                plugin_manager=pm,
            ).run(train, schema)
            base = release.data
            run_values["epsilon_spent"] = release.privacy.epsilon
            run_values["seconds_synthesizer"] = time.perf_counter() - start
        except Exception as exc:
            if strict:
                raise
            logger.warning("%s: synthesis failed: %s", unit.label, exc, exc_info=True)
            base, base_error = None, _reason("synthesizer", exc)

    for setting in unit.settings:
        common = _common(unit, setting)
        if base is None:
            rows.append(
                {
                    **common,
                    "metric": "*",
                    "key": "*",
                    "value": math.nan,
                    "status": "failed",
                    "reason": base_error,
                    "measured_on": "",
                }
            )
            continue
        output = FairnessOutput(base)
        values = dict(run_values)
        if setting.fair:
            start = time.perf_counter()
            try:
                transformer = _make_fairness(proto, setting.eta)
                rng = np.random.default_rng(derive_seed(unit.seed, "fairness", common["cell"]))
                output = apply_fairness(transformer, base, schema, rng)
                values["seconds_fairness"] = time.perf_counter() - start
            except Exception as exc:
                if strict:
                    raise
                logger.info("%s %s: fairness failed: %s", unit.label, setting.label, exc)
                rows.append(
                    {
                        **common,
                        "metric": "*",
                        "key": "*",
                        "value": math.nan,
                        "status": "failed",
                        "reason": _reason("fairness", exc),
                        "measured_on": "",
                    }
                )
                continue
        values["rows"] = float(len(output.data))
        inputs = MetricInputs(
            release=output.data,
            schema=schema,
            weights=output.weights,
            train=train,
            test=test,
            seed=derive_seed(unit.seed, "metrics", common["cell"]),
        )
        start = time.perf_counter()
        for spec in proto.metrics:
            try:
                result = pm.metrics.create(spec.name, **spec.params).compute(inputs)
            except Exception as exc:
                if strict:
                    raise
                logger.info(
                    "%s %s: metric %s failed: %s", unit.label, setting.label, spec.alias, exc
                )
                rows.append(
                    {
                        **common,
                        "metric": spec.alias,
                        "key": "*",
                        "value": math.nan,
                        "status": "failed",
                        "reason": _reason(f"metric {spec.alias}", exc),
                        "measured_on": "",
                    }
                )
                continue
            for key, value in result.values.items():
                rows.append(
                    {
                        **common,
                        "metric": spec.alias,
                        "key": key,
                        "value": float(value),
                        "status": "ok",
                        "reason": "",
                        "measured_on": result.measured_on,
                    }
                )
        values["seconds_metrics"] = time.perf_counter() - start
        for key, value in values.items():
            rows.append(
                {
                    **common,
                    "metric": "run",
                    "key": key,
                    "value": float(value),
                    "status": "ok",
                    "reason": "",
                    "measured_on": "the run itself",
                }
            )
    return rows


def _common(unit: Unit, setting: Setting) -> dict[str, Any]:
    eps = setting.epsilon
    return {
        "cell": cell_key(unit.dataset, setting, unit.repeat),
        "dataset": unit.dataset,
        "setting": setting.kind,
        "epsilon": math.nan if eps is None else float(eps),
        "log10_epsilon": math.nan if eps is None else math.log10(eps),
        "eta": math.nan if setting.eta is None else float(setting.eta),
        "repeat": unit.repeat,
        "seed": unit.seed,
        "synthesizer": unit.protocol.synthesizer if eps is not None else "",
        "fairness": (unit.protocol.fairness or "") if setting.fair else "",
    }
