"""The escape hatch of the distortion language: a distortion given by a Python function of old
and new values, evaluated on every (source cell, domain cell) pair within a size limit."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from safes_framework.errors import ConfigError
from safes_framework.schema import Schema

#: Dense evaluations a callable distortion may need (sources x all target cells).
MAX_CALLABLE_PAIRS = 50_000_000
MAX_SCALAR_CALLABLE_PAIRS = 2_000_000


@dataclass(frozen=True)
class FunctionDistortion:
    """The escape hatch: a distortion given by a Python function of old and new values.

    Args:
        fn: with `vectorized=False`, `fn(old, new) -> float` where `old` and `new` are
            `{column: label}` dicts of one cell each (AIF360's `distortion_fun` signature); with
            `vectorized=True`, the dicts hold equal-length numpy arrays of labels and `fn`
            returns an array of costs.
        vectorized: see `fn`. The scalar form calls `fn` once per (source cell, target cell)
            pair, so it suits small domains only.
        name: a name for reports (default: the function's name).

    Every source cell is evaluated against every cell of the domain, so the number of cells
    bounds what a function can handle; declare an `Distortion` for large domains.
    """

    fn: Callable[..., Any]
    vectorized: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ConfigError(f"FunctionDistortion needs a callable, got {self.fn!r}")
        if not self.name:
            object.__setattr__(self, "name", getattr(self.fn, "__qualname__", repr(self.fn)))

    def _costs(
        self, schema: Schema, columns: Sequence[str], old: np.ndarray, new: np.ndarray
    ) -> np.ndarray:
        cols = [schema[c] for c in columns]
        if self.vectorized:
            o = {c.name: c.decode(old[:, j]) for j, c in enumerate(cols)}
            n = {c.name: c.decode(new[:, j]) for j, c in enumerate(cols)}
            out = np.asarray(self.fn(o, n), dtype=np.float64)
            if out.shape != (old.shape[0],):
                raise ConfigError(
                    f"distortion function {self.name!r} returned shape {out.shape}, expected "
                    f"({old.shape[0]},)"
                )
        else:
            labels_old = [c.decode(old[:, j]).tolist() for j, c in enumerate(cols)]
            labels_new = [c.decode(new[:, j]).tolist() for j, c in enumerate(cols)]
            names = [c.name for c in cols]
            out = np.fromiter(
                (
                    self.fn(dict(zip(names, o, strict=False)), dict(zip(names, n, strict=False)))
                    for o, n in zip(
                        zip(*labels_old, strict=False), zip(*labels_new, strict=False), strict=False
                    )
                ),
                dtype=np.float64,
                count=old.shape[0],
            )
        bad = ~(out >= 0)
        if bad.any():
            raise ConfigError(
                f"distortion function {self.name!r} returned {out[bad][0]!r}; costs must be "
                "non-negative numbers (or FORBIDDEN)"
            )
        return out

    def _all_cells(self, schema: Schema, columns: Sequence[str]) -> np.ndarray:
        sizes = [schema[c].size for c in columns]
        return np.stack(np.unravel_index(np.arange(math.prod(sizes)), sizes), axis=1)

    def targets(
        self, schema: Schema, columns: Sequence[str], sources: np.ndarray, forbidden_at: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        C = math.prod(schema[c].size for c in columns)
        S = sources.shape[0]
        limit = MAX_CALLABLE_PAIRS if self.vectorized else MAX_SCALAR_CALLABLE_PAIRS
        if S * C > limit:
            raise ConfigError(
                f"distortion function {self.name!r} would be evaluated on {S} x {C} = {S * C:,} "
                f"cell pairs (limit {limit:,}"
                + ("" if self.vectorized else "; pass vectorized=True for a numpy function")
                + "); declare the distortion with Ordinal/Moves terms instead"
            )
        cells = self._all_cells(schema, columns)
        chunk = max(1, 2_000_000 // max(C, 1))
        srcs, codes, costs = [], [], []
        for lo in range(0, S, chunk):
            block = sources[lo : lo + chunk]
            old = np.repeat(block, C, axis=0)
            new = np.tile(cells, (block.shape[0], 1))
            cost = self._costs(schema, columns, old, new)
            keep = cost < forbidden_at
            srcs.append(np.repeat(np.arange(lo, lo + block.shape[0]), C)[keep])
            codes.append(new[keep])
            costs.append(cost[keep])
        return np.concatenate(srcs), np.concatenate(codes), np.concatenate(costs)

    def matrix(self, schema: Schema, columns: Sequence[str]) -> np.ndarray:
        cells = self._all_cells(schema, columns)
        C = cells.shape[0]
        return self._costs(
            schema, columns, np.repeat(cells, C, axis=0), np.tile(cells, (C, 1))
        ).reshape(C, C)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "function": True, "vectorized": self.vectorized}
