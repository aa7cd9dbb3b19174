"""Sweeps over datasets x epsilon x eta x repeats: TOML config, grid, resumable result store,
local process-pool and Dask distributed executors, and the `safes sweep` / `safes validate`
commands."""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import logging
import math
import multiprocessing
import os
import shutil
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import ConfigError
from .evaluation import (
    DEFAULT_METRICS,
    PAPER_EPSILONS,
    PAPER_ETAS,
    PAPER_REPEATS,
    RESEARCH_NOTE,
    ROW_COLUMNS,
    MetricSpec,
    Protocol,
    Setting,
    Unit,
    cell_key,
    run_unit,
    unit_seed,
)

logger = logging.getLogger(__name__)

EXECUTORS = ("local", "dask", "serial")
FORMATS = ("csv", "parquet")

# -- configuration ------------------------------------------------------------------------------


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
        from . import datasets as bundled

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
        grid = {k: v for k, v in changes.items() if k not in proto_fields}
        config = replace(self, protocol=replace(self.protocol, **proto), **grid)
        config.check_grid()
        return config


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


# -- the result store -----------------------------------------------------------------------------


class ResultStore:
    """Result rows of a sweep in a directory, written as they arrive, so a sweep resumes.

    Layout: `sweep.json` (the config and the protocol's fingerprint) and either `results.csv`
    (one file, appended) or `results.parquet/part-*.parquet` (one file per flush, each written
    to a temporary name and renamed). Every row carries its cell's key and the number of rows
    of that cell; a cell counts as done only when all its rows are there, so a crash in the
    middle of a write loses at most that write.

    Args:
        out: the directory.
        fmt: "csv" or "parquet"; default: what the directory holds, else "csv".
    """

    def __init__(self, out: str | os.PathLike[str], fmt: str | None = None) -> None:
        self.out = Path(out)
        existing = [f for f in FORMATS if (self.out / f"results.{f}").exists()]
        if fmt is None:
            fmt = existing[0] if existing else "csv"
        if fmt not in FORMATS:
            raise ConfigError(f"result format must be one of {list(FORMATS)}, got {fmt!r}")
        if existing and existing[0] != fmt:
            raise ConfigError(
                f"{str(self.out)!r} already holds results.{existing[0]}; "
                f"cannot add {fmt} results to it"
            )
        if fmt == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise ConfigError(
                    "parquet results need pyarrow (pip install pyarrow); or use the csv format"
                ) from None
        self.fmt = fmt
        self.path = self.out / f"results.{fmt}"
        self.manifest = self.out / "sweep.json"
        self._parts = 0

    @classmethod
    def open(
        cls,
        out: str | os.PathLike[str],
        config: SweepConfig,
        *,
        fmt: str | None = None,
        fresh: bool = False,
    ) -> ResultStore:
        """Open (or create) the store of `config` in `out`.

        Raises:
            ConfigError: `out` holds results of a different protocol (components, parameters,
                metrics, delta, split or seed); use another directory or `fresh`.
        """
        out = Path(out)
        if fresh and out.exists():
            for name in ("results.csv", "results.parquet", "sweep.json"):
                target = out / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        store = cls(out, fmt)
        out.mkdir(parents=True, exist_ok=True)
        fingerprint = _fingerprint(config)
        if store.manifest.exists():
            old = json.loads(store.manifest.read_text())
            if old.get("fingerprint") != fingerprint:
                diff = _differences(old.get("config", {}), config.to_dict())
                raise ConfigError(
                    f"{str(out)!r} holds results of a different sweep (differs in: {diff}); "
                    "resume with the same protocol and seed, or pass --fresh / another --out "
                    "(the grid itself, datasets x epsilons x etas x repeats, may change)"
                )
        elif store.path.exists():
            raise ConfigError(
                f"{str(store.path)!r} exists without sweep.json; not resuming "
                "into it (pass --fresh or another --out)"
            )
        store._write_manifest(config, fingerprint)
        store._repair()
        return store

    def _write_manifest(self, config: SweepConfig, fingerprint: str) -> None:
        from .release import versions

        created = None
        if self.manifest.exists():
            created = json.loads(self.manifest.read_text()).get("created")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        data = {
            "note": RESEARCH_NOTE,
            "fingerprint": fingerprint,
            "created": created or now,
            "updated": now,
            "config": config.to_dict(),
            "versions": versions(),
        }
        tmp = self.manifest.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, self.manifest)

    def _repair(self) -> None:
        """Cut a torn last line and drop rows of incomplete cells (CSV after a crash)."""
        if self.fmt == "parquet":
            self.path.mkdir(exist_ok=True)
            self._parts = len(list(self.path.glob("part-*.parquet")))
            for tmp in self.path.glob(".part-*"):
                tmp.unlink()
            return
        if not self.path.exists():
            return
        with open(self.path, "rb+") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            if size == 0:
                return
            fh.seek(size - 1)
            if fh.read(1) != b"\n":
                fh.seek(0)
                data = fh.read()
                fh.truncate(data.rfind(b"\n") + 1)
        df = self._read_all()
        if df.empty:
            return
        complete = _complete(df)
        if not complete.all():
            logger.warning(
                "dropping %d rows of %d incomplete cells in %s",
                int((~complete).sum()),
                df.loc[~complete, "cell"].nunique(),
                self.path,
            )
            tmp = self.path.with_suffix(".csv.tmp")
            df[complete].to_csv(tmp, index=False)
            os.replace(tmp, self.path)

    def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Write rows (every row of each of their cells) durably."""
        if not rows:
            return
        df = pd.DataFrame(list(rows), columns=list(ROW_COLUMNS))
        df["cell_rows"] = df.groupby("cell")["cell"].transform("size").astype("int64")
        if self.fmt == "parquet":
            name = f"part-{self._parts:06d}-{os.getpid()}.parquet"
            tmp = self.path / f".{name}"
            df.to_parquet(tmp, index=False)
            os.replace(tmp, self.path / name)
            self._parts += 1
            return
        header = not self.path.exists() or self.path.stat().st_size == 0
        text = df.to_csv(index=False, header=header)
        with open(self.path, "a", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    def _read_all(self) -> pd.DataFrame:
        if not self.path.exists():
            return pd.DataFrame(columns=[*ROW_COLUMNS, "cell_rows"])
        return read_results(self.path, complete_only=False)

    def completed_cells(self) -> set[str]:
        df = self._read_all()
        if df.empty:
            return set()
        return set(df.loc[_complete(df), "cell"].unique())

    def load(self) -> pd.DataFrame:
        """Every row of every complete cell."""
        return read_results(self.out)


def _complete(df: pd.DataFrame) -> pd.Series:
    counts = df.groupby("cell")["cell"].transform("size")
    return counts == df["cell_rows"]


def read_results(path: str | os.PathLike[str], *, complete_only: bool = True) -> pd.DataFrame:
    """The result rows of a sweep directory (or of a results.csv / results.parquet path).

    Raises:
        ConfigError: no results there.
    """
    path = Path(path)
    if path.is_dir() and path.suffix != ".parquet":
        found = [path / f"results.{f}" for f in FORMATS if (path / f"results.{f}").exists()]
        if not found:
            raise ConfigError(f"no results.csv or results.parquet in {str(path)!r}")
        path = found[0]
    if not path.exists():
        raise ConfigError(f"no sweep results at {str(path)!r}")
    if path.suffix == ".parquet":
        parts = sorted(path.glob("part-*.parquet")) if path.is_dir() else [path]
        if not parts:
            return pd.DataFrame(columns=[*ROW_COLUMNS, "cell_rows"])
        df = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    else:
        if path.stat().st_size == 0:
            return pd.DataFrame(columns=[*ROW_COLUMNS, "cell_rows"])
        df = pd.read_csv(
            path,
            keep_default_na=False,
            na_values={
                "value": ["", "nan", "NaN"],
                "epsilon": ["", "nan"],
                "log10_epsilon": ["", "nan"],
                "eta": ["", "nan"],
            },
        )
    for col in ("synthesizer", "fairness", "reason", "measured_on", "metric", "key"):
        df[col] = df[col].fillna("").astype(str)
    for col in ("value", "epsilon", "log10_epsilon", "eta"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    if complete_only and not df.empty:
        df = df[_complete(df)].reset_index(drop=True)
    return df


def _fingerprint(config: SweepConfig) -> str:
    import hashlib

    text = json.dumps(
        {"protocol": config.protocol.to_dict(), "seed": config.seed}, sort_keys=True, default=repr
    )
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> str:
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            sub = _differences(a, b, f"{prefix}{k}.")
            if sub:
                keys.append(sub)
        elif a != b and f"{prefix}{k}" not in _GRID_KEYS:
            keys.append(f"{prefix}{k}")
    return ", ".join(keys)


_GRID_KEYS = {
    "sweep.datasets",
    "sweep.epsilons",
    "sweep.etas",
    "sweep.repeats",
    "sweep.original_repeats",
    "sweep.no_dp",
    "sweep.no_fairness",
}


# -- executors ------------------------------------------------------------------------------------


def _run_serial(units: Sequence[Unit], strict: bool) -> Iterator[tuple[Unit, Any]]:
    for unit in units:
        yield unit, run_unit(unit, strict=strict)


def _run_local(
    units: Sequence[Unit], workers: int | None, strict: bool
) -> Iterator[tuple[Unit, Any]]:
    ctx = multiprocessing.get_context("spawn")  # JAX and fork do not mix
    # each worker limits itself to one BLAS thread on its first unit (evaluation.run_unit)
    pool = cf.ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1, mp_context=ctx)
    try:
        futures = {pool.submit(run_unit, u, strict=strict): u for u in units}
        for fut in cf.as_completed(futures):
            unit = futures[fut]
            try:
                yield unit, fut.result()
            except Exception as exc:
                if strict:
                    raise
                yield unit, exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(
    units: Sequence[Unit], workers: int | None, scheduler: str | None, strict: bool
) -> Iterator[tuple[Unit, Any]]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ConfigError(
            "the dask executor needs Dask distributed: pip install 'safes-framework[distributed]'"
        ) from None
    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    dask_logger = logging.getLogger("distributed")
    level = dask_logger.level
    if not logging.getLogger().isEnabledFor(logging.INFO):
        dask_logger.setLevel(logging.WARNING)  # Dask's own config logs every start at INFO
    cluster = None
    if address:
        client = Client(address)
    else:
        cluster = LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.WARNING,
        )
        client = Client(cluster)
    try:
        futures = {}
        for u in units:
            fut = client.submit(run_unit, u, strict=strict, pure=False)
            futures[fut.key] = (fut, u)
        for fut in as_completed([f for f, _ in futures.values()]):
            unit = futures[fut.key][1]
            try:
                yield unit, fut.result()
            except Exception as exc:
                if strict:
                    raise
                yield unit, exc
            finally:
                fut.release()
    finally:
        if dask_logger.level == logging.WARNING:
            dask_logger.setLevel(logging.ERROR)  # "worker still alive after 4 s, killing"
        client.close()
        if cluster is not None:
            cluster.close()
        dask_logger.setLevel(level)


# -- the driver -----------------------------------------------------------------------------------


@dataclass
class SweepSummary:
    """What a sweep did.

    Attributes:
        out: the results directory.
        units_planned: units of the grid still to run when the sweep started.
        units_done: units that finished (their rows are stored).
        units_lost: units the executor could not run (crashed worker...); rerun to resume.
        cells_skipped: cells already in the store when the sweep started.
        cells_ok: cells run now with every metric computed.
        cells_failed: cells run now with a failure recorded (release or a metric).
        seconds: wall time.
        errors: reasons of lost units.
    """

    out: Path
    units_planned: int = 0
    units_done: int = 0
    units_lost: int = 0
    cells_skipped: int = 0
    cells_ok: int = 0
    cells_failed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


Progress = Callable[[SweepSummary, Unit], None]


def run_sweep(
    config: SweepConfig,
    out: str | os.PathLike[str],
    *,
    executor: str = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    fmt: str | None = None,
    fresh: bool = False,
    flush_every: int = 16,
    flush_seconds: float = 30.0,
    progress: Progress | None = None,
    strict: bool = False,
) -> SweepSummary:
    """Run (or resume) a sweep; rows are stored as units finish.

    Args:
        config: the grid and protocol.
        out: results directory (see `ResultStore`); cells already stored there are skipped.
        executor: "local" (process pool on this machine), "dask" (Dask distributed: a
            LocalCluster, or the scheduler at `scheduler` / $DASK_SCHEDULER_ADDRESS) or
            "serial" (in this process; debugging).
        workers: processes of the local pool or LocalCluster (default: all cores).
        scheduler: address of a running Dask scheduler ("tcp://host:8786").
        fmt: "csv" or "parquet" (default: what `out` holds, else csv).
        fresh: delete earlier results in `out` first.
        flush_every: store after this many finished units...
        flush_seconds: ...or after this many seconds, whichever comes first.
        progress: called after every finished unit with the running summary.
        strict: stop at the first failure instead of recording it.

    Returns:
        The summary. Interrupting (Ctrl-C) stores what finished, then re-raises.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {list(EXECUTORS)}, got {executor!r}")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    config.validate()
    store = ResultStore.open(out, config, fmt=fmt, fresh=fresh)
    done = store.completed_cells()
    units = config.units(done)
    summary = SweepSummary(
        out=Path(out), units_planned=len(units), cells_skipped=len(done & _all_cells(config))
    )
    start = time.perf_counter()
    logger.info(
        "sweep: %d units to run, %d cells already stored", len(units), summary.cells_skipped
    )
    if not units:
        return summary
    if executor == "serial":
        stream: Iterator[tuple[Unit, Any]] = _run_serial(units, strict)
    elif executor == "local":
        stream = _run_local(units, workers, strict)
    else:
        stream = _run_dask(units, workers, scheduler, strict)
    buffer: list[dict[str, Any]] = []
    last_flush = time.monotonic()
    pending = 0
    try:
        for unit, result in stream:
            if isinstance(result, BaseException):
                summary.units_lost += 1
                summary.errors.append(f"{unit.label}: {type(result).__name__}: {result}")
                logger.error("sweep: %s was lost: %s", unit.label, result)
            else:
                buffer.extend(result)
                pending += 1
                summary.units_done += 1
                failed = {r["cell"] for r in result if r["status"] == "failed"}
                cells = {r["cell"] for r in result}
                summary.cells_failed += len(failed)
                summary.cells_ok += len(cells - failed)
            if pending >= flush_every or time.monotonic() - last_flush > flush_seconds:
                store.append(buffer)
                buffer, pending, last_flush = [], 0, time.monotonic()
            summary.seconds = time.perf_counter() - start
            if progress is not None:
                progress(summary, unit)
    finally:
        store.append(buffer)
        summary.seconds = time.perf_counter() - start
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    return summary


