"""The result store: one row per metric value, appended as units finish, resumable."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ConfigError
from ..evaluation import (
    RESEARCH_NOTE,
    ROW_COLUMNS,
)
from .config import FORMATS, SweepConfig

logger = logging.getLogger(__name__)


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
        from ..release import versions

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
