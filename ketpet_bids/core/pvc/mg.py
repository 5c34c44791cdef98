"""Müller-Gärtner grey-matter correction (Müller-Gärtner et al. 1992; PETPVC ``pvc_mg``).

Grey matter (``GM`` regions, :mod:`.regions`) is corrected voxel by voxel after removing the
blurred contribution of every other compartment (white matter, CSF, background), each at a
known activity:

    GM(v) = ( y(v) − Σ_{k ∉ GM} c_k S_k(v) ) / Σ_{j ∈ GM} S_j(v)   where P_GM(v) > 0,

``P_GM = Σ_{j ∈ GM} m_j`` and ``S`` the regional spread functions (:mod:`.spread`; PETPVC's
``h ⊛ Σ c_k m_k`` and ``h ⊛ P_GM`` when ``S`` is built on the PET grid). The compartment activities ``c_k`` are, per region, the GTM
estimates (``wm_source="gtm"``, the default: unbiased by partial volume) or, as PETPVC does,
the mean observed activity in the eroded white-matter core (voxels entirely WM, eroded by
PETPVC's ball radius: 6 voxels at ≤ 1 mm, 3 at ≥ 2.5 mm, ``round(8 − 2·voxel)`` between),
given to every WM region (``wm_source="eroded"``; CSF and background then keep their GTM
values). Outside grey matter the output image holds ``Σ_k c_k m_k`` (PETPVC writes 0
there), and the regional values of non-GM regions are their ``c_k``. PETPVC multiplies the
result by ``P_GM`` (a fractional GM map weights it); the standard form above does not.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage, sparse

from ketpet_bids.core.pvc.psf import GaussianPSF
from ketpet_bids.core.pvc.regions import PVCRegions

WMSource = Literal["gtm", "eroded"]


def petpvc_erosion_radius(voxel_mm: tuple[float, float, float]) -> int:
    """PETPVC's white-matter erosion radius (voxels) for a mean voxel size."""
    mean = float(np.mean(voxel_mm))
    if mean <= 1.0:
        return 6
    return 3 if mean >= 2.5 else int(np.floor(8.0 - 2.0 * mean + 0.5))


def eroded_wm_mask(regions: PVCRegions, psf: GaussianPSF) -> np.ndarray:
    """(X, Y, Z) bool core of white matter: fully-WM voxels eroded by PETPVC's ball."""
    radius = petpvc_erosion_radius(psf.voxel_mm)
    grid = np.indices((2 * radius + 1,) * 3) - radius
    ball = (grid ** 2).sum(axis=0) <= radius ** 2
    return ndimage.binary_erosion(regions.tissue_fraction("WM") >= 1.0 - 1e-6, ball)


def muller_gartner(frame: np.ndarray, regions: PVCRegions, spread: sparse.csr_array,
                   values: np.ndarray, gm_blurred: np.ndarray,
                   wm_core: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Correct one frame.

    Parameters
    ----------
    frame
        (X, Y, Z) observed PET (Bq/mL).
    regions
        Region maps (background included).
    spread
        (R, N) spread functions.
    values
        (R,) GTM activities of the frame (Bq/mL).
    gm_blurred
        (X, Y, Z) ``Σ_{j ∈ GM} S_j`` (computed once per run).
    wm_core
        Eroded WM mask for ``wm_source="eroded"``; ``None`` uses the GTM values.

    Returns
    -------
    image, compartments
        Corrected frame (float32; not yet clipped) and (R,) the activities ``c_k`` used for
        the non-GM regions (NaN for GM regions, whose values are the fraction-weighted
        means of the image).
    """
    observed = np.asarray(frame, np.float32)
    is_gm = np.array([t == "GM" for t in regions.tissues])
    compartments = np.where(is_gm, 0.0, np.nan_to_num(values))
    if wm_core is not None and wm_core.any():
        is_wm = np.array([t == "WM" for t in regions.tissues])
        compartments[is_wm] = float(observed[wm_core].mean())
    others = regions.pseudo_image(compartments)
    gm = regions.tissue_fraction("GM") > 0
    image = others.copy()
    valid = gm & (gm_blurred > 0)
    blurred = (spread.T @ compartments).astype(np.float32).reshape(regions.pet_shape)
    image[valid] = (observed[valid] - blurred[valid]) / gm_blurred[valid]
    compartments[is_gm | ~regions.active] = np.nan
    return image, compartments
