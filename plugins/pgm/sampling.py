"""Sampling from a fitted model with a seeded generator (never numpy's global state)."""

from __future__ import annotations

import numpy as np

from .junction_tree import TreeMarginals


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
