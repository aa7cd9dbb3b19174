"""The data-access seam: exact marginal counts of the sensitive table, for DP primitives only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from .errors import DataError, SchemaError

Clique = tuple[str, ...]

#: Rows per block when counting codes held in memory: the block's flat indices stay small
#: (a few MB) whatever the number of rows, so memory is bounded by the codes themselves.
COUNT_BLOCK_ROWS = 1 << 18


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


@runtime_checkable
class BatchCountSource(CountSource, Protocol):
    """A `CountSource` that answers many marginals at once (one scan of the data for all).

    Optional: the DP primitives call `marginals` with every clique a step needs (all
    candidates of a selection round, all marginals of a measurement) when a source has it,
    and `marginal` one clique at a time otherwise.
    """

    def marginals(self, cliques: Sequence[Clique]) -> dict[Clique, np.ndarray]:
        """Exact counts (int64) of each clique's marginal, as `marginal` gives them."""


class CachedCounts:
    """The part every built-in source shares: `sizes`, `marginal` and `marginals` over a cache.

    `marginals` checks the columns, asks `_count_missing` for the cliques not yet counted and
    keeps each answer read-only; a source sets `_sizes` and `_cache` and implements
    `_count_missing`, counting all of them in one pass where it can.
    """

    _sizes: dict[str, int]
    _cache: dict[Clique, np.ndarray]

    @property
    def sizes(self) -> Mapping[str, int]:
        return self._sizes

    def marginal(self, clique: Clique) -> np.ndarray:
        clique = tuple(clique)
        return self.marginals([clique])[clique]

    def marginals(self, cliques: Sequence[Clique]) -> dict[Clique, np.ndarray]:
        wanted = list(dict.fromkeys(tuple(c) for c in cliques))
        for c in wanted:
            unknown = [a for a in c if a not in self._sizes]
            if unknown:
                raise SchemaError(f"unknown column {unknown[0]!r} in marginal {c}")
        todo = [c for c in wanted if c not in self._cache]
        if todo:
            self._store(self._count_missing(todo))
        return {c: self._cache[c] for c in wanted}

    def _store(self, counts: Mapping[Clique, np.ndarray]) -> None:
        for clique, v in counts.items():
            v.setflags(write=False)
            self._cache[clique] = v

    def _count_missing(self, cliques: Sequence[Clique]) -> Mapping[Clique, np.ndarray]:
        """Exact counts of `cliques` (none cached yet; their columns are known)."""
        raise NotImplementedError


def fetch_marginals(source: CountSource, cliques: Iterable[Clique]) -> dict[Clique, np.ndarray]:
    """Exact counts of every clique: in one batch when `source` can, else one at a time."""
    wanted = list(dict.fromkeys(tuple(c) for c in cliques))
    if isinstance(source, BatchCountSource):
        return source.marginals(wanted)
    return {c: source.marginal(c) for c in wanted}


def count_codes(
    columns: Sequence[Sequence[np.ndarray]], shapes: Sequence[Sequence[int]], rows: int
) -> list[np.ndarray]:
    """Exact counts (int64, flat in C order) of several marginals of in-memory codes.

    `columns[k]` holds the code arrays (one per clique column, any integer dtype) of marginal
    k and `shapes[k]` its domain sizes. Rows are counted in blocks of `COUNT_BLOCK_ROWS`, every
    marginal per block, so the mixed-radix indices never take more than a block's memory and
    the block's codes are read while still in cache.
    """
    out: list[np.ndarray] = []
    plans = []
    for cols, shape in zip(columns, shapes, strict=True):
        size = int(np.prod(shape, dtype=np.int64))
        out.append(np.zeros(size, dtype=np.int64))
        strides = [int(np.prod(shape[j + 1 :], dtype=np.int64)) for j in range(len(shape))]
        plans.append((cols, strides, size, np.int32 if size < 2**31 else np.int64))
    for start in range(0, rows, COUNT_BLOCK_ROWS):
        stop = min(rows, start + COUNT_BLOCK_ROWS)
        for counts, (cols, strides, size, dtype) in zip(out, plans, strict=True):
            if not cols:
                counts[0] += stop - start
                continue
            flat: np.ndarray = cols[0][start:stop].astype(dtype)
            if strides[0] != 1:
                np.multiply(flat, strides[0], out=flat)
            for col, stride in zip(cols[1:], strides[1:], strict=True):
                part: np.ndarray = col[start:stop].astype(dtype)
                if stride != 1:
                    np.multiply(part, stride, out=part)
                np.add(flat, part, out=flat)
            counts += np.bincount(flat, minlength=size)
    return out


