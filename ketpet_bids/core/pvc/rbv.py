"""Region-based voxel-wise correction (RBV; Thomas et al. 2011, PETPVC ``pvc_rbv``).

With GTM-corrected regional activities ``x`` and the piecewise-constant pseudo image
``p = Σ_j x_j m_j``, every voxel is corrected by the Yang factor

    RBV(v) = y(v) · p(v) / (h ⊛ p)(v),

one blur per frame. Voxels where ``h ⊛ p`` is (numerically) zero get 0.
"""

from __future__ import annotations

import numpy as np

from ketpet_bids.core.pvc.psf import GaussianPSF
from ketpet_bids.core.pvc.regions import PVCRegions

_TINY = 1e-6  # denominators below this fraction of the largest |h ⊛ p| count as zero


def yang_factors(pseudo: np.ndarray, psf: GaussianPSF) -> np.ndarray:
    """Correction factors ``p / (h ⊛ p)`` of a pseudo image (float32, 0 where undefined)."""
    blurred = psf.blur(pseudo)
    floor = _TINY * float(np.abs(blurred).max(initial=0.0))
    out = np.zeros_like(blurred)
    np.divide(pseudo, blurred, out=out, where=np.abs(blurred) > floor)
    return out


def rbv(frame: np.ndarray, regions: PVCRegions, psf: GaussianPSF, values: np.ndarray
        ) -> np.ndarray:
    """RBV-corrected frame.

    Parameters
    ----------
    frame
        (X, Y, Z) observed PET frame (Bq/mL).
    regions
        Region maps (background included).
    psf
        The PSF.
    values
        (R,) GTM-corrected activities of the frame (Bq/mL).

    Returns
    -------
    numpy.ndarray
        (X, Y, Z) float32 corrected frame (Bq/mL), not yet clipped.
    """
    return np.asarray(frame, np.float32) * yang_factors(regions.pseudo_image(values), psf)
