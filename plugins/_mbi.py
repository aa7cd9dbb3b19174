"""Shared machinery for synthesizers on the mbi engine: estimation, seeded sampling, compression."""

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
from mbi import estimation, junction_tree, marginal_oracles  # noqa: E402

from safes_framework.primitives import Measurement  # noqa: E402

Clique = tuple[str, ...]


def domain(sizes: Mapping[str, int]) -> mbi.Domain:
    """An mbi Domain from column sizes (order kept)."""
    return mbi.Domain(tuple(sizes), tuple(int(s) for s in sizes.values()))


def linear_measurement(m: Measurement, weights: np.ndarray | None = None) -> mbi.LinearMeasurement:
    """An mbi LinearMeasurement of a core `Measurement` (optionally a weighted query)."""
    if weights is None:
        return mbi.LinearMeasurement(np.asarray(m.values), m.clique, stddev=m.sigma)
    return mbi.LinearMeasurement(
        np.asarray(m.values), m.clique, stddev=m.sigma, query=mbi.WeightedQuery(weights)
    )


def estimate(
    dom: mbi.Domain,
    measurements: Sequence[mbi.LinearMeasurement],
    *,
    iters: int,
    warm_start: mbi.MarkovRandomField | None = None,
    callback=None,
) -> mbi.MarkovRandomField:
    """Fit a Markov random field to noisy marginal measurements by mirror descent."""
    return estimation.MirrorDescent().estimate(
        dom, list(measurements), iters=iters, warm_start=warm_start, callback_fn=callback
    )


def model_size_mb(dom: mbi.Domain, cliques: Sequence[Clique]) -> float:
    """Size in MB of the junction tree a model on `cliques` would need."""
    return float(junction_tree.hypothetical_model_size(dom, list(cliques)))


def marginal(model: mbi.MarkovRandomField, clique: Clique) -> np.ndarray:
    """The model's estimate of the counts on `clique`, flattened."""
    return np.asarray(model.project(tuple(clique)).datavector(), dtype=np.float64)


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


