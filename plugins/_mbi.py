"""Shared machinery for mbi-based synthesizers: numpy mirror descent, seeded sampling."""

from __future__ import annotations

import os

os.environ.setdefault("JAX_ENABLE_X64", "1")

from collections.abc import Mapping, Sequence  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
# mbi builds many small programs; a persistent compilation cache only slows it down.
jax.config.update("jax_enable_compilation_cache", False)

import mbi  # noqa: E402
import numpy as np  # noqa: E402
from mbi import estimation, junction_tree  # noqa: E402

Clique = tuple[str, ...]


def domain(sizes: Mapping[str, int]) -> mbi.Domain:
    """An mbi Domain from column sizes (order kept)."""
    return mbi.Domain(tuple(sizes), tuple(int(s) for s in sizes.values()))


def model_size_mb(dom: mbi.Domain, cliques: Sequence[Clique]) -> float:
    """Size in MB of the junction tree a model on `cliques` would need."""
    return float(junction_tree.hypothetical_model_size(dom, list(cliques)))


def _stratified_uniforms(groups: np.ndarray, n_groups: int, rng: np.random.Generator) -> np.ndarray:
    """One uniform per row, stratified within each group: (rank + U) / group size.

    Rows of a group get one draw in each of the group's equal-width strata, in random order;
    this is randomized rounding of the group's conditional distribution (lower variance than
    i.i.d. draws, same expectation).
    """
    n = groups.size
    perm = rng.permutation(n)
    order = perm[np.argsort(groups[perm], kind="stable")]
    counts = np.bincount(groups, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n) - starts[groups[order]]
    return (ranks + rng.random(n)) / counts[groups]


# -- adaptive mechanisms (AIM): combined measurements, mbi's mirror descent in numpy, numpy
# -- marginals and sampling of fitted models, cached model sizes -------------------------------
#
# Where the time goes in an adaptive mechanism on mbi (profiled on this project's datasets, see
# docs/aim.md): every `estimate` call whose loss has a new structure (a new list of
# measurements) re-traces and re-compiles the mirror-descent program, and every out-of-model
# marginal asked of a model (`MarkovRandomField.project` -> `variable_elimination`) compiles
# once per (model structure, clique); on a 2-core CPU one compilation for 14 columns takes
# 10-30 s while 1000 iterations of the compiled program take 0.1 s. The pieces below combine
# measurements per clique (one loss term per clique), run mbi's mirror-descent algorithm in
# numpy (nothing to compile) on the junction tree or, for small domains, on the joint table,
# and answer marginal queries and sampling from a numpy-calibrated junction tree.

import math  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import networkx as nx  # noqa: E402
from mbi import marginal_loss  # noqa: E402

#: Weights of a measurement's squared residual in the estimation loss (see MeasurementLog).
LOSS_WEIGHTINGS = ("inverse_variance", "inverse_std")


