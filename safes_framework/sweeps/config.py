"""Sweep configuration: the TOML/dict format, the grid of datasets x epsilon x eta x repeats."""

from __future__ import annotations

import inspect
import logging
import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConfigError
from ..evaluation import (
    DEFAULT_METRICS,
    PAPER_EPSILONS,
    PAPER_ETAS,
    PAPER_REPEATS,
    MetricSpec,
    Protocol,
    Setting,
    Unit,
    cell_key,
    unit_seed,
)

logger = logging.getLogger(__name__)


EXECUTORS = ("local", "dask", "serial")
FORMATS = ("csv", "parquet")


@dataclass(frozen=True)
class SweepConfig:
    """A grid of the evaluation protocol.

    Attributes:
        datasets: bundled dataset names.
        epsilons: privacy budgets of the DP columns (the paper: 10^-2, 10^-1.5, ..., 10).
        etas: fairness bounds per dataset (the paper: adult 0.025, 0.1; compas 0.08, 0.15).
        no_dp: also run the no-DP column (Original and Fair(eta)).
        no_fairness: also run the settings without fairness (Original and DP(epsilon)).
        repeats: repeats per cell (the paper: 35).
        original_repeats: repeats of Original (deterministic, so 1 by default).
        seed: the sweep seed; every repeat's seed is derived from it and its coordinates.
        protocol: components, parameters, delta, metrics, split.
    """

    datasets: tuple[str, ...] = ("adult", "compas")
    epsilons: tuple[float, ...] = PAPER_EPSILONS
    etas: Mapping[str, tuple[float, ...]] = field(default_factory=lambda: dict(PAPER_ETAS))
    no_dp: bool = True
    no_fairness: bool = True
    repeats: int = PAPER_REPEATS
    original_repeats: int = 1
    seed: int = 0
    protocol: Protocol = field(default_factory=Protocol)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> SweepConfig:
        """Read a TOML sweep config (see docs/sweeps.md for every key)."""
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read sweep config {str(path)!r}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"sweep config {str(path)!r} is not valid TOML: {exc}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "config") -> SweepConfig:
        """Build a config from the TOML structure ([sweep], [synthesizer], [fairness],
        [metrics], [split]); unknown keys raise a ConfigError naming them."""
        _only(data, ("sweep", "synthesizer", "fairness", "metrics", "split"), source, "")
        sweep = dict(data.get("sweep", {}))
        _only(
            sweep,
            (
                "datasets",
                "epsilons",
                "log10_epsilons",
                "etas",
                "no_dp",
                "no_fairness",
                "repeats",
                "original_repeats",
                "seed",
                "delta",
            ),
            source,
            "sweep",
        )
        kw: dict[str, Any] = {}
        if "datasets" in sweep:
            kw["datasets"] = tuple(_str_list(sweep["datasets"], "sweep.datasets"))
        if "epsilons" in sweep and "log10_epsilons" in sweep:
            raise ConfigError(f"{source}: give sweep.epsilons or sweep.log10_epsilons, not both")
        if "epsilons" in sweep:
            kw["epsilons"] = tuple(_num_list(sweep["epsilons"], "sweep.epsilons"))
        if "log10_epsilons" in sweep:
            kw["epsilons"] = tuple(
                10.0**k for k in _num_list(sweep["log10_epsilons"], "sweep.log10_epsilons")
            )
        if "etas" in sweep:
            etas = sweep["etas"]
            if isinstance(etas, Mapping):
                kw["etas"] = {
                    str(k): tuple(_num_list(v, f"sweep.etas.{k}")) for k, v in etas.items()
                }
            else:
                kw["etas"] = {"*": tuple(_num_list(etas, "sweep.etas"))}
        for key in ("no_dp", "no_fairness"):
            if key in sweep:
                kw[key] = _bool(sweep[key], f"sweep.{key}")
        for key in ("repeats", "original_repeats", "seed"):
            if key in sweep:
                kw[key] = _int(sweep[key], f"sweep.{key}")
        proto: dict[str, Any] = {}
        if "delta" in sweep:
            proto["delta"] = _num(sweep["delta"], "sweep.delta")
        synth = dict(data.get("synthesizer", {}))
        if synth:
            proto["synthesizer"] = str(synth.pop("name", Protocol.synthesizer))
            proto["synthesizer_params"] = synth
        fair = dict(data.get("fairness", {}))
        if fair:
            name = fair.pop("name", Protocol.fairness)
            proto["fairness"] = None if name in (None, "none", "") else str(name)
            if "eta_param" in fair:
                ep = fair.pop("eta_param")
                proto["eta_param"] = None if ep in (None, "none", "") else str(ep)
            elif proto["fairness"] is not None:
                proto["eta_param"] = default_eta_param(proto["fairness"])
            proto["fairness_params"] = fair
        if "metrics" in data:
            proto["metrics"] = _metric_specs(data["metrics"], source)
        split = dict(data.get("split", {}))
        _only(split, ("test_size", "random_state"), source, "split")
        if "test_size" in split:
            proto["test_size"] = _num(split["test_size"], "split.test_size")
        if "random_state" in split:
            proto["random_state"] = _int(split["random_state"], "split.random_state")
        config = cls(protocol=Protocol(**proto), **kw)
        config.check_grid()
        return config

    def to_dict(self) -> dict[str, Any]:
        """The TOML structure of this config (as accepted by `from_dict`)."""
        p = self.protocol
        out: dict[str, Any] = {
            "sweep": {
                "datasets": list(self.datasets),
                "epsilons": list(self.epsilons),
                "etas": {k: list(v) for k, v in self.etas.items()},
                "no_dp": self.no_dp,
                "no_fairness": self.no_fairness,
                "repeats": self.repeats,
                "original_repeats": self.original_repeats,
                "seed": self.seed,
                "delta": p.delta,
            },
            "synthesizer": {"name": p.synthesizer, **p.synthesizer_params},
            "fairness": {
                "name": p.fairness or "none",
                "eta_param": p.eta_param or "none",
                **p.fairness_params,
            },
            "metrics": {
                "use": [m.alias for m in p.metrics],
                **{m.alias: {"metric": m.name, **m.params} for m in p.metrics},
            },
            "split": {"test_size": p.test_size, "random_state": p.random_state},
        }
        return out

    # -- checks -------------------------------------------------------------------------------

    def check_grid(self) -> None:
        """Check the grid's shape (datasets, budgets, bounds, counts) without plugins."""
        from .. import datasets as bundled

        if not self.datasets:
            raise ConfigError("sweep.datasets is empty")
        for name in self.datasets:
            if name not in bundled.names():
                raise ConfigError(
                    f"sweep.datasets: unknown dataset {name!r}; bundled datasets: "
                    f"{', '.join(bundled.names())}"
                )
        for eps in self.epsilons:
            if not (math.isfinite(eps) and eps > 0):
                raise ConfigError(
                    f"sweep.epsilons: every epsilon must be a positive finite number, got {eps!r}"
                )
        if len(set(self.epsilons)) != len(self.epsilons):
            raise ConfigError(f"sweep.epsilons lists a value twice: {list(self.epsilons)}")
        if not self.epsilons and not self.no_dp:
            raise ConfigError("no epsilons and no_dp = false: the grid is empty")
        if self.repeats < 1 or self.original_repeats < 0:
            raise ConfigError(
                f"sweep.repeats must be >= 1 and original_repeats >= 0, got "
                f"{self.repeats} and {self.original_repeats}"
            )
        if self.seed < 0:
            raise ConfigError(f"sweep.seed must be a non-negative integer, got {self.seed}")
        p = self.protocol
        if p.fairness is not None and p.eta_param is not None:
            for name in self.datasets:
                etas = self.etas_for(name)
                if not etas:
                    raise ConfigError(
                        f"no etas for dataset {name!r}: add `{name} = [...]` under "
                        f"[sweep.etas] (the paper: {dict(PAPER_ETAS)}), or set eta_param = "
                        '"none" under [fairness] for a transformer without a bound'
                    )
                if any(not (math.isfinite(e) and e >= 0) for e in etas):
                    raise ConfigError(
                        f"sweep.etas.{name}: bounds must be finite and >= 0, got {list(etas)}"
                    )
        if p.fairness is None and not self.no_fairness:
            raise ConfigError('fairness is "none" and no_fairness = false: the grid is empty')
        if not 0 < p.test_size < 1:
            raise ConfigError(f"split.test_size must lie in (0, 1), got {p.test_size}")
        aliases = [m.alias for m in p.metrics]
        if len(set(aliases)) != len(aliases):
            raise ConfigError(f"metrics: an alias is used twice in {aliases}")

    def validate(self) -> None:
        """Check the grid and build every component once (plugins installed, parameters
        accepted), without running anything."""
        self.check_grid()
        etas = sorted({e for d in self.datasets for e in self.etas_for(d)})
        self.protocol.check(etas if self.protocol.eta_param is not None else ())

    # -- the grid -----------------------------------------------------------------------------

    def etas_for(self, dataset: str) -> tuple[float, ...]:
        if dataset in self.etas:
            return tuple(self.etas[dataset])
        return tuple(self.etas.get("*", ()))

    def columns(self, dataset: str) -> list[tuple[float | None, list[Setting]]]:
        """The (epsilon, settings) columns of the grid for one dataset."""
        p = self.protocol
        if p.fairness is None:
            etas: tuple[float | None, ...] = ()
        elif p.eta_param is None:
            etas = (None,)
        else:
            etas = self.etas_for(dataset)
        out: list[tuple[float | None, list[Setting]]] = []
        if self.no_dp:
            plain = [Setting("original")] if self.no_fairness else []
            out.append((None, plain + [Setting("fair", None, e) for e in etas]))
        for eps in self.epsilons:
            plain = [Setting("dp", eps)] if self.no_fairness else []
            out.append((eps, plain + [Setting("safes", eps, e) for e in etas]))
        return out

    def units(self, done: set[str] | frozenset[str] = frozenset()) -> list[Unit]:
        """Every unit of the grid, leaving out settings whose cells are in `done`."""
        units = []
        for dataset in self.datasets:
            for eps, settings in self.columns(dataset):
                for r in range(max(self.repeats, self.original_repeats)):
                    todo = tuple(
                        s
                        for s in settings
                        if (r < (self.original_repeats if s.kind == "original" else self.repeats))
                        and cell_key(dataset, s, r) not in done
                    )
                    if todo:
                        units.append(
                            Unit(
                                dataset,
                                eps,
                                r,
                                unit_seed(self.seed, dataset, eps, r),
                                todo,
                                self.protocol,
                            )
                        )
        return units

    def cells(self) -> int:
        """How many (dataset, setting, repeat) cells the grid has."""
        return sum(len(u.settings) for u in self.units())

    def describe(self) -> str:
        """A few lines summarising the grid (for `safes validate`)."""
        p = self.protocol
        units = self.units()
        lines = [
            f"datasets: {', '.join(self.datasets)}",
            f"epsilons: {', '.join(f'{e:.4g}' for e in self.epsilons) or '-'}"
            + (" + no DP" if self.no_dp else ""),
            f"delta: {p.delta:g}",
            f"synthesizer: {p.synthesizer} {dict(p.synthesizer_params) or ''}".rstrip(),
            f"fairness: {p.fairness or 'none'} {dict(p.fairness_params) or ''}".rstrip(),
        ]
        if p.fairness is not None and p.eta_param is not None:
            per = [f"{d}: {', '.join(f'{e:g}' for e in self.etas_for(d))}" for d in self.datasets]
            lines.append("etas: " + "; ".join(per))
        lines += [
            f"metrics: {', '.join(m.alias for m in p.metrics)}",
            f"repeats: {self.repeats} (Original: {self.original_repeats}); seed {self.seed}",
            f"units (one repeat of one dataset x epsilon column): {len(units)}",
            f"cells (dataset x setting x repeat): {sum(len(u.settings) for u in units)}",
        ]
        return "\n".join(lines)

    def with_overrides(self, **changes: Any) -> SweepConfig:
        """A copy with grid fields and protocol fields (by name) replaced; checked."""
        proto_fields = set(Protocol.__dataclass_fields__)
        proto = {k: v for k, v in changes.items() if k in proto_fields}
        if proto.get("fairness") is not None and "eta_param" not in proto:
            proto["eta_param"] = default_eta_param(proto["fairness"])
        grid = {k: v for k, v in changes.items() if k not in proto_fields}
        config = replace(self, protocol=replace(self.protocol, **proto), **grid)
        config.check_grid()
        return config


