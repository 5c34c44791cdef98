"""Gaussian point-spread function on a PET grid (separable, ``scipy.ndimage`` definition).

The PSF is given as a full width at half maximum (FWHM, mm) along each PET voxel axis
(one value means isotropic). It is applied exactly as ``scipy.ndimage.gaussian_filter``
defines a Gaussian blur: a sampled, normalised 1D kernel per axis with

    sigma_voxels = FWHM_mm / (2·sqrt(2·ln 2)) / voxel_size_mm,

truncated at ``truncate`` (default 4) sigmas, with ``mode="constant"`` (activity outside the
image grid is zero). This is the blur the simulator (``ketpet_bids.sim``) applies. PETPVC's
ITK kernel (``DiscreteGaussianImageFilter`` with its default maximum error and kernel
width) is truncated more tightly and is effectively ~2–5 % narrower than nominal, so results
against PETPVC with the same nominal FWHM differ by that much at edges (see
``benchmarks/results/pvc.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ketpet_bids.errors import InputError

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))  # 1 / 2.3548


@dataclass(frozen=True)
class GaussianPSF:
    """A separable Gaussian PSF on one PET grid.

    Attributes
    ----------
    fwhm_mm
        FWHM along the three PET voxel axes (mm); 0 means no blur along that axis.
    voxel_mm
        PET voxel sizes (mm) along the same axes.
    truncate
        Kernel half-width in sigmas (as ``scipy.ndimage.gaussian_filter``).
    """

    fwhm_mm: tuple[float, float, float]
    voxel_mm: tuple[float, float, float]
    truncate: float = 4.0

    @property
    def sigma_voxels(self) -> tuple[float, float, float]:
        """Gaussian sigma along each axis in voxels."""
        return tuple(f * FWHM_TO_SIGMA / v for f, v in zip(self.fwhm_mm, self.voxel_mm,
                                                            strict=True))

    @property
    def radius_voxels(self) -> tuple[int, int, int]:
        """Kernel half-width along each axis in voxels (``int(truncate·sigma + 0.5)``)."""
        return tuple(int(self.truncate * s + 0.5) for s in self.sigma_voxels)

    def blur(self, image: np.ndarray) -> np.ndarray:
        """Blur a 3D image (any float dtype) with the PSF; returns ``float32``, same shape."""
        return ndimage.gaussian_filter(np.asarray(image, dtype=np.float32), self.sigma_voxels,
                                       mode="constant", cval=0.0, truncate=self.truncate,
                                       output=np.float32)

    def describe(self) -> dict:
        """JSON-ready description (for the PVC sidecar)."""
        return {"Type": "Gaussian (scipy.ndimage.gaussian_filter, mode constant)",
                "FWHMmm": list(self.fwhm_mm), "VoxelSizemm": list(self.voxel_mm),
                "SigmaVoxels": [round(s, 6) for s in self.sigma_voxels],
                "TruncateSigmas": self.truncate}


def blur_box(image: np.ndarray, sigma: Sequence[float], truncate: float,
             inner: tuple[slice, slice, slice]) -> np.ndarray:
    """Gaussian blur, in place, of a float32 box whose non-zero voxels all lie in ``inner``.

    Equal to ``scipy.ndimage.gaussian_filter(image, sigma, mode="constant",
    truncate=truncate)`` (the same 1D passes along axes 0, 1, 2 in float32), but the pass
    along axis ``a`` runs only where its input can be non-zero: the whole box along the axes
    ``≤ a``, ``inner`` along the others. With a box padded by the kernel radius around a
    region's bounding box this skips up to 1 − (1 + b + b²)/3 of the work (``b`` the
    bounding box's share of the padded length per axis): ~25 % for a 48 mm region padded
    by 10 mm.

    Parameters
    ----------
    image
        (X, Y, Z) float32 array, overwritten with the result.
    sigma
        Gaussian sigma per axis (voxels); axes with sigma 0 are not blurred.
    truncate
        Kernel half-width in sigmas.
    inner
        Slices of ``image`` outside which ``image`` is zero.

    Returns
    -------
    numpy.ndarray
        ``image`` (blurred).
    """
    for axis, s in enumerate(sigma):
        if s <= 1e-15:  # gaussian_filter's own threshold
            continue
        view = image[tuple(slice(None) if a <= axis else inner[a] for a in range(3))]
        ndimage.gaussian_filter1d(view, s, axis=axis, mode="constant", truncate=truncate,
                                  output=view)
    return image


def psf_from_fwhm(fwhm_mm: float | Sequence[float], pet_affine: np.ndarray,
                  truncate: float = 4.0) -> GaussianPSF:
    """The Gaussian PSF for a FWHM (one value or one per PET voxel axis) on a PET grid.

    Parameters
    ----------
    fwhm_mm
        FWHM in mm: a number (isotropic) or three numbers along the PET voxel axes i, j, k.
    pet_affine
        4×4 voxel → RAS mm affine of the PET image (voxel sizes are its column norms).
    truncate
        Kernel half-width in sigmas.

    Raises
    ------
    InputError
        On ``--pvc-psf`` when not 1 or 3 values, or a value is negative or not finite.
    """
    values = np.atleast_1d(np.asarray(fwhm_mm, dtype=float))
    if values.size == 1:
        values = np.repeat(values, 3)
    if values.size != 3 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise InputError("--pvc-psf", f"expected 1 or 3 non-negative FWHM values (mm), got "
                         f"{list(np.atleast_1d(fwhm_mm))}", "e.g. --pvc-psf 6 or 6 6 5")
    voxel = np.sqrt((np.asarray(pet_affine, dtype=float)[:3, :3] ** 2).sum(axis=0))
    return GaussianPSF(fwhm_mm=tuple(float(v) for v in values),
                       voxel_mm=tuple(float(v) for v in voxel), truncate=float(truncate))
