"""Tools of the privacy attack tests: Clopper-Pearson bounds, empirical epsilon, lattice test."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from scipy.stats import beta


def clopper_pearson(successes: int, trials: int, alpha: float) -> tuple[float, float]:
    """Two-sided (1 - alpha) Clopper-Pearson interval for a binomial proportion."""
    k, n = successes, trials
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def epsilon_lower_bound(
    in_d: Iterable[bool], in_d_prime: Iterable[bool], delta: float, alpha: float = 0.01
) -> float:
    """A (1 - alpha)-confident lower bound on epsilon from one distinguishing event S.

    (epsilon, delta)-DP needs P[M(D) in S] <= e^epsilon P[M(D') in S] + delta, and the same with
    D and D' swapped; with Clopper-Pearson bounds on both probabilities (Jagielski, Ullman &
    Oprea 2020), the largest epsilon this forces, in either direction.
    """
    a, b = np.asarray(list(in_d), bool), np.asarray(list(in_d_prime), bool)
    bound = 0.0
    for x, y in ((a, b), (b, a)):
        lo, _ = clopper_pearson(int(x.sum()), x.size, alpha / 2)
        _, hi = clopper_pearson(int(y.sum()), y.size, alpha / 2)
        if lo - delta > 0 and hi > 0:
            bound = max(bound, math.log((lo - delta) / hi))
    return bound


def granularity(values: np.ndarray) -> np.ndarray:
    """For each finite value y, the smallest k >= 0 with y * 2**k an integer (0 for integers).

    Floating-point samplers leave their outputs on value-dependent lattices (Mironov 2012):
    c + noise in floating point has a granularity set by c's exponent, noise alone by its own.
    """
    v = np.asarray(values, dtype=np.float64)
    out = np.zeros(v.shape, dtype=np.int64)
    frac = v - np.floor(v)
    for k in range(1, 1100):
        todo = frac != 0
        if not todo.any():
            break
        out[todo] = k
        frac = np.where(todo, frac * 2.0, 0.0)
        frac = frac - np.floor(frac)
    return out


def lattice_impossible_share(from_d: np.ndarray, from_d_prime: np.ndarray) -> float:
    """Share of D's outputs whose granularity no output of D' reaches, nor vice versa (max).

    An output finer than anything the other input ever produced is, as far as the samples go,
    impossible under it: observing it identifies the input outright.
    """
    g, h = granularity(from_d), granularity(from_d_prime)
    return max(float((g > h.max()).mean()), float((h > g.max()).mean()))