def _all_cells(config: SweepConfig) -> set[str]:
    return {cell_key(u.dataset, s, u.repeat) for u in config.units() for s in u.settings}


# -- command line ---------------------------------------------------------------------------------


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise ConfigError(f"expected numbers separated by commas, got {text!r}") from None


def add_grid_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments shared by `safes sweep` and `safes validate`: the config and its overrides."""
    p.add_argument("config", nargs="?", help="TOML sweep config (default: the paper's grid)")
    g = p.add_argument_group("grid overrides (take precedence over the config)")
    g.add_argument(
        "--dataset", action="append", default=None, metavar="NAME", help="dataset (repeatable)"
    )
    g.add_argument("--epsilons", help="comma-separated epsilons, e.g. 0.1,1")
    g.add_argument("--log10-epsilons", help="comma-separated log10 epsilons, e.g. -1,0")
    g.add_argument("--etas", help="comma-separated etas for every dataset")
    g.add_argument(
        "--no-dp-column", action="store_true", help="skip the no-DP column (Original, Fair)"
    )
    g.add_argument("--repeats", type=int)
    g.add_argument("--original-repeats", type=int)
    g.add_argument("--seed", type=int, help="sweep seed")
    g.add_argument("--delta", type=float)
    g.add_argument("--synthesizer", help="registered synthesizer (the paper: aim)")
    g.add_argument("--synth-param", action="append", default=[], metavar="KEY=VALUE")
    g.add_argument("--fairness", help="registered fairness transformer, or none (the paper: tot)")
    g.add_argument("--fairness-param", action="append", default=[], metavar="KEY=VALUE")
    g.add_argument("--metrics", help="comma-separated metric names")


def config_from_args(args: argparse.Namespace) -> SweepConfig:
    """The config file (or the paper's defaults) with the command line's overrides."""
    from .cli import _parse_param

    data: dict[str, Any] = {}
    if args.config:
        try:
            with open(args.config, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read sweep config {args.config!r}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"sweep config {args.config!r} is not valid TOML: {exc}") from None
    sweep = data.setdefault("sweep", {})
    if args.dataset:
        sweep["datasets"] = args.dataset
    if args.epsilons is not None or args.log10_epsilons is not None:
        sweep.pop("epsilons", None)
        sweep.pop("log10_epsilons", None)
        if args.epsilons is not None:
            sweep["epsilons"] = _floats(args.epsilons)
        if args.log10_epsilons is not None:
            sweep["log10_epsilons"] = _floats(args.log10_epsilons)
    if args.etas is not None:
        sweep["etas"] = _floats(args.etas)
    if args.no_dp_column:
        sweep["no_dp"] = False
    for key in ("repeats", "original_repeats", "seed", "delta"):
        if getattr(args, key) is not None:
            sweep[key] = getattr(args, key)
    if args.synthesizer or args.synth_param:
        synth = data.setdefault("synthesizer", {})
        if args.synthesizer:
            if args.synthesizer != synth.get("name", args.synthesizer):
                synth.clear()  # another synthesizer: the config's parameters were for the old one
            synth["name"] = args.synthesizer
        synth.update(dict(_parse_param(x) for x in args.synth_param))
    if args.fairness or args.fairness_param:
        fair = data.setdefault("fairness", {})
        if args.fairness:
            if args.fairness != fair.get("name", args.fairness):
                fair.clear()
            fair["name"] = args.fairness
        fair.update(dict(_parse_param(x) for x in args.fairness_param))
    if args.metrics:
        metrics = data.setdefault("metrics", {})
        use = [m.strip() for m in args.metrics.split(",") if m.strip()]
        metrics["use"] = use
        for alias in [k for k in metrics if k != "use" and k not in use]:
            del metrics[alias]
    return SweepConfig.from_dict(data, source=args.config or "command line")


def build_sweep_parser(p: argparse.ArgumentParser) -> None:
    add_grid_arguments(p)
    r = p.add_argument_group("running")
    r.add_argument("--out", required=True, help="results directory (resumed if it exists)")
    r.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local process pool (default), dask (Dask distributed) or serial",
    )
    r.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: all cores)"
    )
    r.add_argument(
        "--scheduler",
        default=None,
        help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (with --executor dask; "
        "default $DASK_SCHEDULER_ADDRESS, else a LocalCluster)",
    )
    r.add_argument("--format", choices=FORMATS, default=None, help="csv (default) or parquet")
    r.add_argument("--fresh", action="store_true", help="discard earlier results in --out")
    r.add_argument("--strict", action="store_true", help="stop at the first failure")
    r.add_argument("--quiet", action="store_true", help="no progress on stderr")


def cmd_sweep(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    printer = None if args.quiet else _ProgressLine(sys.stderr)
    try:
        summary = run_sweep(
            config,
            args.out,
            executor=args.executor,
            workers=args.workers,
            scheduler=args.scheduler,
            fmt=args.format,
            fresh=args.fresh,
            progress=printer,
            strict=args.strict,
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; finished units are stored in {args.out}; rerun the same "
            "command to resume",
            file=sys.stderr,
        )
        return 130
    print(
        f"sweep: {summary.units_done} units run in {summary.seconds:.1f} s "
        f"({summary.cells_ok} cells ok, {summary.cells_failed} with a failure recorded, "
        f"{summary.cells_skipped} already stored); results in {args.out}"
    )
    print(f"sweep: {RESEARCH_NOTE}")
    if summary.units_lost:
        print(
            f"sweep: {summary.units_lost} units were lost by the executor (first: "
            f"{summary.errors[0]}); rerun to resume",
            file=sys.stderr,
        )
        return 1
    return 0


class _ProgressLine:
    def __init__(self, stream: Any, min_interval: float = 2.0) -> None:
        self.stream = stream
        self.min_interval = min_interval
        self._last = 0.0

    def __call__(self, s: SweepSummary, unit: Unit) -> None:
        now = time.monotonic()
        finished = s.units_done + s.units_lost
        if finished < s.units_planned and now - self._last < self.min_interval:
            return
        self._last = now
        left = ""
        if s.units_done:
            eta = s.seconds / finished * (s.units_planned - finished)
            left = f", ~{eta:.0f} s left"
        print(
            f"[sweep] {finished}/{s.units_planned} units ({unit.label}); "
            f"{s.cells_failed} failed cells; {s.seconds:.0f} s{left}",
            file=self.stream,
            flush=True,
        )


def build_validate_parser(p: argparse.ArgumentParser) -> None:
    add_grid_arguments(p)


def cmd_validate(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    config.validate()
    print(config.describe())
    print("config OK")
    return 0


__all__ = [
    "EXECUTORS",
    "FORMATS",
    "ResultStore",
    "SweepConfig",
    "SweepSummary",
    "read_results",
    "run_sweep",
]
