"""Pure Rényi-DP mathematics: RDP curves of mechanisms and their conversion to (ε, δ)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from ..errors import PrivacyError

FloatArray = NDArray[np.float64]

__all__ = [
    "DEFAULT_ORDERS",
    "check_orders",
    "default_orders",
    "max_zcdp_rho",
    "rdp_gaussian",
    "rdp_laplace",
    "rdp_subsampled_gaussian",
    "rdp_to_delta",
    "rdp_to_epsilon",
    "rdp_zcdp",
    "zcdp_rho_for",
]

# Orders above these limits get the (valid, looser) plain Gaussian bound for the subsampled
# Gaussian instead of the series, whose cost grows linearly with the order.
_MAX_EXACT_INTEGER_ORDER = 100_000
_MAX_SERIES_FRACTIONAL_ORDER = 10_000
# Fractional-order series: first truncation length beyond ceil(alpha), and the largest one.
_SERIES_EXTRA_TERMS = 64
_SERIES_MAX_TERMS = 1 << 12
# Stop lengthening the series once the tail is known to this fraction of log A_alpha.
_SERIES_REL_TOL = 1e-9
# Added to the series' log A_alpha to cover floating-point rounding in the log-sum.
_SERIES_ROUNDING = 1e-14
# Work in chunks: at most this many binomial terms (integer orders) or orders (fractional).
_CHUNK_TERMS = 1 << 21
_CHUNK_ORDERS = 128


def _build_default_orders() -> FloatArray:
    # Geometric in (alpha - 1) with ratio ~1.03 from 1.001 to 1e4, so the grid's epsilon is
    # within ~1e-4 (relative) of the continuous optimum; orders >= 64 are rounded to integers
    # (closed form for the subsampled Gaussian); every integer 2..64 is included as well.
    fine = 1.0 + np.geomspace(1e-3, 1e4 - 1.0, 540)
    fine = np.where(fine >= 64.0, np.round(fine), fine)
    grid = np.unique(np.concatenate([fine, np.arange(2.0, 65.0)]))
    grid.setflags(write=False)
    return grid


DEFAULT_ORDERS: FloatArray = _build_default_orders()


def default_orders() -> FloatArray:
    """The default grid of Rényi orders (a fresh, writable copy).

    About 600 orders: fine near 1 (from 1.001), every integer from 2 to 64, and a geometric
    grid of integers up to 10,000 (tiny ρ and small δ need orders in the hundreds or thousands).
    """
    return DEFAULT_ORDERS.copy()


def check_orders(orders: ArrayLike) -> FloatArray:
    """Validate a grid of Rényi orders and return it sorted, unique, as float64.

    Raises:
        PrivacyError: if the grid is empty, not one-dimensional, or has an order that is not a
            finite number above 1.
    """
    arr = np.asarray(orders, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise PrivacyError(f"orders must be a non-empty 1-D array, got shape {arr.shape}")
    bad = ~(np.isfinite(arr) & (arr > 1.0))
    if bad.any():
        raise PrivacyError(f"every Rényi order must be finite and > 1, got {arr[bad][0]!r}")
    return np.unique(arr)


def _as_alpha(orders: ArrayLike) -> FloatArray:
    arr = np.asarray(orders, dtype=np.float64)
    if arr.ndim != 1:
        raise PrivacyError(f"orders must be a 1-D array, got shape {arr.shape}")
    if not (np.isfinite(arr) & (arr >= 1.0)).all():
        raise PrivacyError("every Rényi order must be finite and >= 1")
    return arr


# ---------------------------------------------------------------------------------------------
# RDP curves of the mechanisms (all under add/remove-one neighbouring, sensitivity per record)
# ---------------------------------------------------------------------------------------------


def rdp_gaussian(noise_multiplier: float, orders: ArrayLike) -> FloatArray:
    """RDP of the Gaussian mechanism with noise std = `noise_multiplier` × L2 sensitivity.

    Args:
        noise_multiplier: σ, the noise standard deviation divided by the L2 sensitivity.
        orders: Rényi orders α >= 1.

    Returns:
        α / (2σ²) at each order.
    """
    alpha = _as_alpha(orders)
    # Mironov 2017, "Rényi Differential Privacy", Gaussian mechanism: D_α = α Δ² / (2σ²).
    return alpha / (2.0 * noise_multiplier**2)


def rdp_zcdp(rho: float, orders: ArrayLike) -> FloatArray:
    """RDP curve of a ρ-zCDP mechanism: ρα at each order."""
    alpha = _as_alpha(orders)
    # Bun & Steinke 2016, "Concentrated Differential Privacy", Def. 1.1: D_α <= ρα for all α > 1.
    return rho * alpha


def rdp_laplace(noise_multiplier: float, orders: ArrayLike) -> FloatArray:
    """RDP of the Laplace mechanism with scale = `noise_multiplier` × L1 sensitivity.

    Uses the exact expression, written so that it neither overflows at large orders nor loses
    precision near α = 1 (where the limit, the KL divergence, is used for α = 1 exactly).

    Args:
        noise_multiplier: b, the Laplace scale divided by the L1 sensitivity (ε = 1/b).
        orders: Rényi orders α >= 1.

    Returns:
        The Rényi divergence of order α between Laplace(0, b) and Laplace(1, b).
    """
    alpha = _as_alpha(orders)
    eps = 1.0 / noise_multiplier
    # Mironov 2017, Prop. 6: D_α = 1/(α-1) log[α/(2α-1) e^{(α-1)ε} + (α-1)/(2α-1) e^{-αε}]
    # rewritten as ε + log1p((α-1)/(2α-1) · expm1((1-2α)ε)) / (α-1), overflow-free.
    am1 = alpha - 1.0
    c = np.expm1((1.0 - 2.0 * alpha) * eps) / (2.0 * alpha - 1.0)
    is_one = am1 == 0.0
    safe_am1 = np.where(is_one, 1.0, am1)
    out = eps + np.log1p(safe_am1 * c) / safe_am1
    # Limit α -> 1 (KL divergence): ε + e^{-ε} - 1.
    out = np.where(is_one, eps + math.expm1(-eps), out)
    # Bun & Steinke 2016, Prop. 3.3: ε-DP implies (ε²/2)-zCDP; with D_α <= ε this also caps the
    # rounding error of the expression above when ε is tiny (and keeps it non-negative).
    return np.clip(out, 0.0, np.minimum(eps, alpha * eps * eps / 2.0))


def _logsumexp_rows(x: FloatArray) -> FloatArray:
    """log Σ_j exp(x[:, j]) for each row (rows that are all -inf give -inf)."""
    peak = np.max(x, axis=1)
    safe = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.sum(np.exp(x - safe[:, None]), axis=1))


def _log_abs_binom(n: ArrayLike, k: ArrayLike) -> FloatArray:
    """log |C(n, k)| for real n (not a negative integer) and integer k >= 0."""
    n = np.asarray(n, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    return special.gammaln(n + 1.0) - special.gammaln(k + 1.0) - special.gammaln(n - k + 1.0)


def _log_expm1(x: FloatArray) -> FloatArray:
    """log(e^x - 1) for x > 0, stable for small and large x."""
    small = np.minimum(x, 1.0)
    return np.where(x > 1.0, x + np.log1p(-np.exp(-x)), np.log(np.expm1(small)))


@lru_cache(maxsize=8)
def _log_factorials(n: int) -> FloatArray:
    """log k! for k = 0..n (read-only)."""
    out = special.gammaln(np.arange(n + 1, dtype=np.float64) + 1.0)
    out.setflags(write=False)
    return out


def _sgm_log_a_integer(q: float, sigma: float, alphas: NDArray[np.int64]) -> FloatArray:
    """log A_α of the Poisson-subsampled Gaussian at integer orders α >= 2 (exact)."""
    # Mironov, Talwar & Zhang 2019, Sec. 3.2: A_α = Σ_k C(α,k) (1-q)^{α-k} q^k e^{(k²-k)/(2σ²)}.
    # Since Σ_k C(α,k)(1-q)^{α-k} q^k = 1, A_α - 1 = Σ_{k>=2} C(α,k)(1-q)^{α-k} q^k expm1(...):
    # all terms positive, so the small quantity log A_α keeps full relative precision.
    top = int(alphas.max())
    log_fact = _log_factorials(1 << max(6, (top - 1).bit_length()))
    kk = np.arange(top + 1, dtype=np.float64)
    per_k = (
        kk * math.log(q)
        - log_fact[: top + 1]
        + _log_expm1(np.maximum(kk * (kk - 1.0), 2.0) / (2.0 * sigma**2))
    )
    lengths = alphas - 1  # k = 2..α
    starts = np.cumsum(lengths) - lengths
    k = np.arange(int(lengths.sum())) - np.repeat(starts, lengths) + 2
    a = np.repeat(alphas, lengths)
    log_terms = log_fact[a] - log_fact[a - k] + (a - k) * math.log1p(-q) + per_k[k]
    peak = np.maximum.reduceat(log_terms, starts)
    sums = np.add.reduceat(np.exp(log_terms - np.repeat(peak, lengths)), starts)
    return np.logaddexp(0.0, peak + np.log(sums))


def _log_gauss_factor(u: FloatArray, z0: float, sigma: float) -> FloatArray:
    """log[e^{(u² - 2 u z0)/(2σ²)} Φ((z0 - u)/σ)], without cancellation for large u or z0.

    With x = (u - z0)/σ this is log M(x) - z0²/(2σ²), where M(x) = e^{x²/2} Φ(-x) = erfcx(x/√2)/2.
    """
    x = (u - z0) / sigma
    pos = x >= 0.0
    with np.errstate(over="ignore"):
        via_erfcx = np.log(0.5 * special.erfcx(np.where(pos, x, 0.0) / math.sqrt(2.0)))
    direct = (u * u - 2.0 * u * z0) / (2.0 * sigma**2) + special.log_ndtr(np.where(pos, 0.0, -x))
    return np.where(pos, via_erfcx - z0 * z0 / (2.0 * sigma**2), direct)


def _sgm_log_terms(
    q: float, sigma: float, alphas: FloatArray, i: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """log of the i-th term of both MTZ series, each over |C(α,i)| (1-q)^α (broadcasting)."""
    z0 = sigma**2 * (math.log1p(-q) - math.log(q)) + 0.5
    # MTZ 2019, Sec. 3.3, with μ0 = N(0, σ²), μ1 = N(1, σ²) and z0 where (1-q)μ0 = qμ1:
    #   A_α = Σ_i C(α,i) (1-q)^{α-i} q^i e^{(i²-i)/(2σ²)} Φ((z0-i)/σ)
    #       + Σ_i C(α,i) (1-q)^i q^{α-i} e^{(j²-j)/(2σ²)} Φ((j-z0)/σ),   j = α - i;
    # factoring out (1-q)^α, the i-th terms are exp(g(i; z0)) and exp(g(i-α; -z0)) below.
    return _log_gauss_factor(i, z0, sigma), _log_gauss_factor(i - alphas, -z0, sigma)


def _sgm_log_a_fractional(q: float, sigma: float, alphas: FloatArray) -> FloatArray:
    """An upper bound on log A_α of the Poisson-subsampled Gaussian at non-integer orders α > 1.

    The two series of Mironov, Talwar & Zhang 2019 (Sec. 3.3) are summed term by term with
    their signs. From i = ceil(α) on, the combined i-th term C(α,i)(1-q)^α [e^{g0} + e^{g1}]
    alternates in sign and decreases in magnitude (|C(α,i)| and both Gaussian factors decrease),
    so the limit lies between consecutive partial sums (Leibniz): the larger of S_N and S_{N+1}
    is a rigorous upper bound, within |term_N| of A_α. N grows until that is below ~1e-9 log A_α.
    """
    out = np.empty_like(alphas)
    todo = np.arange(alphas.size)
    n_terms = int(math.ceil(float(alphas.max()))) + _SERIES_EXTRA_TERMS
    while True:
        a1 = alphas[todo]
        a = a1[:, None]
        i = np.arange(n_terms + 1, dtype=np.float64)[None, :]  # index n_terms: first left out
        g0, g1 = _sgm_log_terms(q, sigma, a, i)
        log_mag = _log_abs_binom(a, i) + np.logaddexp(g0, g1) + a * math.log1p(-q)
        # Sign of C(α, i): positive up to ceil(α), then alternating.
        excess = i - np.ceil(a)
        negative = (excess > 0) & (np.mod(excess, 2.0) == 1.0)
        head, head_neg = log_mag[:, :-1], negative[:, :-1]
        log_pos = _logsumexp_rows(np.where(head_neg, -np.inf, head))
        log_neg = _logsumexp_rows(np.where(head_neg, head, -np.inf))
        ok = log_neg < log_pos
        with np.errstate(divide="ignore", invalid="ignore"):
            log_sum = np.where(ok, log_pos + np.log1p(-np.exp(log_neg - log_pos)), np.inf)
        nxt, nxt_neg = log_mag[:, -1], negative[:, -1]
        total = np.where(nxt_neg, log_sum, np.logaddexp(log_sum, nxt))
        # |term_N| / A bounds how far the upper bound can be from log A_α.
        with np.errstate(invalid="ignore"):
            err = np.exp(nxt - total)
        done = ~ok | (err <= _SERIES_REL_TOL * total + 1e-15 * (a1 - 1.0))
        if n_terms >= _SERIES_MAX_TERMS:
            done[:] = True
        out[todo[done]] = total[done]
        todo = todo[~done]
        if todo.size == 0:
            return out
        n_terms = min(4 * n_terms, max(_SERIES_MAX_TERMS, n_terms))


def _chunked_log_a_integer(q: float, sigma: float, alphas: NDArray[np.int64]) -> FloatArray:
    """`_sgm_log_a_integer` in chunks of at most ~`_CHUNK_TERMS` terms (bounded memory)."""
    out = np.empty(alphas.size)
    order = np.argsort(alphas)
    cum = np.cumsum(alphas[order])
    first = 0
    while first < alphas.size:
        budget = (cum[first - 1] if first else 0) + _CHUNK_TERMS
        last = max(first + 1, int(np.searchsorted(cum, budget, side="right")))
        idx = order[first:last]
        out[idx] = _sgm_log_a_integer(q, sigma, alphas[idx])
        first = last
    return out


def _chunked_log_a_fractional(q: float, sigma: float, alphas: FloatArray) -> FloatArray:
    """`_sgm_log_a_fractional` on groups of similar orders (each group sizes its own series)."""
    out = np.empty(alphas.size)
    order = np.argsort(alphas)
    for start in range(0, alphas.size, _CHUNK_ORDERS):
        idx = order[start : start + _CHUNK_ORDERS]
        out[idx] = _sgm_log_a_fractional(q, sigma, alphas[idx])
    return out


@lru_cache(maxsize=512)
def _sgm_cached(q: float, sigma: float, orders_bytes: bytes) -> FloatArray:
    alpha = np.frombuffer(orders_bytes, dtype=np.float64)
    gauss = alpha / (2.0 * sigma**2)
    out = gauss.copy()
    whole = alpha == np.floor(alpha)
    is_int = whole & (alpha >= 2.0) & (alpha <= _MAX_EXACT_INTEGER_ORDER)
    is_frac = ~whole & (alpha > 1.0) & (alpha <= _MAX_SERIES_FRACTIONAL_ORDER)
    if is_int.any():
        a_int = alpha[is_int].astype(np.int64)
        out[is_int] = _chunked_log_a_integer(q, sigma, a_int) / (a_int - 1.0)
    if is_frac.any():
        a_frac = alpha[is_frac]
        # Allowance for rounding in the series' log-sum (log A_α can be ~1e-16 in size).
        series = _chunked_log_a_fractional(q, sigma, a_frac) + _SERIES_ROUNDING
        # log A_α is convex in α with log A_1 = 0 (Hölder), so interpolating the exact
        # integer values either side is also an upper bound, and a precise one when A_α ≈ 1.
        lo, hi = np.floor(a_frac).astype(np.int64), np.ceil(a_frac).astype(np.int64)
        ints = np.unique(np.concatenate([lo, hi]))
        ints = ints[ints >= 2]
        log_a = np.zeros(int(hi.max()) + 1)
        if ints.size:
            log_a[ints] = _chunked_log_a_integer(q, sigma, ints)
        chord = (hi - a_frac) * log_a[lo] + (a_frac - lo) * log_a[hi]
        out[is_frac] = np.minimum(series, chord) / (a_frac - 1.0)
    # Subsampling never hurts (quasi-convexity of Rényi divergence), so the Gaussian curve is
    # also a valid bound; it is what α = 1 and orders beyond the limits above get.
    out = np.clip(out, 0.0, gauss)
    out.setflags(write=False)
    return out


def rdp_subsampled_gaussian(
    sampling_rate: float, noise_multiplier: float, orders: ArrayLike
) -> FloatArray:
    """RDP of the Poisson-subsampled Gaussian mechanism (each record kept with prob. q).

    Integer orders use the exact binomial closed form; fractional orders use the two-sided
    series with a rigorous bound on its truncated tail. Both are evaluated in log space. At
    α = 1, and at orders above 100,000 (integer) or 10,000 (fractional), the unsampled Gaussian
    bound α/(2σ²) is used. With q = 1 the result is exactly the Gaussian curve.

    Args:
        sampling_rate: q in (0, 1], the Poisson sampling probability of each record.
        noise_multiplier: σ, noise std divided by the L2 sensitivity of the summed query.
        orders: Rényi orders α >= 1.

    Returns:
        An upper bound (exact up to floating point at integer orders) on the RDP at each order.
    """
    alpha = _as_alpha(orders)
    if sampling_rate == 1.0:
        return rdp_gaussian(noise_multiplier, alpha)
    # Mironov, Talwar & Zhang 2019, "Rényi DP of the Sampled Gaussian Mechanism", Sec. 3:
    # D_α = log(A_α) / (α - 1) under add/remove-one neighbouring.
    cached = _sgm_cached(float(sampling_rate), float(noise_multiplier), alpha.tobytes())
    return cached.copy()


# ---------------------------------------------------------------------------------------------
# Conversion RDP -> (ε, δ) and planning
# ---------------------------------------------------------------------------------------------


def _is_real(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _check_delta(delta: float) -> None:
    if not (_is_real(delta) and 0.0 < float(delta) < 1.0):
        raise PrivacyError(f"delta must be a number in (0, 1), got {delta!r}")


def _check_epsilon(epsilon: float, *, strict: bool = False) -> None:
    ok = _is_real(epsilon) and math.isfinite(epsilon)
    if not ok or epsilon < 0 or (strict and epsilon == 0):
        kind = "positive" if strict else "non-negative"
        raise PrivacyError(f"epsilon must be a finite {kind} number, got {epsilon!r}")


def _usable(orders: ArrayLike, rdp: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Orders > 1 with a finite RDP value (others give no bound), RDP clipped at 0."""
    a = np.asarray(orders, dtype=np.float64)
    r = np.asarray(rdp, dtype=np.float64)
    if a.shape != r.shape or a.ndim != 1:
        raise PrivacyError(f"orders {a.shape} and rdp {r.shape} must be 1-D of the same length")
    keep = np.isfinite(r) & np.isfinite(a) & (a > 1.0)
    return a[keep], np.maximum(r[keep], 0.0)


