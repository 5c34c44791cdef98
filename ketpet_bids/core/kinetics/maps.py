"""Placing PET-space parametric maps on the T1w grid.

Spatial convention (DESIGN.md, shared with co-registration): ``pet_to_t1w`` is a 4×4 RAS
matrix ``B`` such that the tissue seen at PET-world point ``p`` sits at T1w-world point
``B·p``; PET resampled into T1w space is therefore ``pet(B⁻¹·x)``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def t1w_to_pet_index(pet_affine: np.ndarray, pet_to_t1w: np.ndarray,
                     t1w_affine: np.ndarray) -> np.ndarray:
    """Matrix mapping T1w voxel indices to PET voxel indices: ``A_pet⁻¹ · B⁻¹ · A_t1w``.

    Parameters
    ----------
    pet_affine, t1w_affine : np.ndarray, shape (4, 4)
        Voxel-to-RAS-mm affines of the PET and T1w grids.
    pet_to_t1w : np.ndarray, shape (4, 4)
        RAS matrix ``B`` (PET world → T1w world).

    Returns
    -------
    np.ndarray, shape (4, 4)
    """
    return np.linalg.inv(pet_affine) @ np.linalg.inv(pet_to_t1w) @ t1w_affine


def resample_to_t1w(volume: np.ndarray, pet_affine: np.ndarray, pet_to_t1w: np.ndarray,
                    t1w_affine: np.ndarray, t1w_shape: tuple[int, int, int]) -> np.ndarray:
    """Resample a PET-space volume onto the T1w grid with trilinear interpolation.

    Parameters
    ----------
    volume : np.ndarray, shape (X, Y, Z)
        PET-space map.
    pet_affine, pet_to_t1w, t1w_affine
        See :func:`t1w_to_pet_index`.
    t1w_shape : tuple of int
        Shape of the T1w grid.

    Returns
    -------
    np.ndarray, shape ``t1w_shape``, float32
        ``volume(B⁻¹·x)`` at every T1w voxel centre ``x``; 0 outside the PET field of view.
    """
    index = t1w_to_pet_index(pet_affine, pet_to_t1w, t1w_affine)
    out = ndimage.affine_transform(np.asarray(volume, dtype=np.float32), index[:3, :3],
                                   offset=index[:3, 3], output_shape=tuple(t1w_shape),
                                   order=1, mode="constant", cval=0.0)
    return out.astype(np.float32, copy=False)
