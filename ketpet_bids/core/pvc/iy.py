"""Iterative Yang correction (Erlandsson et al. 2012; PETPVC ``pvc_iy``).

    f₀ = y;  x_k = F⁻¹ · max(0, means(f_k));  f_{k+1} = y · p_k / b_k,
    p_k = Σ_j x_{k,j} m_j,  b_k = Σ_j x_{k,j} S_j,

where ``means`` are the fraction-weighted regional means, ``F`` PETPVC's fuzziness
correction (:meth:`PVCRegions.overlap_matrix`, the identity for binary maps) and ``S`` the
regional spread functions (:mod:`.spread`): ``b_k`` is the blurred pseudo image (PETPVC's
``h ⊛ p_k``) as one sparse product instead of a blur per iteration. 10 iterations by default
(PETPVC's), optionally stopping earlier when ``‖f_{k+1} − f_k‖ / ‖y‖ < stop``.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from ketpet_bids.core.pvc.rbv import yang_factors
from ketpet_bids.core.pvc.regions import PVCRegions
from ketpet_bids.core.pvc.vc import relative_change

ITERATIONS = 10


def iterative_yang(frame: np.ndarray, regions: PVCRegions, spread: sparse.csr_array,
                   overlap_inverse: np.ndarray, iterations: int = ITERATIONS,
                   stop: float | None = None) -> tuple[np.ndarray, int]:
    """Correct one frame.

    Parameters
    ----------
    frame
        (X, Y, Z) observed PET (Bq/mL).
    regions
        Region maps (background included).
    spread
        (R, N) spread functions.
    overlap_inverse
        (R, R) ``F⁻¹`` (computed once per run).
    iterations, stop
        Maximum iterations and optional relative-change threshold.

    Returns
    -------
    image, n_iterations
        Corrected frame (float32), iterations run.
    """
    observed = np.asarray(frame, np.float32)
    scale = float(np.linalg.norm(observed.ravel()))
    estimate, k = observed, 0
    while k < iterations:
        k += 1
        means = np.maximum(np.nan_to_num(regions.means(estimate)), 0.0)
        update = observed * yang_factors(regions, spread, overlap_inverse @ means)
        change = relative_change(update, estimate, scale)
        estimate = update
        if stop is not None and change < stop:
            break
    return estimate, k
