"""DP bin edges: the budget share they take, the quantile selections, and the schema they give.

A column declared with public bounds, a number of bins k and `edges = "dp"` gets its k - 1
inner edges from the sensitive table before synthesis: on a public grid of candidate edges
inside the bounds, the exponential mechanism picks each equal-frequency quantile j/k
(`PrivateTable.quantiles`, exact integer scores, the run's noise source). The budget split is
declared: a share `bin_share` of the run's budget, as zCDP (rho = bin_share * rho_total, where
rho_total is what the accountant plans for the whole (epsilon, delta) budget), divided equally
over every edge of every such column; each edge is one `ExponentialMechanism(epsilon_edge)`
with epsilon_edge = sqrt(8 rho / edges), in the ledger under stage "binning" with the label
"bin edges of '<column>'". The synthesizer then plans from what remains. Everything after
the selections (sorting, spacing the edges apart on the grid, re-coding the grid cells into
bins) is post-processing of their outputs and of the public grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .errors import ConfigError
from .primitives import PrivateTable
from .privacy import ExponentialMechanism, RDPAccountant
from .schema import Continuous, Schema

#: The default share of the run's budget (as zCDP) spent on DP bin edges.
DEFAULT_BIN_SHARE = 0.1

#: The ledger stage of the edge selections.
STAGE = "binning"


def check_share(share: object) -> float:
    """`share` as a float in (0, 1); ConfigError otherwise."""
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1:
        raise ConfigError(f"bin_share must be a number strictly between 0 and 1, got {share!r}")
    return float(share)


def ledger_label(column: str) -> str:
    """The ledger label of a column's edge selections."""
    return f"bin edges of {column!r}"


@dataclass(frozen=True)
class BinPlan:
    """How the budget of the DP bin edges is split.

    Attributes:
        share: the declared share of the run's zCDP budget.
        rho_total: the zCDP rho of the whole (epsilon, delta) budget.
        rho: the rho the edges spend together (share * rho_total).
        epsilon: each edge's exponential-mechanism epsilon.
        edges: the number of inner edges of each column (bins - 1).
    """

    share: float
    rho_total: float
    rho: float
    epsilon: float
    edges: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "share": self.share,
            "rho_total": self.rho_total,
            "rho": self.rho,
            "epsilon_per_edge": self.epsilon,
            "edges": dict(self.edges),
        }

    def charge(self, accountant: RDPAccountant) -> None:
        """Compose the plan's events on `accountant` (a trial copy: `--dry-run`, planning)."""
        for column, count in self.edges.items():
            if count:
                accountant.compose(
                    ExponentialMechanism(epsilon=self.epsilon),
                    count=count,
                    stage=STAGE,
                    label=ledger_label(column),
                )


def plan_bins(schema: Schema, accountant: RDPAccountant, share: float) -> BinPlan | None:
    """The split of the DP bin edges' budget, or None when no column needs DP edges.

    Planned on `accountant` before anything is spent: rho_total = `plan_zcdp()`.
    """
    columns = schema.dp_binned
    if not columns:
        return None
    share = check_share(share)
    edges = {c.name: c.bins - 1 for c in columns}
    total = sum(edges.values())
    rho_total = accountant.plan_zcdp()
    rho = share * rho_total
    epsilon = math.sqrt(8.0 * rho / total) if total else 0.0
    return BinPlan(share, rho_total, rho if total else 0.0, epsilon, edges)


def spaced(boundaries: list[int], cells: int) -> np.ndarray:
    """Sorted `boundaries` pushed apart to be strictly increasing inside 1..cells-1.

    Post-processing of the selections: two edges that picked the same grid point would make
    an empty bin, so each is moved to the nearest free grid point above (then below).
    """
    b = np.sort(np.asarray(boundaries, dtype=np.int64))
    k = b.size
    for j in range(k):
        b[j] = max(b[j], (b[j - 1] + 1) if j else 1)
    for j in range(k - 1, -1, -1):
        b[j] = min(b[j], (b[j + 1] - 1) if j < k - 1 else cells - 1)
    return b


def choose_edges(
    table: PrivateTable, schema: Schema, codes: np.ndarray, plan: BinPlan
) -> tuple[Schema, np.ndarray]:
    """Choose every DP edge and re-code the grid cells into bins.

    Args:
        table: the sensitive table on `schema.grid()` (its DP primitives charge the run).
        schema: the declared schema (with `QuantileBinned` columns).
        codes: the (n, d) codes of the table on `schema.grid()` (not modified).
        plan: the budget split (`plan_bins`).

    Returns:
        The resolved schema (DP-binned columns as `Continuous` with the chosen edges) and
        the codes in that schema's domain.
    """
    codes = np.array(codes, dtype=np.int64)
    resolved: dict[str, Continuous] = {}
    names = list(schema.names)
    for col in schema.dp_binned:
        grid = np.asarray(col.grid_edges())
        cells = grid.size - 1
        k = col.bins
        chosen: list[int] = []
        if k > 1:
            chosen = table.quantiles(
                col.name,
                [Fraction(j, k) for j in range(1, k)],
                epsilon=plan.epsilon,
                label=ledger_label(col.name),
            )
        bounds = spaced(chosen, cells)
        resolved[col.name] = col.resolve((grid[0], *grid[bounds], grid[-1]))
        j = names.index(col.name)
        codes[:, j] = np.searchsorted(bounds, codes[:, j], side="right")
    return schema.replace_columns(resolved), codes

