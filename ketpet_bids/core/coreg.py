"""Rigid co-registration of the PET reference to the T1w, and its transform files.

Conventions (``/work/notes/common.md``): ``pet_to_t1w`` is a 4×4 RAS matrix ``B``; the tissue
seen at PET-world point ``p`` sits at T1w-world point ``B p``, so the PET resampled into T1w
space is ``pet(B⁻¹ x)``. The ITK text file of the output contract
(``from-petref_to-T1w_mode-image_xfm.txt``) holds what ``antsApplyTransforms -i petref -r T1w
-t xfm`` needs: an ``AffineTransform_double_3_3`` in LPS mapping T1w points to petref points,
``T = F B⁻¹ F`` with ``F = diag(-1, -1, 1, 1)``.

Registration: Mattes mutual information, rigid, fixed = T1w brain (mask dilated by ~4 mm),
moving = PET reference. The T1w is first cropped to the brain and subsampled to ~2 mm (the
PET resolution is far coarser), so one registration costs seconds. Seven starts are tried at
8 mm resolution — the alignment of the centres of mass (T1w brain, PET foreground) and the
same rotated by ±20° about each axis through the PET centre of mass — and the one with the
highest mutual information is refined at 8, 4 and 2 mm.

Failure check: besides the fraction of the PET brain inside the T1w brain (≥ 90 %), the
result is re-registered from itself at 8 and 4 mm; a correct alignment stays put (< 0.5 mm),
while a misalignment of a few mm or degrees (e.g. wrong data in ``--coreg identity`` or a
local optimum) moves by more than :data:`MAX_CHECK_SHIFT_MM` and raises a warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ketpet_bids.core.motion import (
    ants_from_ras,
    itk_to_matrix,
    matrix_to_itk,
    ras_from_ants,
    register_rigid,
    resample,
    rigid_schedule,
    rotation_matrix,
    smooth_and_mask,
    to_ants,
    working_grid,
)

#: Fraction of the PET brain that must lie in the (dilated) T1w brain mask.
MIN_INSIDE_FRACTION = 0.9
#: Starting rotations (degrees) tried about each axis besides the centre-of-mass start.
SEARCH_ANGLES_DEG = (-20.0, 20.0)
#: Mean displacement (mm, T1w brain) of the re-registration check above which we warn.
MAX_CHECK_SHIFT_MM = 1.5
#: Working voxel size (mm) of the T1w during registration.
WORKING_VOXEL_MM = 2.0
_ITK_LINEAR = re.compile(r"^(AffineTransform|MatrixOffsetTransformBase)_(double|float)_3_3$")


@dataclass(frozen=True)
class CoregResult:
    """Outcome of :func:`register_pet_to_t1w`.

    Attributes
    ----------
    pet_to_t1w
        Shape ``(4, 4)``, RAS matrix ``B``.
    mutual_information
        Mattes mutual information between the T1w and the resampled PET within the T1w brain
        mask (nats-like ANTs units; higher is better).
    inside_fraction
        Fraction of the PET brain (foreground) that falls inside the dilated T1w brain mask.
    initialisation
        How the registration was started.
    check_shift_mm
        Mean displacement (mm) over the T1w brain between the result and its re-registration
        from itself (large = unstable or misaligned).
    warnings
        Human-readable warnings (empty when all looks well).
    """

    pet_to_t1w: np.ndarray
    mutual_information: float
    inside_fraction: float
    initialisation: str
    check_shift_mm: float = float("nan")
    warnings: list[str] = field(default_factory=list)


# --- transform files -------------------------------------------------------------------------

def write_itk_affine(path: str | Path, pet_to_t1w: npt.ArrayLike) -> Path:
    """Write the ITK/ANTs text transform (LPS, T1w points → petref points) of ``B``.

    Parameters
    ----------
    path
        Output ``.txt`` file.
    pet_to_t1w
        Shape ``(4, 4)``, RAS matrix ``B``.
    """
    params, centre = matrix_to_itk(ants_from_ras(pet_to_t1w))
    text = ("#Insight Transform File V1.0\n#Transform 0\n"
            "Transform: AffineTransform_double_3_3\n"
            f"Parameters: {' '.join(repr(float(v)) for v in params)}\n"
            f"FixedParameters: {' '.join(repr(float(v)) for v in centre)}\n")
    Path(path).write_text(text)
    return Path(path)


def read_itk_affine(path: str | Path) -> np.ndarray:
    """Read an ITK text affine (as written by :func:`write_itk_affine` or by ANTs).

    Returns
    -------
    numpy.ndarray
        Shape ``(4, 4)``: the RAS ``pet_to_t1w`` matrix ``B``.
    """
    fields = dict(line.split(":", 1) for line in Path(path).read_text().splitlines()
                  if ":" in line and not line.startswith("#"))
    kind = fields.get("Transform", "").strip()
    if not _ITK_LINEAR.match(kind):
        raise ValueError(f"{path}: unsupported transform type {kind!r}")
    params = np.array(fields["Parameters"].split(), dtype=float)
    centre = np.array(fields.get("FixedParameters", "0 0 0").split(), dtype=float)
    return ras_from_ants(itk_to_matrix(params, centre))


def write_pet_to_t1w(path: str | Path, pet_to_t1w: npt.ArrayLike) -> Path:
    """Write the RAS ``pet_to_t1w`` matrix as a 4×4 text table (``numpy.savetxt``)."""
    np.savetxt(path, np.asarray(pet_to_t1w, dtype=float), fmt="%.12g",
               header="pet_to_t1w: RAS mm; tissue at PET point p is at T1w point B p")
    return Path(path)


# --- quality measures ------------------------------------------------------------------------

def pet_foreground(petref: np.ndarray, affine: npt.ArrayLike,
                   threshold: float = 0.3) -> np.ndarray:
    """PET "brain": voxels above ``threshold`` × the 99th percentile after 6 mm smoothing,
    holes filled. Boolean, shape of ``petref``."""
    return ndimage.binary_fill_holes(smooth_and_mask(petref, affine, 6.0, threshold)[1])


def inside_fraction(petref: np.ndarray, pet_affine: npt.ArrayLike, pet_to_t1w: npt.ArrayLike,
                    t1w_mask: np.ndarray, t1w_affine: npt.ArrayLike,
                    margin_mm: float = 4.0) -> float:
    """Fraction of the PET foreground, mapped into T1w space, inside the T1w brain mask.

    Parameters
    ----------
    petref
        Shape ``(X, Y, Z)`` with RAS ``pet_affine``.
    pet_to_t1w
        RAS matrix ``B``.
    t1w_mask
        Boolean T1w brain mask with RAS ``t1w_affine``; dilated by ``margin_mm``.

    Returns
    -------
    float
        In [0, 1]; NaN when no PET foreground lands on the T1w grid.
    """
    fg = resample(pet_foreground(petref, pet_affine).astype(np.float32), pet_affine,
                  pet_to_t1w, t1w_mask.shape, t1w_affine) > 0.5
    voxel = float(np.mean(np.linalg.norm(np.asarray(t1w_affine)[:3, :3], axis=0)))
    brain = ndimage.binary_dilation(t1w_mask > 0, iterations=max(1, round(margin_mm / voxel)))
    return float(np.sum(fg & brain) / np.sum(fg)) if fg.any() else float("nan")


def mutual_information(t1w: np.ndarray, t1w_affine: npt.ArrayLike, t1w_mask: np.ndarray,
                       pet_in_t1w: np.ndarray) -> float:
    """Mattes mutual information (ANTs, 32 bins) between the T1w and the PET on the T1w grid,
    within the T1w brain mask (higher is better)."""
    import ants
    value = ants.image_similarity(to_ants(t1w, t1w_affine), to_ants(pet_in_t1w, t1w_affine),
                                  metric_type="MattesMutualInformation",
                                  fixed_mask=to_ants((t1w_mask > 0).astype(np.float32),
                                                     t1w_affine))
    return -float(value)


# --- registration ---------------------------------------------------------------------------

def _centre_of_mass(data: np.ndarray, affine: npt.ArrayLike) -> np.ndarray:
    """Intensity centre of mass in RAS mm, shape (3,)."""
    com_vox = np.asarray(ndimage.center_of_mass(np.clip(data, 0, None)), dtype=float)
    return (np.asarray(affine, dtype=float) @ np.append(com_vox, 1.0))[:3]


def _start(rotation_deg: npt.ArrayLike, pet_com: np.ndarray, t1w_com: np.ndarray) -> np.ndarray:
    """RAS matrix rotating about the PET centre of mass and moving it onto the T1w's."""
    rot = rotation_matrix(np.deg2rad(np.asarray(rotation_deg, dtype=float)))
    start = np.eye(4)
    start[:3, :3] = rot
    start[:3, 3] = t1w_com - rot @ pet_com
    return start