class MeasurementLog:
    """The noisy marginals of a run, combined per clique by the estimation loss's weights.

    Measurements y_1..y_k of one clique with noise stds s_1..s_k carry the same information as
    the single measurement sum(y_i / s_i^2) / sum(1 / s_i^2) with std sum(1 / s_i^2)^(-1/2): the
    L2 estimation loss differs by a constant only. One loss term per clique keeps the
    structure of the estimation program (and so its JIT compilation) a function of the set of
    measured cliques, however often each is measured. Cliques keep their first-measured order.

    Args:
        weighting: the weight of a measurement's squared residual in the estimation loss:
            "inverse_variance" (1 / sigma^2, the least-squares weight; mbi 2.0) or
            "inverse_std" (1 / sigma, mbi 1.0's estimation loss, for exact comparisons).
    """

    def __init__(self, weighting: str = "inverse_variance") -> None:
        if weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"weighting must be one of {LOSS_WEIGHTINGS}, got {weighting!r}")
        self.weighting = weighting
        self._weighted: dict[Clique, np.ndarray] = {}  # sum of w_i y_i
        self._precision: dict[Clique, np.ndarray] = {}  # sum of w_i: the loss weight
        self._variance: dict[Clique, np.ndarray] = {}  # sum of w_i^2 sigma_i^2

    def add(self, clique: Sequence[str], values: np.ndarray, sigma: float | np.ndarray) -> None:
        """Record a measurement of `clique`: flattened counts plus N(0, sigma^2) noise.

        `sigma` is one noise std for every cell, or one per cell (e.g. a cell that is the sum
        of k merged cells, each with noise std s, has std s * sqrt(k)).
        """
        clique = tuple(clique)
        values = np.asarray(values, dtype=np.float64).ravel()
        sd = np.broadcast_to(np.asarray(sigma, dtype=np.float64), values.shape)
        w = 1.0 / sd**2 if self.weighting == "inverse_variance" else 1.0 / sd
        if clique in self._weighted:
            if self._weighted[clique].shape != values.shape:
                raise ValueError(f"measurement of {clique} changed size")
            self._weighted[clique] = self._weighted[clique] + w * values
            self._precision[clique] = self._precision[clique] + w
            self._variance[clique] = self._variance[clique] + (w * sd) ** 2
        else:
            self._weighted[clique] = w * values
            self._precision[clique] = w.copy()
            self._variance[clique] = (w * sd) ** 2

    def __contains__(self, clique: object) -> bool:
        return clique in self._precision

    def __len__(self) -> int:
        return len(self._precision)

    @property
    def cliques(self) -> tuple[Clique, ...]:
        """The measured cliques, in the order they were first measured."""
        return tuple(self._precision)

    def value(self, clique: Clique) -> tuple[np.ndarray, np.ndarray]:
        """The combined measurement of `clique` (the loss-weighted mean of its measurements)
        and its per-cell noise std."""
        weight = self._precision[clique]
        return self._weighted[clique] / weight, np.sqrt(self._variance[clique]) / weight

    def loss_weights(self) -> np.ndarray:
        """The weight of each cell's squared residual in the estimation loss, stacked in the
        order of `cliques`."""
        return np.concatenate([self._precision[c] for c in self._precision])

    def measurements(self) -> list[mbi.LinearMeasurement]:
        """The combined measurements as mbi `LinearMeasurement`s (one per clique).

        A clique with unequal per-cell stds becomes a weighted query with the smallest std:
        ((w * mu - w * y) / s_min)^2 with w = s_min / s is the same loss term.
        """
        out = []
        for clique in self._precision:
            y, sigma = self.value(clique)
            s_min = float(sigma.min())
            if np.allclose(sigma, s_min, rtol=1e-12, atol=0.0):
                out.append(mbi.LinearMeasurement(y, clique, stddev=s_min))
            else:
                w = s_min / sigma
                out.append(
                    mbi.LinearMeasurement(w * y, clique, stddev=s_min, query=mbi.WeightedQuery(w))
                )
        return out

    def total(self) -> float:
        """Minimum-variance unbiased estimate of the number of records (at least 1)."""
        return float(estimation.minimum_variance_unbiased_total(self.measurements()))


def estimate_graph(
    dom: mbi.Domain,
    log: MeasurementLog,
    *,
    iters: int,
    warm_start: mbi.MarkovRandomField | None = None,
    tol: float | None = None,
) -> mbi.MarkovRandomField:
    """Mirror descent (mbi) on the graphical model of the measured cliques.

    The program is compiled once per set of measured cliques (see `MeasurementLog`) and reused
    for every later call with the same set.
    """
    return estimation.MirrorDescent().estimate(
        dom,
        log.measurements(),
        known_total=log.total(),
        iters=iters,
        warm_start=warm_start,
        tol=tol,
    )


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


