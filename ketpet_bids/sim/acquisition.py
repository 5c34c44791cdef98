"""PET acquisition: frame schedules, poses, head motion, PSF, rendering and noise.

Spatial conventions (shared with HMC and co-registration; see ``notes/common.md``):

* World coordinates are NIfTI RAS millimetres given by each image's affine.
* ``pet_to_t1w`` is a 4×4 RAS matrix ``B``: the tissue seen at motion-free PET-world point ``p``
  sits at T1w-world point ``B·p`` (PET resampled into T1w space is ``pet(B⁻¹·x)``).
* Per frame ``i``, ``frame_to_reference`` is a 4×4 RAS matrix ``M_i``: the tissue seen at
  PET-world point ``p`` in frame ``i`` is the tissue at reference (motion-free) PET-world
  point ``M_i·p``, i.e. ``frame_i(p) = reference(M_i·p)``.
* ``M_i = T(c + t_i)·R_i·T(−c)`` with ``R_i = Rz(rz)·Ry(ry)·Rx(rx)`` (angles in radians,
  rotations about the RAS axes), ``t_i = (tx, ty, tz)`` in mm and ``c`` the rotation centre
  (the head centre in PET world). The 6 parameters per frame are ``tx ty tz rx ry rz``.

Rendering a frame: the true activity image lives on the subject's T1w grid (labels → values),
is blurred by an isotropic Gaussian PSF (``scipy.ndimage.gaussian_filter`` with
``sigma = FWHM / 2.3548 / voxel`` in T1w voxels, ``mode="constant"``), and sampled by linear
interpolation (``map_coordinates``, order 1, 0 outside) at the PET voxel centres ``v`` mapped
to T1w voxel coordinates ``A_t1⁻¹ · B · M_i · A_pet · v``. Blurring before moving is exact
because the isotropic PSF commutes with rigid motion.

Noise: independent Gaussian per voxel with variance
``noise² · α · (8 mm³ / V_voxel) · max(C, 0) · e^{λ t_mid} / Δt`` where C is the noise-free
decay-corrected value (Bq/mL), λ the C-11 decay constant, t_mid the frame mid time and Δt its
duration (s). α is set so that with ``noise = 1`` a 2 mm voxel at 10 kBq/mL in the 300 s
frame centred at 3450 s has a coefficient of variation of 15 % (``NOISE_REFERENCE``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ketpet_bids.sim.kinetics import C11_DECAY_PER_S

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))  # 1 / 2.3548
MOTION_START_S = 120.0
NOISE_REFERENCE = {"cov": 0.15, "activity_bq_ml": 1.0e4, "frame_mid_s": 3450.0,
                   "frame_duration_s": 300.0, "voxel_mm3": 8.0}


@dataclass(frozen=True)
class Geometry:
    """Grid sizes and frame schedule of one simulation size.

    Attributes
    ----------
    t1w_shape, t1w_voxel_mm
        T1w grid (isotropic voxels).
    pet_shape, pet_voxel_mm
        PET grid (isotropic voxels).
    frame_durations
        Frame durations (s), contiguous from 0.
    """

    t1w_shape: tuple[int, int, int]
    t1w_voxel_mm: float
    pet_shape: tuple[int, int, int]
    pet_voxel_mm: float
    frame_durations: tuple[float, ...]

    def frame_times(self) -> tuple[np.ndarray, np.ndarray]:
        """Frame starts and ends (s)."""
        ends = np.cumsum(self.frame_durations)
        return ends - np.asarray(self.frame_durations), ends


SIZES: dict[str, Geometry] = {
    "standard": Geometry((176, 216, 176), 1.0, (128, 128, 90), 2.0,
                         (15.0,) * 4 + (30.0,) * 8 + (60.0,) * 9 + (180.0,) * 2 + (300.0,) * 8),
    "tiny": Geometry((88, 108, 88), 2.0, (48, 56, 40), 4.0,
                     (30.0,) * 4 + (60.0,) * 3 + (300.0,) * 3 + (600.0,) * 4),
}


def rotation_matrix(rx: float, ry: float, rz: float) -> np.ndarray:
    """3×3 rotation ``Rz·Ry·Rx`` for angles (rad) about the RAS x, y and z axes."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    r_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    r_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return r_z @ r_y @ r_x


