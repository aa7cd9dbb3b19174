"""Sampling from a fitted model with a seeded generator (never numpy's global state)."""

from __future__ import annotations

import numpy as np

from .junction_tree import TreeMarginals


def _sort_key(groups: np.ndarray, n_groups: int) -> np.ndarray:
    """`groups` in the narrowest unsigned type: numpy sorts 8- and 16-bit keys by radix."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if n_groups - 1 <= np.iinfo(dtype).max:
            return groups.astype(dtype)
    return groups


def _draw_column(
    groups: np.ndarray, cond: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One code per row, drawn from `cond[group]` by randomized rounding within each group.

    Group g's c_g rows receive category j exactly floor(c_g * F_j + U_g) - floor(c_g *
    F_{j-1} + U_g) times (F the conditional CDF, U_g one uniform per group: systematic
    sampling), so each category's count is within one of its expectation c_g * p_j; the rows
    of a group receive them in uniformly random order (a random permutation, then a stable
    sort by group). Every row's code is distributed as `cond[group]` exactly. The cost is a
    radix sort and a few passes over the rows, with no search per row.
    """
    n = groups.size
    n_groups, k = cond.shape
    perm = rng.permutation(n)
    order = perm[np.argsort(_sort_key(groups, n_groups)[perm], kind="stable")]
    counts = np.bincount(groups, minlength=n_groups)
    cdf = np.cumsum(cond, axis=1)
    bounds = np.floor(counts[:, None] * cdf + rng.random(n_groups)[:, None])
    bounds[:, -1] = counts
    # Guards against rounding in the cdf: non-decreasing, and never above the group's rows.
    np.minimum(bounds, counts[:, None], out=bounds)
    np.maximum.accumulate(bounds, axis=1, out=bounds)
    per_cell = np.diff(bounds, axis=1, prepend=0.0).astype(np.int64)
    codes = np.tile(np.arange(k, dtype=np.int64), n_groups)
    out = np.empty(n, dtype=np.int64)
    out[order] = np.repeat(codes, per_cell.ravel())
    return out


def sample_tree(
    marginals: TreeMarginals, rows: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Draw `rows` records from a calibrated model with `rng` (never the global numpy state).

    Columns are drawn in reverse elimination order, each from its conditional given the
    columns already drawn that share a model clique with it (read from `TreeMarginals`), by
    randomized rounding within each configuration of those parents (`_draw_column`).
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
        out[col] = _draw_column(groups, cond, rng)
    return {col: out[col] for col in dom}
