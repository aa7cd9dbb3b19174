"""Privacy events: frozen descriptions of DP mechanisms that the accountant composes."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from ..errors import PrivacyError
from . import analysis

__all__ = [
    "DpEvent",
    "ExponentialMechanism",
    "Gaussian",
    "Laplace",
    "SubsampledGaussian",
    "ZCDP",
]


@runtime_checkable
class DpEvent(Protocol):
    """What the accountant needs from a mechanism: its RDP curve and a JSON-able description.

    Sensitivities are per record under add/remove-one neighbouring. Plugins may define their
    own events; the built-ins below are frozen dataclasses.
    """

    def rdp(self, orders: NDArray[np.float64]) -> NDArray[np.float64]:
        """The RDP ε(α) of one run of the mechanism at each order α."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """`{"type": <name>, <parameter>: <value>, ...}` for the ledger."""
        ...


def _positive_finite(event: object, name: str, value: object) -> float:
    """Return `value` as a float, or raise PrivacyError naming the parameter and the value."""
    kind = type(event).__name__
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PrivacyError(f"{kind}: {name} must be a real number, got {value!r}")
    out = float(value)
    if not (math.isfinite(out) and out > 0.0):
        raise PrivacyError(f"{kind}: {name} must be positive and finite, got {value!r}")
    return out


class _Event:
    """Shared `to_dict` for the built-in dataclass events."""

    def to_dict(self) -> dict[str, Any]:
        """`{"type": <class name>, <parameter>: <value>, ...}` for the ledger."""
        params = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return {"type": type(self).__name__, **params}


@dataclass(frozen=True)
class Gaussian(_Event):
    """Gaussian noise added to a query of bounded L2 sensitivity.

    Attributes:
        noise_multiplier: σ = noise standard deviation / L2 sensitivity (per record).
    """

    noise_multiplier: float

    def __post_init__(self) -> None:
        value = _positive_finite(self, "noise_multiplier", self.noise_multiplier)
        object.__setattr__(self, "noise_multiplier", value)

    def rdp(self, orders: NDArray[np.float64]) -> NDArray[np.float64]:
        """α / (2σ²) at each order."""
        return analysis.rdp_gaussian(self.noise_multiplier, orders)


@dataclass(frozen=True)
class Laplace(_Event):
    """Laplace noise added to a query of bounded L1 sensitivity (pure ε-DP with ε = 1/b).

    Attributes:
        noise_multiplier: b = Laplace scale / L1 sensitivity (per record).
    """

    noise_multiplier: float

    def __post_init__(self) -> None:
        value = _positive_finite(self, "noise_multiplier", self.noise_multiplier)
        object.__setattr__(self, "noise_multiplier", value)

    def rdp(self, orders: NDArray[np.float64]) -> NDArray[np.float64]:
        """The exact Laplace RDP curve (Mironov 2017, Prop. 6)."""
        return analysis.rdp_laplace(self.noise_multiplier, orders)


@dataclass(frozen=True)
class ZCDP(_Event):
    """Any ρ-zero-concentrated-DP mechanism (Bun & Steinke 2016).

    Attributes:
        rho: ρ > 0.
    """

    rho: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "rho", _positive_finite(self, "rho", self.rho))

    def rdp(self, orders: NDArray[np.float64]) -> NDArray[np.float64]:
        """ρα at each order."""
        return analysis.rdp_zcdp(self.rho, orders)


@dataclass(frozen=True)
class ExponentialMechanism(_Event):
    """The exponential mechanism, sampling with probability ∝ exp(ε·u / (2Δu)).

    Accounted as ε-bounded-range, which implies ρ = ε²/8 zCDP (Cesar & Rogers 2021).

    Attributes:
        epsilon: the mechanism's ε (its pure-DP parameter).
    """

    epsilon: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilon", _positive_finite(self, "epsilon", self.epsilon))

    @property
    def rho(self) -> float:
        """The zCDP parameter ε²/8."""
        return self.epsilon**2 / 8.0

    def rdp(self, orders: NDArray[np.float64]) -> NDArray[np.float64]:
        """(ε²/8)·α at each order."""
        # Cesar & Rogers 2021 (ALT), "Bounding, Concentrating, and Truncating": ε-BR => ε²/8-zCDP.
        return analysis.rdp_zcdp(self.rho, orders)


@dataclass(frozen=True)
class SubsampledGaussian(_Event):
    """Gaussian mechanism run on a Poisson subsample (each record kept independently w.p. q).

    This is one step of DP-SGD: the noise multiplier is relative to the L2 sensitivity of the
    sum over the sampled records (the clipping norm).

    Attributes:
        sampling_rate: q in (0, 1].
        noise_multiplier: σ = noise standard deviation / L2 sensitivity.
    """

    sampling_rate: float
    noise_multiplier: float

    def __post_init__(self) -> None:
        q = _positive_finite(self, "sampling_rate", self.sampling_rate)
        if q > 1.0:
            raise PrivacyError(
                f"SubsampledGaussian: sampling_rate must be in (0, 1], got {self.sampling_rate!r}"
            )
        object.__setattr__(self, "sampling_rate", q)
        value = _positive_finite(self, "noise_multiplier", self.noise_multiplier)
        object.__setattr__(self, "noise_multiplier", value)

    def rdp(self, orders: NDArray[np.float64]) -> NDArray[np.float64]:
        """Mironov, Talwar & Zhang 2019 curve; equals `Gaussian` when q = 1."""
        return analysis.rdp_subsampled_gaussian(self.sampling_rate, self.noise_multiplier, orders)