def sample(
    model: mbi.MarkovRandomField, rows: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Draw `rows` records from `model` with `rng` (never the global numpy state).

    Columns are generated along the reverse elimination order of the model's junction tree;
    each column is drawn from its conditional distribution given the already generated columns
    of its cliques, by stratified inverse-CDF sampling within each parent configuration. All
    steps are vectorised over rows and configurations.
    """
    dom = model.domain
    jtree, elimination = junction_tree.make_junction_tree(dom, [tuple(c) for c in model.cliques])
    cliques = [set(c) for c in jtree.nodes]
    potentials = model.potentials.expand(list(jtree.nodes))
    marginals = marginal_oracles.message_passing_stable(potentials, model.total)
    out: dict[str, np.ndarray] = {}
    for col in elimination[::-1]:
        related = set().union(*[c for c in cliques if col in c])
        parents = tuple(c for c in dom if c in out and c in related)
        k = dom[col]
        joint = np.asarray(marginals.project(parents + (col,)).datavector(flatten=False))
        joint = np.clip(joint.reshape(-1, k), 0.0, None)
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
        # Inverse CDF for every row at once: offset each configuration's CDF by its index.
        flat = (cdf + np.arange(joint.shape[0])[:, None]).ravel()
        idx = np.searchsorted(flat, groups + u, side="right") - groups * k
        out[col] = np.minimum(idx, k - 1).astype(np.int64)
    return {col: out[col] for col in dom}


def support_mapping(values: np.ndarray, threshold: float) -> np.ndarray | None:
    """Map codes with noisy count >= threshold to themselves, the rest to one extra code.

    Returns None when every code is kept (nothing to compress). Codes are renumbered densely:
    kept codes first (in order), then the merged code.
    """
    keep = values >= threshold
    if keep.all():
        return None
    mapping = np.empty(values.size, dtype=np.int64)
    mapping[keep] = np.arange(int(keep.sum()))
    mapping[~keep] = int(keep.sum())
    return mapping


def compress_measurement(m: Measurement, mapping: np.ndarray) -> mbi.LinearMeasurement:
    """Re-express a noisy 1-way measurement over the compressed domain of `mapping`.

    The merged cell's noisy value is the sum of the merged noisy counts, whose noise has std
    sigma * sqrt(k); scaling the value and its query by 1/sqrt(k) keeps the std at sigma.
    """
    is_merged = mapping == mapping.max()
    k_merged = int(is_merged.sum())
    kept, merged = m.values[~is_merged], m.values[is_merged].sum()
    scale = 1.0 / np.sqrt(k_merged)
    y = np.append(kept, merged * scale)
    weights = np.ones(y.size)
    weights[-1] = scale
    return linear_measurement(Measurement(m.clique, y, m.sigma), weights)


def decompress(codes: np.ndarray, mapping: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Original codes from compressed ones; a merged code becomes a uniform draw of its preimage."""
    merged_code = int(mapping.max())
    preimage_kept = np.flatnonzero(mapping < merged_code)
    merged = np.flatnonzero(mapping == merged_code)
    out = np.empty_like(codes)
    is_merged = codes == merged_code
    out[~is_merged] = preimage_kept[codes[~is_merged]]
    out[is_merged] = rng.choice(merged, size=int(is_merged.sum()))
    return out


# -- adaptive mechanisms (AIM): combined measurements, fixed-structure estimation, numpy
# -- marginals of fitted models, cached model sizes --------------------------------------------
#
# Where the time goes in an adaptive mechanism on mbi: every `estimate` call whose loss has a new
# structure (a new list of measurements) re-traces and re-compiles the mirror-descent program,
# and every out-of-model marginal asked of a model (`MarkovRandomField.project` ->
# `variable_elimination`) compiles once per model structure and clique. The pieces below keep
# the number of distinct programs small (one per set of measured cliques, or one per run on a
# small domain) and answer marginal queries in numpy, which needs no compilation at all.

from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import networkx as nx  # noqa: E402
from mbi import marginal_loss  # noqa: E402


class MeasurementLog:
    """The noisy marginals of a run, combined per clique by inverse-variance weighting.

    Measurements y_1..y_k of one clique with noise stds s_1..s_k carry the same information as
    the single measurement sum(y_i / s_i^2) / sum(1 / s_i^2) with std sum(1 / s_i^2)^(-1/2): the
    L2 estimation loss differs by a constant only. One loss term per clique keeps the
    structure of the estimation program (and so its JIT compilation) a function of the set of
    measured cliques, however often each is measured. Cliques keep their first-measured order.
    """

    def __init__(self) -> None:
        self._weighted: dict[Clique, np.ndarray] = {}
        self._precision: dict[Clique, float] = {}

    def add(self, clique: Sequence[str], values: np.ndarray, sigma: float) -> None:
        """Record a measurement of `clique` (flattened counts plus N(0, sigma^2) noise)."""
        clique = tuple(clique)
        precision = 1.0 / float(sigma) ** 2
        values = np.asarray(values, dtype=np.float64).ravel()
        if clique in self._weighted:
            if self._weighted[clique].shape != values.shape:
                raise ValueError(f"measurement of {clique} changed size")
            self._weighted[clique] = self._weighted[clique] + precision * values
            self._precision[clique] += precision
        else:
            self._weighted[clique] = precision * values
            self._precision[clique] = precision

    def __contains__(self, clique: object) -> bool:
        return clique in self._precision

    def __len__(self) -> int:
        return len(self._precision)

    @property
    def cliques(self) -> tuple[Clique, ...]:
        """The measured cliques, in the order they were first measured."""
        return tuple(self._precision)

    def value(self, clique: Clique) -> tuple[np.ndarray, float]:
        """The combined measurement of `clique` and its noise std."""
        precision = self._precision[clique]
        return self._weighted[clique] / precision, float(precision**-0.5)

    def measurements(self) -> list[mbi.LinearMeasurement]:
        """The combined measurements as mbi `LinearMeasurement`s (one per clique)."""
        out = []
        for clique in self._precision:
            y, sigma = self.value(clique)
            out.append(mbi.LinearMeasurement(y, clique, stddev=sigma))
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
        dom, log.measurements(), known_total=log.total(), iters=iters,
        warm_start=warm_start, tol=tol,
    )


