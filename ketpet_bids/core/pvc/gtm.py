"""Geometric transfer matrix (GTM) partial-volume correction (Rousset et al. 1998).

With fractional region maps ``m_i`` (PET grid, background included, see :mod:`.regions`)
and regional spread functions ``S_j`` (region ``j`` at unit activity as the PET sees it,
:mod:`.spread`), the observed fraction-weighted regional means ``t_i`` relate to the true
regional activities ``x_j`` through

    t_i = Σ_j G_ij x_j,   G_ij = Σ_v m_i(v) S_j(v) / Σ_v m_i(v),

the definition of PETPVC's ``petpvcGTMImageFilter`` (and Rousset's RSF/GTM with
probabilistic ROIs), where PETPVC takes ``S_j = h ⊛ m_j`` on the PET grid
(:func:`.spread.spread_on_pet_grid`). ``G`` is one sparse product, built once per run and
PSF; ``G`` and its pseudo-inverse are reused for every frame. All frames are solved at once
(least squares through the pseudo-inverse, or non-negative least squares frame by frame).
PETSurfer's ``mri_gtmpvc`` solves the voxel-space least-squares form ``(XᵀX) x = Xᵀy`` with
``X = [S_j]``; both are exact for noise-free data that follow the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, sparse

from ketpet_bids.core.pvc.regions import PVCRegions, clip_activity, explode_limit


@dataclass(frozen=True)
class TransferMatrix:
    """The GTM of one set of regions and one PSF.

    Attributes
    ----------
    matrix
        (R, R) ``G``; rows/columns of inactive regions are identity.
    active
        (R,) bool, regions with a non-zero size.
    condition
        2-norm condition number of ``G`` restricted to the active regions.
    inverse
        Pseudo-inverse of ``G`` restricted to the active regions (computed once, by SVD):
        the least-squares solution of every frame is one matrix product.
    """

    matrix: np.ndarray
    active: np.ndarray
    condition: float
    inverse: np.ndarray


def transfer_matrix(regions: PVCRegions, spread: sparse.csr_array) -> TransferMatrix:
    """Build ``G`` (module docstring) from the (R, N) spread functions ``S``."""
    sizes, active = regions.sizes, regions.active
    matrix = np.eye(len(regions.names))
    gram = (regions.fractions @ spread.T).toarray()
    matrix[active] = gram[active] / sizes[active, None]
    matrix[np.ix_(active, ~active)] = 0.0
    return with_inverse(matrix, active)


def with_inverse(matrix: np.ndarray, active: np.ndarray) -> TransferMatrix:
    """A :class:`TransferMatrix` with its condition number and pseudo-inverse (one SVD)."""
    sub = matrix[np.ix_(active, active)]
    if not sub.size:
        return TransferMatrix(matrix, active, float("nan"), np.zeros((0, 0)))
    u, s, vt = np.linalg.svd(sub)
    keep = s > s[0] * max(sub.shape) * np.finfo(float).eps
    inverse = (vt[keep].T / s[keep]) @ u[:, keep].T
    return TransferMatrix(matrix, active, float(s[0] / s[-1]) if s[-1] > 0 else float("inf"),
                          inverse)


def solve_gtm(gtm: TransferMatrix, means: np.ndarray, nonnegative: bool = False
              ) -> tuple[np.ndarray, dict[str, int]]:
    """Corrected regional activities of all frames from their observed regional means.

    Parameters
    ----------
    gtm
        Transfer matrix.
    means
        (F, R) observed fraction-weighted means (Bq/mL), e.g. rows of
        :meth:`PVCRegions.means`.
    nonnegative
        Solve each frame by non-negative least squares instead of least squares.

    Returns
    -------
    values, report
        (F, R) corrected activities (Bq/mL; NaN for inactive regions), clipped to
        ``[0, EXPLODE_FACTOR × max observed mean of the frame]``, and the number of clipped
        values ``{"negative": n, "exploding": n}``.
    """
    means = np.atleast_2d(np.asarray(means, dtype=np.float64))
    active = gtm.active
    sub = gtm.matrix[np.ix_(active, active)]
    rhs = np.nan_to_num(means[:, active])
    if nonnegative:
        solved = np.array([optimize.nnls(sub, b)[0] for b in rhs]).reshape(rhs.shape)
    else:
        solved = rhs @ gtm.inverse.T
    values = np.full(means.shape, np.nan)
    values[:, active] = solved
    report = {"negative": 0, "exploding": 0}
    for f in range(len(values)):
        values[f], counts = clip_activity(values[f], explode_limit(rhs[f]))
        report = {k: report[k] + counts[k] for k in report}
    return values, report
