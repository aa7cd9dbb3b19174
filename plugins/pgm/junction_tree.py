"""Junction trees in numpy: message passing (calibration) and any marginal of a fitted model."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import mbi
import networkx as nx
import numpy as np
from mbi import junction_tree as mbi_junction_tree

from . import kernels
from .domain import Clique, JunctionTreeSizer


def _expand_np(values: np.ndarray, attrs: Sequence[str], target: Sequence[str]) -> np.ndarray:
    """`values` over `attrs` as an array broadcastable over `target` (attrs a subset of target)."""
    order = sorted(range(len(attrs)), key=lambda i: list(target).index(attrs[i]))
    arr = np.transpose(np.asarray(values), order) if len(attrs) > 1 else np.asarray(values)
    kept = [attrs[i] for i in order]
    shape = [1] * len(target)
    sizes = dict(zip(kept, arr.shape, strict=True))
    for a in kept:
        shape[list(target).index(a)] = sizes[a]
    return arr.reshape(shape)


def _logsumexp_keep(values: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """log(sum(exp(values))) over `axes`, keeping them as size-1 axes."""
    if not axes:
        return values
    top = np.max(values, axis=axes, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.log(np.sum(np.exp(values - top), axis=axes, keepdims=True)) + top


def _broadcast_shape(attrs: Sequence[str], target: Sequence[str], dom: mbi.Domain) -> tuple:
    """Shape of a table over `attrs` (a canonical subset of canonical `target`) broadcast to it."""
    return tuple(dom[a] if a in attrs else 1 for a in target)


@functools.lru_cache(maxsize=64)
def _sizer_of(attributes: tuple[str, ...], shape: tuple[int, ...]) -> JunctionTreeSizer:
    return JunctionTreeSizer(mbi.Domain(attributes, shape))


def _sizer(dom: mbi.Domain) -> JunctionTreeSizer:
    """A `JunctionTreeSizer` of `dom` (one per domain)."""
    return _sizer_of(tuple(dom.attributes), tuple(int(s) for s in dom.shape))


class JunctionTree:
    """A junction tree over a set of cliques, with what numpy message passing needs, precomputed.

    Node tables live in one flat vector (`offsets`), and the log-potentials of the cliques in
    another; `node_potentials` sums clique log-potentials into node tables.

    Args:
        dom: the domain.
        cliques: the model's cliques (each is placed in the smallest node that contains it).
    """

    def __init__(self, dom: mbi.Domain, cliques: Sequence[Clique]) -> None:
        self.domain = dom
        self.cliques = tuple(tuple(dom.canonical(c)) for c in cliques)
        # mbi's construction, given the elimination order it would pick (computed on bit
        # masks: mbi's own search builds a Domain per column per step, most of the cost).
        jtree, elimination = mbi_junction_tree.make_junction_tree(
            dom, list(self.cliques), _sizer(dom).elimination_order(self.cliques)
        )
        self.graph: nx.Graph = nx.relabel_nodes(
            jtree, {n: tuple(dom.canonical(n)) for n in jtree.nodes}
        )
        self.elimination: list[str] = list(elimination)
        self.nodes: list[Clique] = list(self.graph.nodes)
        self.shapes = {n: tuple(dom[a] for a in n) for n in self.nodes}
        size = self.node_size = {n: math.prod(shape) for n, shape in self.shapes.items()}
        self.host = {
            c: min((n for n in self.nodes if set(c) <= set(n)), key=size.__getitem__)
            for c in self.cliques
        }
        self.offsets = _offsets([size[n] for n in self.nodes], self.nodes)
        self.clique_offsets = _offsets(
            [math.prod(dom[a] for a in c) for c in self.cliques], self.cliques
        )
        # Collect (leaves to root) then distribute, per component rooted at its largest node.
        self.component: dict[Clique, int] = {}
        self.roots: list[Clique] = []
        self.children: dict[Clique, list[Clique]] = {n: [] for n in self.nodes}
        for k, comp in enumerate(nx.connected_components(self.graph)):
            root = max(sorted(comp), key=size.__getitem__)
            self.roots.append(root)
            for n in comp:
                self.component[n] = k
            for parent, child in nx.bfs_edges(self.graph, root):
                self.children[parent].append(child)
        self._link: dict[tuple[Clique, Clique], tuple[Any, ...]] = {}
        for parent in self.nodes:
            for child in self.children[parent]:
                sep = tuple(a for a in child if a in parent)
                self._link[(parent, child)] = (
                    tuple(k for k, a in enumerate(child) if a not in sep),  # child axes out
                    tuple(k for k, a in enumerate(parent) if a not in sep),  # parent axes out
                    _broadcast_shape(sep, child, dom),
                    _broadcast_shape(sep, parent, dom),
                )
        # Post-order over all components: each child before its parent.
        self.postorder = [
            n for root in self.roots for n in nx.dfs_postorder_nodes(self.graph, root)
        ]
        self.preorder = self.postorder[::-1]
        parent_of = {c: p for p in self.nodes for c in self.children[p]}
        self._upward = [
            (n, parent_of[n], self._link[(parent_of[n], n)])
            for n in self.postorder if n in parent_of
        ]
        self._starts = np.array([self.offsets[n][0] for n in self.nodes], dtype=np.intp)
        self._sizes = np.array([size[n] for n in self.nodes], dtype=np.intp)
        # Every scaled table is at most 1 a cell, so a message is at most the product of the
        # cells below it: below e^600 in all, messages need no rescaling to stay finite.
        self._rescale = float(np.log(self._sizes).sum()) >= 600.0

    def calibrate(self, theta: np.ndarray, total: float) -> np.ndarray:
        """Node marginals (counts summing to `total`, flat as `offsets`) for log-potentials
        `theta` (flat as `clique_offsets`).

        Two passes in log space: collect messages from the leaves, then distribute from each
        root, each message of the distribution being the sender's calibrated marginal on the
        separator divided by the message it received, so every node table is exponentiated
        twice at most. Components of a forest are normalised on their own.
        """
        flat = self.node_potentials(theta)
        beliefs = {n: flat[slice(*self.offsets[n])].reshape(self.shapes[n]) for n in self.nodes}
        parent_of = {c: p for p in self.nodes for c in self.children[p]}
        up: dict[Clique, np.ndarray] = {}
        for n in self.postorder:
            if n in parent_of:
                p = parent_of[n]
                out_child, _out_parent, in_child, in_parent = self._link[(p, n)]
                msg = _logsumexp_keep(beliefs[n], out_child).reshape(in_child)
                up[n] = msg
                beliefs[p] += msg.reshape(in_parent)
        out = np.empty_like(flat)
        with np.errstate(divide="ignore"):
            for n in self.preorder:
                b = beliefs[n]
                top = np.max(b)
                top = top if np.isfinite(top) else 0.0
                p = np.exp(b - top)
                view = out[slice(*self.offsets[n])].reshape(self.shapes[n])
                np.multiply(p, total / p.sum(), out=view)
                for child in self.children[n]:
                    _out_child, out_parent, in_child, in_parent = self._link[(n, child)]
                    down = np.log(p.sum(axis=out_parent, keepdims=True)).reshape(in_child)
                    beliefs[child] += down + top - up[child]
        return out

    def node_potentials(self, theta: np.ndarray) -> np.ndarray:
        """Node log-potentials (flat as `offsets`): each node's table is the sum of the
        log-potentials `theta` (flat as `clique_offsets`) of the cliques it hosts."""
        phi = np.zeros(int(self._sizes.sum()))
        kernels.lift(theta, np.empty_like(theta), phi, *self._hosting)
        return phi

    @functools.cached_property
    def _hosting(self) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """`kernels.lift`'s maps from the cliques' tables into their host nodes."""
        plans = kernels.Plans()
        for c in self.cliques:
            n = self.host[c]
            plans.add(self.shapes[n], [k for k, a in enumerate(n) if a in c])
        terms = kernels.terms(
            [self.offsets[self.host[c]][0] for c in self.cliques],
            [self.clique_offsets[c][0] for c in self.cliques],
            [self.clique_offsets[c][1] for c in self.cliques],
        )
        return terms, plans.arrays()

    def tables(self, flat: np.ndarray) -> dict[Clique, np.ndarray]:
        """The node tables of a flat vector (views)."""
        return {n: flat[slice(*self.offsets[n])].reshape(self.shapes[n]) for n in self.nodes}

    @functools.cached_property
    def compiled(self) -> CompiledTree:
        """The tree as the compiled kernels take it (built on first use)."""
        return CompiledTree(self)


class CompiledTree:
    """A junction tree's message passing as flat index maps for `kernels.calibrate`.

    The collect edges are `JunctionTree._upward` (each child before its parent), each with a
    plan (`kernels.Plans`) for the child's and for the parent's table onto their separator.
    Scratch buffers are allocated once and reused by every call, so one tree serves one fit
    at a time (the kernels release the GIL; each `TreeMirrorDescent` has its own trees).
    """

    def __init__(self, tree: JunctionTree) -> None:
        dom = tree.domain
        index = {n: i for i, n in enumerate(tree.nodes)}
        plans = kernels.Plans()
        child, parent, child_plan, parent_plan, sep_size = [], [], [], [], []
        for n, p, _link in tree._upward:
            child.append(index[n])
            parent.append(index[p])
            child_plan.append(plans.add(tree.shapes[n], [k for k, a in enumerate(n) if a in p]))
            parent_plan.append(plans.add(tree.shapes[p], [k for k, a in enumerate(p) if a in n]))
            sep_size.append(math.prod(dom[a] for a in n if a in p))
        self.starts = kernels.as_index(tree._starts)
        self.sizes = kernels.as_index(tree._sizes)
        self.index = (self.starts, self.sizes) + tuple(
            kernels.as_index(a)
            for a in (child, parent, child_plan, parent_plan, _starts_of(sep_size), sep_size,
                      [index[r] for r in tree.roots])
        )
        self.rescale = bool(tree._rescale)
        self.plans = plans.arrays()
        self._scratch = np.empty(int(self.sizes.sum()))
        self._sent = np.empty(max(1, sum(sep_size)))
        self._buf = np.empty(max(1, max(sep_size, default=1)))

    def calibrate(self, probs: np.ndarray, out: np.ndarray, total: float) -> np.ndarray:
        """Node marginals into `out` (counts summing to `total`) of node tables `probs` (at most
        1 a cell: exp of the log-potentials less each node's maximum)."""
        kernels.calibrate(
            probs, self._scratch, out, self._sent, self._buf, self.index, self.plans,
            float(total), self.rescale,
        )
        return out


def _starts_of(sizes: Sequence[int]) -> list[int]:
    """Where each of consecutive blocks of `sizes` starts."""
    return [0, *itertools.accumulate(sizes)][: len(sizes)]


def _reduce_table(table: np.ndarray, kept: tuple[int, ...]) -> np.ndarray:
    """`table` summed onto its axes `kept` (ascending), by the compiled kernel."""
    plan, terms, shape = _single_plan(table.shape, kept)
    out = np.empty(shape)
    kernels.project(np.ascontiguousarray(table).ravel(), out.ravel(), terms, plan)
    return out


@functools.lru_cache(maxsize=4096)
def _single_plan(
    shape: tuple[int, ...], kept: tuple[int, ...]
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], tuple[int, ...]]:
    """The plan of one table onto `kept`, its `kernels.project` terms, the marginal's shape."""
    plans = kernels.Plans()
    plans.add(shape, kept)
    marginal = tuple(shape[k] for k in kept)
    return plans.arrays(), kernels.terms([0], [0], [math.prod(marginal)]), marginal