class _Problem:
    """Fixed (working-grid T1w) and moving (PET) images of one co-registration."""

    def __init__(self, petref: np.ndarray, pet_affine: npt.ArrayLike, t1w: np.ndarray,
                 t1w_affine: npt.ArrayLike, t1w_mask: np.ndarray, seed: int,
                 nthreads: int) -> None:
        full_mask = np.asarray(t1w_mask) > 0
        grid, self.affine = working_grid(full_mask, t1w_affine, WORKING_VOXEL_MM, 16.0)
        step = np.array([sl.step for sl in grid], dtype=float)
        smoothed = ndimage.gaussian_filter(np.asarray(t1w, dtype=np.float32),
                                           np.where(step > 1, step / 2.0, 0.0))
        self.t1w, self.mask = smoothed[grid], full_mask[grid]
        voxel = float(np.mean(np.linalg.norm(self.affine[:3, :3], axis=0)))
        self.metric_mask = ndimage.binary_dilation(self.mask,
                                                   iterations=max(1, round(4.0 / voxel)))
        self.fixed = np.where(self.metric_mask, self.t1w, 0.0).astype(np.float32)
        self.moving = np.nan_to_num(np.asarray(petref, dtype=np.float32))
        self.pet_affine = np.asarray(pet_affine, dtype=float)
        self.points = np.argwhere(self.mask) @ self.affine[:3, :3].T + self.affine[:3, 3]
        self.voxel, self.seed, self.nthreads = voxel, seed, nthreads

    def register(self, initial: np.ndarray, levels_mm: tuple[float, ...],
                 iterations: tuple[int, ...]) -> tuple[np.ndarray, float]:
        """Register from ``initial``; the result and its mutual information."""
        matrix = register_rigid(self.fixed, self.affine, self.moving, self.pet_affine,
                                schedule=rigid_schedule(self.voxel, levels_mm, iterations),
                                fixed_mask=self.metric_mask, initial=initial, seed=self.seed,
                                nthreads=self.nthreads)
        return matrix, self.score(matrix)

    def score(self, matrix: np.ndarray) -> float:
        warped = resample(self.moving, self.pet_affine, matrix, self.mask.shape, self.affine)
        return mutual_information(self.t1w, self.affine, self.mask, warped)

    def shift_mm(self, a: np.ndarray, b: np.ndarray) -> float:
        """Mean distance (mm) between where two PET→T1w matrices send the T1w brain back."""
        diff = (self.points @ (np.linalg.inv(a) - np.linalg.inv(b))[:3, :3].T
                + (np.linalg.inv(a) - np.linalg.inv(b))[:3, 3])
        return float(np.linalg.norm(diff, axis=1).mean())

    def result(self, matrix: np.ndarray, mi: float, initialisation: str) -> CoregResult:
        """Score ``matrix`` with the failure checks."""
        checked, _ = self.register(matrix, (8.0, 4.0), (40, 20))
        shift = self.shift_mm(checked, matrix)
        inside = inside_fraction(self.moving, self.pet_affine, matrix, self.mask, self.affine)
        return CoregResult(pet_to_t1w=matrix, mutual_information=mi, inside_fraction=inside,
                           initialisation=initialisation, check_shift_mm=shift,
                           warnings=_warnings(inside, shift))


