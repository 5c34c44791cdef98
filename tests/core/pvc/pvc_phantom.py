"""A small phantom at matched geometry for the PVC tests (not collected by pytest).

Labels live on a 1 mm T1w grid; the PET grid has 2 mm voxels and a pose that is a small
rotation plus a shift, so region maps on the PET grid are genuinely fractional. The "true"
PET is built at matched geometry: the region maps on the PET grid
(``core.tacs.fraction_weights``, background included) times the true activities, blurred
with the PSF on the PET grid. GTM with spread functions built on the PET grid
(``core.pvc.spread.spread_on_pet_grid``, PETPVC's model) is then exact, whatever the region
sizes. ``pvc_files`` renders the same labels as the simulator does instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ketpet_bids.core.pvc.psf import GaussianPSF, psf_from_fwhm
from ketpet_bids.core.pvc.regions import PVCRegions, pvc_regions
from ketpet_bids.core.tacs import fraction_weights

T1W_AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])
T1W_AFFINE[:3, 3] = -23.5
PET_AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
PET_AFFINE[:3, 3] = -31.0
TABLE = {1: "cortex-left", 2: "cortex-right", 3: "White-Matter", 4: "csf",
         5: "habenula-left", 6: "habenula-right", 7: "putamen-left", 8: "putamen-right"}
TRUTH = np.array([60.0, 60.0, 20.0, 5.0, 90.0, 90.0, 45.0, 45.0, 8.0])  # + background


def pose(angle_deg: float = 4.0, shift=(0.6, -0.4, 0.3)) -> np.ndarray:
    """PET→T1w RAS pose: rotation about z through the origin, then a shift (mm)."""
    a = np.deg2rad(angle_deg)
    out = np.eye(4)
    out[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    out[:3, 3] = shift
    return out


def labels() -> np.ndarray:
    """48³ 1 mm labels, mirror-symmetric in x about the grid centre (x = 23.5 voxels)."""
    xyz = np.indices((48, 48, 48)).astype(float) - 23.5
    x, y, z = xyz
    out = np.zeros((48, 48, 48), np.int16)
    head = (x / 20) ** 2 + (y / 22) ** 2 + (z / 19) ** 2 <= 1
    out[head] = 3
    shell = head & ((x / 15.5) ** 2 + (y / 17.5) ** 2 + (z / 14.5) ** 2 > 1)
    out[shell & (x < 0)] = 1
    out[shell & (x >= 0)] = 2
    out[head & (np.abs(x) < 1.6) & (np.abs(y - 4) < 6) & (np.abs(z) < 4)] = 4
    for sign, index in ((-1, 5), (1, 6)):  # habenula-sized nuclei: 4×4×2 = 32 mm³
        out[(np.abs(x - sign * 3.0) <= 1.5) & (np.abs(y + 8) <= 1.5) & (np.abs(z - 2) <= 1.0)] = index
    for sign, index in ((-1, 7), (1, 8)):
        out[((x - sign * 9.0) / 3.5) ** 2 + ((y - 2) / 6) ** 2 + (z / 4) ** 2 <= 1] = index
    return out


@dataclass(frozen=True)
class Phantom:
    labels: np.ndarray
    regions: PVCRegions
    psf: GaussianPSF
    pose: np.ndarray

    def frame(self, values: np.ndarray = TRUTH) -> np.ndarray:
        """Noise-free PET frame at matched geometry (float32, 32³)."""
        return self.psf.blur(self.regions.pseudo_image(values))


def phantom(fwhm_mm=6.0, angle_deg: float = 4.0) -> Phantom:
    lab = labels()
    matrix = pose(angle_deg) if angle_deg else np.eye(4)
    weights = fraction_weights(lab, T1W_AFFINE, sorted(TABLE), (32, 32, 32), PET_AFFINE,
                               matrix)
    regions = pvc_regions(weights, [TABLE[i] for i in sorted(TABLE)])  # one background
    return Phantom(lab, regions, psf_from_fwhm(fwhm_mm, PET_AFFINE), matrix)