def _dense_loss(
    shape: tuple[int, ...], axes: tuple[tuple[int, ...], ...]
) -> Callable[[mbi.CliqueVector, Any], Any]:
    """The L2 loss of marginals (summing out `axes` of the joint) as a function of the joint.

    The data are (A, y, precision) with A the stacked 0/1 marginalisation matrix when it is
    small (one matrix-vector product: the smallest program to compile) or None otherwise (one
    reduction per marginal). The same function object is returned for the same arguments: it
    is static metadata of mbi's compiled mirror-descent step, so one compilation serves every
    call with the same structure, within a run and across runs.
    """
    key = (shape, axes)
    if key not in _DENSE_LOSSES:

        def loss(marginals: mbi.CliqueVector, data: Any) -> Any:
            matrix, y, precision = data
            joint = marginals.tables[next(iter(marginals.tables))].values
            if matrix is not None:
                counts = matrix @ joint.ravel()
            else:
                counts = jnp.concatenate(
                    [(jnp.sum(joint, axis=ax) if ax else joint).ravel() for ax in axes]
                )
            diff = counts - y
            return 0.5 * jnp.vdot(precision * diff, diff)

        # Jitted as a whole: mbi also calls the loss outside its compiled step (initial
        # loss), where op-by-op dispatch would compile every small operation on its own.
        _DENSE_LOSSES[key] = jax.jit(loss)
    return _DENSE_LOSSES[key]


_DENSE_LOSSES: dict[Any, Callable[..., Any]] = {}
#: The dense loss uses a stacked marginalisation matrix up to this many entries.
DENSE_MATRIX_MAX_ENTRIES = 1 << 21