def _offsets(sizes: Sequence[int], keys: Sequence[Clique]) -> dict[Clique, tuple[int, int]]:
    ends = np.cumsum(sizes)
    return {k: (int(e - s), int(e)) for k, s, e in zip(keys, sizes, ends, strict=True)}


_LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [
    chr(c) for c in range(ord("A"), ord("Z") + 1)
]


@functools.lru_cache(maxsize=4096)
def _einsum_path(spec: str, shapes: tuple[tuple[int, ...], ...]) -> list[Any]:
    """numpy's greedy contraction order for `spec` on operands of `shapes` (cached: the same
    contractions recur round after round)."""
    return np.einsum_path(spec, *[np.empty(shape) for shape in shapes], optimize="greedy")[0]


class TreeMarginals:
    """Any marginal of a model, from its calibrated junction tree, in numpy.

    mbi answers a marginal outside the model's cliques by variable elimination compiled once
    per (model structure, clique); an adaptive mechanism asks for every candidate marginal
    of every new model, so compilation would dominate. Here a marginal is the projection of a
    node's table when one node covers the clique, otherwise a contraction of the smallest
    subtree that covers it (node tables over separator tables); nodes in different components
    are independent.

    Args:
        tree: the junction tree.
        tables: the calibrated node marginals (counts).
        total: their common total.
    """

    def __init__(
        self, tree: JunctionTree, tables: Mapping[Clique, np.ndarray], total: float
    ) -> None:
        self.tree = tree
        self.domain = tree.domain
        self.total = float(total)
        self.nodes = tree.nodes
        self.elimination = tree.elimination
        self.tables = dict(tables)
        # Column sets as bit masks, for the host and component look-ups of every question.
        self._bit = {a: 1 << j for j, a in enumerate(self.domain.attributes)}
        self._node_masks = [(n, self._mask(n)) for n in self.nodes]
        self._component_of: dict[str, int] = {}
        for n in self.nodes:  # a column's component: that of the first node holding it
            for a in n:
                self._component_of.setdefault(a, tree.component[n])
        self._cache: dict[Clique, np.ndarray] = {}
        self._scaled: dict[Clique, np.ndarray] = {}
        self._inverse: dict[tuple[Clique, Clique], np.ndarray] = {}
        self._given: dict[tuple[Clique, Clique], np.ndarray] = {}

    @classmethod
    def from_model(cls, model: mbi.MarkovRandomField) -> TreeMarginals:
        """Calibrate the junction tree of an mbi model (its potentials) in numpy."""
        dom = model.domain
        cliques = [tuple(c) for c in model.potentials.cliques]
        tree = JunctionTree(dom, cliques)
        theta = np.concatenate(
            [
                _expand_np(np.asarray(model.potentials[c].values), c, dom.canonical(c)).ravel()
                for c in cliques
            ]
        )
        total = float(model.total)
        return cls(tree, tree.tables(tree.calibrate(theta, total)), total)

    def _mask(self, clique: Sequence[str]) -> int:
        out = 0
        for a in clique:
            out |= self._bit[a]
        return out

    def _project(self, node: Clique, clique: Clique) -> np.ndarray:
        table = self.tables[node]
        kept = [a for a in node if a in clique]
        out = _reduce_table(table, tuple(k for k, a in enumerate(node) if a in clique))
        return np.transpose(out, [kept.index(a) for a in clique]) if len(clique) > 1 else out

    def _subtree(self, clique: Clique, component: int) -> tuple[list[Clique], list[tuple]]:
        """A small subtree of one component whose nodes together cover `clique`: its nodes
        (in the tree's order) and edges. Leaves are pruned, first in the tree's order, while
        the rest still covers their attributes of `clique`."""
        masks = {n: mask for n, mask in self._node_masks if self.tree.component[n] == component}
        nodes = list(masks)
        adjacent = {n: set(self.tree.graph[n]) for n in nodes}
        wanted = self._mask(clique)
        pruned = True
        while pruned and len(nodes) > 1:
            pruned = False
            for leaf in [n for n in nodes if len(adjacent[n]) <= 1]:
                rest = 0
                for n in nodes:
                    if n != leaf:
                        rest |= masks[n]
                if masks[leaf] & wanted & ~rest == 0:  # the rest still covers its columns
                    nodes.remove(leaf)
                    for other in adjacent.pop(leaf):
                        adjacent[other].discard(leaf)
                    pruned = True
                    break
        kept, seen, edges = set(nodes), set(), []
        for n in nodes:
            seen.add(n)
            edges += [(n, m) for m in self.tree.graph[n] if m in kept and m not in seen]
        return nodes, edges

    def _component_marginal(self, clique: Clique) -> np.ndarray:
        want = self._mask(clique)
        hosts = [n for n, mask in self._node_masks if want & mask == want]
        if hosts:
            return self._project(min(hosts, key=self.tree.node_size.__getitem__), clique)
        nodes, edges = self._subtree(clique, self._component_of[clique[0]])
        involved = sorted(set().union(*[set(n) for n in nodes]), key=self.domain.attributes.index)
        if len(involved) > len(_LETTERS):
            raise ValueError(
                f"marginal {clique} spans {len(involved)} attributes of the model; "
                f"at most {len(_LETTERS)} are supported"
            )
        letters = dict(zip(involved, _LETTERS, strict=False))
        # The subtree's distribution, rooted at its first node: the root's distribution times
        # every other node's distribution given its separator with its parent (each of those
        # tables computed once a model).
        neighbours: dict[Clique, list[Clique]] = {n: [] for n in nodes}
        for a, b in edges:
            neighbours[a].append(b)
            neighbours[b].append(a)
        arrays = [self._distribution(nodes[0])]
        specs = ["".join(letters[a] for a in nodes[0])]
        seen, frontier = {nodes[0]}, [nodes[0]]
        while frontier:
            parent = frontier.pop(0)
            for n in neighbours[parent]:
                if n in seen:
                    continue
                seen.add(n)
                frontier.append(n)
                arrays.append(self._conditional(n, tuple(x for x in n if x in parent)))
                specs.append("".join(letters[a] for a in n))
        spec = ",".join(specs) + "->" + "".join(letters[a] for a in clique)
        out = np.einsum(spec, *arrays, optimize=_einsum_path(spec, tuple(x.shape for x in arrays)))
        return np.clip(out, 0.0, None) * self.total

    def _distribution(self, node: Clique) -> np.ndarray:
        """`node`'s table over the total (cached)."""
        out = self._scaled.get(node)
        if out is None:
            out = self._scaled[node] = self.tables[node] / self.total
        return out

    def _conditional(self, node: Clique, sep: Clique) -> np.ndarray:
        """`node`'s distribution given its columns `sep` (in its order): its distribution over
        the distribution of `sep` (0 where that is 0), cached."""
        key = (node, sep)
        out = self._given.get(key)
        if out is None:
            inverse = self._inverse_separator(node, sep)
            shape = tuple(self.domain[a] if a in sep else 1 for a in node)
            out = self._given[key] = self._distribution(node) * inverse.reshape(shape)
        return out

    def _inverse_separator(self, node: Clique, sep: Clique) -> np.ndarray:
        """1 / the model's distribution on separator `sep` of `node` (0 where it is 0), cached."""
        key = (node, sep)
        out = self._inverse.get(key)
        if out is None:
            mass = self._project(node, sep) / self.total
            out = self._inverse[key] = np.divide(
                1.0, mass, out=np.zeros_like(mass), where=mass > 0
            )
        return out

    def __call__(self, clique: Sequence[str]) -> np.ndarray:
        """The model's counts on `clique` as an array shaped by `clique`'s sizes, in its order."""
        clique = tuple(clique)
        if clique not in self._cache:
            if not clique:
                self._cache[clique] = np.array(self.total)
                return self._cache[clique]
            missing = [a for a in clique if a not in self._component_of]
            if missing:
                raise ValueError(f"column {missing[0]!r} is not in the model")
            groups: dict[int, list[str]] = {}
            for a in clique:
                groups.setdefault(self._component_of[a], []).append(a)
            if len(groups) == 1:
                out = self._component_marginal(clique)
            else:
                # Separate components are independent: outer product of their marginals.
                out = np.array(1.0)
                order: list[str] = []
                for attrs in groups.values():
                    part = self._component_marginal(tuple(attrs)) / self.total
                    out = np.multiply.outer(out, part)
                    order += attrs
                out = np.transpose(out, [order.index(a) for a in clique]) * self.total
            out.setflags(write=False)
            self._cache[clique] = out
        return self._cache[clique]

    def vector(self, clique: Sequence[str]) -> np.ndarray:
        """`self(clique)` flattened in C order (the layout of a measurement)."""
        return self(clique).ravel()
