"""A chain's plan: every check that needs no data, and the budget split, before data is read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

from .access import Clique
from .base import FairnessTransformer, Metric, Synthesizer, _component_name
from .binning import plan_bins
from .errors import BudgetExceededError, ConfigError, PrivacyError
from .primitives import PrivateTable
from .privacy import RDPAccountant
from .privacy.noise import SeededNoise
from .release import _jsonable
from .schema import Schema


def plan_chain(
    schema: Schema,
    synthesizer: Synthesizer,
    fairness: FairnessTransformer | None,
    metrics: Sequence[Metric],
    *,
    rows: int | None,
    bin_share: float,
    test: bool = False,
) -> dict[str, Any]:
    """The plan of a chain of these stages on `schema`, reading no data (`SafesChain.plan`)."""
    if not isinstance(schema, Schema):
        raise ConfigError(
            f"schema must be a safes_framework.Schema, got {type(schema).__name__}"
        )
    for m in metrics:
        missing = sorted(set(m.reads()) - {"train"} - ({"test"} if test else set()))
        if missing:
            raise ConfigError(
                f"metric {_component_name(m)!r} reads the real {missing[0]} table, and "
                "none is given; pass run(..., test=TABLE) (safes run --test FILE) or drop "
                "the metric"
            )
    budget = (synthesizer.epsilon, synthesizer.delta)
    trial = RDPAccountant(budget=budget)
    rho_total = _planned_rho(trial)
    bins = plan_bins(schema, trial, bin_share)
    if bins is not None:
        bins.charge(trial)
    provisional = schema.provisional()
    table = PrivateTable(
        _DomainOnly(provisional.sizes),
        provisional,
        trial.copy(),
        SeededNoise(np.random.SeedSequence(0)),
        stage="synthesizer",
    )
    synth = synthesizer.preflight(table)
    fair = None if fairness is None else fairness.preflight(provisional)
    return _jsonable(
        {
            "budget": {
                "epsilon": budget[0],
                "delta": budget[1],
                "rho": rho_total,
                "synthesizer_rho": _planned_rho(trial),
            },
            "binning": None if bins is None else bins.to_dict(),
            "synthesizer": {"name": _component_name(synthesizer), **synth},
            "fairness": None
            if fairness is None
            else {"name": _component_name(fairness), **(fair or {})},
            "metrics": [_component_name(m) for m in metrics],
            "rows": "DP estimate" if rows is None else rows,
        }
    )


def _planned_rho(accountant: RDPAccountant) -> float | None:
    """The zCDP rho that remains on `accountant`, or None when the grid certifies none."""
    try:
        return accountant.plan_zcdp()
    except BudgetExceededError:
        return None


class _DomainOnly:
    """A `CountSource` that knows the public domain only: pre-flight checks read no data."""

    def __init__(self, sizes: dict[str, int]) -> None:
        self._sizes = dict(sizes)

    @property
    def sizes(self) -> dict[str, int]:
        return self._sizes

    def _refuse(self) -> NoReturn:
        raise PrivacyError(
            "a pre-flight check called a DP primitive; pre-flight checks see the public "
            "domain only (columns and sizes)"
        )

    def marginal(self, clique: Clique) -> np.ndarray:
        self._refuse()

    def num_rows(self) -> int:
        self._refuse()

    def rows(self) -> np.ndarray:
        self._refuse()
