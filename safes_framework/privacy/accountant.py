"""The RDP accountant: one ledger per run, a budget filter, and budget planning."""

from __future__ import annotations

import json
import logging
import math
import numbers
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import BudgetExceededError, PrivacyError
from . import analysis
from .events import ZCDP, DpEvent, Gaussian, SubsampledGaussian

__all__ = ["LedgerEntry", "RDPAccountant"]

logger = logging.getLogger(__name__)

#: `plan_subsampled_gaussian` brackets the noise multiplier to this relative precision.
SUBSAMPLED_PLAN_RTOL = 1e-7

NEIGHBOURING = "add/remove one record"

#: Relative margin planners leave below the exact fit, so that a plan converted by hand
#: (sigma = sqrt(k / (2 rho)), epsilon = sqrt(8 rho)) still fits the exact budget filter.
PLAN_MARGIN = 1e-9


@dataclass(frozen=True)
class LedgerEntry:
    """One recorded spend.

    Attributes:
        stage: the run stage that spent (e.g. "synthesizer"), or None.
        label: what the spend was for (e.g. "one-way marginals"), or None.
        event: the mechanism's description, `{"type": ..., <parameters>}` (read-only).
        count: how many times the mechanism ran.
        epsilon_after: total ε at the budget's δ after this spend (None without a budget).
    """

    stage: str | None
    label: str | None
    event: Mapping[str, Any]
    count: int
    epsilon_after: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy of the entry."""
        return {
            "stage": self.stage,
            "label": self.label,
            "event": dict(self.event),
            "count": self.count,
            "epsilon_after": self.epsilon_after,
        }


def _check_budget(budget: tuple[float, float], what: str = "budget") -> tuple[float, float]:
    try:
        eps, delta = budget
    except (TypeError, ValueError):
        raise PrivacyError(f"{what} must be a pair (epsilon, delta), got {budget!r}") from None
    for name, value in (("epsilon", eps), ("delta", delta)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise PrivacyError(f"{what} {name} must be a real number, got {value!r}")
    if not (math.isfinite(eps) and eps > 0):
        raise PrivacyError(f"{what} epsilon must be positive and finite, got {eps!r}")
    if not 0 < delta < 1:
        raise PrivacyError(f"{what} delta must be in (0, 1), got {delta!r}")
    return float(eps), float(delta)


def _check_count(count: object) -> int:
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or int(count) < 1:
        raise PrivacyError(f"count must be a positive integer, got {count!r}")
    return int(count)


def _describe(event: DpEvent, count: int, label: str | None) -> str:
    params = event.to_dict()
    kind = params.get("type", type(event).__name__)
    args = ", ".join(f"{k}={v!r}" for k, v in params.items() if k != "type")
    text = f"{kind}({args})" + (f" x{count}" if count != 1 else "")
    return f"{label!r}: {text}" if label else text


class RDPAccountant:
    """Composes mechanisms in Rényi DP, converts to (ε, δ), filters and plans a budget.

    Each `compose` adds `count × event.rdp(orders)` to the running RDP curve and records a
    `LedgerEntry`. With a budget, a spend that would take ε (at the budget's δ) past the budget
    raises `BudgetExceededError` and records nothing, so callers charge before drawing noise.

    Attributes:
        on_spend: optional callable invoked with each `LedgerEntry` right after it is recorded
            (an exception it raises propagates; the spend stays recorded).
    """

    def __init__(
        self,
        budget: tuple[float, float] | None = None,
        orders: ArrayLike | None = None,
        *,
        on_spend: Callable[[LedgerEntry], object] | None = None,
    ) -> None:
        """Create an empty accountant.

        Args:
            budget: the (ε, δ) the run may spend, or None for no limit.
            orders: Rényi orders to track (all finite and > 1); default `DEFAULT_ORDERS`.
            on_spend: see the class attribute.

        Raises:
            PrivacyError: on a malformed budget or order grid.
        """
        self._budget = None if budget is None else _check_budget(budget)
        if orders is None:
            self._orders = analysis.default_orders()
        else:
            self._orders = analysis.check_orders(orders)
        self._orders.setflags(write=False)
        self._rdp = np.zeros_like(self._orders)
        self._entries: list[LedgerEntry] = []
        self.on_spend = on_spend

    # -- state ---------------------------------------------------------------------------------

    @property
    def budget(self) -> tuple[float, float] | None:
        """The declared (ε, δ) budget, or None."""
        return self._budget

    @property
    def orders(self) -> NDArray[np.float64]:
        """The Rényi orders tracked (a copy)."""
        return self._orders.copy()

    @property
    def rdp(self) -> NDArray[np.float64]:
        """The current composed RDP curve, one value per order (a copy)."""
        return self._rdp.copy()

    @property
    def entries(self) -> list[LedgerEntry]:
        """Every recorded spend, in order (a copy of the list)."""
        return list(self._entries)

    def copy(self) -> RDPAccountant:
        """An independent accountant with the same budget, orders, curve and ledger.

        `on_spend` is not copied: spends on a trial copy must not reach run observers.
        """
        twin = RDPAccountant.__new__(RDPAccountant)
        twin._budget = self._budget
        twin._orders = self._orders
        twin._rdp = self._rdp.copy()
        twin._entries = list(self._entries)
        twin.on_spend = None
        return twin

    # -- conversion ----------------------------------------------------------------------------

    def epsilon(self, delta: float) -> float:
        """The ε spent so far at `delta` (tight RDP conversion over the order grid)."""
        return analysis.rdp_to_epsilon(self._orders, self._rdp, delta)

    def delta(self, epsilon: float) -> float:
        """The δ spent so far at `epsilon`."""
        return analysis.rdp_to_delta(self._orders, self._rdp, epsilon)

    @property
    def spent(self) -> tuple[float, float]:
        """(ε spent at the budget's δ, the budget's δ).

        Raises:
            PrivacyError: if no budget was declared (use `epsilon(delta)` instead).
        """
        _, delta = self._require_budget("spent")
        return self.epsilon(delta), delta

    @property
    def remaining_epsilon(self) -> float:
        """Budget ε minus ε spent (>= 0); infinite without a budget."""
        if self._budget is None:
            return math.inf
        return max(0.0, self._budget[0] - self.spent[0])

    # -- spending ------------------------------------------------------------------------------

    def _event_curve(self, event: DpEvent, count: int) -> NDArray[np.float64]:
        if not isinstance(event, DpEvent):
            raise PrivacyError(
                f"expected a privacy event with rdp() and to_dict(), got {type(event).__name__}"
            )
        curve = np.asarray(event.rdp(self._orders), dtype=np.float64)
        if curve.shape != self._orders.shape:
            raise PrivacyError(
                f"{type(event).__name__}.rdp returned shape {curve.shape}, "
                f"expected {self._orders.shape}"
            )
        if (curve < 0).any():
            raise PrivacyError(f"{type(event).__name__}.rdp returned a negative RDP value")
        # NaN gives no bound at that order: treat it as infinite (ignored by the conversion).
        return count * np.where(np.isnan(curve), np.inf, curve)

    def _fits(self, total: NDArray[np.float64]) -> bool:
        if self._budget is None:
            return True
        eps_budget, delta = self._budget
        # Exact: no slack. Planners size their spends against this same arithmetic, so a
        # planned spend fits to the last bit and no report ever states more than the budget.
        return analysis.rdp_to_epsilon(self._orders, total, delta) <= eps_budget

    def can_afford(self, event: DpEvent, count: int = 1) -> bool:
        """Whether `count` runs of `event` would stay within the budget (records nothing)."""
        count = _check_count(count)
        return self._fits(self._rdp + self._event_curve(event, count))

    def compose(
        self,
        event: DpEvent,
        count: int = 1,
        *,
        stage: str | None = None,
        label: str | None = None,
    ) -> LedgerEntry:
        """Charge `count` runs of `event`, after checking them against the budget.

        Args:
            event: the mechanism (see `events`).
            count: how many independent runs (a positive int).
            stage: the run stage spending (for the ledger).
            label: what the spend is for (for the ledger and error messages).

        Returns:
            The recorded ledger entry.

        Raises:
            BudgetExceededError: if the spend would exceed the budget; nothing is recorded.
            PrivacyError: on a bad event or count.
        """
        count = _check_count(count)
        added = self._event_curve(event, count)
        total = self._rdp + added
        if not self._fits(total):
            raise BudgetExceededError(self._refusal(event, count, label, added, total))
        self._rdp = total
        eps_after = None if self._budget is None else self.epsilon(self._budget[1])
        entry = LedgerEntry(
            stage=stage,
            label=label,
            event=MappingProxyType(dict(event.to_dict())),
            count=count,
            epsilon_after=eps_after,
        )
        self._entries.append(entry)
        logger.debug(
            "privacy spend recorded: %s (epsilon after: %s)",
            _describe(event, count, label),
            eps_after,
        )
        if self.on_spend is not None:
            self.on_spend(entry)
        return entry

    def _refusal(
        self,
        event: DpEvent,
        count: int,
        label: str | None,
        added: NDArray[np.float64],
        total: NDArray[np.float64],
    ) -> str:
        eps_budget, delta = self._budget  # type: ignore[misc]
        spent = self.epsilon(delta)
        alone = analysis.rdp_to_epsilon(self._orders, added, delta)
        after = analysis.rdp_to_epsilon(self._orders, total, delta)
        return (
            f"privacy budget exceeded by {_describe(event, count, label)}: it alone costs "
            f"epsilon={alone:.6g} and would bring the total to epsilon={after:.6g} at "
            f"delta={delta:g}; spent so far epsilon={spent:.6g} of the budget "
            f"epsilon={eps_budget:g}, remaining {max(0.0, eps_budget - spent):.6g}. Nothing was "
            "recorded. Use more noise or fewer runs (plan_zcdp/plan_gaussian/"
            "plan_subsampled_gaussian size a mechanism to what remains)."
        )

    # -- planning ------------------------------------------------------------------------------

    def _require_budget(self, what: str) -> tuple[float, float]:
        if self._budget is None:
            raise PrivacyError(
                f"{what} needs a budget: create RDPAccountant(budget=(epsilon, delta))"
            )
        return self._budget

    def _target(self, epsilon: float | None, delta: float | None) -> tuple[float, float]:
        if epsilon is None or delta is None:
            eps_budget, delta_budget = self._require_budget("planning without a target")
            epsilon = eps_budget if epsilon is None else epsilon
            delta = delta_budget if delta is None else delta
        return _check_budget((epsilon, delta), "planning target")

    def plan_zcdp(self, epsilon: float | None = None, delta: float | None = None) -> float:
        """The largest ρ such that composing `ZCDP(rho)` keeps ε(δ) <= `epsilon`, less a margin.

        Accounts for everything already spent. With a budget, the result also fits the budget.
        The result is `PLAN_MARGIN` (relative) below the exact largest ρ, so that spends derived
        from it by floating-point arithmetic (Gaussian noise sqrt(k / (2ρ)), an exponential
        mechanism's sqrt(8ρ)) still pass the exact budget filter.

        Args:
            epsilon: target total ε (default: the budget's).
            delta: δ at which the target holds (default: the budget's).

        Raises:
            BudgetExceededError: if no positive ρ fits.
            PrivacyError: without a target and without a budget.
        """
        targets = [self._target(epsilon, delta)]
        if self._budget is not None:
            targets.append(self._budget)
        rho = min(analysis.max_zcdp_rho(self._orders, self._rdp, eps, dl) for eps, dl in targets)
        if not rho > 0.0:
            eps, dl = targets[0]
            spent = self.epsilon(dl)
            why = (
                f" (the order grid, up to order {self._orders[-1]:g}, cannot certify an epsilon "
                "this small at this delta)"
                if spent < eps
                else ""
            )
            raise BudgetExceededError(
                f"no zCDP spend fits: epsilon spent so far is {spent:.6g} at delta={dl:g}, "
                f"target epsilon={eps:g}{why}"
            )
        # Leave the margin, then confirm against the exact arithmetic of `compose`.
        rho *= 1.0 - PLAN_MARGIN
        step = 1e-15
        while not self._fits_all(self._rdp + ZCDP(rho).rdp(self._orders), targets):
            rho *= 1.0 - step
            step = min(2.0 * step, 0.5)
        return rho

    def plan_gaussian(
        self,
        count: int,
        epsilon: float | None = None,
        delta: float | None = None,
        sensitivity: float = 1.0,
    ) -> float:
        """The smallest Gaussian noise such that `count` Gaussian mechanisms fit the target.

        Args:
            count: how many Gaussian mechanisms will run.
            epsilon: target total ε (default: the budget's).
            delta: δ at which the target holds (default: the budget's).
            sensitivity: the L2 sensitivity of each query.

        Returns:
            The noise standard deviation, σ × `sensitivity`, where σ is the smallest noise
            multiplier that fits (with the default sensitivity 1, the noise multiplier itself).
            Charge it as `Gaussian(noise_multiplier=result / sensitivity)`.

        Raises:
            BudgetExceededError: if nothing fits.
            PrivacyError: on bad arguments.
        """
        count = _check_count(count)
        if isinstance(sensitivity, bool) or not (
            isinstance(sensitivity, numbers.Real) and math.isfinite(sensitivity) and sensitivity > 0
        ):
            raise PrivacyError(f"sensitivity must be positive and finite, got {sensitivity!r}")
        sensitivity = float(sensitivity)
        targets = [self._target(epsilon, delta)]
        if self._budget is not None:
            targets.append(self._budget)
        rho = self.plan_zcdp(*targets[0])
        # count Gaussians of multiplier σ are exactly (count / (2σ²))-zCDP.
        noise = math.sqrt(count / (2.0 * rho)) * sensitivity
        step = 1e-15
        while not self._fits_all(
            self._rdp + count * Gaussian(noise / sensitivity).rdp(self._orders), targets
        ):
            noise *= 1.0 + step
            step = min(2.0 * step, 0.5)
        return noise

    def plan_subsampled_gaussian(
        self,
        sampling_rate: float,
        steps: int,
        epsilon: float | None = None,
        delta: float | None = None,
    ) -> float:
        """The smallest noise multiplier such that `steps` subsampled Gaussians fit the target.

        This sizes DP-SGD: `steps` runs of `SubsampledGaussian(sampling_rate, σ)` (Poisson
        sampling with rate `sampling_rate`, noise σ × clipping norm) after everything already
        spent. The RDP curve falls as σ grows, so log σ is found by regula falsi (Illinois)
        between a multiplier that does not fit and one that does, with the same arithmetic as
        `compose`, until the bracket is narrower than `SUBSAMPLED_PLAN_RTOL` (relative) or ε
        is within 1e-10 of the target; the one returned fits. The unsubsampled Gaussian of
        `plan_gaussian` starts the bracket from above.

        Args:
            sampling_rate: q in (0, 1], the probability that a record is in a step's batch.
            steps: how many steps (subsampled Gaussian mechanisms) will run.
            epsilon: target total ε (default: the budget's).
            delta: δ at which the target holds (default: the budget's).

        Returns:
            σ; charge the run as `compose(SubsampledGaussian(sampling_rate, σ), count=steps)`.

        Raises:
            BudgetExceededError: if nothing fits.
            PrivacyError: on bad arguments.
        """
        steps = _check_count(steps)
        q = SubsampledGaussian(sampling_rate=sampling_rate, noise_multiplier=1.0).sampling_rate
        targets = [self._target(epsilon, delta)]
        if self._budget is not None:
            targets.append(self._budget)

        def excess(log_sigma: float) -> float:
            """max over targets of ε - target ε (<= 0 iff it fits, as `_fits_all` decides)."""
            curve = analysis.rdp_subsampled_gaussian(q, math.exp(log_sigma), self._orders)
            total = self._rdp + steps * curve
            return max(
                analysis.rdp_to_epsilon(self._orders, total, dl) - eps for eps, dl in targets
            )

        # Subsampling never costs more than the plain Gaussian, so its plan fits.
        high = math.log(self.plan_gaussian(steps, *targets[0]))
        g_high = excess(high)
        low, g_low = high, g_high
        for _ in range(64):
            low -= math.log(2.0)
            g_low = excess(low)
            if g_low > 0.0:
                break
        else:  # pragma: no cover - would need an astronomically large target
            return math.exp(low)
        # Illinois (regula falsi) on log σ: the bracket [low, high] always has excess(low) > 0
        # and excess(high) <= 0; stop when it is narrow or ε is at the target to ~1e-10.
        side = 0
        tol = math.log1p(SUBSAMPLED_PLAN_RTOL)
        while high - low > tol and g_high < -1e-10 * targets[0][0]:
            mid = high - g_high * (high - low) / (g_high - g_low)
            if not low < mid < high:
                mid = 0.5 * (low + high)
            g_mid = excess(mid)
            if g_mid <= 0.0:
                high, g_high = mid, g_mid
                if side == 1:
                    g_low /= 2.0
                side = 1
            else:
                low, g_low = mid, g_mid
                if side == -1:
                    g_high /= 2.0
                side = -1
        sigma = math.exp(high)
        # Confirm against the exact arithmetic of `compose` (safe side).
        step = 1e-15
        while not self._fits_all(
            self._rdp + steps * analysis.rdp_subsampled_gaussian(q, sigma, self._orders), targets
        ):
            sigma *= 1.0 + step
            step = min(2.0 * step, 0.5)
        return sigma

    def _fits_all(self, total: NDArray[np.float64], targets: list[tuple[float, float]]) -> bool:
        return all(analysis.rdp_to_epsilon(self._orders, total, dl) <= eps for eps, dl in targets)

    # -- export --------------------------------------------------------------------------------

    def to_dict(self, delta: float | None = None) -> dict[str, Any]:
        """The ledger as JSON-able data.

        Args:
            delta: δ at which to state the final ε (default: the budget's; without either,
                `final` is None).

        Returns:
            `accountant`, `neighbouring`, `budget`, `orders` (grid size and range), `summary`
            (counts by mechanism type and stage), `entries` and `final` (ε, δ).
        """
        if delta is None and self._budget is not None:
            delta = self._budget[1]
        by_type: Counter[str] = Counter()
        by_stage: Counter[str] = Counter()
        for e in self._entries:
            by_type[str(e.event.get("type", "?"))] += e.count
            by_stage[str(e.stage)] += e.count
        return {
            "accountant": "rdp",
            "neighbouring": NEIGHBOURING,
            "budget": None
            if self._budget is None
            else {"epsilon": self._budget[0], "delta": self._budget[1]},
            "orders": {
                "count": int(self._orders.size),
                "min": float(self._orders[0]),
                "max": float(self._orders[-1]),
            },
            "summary": {
                "entries": len(self._entries),
                "mechanisms": sum(e.count for e in self._entries),
                "by_type": dict(by_type),
                "by_stage": dict(by_stage),
            },
            "entries": [e.to_dict() for e in self._entries],
            "final": None
            if delta is None
            else {"epsilon": self.epsilon(delta), "delta": float(delta)},
        }

    def to_json(self, delta: float | None = None, **kwargs: Any) -> str:
        """`to_dict(delta)` as a JSON string; keyword arguments go to `json.dumps`."""
        kwargs.setdefault("indent", 2)
        return json.dumps(self.to_dict(delta), **kwargs)

    def __repr__(self) -> str:
        budget = "none" if self._budget is None else f"{self._budget}"
        return f"RDPAccountant(budget={budget}, entries={len(self._entries)})"