class JunctionTree:
    """A junction tree over a set of cliques, with what numpy message passing needs, precomputed.

    Node tables live in one flat vector (`offsets`), and the log-potentials of the cliques in
    another; `gather` is the sparse map that sums clique log-potentials into node tables.

    Args:
        dom: the domain.
        cliques: the model's cliques (each is placed in the smallest node that contains it).
    """

    def __init__(self, dom: mbi.Domain, cliques: Sequence[Clique]) -> None:
        import scipy.sparse as sparse

        self.domain = dom
        self.cliques = tuple(tuple(dom.canonical(c)) for c in cliques)
        jtree, elimination = junction_tree.make_junction_tree(dom, list(self.cliques))
        self.graph: nx.Graph = nx.relabel_nodes(
            jtree, {n: tuple(dom.canonical(n)) for n in jtree.nodes}
        )
        self.elimination: list[str] = list(elimination)
        self.nodes: list[Clique] = list(self.graph.nodes)
        self.shapes = {n: tuple(dom[a] for a in n) for n in self.nodes}
        self.host = {
            c: min((n for n in self.nodes if set(c) <= set(n)), key=dom.size) for c in self.cliques
        }
        self.offsets = _offsets([dom.size(n) for n in self.nodes], self.nodes)
        self.clique_offsets = _offsets([dom.size(c) for c in self.cliques], self.cliques)
        rows, cols = [], []
        for c in self.cliques:
            n = self.host[c]
            rows.append(np.arange(*self.offsets[n]))
            cols.append(self.clique_offsets[c][0] + _local_index(dom, n, c))
        size_n, size_c = self.offsets[self.nodes[-1]][1], self.clique_offsets[self.cliques[-1]][1]
        self.gather = sparse.csr_matrix(
            (np.ones(sum(r.size for r in rows)), (np.concatenate(rows), np.concatenate(cols))),
            shape=(size_n, size_c),
        )
        # Collect (leaves to root) then distribute, per component rooted at its largest node.
        self.component: dict[Clique, int] = {}
        self.roots: list[Clique] = []
        self.children: dict[Clique, list[Clique]] = {n: [] for n in self.nodes}
        for k, comp in enumerate(nx.connected_components(self.graph)):
            root = max(sorted(comp), key=dom.size)
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

    def calibrate(self, theta: np.ndarray, total: float) -> np.ndarray:
        """Node marginals (counts summing to `total`, flat as `offsets`) for log-potentials
        `theta` (flat as `clique_offsets`).

        Two passes in log space: collect messages from the leaves, then distribute from each
        root, each message of the distribution being the sender's calibrated marginal on the
        separator divided by the message it received, so every node table is exponentiated
        twice at most. Components of a forest are normalised on their own.
        """
        flat = self.gather @ theta
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

    def tables(self, flat: np.ndarray) -> dict[Clique, np.ndarray]:
        """The node tables of a flat vector (views)."""
        return {n: flat[slice(*self.offsets[n])].reshape(self.shapes[n]) for n in self.nodes}


def _offsets(sizes: Sequence[int], keys: Sequence[Clique]) -> dict[Clique, tuple[int, int]]:
    ends = np.cumsum(sizes)
    return {k: (int(e - s), int(e)) for k, s, e in zip(keys, sizes, ends, strict=True)}