def register_pet_to_t1w(petref: np.ndarray, pet_affine: npt.ArrayLike, t1w: np.ndarray,
                        t1w_affine: npt.ArrayLike, t1w_mask: np.ndarray, *, seed: int = 0,
                        nthreads: int = 1) -> CoregResult:
    """Rigid PET-reference → T1w registration (Mattes MI, multi-start; module docstring).

    Parameters
    ----------
    petref
        Shape ``(X, Y, Z)``, Bq/mL, with RAS ``pet_affine``.
    t1w, t1w_mask
        T1w image and its brain mask (nonzero = brain), same grid, RAS ``t1w_affine``.
    seed, nthreads
        Seed of the metric sampling and ITK threads.

    Returns
    -------
    CoregResult
    """
    problem = _Problem(petref, pet_affine, t1w, t1w_affine, t1w_mask, seed, nthreads)
    pet_com = _centre_of_mass(np.where(pet_foreground(problem.moving, pet_affine),
                                       problem.moving, 0.0), pet_affine)
    t1w_com = _centre_of_mass(np.where(problem.mask, problem.t1w, 0.0), problem.affine)
    rotations = [np.zeros(3)] + [np.eye(3)[axis] * angle for axis in range(3)
                                 for angle in SEARCH_ANGLES_DEG]
    trials = [problem.register(_start(r, pet_com, t1w_com), (8.0,), (60,)) for r in rotations]
    pick = int(np.argmax([mi for _, mi in trials]))
    best, best_mi = problem.register(trials[pick][0], (8.0, 4.0, 2.0), (100, 60, 30))
    angles = ", ".join(f"{v + 0.0:g}" for v in rotations[pick])
    initialisation = (f"centre of mass and {len(rotations) - 1} rotated starts; best start "
                      f"rotated (x, y, z) = ({angles}) deg")
    return problem.result(best, best_mi, initialisation)


