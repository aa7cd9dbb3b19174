"""A numpy mirror-descent estimator on a junction tree: mbi's estimation without JIT compilation.

mbi fits a graphical model to noisy marginals by mirror descent over the marginal polytope
(McKenna, Sheldon, Miklau 2019, Algorithm 1). Its JAX programs take tens of seconds of XLA
compilation per model structure on a CPU (measured: ~35 s of CPU for a 14-attribute tree),
while one iteration on such a model costs about a millisecond in plain numpy. This module runs
the same algorithm (same loss, same initial step size, same Armijo rule) in numpy, calibrating
the junction tree by log-space message passing once per iteration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from mbi import Domain, junction_tree  # noqa: E402,I001

from . import _mbi  # noqa: F401  (configures JAX: float64, no persistent cache) before mbi

Clique = tuple[str, ...]


@dataclass(frozen=True)
class Observation:
    """A noisy linear measurement of a marginal: `weights * mu_clique + N(0, sigma^2)`.

    Attributes:
        clique: the attributes measured.
        values: the noisy values (flattened in C order of the clique).
        sigma: the noise standard deviation.
        weights: per-cell weights of the query (None for the identity).
    """

    clique: Clique
    values: np.ndarray
    sigma: float
    weights: np.ndarray | None = None


def _logsumexp(values: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    if not axes:
        return values
    top = np.max(values, axis=axes, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    out = np.log(np.sum(np.exp(values - top), axis=axes, keepdims=True)) + top
    return np.squeeze(out, axis=axes)


class _Projection:
    """Sum a node table down to a clique (in the clique's axis order) and broadcast back."""

    def __init__(self, node: Clique, clique: Clique, sizes: Mapping[str, int]) -> None:
        self.drop = tuple(i for i, a in enumerate(node) if a not in clique)
        kept = [a for a in node if a in clique]
        self.to_clique = [kept.index(a) for a in clique]
        self.from_clique = [list(clique).index(a) for a in kept]
        self.expand_shape = tuple(sizes[a] if a in clique else 1 for a in node)
        self.shape = tuple(sizes[a] for a in clique)

    def down(self, table: np.ndarray) -> np.ndarray:
        out = table.sum(axis=self.drop) if self.drop else table
        return np.transpose(out, self.to_clique)

    def up(self, values: np.ndarray) -> np.ndarray:
        return np.transpose(values.reshape(self.shape), self.from_clique).reshape(self.expand_shape)


class JunctionTreeEstimator:
    """Mirror descent on the junction tree of a set of cliques, in numpy.

    Args:
        sizes: domain size of every attribute (the model's attribute order).
        cliques: the cliques the model must represent (every measured clique among them).
    """

    def __init__(self, sizes: Mapping[str, int], cliques: Sequence[Sequence[str]]) -> None:
        self.sizes = dict(sizes)
        self.domain = Domain(tuple(self.sizes), tuple(self.sizes.values()))
        cliques = [tuple(c) for c in cliques] + [(a,) for a in self.sizes]
        jtree, elimination = junction_tree.make_junction_tree(self.domain, cliques)
        self.elimination: list[str] = list(elimination)
        self.nodes: list[Clique] = [tuple(n) for n in jtree.nodes]
        self.edges = [(tuple(a), tuple(b)) for a, b in jtree.edges]
        self._order = [(tuple(i), tuple(j)) for i, j in junction_tree.message_passing_order(jtree)]
        self._msg_proj = {
            (i, j): (
                _Projection(i, tuple(a for a in i if a in j), self.sizes),
                _Projection(j, tuple(a for a in i if a in j), self.sizes),
            )
            for i, j in self._order
        }
        # Each connected component of the forest is normalised to the total on its own.
        self._components: list[list[Clique]] = []
        seen: set[Clique] = set()
        adjacency: dict[Clique, list[Clique]] = {n: [] for n in self.nodes}
        for a, b in self.edges:
            adjacency[a].append(b)
            adjacency[b].append(a)
        for n in self.nodes:
            if n in seen:
                continue
            stack, comp = [n], []
            seen.add(n)
            while stack:
                x = stack.pop()
                comp.append(x)
                for y in adjacency[x]:
                    if y not in seen:
                        seen.add(y)
                        stack.append(y)
            self._components.append(comp)
        self._host_cache: dict[Clique, tuple[Clique, _Projection]] = {}

    def host(self, clique: Sequence[str]) -> tuple[Clique, _Projection]:
        """The smallest node containing `clique`, and the projection between them."""
        clique = tuple(clique)
        if clique not in self._host_cache:
            hosts = [n for n in self.nodes if set(clique) <= set(n)]
            if not hosts:
                raise ValueError(f"no node of the junction tree contains {clique}")
            node = min(hosts, key=lambda n: int(np.prod([self.sizes[a] for a in n])))
            self._host_cache[clique] = (node, _Projection(node, clique, self.sizes))
        return self._host_cache[clique]

    def zeros(self) -> dict[Clique, np.ndarray]:
        return {n: np.zeros(tuple(self.sizes[a] for a in n)) for n in self.nodes}

    def calibrate(
        self, theta: Mapping[Clique, np.ndarray], total: float
    ) -> dict[Clique, np.ndarray]:
        """Node marginals (counts summing to `total` per component) of log-potentials `theta`."""
        beliefs = {n: np.array(theta[n], dtype=np.float64) for n in self.nodes}
        messages: dict[tuple[Clique, Clique], np.ndarray] = {}
        for i, j in self._order:
            down_i, up_j = self._msg_proj[(i, j)]
            tau = beliefs[i]
            if (j, i) in messages:
                tau = tau - self._msg_proj[(j, i)][1].up(messages[(j, i)])
            msg = _logsumexp(tau, down_i.drop)
            msg = np.transpose(msg, down_i.to_clique)
            messages[(i, j)] = msg
            beliefs[j] = beliefs[j] + up_j.up(msg)
        out = {}
        for comp in self._components:
            for n in comp:
                b = beliefs[n]
                out[n] = np.exp(b - _logsumexp(b, tuple(range(b.ndim)))) * total
        return out

    def lipschitz(self, observations: Sequence[Observation]) -> float:
        """Upper bound on the Lipschitz constant of the loss gradient (per node, summed)."""
        per_node: dict[Clique, float] = {}
        for ob in observations:
            node, _ = self.host(ob.clique)
            q2 = 1.0 if ob.weights is None else float(np.max(np.asarray(ob.weights) ** 2))
            ratio = np.prod([self.sizes[a] for a in node]) / np.prod(
                [self.sizes[a] for a in ob.clique]
            )
            per_node[node] = per_node.get(node, 0.0) + q2 / ob.sigma**2 * float(ratio)
        return max(per_node.values()) if per_node else 1.0

    def _loss_and_grad(
        self, mu: Mapping[Clique, np.ndarray], observations: Sequence[Observation]
    ) -> tuple[float, dict[Clique, np.ndarray]]:
        loss = 0.0
        grad = {n: np.zeros_like(mu[n]) for n in self.nodes}
        for ob in observations:
            node, proj = self.host(ob.clique)
            m = proj.down(mu[node]).ravel()
            q = m if ob.weights is None else ob.weights * m
            diff = (q - ob.values) / ob.sigma
            loss += 0.5 * float(diff @ diff)
            g = diff / ob.sigma if ob.weights is None else ob.weights * diff / ob.sigma
            grad[node] += proj.up(g)
        return loss, grad

    def fit(
        self,
        observations: Sequence[Observation],
        total: float,
        *,
        iters: int,
        theta: Mapping[Clique, np.ndarray] | None = None,
    ) -> tuple[dict[Clique, np.ndarray], dict[Clique, np.ndarray]]:
        """Mirror descent with Armijo step control; returns (log-potentials, node marginals).

        Args:
            observations: the noisy measurements (each clique inside some node).
            total: the number of records the model represents.
            iters: iterations (each one calibration of the tree).
            theta: warm-start log-potentials (missing nodes start at zero).
        """
        th = self.zeros()
        if theta is not None:
            for n, v in theta.items():
                if n in th:
                    th[n] = np.array(v, dtype=np.float64)
        alpha = 2.0 / (self.lipschitz(observations) * total)
        mu = self.calibrate(th, total)
        loss, grad = self._loss_and_grad(mu, observations)
        for _ in range(iters):
            th2 = {n: th[n] - alpha * grad[n] for n in self.nodes}
            mu2 = self.calibrate(th2, total)
            loss2, grad2 = self._loss_and_grad(mu2, observations)
            decrease = sum(float(np.vdot(grad[n], mu[n] - mu2[n])) for n in self.nodes)
            if loss - loss2 >= 0.5 * alpha * decrease:
                th, mu, loss, grad = th2, mu2, loss2, grad2
                alpha *= 1.01
            else:
                alpha *= 0.5
        self.loss_ = loss
        return th, mu

    def marginal(self, mu: Mapping[Clique, np.ndarray], clique: Sequence[str]) -> np.ndarray:
        """Counts on `clique` (shaped by its sizes) from node marginals, if one node holds it."""
        node, proj = self.host(tuple(clique))
        return proj.down(mu[node])

    def sample(
        self, mu: Mapping[Clique, np.ndarray], rows: int, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """Draw `rows` records from calibrated node marginals with `rng`.

        Columns follow the reverse elimination order; each is drawn from its conditional given
        the already generated columns of its nodes (which, by the running intersection
        property, lie in one node with it), by stratified inverse-CDF sampling per parent
        configuration, vectorised over rows and configurations.
        """
        out: dict[str, np.ndarray] = {}
        for col in self.elimination[::-1]:
            related = set().union(*[set(n) for n in self.nodes if col in n])
            parents = tuple(a for a in self.sizes if a in out and a in related)
            k = self.sizes[col]
            joint = np.clip(self.marginal(mu, parents + (col,)), 0.0, None).reshape(-1, k)
            if parents:
                groups = np.ravel_multi_index(
                    tuple(out[p] for p in parents), tuple(self.sizes[p] for p in parents)
                )
            else:
                groups = np.zeros(rows, dtype=np.int64)
            out[col] = _conditional_draw(joint, groups, rng)
        return {a: out[a] for a in self.sizes}


def _conditional_draw(
    joint: np.ndarray, groups: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One draw per row from row `groups[r]` of `joint` (unnormalised), stratified per group."""
    n_groups, k = joint.shape
    mass = joint.sum(axis=1, keepdims=True)
    fallback = joint.sum(axis=0, keepdims=True)
    fallback = fallback / fallback.sum() if fallback.sum() > 0 else np.full((1, k), 1.0 / k)
    cond = np.where(mass > 0, joint / np.where(mass > 0, mass, 1.0), fallback)
    cdf = np.cumsum(cond, axis=1)
    cdf[:, -1] = 1.0
    # Stratified uniforms: within a group, one draw per equal-width stratum, in random order.
    n = groups.size
    perm = rng.permutation(n)
    order = perm[np.argsort(groups[perm], kind="stable")]
    counts = np.bincount(groups, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n) - starts[groups[order]]
    u = (ranks + rng.random(n)) / counts[groups]
    # Inverse CDF for every row at once: offset each configuration's CDF by its index.
    flat = (cdf + np.arange(n_groups)[:, None]).ravel()
    idx = np.searchsorted(flat, groups + u, side="right") - groups * k
    return np.minimum(idx, k - 1).astype(np.int64)