def _local_index(dom: mbi.Domain, big: Clique, small: Clique) -> np.ndarray:
    """For every cell of `big` (C order), the index of its projection in `small` (C order)."""
    grid = np.indices(tuple(dom[a] for a in big)).reshape(len(big), -1)
    axes = [big.index(a) for a in small]
    if not axes:
        return np.zeros(grid.shape[1], dtype=np.int64)
    return np.ravel_multi_index(tuple(grid[k] for k in axes), tuple(dom[a] for a in small))


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
        self._cache: dict[Clique, np.ndarray] = {}

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

    def _project(self, node: Clique, clique: Clique) -> np.ndarray:
        table = self.tables[node]
        drop = tuple(k for k, a in enumerate(node) if a not in clique)
        kept = [a for a in node if a in clique]
        out = table.sum(axis=drop) if drop else table
        return np.transpose(out, [kept.index(a) for a in clique]) if len(clique) > 1 else out

    def _subtree(self, clique: Clique, component: int) -> nx.Graph:
        """A small subtree of one component whose nodes together cover `clique`."""
        tree = self.tree.graph.subgraph(
            [n for n in self.nodes if self.tree.component[n] == component]
        ).copy()
        wanted = set(clique)
        pruned = True
        while pruned and tree.number_of_nodes() > 1:
            pruned = False
            for leaf in [n for n in tree.nodes if tree.degree(n) <= 1]:
                rest = set().union(*[set(n) for n in tree.nodes if n != leaf])
                if (set(leaf) & wanted) <= rest:
                    tree.remove_node(leaf)
                    pruned = True
                    break
        return tree

    def _component_marginal(self, clique: Clique) -> np.ndarray:
        hosts = [n for n in self.nodes if set(clique) <= set(n)]
        if hosts:
            return self._project(min(hosts, key=self.domain.size), clique)
        first = next(n for n in self.nodes if clique[0] in n)
        tree = self._subtree(clique, self.tree.component[first])
        involved = sorted(
            set().union(*[set(n) for n in tree.nodes]), key=self.domain.attributes.index
        )
        if len(involved) > len(_LETTERS):
            raise ValueError(
                f"marginal {clique} spans {len(involved)} attributes of the model; "
                f"at most {len(_LETTERS)} are supported"
            )
        letters = dict(zip(involved, _LETTERS, strict=False))
        arrays: list[np.ndarray] = []
        specs: list[str] = []
        for n in tree.nodes:
            arrays.append(self.tables[n] / self.total)
            specs.append("".join(letters[a] for a in n))
        for a, b in tree.edges:
            sep = tuple(x for x in a if x in b)
            if not sep:
                continue
            mass = self._project(a, sep) / self.total
            arrays.append(np.divide(1.0, mass, out=np.zeros_like(mass), where=mass > 0))
            specs.append("".join(letters[x] for x in sep))
        spec = ",".join(specs) + "->" + "".join(letters[a] for a in clique)
        out = np.einsum(spec, *arrays, optimize="greedy")
        return np.clip(out, 0.0, None) * self.total

    def __call__(self, clique: Sequence[str]) -> np.ndarray:
        """The model's counts on `clique` as an array shaped by `clique`'s sizes, in its order."""
        clique = tuple(clique)
        if clique not in self._cache:
            if not clique:
                self._cache[clique] = np.array(self.total)
                return self._cache[clique]
            groups: dict[int, list[str]] = {}
            for a in clique:
                node = next(n for n in self.nodes if a in n)
                groups.setdefault(self.tree.component[node], []).append(a)
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


_LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [
    chr(c) for c in range(ord("A"), ord("Z") + 1)
]


def _armijo_blocks(
    step: Callable[[float], bool],
    loss: Callable[[], float],
    iters: int,
    tol: float | None,
    alpha: float,
    patience: int = 2,
) -> float:
    """mbi's mirror-descent schedule: blocks of CALLBACK_EVERY Armijo steps, optional `tol`.

    `step(alpha)` tries one step and says whether it was accepted; the step size grows by 1.01
    on acceptance and halves on rejection. With `tol`, stop once the loss has improved by at
    most `tol` (relative) over `patience` consecutive blocks. Returns the final step size.
    """
    prev, stalls = math.inf, 0
    for _ in range(math.ceil(iters / estimation.CALLBACK_EVERY)):
        for _ in range(estimation.CALLBACK_EVERY):
            alpha = alpha * 1.01 if step(alpha) else alpha * 0.5
        if tol is not None:
            current = loss()
            stalls = stalls + 1 if prev - current <= tol * max(abs(current), 1.0) else 0
            prev = current
            if stalls >= patience:
                break
    return alpha


def _mirror_descent(
    theta: np.ndarray,
    forward: Callable[[np.ndarray], np.ndarray],
    measure: Callable[[np.ndarray], np.ndarray],
    spread: Callable[[np.ndarray], np.ndarray],
    y: np.ndarray,
    precision: np.ndarray,
    *,
    iters: int,
    tol: float | None,
    alpha: float,
) -> tuple[np.ndarray, np.ndarray, float]:
    """mbi's mirror descent on log-potentials `theta` (McKenna et al. 2019, Algorithm 1).

    `forward` maps potentials to model marginals, `measure` those marginals to the stacked
    measured marginals, `spread` a gradient on the measured marginals back to the potentials.
    The loss is 0.5 * sum(precision * (m - y)^2); steps follow `_armijo_blocks`. One forward
    pass per iteration suffices, since a rejected step keeps the current marginals.

    Returns:
        The final potentials, model marginals and step size.
    """
    state: dict[str, Any] = {}

    def settle(th: np.ndarray, mu: np.ndarray, m: np.ndarray) -> None:
        g = precision * (m - y)
        state.update(theta=th, mu=mu, m=m, g=g, loss=0.5 * float(np.dot(g, m - y)), grad=spread(g))

    mu0 = forward(theta)
    settle(theta, mu0, measure(mu0))

    def step(a: float) -> bool:
        theta2 = state["theta"] - a * state["grad"]
        mu2 = forward(theta2)
        m2 = measure(mu2)
        diff2 = m2 - y
        loss2 = 0.5 * float(np.dot(precision * diff2, diff2))
        if state["loss"] - loss2 >= 0.5 * a * float(np.dot(state["g"], state["m"] - m2)):
            settle(theta2, mu2, m2)
            return True
        return False

    alpha = _armijo_blocks(step, lambda: state["loss"], iters, tol, alpha)
    return state["theta"], state["mu"], alpha


