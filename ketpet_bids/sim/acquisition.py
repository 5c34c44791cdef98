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

Rendering a frame: the true activity image lives on the subject's T1w grid (labels → values,
each T1w voxel uniform). With a PSF it is blurred by an isotropic Gaussian
(``scipy.ndimage.gaussian_filter`` with ``sigma = FWHM / 2.3548 / voxel`` in T1w voxels,
``mode="constant"``) and the blurred activity between T1w voxel centres is the trilinear
interpolant (``order 1``, 0 outside the grid); without a PSF the activity is the piecewise
constant label image itself (``order 0``, nearest T1w voxel). Blurring before moving is exact
because the isotropic PSF commutes with rigid motion.

Each PET voxel value is the *mean* of that activity over the voxel's footprint, like a
reconstructed PET voxel (``voxel_sampling = "average"``): every PET voxel is split into
``k×k×k`` equal sub-voxels along the PET axes, their centres ``v + o`` (``o`` in
``(j + ½)/k − ½``, PET voxel units) are mapped to T1w voxel coordinates
``A_t1⁻¹ · B · M_i · A_pet · (v + o)``, the activity is interpolated there and the ``k³``
values are averaged. ``k`` (:func:`subvoxels_per_axis`) is the smallest number that makes the
sub-voxel spacing ``s ≤ max(0.6·σ_PSF, h/2)`` (``h`` the T1w voxel, ``σ_PSF`` in mm, 0 without
PSF): tiny size 3 (with PSF) or 4 (without), standard size 2 or 4.

* Without PSF, ``s ≤ h/2`` is the sub-sampling of :func:`ketpet_bids.core.tacs.fraction_weights`
  (the same sub-voxel centres), so a PET voxel equals ``Σ_r w[r, v]·c_r`` with the fractions
  ``w`` of each region in the voxel: fraction-weighted unmixing recovers region values to
  float32 precision (point sampling missed by 1–9 % for regions ≥ 1 cm³, tiny size). The
  fractions of a pose are computed once (a sparse PET-voxel × label matrix), so frames that
  share a pose cost one sparse product each.
* With PSF, the blurred activity is smooth on the scale σ and the midpoint rule converges as
  ``(s/σ)²``: for an ideal blurred step the error per PET axis is at most
  ``s²/24 · max|g''| = 0.0101·(s/σ)²`` of the step (≤ 0.36 % for ``s ≤ 0.6·σ``). Measured on
  the phantom with a 6 mm PSF and random region values 1–10 (jumps up to 9), largest error in
  a brain voxel against ``k = 8`` (tiny) or ``k = 4`` (standard): tiny (4 mm PET) ``k = 3``
  0.044 (``k = 4`` 0.037, point sampling 0.51); standard (2 mm PET) ``k = 2`` 0.058 (point
  0.15), i.e. ≤ 0.6 % of the largest contrast, typically (99th percentile) half of that.
  ``k = 3`` in standard size would reach 0.012 at 1.9× the rendering time.

Sub-voxel values are computed with ``scipy.ndimage.affine_transform`` on the ``k``-times finer
PET lattice (no coordinate arrays), in slabs of at most ``MAX_SUBPOINTS`` points (bounded
memory), only inside the PET box that can see non-zero activity (elsewhere exactly 0), and
block-averaged. ``voxel_sampling = "point"`` reproduces the former rendering (``k = 1``, order 1
also without PSF: the linear interpolant at the PET voxel centres).

Noise: independent Gaussian per voxel with variance
``noise² · α · (8 mm³ / V_voxel) · max(C, 0) · e^{λ t_mid} / Δt`` where C is the noise-free
decay-corrected value (Bq/mL), λ the C-11 decay constant, t_mid the frame mid time and Δt its
duration (s). α is set so that with ``noise = 1`` a 2 mm voxel at 10 kBq/mL in the 300 s
frame centred at 3450 s has a coefficient of variation of 15 % (``NOISE_REFERENCE``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage, sparse

from ketpet_bids.sim.kinetics import C11_DECAY_PER_S

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))  # 1 / 2.3548
MOTION_START_S = 120.0
VOXEL_SAMPLING = ("average", "point")
MAX_SUBPOINTS = 4_000_000  # sub-voxel values computed at once (16 MB of float32)
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


