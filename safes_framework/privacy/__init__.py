"""Privacy: mechanism events, the RDP accountant (ledger, filter, planning), noise sources."""

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
from .noise import NoiseSource, SecureNoise, SeededNoise

__all__ = [
    "DEFAULT_ORDERS",
    "ZCDP",
    "BudgetExceededError",
    "DpEvent",
    "ExponentialMechanism",
    "Gaussian",
    "Laplace",
    "LedgerEntry",
    "NoiseSource",
    "PrivacyError",
    "RDPAccountant",
    "SecureNoise",
    "SeededNoise",
    "SubsampledGaussian",
    "default_orders",
    "max_zcdp_rho",
    "rdp_to_delta",
    "rdp_to_epsilon",
    "zcdp_rho_for",
]