class _Terms:
    """The measured marginals of a log as one stacked vector, and sparse maps to and from it.

    `project` maps the flat node marginals of a junction tree to the stacked measured
    marginals (each read from the node hosting its model clique); `spread` maps a gradient with
    respect to the stacked marginals to one with respect to the model cliques' tables, routing
    each measurement to the smallest model clique containing it (mbi's routing).
    """

    def __init__(self, dom: mbi.Domain, log: MeasurementLog, tree: JunctionTree) -> None:
        import scipy.sparse as sparse

        measured = [tuple(dom.canonical(c)) for c in log.cliques]
        route = mbi.clique_utils.clique_mapping(list(tree.cliques), measured, domain=dom)
        values = [log.value(c) for c in log.cliques]
        self.y = np.concatenate([v for v, _ in values])
        self.precision = log.loss_weights()
        offsets = _offsets([v.size for v, _ in values], measured)
        p_rows, p_cols, s_rows, s_cols = [], [], [], []
        for c in measured:
            parent = route[c]
            node = tree.host[parent]
            p_rows.append(offsets[c][0] + _local_index(dom, node, c))
            p_cols.append(np.arange(*tree.offsets[node]))
            s_rows.append(np.arange(*tree.clique_offsets[parent]))
            s_cols.append(offsets[c][0] + _local_index(dom, parent, c))
        n_meas = self.y.size
        n_nodes = tree.offsets[tree.nodes[-1]][1]
        n_cliques = tree.clique_offsets[tree.cliques[-1]][1]
        self.project = sparse.csr_matrix(
            (
                np.ones(sum(r.size for r in p_rows)),
                (np.concatenate(p_rows), np.concatenate(p_cols)),
            ),
            shape=(n_meas, n_nodes),
        )
        self.spread = sparse.csr_matrix(
            (
                np.ones(sum(r.size for r in s_rows)),
                (np.concatenate(s_rows), np.concatenate(s_cols)),
            ),
            shape=(n_cliques, n_meas),
        )


@dataclass
class TreeFit:
    """A model fitted by `TreeMirrorDescent` or `DenseMirrorDescent`.

    Attributes:
        potentials: log-potentials on the model's cliques (tables shaped by each clique).
        marginals: the calibrated model.
        step_size: the line search's last step size.
    """

    potentials: dict[Clique, np.ndarray]
    marginals: TreeMarginals
    step_size: float


