"""Simplified reference tissue model (SRTM), basis-function method (Gunn et al. 1997).

Operational equation (Lammertsma & Hume 1996)::

    C_T(t) = R1 C_R(t) + (k2 − R1 θ3) · (C_R ⊗ e^{−θ3 t})(t),    θ3 = k2 / (1 + BPND)

For ``n_basis`` values of θ3, log-spaced over ``ModelInputs.theta_bounds`` (1/min; the θ3 range
of tpcclib's ``bfmsrtm``), the basis function ``B_j`` is the frame mean of the reference
(reconstructed on the fine grid so that its frame means are kept) convolved with
``e^{−θ3,j t}``. For every curve the two coefficients are linear given θ3; the θ3 that
minimises the weighted residual is found on the grid (one matrix product for all curves and
basis functions, after orthogonalising each basis function against ``C_R``) and refined
between its grid neighbours by a parabola in log θ3, with the basis function at the refined
θ3 interpolated quadratically. A θ3 at a bound stays there. Outputs ``BPND``, ``R1`` and ``k2``
(1/min).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ketpet_bids.core.kinetics.base import FrameTiming, ModelInputs
from ketpet_bids.core.kinetics.fitting import (
    CurveFit,
    CurveModel,
    reference_curve,
    weights_and_selection,
)
from ketpet_bids.core.kinetics.timecourse import PER_MIN, grid_for


def basis_functions(frames: FrameTiming, inputs: ModelInputs, reference: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """θ3 grid (1/s, shape (n_basis,)) and basis functions (shape (n_basis, n_frames))."""
    low, high = inputs.theta_bounds
    thetas = np.geomspace(low / PER_MIN, high / PER_MIN, int(inputs.n_basis))
    grid = grid_for(frames)
    return thetas, grid.frame_means(grid.exp_convolve(grid.from_frames(reference), thetas))


def basis_search(yw: np.ndarray, candidates: np.ndarray, fixed: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Best basis function per curve and its parabolic refinement (all curves at once).

    Parameters
    ----------
    yw : np.ndarray, shape (m, n)
        Weighted curves (× √w).
    candidates : np.ndarray, shape (n_basis, n)
        Weighted candidate regressors.
    fixed : np.ndarray or None, shape (n,)
        Weighted regressor present in every fit (orthogonalised out of the candidates).

    Returns
    -------
    index : np.ndarray of int, shape (m,)
        Grid index ``j`` of the best candidate.
    offset : np.ndarray, shape (m,)
        Refinement in grid steps, in [−0.5, 0.5] (0 at the ends of the grid).
    """
    cand = candidates
    if fixed is not None:
        unit = fixed / np.linalg.norm(fixed)
        cand = cand - np.outer(cand @ unit, unit)
    norms = np.linalg.norm(cand, axis=1)
    norms[norms == 0] = np.inf
    score = (yw @ (cand / norms[:, None]).T) ** 2  # (m, n_basis): explained sum of squares
    index = np.argmax(score, axis=1)
    inner = np.clip(index, 1, cand.shape[0] - 2)
    rows = np.arange(yw.shape[0])
    s_lo, s_mid, s_hi = (score[rows, inner - 1], score[rows, inner], score[rows, inner + 1])
    curvature = s_lo - 2 * s_mid + s_hi
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(curvature < 0, 0.5 * (s_lo - s_hi) / curvature, 0.0)
    offset = np.clip(np.nan_to_num(offset), -0.5, 0.5)
    at_edge = (index == 0) | (index == cand.shape[0] - 1)
    offset = np.where(at_edge, 0.0, offset + (index - inner))
    return np.where(at_edge, index, inner), offset


def interpolate_rows(table: np.ndarray, index: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Quadratic (Lagrange) interpolation between rows ``index−1, index, index+1``.

    ``table`` (n_basis, ...) is sampled on a uniform axis; returns shape (m, ...) at
    ``index + offset``. At the ends of the table (offset 0) the row itself.
    """
    inner = np.clip(index, 1, table.shape[0] - 2)
    d = (index + offset - inner).reshape((-1,) + (1,) * (table.ndim - 1))
    return (table[inner - 1] * d * (d - 1) / 2 + table[inner] * (1 - d**2)
            + table[inner + 1] * d * (d + 1) / 2)


def two_column_lstsq(a: np.ndarray, b: np.ndarray, y: np.ndarray, w: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Weighted ``y ≈ c1 a + c2 b`` per curve (closed-form 2 × 2 normal equations).

    ``a`` (n,) or (m, n), ``b`` and ``y`` (m, n), ``w`` (n,). Returns ``c1, c2`` (m,).
    """
    a = np.broadcast_to(a, y.shape)
    s_aa, s_ab, s_bb = (a * a) @ w, (a * b) @ w, (b * b) @ w
    s_ay, s_by = (a * y) @ w, (b * y) @ w
    with np.errstate(divide="ignore", invalid="ignore"):
        det = s_aa * s_bb - s_ab**2
        return (s_bb * s_ay - s_ab * s_by) / det, (s_aa * s_by - s_ab * s_ay) / det


class SRTM(CurveModel):
    """Basis-function SRTM (parameters ``BPND``, ``R1``, ``k2``)."""

    name: ClassVar[str] = "srtm"
    parameters: ClassVar[tuple[str, ...]] = ("BPND", "R1", "k2")
    voxelwise: ClassVar[bool] = True

    def fit_curves(self, tacs: np.ndarray, frames: FrameTiming, inputs: ModelInputs
                   ) -> CurveFit:
        """Grid search over θ3, parabolic refinement, linear R1 and k2 (module docstring)."""
        reference = reference_curve(frames, inputs, self.name)
        weights, _ = weights_and_selection(frames, inputs)
        thetas, basis = basis_functions(frames, inputs, reference)
        root = np.sqrt(weights)
        index, offset = basis_search(tacs * root, basis * root, reference * root)
        step = np.log(thetas[1] / thetas[0]) if thetas.size > 1 else 0.0
        theta = thetas[index] * np.exp(offset * step)
        b_star = interpolate_rows(basis, index, offset)
        r1, phi = two_column_lstsq(reference, b_star, tacs, weights)
        k2 = phi + r1 * theta
        with np.errstate(divide="ignore", invalid="ignore"):
            params = {"BPND": k2 / theta - 1.0, "R1": r1, "k2": k2 * PER_MIN}
        return CurveFit(params=params, observed=tacs,
                        predicted=r1[:, None] * reference + phi[:, None] * b_star,
                        weights=weights, n_params=3)

    def settings(self, frames: FrameTiming, inputs: ModelInputs) -> dict[str, Any]:
        """Basis grid and weighting."""
        return {**self.common_settings(frames, inputs),
                "Theta3Bounds": list(inputs.theta_bounds), "Theta3Units": "1/min",
                "NumberOfBasisFunctions": inputs.n_basis,
                "Method": "basis functions (log-spaced θ3) with parabolic refinement"}