def assess_alignment(petref: np.ndarray, pet_affine: npt.ArrayLike, t1w: np.ndarray,
                     t1w_affine: npt.ArrayLike, t1w_mask: np.ndarray,
                     pet_to_t1w: npt.ArrayLike, initialisation: str, *, seed: int = 0,
                     nthreads: int = 1) -> CoregResult:
    """Score a given ``pet_to_t1w`` (e.g. the identity of ``--coreg identity``) with the
    failure checks of :func:`register_pet_to_t1w`.

    Parameters are those of :func:`register_pet_to_t1w` plus the matrix and a label.
    """
    problem = _Problem(petref, pet_affine, t1w, t1w_affine, t1w_mask, seed, nthreads)
    matrix = np.asarray(pet_to_t1w, dtype=float)
    return problem.result(matrix, problem.score(matrix), initialisation)


def _warnings(inside: float, shift_mm: float) -> list[str]:
    """Warnings for a suspicious alignment."""
    out = []
    if not inside >= MIN_INSIDE_FRACTION:
        out.append(f"only {inside:.0%} of the PET brain falls inside the T1w brain mask "
                   f"(expected at least {MIN_INSIDE_FRACTION:.0%}): co-registration may have "
                   "failed; check the PET-on-T1w figure")
    if not shift_mm <= MAX_CHECK_SHIFT_MM:
        out.append(f"re-registering from the result moved the PET by {shift_mm:.1f} mm on "
                   f"average (expected below {MAX_CHECK_SHIFT_MM:g} mm): co-registration may "
                   "have failed or the data are not aligned; check the PET-on-T1w figure")
    return out


def resample_petref_to_t1w(petref: np.ndarray, pet_affine: npt.ArrayLike,
                           pet_to_t1w: npt.ArrayLike, t1w_shape: tuple[int, int, int],
                           t1w_affine: npt.ArrayLike) -> np.ndarray:
    """PET reference on the T1w grid, ``petref(B⁻¹ x)`` (trilinear, float32, 0 outside)."""
    return resample(petref, pet_affine, pet_to_t1w, t1w_shape, t1w_affine, order=1)
