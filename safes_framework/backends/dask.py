"""A `CountSource` on a Dask DataFrame: partitions are encoded and counted where they live.

Each batch of marginals is one pass over the partitions: every worker encodes its partition
with the public schema (`safes_framework.ingest.encode_chunks`) and counts all the batch's
marginals (`safes_framework.access.count_codes`); the per-partition counts are summed in a
tree on the cluster and only the exact totals (int64) come back. The same seam serves a Spark
DataFrame: a `mapInPandas` over partitions returning the same counts, summed by a reduce.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..access import CachedCounts, Clique, count_codes
from ..errors import ConfigError, MissingColumnError
from ..ingest import encode_chunks
from ..schema import Schema

logger = logging.getLogger(__name__)


def _partition_counts(
    frame: Any, schema: Schema, cliques: Sequence[Clique], index: int
) -> list[np.ndarray]:
    """Exact counts of `cliques` in one partition (runs on a worker)."""
    index_of = {n: j for j, n in enumerate(schema.names)}
    shapes = [tuple(schema.sizes[a] for a in c) for c in cliques]
    if len(frame) == 0:
        return [np.zeros(math.prod(s), dtype=np.int64) for s in shapes]
    codes = encode_chunks(schema, [frame], source=f"partition {index} of the Dask DataFrame")
    cols = [[codes.arrays[index_of[a]] for a in c] for c in cliques]
    return count_codes(cols, shapes, codes.rows)


def _add(*parts: list[np.ndarray]) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for arrays in zip(*parts, strict=True):
        total = np.zeros_like(arrays[0], dtype=np.int64)
        for a in arrays:
            total += a
        out.append(total)
    return out


class DaskSource(CachedCounts):
    """Exact marginal counts of a Dask DataFrame, computed on its cluster.

    Building the source checks every partition against the schema and counts the one-way
    marginals and the rows in one pass, so a domain error is raised before any DP primitive
    runs (the worker's `DomainError`, naming the column, the value and the partition).

    Args:
        frame: a `dask.dataframe.DataFrame` with the schema's columns (schema labels).
        schema: the public schema.
        fan_in: partitions' counts summed per task of the reduction tree.
    """

    def __init__(self, frame: Any, schema: Schema, *, fan_in: int = 8) -> None:
        try:
            import dask
        except ImportError as exc:
            raise ConfigError(
                "the dask backend needs dask (pip install 'safes-framework[distributed]'): "
                f"{exc}"
            ) from None
        if not hasattr(frame, "to_delayed") or not hasattr(frame, "columns"):
            raise ConfigError(f"the dask backend needs a Dask DataFrame, got {type(frame)}")
        missing = [n for n in schema.names if n not in frame.columns]
        if missing:
            raise MissingColumnError(
                f"column {missing[0]!r} is declared in the schema but missing from the Dask "
                f"DataFrame (it has {list(frame.columns)})",
                column=missing[0],
            )
        self._dask = dask
        self.schema = schema
        self._sizes = dict(schema.sizes)
        self._parts = frame[list(schema.names)].to_delayed()
        self._fan_in = max(2, int(fan_in))
        self._cache: dict[Clique, np.ndarray] = {}
        self.passes = 0
        counts = self._count([(n,) for n in schema.names] + [()])
        self._rows = int(counts[()][0])
        self._store(counts)

    def _count(self, cliques: Sequence[Clique]) -> dict[Clique, np.ndarray]:
        delayed = self._dask.delayed
        level = [
            delayed(_partition_counts)(part, self.schema, list(cliques), k)
            for k, part in enumerate(self._parts)
        ]
        while len(level) > 1:
            level = [
                delayed(_add)(*level[i : i + self._fan_in])
                for i in range(0, len(level), self._fan_in)
            ]
        self.passes += 1
        (total,) = self._dask.compute(level[0])
        return dict(zip(cliques, total, strict=True))

    def _count_missing(self, cliques: Sequence[Clique]) -> dict[Clique, np.ndarray]:
        logger.info("dask: counting %d marginals in one pass", len(cliques))
        return self._count(cliques)

    def num_rows(self) -> int:
        return self._rows

    def rows(self) -> np.ndarray:
        """Every row's codes as an (n, d) matrix (for mechanisms that declared their events)."""
        frames = self._dask.compute(*self._parts)
        codes = encode_chunks(self.schema, frames, source="the Dask DataFrame")
        out = codes.matrix()
        out.setflags(write=False)
        return out