def subvoxels_per_axis(pet_voxel_mm: float, t1w_voxel_mm: float, psf_fwhm_mm: float) -> int:
    """Sub-voxels ``k`` per PET axis: spacing ``≤ max(0.6·σ_PSF, h/2)`` (see module docstring).

    Parameters
    ----------
    pet_voxel_mm, t1w_voxel_mm
        PET voxel size ``H`` and T1w (phantom) voxel size ``h`` (mm).
    psf_fwhm_mm
        PSF FWHM (mm; 0 = no PSF).
    """
    step = max(0.6 * psf_fwhm_mm * FWHM_TO_SIGMA, 0.5 * t1w_voxel_mm)
    return max(1, int(np.ceil(pet_voxel_mm / step - 1e-6)))


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
    voxel_sampling
        ``"average"`` (mean over each PET voxel's footprint) or ``"point"`` (value at the PET
        voxel centre, the former behaviour).

    Attributes
    ----------
    voxel_sampling
        As given.
    subvoxels
        ``k``: sub-voxels per PET axis (1 for ``"point"``).
    order
        Interpolation order of the activity between T1w voxel centres (0 or 1).
    """

    def __init__(self, labels: np.ndarray, t1w_affine: np.ndarray, pet_to_t1w: np.ndarray,
                 pet_affine: np.ndarray, pet_shape: tuple[int, int, int], psf_fwhm_mm: float,
                 voxel_sampling: Literal["average", "point"] = "average") -> None:
        if voxel_sampling not in VOXEL_SAMPLING:
            raise ValueError(f"voxel_sampling must be one of {VOXEL_SAMPLING}, "
                             f"not {voxel_sampling!r}")
        self.labels = labels
        self.pet_shape = tuple(int(n) for n in pet_shape)
        voxel = float(np.linalg.norm(t1w_affine[:3, 0]))
        self.sigma = psf_sigma_voxels(psf_fwhm_mm, voxel)
        self.voxel_sampling = voxel_sampling
        point = voxel_sampling == "point"
        self.subvoxels = 1 if point else subvoxels_per_axis(
            float(np.linalg.norm(pet_affine[:3, 0])), voxel, psf_fwhm_mm)
        self.order = 1 if point or self.sigma > 0 else 0
        self._pet_to_t1w_vox = np.linalg.inv(t1w_affine) @ pet_to_t1w
        self._pet_affine = pet_affine
        self._support = self._activity_support()
        self._mixture: tuple[bytes, sparse.csr_array] | None = None

    @property
    def description(self) -> dict[str, str | int]:
        """The rendering method for the truth JSON (``voxel_sampling`` e.g. ``"average, k=4"``)."""
        return {"voxel_sampling": ("point" if self.voxel_sampling == "point"
                                   else f"average, k={self.subvoxels}"),
                "voxel_subvoxels_per_axis": self.subvoxels,
                "activity_interpolation": "nearest" if self.order == 0 else "linear"}

    def activity(self, values: np.ndarray) -> np.ndarray:
        """PSF-blurred activity on the T1w grid; ``values[label]`` is each label's value
        (label 0, outside the head, has none whatever ``values[0]``)."""
        image = _label_values(values, np.float32)[self.labels]
        if self.sigma > 0:
            image = ndimage.gaussian_filter(image, self.sigma, mode="constant",
                                            output=np.float32)
        return image

    def render(self, values: np.ndarray, frame_to_reference: np.ndarray) -> np.ndarray:
        """One noise-free PET frame (``float32``, ``pet_shape``)."""
        matrix = self._pet_to_t1w_vox @ frame_to_reference @ self._pet_affine
        if self.order == 0:  # piecewise-constant activity: a fixed mixture of label values
            mixture = self._label_mixture(matrix)
            lut = _label_values(values, np.float64)[:mixture.shape[1]]
            return (mixture @ lut).astype(np.float32).reshape(self.pet_shape)
        frame = np.zeros(self.pet_shape, dtype=np.float32)
        for box, sub in self._subvoxels(self.activity(values), matrix):
            frame[box] = sub.mean(axis=-1)
        return frame

    def _label_mixture(self, matrix: np.ndarray) -> sparse.csr_array:
        """(n_pet_voxels, n_labels) fraction of each PET voxel's sub-voxels in each label.

        Rendering without PSF is ``mixture @ values``; the mixture of the last pose is kept,
        so frames sharing a pose (all frames without motion) cost one sparse product each.
        """
        key = matrix.tobytes()
        if self._mixture is None or self._mixture[0] != key:
            n_labels = int(self.labels.max()) + 1
            rows, cols, counts = [], [], []
            for box, sub in self._subvoxels(self.labels, matrix):
                local = np.repeat(np.arange(sub.shape[0] * sub.shape[1] * sub.shape[2]),
                                  sub.shape[-1]) * n_labels + sub.ravel()
                hist = np.bincount(local, minlength=local.size // sub.shape[-1] * n_labels)
                nz = np.flatnonzero(hist)
                voxel = np.unravel_index(nz // n_labels, sub.shape[:3])
                rows.append(np.ravel_multi_index(
                    tuple(v + b.start for v, b in zip(voxel, box, strict=True)), self.pet_shape))
                cols.append(nz % n_labels)
                counts.append(hist[nz] / sub.shape[-1])
            mixture = sparse.csr_array(
                (np.concatenate(counts or [np.zeros(0)]),
                 (np.concatenate(rows or [np.zeros(0, int)]),
                  np.concatenate(cols or [np.zeros(0, int)]))),
                shape=(int(np.prod(self.pet_shape)), n_labels))
            self._mixture = (key, mixture)
        return self._mixture[1]

    def _subvoxels(self, image: np.ndarray, matrix: np.ndarray
                   ) -> Iterator[tuple[tuple[slice, slice, slice], np.ndarray]]:
        """Slabs of ``image`` interpolated at the sub-voxel centres of the PET voxels.

        Yields
        ------
        box, values
            PET slices and an array (n_x, n_y, n_z, k³) of ``image.dtype`` values; PET voxels
            outside every box see only zeros.
        """
        lo, hi = self._pet_box(matrix)
        if np.any(hi <= lo):
            return
        k, linear = self.subvoxels, matrix[:3, :3]
        n_y, n_z = hi[1:] - lo[1:]
        offset = linear @ (lo - 0.5 + 0.5 / k) + matrix[:3, 3]  # first sub-voxel centre
        per_slab = max(1, MAX_SUBPOINTS // (k**3 * n_y * n_z))
        for x0 in range(lo[0], hi[0], per_slab):
            n_x = min(per_slab, hi[0] - x0)
            fine = ndimage.affine_transform(
                image, linear / k, offset=offset + linear[:, 0] * (x0 - lo[0]),
                output_shape=(n_x * k, n_y * k, n_z * k), order=self.order, mode="constant",
                cval=0, output=image.dtype)
            blocks = fine.reshape(n_x, k, n_y, k, n_z, k).transpose(0, 2, 4, 1, 3, 5)
            yield ((slice(x0, x0 + n_x), slice(lo[1], hi[1]), slice(lo[2], hi[2])),
                   blocks.reshape(n_x, n_y, n_z, k**3))

    def _activity_support(self) -> tuple[np.ndarray, np.ndarray]:
        """T1w voxel-coordinate box outside which the interpolated activity is exactly 0."""
        where = np.nonzero(self.labels)
        if where[0].size == 0:
            return np.zeros(3), -np.ones(3)
        radius = int(4.0 * self.sigma + 0.5) + 1  # gaussian_filter truncation + interpolation
        return (np.array([w.min() for w in where]) - radius,
                np.array([w.max() for w in where]) + radius)

    def _pet_box(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """PET voxel range ``[lo, hi)`` whose footprints can reach the activity support."""
        first, last = self._support
        if np.any(last < first):
            return np.zeros(3, int), np.zeros(3, int)
        corners = np.array(np.meshgrid(*zip(first, last, strict=True), indexing="ij")
                           ).reshape(3, -1).T
        inverse = np.linalg.inv(matrix)
        pet = corners @ inverse[:3, :3].T + inverse[:3, 3]
        shape = np.asarray(self.pet_shape)
        lo = np.clip(np.floor(pet.min(axis=0)).astype(int) - 1, 0, shape)
        hi = np.clip(np.ceil(pet.max(axis=0)).astype(int) + 2, 0, shape)
        return lo, hi


def _label_values(values: np.ndarray, dtype: type) -> np.ndarray:
    """Copy of the per-label values with the background (label 0) set to 0."""
    lut = np.array(values, dtype=dtype)
    lut[0] = 0.0
    return lut


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
