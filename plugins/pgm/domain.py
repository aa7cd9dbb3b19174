"""Domains and model sizes: mbi `Domain`s from schema sizes, junction-tree sizes (cached)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import mbi
from mbi import junction_tree as mbi_junction_tree

from . import kernels

Clique = tuple[str, ...]


def domain(sizes: Mapping[str, int]) -> mbi.Domain:
    """An mbi Domain from column sizes (order kept)."""
    return mbi.Domain(tuple(sizes), tuple(int(s) for s in sizes.values()))


def cells(dom: mbi.Domain, clique: Sequence[str]) -> int:
    """Cells of `clique`'s marginal (mbi's `Domain.size`, without building a sub-domain)."""
    return math.prod(dom[a] for a in clique)


def clique_routes(
    maximal: Sequence[Clique], cliques: Sequence[Clique], dom: mbi.Domain
) -> dict[Clique, Clique]:
    """mbi 2.0's `clique_utils.clique_mapping(maximal, cliques, dom)`: each clique to the
    smallest (first on ties) of the `maximal` cliques containing it; cliques in none are
    left out."""
    sets = [(m, set(m), cells(dom, m)) for m in maximal]
    out: dict[Clique, Clique] = {}
    for cl in cliques:
        wanted = set(cl)
        best = None
        for m, members, size in sets:
            if wanted <= members and (best is None or size < best[1]):
                best = (m, size)
        if best is not None:
            out[cl] = best[0]
    return out


def model_size_mb(dom: mbi.Domain, cliques: Sequence[Clique]) -> float:
    """Size in MB of the junction tree a model on `cliques` would need."""
    return float(mbi_junction_tree.hypothetical_model_size(dom, list(cliques)))


class JunctionTreeSizer:
    """`model_size_mb` computed on bit masks: the same junction tree size, in microseconds.

    mbi sizes a model by building its junction tree with networkx (milliseconds for 14
    columns); an adaptive mechanism asks about every candidate in every round. This follows
    the same construction (mbi 2.0 `junction_tree.make_junction_tree`): a graph that is a tree
    is its own junction tree; otherwise variables are eliminated greedily, each time the one
    whose neighbourhood (with itself) has the fewest cells, ties to the first in domain order,
    and the model's cells are those of the maximal elimination cliques (the maximal cliques of
    the triangulated graph). On at most `COMPILED_COLUMNS` columns the construction runs in
    the compiled `kernels.junction_cells` (counts saturate at `kernels.CELLS_CAP`, 2^62
    cells, far beyond any model that fits in memory); on more, in Python, with cell counts of
    column sets cached by bit mask.

    Args:
        dom: the domain.
    """

    #: Column counts up to which sizes come from the compiled kernel (bit masks in int64).
    COMPILED_COLUMNS = 62

    def __init__(self, dom: mbi.Domain) -> None:
        self.domain = dom
        self._bit = {a: 1 << j for j, a in enumerate(dom.attributes)}
        self._sizes = [int(s) for s in dom.shape]
        self._compiled = len(self._sizes) <= self.COMPILED_COLUMNS
        self._size_array = kernels.as_index(self._sizes)
        self._cells: dict[int, int] = {0: 1}
        self._bits: dict[int, tuple[int, ...]] = {}

    def _members(self, mask: int) -> tuple[int, ...]:
        out = self._bits.get(mask)
        if out is None:
            out = tuple(j for j in range(len(self._sizes)) if mask >> j & 1)
            self._bits[mask] = out
        return out

    def cells_of(self, mask: int) -> int:
        """Cells of the columns in `mask` (cached)."""
        out = self._cells.get(mask)
        if out is None:
            out = math.prod(self._sizes[j] for j in self._members(mask))
            self._cells[mask] = out
        return out

    def graph(self, cliques: Sequence[Clique]) -> tuple[list[int], int]:
        """The model graph of `cliques`: each column's neighbours (bit masks) and the mask of
        the columns present."""
        adj = [0] * len(self._sizes)
        present = 0
        for cl in cliques:
            present = self._join(adj, present, cl)
        return adj, present

    def _join(self, adj: list[int], present: int, clique: Clique) -> int:
        """Add `clique`'s edges to `adj` (in place); return the new `present`."""
        mask = 0
        for a in clique:
            mask |= self._bit[a]
        for j in self._members(mask):
            adj[j] |= mask & ~(1 << j)
        return present | mask

    def cells(self, cliques: Sequence[Clique]) -> int:
        """Cells of the junction tree of `cliques`."""
        return self.cells_of_graph(*self.graph(cliques))

    def cells_with(self, graph: tuple[list[int], int], clique: Clique) -> int:
        """Cells of the junction tree of a model `graph` (see `graph`) with `clique` added."""
        adj = list(graph[0])
        return self.cells_of_graph(adj, self._join(adj, graph[1], clique))

    def cells_of_graph(self, adj: list[int], present: int) -> int:
        """Cells of the junction tree of a model graph (`adj` is overwritten)."""
        if self._compiled:
            return int(kernels.junction_cells(kernels.as_index(adj), present, self._size_array))
        return self._cells_of_graph(adj, present)

    def _cells_of_graph(self, adj: list[int], present: int) -> int:
        """`cells_of_graph` in Python, on any number of columns (exact counts)."""
        d = len(self._sizes)
        if self._is_tree(adj):
            return sum(
                self._sizes[i] * self._sizes[j] for i in range(d) for j in range(i + 1, d)
                if adj[i] >> j & 1
            )
        _, blocks = self._eliminate(adj, present)
        maximal = [b for b in set(blocks) if not any(b != o and b & o == b for o in blocks)]
        return sum(self.cells_of(b) for b in maximal)

    def _is_tree(self, adj: list[int]) -> bool:
        edges = sum(m.bit_count() for m in adj) // 2
        return bool(edges) and edges == len(self._sizes) - 1 and self._connected(adj)

    def _eliminate(self, adj: list[int], present: int) -> tuple[list[int], list[int]]:
        """mbi's greedy elimination of every column (`adj` is overwritten): the order, and
        each step's elimination clique (the column and its neighbours then) as a mask."""
        remaining = list(range(len(self._sizes)))
        cost = {j: self.cells_of(adj[j] | 1 << j) if present >> j & 1 else 1 for j in remaining}
        order: list[int] = []
        blocks: list[int] = []
        while remaining:
            v = min(remaining, key=cost.__getitem__)  # ties: first in domain order
            remaining.remove(v)
            order.append(v)
            nbrs = adj[v]
            blocks.append(nbrs | 1 << v)
            for j in self._members(nbrs):
                adj[j] = (adj[j] | nbrs) & ~(1 << j) & ~(1 << v)
                cost[j] = self.cells_of(adj[j] | 1 << j)
        return order, blocks

    def elimination_order(self, cliques: Sequence[Clique]) -> list[str] | None:
        """mbi 2.0's elimination order for a junction tree of `cliques`
        (`junction_tree.greedy_order`), or None when their graph is a tree (mbi then
        eliminates in depth-first post-order, which it computes itself)."""
        adj, present = self.graph(cliques)
        if self._is_tree(adj):
            return None
        order, _ = self._eliminate(adj, present)
        names = self.domain.attributes
        return [names[j] for j in order]

    @staticmethod
    def _connected(adj: list[int]) -> bool:
        seen, frontier = 1, 1
        while frontier:
            nxt = 0
            for j in range(len(adj)):
                if frontier >> j & 1:
                    nxt |= adj[j]
            frontier = nxt & ~seen
            seen |= nxt
        return seen == (1 << len(adj)) - 1

    def size_mb(self, cliques: Sequence[Clique]) -> float:
        """Size in MB of the junction tree of `cliques` (8 bytes a cell), as `model_size_mb`."""
        return self.cells(cliques) * 8 / 2**20


class ModelSizeCache:
    """`model_size_mb` of (measured cliques + one more), cached per distinct question.

    An adaptive mechanism asks about every candidate in every round, while the set of
    measured cliques rarely changes; sizes come from `JunctionTreeSizer`.
    """

    def __init__(self, dom: mbi.Domain) -> None:
        self.domain = dom
        self.sizer = JunctionTreeSizer(dom)
        self._cache: dict[tuple[frozenset[Clique], Clique], float] = {}
        self._last: tuple[tuple[Clique, ...], frozenset[Clique], tuple[list[int], int]] | None
        self._last = None

    def size_with(self, cliques: Sequence[Clique], extra: Clique) -> float:
        """Size in MB of the junction tree of `cliques` plus `extra`."""
        cliques = tuple(cliques)
        if self._last is None or self._last[0] != cliques:
            maximal = frozenset(mbi.clique_utils.maximal_subset(list(cliques)))
            self._last = (cliques, maximal, self.sizer.graph(list(maximal)))
        _, maximal, graph = self._last
        key = (maximal, tuple(extra))
        if key not in self._cache:
            self._cache[key] = self.sizer.cells_with(graph, tuple(extra)) * 8 / 2**20
        return self._cache[key]