def _all_zero(rdp: ArrayLike) -> bool:
    """Whether the curve is exactly zero everywhere (nothing composed: identical outputs)."""
    return not np.asarray(rdp, dtype=np.float64).any()


def _epsilon_per_order(a: FloatArray, r: FloatArray, delta: float) -> FloatArray:
    # Balle et al. 2020, Thm. 21 / Canonne, Kamath & Steinke 2020, Prop. 12:
    # ε = D_α + log((α-1)/α) - (log δ + log α) / (α - 1).
    return r + np.log1p(-1.0 / a) - (math.log(delta) + np.log(a)) / (a - 1.0)


def rdp_to_epsilon(orders: ArrayLike, rdp: ArrayLike, delta: float) -> float:
    """The smallest ε over the grid such that the RDP curve implies (ε, δ)-DP.

    Orders whose RDP is infinite or NaN are ignored (they give no bound); if none is left the
    result is infinite. An all-zero curve (nothing composed) gives ε = 0.

    Args:
        orders: Rényi orders (those <= 1 are ignored).
        rdp: RDP value at each order.
        delta: target δ in (0, 1).

    Returns:
        ε >= 0 (possibly infinite).
    """
    _check_delta(delta)
    a, r = _usable(orders, rdp)
    if a.size == 0:
        return math.inf
    if _all_zero(rdp):
        return 0.0
    return max(0.0, float(np.min(_epsilon_per_order(a, r, float(delta)))))


