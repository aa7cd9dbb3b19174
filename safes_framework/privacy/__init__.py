"""Privacy accounting: mechanism events, the RDP accountant (ledger, budget filter, planning)."""

from ..errors import BudgetExceededError, PrivacyError
from .accountant import LedgerEntry, RDPAccountant
from .analysis import (
    DEFAULT_ORDERS,
    default_orders,
    max_zcdp_rho,
    rdp_to_delta,
    rdp_to_epsilon,
    zcdp_rho_for,
)
from .events import ZCDP, DpEvent, ExponentialMechanism, Gaussian, Laplace, SubsampledGaussian

__all__ = [
    "DEFAULT_ORDERS",
    "ZCDP",
    "BudgetExceededError",
    "DpEvent",
    "ExponentialMechanism",
    "Gaussian",
    "Laplace",
    "LedgerEntry",
    "PrivacyError",
    "RDPAccountant",
    "SubsampledGaussian",
    "default_orders",
    "max_zcdp_rho",
    "rdp_to_delta",
    "rdp_to_epsilon",
    "zcdp_rho_for",
]
