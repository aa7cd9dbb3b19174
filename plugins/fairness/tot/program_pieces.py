"""The pieces a TOT program is built from: the table's distribution on its non-empty cells, the
allowed moves of each source cell, and where things are in a built program."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Cells:
    """The empirical distribution p(d, x, y) of a table, on its non-empty cells only.

    A row of the program is a non-empty (d, x, y) cell; a source is a non-empty (x, y) cell.
    Cells are mixed-radix indices over the schema's domain sizes (X columns, then Y last).

    Attributes:
        row_key: (R,) sorted keys group * n_cells + cell of the non-empty (d, x, y) cells.
        row_group: (R,) group (joint protected value) index of each row.
        row_src: (R,) index into the sources of each row's (x, y) cell.
        row_mass: (R,) p(d, x, y).
        source_cell: (S,) sorted cell indices of the non-empty (x, y) cells.
        source_codes: (S, m) their codes.
        source_mass: (S,) p(x, y).
        groups: (K,) sorted indices of the non-empty groups.
        group_mass: (K,) p(d).
        row_gpos: (R,) position of each row's group in `groups`.
        label_marginal: (L,) p(y) over the label's whole domain.
        n_cells: number of (x, y) cells of the domain.
    """

    row_key: np.ndarray
    row_group: np.ndarray
    row_src: np.ndarray
    row_mass: np.ndarray
    source_cell: np.ndarray
    source_codes: np.ndarray
    source_mass: np.ndarray
    groups: np.ndarray
    group_mass: np.ndarray
    row_gpos: np.ndarray
    label_marginal: np.ndarray
    n_cells: int

    @classmethod
    def from_codes(cls, group: np.ndarray, cell: np.ndarray, sizes: tuple[int, ...]) -> Cells:
        """Summarise a table given each record's group index and (x, y) cell index."""
        n_cells = math.prod(sizes)
        key = group.astype(np.int64) * n_cells + cell
        row_key, counts = np.unique(key, return_counts=True)
        n = float(len(key))
        row_group, row_cell = np.divmod(row_key, n_cells)
        row_mass = counts / n
        source_cell, row_src = np.unique(row_cell, return_inverse=True)
        source_mass = np.bincount(row_src, weights=row_mass)
        groups, row_gpos = np.unique(row_group, return_inverse=True)
        group_mass = np.bincount(row_gpos, weights=row_mass)
        source_codes = np.stack(np.unravel_index(source_cell, sizes), axis=1).astype(np.int64)
        labels = cell % sizes[-1]
        label_marginal = np.bincount(labels, minlength=sizes[-1]) / n
        return cls(
            row_key,
            row_group,
            row_src.astype(np.int64),
            row_mass,
            source_cell,
            source_codes,
            source_mass,
            groups,
            group_mass,
            row_gpos.astype(np.int64),
            label_marginal,
            n_cells,
        )


@dataclass(frozen=True)
class Targets:
    """The allowed moves of every source cell, as CSR over sources.

    Attributes:
        ptr: (S + 1,) moves of source s are ptr[s]:ptr[s + 1].
        cell: (E,) target cell index.
        label: (E,) target label code.
        cost: (E,) distortion of the move.
    """

    ptr: np.ndarray
    cell: np.ndarray
    label: np.ndarray
    cost: np.ndarray

    @classmethod
    def build(
        cls,
        cells: Cells,
        src: np.ndarray,
        codes: np.ndarray,
        cost: np.ndarray,
        sizes: tuple[int, ...],
        *,
        prune: bool = True,
    ) -> Targets:
        """CSR of the moves `src` -> `codes` with `cost`, optionally without dominated moves.

        A move to a cell with no mass is dominated when the same source can move, at no
        greater cost, to a cell with mass and the same label: both count alike for
        discrimination and distortion, and mass arriving where p = 0 only adds to the total
        variation while mass arriving at a cell with mass never does. Dropping dominated moves
        leaves the optimum unchanged.
        """
        order = np.argsort(src, kind="stable")
        src, codes, cost = src[order], codes[order], cost[order]
        cell = np.ravel_multi_index(codes.T, sizes).astype(np.int64)
        label = codes[:, -1].astype(np.int64)
        if prune and len(cell):
            L = sizes[-1]
            pos = np.minimum(np.searchsorted(cells.source_cell, cell), len(cells.source_cell) - 1)
            observed = cells.source_cell[pos] == cell
            best = np.full(len(cells.source_cell) * L, np.inf)
            np.minimum.at(best, src[observed] * L + label[observed], cost[observed])
            keep = observed | (cost < best[src * L + label])
            src, cell, label, cost = src[keep], cell[keep], label[keep], cost[keep]
        deg = np.bincount(src, minlength=len(cells.source_cell))
        return cls(np.concatenate(([0], np.cumsum(deg))), cell, label, cost)


@dataclass(frozen=True)
class Layout:
    """Where things are in a program built by `TotProgram.lp`.

    Attributes:
        n_core: number of model variables (they come first; see `TotProgram`).
        families: constraint family -> slice of program rows.
    """

    n_core: int
    families: dict[str, slice]


def _csr(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    return sp.csr_matrix((vals, (rows, cols)), shape=shape)