class TreeMirrorDescent:
    """mbi's mirror descent, in numpy on the junction tree of the measured cliques.

    The same algorithm as `mbi.estimation.MirrorDescent`: log-potentials on the maximal
    measured cliques, initial step 2 / (L N) with mbi's Lipschitz constant L of the L2 loss and
    N the estimated total, Armijo line search (accept when the loss falls by at least half the
    linearised decrease; step x1.01 on acceptance, x0.5 on rejection), blocks of mbi's
    CALLBACK_EVERY iterations with the same `tol` rule, warm starts by moving the previous
    potentials into the new cliques. Written in numpy so that nothing is compiled: with mbi,
    each new set of measured cliques compiles a new program (tens of seconds on a small CPU
    for 14 columns) while the iterations themselves take a fraction of that. One message pass
    per iteration suffices, since a rejected step keeps the current marginals.

    Args:
        dom: the domain.
    """

    def __init__(self, dom: mbi.Domain) -> None:
        self.domain = dom
        self._trees: dict[tuple[Clique, ...], JunctionTree] = {}

    def tree(self, cliques: Sequence[Clique]) -> JunctionTree:
        """The junction tree of `cliques` (cached)."""
        key = tuple(cliques)
        if key not in self._trees:
            self._trees[key] = JunctionTree(self.domain, key)
        return self._trees[key]

    def estimate(
        self,
        log: MeasurementLog,
        *,
        iters: int,
        warm_start: TreeFit | None = None,
        tol: float | None = None,
        step_size: float | None = None,
    ) -> TreeFit:
        """Fit the model of the measured cliques in `log`.

        Args:
            log: the measurements.
            iters: at most this many iterations (rounded up to a multiple of CALLBACK_EVERY).
            warm_start: start from this fit's potentials instead of the uniform model.
            tol: stop early (mbi's rule) when the loss stops improving by this relative amount.
            step_size: a larger initial step size than mbi's 2 / (L N) to start from (e.g. the
                last step size of the warm start's fit); the smaller one is ignored.
        """
        dom = self.domain
        cliques = tuple(
            tuple(dom.canonical(c)) for c in mbi.clique_utils.maximal_subset(list(log.cliques))
        )
        tree = self.tree(cliques)
        terms = _Terms(dom, log, tree)
        total = log.total()
        lipschitz = marginal_loss.calculate_l2_lipschitz_from_metadata(dom, log.measurements())

        theta = np.zeros(tree.clique_offsets[cliques[-1]][1])
        if warm_start is not None:
            for old, values in warm_start.potentials.items():
                target = min((c for c in cliques if set(old) <= set(c)), key=dom.size)
                view = theta[slice(*tree.clique_offsets[target])].reshape(
                    tuple(dom[a] for a in target)
                )
                view += values.reshape(_broadcast_shape(old, target, dom))

        alpha = max(2.0 / (lipschitz * total), step_size or 0.0)
        theta, mu, alpha = _mirror_descent(
            theta,
            lambda th: tree.calibrate(th, total),
            terms.project.__matmul__,
            terms.spread.__matmul__,
            terms.y,
            terms.precision,
            iters=iters,
            tol=tol,
            alpha=alpha,
        )
        potentials = {
            c: theta[slice(*tree.clique_offsets[c])].reshape(tuple(dom[a] for a in c))
            for c in cliques
        }
        return TreeFit(potentials, TreeMarginals(tree, tree.tables(mu), total), alpha)


class DenseMirrorDescent:
    """mbi's mirror descent on the full joint table of a small domain, in numpy.

    Mirror descent's update of the joint log-potential, sum_c A_c^T dL/dmu_c, is the update
    the graphical model of the measured cliques receives, so with the same initial step size
    (mbi's Lipschitz constant of that model) and the same Armijo rule the iterates are those of
    `mbi.estimation.MirrorDescent`; only the representation differs. With a few thousand cells
    one iteration is a handful of vector operations and a sparse product.

    Args:
        dom: the domain (its attributes in canonical order).
        cliques: every clique that may be measured, each in the domain's attribute order.
    """

    def __init__(self, dom: mbi.Domain, cliques: Sequence[Clique]) -> None:
        import scipy.sparse as sparse

        self.domain = dom
        self.full = tuple(dom.attributes)
        self.shape = tuple(dom.shape)
        cells = int(np.prod(self.shape, dtype=np.int64))
        grid = np.indices(self.shape).reshape(len(self.shape), cells)
        self._rows: dict[Clique, Any] = {}
        for cl in dict.fromkeys(tuple(c) for c in cliques):
            if tuple(dom.canonical(cl)) != cl:
                raise ValueError(f"clique {cl} is not in the domain's attribute order")
            axes = [self.full.index(a) for a in cl]
            local = np.ravel_multi_index(
                tuple(grid[k] for k in axes), tuple(self.shape[k] for k in axes)
            )
            self._rows[cl] = sparse.csr_matrix(
                (np.ones(cells), (local, np.arange(cells))), shape=(dom.size(cl), cells)
            )
        self._tree = JunctionTree(dom, [self.full])

    def estimate(
        self,
        log: MeasurementLog,
        *,
        iters: int,
        warm_start: TreeFit | None = None,
        tol: float | None = None,
        step_size: float | None = None,
    ) -> TreeFit:
        """Fit the joint table to the measurements in `log` (all among `cliques`).

        Arguments as for `TreeMirrorDescent.estimate`.
        """
        import scipy.sparse as sparse

        unknown = [c for c in log.cliques if c not in self._rows]
        if unknown:
            raise ValueError(f"measured clique {unknown[0]} was not declared to the estimator")
        matrix = sparse.vstack([self._rows[c] for c in log.cliques], format="csr")
        transpose = matrix.T.tocsr()
        values = [log.value(c) for c in log.cliques]
        y = np.concatenate([v for v, _ in values])
        precision = log.loss_weights()
        total = log.total()
        lipschitz = marginal_loss.calculate_l2_lipschitz_from_metadata(
            self.domain, log.measurements()
        )

        def joint(theta: np.ndarray) -> np.ndarray:
            p = np.exp(theta - theta.max())
            return p * (total / p.sum())

        theta0 = (
            np.zeros(int(np.prod(self.shape)))
            if warm_start is None
            else warm_start.potentials[self.full].ravel().copy()
        )
        alpha = max(2.0 / (lipschitz * total), step_size or 0.0)
        theta, p, alpha = _mirror_descent(
            theta0,
            joint,
            matrix.__matmul__,
            transpose.__matmul__,
            y,
            precision,
            iters=iters,
            tol=tol,
            alpha=alpha,
        )
        table = p.reshape(self.shape)
        return TreeFit(
            {self.full: theta.reshape(self.shape)},
            TreeMarginals(self._tree, {self.full: table}, total),
            alpha,
        )


