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