class InMemorySource(CachedCounts):
    """A `CountSource` over integer codes held in memory.

    Codes come as an (n, d) matrix or as one array per column; each column may use its own
    (smallest) integer type, e.g. uint8 for a domain of at most 256 values (see
    `safes_framework.ingest`). Marginals are `np.bincount` over mixed-radix codes, counted in
    blocks of rows, computed once per clique and cached; `marginals` counts a batch of
    cliques in one pass over the rows.

    Args:
        codes: (n, d) integer codes, or a sequence of d code arrays of equal length, columns
            in the order of `sizes`.
        sizes: domain size of every column, in column order.
    """

    def __init__(self, codes: np.ndarray | Sequence[np.ndarray], sizes: Mapping[str, int]) -> None:
        if isinstance(codes, np.ndarray):
            if codes.ndim != 2 or codes.shape[1] != len(sizes):
                raise DataError(f"expected codes of shape (n, {len(sizes)}), got {codes.shape}")
            self._matrix: np.ndarray | None = codes
            columns = [codes[:, j] for j in range(codes.shape[1])]
        else:
            columns = [np.asarray(c) for c in codes]
            if len(columns) != len(sizes) or any(c.ndim != 1 for c in columns):
                raise DataError(f"expected {len(sizes)} one-dimensional code arrays")
            if len({c.shape[0] for c in columns}) > 1:
                raise DataError("code arrays of different lengths")
            self._matrix = None
        if any(c.dtype.kind not in "iu" for c in columns):
            raise DataError("codes must be integers")
        self._columns = columns
        self._rows = int(columns[0].shape[0]) if columns else 0
        self._sizes = dict(sizes)
        self._index = {name: j for j, name in enumerate(self._sizes)}
        self._cache: dict[Clique, np.ndarray] = {}

    def _count_missing(self, cliques: Sequence[Clique]) -> dict[Clique, np.ndarray]:
        cols = [[self._columns[self._index[a]] for a in c] for c in cliques]
        shapes = [tuple(self._sizes[a] for a in c) for c in cliques]
        return dict(zip(cliques, count_codes(cols, shapes, self._rows), strict=True))

    def num_rows(self) -> int:
        return self._rows

    def rows(self) -> np.ndarray:
        if self._matrix is not None:
            view = self._matrix.view()
        else:
            dtype = np.result_type(*[c.dtype for c in self._columns])
            view = np.empty((self._rows, len(self._columns)), dtype=dtype)
            for j, col in enumerate(self._columns):
                view[:, j] = col
        view.setflags(write=False)
        return view


class CompressedSource(CachedCounts):
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

    def _count_missing(self, cliques: Sequence[Clique]) -> dict[Clique, np.ndarray]:
        bases = fetch_marginals(self._source, cliques)
        out: dict[Clique, np.ndarray] = {}
        for clique in cliques:
            base = bases[clique]
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
            out[clique] = counts
        return out

    def num_rows(self) -> int:
        return self._source.num_rows()

    def rows(self) -> np.ndarray:
        codes = np.array(self._source.rows())
        for j, col in enumerate(self._source.sizes):
            if col in self._mapping:
                codes[:, j] = self._mapping[col][codes[:, j]]
        return codes
