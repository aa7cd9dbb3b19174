"""Domains and model sizes: mbi `Domain`s from schema sizes, junction-tree sizes (cached)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import mbi
from mbi import junction_tree as mbi_junction_tree

Clique = tuple[str, ...]


def domain(sizes: Mapping[str, int]) -> mbi.Domain:
    """An mbi Domain from column sizes (order kept)."""
    return mbi.Domain(tuple(sizes), tuple(int(s) for s in sizes.values()))


def model_size_mb(dom: mbi.Domain, cliques: Sequence[Clique]) -> float:
    """Size in MB of the junction tree a model on `cliques` would need."""
    return float(mbi_junction_tree.hypothetical_model_size(dom, list(cliques)))


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
