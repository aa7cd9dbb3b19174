"""Noise sources of the DP primitives: exact noise from OS entropy, or seeded noise for experiments.

A release is private only if its noise cannot be reproduced. `SecureNoise` (the default) draws
exact noise through OpenDP's Rust core, whose random bits come from a cryptographically secure
generator seeded by the operating system; they never reach Python, let alone a file.
`SeededNoise` makes a run reproducible from a seed the caller holds: it uses numpy's
floating-point samplers, so it is for experiments (sweeps, tests); the privacy report says
so, and the guarantee holds only while the seed stays secret.

Both sources draw the same distributions:

- `discrete_gaussian`: integer counts plus discrete Gaussian noise N_Z(0, σ²) (Canonne, Kamath &
  Steinke 2020). For an integer shift Δ its Rényi divergence of order α is αΔ²/(2σ²) (CKS20,
  Section 2), the continuous Gaussian's curve; independent coordinates add, so an integer
  query of L2 sensitivity Δ costs exactly what the accountant's `Gaussian` event charges.
- `noisy_max`: argmax of integer scores plus Gumbel noise of a given scale, which is the
  exponential mechanism (McSherry & Talwar 2007) with ε = 2Δ / scale for score sensitivity Δ.
"""

from __future__ import annotations

import importlib.metadata
import math
import secrets
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import PrivacyError

__all__ = ["NoiseSource", "SecureNoise", "SeededNoise", "noise_source"]

#: Largest |value| a noisy integer may reach (OpenDP works on signed 64-bit integers).
INT_LIMIT = 2**62


def _check_sigma(sigma: float) -> float:
    if isinstance(sigma, bool) or not (isinstance(sigma, (int, float, np.floating))):
        raise PrivacyError(f"noise std sigma must be a real number, got {sigma!r}")
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma > 0):
        raise PrivacyError(f"noise std sigma must be positive and finite, got {sigma!r}")
    return sigma


