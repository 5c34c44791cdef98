"""Spine-level T1w processing: N4 bias correction and a brain mask (antspyx).

Used when no anatomical derivatives are given. The mask is an intensity-based foreground
mask (``ants.get_mask``: threshold at the mean intensity, erosion, largest component,
dilation) with holes filled; it is a brain mask for skull-stripped or defaced-and-stripped
T1w images and a head mask otherwise. Template-based brain extraction comes with the
template registration (issue 4). Arrays only: the caller keeps the affine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def _to_ants(data: np.ndarray, zooms: Sequence[float]):
    import ants  # lazy: ~3 s import

    return ants.from_numpy(np.ascontiguousarray(data, dtype=np.float32),
                           spacing=tuple(float(z) for z in zooms[:3]))


def n4_bias_correct(data: np.ndarray, zooms: Sequence[float], mask: np.ndarray | None = None
                    ) -> np.ndarray:
    """N4 bias-field correction.

    Parameters
    ----------
    data
        (X, Y, Z) T1w intensities.
    zooms
        Voxel sizes (mm); N4's B-spline mesh is defined in mm.
    mask
        Optional boolean (X, Y, Z) region where the bias field is estimated.

    Returns
    -------
    numpy.ndarray
        (X, Y, Z) float32 corrected intensities (negative inputs clipped to 0 first).
    """
    import ants

    image = _to_ants(np.clip(data, 0, None), zooms)
    ants_mask = None if mask is None else _to_ants(mask.astype(np.float32), zooms)
    return ants.n4_bias_field_correction(image, mask=ants_mask).numpy().astype(np.float32)


def brain_mask(data: np.ndarray, zooms: Sequence[float]) -> np.ndarray:
    """Foreground (brain) mask of a bias-corrected T1w.

    Parameters
    ----------
    data
        (X, Y, Z) bias-corrected T1w intensities.
    zooms
        Voxel sizes (mm).

    Returns
    -------
    numpy.ndarray
        (X, Y, Z) boolean mask, holes filled.
    """
    import ants

    mask = ants.get_mask(_to_ants(data, zooms), cleanup=2).numpy() > 0
    return ndimage.binary_fill_holes(mask)
