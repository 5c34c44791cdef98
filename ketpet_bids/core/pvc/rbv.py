"""Region-based voxel-wise correction (RBV; Thomas et al. 2011, PETPVC ``pvc_rbv``).

With GTM-corrected regional activities ``x``, the piecewise-constant pseudo image
``p = Σ_j x_j m_j`` and its blurred version ``b = Σ_j x_j S_j`` (spread functions
:mod:`.spread`; PETPVC's ``h ⊛ p`` when ``S`` is built on the PET grid), every voxel is
corrected by the Yang factor

    RBV(v) = y(v) · p(v) / b(v),

one sparse product per frame. Voxels where ``b`` is (numerically) zero get 0.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from ketpet_bids.core.pvc.regions import PVCRegions

_TINY = 1e-6  # denominators below this fraction of the largest |b| count as zero


def yang_factors(regions: PVCRegions, spread: sparse.csr_array, values: np.ndarray
                 ) -> np.ndarray:
    """(X, Y, Z) float32 factors ``p / b`` for regional values (R,) (0 where undefined)."""
    values = np.nan_to_num(np.asarray(values, np.float64))
    pseudo = regions.pseudo_image(values)
    blurred = (spread.T @ values).astype(np.float32).reshape(regions.pet_shape)
    floor = _TINY * float(np.abs(blurred).max(initial=0.0))
    out = np.zeros_like(blurred)
    np.divide(pseudo, blurred, out=out, where=np.abs(blurred) > floor)
    return out


def rbv(frame: np.ndarray, regions: PVCRegions, spread: sparse.csr_array, values: np.ndarray
        ) -> np.ndarray:
    """RBV-corrected frame.

    Parameters
    ----------
    frame
        (X, Y, Z) observed PET frame (Bq/mL).
    regions
        Region maps (background included).
    spread
        (R, N) spread functions.
    values
        (R,) GTM-corrected activities of the frame (Bq/mL).

    Returns
    -------
    numpy.ndarray
        (X, Y, Z) float32 corrected frame (Bq/mL), not yet clipped.
    """
    return np.asarray(frame, np.float32) * yang_factors(regions, spread, values)