def _check_counts(counts: np.ndarray) -> np.ndarray:
    arr = np.asarray(counts)
    if arr.dtype.kind not in "iu":
        raise PrivacyError(f"discrete Gaussian noise needs integer counts, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False).ravel()
    if arr.size and int(np.abs(arr).max()) > INT_LIMIT:
        raise PrivacyError(f"counts above {INT_LIMIT} cannot be measured exactly")
    return arr


def _check_scores(scores: Sequence[int]) -> list[int]:
    out = [int(s) for s in scores]
    if not out:
        raise PrivacyError("noisy max needs at least one score")
    if max(abs(s) for s in out) > INT_LIMIT:
        raise PrivacyError(f"selection scores above {INT_LIMIT} cannot be compared exactly")
    return out


class NoiseSource(ABC):
    """Where a run's DP noise comes from. One instance per run; primitives call it.

    Attributes:
        used: purposes for which a mechanism asked for a secret seed (`secret_seed`), in order;
            their noise is the mechanism's own (floating-point) and the report says so.
    """

    def __init__(self) -> None:
        self.used: list[str] = []

    @abstractmethod
    def discrete_gaussian(self, counts: np.ndarray, sigma: float) -> np.ndarray:
        """`counts` (integers) plus i.i.d. discrete Gaussian noise N_Z(0, sigma²), as int64."""

    @abstractmethod
    def noisy_max(self, scores: Sequence[int], scale: float) -> int:
        """Index of the largest of `scores` (integers) plus i.i.d. Gumbel(scale) noise."""

    @abstractmethod
    def _new_seed(self) -> np.random.SeedSequence: ...

    def secret_seed(self, purpose: str) -> np.random.SeedSequence:
        """A seed for a mechanism that draws its own noise (e.g. DP-SGD through torch).

        It comes from OS entropy for `SecureNoise` and from the caller's seed for `SeededNoise`;
        it is never recorded. The purpose is listed in the privacy report, whose noise section
        then says that this part of the noise is the mechanism's own floating-point noise.
        """
        if not isinstance(purpose, str) or not purpose:
            raise PrivacyError("secret_seed needs a purpose (a non-empty string)")
        self.used.append(purpose)
        return self._new_seed()

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """The noise section of the privacy report (what was drawn, from which entropy)."""

    def _mechanisms_note(self) -> dict[str, Any]:
        if not self.used:
            return {}
        return {
            "own_noise": {
                "purposes": sorted(set(self.used)),
                "note": "these mechanisms drew their own floating-point noise from a secret "
                "seed of this source (never recorded)",
            }
        }


class SecureNoise(NoiseSource):
    """Exact noise from operating-system entropy (the release path).

    Discrete Gaussian measurements and Gumbel noisy max are OpenDP's (`make_gaussian` on
    64-bit integers, `make_noisy_max` under zCDP): exact samplers over arbitrary-precision
    arithmetic in OpenDP's Rust core, whose random bits come from a cryptographically secure
    generator seeded by the operating system. Nothing about the draws is visible to, or
    recorded by, this library.
    """

    kind = "secure"

    def __init__(self) -> None:
        super().__init__()
        import opendp.prelude as dp

        dp.enable_features("contrib")
        self._dp = dp
        self._int_vectors = (
            dp.vector_domain(dp.atom_domain(T="i64")),
            dp.l2_distance(T=float),
        )
        self._score_vectors = (
            dp.vector_domain(dp.atom_domain(T="i64")),
            dp.linf_distance(T="i64"),
        )

    def discrete_gaussian(self, counts: np.ndarray, sigma: float) -> np.ndarray:
        sigma = _check_sigma(sigma)
        values = _check_counts(counts)
        if values.size == 0:
            return values.copy()
        meas = self._dp.m.make_gaussian(*self._int_vectors, scale=sigma)
        return np.asarray(meas(values.tolist()), dtype=np.int64)

    def noisy_max(self, scores: Sequence[int], scale: float) -> int:
        scale = _check_sigma(scale)
        values = _check_scores(scores)
        meas = self._dp.m.make_noisy_max(
            *self._score_vectors, self._dp.zero_concentrated_divergence(), scale=scale
        )
        return int(meas(values))

    def _new_seed(self) -> np.random.SeedSequence:
        return np.random.SeedSequence(secrets.randbits(128))

    def describe(self) -> dict[str, Any]:
        return {
            "source": "secure",
            "entropy": "operating system; not recorded anywhere",
            "measurements": "exact discrete Gaussian (Canonne, Kamath & Steinke 2020)",
            "selection": "exact Gumbel report-noisy-max (the exponential mechanism)",
            "implementation": f"OpenDP {_version('opendp')} (make_gaussian, make_noisy_max)",
            **self._mechanisms_note(),
        }


class SeededNoise(NoiseSource):
    """Reproducible floating-point noise from a seed the caller holds, for experiments.

    The discrete Gaussian is sampled by Canonne, Kamath & Steinke's rejection algorithm (a
    discrete Laplace proposal, accepted with probability exp(-(|y| - σ²/t)² / (2σ²))) with
    numpy's floating-point samplers, and noisy max adds numpy Gumbel draws. The distributions
    match `SecureNoise` up to floating-point rounding, which is not exact: floating-point
    samplers leave a lattice an attacker can test (Mironov 2012). Never use it for a release.

    Args:
        seed: the run's noise seed sequence (derived from the caller's secret seed).
    """

    kind = "seeded"

    def __init__(self, seed: np.random.SeedSequence) -> None:
        super().__init__()
        if not isinstance(seed, np.random.SeedSequence):
            raise PrivacyError(f"SeededNoise needs a numpy SeedSequence, got {seed!r}")
        self._seed = seed

    def _rng(self) -> np.random.Generator:
        # One stream per call: a refused primitive call draws nothing and shifts nothing.
        return np.random.default_rng(self._seed.spawn(1)[0])

    def discrete_gaussian(self, counts: np.ndarray, sigma: float) -> np.ndarray:
        sigma = _check_sigma(sigma)
        values = _check_counts(counts)
        return values + sample_discrete_gaussian(self._rng(), sigma, values.size)

    def noisy_max(self, scores: Sequence[int], scale: float) -> int:
        scale = _check_sigma(scale)
        values = np.asarray(_check_scores(scores), dtype=np.float64)
        gumbel = self._rng().gumbel(scale=scale, size=values.size)
        return int(np.argmax(values + gumbel))

    def _new_seed(self) -> np.random.SeedSequence:
        return self._seed.spawn(1)[0]

    def describe(self) -> dict[str, Any]:
        return {
            "source": "seeded",
            "entropy": "a seed held by the caller (not recorded); the guarantee holds only "
            "while that seed stays secret",
            "measurements": "discrete Gaussian, floating-point noise, for experiments",
            "selection": "Gumbel noisy max, floating-point noise, for experiments",
            "implementation": f"numpy {np.__version__} (PCG64)",
            **self._mechanisms_note(),
        }


def sample_discrete_gaussian(rng: np.random.Generator, sigma: float, size: int) -> np.ndarray:
    """`size` draws of N_Z(0, sigma²) by CKS20's Algorithm 3, vectorised, in floating point.

    Proposal: a discrete Laplace of scale t = floor(sigma) + 1 (the difference of two geometric
    variables); acceptance probability exp(-(|y| - sigma²/t)² / (2 sigma²)); about 1/2 or more
    of the proposals are accepted, so a few vectorised passes suffice.
    """
    out = np.empty(size, dtype=np.int64)
    t = math.floor(sigma) + 1
    p = -math.expm1(-1.0 / t)
    var = sigma * sigma
    filled = 0
    while filled < size:
        want = size - filled
        m = max(16, int(want * 2.2))
        y = rng.geometric(p, m) - rng.geometric(p, m)
        accept = np.exp(-((np.abs(y) - var / t) ** 2) / (2.0 * var))
        kept = y[rng.random(m) < accept][:want]
        out[filled : filled + kept.size] = kept
        filled += kept.size
    return out


def noise_source(seed: int | np.random.SeedSequence | None) -> NoiseSource:
    """`SecureNoise()` for None, else `SeededNoise` from the caller's seed."""
    if seed is None:
        return SecureNoise()
    if isinstance(seed, np.random.SeedSequence):
        return SeededNoise(seed)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PrivacyError(f"seed must be a non-negative integer or None, got {seed!r}")
    return SeededNoise(np.random.SeedSequence(int(seed)))


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a core dependency
        return "unknown"