def rdp_to_delta(orders: ArrayLike, rdp: ArrayLike, epsilon: float) -> float:
    """The smallest δ over the grid such that the RDP curve implies (ε, δ)-DP.

    Args:
        orders: Rényi orders (those <= 1 are ignored).
        rdp: RDP value at each order.
        epsilon: target ε >= 0.

    Returns:
        δ in [0, 1].
    """
    _check_epsilon(epsilon)
    a, r = _usable(orders, rdp)
    if a.size == 0:
        return 1.0
    if _all_zero(rdp):
        return 0.0
    # Same bound solved for δ: log δ = (α-1)(D_α - ε + log(1 - 1/α)) - log α.
    log_delta = (a - 1.0) * (r - float(epsilon) + np.log1p(-1.0 / a)) - np.log(a)
    return float(min(1.0, math.exp(min(0.0, float(np.min(log_delta))))))


def max_zcdp_rho(orders: ArrayLike, rdp: ArrayLike, epsilon: float, delta: float) -> float:
    """The largest ρ such that `rdp + ρ·orders` still converts to ε' <= `epsilon` at `delta`.

    Exact over the grid: ε(ρ) <= ε iff some order has D_α + ρα + c_α <= ε, with c_α the
    conversion's constant, so ρ* = max_α (ε - D_α - c_α) / α. The result is then nudged down
    until the float computation of `rdp_to_epsilon` confirms it fits.

    Returns:
        ρ* (0.0 if nothing positive fits).
    """
    _check_epsilon(epsilon)
    _check_delta(delta)
    a_all = np.asarray(orders, dtype=np.float64)
    r_all = np.asarray(rdp, dtype=np.float64)
    a, r = _usable(a_all, r_all)
    if a.size == 0:
        return 0.0
    rho = float(np.max((float(epsilon) - _epsilon_per_order(a, r, float(delta))) / a))
    if not rho > 0.0:
        return 0.0
    # Make sure the float evaluation of the composed curve agrees (safe side).
    step = 1e-15
    while rho > 0.0 and rdp_to_epsilon(a_all, r_all + rho * a_all, delta) > epsilon:
        rho *= 1.0 - step
        step = min(2.0 * step, 0.5)
    return max(rho, 0.0)


def zcdp_rho_for(epsilon: float, delta: float, orders: ArrayLike | None = None) -> float:
    """The largest ρ such that ρ-zCDP implies (ε, δ)-DP under the tight RDP conversion.

    Args:
        epsilon: target ε > 0.
        delta: target δ in (0, 1).
        orders: grid of orders to optimise over (default `DEFAULT_ORDERS`).
    """
    _check_epsilon(epsilon, strict=True)
    grid = DEFAULT_ORDERS if orders is None else check_orders(orders)
    return max_zcdp_rho(grid, np.zeros_like(grid), epsilon, delta)