def sample_tree(
    marginals: TreeMarginals, rows: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Draw `rows` records from a calibrated model with `rng` (never the global numpy state).

    The same scheme as `sample` (reverse elimination order, stratified inverse-CDF draws
    within each parent configuration), reading conditionals from `TreeMarginals`, so it needs
    no JAX compilation.
    """
    dom = marginals.domain
    nodes = [set(n) for n in marginals.nodes]
    out: dict[str, np.ndarray] = {}
    for col in marginals.elimination[::-1]:
        related = set().union(*[n for n in nodes if col in n])
        parents = tuple(c for c in dom if c in out and c in related)
        k = dom[col]
        joint = np.clip(np.asarray(marginals(parents + (col,)), dtype=np.float64), 0.0, None)
        joint = joint.reshape(-1, k)
        if parents:
            pshape = tuple(dom[p] for p in parents)
            groups = np.ravel_multi_index(tuple(out[p] for p in parents), pshape)
        else:
            groups = np.zeros(rows, dtype=np.int64)
        mass = joint.sum(axis=1, keepdims=True)
        fallback = joint.sum(axis=0, keepdims=True)
        fallback = fallback / fallback.sum() if fallback.sum() > 0 else np.full((1, k), 1.0 / k)
        cond = np.where(mass > 0, joint / np.where(mass > 0, mass, 1.0), fallback)
        cdf = np.cumsum(cond, axis=1)
        cdf[:, -1] = 1.0
        u = _stratified_uniforms(groups, joint.shape[0], rng)
        flat = (cdf + np.arange(joint.shape[0])[:, None]).ravel()
        idx = np.searchsorted(flat, groups + u, side="right") - groups * k
        out[col] = np.minimum(idx, k - 1).astype(np.int64)
    return {col: out[col] for col in dom}


class ModelSizeCache:
    """`model_size_mb` of (measured cliques + one more), cached per distinct question.

    The junction tree of a clique set costs milliseconds to build; an adaptive mechanism asks
    about every candidate in every round, while the set of measured cliques rarely changes.
    """

    def __init__(self, dom: mbi.Domain) -> None:
        self.domain = dom
        self._cache: dict[tuple[frozenset[Clique], Clique], float] = {}

    def size_with(self, cliques: Sequence[Clique], extra: Clique) -> float:
        """Size in MB of the junction tree of `cliques` plus `extra`."""
        key = (frozenset(mbi.clique_utils.maximal_subset(list(cliques))), tuple(extra))
        if key not in self._cache:
            self._cache[key] = model_size_mb(self.domain, list(key[0]) + [tuple(extra)])
        return self._cache[key]