def rigid_matrix(params: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """4×4 ``T(c + t)·R·T(−c)`` from ``params = (tx, ty, tz, rx, ry, rz)`` (mm, rad)."""
    matrix = np.eye(4)
    rot = rotation_matrix(*params[3:])
    matrix[:3, :3] = rot
    matrix[:3, 3] = centre + params[:3] - rot @ centre
    return matrix


def pet_pose(rng: np.random.Generator, head_centre_t1w: np.ndarray, geometry: Geometry
             ) -> tuple[np.ndarray, np.ndarray]:
    """Draw the PET pose of one scan.

    Parameters
    ----------
    rng
        Random generator.
    head_centre_t1w
        Head centre in T1w world (mm), shape (3,).
    geometry
        Grids.

    Returns
    -------
    pet_to_t1w : numpy.ndarray
        4×4 ``B``: rotations of 3–8° about each axis and translations of 4–10 mm (random
        signs), about the head centre.
    pet_affine : numpy.ndarray
        4×4 PET affine in LAS orientation (x axis flipped, as many scanners store it), its
        field of view centred within ±4 mm of the head.
    """
    angles = np.deg2rad(rng.uniform(3.0, 8.0, 3)) * rng.choice([-1.0, 1.0], 3)
    shift = rng.uniform(4.0, 10.0, 3) * rng.choice([-1.0, 1.0], 3)
    # B maps PET world to T1w world; the head centre sits at PET-world point c_pet.
    c_pet = head_centre_t1w - shift
    b = np.eye(4)
    b[:3, :3] = rotation_matrix(*angles)
    b[:3, 3] = head_centre_t1w - b[:3, :3] @ c_pet
    vox = geometry.pet_voxel_mm
    affine = np.diag([-vox, vox, vox, 1.0])
    fov_centre = c_pet + rng.uniform(-4.0, 4.0, 3)
    affine[:3, 3] = fov_centre - affine[:3, :3] @ ((np.asarray(geometry.pet_shape) - 1) / 2)
    return b, affine


def motion_parameters(rng: np.random.Generator, starts: np.ndarray, ends: np.ndarray,
                      max_motion_mm: float) -> np.ndarray:
    """Rigid motion per frame: none before 120 s, then a smooth drift plus one or two jumps.

    The largest translation (vector norm) is 60–100 % of ``max_motion_mm`` and the largest
    rotation about any axis is 60–100 % of ``0.75 · max_motion_mm`` degrees.

    Returns
    -------
    numpy.ndarray
        Shape (n_frames, 6): ``tx ty tz`` (mm), ``rx ry rz`` (rad), at each frame's mid time.
    """
    n = len(starts)
    params = np.zeros((n, 6))
    moving = starts >= MOTION_START_S
    if max_motion_mm <= 0 or not moving.any():
        return params
    mid = (starts + ends) / 2
    span = max(ends[-1] - MOTION_START_S, 1.0)
    drift = np.clip((mid - MOTION_START_S) / span, 0.0, 1.0)[:, None] ** 0.7
    params += drift * rng.normal(0.0, 1.0, 6)
    for when in rng.uniform(MOTION_START_S + 0.2 * span, ends[-1] - 0.1 * span,
                            rng.integers(1, 3)):
        params += (mid >= when)[:, None] * rng.normal(0.0, 0.8, 6)
    params[~moving] = 0.0
    trans_max = np.linalg.norm(params[:, :3], axis=1).max()
    rot_max = np.abs(params[:, 3:]).max()
    params[:, :3] *= rng.uniform(0.6, 1.0) * max_motion_mm / max(trans_max, 1e-12)
    params[:, 3:] *= (rng.uniform(0.6, 1.0) * np.deg2rad(0.75 * max_motion_mm)
                      / max(rot_max, 1e-12))
    return params


def psf_sigma_voxels(fwhm_mm: float, voxel_mm: float) -> float:
    """Gaussian sigma in voxels for a FWHM in mm (0 → no blur)."""
    return fwhm_mm * FWHM_TO_SIGMA / voxel_mm


class FrameRenderer:
    """Render PET frames of one scan from region values (see the module docstring).

    Parameters
    ----------
    labels
        Phantom labels on the T1w grid (``uint8``).
    t1w_affine, pet_to_t1w, pet_affine
        4×4 matrices ``A_t1``, ``B``, ``A_pet``.
    pet_shape
        PET grid shape.
    psf_fwhm_mm
        PSF FWHM (mm); 0 disables the blur.
    """

    def __init__(self, labels: np.ndarray, t1w_affine: np.ndarray, pet_to_t1w: np.ndarray,
                 pet_affine: np.ndarray, pet_shape: tuple[int, int, int], psf_fwhm_mm: float
                 ) -> None:
        self.labels = labels
        self.pet_shape = pet_shape
        voxel = float(np.linalg.norm(t1w_affine[:3, 0]))
        self.sigma = psf_sigma_voxels(psf_fwhm_mm, voxel)
        self._pet_to_t1w_vox = np.linalg.inv(t1w_affine) @ pet_to_t1w
        self._pet_affine = pet_affine
        idx = np.indices(pet_shape, dtype=np.float64).reshape(3, -1)
        self._pet_vox = np.vstack([idx, np.ones((1, idx.shape[1]))])

    def activity(self, values: np.ndarray) -> np.ndarray:
        """PSF-blurred activity on the T1w grid; ``values[label]`` is each label's value."""
        image = np.asarray(values, dtype=np.float32)[self.labels]
        if self.sigma > 0:
            image = ndimage.gaussian_filter(image, self.sigma, mode="constant",
                                            output=np.float32)
        return image

    def render(self, values: np.ndarray, frame_to_reference: np.ndarray) -> np.ndarray:
        """One noise-free PET frame (``float32``, ``pet_shape``)."""
        matrix = self._pet_to_t1w_vox @ frame_to_reference @ self._pet_affine
        coords = (matrix @ self._pet_vox)[:3]
        frame = ndimage.map_coordinates(self.activity(values), coords, order=1,
                                        mode="constant", cval=0.0, output=np.float32)
        return frame.reshape(self.pet_shape)


def noise_alpha(pet_voxel_mm: float) -> float:
    """The constant α·(8 mm³/V_voxel) of the noise variance (Bq/mL · s)."""
    ref = NOISE_REFERENCE
    alpha = (ref["cov"] ** 2 * ref["activity_bq_ml"] * ref["frame_duration_s"]
             / np.exp(C11_DECAY_PER_S * ref["frame_mid_s"]))
    return float(alpha * ref["voxel_mm3"] / pet_voxel_mm**3)


def noise_sd(frame: np.ndarray, mid_s: float, duration_s: float, noise: float,
             pet_voxel_mm: float) -> np.ndarray:
    """Per-voxel noise standard deviation (Bq/mL) of a noise-free frame (see module docstring)."""
    var = noise_alpha(pet_voxel_mm) * np.clip(frame, 0.0, None) * np.exp(
        C11_DECAY_PER_S * mid_s) / duration_s
    return (noise * np.sqrt(var)).astype(np.float32)


def add_noise(frame: np.ndarray, rng: np.random.Generator, mid_s: float, duration_s: float,
              noise: float, pet_voxel_mm: float) -> np.ndarray:
    """``frame`` plus Gaussian noise of :func:`noise_sd` (``float32``; unchanged if noise = 0)."""
    if noise <= 0:
        return frame
    sd = noise_sd(frame, mid_s, duration_s, noise, pet_voxel_mm)
    return frame + sd * rng.standard_normal(frame.shape, dtype=np.float32)