def default_eta_param(fairness: str) -> str | None:
    """The parameter that receives eta when a config names a transformer but no `eta_param`:
    "eta" when the registered transformer accepts one (or is not installed: validation then
    says so), None for a transformer without a bound (reweighing)."""
    from ..plugins import get_plugin_manager

    registry = get_plugin_manager().fairness_transformers
    if fairness not in registry:
        return "eta"
    try:
        params = inspect.signature(registry.entry(fairness).factory).parameters.values()
    except (TypeError, ValueError):
        return "eta"
    if any(p.name == "eta" or p.kind is p.VAR_KEYWORD for p in params):
        return "eta"
    return None


def _only(data: Mapping[str, Any], allowed: Sequence[str], source: str, table: str) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: [{table}] must be a table")
    for key in data:
        if key not in allowed:
            where = f"in [{table}]" if table else "at the top level"
            raise ConfigError(
                f"{source}: unknown key {key!r} {where}; allowed: {', '.join(allowed)}"
            )


def _num(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"{what} must be a number, got {v!r}")
    return float(v)


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{what} must be an integer, got {v!r}")
    return v


def _bool(v: Any, what: str) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{what} must be true or false, got {v!r}")
    return v


def _num_list(v: Any, what: str) -> list[float]:
    if isinstance(v, (str, bytes)) or not isinstance(v, Sequence):
        raise ConfigError(f"{what} must be a list of numbers, got {v!r}")
    return [_num(x, what) for x in v]


def _str_list(v: Any, what: str) -> list[str]:
    if isinstance(v, str) or not isinstance(v, Sequence) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"{what} must be a list of strings, got {v!r}")
    return list(v)


def _metric_specs(table: Any, source: str) -> tuple[MetricSpec, ...]:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: [metrics] must be a table")
    use = table.get("use")
    params = {k: v for k, v in table.items() if k != "use"}
    for k, v in params.items():
        if not isinstance(v, Mapping):
            raise ConfigError(
                f"{source}: metrics.{k} must be a table of parameters ([metrics.{k}]), got {v!r}"
            )
    names = [m.alias for m in DEFAULT_METRICS] if use is None else _str_list(use, "metrics.use")
    unused = sorted(set(params) - set(names))
    if unused:
        raise ConfigError(f"{source}: [metrics.{unused[0]}] is not listed in metrics.use ({names})")
    specs = []
    for alias in names:
        p = dict(params.get(alias, {}))
        specs.append(MetricSpec(alias, str(p.pop("metric", alias)), p))
    return tuple(specs)
