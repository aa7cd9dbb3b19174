"""The analytic centre of the optimal face of a linear program in standard form, given an
optimal dual: the face read from the dual, the program's structure, an interior point or an
auxiliary LP, then its centre by Newton's method (the map TOT releases by default)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .face_system import _FaceSystem
from .highs import _solve_highs
from .lp_types import LinearProgram

logger = logging.getLogger(__name__)

#: A reduced cost above this (times max(1, max |c|)) fixes its coordinate at zero on the optimal
#: face; one below minus this means the dual given is not feasible.
CENTRE_DUAL_TOL = 1e-11
#: Newton steps allowed before the face is taken to have no point positive in every coordinate.
CENTRE_MAX_ITER = 60
#: Faces with more coordinates than this are read by the interior point before Newton's
#: method is tried (on large programs some coordinates are nearly always forced to zero in ways
#: the structure does not reveal, and a failed Newton run costs as much as the interior point).
CENTRE_INTERIOR_FIRST_ABOVE = 50_000
#: The auxiliary LP is tried only on faces up to this many coordinates.
CENTRE_AUXILIARY_UP_TO = 50_000
#: A point of the face given as a start is moved this far into the interior.
CENTRE_START_SHIFT = 0.1
#: Readings x_j >= ratio * s_j tried in turn while the face read cannot meet A x = b.
CENTRE_IPM_READINGS = (1.0, 1e-2, 1e-4, 1e-6)


@dataclass(frozen=True)
class Centre:
    """The result of `analytic_centre`.

    Attributes:
        x: the centre (zero outside the optimal face), or None if it could not be computed.
        face: boolean mask of the coordinates not identically zero on the optimal face (as far
            as it was determined).
        residual: largest |b - Ax| at x.
        iterations: Newton steps, all rounds together.
        face_from: how the face was found: "dual" (an optimal dual and the program's
            structure), "interior point" or "auxiliary LP" (see `analytic_centre`).
        seconds: wall time.
        detail: why it stopped.
    """

    x: np.ndarray | None
    face: np.ndarray | None
    residual: float
    iterations: int
    face_from: str
    seconds: float
    detail: str


def analytic_centre(
    A: sp.spmatrix,
    b: np.ndarray,
    c: np.ndarray,
    y: np.ndarray,
    free: np.ndarray | None = None,
    *,
    zeros: Callable[[np.ndarray], np.ndarray] | None = None,
    point: np.ndarray | None = None,
    max_iter: int = CENTRE_MAX_ITER,
) -> Centre:
    """The analytic centre of the optimal face of  min c'x  s.t.  A x = b,  x_j >= 0 (j not
    in the mask `free`), given an optimal dual `y` (row multipliers) of that program.

    The optimal face F is the set of optimal x; its analytic centre is the unique point of F
    maximising sum_j log x_j over the coordinates j not identically zero on F (free ones carry
    no term). It is the limit of the central path (Megiddo 1989; Guler & Ye 1993), the point
    interior-point solvers approach, and depends on the program only, not on any solution of
    it or on the dual used.

    By complementary slackness, for any optimal dual F = {x feasible: x_j = 0 wherever the
    reduced cost r_j = c_j - A_j'y > 0}. What is left are the coordinates that the equalities
    force to zero on F: `zeros`, if given, maps a mask of possible coordinates to a smaller
    one, removing only coordinates proven zero on F (knowledge of the program's structure).
    Newton's method for  max sum log x_j  s.t.  A_F x = b  (infeasible start; Boyd &
    Vandenberghe 2004, sec. 10.3) then either converges, which proves that every remaining
    coordinate is positive somewhere on F (and certifies `y`: a feasible x with x_j = 0
    wherever r_j > 0 proves both optimal), or finds no point positive in all of them. Then
    the coordinates that can be positive are read from an interior-point method on F
    (`interior_face`; first, on faces of more than CENTRE_INTERIOR_FIRST_ABOVE coordinates)
    and Newton's method starts again from its point; should that fail too, one auxiliary LP
    (`face_support`) finds them exactly. All rounds share one factorisation pattern and
    start from `point`, if given (a point of the optimal face, such as the LP's solution),
    shifted by CENTRE_START_SHIFT into the interior.
    """
    start = time.perf_counter()
    A = sp.csc_matrix(A, dtype=np.float64)
    n = A.shape[1]
    b = np.asarray(b, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    free = np.zeros(n, dtype=bool) if free is None else np.asarray(free, dtype=bool)
    newton, how = 0, "dual"

    def result(x: np.ndarray | None, face: np.ndarray | None, res: float, detail: str) -> Centre:
        return Centre(x, face, res, newton, how, time.perf_counter() - start, detail)

    r = c - A.T @ np.asarray(y, dtype=np.float64)
    tol = CENTRE_DUAL_TOL * max(1.0, float(np.abs(c).max(initial=0.0)))
    worst = max(float(-r[~free].min(initial=0.0)), float(np.abs(r[free]).max(initial=0.0)))
    if worst > tol:
        return result(
            None, None, np.inf, f"the dual is not feasible (reduced cost off by {worst:.2e})"
        )
    face = free | (r <= tol)
    if zeros is not None:
        face = zeros(face)
    idx = np.flatnonzero(face)
    system = _FaceSystem(A[:, idx], b, free[idx])
    rounds = ["dual", "interior point", "auxiliary LP"]
    if len(idx) > CENTRE_INTERIOR_FIRST_ABOVE:
        rounds.remove("dual")
    if len(idx) > CENTRE_AUXILIARY_UP_TO:
        rounds.remove("auxiliary LP")
    active = np.ones(len(idx), dtype=bool)
    if point is None:
        x0 = np.where(free[idx], 0.0, 1.0)
    else:
        x0 = np.where(free[idx], point[idx], np.maximum(point[idx], 0.0) + CENTRE_START_SHIFT)
    detail, res, xf = "no interior point", np.inf, x0
    for how in rounds:
        readings: list[tuple[np.ndarray, np.ndarray]] = [(active, x0)]
        if how == "interior point":
            pair = system.interior(x0)
            if pair is None:
                continue
            xi, si = pair
            # x_j >= s_j, read more widely while the face so read cannot meet A x = b.
            readings = [(free[idx] | (xi >= ratio * si), xi) for ratio in CENTRE_IPM_READINGS]
        elif how == "auxiliary LP":
            aux = face_support(A, b, face, free)
            if aux is None:
                continue
            readings = [(aux[0][idx], aux[1][idx])]
        for active, x0 in readings:
            xf, detail, res, steps = system.newton(np.where(active, x0, 0.0), active, max_iter)
            newton += steps
            if detail != "inconsistent":
                break
        if detail not in ("no interior point", "inconsistent"):
            break
        logger.debug("centring: %s on a face of %d coordinates", detail, active.sum())
    mask = np.zeros(n, dtype=bool)
    mask[idx[active]] = True
    if detail != "central":
        return result(None, mask, res, detail)
    out = np.zeros(n)
    out[idx] = np.where(active, xf, 0.0)
    return result(out, mask, res, detail)


def face_support(
    A: sp.spmatrix, b: np.ndarray, face: np.ndarray, free: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The coordinates not identically zero on {x: A x = b, x_j >= 0 (j not free), x_j = 0 off
    `face`}, and a point of that set positive in all of them; None if the set is empty.

    One LP (Freund, Roundy & Todd 1985) on the homogenised set, solved by HiGHS:
    max sum_j t_j  s.t.  A (t + s) = theta b,  0 <= t_j <= 1,  s_j >= 0  over the signed
    coordinates of `face` (free ones enter as they are), theta >= 0. Its feasible points form
    a cone, so sums of them are feasible: at an optimum t_j = 1 exactly for the coordinates
    that can be positive and 0 for the others, and (t + s) / theta is a point of the set
    positive in every coordinate that can be.
    """
    A = sp.csc_matrix(A)
    m = A.shape[0]
    idx = np.flatnonzero(face)
    signed, unsigned = idx[~free[idx]], idx[free[idx]]
    k, f = len(signed), len(unsigned)
    As = A[:, signed]
    aux = LinearProgram(
        np.concatenate((-np.ones(k), np.zeros(k + f + 1))),
        sp.hstack(
            [As, As, A[:, unsigned], sp.csc_matrix(-np.asarray(b).reshape(-1, 1))], format="csc"
        ),
        np.zeros(m),
        np.zeros(m),
        np.concatenate((np.zeros(2 * k), np.full(f, -np.inf), [0.0])),
        np.concatenate((np.ones(k), np.full(k + f + 1, np.inf))),
    )
    res = _solve_highs(aux, {"presolve": "on"})
    if res.status != "optimal" or res.x is None:
        return None
    t, s, theta = res.x[:k], res.x[k : 2 * k], float(res.x[-1])
    positive = t > 0.5
    if theta <= 0:
        return None
    support = np.zeros(len(face), dtype=bool)
    support[signed[positive]] = True
    support[unsigned] = True
    x = np.zeros(len(face))
    x[signed[positive]] = (t + s)[positive] / theta
    x[unsigned] = res.x[2 * k : 2 * k + f] / theta
    logger.debug("face support: %d of %d coordinates can be positive", positive.sum(), k)
    return support, x