class DenseEstimator:
    """mbi mirror descent on the full joint table of a small domain, one compilation per run.

    The potentials live on one clique (all attributes) and the loss has one term for each
    clique that may ever be measured (weight 0 until it is), so the compiled program never
    changes during a run and is reused across runs on the same domain and cliques. Mirror
    descent's update on the joint log-potential is sum_c A_c^T dL/dmu_c, exactly the update
    the graphical model of the measured cliques receives, so with the same initial step size
    (mbi's Lipschitz constant of that model) and the same Armijo rule the iterates coincide
    with mbi's: only the representation differs. Worth it when the joint is small
    (thousands of cells), where one compilation beats one per measured-clique set.

    Args:
        dom: the domain (all attributes, canonical order).
        cliques: every clique the run may measure, each in the domain's attribute order.
    """

    def __init__(self, dom: mbi.Domain, cliques: Sequence[Clique]) -> None:
        self.domain = dom
        self.full = tuple(dom.attributes)
        self.cliques = tuple(dict.fromkeys(tuple(c) for c in cliques))
        for cl in self.cliques:
            if tuple(dom.canonical(cl)) != cl:
                raise ValueError(f"clique {cl} is not in the domain's attribute order")
        shape = tuple(dom.shape)
        axes = tuple(
            tuple(i for i, a in enumerate(self.full) if a not in cl) for cl in self.cliques
        )
        self._loss = _dense_loss(shape, axes)
        self._sizes = [dom.size(cl) for cl in self.cliques]
        self._offsets = np.concatenate(([0], np.cumsum(self._sizes)))
        rows, cells = int(self._offsets[-1]), int(np.prod(shape, dtype=np.int64))
        self._matrix = None
        if rows * cells <= DENSE_MATRIX_MAX_ENTRIES:
            index = np.indices(shape).reshape(len(shape), cells)
            matrix = np.zeros((rows, cells))
            for cl, off in zip(self.cliques, self._offsets[:-1], strict=False):
                pos = [self.full.index(a) for a in cl]
                local = np.ravel_multi_index(tuple(index[p] for p in pos),
                                             tuple(shape[p] for p in pos))
                matrix[off + local, np.arange(cells)] = 1.0
            self._matrix = jnp.asarray(matrix)

    def estimate(
        self,
        log: MeasurementLog,
        *,
        iters: int,
        warm_start: mbi.MarkovRandomField | None = None,
        tol: float | None = None,
    ) -> mbi.MarkovRandomField:
        """Fit the joint table to the measurements in `log` (all among `cliques`)."""
        y = np.zeros(int(self._offsets[-1]))
        precision = np.zeros_like(y)
        declared = set(self.cliques)
        for cl in log.cliques:
            if cl not in declared:
                raise ValueError(f"measured clique {cl} was not declared to the estimator")
        for cl, lo, hi in zip(self.cliques, self._offsets[:-1], self._offsets[1:], strict=True):
            if cl in log:
                values, sigma = log.value(cl)
                y[lo:hi] = values
                precision[lo:hi] = 1.0 / sigma**2
        lipschitz = marginal_loss.calculate_l2_lipschitz_from_metadata(
            self.domain, log.measurements()
        )
        data = (self._matrix, jnp.asarray(y), jnp.asarray(precision))
        loss = mbi.MarginalLossFn((self.full,), self._loss, data, float(lipschitz))
        return estimation.MirrorDescent().estimate(
            self.domain, loss, known_total=log.total(), iters=iters, warm_start=warm_start,
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


def _logsumexp_np(values: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    if not axes:
        return values
    top = np.max(values, axis=axes, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    out = np.log(np.sum(np.exp(values - top), axis=axes, keepdims=True)) + top
    return np.squeeze(out, axis=axes)


class TreeMarginals:
    """Any marginal of a fitted model, computed in numpy from its calibrated junction tree.

    mbi answers a marginal outside the model's cliques by variable elimination compiled once
    per (model structure, clique); an adaptive mechanism asks for every candidate marginal
    of every new model, so compilation would dominate. Here the junction tree is calibrated
    once per model (HUGIN message passing in log space) and a marginal is the projection of a
    node's table when one node covers the clique, otherwise a contraction of the smallest
    subtree that covers it (node tables over separator tables), all plain numpy.

    Args:
        model: a fitted mbi model.
    """

    def __init__(self, model: mbi.MarkovRandomField) -> None:
        dom = model.domain
        self.domain = dom
        self.total = float(model.total)
        cliques = [tuple(c) for c in model.potentials.cliques]
        jtree, elimination = junction_tree.make_junction_tree(dom, cliques)
        self.elimination: list[str] = list(elimination)
        self.nodes: list[Clique] = [tuple(n) for n in jtree.nodes]
        self._tree = jtree
        log_tables = {n: np.zeros(dom.project(n).shape) for n in self.nodes}
        for cl in cliques:
            host = min((n for n in self.nodes if set(cl) <= set(n)), key=dom.size)
            log_tables[host] = log_tables[host] + _expand_np(
                np.asarray(model.potentials[cl].values), cl, host
            )
        messages: dict[tuple[Clique, Clique], np.ndarray] = {}
        for i, j in junction_tree.message_passing_order(jtree):
            sep = tuple(a for a in i if a in j)
            tau = log_tables[i]
            if (j, i) in messages:
                tau = tau - _expand_np(messages[(j, i)], sep, i)
            drop = tuple(k for k, a in enumerate(i) if a not in sep)
            messages[(i, j)] = _logsumexp_np(tau, drop)
            log_tables[j] = log_tables[j] + _expand_np(messages[(i, j)], sep, j)
        self.tables: dict[Clique, np.ndarray] = {}
        for n, table in log_tables.items():
            table = np.exp(table - _logsumexp_np(table, tuple(range(table.ndim))))
            self.tables[n] = table * self.total
        self._component = {}
        for k, comp in enumerate(nx.connected_components(jtree)):
            for n in comp:
                self._component[n] = k
        self._cache: dict[Clique, np.ndarray] = {}

    def _project(self, node: Clique, clique: Clique) -> np.ndarray:
        table = self.tables[node]
        drop = tuple(k for k, a in enumerate(node) if a not in clique)
        kept = [a for a in node if a in clique]
        out = table.sum(axis=drop) if drop else table
        return np.transpose(out, [kept.index(a) for a in clique]) if len(clique) > 1 else out

    def _subtree(self, clique: Clique, component: int) -> tuple[list[Clique], nx.Graph]:
        """The nodes of a small subtree of one component whose union covers `clique`."""
        tree = self._tree.subgraph(
            [n for n in self.nodes if self._component[n] == component]
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
        return list(tree.nodes), tree

    def _component_marginal(self, clique: Clique) -> np.ndarray:
        hosts = [n for n in self.nodes if set(clique) <= set(n)]
        if hosts:
            return self._project(min(hosts, key=self.domain.size), clique)
        component = self._component[next(n for n in self.nodes if clique[0] in n)]
        nodes, tree = self._subtree(clique, component)
        letters = {a: _LETTERS[k] for k, a in enumerate(self.domain.attributes)}
        operands: list[Any] = []
        for n in nodes:
            operands += [self.tables[n] / self.total, [letters[a] for a in n]]
        for a, b in tree.edges:
            sep = tuple(x for x in a if x in b)
            if not sep:
                continue
            mass = self._project(a, sep) / self.total
            inv = np.divide(1.0, mass, out=np.zeros_like(mass), where=mass > 0)
            operands += [inv, [letters[x] for x in sep]]
        spec_in = ",".join("".join(s) for s in operands[1::2])
        spec = spec_in + "->" + "".join(letters[a] for a in clique)
        out = np.einsum(spec, *operands[0::2], optimize="greedy")
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
                groups.setdefault(self._component[node], []).append(a)
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
