"""The analytic centre of an optimal face: the dual fixes coordinates, the rest are found."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from safes_plugins.fairness.tot import centre
from safes_plugins.fairness.tot.centre import analytic_centre, face_support

# A hand-made program. x1 + x2 = 1 and x1 - x3 = 1 force x1 = 1 and x2 = x3 = 0 (no single
# row shows it); x4 + x5 + x6 = 1; x7 (free) = x4. With cost x6 the optimum is 0, the dual
# y = 0 has reduced cost 1 on x6, so the optimal face is x6 = 0 and its analytic centre is
# x1 = 1, x4 = x5 = x7 = 1/2 (x2, x3, x6 identically zero on it).
A = sp.csr_matrix(
    np.array(
        [
            [1, 1, 0, 0, 0, 0, 0],
            [1, 0, -1, 0, 0, 0, 0],
            [0, 0, 0, 1, 1, 1, 0],
            [0, 0, 0, -1, 0, 0, 1],
        ],
        dtype=float,
    )
)
B = np.array([1.0, 1.0, 1.0, 0.0])
C = np.array([0, 0, 0, 0, 0, 1.0, 0])
FREE = np.array([False] * 6 + [True])
CENTRE = np.array([1, 0, 0, 0.5, 0.5, 0, 0.5])
SUPPORT = CENTRE > 0


def test_auxiliary_lp_finds_the_coordinates_forced_to_zero_by_several_rows() -> None:
    support, point = face_support(A, B, np.ones(7, dtype=bool), FREE)
    assert support.tolist() == [True, False, False, True, True, True, True]
    assert np.abs(A @ point - B).max() <= 1e-9
    assert (point[support & ~FREE] > 0).all() and (point[~support] == 0).all()


def test_auxiliary_lp_on_an_empty_set_says_so() -> None:
    # x1 + x2 = 1 with x1 = x2 = 0 forced by the face: nothing is feasible.
    face = np.array([False, False, True, True, True, True, True])
    assert face_support(A, B, face, FREE) is None


def test_centre_of_the_optimal_face_with_coordinates_the_dual_does_not_fix() -> None:
    cen = analytic_centre(A, B, C, np.zeros(4), FREE)
    assert cen.detail == "central" and cen.face_from == "interior point"
    assert cen.face.tolist() == SUPPORT.tolist()
    assert np.abs(cen.x - CENTRE).max() <= 1e-9


def test_structural_zeros_let_newton_start_on_the_face() -> None:
    def zeros(face: np.ndarray) -> np.ndarray:
        return face & ~np.isin(np.arange(7), [1, 2])  # x2, x3 proven zero by the caller

    cen = analytic_centre(A, B, C, np.zeros(4), FREE, zeros=zeros)
    assert cen.face_from == "dual"
    assert np.abs(cen.x - CENTRE).max() <= 1e-9


def test_auxiliary_lp_takes_over_when_the_interior_point_cannot_read_the_face(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(centre._FaceSystem, "interior", lambda self, x0=None: None)
    cen = analytic_centre(A, B, C, np.zeros(4), FREE)
    assert cen.face_from == "auxiliary LP"
    assert np.abs(cen.x - CENTRE).max() <= 1e-9


def test_a_dual_that_is_not_feasible_is_refused() -> None:
    # y = (0, 0, 1, 0) gives x4, x5 reduced cost -1.
    cen = analytic_centre(A, B, C, np.array([0.0, 0.0, 1.0, 0.0]), FREE)
    assert cen.x is None and "not feasible" in cen.detail


def test_a_dual_that_is_not_optimal_has_no_centre() -> None:
    # y = (0, 0, -1, 0) is feasible (reduced costs 1, 1, 2 on x4..x6) but not optimal: its
    # face x4 = x5 = x6 = 0 cannot meet x4 + x5 + x6 = 1.
    cen = analytic_centre(A, B, C, np.array([0.0, 0.0, -1.0, 0.0]), FREE)
    assert cen.x is None
