"""Estimation: mbi's mirror descent, on a junction tree (compiled kernels) or on the joint
table (numpy).

Where the time goes in an adaptive mechanism on mbi (profiled on this project's datasets, see
docs/aim.md): every `estimate` call whose loss has a new structure (a new list of
measurements) re-traces and re-compiles mbi's JAX mirror-descent program, and every
out-of-model marginal asked of a model (`MarkovRandomField.project` -> `variable_elimination`)
compiles once per (model structure, clique); on a 2-core CPU one compilation for 14 columns
takes 10-30 s while 1000 iterations of the compiled program take 0.1 s. The estimators here
run the same algorithm on the junction tree, in a handful of numba kernels that do not depend
on the model's structure (compiled once, cached on disk: `kernels`), or, for small domains,
on the joint table in numpy; `estimate_graph` keeps mbi's own estimator available.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import mbi
import numpy as np
from mbi import estimation as mbi_estimation

from . import kernels
from .domain import Clique, clique_routes
from .junction_tree import JunctionTree, TreeMarginals, _broadcast_shape, _offsets
from .measurements import MeasurementLog


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
    return mbi_estimation.MirrorDescent().estimate(
        dom,
        log.measurements(),
        known_total=log.total(),
        iters=iters,
        warm_start=warm_start,
        tol=tol,
    )


def _inner(a: np.ndarray, b: np.ndarray) -> float:
    """sum(a * b) without BLAS: on a shared machine a threaded BLAS dot of a few thousand
    numbers waits for its threads (1.5 ms at load 4 on 2 cores, vs 0.05 ms here)."""
    return float(np.einsum("i,i->", a, b))


def _armijo_blocks(
    block: Callable[[float, int], float],
    loss: Callable[[], float],
    iters: int,
    tol: float | None,
    alpha: float,
    patience: int = 2,
    settled: Callable[[], bool] | None = None,
) -> float:
    """mbi's mirror-descent schedule: blocks of CALLBACK_EVERY Armijo steps, optional `tol`.

    `block(alpha, count)` takes `count` Armijo steps from step size `alpha` (which grows by
    1.01 on each acceptance and halves on each rejection) and returns the step size after
    them. `iters` steps in all (the last block may be shorter). With `tol`, stop once the loss
    has improved by at most `tol` (relative) over `patience` consecutive blocks; with
    `settled`, stop after the first block at whose end it returns True. Returns the final
    step size.
    """
    prev, stalls = math.inf, 0
    every = mbi_estimation.CALLBACK_EVERY
    for start in range(0, iters, every):
        alpha = block(alpha, min(every, iters - start))
        if settled is not None and settled():
            break
        if tol is not None:
            current = loss()
            stalls = stalls + 1 if prev - current <= tol * max(abs(current), 1.0) else 0
            prev = current
            if stalls >= patience:
                break
    return alpha


class _Iterate(Protocol):
    """What `_mirror_descent` moves: a model's log-potentials, their measured marginals m and
    the loss there."""

    m: np.ndarray
    loss: float

    def descend(self, alpha: float, count: int, travelled: np.ndarray) -> float:
        """Take `count` Armijo steps from step size `alpha` (see `_mirror_descent`) and return
        the step size after them. The log-potentials are the starting ones less A^T
        `travelled`, where A maps the model to its measured marginals; each accepted step a
        (gradient g) moves them by -a A^T g and adds a g to `travelled` in place."""


def _armijo_steps(iterate: Any, alpha: float, count: int, travelled: np.ndarray) -> float:
    """`_Iterate.descend` for an iterate with `propose(step, travelled) -> (loss', <g, m -
    m'>)`, which keeps its proposal until the next call, `accept()` and the gradient `g`."""
    for _ in range(count):
        loss, lin = iterate.propose(alpha, travelled)
        if iterate.loss - loss >= 0.5 * alpha * lin:
            np.add(travelled, alpha * iterate.g, out=travelled)
            iterate.accept()
            alpha = alpha * 1.01
        else:
            alpha = alpha * 0.5
    return alpha


def _mirror_descent(
    iterate: _Iterate,
    *,
    iters: int,
    tol: float | None,
    alpha: float,
    watch: tuple[int, int] | None = None,
    settle_share: float = 0.1,
) -> tuple[float, np.ndarray]:
    """mbi's mirror descent on a model's log-potentials (McKenna et al. 2019, Algorithm 1).

    The loss is 0.5 * sum(precision * (m - y)^2) on the measured marginals m; steps follow
    `_armijo_blocks` (a step a is accepted when the loss falls by at least half the decrease
    its linearisation predicts, a <g, m - m'>). One pass over the model per iteration
    suffices, since a rejected step keeps the current marginals.

    With `watch` = (start, stop), a slice of the stacked measured marginals (one measured
    clique), the fit stops after the first block in which that marginal moved (L1) by at most
    `settle_share` of its whole move since the start: the clique a round has just measured
    has settled, and so has most of what that measurement changes.

    Returns:
        The final step size, and the sum of the accepted steps on the measured marginals,
        s = sum a_k g_k: the log-potentials moved by -A^T s, so any other linear
        parametrisation of them moves by its own map of s.
    """
    travelled = np.zeros_like(iterate.m)
    settled = None
    if watch is not None:
        first = iterate.m[slice(*watch)].copy()
        last = [first]

        def settled() -> bool:
            now = iterate.m[slice(*watch)]
            change = float(np.abs(now - last[0]).sum())
            last[0] = now.copy()
            return change <= settle_share * float(np.abs(now - first).sum())

    alpha = _armijo_blocks(
        lambda a, count: iterate.descend(a, count, travelled),
        lambda: iterate.loss,
        iters,
        tol,
        alpha,
        settled=settled,
    )
    return alpha, travelled


#: The tree iterate steps multiplicatively in probability space and recomputes its tables from
#: the log-potentials after this many steps, so that rounding cannot accumulate (and a cell
#: that underflowed comes back).
EXACT_EVERY = mbi_estimation.CALLBACK_EVERY


class _Terms:
    """The measured marginals of a log as one stacked vector, and the maps to and from it.

    `index` and `plans` are the map `kernels.project` reads the stacked measured marginals by
    from the flat node marginals of a junction tree, each from the smallest node containing
    it (or from a measured marginal containing it); `kernels.lift` is its transpose, adding a
    vector on the measured marginals into the node log-potentials routed the same way (the
    joint log-potential is the sum over the nodes, so any node containing a measured clique
    may carry its term). `spread` adds the same vector into the model cliques' tables,
    routing each measurement to the smallest model clique containing it (mbi's routing): the
    potentials a fit returns. Each map is a set of `kernels.Plans`, one per measured clique;
    `work` is the measured-size buffer `kernels.lift` needs.
    """

    def __init__(self, dom: mbi.Domain, log: MeasurementLog, tree: JunctionTree) -> None:
        measured = [tuple(dom.canonical(c)) for c in log.cliques]
        route = clique_routes(tree.cliques, measured, dom)
        values = [log.value(c) for c in log.cliques]
        self.y = np.concatenate([v for v, _ in values])
        self.precision = log.loss_weights()
        offsets = _offsets([v.size for v, _ in values], measured)
        self.offsets = offsets
        # Entries from the largest measured clique down: each is read from the smallest of its
        # host node and the measured cliques before it that contain it (a measured marginal
        # is far smaller than the node: a 1-way marginal hosted in a 20,000-cell node is then
        # summed from a 2-way one of a hundred cells).
        cells = {c: math.prod(dom[a] for a in c) for c in measured}
        plans, routes = kernels.Plans(), kernels.Plans()
        host_at, nested, at, end = [], [], [], []
        done: list[Clique] = []
        for c in sorted(measured, key=lambda c: -cells[c]):
            node = min((n for n in tree.nodes if set(c) <= set(n)), key=tree.node_size.__getitem__)
            within = [d for d in done if set(c) < set(d)]
            container = min(within, key=cells.__getitem__, default=None)
            if container is not None and cells[container] < tree.node_size[node]:
                shape = tuple(dom[a] for a in container)
                plans.add(shape, [k for k, a in enumerate(container) if a in c])
                host_at.append(offsets[container][0])
                nested.append(1)
            else:
                plans.add(tree.shapes[node], [k for k, a in enumerate(node) if a in c])
                host_at.append(tree.offsets[node][0])
                nested.append(0)
            at.append(offsets[c][0])
            end.append(offsets[c][1])
            done.append(c)
        for c in measured:
            parent = route[c]
            routes.add(tuple(dom[a] for a in parent), [k for k, a in enumerate(parent) if a in c])
        self.index = kernels.terms(host_at, at, end, nested)
        self.plans = plans.arrays()
        self.route_index = kernels.terms(
            [tree.clique_offsets[route[c]][0] for c in measured],
            [offsets[c][0] for c in measured],
            [offsets[c][1] for c in measured],
        )
        self.routes = routes.arrays()
        self.work = np.empty(self.y.size)

    def spread(self, v: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """`theta` (the model cliques' tables, flat) plus `v` routed to them, in place."""
        kernels.lift(v, self.work, theta, self.route_index, self.routes)
        return theta


class _TreeIterate:
    """Mirror descent's iterate on a junction tree, in the compiled kernels.

    The iterate is kept as node tables of probabilities (exp of the node log-potentials less
    each node's maximum). A step multiplies them by exp(-step * A^T g), which factors over the
    measured cliques: one exponential per measured cell, not per model cell. Every
    `EXACT_EVERY` steps, and whenever a factor could underflow (see `kernels.propose`), the
    tables are recomputed from the log-potentials, phi0 - A^T travelled. Both give the same
    iterate up to rounding. A block of steps is one `kernels.descend` call.

    Attributes:
        tally: [steps, multiplicative proposals, proposals declined] so far.
    """

    def __init__(self, tree: JunctionTree, terms: _Terms, phi: np.ndarray, total: float) -> None:
        self.tree = tree.compiled
        self.terms = terms
        self.total = float(total)
        self.phi0 = phi
        cells, measured = phi.size, terms.y.size
        # Row `_current` of each pair is the iterate, the other the proposal.
        self._probs, self._mu = np.empty((2, cells)), np.empty((2, cells))
        self._m, self._g = np.empty((2, measured)), np.empty((2, measured))
        self._current = 0
        self._phi, self._v = np.empty(cells), np.empty(measured)
        self._factors = np.empty(measured)
        self._since_exact = 0
        self.tally = np.zeros(3, dtype=np.int64)
        t = self.tree
        kernels.exponentiate(phi, t.starts, t.sizes, self._probs[0])
        self.loss = kernels.evaluate(  # the kernel `descend` uses: one compiled call fewer
            self._probs[0], t._scratch, self._mu[0], t._sent, t._buf, self._m[0], self._g[0],
            self._m[0], self._g[0], terms.y, terms.precision, t.index, terms.index,
            (t.plans, terms.plans), self.total, t.rescale,
        )[0]

    @property
    def m(self) -> np.ndarray:
        """The measured marginals."""
        return self._m[self._current]

    @property
    def mu(self) -> np.ndarray:
        """The flat node marginals."""
        return self._mu[self._current]

    def descend(self, alpha: float, count: int, travelled: np.ndarray) -> float:
        t, terms = self.tree, self.terms
        self._current, self.loss, alpha, self._since_exact = kernels.descend(
            self._probs, self._mu, self._m, self._g, self._current, float(self.loss),
            float(alpha), int(count), self._since_exact, travelled, self.phi0, self._phi,
            self._v, terms.work, self._factors, t._scratch, t._sent, t._buf, terms.y,
            terms.precision, t.index, terms.index, (t.plans, terms.plans), self.total,
            t.rescale, EXACT_EVERY, kernels.FACTOR_RANGE, kernels.NODE_FLOOR, self.tally,
        )
        return alpha


class _DenseIterate:
    """Mirror descent's iterate on the full joint table (numpy): log-potentials `theta`,
    measured marginals `matrix @ p` of the joint `p`."""

    def __init__(
        self,
        theta: np.ndarray,
        joint: Callable[[np.ndarray], np.ndarray],
        matrix: Any,
        y: np.ndarray,
        precision: np.ndarray,
    ) -> None:
        self.theta, self.joint, self.matrix = theta, joint, matrix
        self.y, self.precision = y, precision
        self.transpose = matrix.T.tocsr()
        self.p = joint(theta)
        self.m = matrix @ self.p
        self.g, self.loss = self._residual(self.m)
        self._grad: np.ndarray | None = None
        self._next: tuple[Any, ...] | None = None
        self.iterations = 0

    def _residual(self, m: np.ndarray) -> tuple[np.ndarray, float]:
        diff = m - self.y
        g = self.precision * diff
        return g, 0.5 * _inner(g, diff)

    def propose(self, step: float, travelled: np.ndarray) -> tuple[float, float]:
        self.iterations += 1
        if self._grad is None:  # a rejected step retries the same gradient
            self._grad = self.transpose @ self.g
        theta = self.theta - step * self._grad
        p = self.joint(theta)
        m = self.matrix @ p
        g, loss = self._residual(m)
        self._next = (theta, p, m, g, loss)
        return loss, _inner(self.g, self.m - m)

    def accept(self) -> None:
        assert self._next is not None
        self.theta, self.p, self.m, self.g, self.loss = self._next
        self._grad = None

    def descend(self, alpha: float, count: int, travelled: np.ndarray) -> float:
        return _armijo_steps(self, alpha, count, travelled)


@dataclass
class TreeFit:
    """A model fitted by `TreeMirrorDescent` or `DenseMirrorDescent`.

    Attributes:
        potentials: log-potentials on the model's cliques (tables shaped by each clique).
        marginals: the calibrated model.
        step_size: the line search's last step size.
        iterations: the iterations (Armijo steps tried) this fit took.
    """

    potentials: dict[Clique, np.ndarray]
    marginals: TreeMarginals
    step_size: float
    iterations: int = 0


class TreeMirrorDescent:
    """mbi's mirror descent on the junction tree of the measured cliques (compiled kernels).

    The same algorithm as `mbi.estimation.MirrorDescent`: log-potentials on the maximal
    measured cliques, initial step 2 / (L N) with mbi's Lipschitz constant L of the L2 loss and
    N the estimated total, Armijo line search (accept when the loss falls by at least half the
    linearised decrease; step x1.01 on acceptance, x0.5 on rejection), blocks of mbi's
    CALLBACK_EVERY iterations with the same `tol` rule, warm starts by moving the previous
    potentials into the new cliques. With mbi, each new set of measured cliques compiles a new
    program (tens of seconds on a small CPU for 14 columns) while the iterations themselves
    take a fraction of that; here the kernels take any tree as flat arrays and index plans, so
    nothing is compiled per model. One message pass per iteration suffices, since a rejected
    step keeps the current marginals. The iterations run on the junction tree's node tables,
    stepped multiplicatively in probability space (`_TreeIterate`; the same joint
    log-potential, so the same iterates up to rounding); the clique potentials are rebuilt
    from the accepted steps.

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
        watch: Clique | None = None,
        settle_share: float = 0.1,
        max_work: float | None = None,
    ) -> TreeFit:
        """Fit the model of the measured cliques in `log`.

        Args:
            log: the measurements.
            iters: at most this many iterations.
            warm_start: start from this fit's potentials instead of the uniform model.
            tol: stop early (mbi's rule) when the loss stops improving by this relative amount.
            step_size: a larger initial step size than mbi's 2 / (L N) to start from (e.g. the
                last step size of the warm start's fit); the smaller one is ignored.
            watch: a measured clique; stop once its marginal has settled (its move over a
                block of iterations is at most `settle_share` of its move since the start).
            max_work: at most this many cell-iterations (iterations x cells of the junction
                tree), and at least one iteration: one iteration costs about a pass over
                every cell, so this bounds the fit's time however large the model grows.
        """
        dom = self.domain
        cliques = tuple(
            tuple(dom.canonical(c)) for c in mbi.clique_utils.maximal_subset(list(log.cliques))
        )
        tree = self.tree(cliques)
        terms = _Terms(dom, log, tree)
        total = log.total()
        lipschitz = log.lipschitz(dom)

        theta = np.zeros(tree.clique_offsets[cliques[-1]][1])
        if warm_start is not None:
            for old, values in warm_start.potentials.items():
                target = min((c for c in cliques if set(old) <= set(c)), key=dom.size)
                view = theta[slice(*tree.clique_offsets[target])].reshape(
                    tuple(dom[a] for a in target)
                )
                view += values.reshape(_broadcast_shape(old, target, dom))

        alpha = max(2.0 / (lipschitz * total), step_size or 0.0)
        if max_work is not None:
            cells = tree.offsets[tree.nodes[-1]][1]
            iters = max(1, min(iters, int(max_work // max(cells, 1))))
        # Iterate on the node tables (no gather per pass); the clique potentials follow from
        # the accepted steps at the end.
        iterate = _TreeIterate(tree, terms, tree.node_potentials(theta), total)
        alpha, travelled = _mirror_descent(
            iterate,
            iters=iters,
            tol=tol,
            alpha=alpha,
            watch=None if watch is None else terms.offsets[tuple(dom.canonical(watch))],
            settle_share=settle_share,
        )
        terms.spread(-travelled, theta)
        potentials = {
            c: theta[slice(*tree.clique_offsets[c])].reshape(tuple(dom[a] for a in c))
            for c in cliques
        }
        return TreeFit(
            potentials, TreeMarginals(tree, tree.tables(iterate.mu), total), alpha,
            int(iterate.tally[0]),
        )


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
        values = [log.value(c) for c in log.cliques]
        y = np.concatenate([v for v, _ in values])
        precision = log.loss_weights()
        total = log.total()
        lipschitz = log.lipschitz(self.domain)

        def joint(theta: np.ndarray) -> np.ndarray:
            p = np.exp(theta - theta.max())
            return p * (total / p.sum())

        theta0 = (
            np.zeros(int(np.prod(self.shape)))
            if warm_start is None
            else warm_start.potentials[self.full].ravel().copy()
        )
        alpha = max(2.0 / (lipschitz * total), step_size or 0.0)
        iterate = _DenseIterate(theta0, joint, matrix, y, precision)
        alpha, _ = _mirror_descent(iterate, iters=iters, tol=tol, alpha=alpha)
        theta, p = iterate.theta, iterate.p
        table = p.reshape(self.shape)
        return TreeFit(
            {self.full: theta.reshape(self.shape)},
            TreeMarginals(self._tree, {self.full: table}, total),
            alpha,
            iterate.iterations,
        )


def load_kernels() -> None:
    """Call every compiled kernel a fit uses once, on a model of two columns.

    numba loads a kernel's machine code from its on-disk cache at the kernel's first call in
    a process (tens of milliseconds for the larger ones); run at import, this one-time cost
    is paid with the imports of numba, JAX and mbi rather than inside the first fit.
    """
    from .domain import JunctionTreeSizer, domain

    dom = domain({"a": 2, "b": 3})
    log = MeasurementLog()
    log.add(("a", "b"), np.full(6, 10.0), 1.0)
    log.add(("a",), np.full(2, 30.0), 1.0)
    TreeMirrorDescent(dom).estimate(log, iters=2).marginals(("a",))
    JunctionTreeSizer(dom).cells([("a", "b")])
