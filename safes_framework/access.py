"""The data-access seam: exact marginal counts of the sensitive table, for DP primitives only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from .errors import DataError, SchemaError

Clique = tuple[str, ...]


@runtime_checkable
class CountSource(Protocol):
    """Where the sensitive rows live; answers group-by count queries over encoded columns.

    AIM and MST only ever need marginal counts, so a backend that computes group-by counts where
    the data lives (DuckDB, Spark, Dask, Polars) can serve a table too large for memory without
    changing any synthesizer. Only the core's DP primitives (`safes_framework.primitives`) call a
    source; no plugin receives one.
    """

    @property
    def sizes(self) -> Mapping[str, int]:
        """Public domain size of every column (from the schema, never from the data)."""

    def marginal(self, clique: Clique) -> np.ndarray:
        """Exact counts (int64) of the marginal on `clique`, flat in C order of its sizes."""

    def num_rows(self) -> int:
        """Exact number of rows (sensitive under add/remove neighbouring)."""

    def rows(self) -> np.ndarray:
        """All rows as an (n, d) integer code matrix (only for mechanisms that declared events)."""


class InMemorySource:
    """A `CountSource` over an (n, d) matrix of integer codes held in memory.

    Marginals are `np.bincount` over mixed-radix codes, computed once per clique and cached.

    Args:
        codes: (n, d) integer codes, columns in the order of `sizes`.
        sizes: domain size of every column, in column order.
    """

    def __init__(self, codes: np.ndarray, sizes: Mapping[str, int]) -> None:
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != len(sizes):
            raise DataError(f"expected codes of shape (n, {len(sizes)}), got {codes.shape}")
        self._codes = codes
        self._sizes = dict(sizes)
        self._index = {name: j for j, name in enumerate(self._sizes)}
        self._cache: dict[Clique, np.ndarray] = {}

    @property
    def sizes(self) -> Mapping[str, int]:
        return self._sizes

    def _columns(self, clique: Sequence[str]) -> list[int]:
        try:
            return [self._index[c] for c in clique]
        except KeyError as exc:
            raise SchemaError(
                f"unknown column {exc.args[0]!r} in marginal {tuple(clique)}"
            ) from None

    def marginal(self, clique: Clique) -> np.ndarray:
        clique = tuple(clique)
        if clique not in self._cache:
            cols = self._columns(clique)
            shape = tuple(self._sizes[c] for c in clique)
            size = int(np.prod(shape, dtype=np.int64))
            if not clique:
                counts = np.array([self._codes.shape[0]], dtype=np.int64)
            else:
                flat = np.ravel_multi_index(tuple(self._codes[:, j] for j in cols), shape)
                counts = np.bincount(flat, minlength=size).astype(np.int64, copy=False)
            counts.setflags(write=False)
            self._cache[clique] = counts
        return self._cache[clique]

    def num_rows(self) -> int:
        return int(self._codes.shape[0])

    def rows(self) -> np.ndarray:
        view = self._codes.view()
        view.setflags(write=False)
        return view


class CompressedSource:
    """A `CountSource` whose columns' codes are merged by public mappings.

    Marginals are aggregated from the wrapped source's marginals, so any backend works.

    Args:
        source: the wrapped source.
        mapping: for some columns, `mapping[col][i]` = new code of original code i; the new
            codes must be exactly 0..k-1.
    """

    def __init__(self, source: CountSource, mapping: Mapping[str, np.ndarray]) -> None:
        self._source = source
        self._mapping: dict[str, np.ndarray] = {}
        sizes = dict(source.sizes)
        for col, m in mapping.items():
            if col not in sizes:
                raise SchemaError(f"cannot compress unknown column {col!r}")
            m = np.asarray(m, dtype=np.int64)
            if m.shape != (sizes[col],):
                raise DataError(
                    f"column {col!r}: mapping has {m.size} entries, domain has {sizes[col]}",
                    column=col,
                )
            k = int(m.max()) + 1
            if m.min() < 0 or np.unique(m).size != k:
                raise DataError(f"column {col!r}: mapping must be onto 0..{k - 1}", column=col)
            self._mapping[col] = m
            sizes[col] = k
        self._sizes = sizes
        self._cache: dict[Clique, np.ndarray] = {}

    @property
    def sizes(self) -> Mapping[str, int]:
        return self._sizes

    def marginal(self, clique: Clique) -> np.ndarray:
        clique = tuple(clique)
        if clique not in self._cache:
            base = self._source.marginal(clique)
            new_shape = tuple(self._sizes[c] for c in clique)
            grids = np.meshgrid(
                *[self._mapping.get(c, np.arange(self._source.sizes[c])) for c in clique],
                indexing="ij",
            )
            target = (
                np.ravel_multi_index(tuple(g.ravel() for g in grids), new_shape)
                if clique
                else np.zeros(1, dtype=np.int64)
            )
            size = int(np.prod(new_shape, dtype=np.int64))
            counts = np.zeros(size, dtype=np.int64)
            np.add.at(counts, target, np.asarray(base, dtype=np.int64).reshape(-1))
            counts.setflags(write=False)
            self._cache[clique] = counts
        return self._cache[clique]

    def num_rows(self) -> int:
        return self._source.num_rows()

    def rows(self) -> np.ndarray:
        codes = np.array(self._source.rows())
        for j, col in enumerate(self._source.sizes):
            if col in self._mapping:
                codes[:, j] = self._mapping[col][codes[:, j]]
        return codes
