"""Head-motion estimation and correction for dynamic PET (rigid, frame by frame).

Spatial conventions (``/work/notes/common.md``)
------------------------------------------------
World coordinates are NIfTI RAS millimetres given by each image's affine. For frame ``i`` the
4×4 RAS matrix ``M_i`` (*frame_to_reference*) says that the tissue seen at PET-world point
``p`` in frame ``i`` is the tissue at reference point ``M_i p``: ``frame_i(p) =
reference(M_i p)``, and the corrected frame is ``frame_i(M_i⁻¹ q)``. More generally a
*source-to-target* RAS matrix ``B`` says that the tissue at source point ``p`` sits at target
point ``B p``; source resampled onto the target grid is ``source(B⁻¹ x)``
(:func:`resample`).

ANTs/ITK work in LPS and their transforms map points of the *fixed* (target) image to the
*moving* (source) image. :func:`ras_from_ants` and :func:`ants_from_ras` convert at this
boundary and nowhere else.

Motion parameters
-----------------
The six parameters describe the head's motion ``H_i = M_i⁻¹`` (tissue at reference point
``q`` is seen in frame ``i`` at ``H_i q``), written as ``H_i p = R (p - c) + c + t`` with
``c`` the RAS centre of the reference voxel grid (:func:`image_centre`). Euler convention:
extrinsic x-y-z, ``R = Rz(rot_z) · Ry(rot_y) · Rx(rot_x)`` (rotate about the fixed RAS x axis
first, then y, then z; right-handed; radians). Signs, as seen from the subject:

============  =====  ==================================================================
parameter     unit   positive value means the head …
============  =====  ==================================================================
``trans_x``   mm     moved towards the subject's right (+x)
``trans_y``   mm     moved anteriorly (+y)
``trans_z``   mm     moved superiorly (+z)
``rot_x``     rad    pitched nose-up (+y turns towards +z)
``rot_y``     rad    rolled: the top of the head tilts to the subject's right (+z → +x)
``rot_z``     rad    turned (yaw) towards the subject's left (+x → +y)
============  =====  ==================================================================

Framewise displacement is Power's, from these parameters with a 50 mm radius.

Estimation works on a *working grid*: frames smoothed at full resolution, cropped to the
head's bounding box and subsampled to about 4 mm (:func:`working_grid`), which is ~10× fewer
voxels and costs no accuracy for 6 mm-smoothed data (measured in
``benchmarks/results/hmc_coreg.md``).

``import ants`` costs seconds, so it happens inside the functions that register.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ketpet_bids.core.timing import select_reference_frames

#: RAS <-> LPS flip; it is its own inverse.
FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])
#: Radius (mm) of the sphere used to turn rotations into displacements (Power et al. 2012).
FD_RADIUS_MM = 50.0
#: Framewise displacement (mm) above which a frame is counted as moving in the summary.
FD_THRESHOLD_MM = 0.5
PARAM_NAMES = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")


@dataclass(frozen=True)
class RigidSchedule:
    """Multi-resolution schedule of a rigid Mattes-MI registration.

    Attributes
    ----------
    iterations, shrink_factors, smoothing_sigmas
        One entry per level (smoothing in voxels).
    sampling_rate
        Fraction of (masked) fixed voxels sampled by the metric.
    """

    iterations: tuple[int, ...]
    shrink_factors: tuple[int, ...]
    smoothing_sigmas: tuple[int, ...]
    sampling_rate: float = 0.25


def rigid_schedule(voxel_mm: float, levels_mm: tuple[float, ...] = (8.0, 4.0),
                   iterations: tuple[int, ...] = (100, 50),
                   sampling_rate: float = 0.25) -> RigidSchedule:
    """Schedule whose levels work at given resolutions (never finer than the data).

    Smoothing sigma is half the shrink factor (voxels). The default levels and iterations are
    the head-motion schedule on the ~4 mm working grid (:func:`working_grid`).

    Parameters
    ----------
    voxel_mm
        Mean voxel size of the fixed image (mm).
    levels_mm
        Target resolution of each level (mm), coarse to fine; levels that round to the same
        shrink factor are merged (the first one's iterations are kept).
    iterations
        Iterations per level.
    sampling_rate
        Fraction of the (masked) voxels of each level sampled by the metric.
    """
    levels: dict[int, int] = {}
    for level_mm, n_iter in zip(levels_mm, iterations, strict=True):
        levels.setdefault(max(1, round(level_mm / voxel_mm)), n_iter)
    return RigidSchedule(iterations=tuple(levels.values()),
                         shrink_factors=tuple(levels),
                         smoothing_sigmas=tuple(s // 2 for s in levels),
                         sampling_rate=float(sampling_rate))


#: Voxels sampled by the head-motion metric per level (~25 % of a head at 4 mm).
HMC_SAMPLES = 15000
#: Second-pass (refined reference) schedule: the finest level only, from the first estimate.
REFINE_LEVELS_MM = (4.0,)
REFINE_ITERATIONS = (50,)


def working_grid(mask: np.ndarray, affine: npt.ArrayLike, voxel_mm: float = 4.0,
                 margin_mm: float = 12.0) -> tuple[tuple[slice, ...], np.ndarray]:
    """Crop to the mask's bounding box (plus a margin) and subsample to about ``voxel_mm``.

    Parameters
    ----------
    mask
        Boolean ``(X, Y, Z)`` foreground on the full grid.
    affine
        Shape ``(4, 4)``, RAS affine of the full grid.
    voxel_mm
        Target voxel size; the step per axis is ``max(1, round(voxel_mm / voxel))``.
    margin_mm
        Margin kept around the mask (covers motion of that size).

    Returns
    -------
    slices
        Three ``slice(start, stop, step)``: ``data[slices]`` is the working image.
    working_affine
        Shape ``(4, 4)``: RAS affine of ``data[slices]`` (same world coordinates).
    """
    a = np.asarray(affine, dtype=float)
    voxel = np.linalg.norm(a[:3, :3], axis=0)
    step = np.maximum(1, np.round(voxel_mm / voxel)).astype(int)
    pad = np.ceil(margin_mm / voxel).astype(int)
    found = np.argwhere(mask)
    low = np.zeros(3, int) if found.size == 0 else np.maximum(found.min(axis=0) - pad, 0)
    high = (np.asarray(mask.shape) if found.size == 0
            else np.minimum(found.max(axis=0) + pad + 1, mask.shape))
    slices = tuple(slice(int(lo), int(hi), int(st)) for lo, hi, st in zip(low, high, step,
                                                                             strict=True))
    out = a @ np.diag([*step, 1.0])
    out[:3, 3] = (a @ np.append(low, 1.0))[:3]
    return slices, out


def refined_reference(frames: npt.ArrayLike, affine: npt.ArrayLike,
                      frame_to_reference: npt.ArrayLike, weights: npt.ArrayLike) -> np.ndarray:
    """Weighted mean of frames corrected with first-pass estimates (a sharper reference).

    Parameters
    ----------
    frames
        Shape ``(X, Y, Z, K)``: the (smoothed) frames that built the first reference.
    affine
        Shape ``(4, 4)``.
    frame_to_reference
        Shape ``(K, 4, 4)``: first-pass estimates.
    weights
        Shape ``(K,)``: frame durations (s).

    Returns
    -------
    numpy.ndarray
        Float32 ``(X, Y, Z)``: ``Σ_k w_k frame_k(M_k⁻¹ q) / Σ_k w_k``.
    """
    from ketpet_bids.core.timing import time_weighted_mean

    return time_weighted_mean(correct_frames(frames, affine, frame_to_reference), weights)


@dataclass(frozen=True)
class HMCPlan:
    """Which frames head-motion correction estimates and averages.

    Attributes
    ----------
    n_frames
        Number of frames ``T`` (1 for a 3D image).
    estimate
        Frames registered to the reference (a run ending at the last frame); frames before
        the first of them inherit its transform. Empty when estimation is skipped.
    reference
        Frames whose time-weighted mean (smoothed) is the registration reference.
    petref
        Frames whose corrected time-weighted mean is the PET reference.
    start_time_requested, start_time_used
        Seconds; ``start_time_used`` is the start of the first reference frame (None when
        skipped).
    skipped
        Why estimation was skipped, or None.
    warnings
        Messages for the user.
    """

    n_frames: int
    estimate: tuple[int, ...]
    reference: tuple[int, ...]
    petref: tuple[int, ...]
    start_time_requested: float
    start_time_used: float | None
    skipped: str | None
    warnings: tuple[str, ...]


def plan_hmc(frame_start: npt.ArrayLike, frame_duration: npt.ArrayLike, start_time: float, *,
             hmc_off: bool = False) -> HMCPlan:
    """Decide which frames to estimate and average.

    Frames starting at or after ``start_time`` are estimated and averaged; when none does
    (start time beyond the last frame), the last frame is the reference (so nothing moves)
    and the PET reference averages all frames. A single frame or ``hmc_off`` skips
    estimation.

    Parameters
    ----------
    frame_start, frame_duration
        Shape ``(T,)``, seconds.
    start_time
        Requested start (s), e.g. 120.
    hmc_off
        Skip estimation (identity transforms).

    Returns
    -------
    HMCPlan
    """
    sel = select_reference_frames(frame_start, frame_duration, start_time)
    n_frames = int(np.size(frame_start))
    if n_frames == 1:
        return HMCPlan(1, (), (0,), (0,), float(start_time), None,
                       "static (single-frame) PET", ())
    every = tuple(range(n_frames))
    chosen = tuple(int(i) for i in sel.indices)
    petref = every if sel.fallback else chosen
    late = (f"no frame starts at or after the HMC start time {start_time:g} s, so the PET "
            "reference averages all frames" if sel.fallback else "")
    if hmc_off:
        return HMCPlan(n_frames, (), petref, petref, float(start_time), None,
                       "disabled (--hmc-off)", (late,) if late else ())
    warnings = (f"{late}; the last frame (from {sel.start_time_used:g} s) is the motion "
                "reference, so no motion is corrected",) if late else ()
    return HMCPlan(n_frames, chosen, chosen, petref, float(start_time), sel.start_time_used,
                   None, warnings)


def summarise_hmc(fd: npt.ArrayLike, plan: HMCPlan, fwhm_mm: float) -> dict[str, Any]:
    """JSON-ready summary of head-motion correction (sidecar of the confounds table), with
    BIDS-style descriptions of the table's columns.

    Parameters
    ----------
    fd
        Shape ``(T,)``, framewise displacement (mm).
    plan
        The plan that was run.
    fwhm_mm
        Smoothing applied before estimation (mm).
    """
    fd = np.asarray(fd, dtype=float)
    columns = {n: {"Description": f"Head translation along RAS {n[-1]}", "Units": "mm"}
               for n in PARAM_NAMES[:3]}
    columns |= {n: {"Description": f"Head rotation about RAS {n[-1]} through the reference "
                                   "centre (R = Rz·Ry·Rx)", "Units": "rad"}
                for n in PARAM_NAMES[3:]}
    columns["framewise_displacement"] = {
        "Description": f"Power framewise displacement ({FD_RADIUS_MM:g} mm radius); 0 for the "
                       "first frame", "Units": "mm"}
    return {
        **columns,
        "Method": "per-frame rigid registration (ANTs, Mattes mutual information) to the "
                  "time-weighted mean of the frames after the start time",
        "HMCSkipped": plan.skipped,
        "HMCStartTimeRequested": plan.start_time_requested,
        "HMCStartTimeUsed": plan.start_time_used,
        "SmoothingFWHM": float(fwhm_mm),
        "NumberOfFrames": plan.n_frames,
        "FramesEstimated": len(plan.estimate),
        "ReferenceFrames": list(plan.reference),
        "PETReferenceFrames": list(plan.petref),
        "MaxFramewiseDisplacement": float(fd.max()),
        "MeanFramewiseDisplacement": float(fd.mean()),
        "FramewiseDisplacementThreshold": FD_THRESHOLD_MM,
        "FramesAboveThreshold": int(np.sum(fd > FD_THRESHOLD_MM)),
        "Warnings": list(plan.warnings),
    }


# --- geometry -----------------------------------------------------------------------------

def ants_geometry(affine: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ANTs (LPS) origin, spacing and direction of a NIfTI RAS affine.

    Parameters
    ----------
    affine
        Shape ``(4, 4)``, voxel ``(i, j, k)`` → RAS mm.

    Returns
    -------
    origin, spacing, direction
        Shapes ``(3,)``, ``(3,)`` (mm) and ``(3, 3)`` (unit columns), in LPS.
    """
    lps = FLIP @ np.asarray(affine, dtype=float)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    return lps[:3, 3].copy(), spacing, lps[:3, :3] / spacing


def to_ants(data: np.ndarray, affine: npt.ArrayLike) -> Any:
    """A 3D array with a NIfTI affine as a float32 ``ants.ANTsImage`` (same voxel order)."""
    import ants

    origin, spacing, direction = ants_geometry(affine)
    return ants.from_numpy(np.asarray(data, dtype=np.float32), origin=origin.tolist(),
                           spacing=spacing.tolist(), direction=direction)


def ras_from_ants(fixed_to_moving_lps: npt.ArrayLike) -> np.ndarray:
    """Source-to-target RAS matrix ``B`` from an ANTs fixed→moving LPS matrix ``T``.

    The fixed image is the target and the moving image the source; ``B = (F T F)⁻¹`` with
    ``F = diag(-1, -1, 1, 1)``.
    """
    return np.linalg.inv(FLIP @ np.asarray(fixed_to_moving_lps, dtype=float) @ FLIP)


def ants_from_ras(source_to_target_ras: npt.ArrayLike) -> np.ndarray:
    """ANTs fixed→moving LPS matrix ``T = F B⁻¹ F`` from a source-to-target RAS matrix ``B``."""
    return FLIP @ np.linalg.inv(np.asarray(source_to_target_ras, dtype=float)) @ FLIP


def itk_to_matrix(parameters: npt.ArrayLike, fixed_parameters: npt.ArrayLike) -> np.ndarray:
    """4×4 matrix of an ITK ``MatrixOffsetTransformBase`` (``x → A (x - c) + t + c``).

    Parameters
    ----------
    parameters
        Shape ``(12,)``: the 3×3 matrix ``A`` row by row, then the translation ``t``.
    fixed_parameters
        Shape ``(3,)``: the centre ``c``.
    """
    p = np.asarray(parameters, dtype=float)
    centre = np.asarray(fixed_parameters, dtype=float)
    matrix = np.eye(4)
    matrix[:3, :3] = p[:9].reshape(3, 3)
    matrix[:3, 3] = p[9:12] + centre - matrix[:3, :3] @ centre
    return matrix


def matrix_to_itk(matrix: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """ITK ``(parameters, fixed_parameters)`` of a 4×4 affine, with centre 0."""
    m = np.asarray(matrix, dtype=float)
    return np.concatenate([m[:3, :3].ravel(), m[:3, 3]]), np.zeros(3)


def image_centre(shape: tuple[int, ...], affine: npt.ArrayLike) -> np.ndarray:
    """RAS coordinates (mm) of the centre of a voxel grid, shape ``(3,)``."""
    centre_vox = (np.asarray(shape[:3], dtype=float) - 1.0) / 2.0
    return (np.asarray(affine, dtype=float) @ np.append(centre_vox, 1.0))[:3]


# --- parameters and framewise displacement ---------------------------------------------------

def rotation_matrix(rot: npt.ArrayLike) -> np.ndarray:
    """``Rz(rot[2]) · Ry(rot[1]) · Rx(rot[0])``, shape (3, 3), for angles ``rot`` (rad) about the
    x, y and z axes."""
    angles = np.asarray(rot, dtype=float)
    (cx, cy, cz), (sx, sy, sz) = np.cos(angles), np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def params_to_matrix(params: npt.ArrayLike, centre: npt.ArrayLike) -> np.ndarray:
    """``frame_to_reference`` matrix ``M`` of six motion parameters (see module docstring).

    Parameters
    ----------
    params
        Shape ``(6,)``: trans_x, trans_y, trans_z (mm), rot_x, rot_y, rot_z (rad).
    centre
        Shape ``(3,)``, RAS mm: the reference image centre.

    Returns
    -------
    numpy.ndarray
        Shape ``(4, 4)``: ``M = H⁻¹`` with ``H p = R (p - c) + c + t``.
    """
    p = np.asarray(params, dtype=float)
    c = np.asarray(centre, dtype=float)
    head = np.eye(4)
    head[:3, :3] = rotation_matrix(p[3:])
    head[:3, 3] = c + p[:3] - head[:3, :3] @ c
    return np.linalg.inv(head)


def matrix_to_params(frame_to_reference: npt.ArrayLike, centre: npt.ArrayLike) -> np.ndarray:
    """Six motion parameters of a rigid ``frame_to_reference`` matrix (inverse of
    :func:`params_to_matrix`; rotations within ±π/2 about y).

    Returns
    -------
    numpy.ndarray
        Shape ``(6,)``: trans_x, trans_y, trans_z (mm), rot_x, rot_y, rot_z (rad).
    """
    head = np.linalg.inv(np.asarray(frame_to_reference, dtype=float))
    r = head[:3, :3]
    rot = np.array([np.arctan2(r[2, 1], r[2, 2]),
                    np.arcsin(np.clip(-r[2, 0], -1.0, 1.0)),
                    np.arctan2(r[1, 0], r[0, 0])])
    c = np.asarray(centre, dtype=float)
    return np.concatenate([head[:3, 3] - c + r @ c, rot])


def framewise_displacement(params: npt.ArrayLike, radius_mm: float = FD_RADIUS_MM) -> np.ndarray:
    """Power framewise displacement.

    Parameters
    ----------
    params
        Shape ``(T, 6)``: translations (mm) then rotations (rad), per frame.
    radius_mm
        Radius of the sphere turning rotations into arc lengths.

    Returns
    -------
    numpy.ndarray
        Shape ``(T,)``, mm: ``FD_t = Σ|Δtrans| + radius · Σ|Δrot|``, with ``FD_0 = 0``.
    """
    p = np.atleast_2d(np.asarray(params, dtype=float))
    delta = np.abs(np.diff(p, axis=0))
    return np.concatenate([[0.0], delta[:, :3].sum(axis=1) + radius_mm * delta[:, 3:].sum(axis=1)])


def expand_transforms(n_frames: int, indices: npt.ArrayLike,
                      matrices: npt.ArrayLike) -> np.ndarray:
    """Per-frame matrices for all frames from those estimated.

    Frames before the first estimated frame inherit its matrix.

    Parameters
    ----------
    n_frames
        Total number of frames ``T``.
    indices
        Shape ``(K,)``: the estimated frames, increasing, a contiguous run ending at ``T - 1``.
    matrices
        Shape ``(K, 4, 4)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(T, 4, 4)``.
    """
    idx = np.asarray(indices, dtype=int)
    mats = np.asarray(matrices, dtype=float).reshape(-1, 4, 4)
    if idx.size != mats.shape[0] or idx.size == 0 or not np.array_equal(
            idx, np.arange(n_frames - idx.size, n_frames)):
        raise ValueError(f"estimated frames {idx.tolist()} must be the last {mats.shape[0]} "
                         f"of {n_frames} frames")
    out = np.empty((n_frames, 4, 4))
    out[: idx[0]] = mats[0]
    out[idx] = mats
    return out


# --- preprocessing, estimation and resampling ---------------------------------------------

def smooth_and_mask(data: np.ndarray, affine: npt.ArrayLike, fwhm_mm: float,
                    threshold: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian smoothing then background removal, for registration only.

    Parameters
    ----------
    data
        Shape ``(X, Y, Z)``.
    affine
        Shape ``(4, 4)``, for the voxel sizes.
    fwhm_mm
        Full width at half maximum of the Gaussian (mm); 0 skips smoothing.
    threshold
        Voxels below ``threshold`` × the 99th percentile of the smoothed image are background.

    Returns
    -------
    smoothed, mask
        Float32 ``(X, Y, Z)`` with background set to 0, and the boolean foreground mask.
    """
    voxel = np.linalg.norm(np.asarray(affine, dtype=float)[:3, :3], axis=0)
    sigma = fwhm_mm / np.sqrt(8.0 * np.log(2.0)) / voxel
    image = np.nan_to_num(np.asarray(data, dtype=np.float32))
    smoothed = ndimage.gaussian_filter(image, sigma) if fwhm_mm > 0 else image
    mask = smoothed > threshold * np.percentile(smoothed, 99.0)
    return np.where(mask, smoothed, 0.0).astype(np.float32), mask


def register_rigid(fixed: np.ndarray, fixed_affine: npt.ArrayLike, moving: np.ndarray,
                   moving_affine: npt.ArrayLike, *, schedule: RigidSchedule,
                   fixed_mask: np.ndarray | None = None,
                   initial: npt.ArrayLike | None = None, seed: int = 0,
                   nthreads: int = 1) -> np.ndarray:
    """Rigid Mattes-MI registration of ``moving`` (source) to ``fixed`` (target) with ANTs.

    Parameters
    ----------
    fixed, moving
        3D arrays with their RAS affines ``(4, 4)``.
    schedule
        Iterations, shrink factors, smoothing and sampling.
    fixed_mask
        Boolean array on the fixed grid limiting the metric, or None.
    initial
        Initial source-to-target RAS matrix; None aligns the intensity centres of mass.
    seed
        Seed of the metric's random sampling (``ants.config.set_ants_deterministic``).
    nthreads
        ITK threads (``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``; ITK reads it once per process).

    Returns
    -------
    numpy.ndarray
        Shape ``(4, 4)``: source-to-target RAS matrix ``B`` (tissue at moving point ``p`` is
        at fixed point ``B p``).
    """
    ants = import_ants(seed, nthreads)
    sched = schedule
    with tempfile.TemporaryDirectory(prefix="ketpet_reg_") as tmp:
        init = None
        if initial is not None:
            params, centre = matrix_to_itk(ants_from_ras(initial))
            tx = ants.create_ants_transform(transform_type="AffineTransform",
                                            precision="double", dimension=3,
                                            parameters=params, fixed_parameters=centre)
            init = [str(Path(tmp) / "initial.mat")]
            ants.write_transform(tx, init[0])
        mask = None if fixed_mask is None else to_ants(fixed_mask.astype(np.float32),
                                                       fixed_affine)
        result = ants.registration(
            to_ants(fixed, fixed_affine), to_ants(moving, moving_affine),
            type_of_transform="Rigid", initial_transform=init, mask=mask,
            outprefix=str(Path(tmp) / "reg_"), aff_metric="mattes", aff_sampling=32,
            aff_random_sampling_rate=sched.sampling_rate, aff_iterations=sched.iterations,
            aff_shrink_factors=sched.shrink_factors, aff_smoothing_sigmas=sched.smoothing_sigmas)
        tx = ants.read_transform(result["fwdtransforms"][0])
        lps = itk_to_matrix(tx.parameters, tx.fixed_parameters)
    return ras_from_ants(lps)


def estimate_frame_motion(frame: np.ndarray, reference: np.ndarray, affine: npt.ArrayLike,
                          reference_mask: np.ndarray | None = None, *,
                          levels_mm: tuple[float, ...] = (8.0, 4.0),
                          iterations: tuple[int, ...] = (100, 50),
                          initial: npt.ArrayLike | None = None, seed: int = 0,
                          nthreads: int = 1) -> np.ndarray:
    """``frame_to_reference`` matrix of one (pre-smoothed, background-masked) frame.

    Parameters
    ----------
    frame, reference
        Shape ``(X, Y, Z)`` on the same grid (:func:`smooth_and_mask` output, usually cropped
        and subsampled by :func:`working_grid`).
    affine
        Shape ``(4, 4)``, the grid's RAS affine.
    reference_mask
        Foreground of the reference (dilated by ~8 mm for the metric), or None.
    levels_mm, iterations
        Levels of :func:`rigid_schedule`; the metric samples about :data:`HMC_SAMPLES`
        voxels of the (dilated) mask per level.
    initial
        Starting ``frame_to_reference`` matrix (e.g. a first-pass estimate); None starts
        from the alignment of the intensity centres of mass.
    seed, nthreads
        As in :func:`register_rigid`.

    Returns
    -------
    numpy.ndarray
        Shape ``(4, 4)``: ``M`` with ``frame(p) = reference(M p)``; exactly the identity
        when ``frame`` equals ``reference`` (e.g. a single reference frame).
    """
    if np.array_equal(frame, reference):
        return np.eye(4)
    voxel = float(np.mean(ants_geometry(affine)[1]))
    mask = None if reference_mask is None else ndimage.binary_dilation(
        reference_mask, iterations=max(1, round(8.0 / voxel)))
    n_voxels = frame.size if mask is None else int(mask.sum())
    schedule = rigid_schedule(voxel, levels_mm, iterations,
                              sampling_rate=min(1.0, HMC_SAMPLES / max(n_voxels, 1)))
    return register_rigid(reference, affine, frame, affine, schedule=schedule, fixed_mask=mask,
                          initial=initial, seed=seed, nthreads=nthreads)


def resample(source: np.ndarray, source_affine: npt.ArrayLike, source_to_target: npt.ArrayLike,
             target_shape: tuple[int, int, int], target_affine: npt.ArrayLike,
             order: int = 1) -> np.ndarray:
    """Resample ``source`` onto a target grid: ``out(x) = source(B⁻¹ x)``.

    Parameters
    ----------
    source
        Shape ``(X, Y, Z)``.
    source_affine, target_affine
        Shape ``(4, 4)`` RAS affines.
    source_to_target
        Shape ``(4, 4)``: RAS matrix ``B`` (tissue at source point ``p`` is at target ``B p``).
    target_shape
        Output grid shape.
    order
        Spline order (1 = trilinear, no overshoot); outside the source field of view is 0.
        When the grids coincide and ``B`` is the identity the data are returned unchanged.

    Returns
    -------
    numpy.ndarray
        Float32 array of ``target_shape``.
    """
    vox = (np.linalg.inv(np.asarray(source_affine, dtype=float))
           @ np.linalg.inv(np.asarray(source_to_target, dtype=float))
           @ np.asarray(target_affine, dtype=float))
    if tuple(source.shape) == tuple(target_shape) and np.allclose(vox, np.eye(4), atol=1e-9):
        return np.array(source, dtype=np.float32)
    return ndimage.affine_transform(np.asarray(source, dtype=np.float32), vox[:3, :3],
                                    offset=vox[:3, 3], output_shape=tuple(target_shape),
                                    order=order, mode="constant", cval=0.0).astype(np.float32)


def correct_frames(frames: Any, affine: npt.ArrayLike, frame_to_reference: npt.ArrayLike,
                   order: int = 1) -> np.ndarray:
    """Resample every frame once, from the original data, with its own transform.

    Parameters
    ----------
    frames
        4D array-like ``(X, Y, Z, T)`` supporting ``frames[..., t]`` (e.g. a nibabel
        ``dataobj``: one frame is read at a time).
    affine
        Shape ``(4, 4)``, the grid's RAS affine (output on the same grid).
    frame_to_reference
        Shape ``(T, 4, 4)``. Frames whose matrix is the identity are copied unchanged.
    order
        Spline order of :func:`resample`.

    Returns
    -------
    numpy.ndarray
        Float32 ``(X, Y, Z, T)``: ``out[..., t](q) = frame_t(M_t⁻¹ q)``.
    """
    mats = np.asarray(frame_to_reference, dtype=float)
    shape = tuple(frames.shape[:3])
    out = np.empty((*shape, mats.shape[0]), dtype=np.float32)
    for t, m in enumerate(mats):
        frame = np.asarray(frames[..., t], dtype=np.float32)
        out[..., t] = resample(frame, affine, m, shape, affine, order=order)
    return out


def import_ants(seed: int = 0, nthreads: int = 1) -> Any:
    """Import ants with reproducible registration and ``nthreads`` ITK threads.

    ITK reads ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` once, when a process first uses it; if
    ITK was used before the variable was set, registrations are not bit-reproducible (measured
    here). Processes that run registrations should therefore set it early (the nipype
    interfaces call this before any ITK use in their worker). ITK takes seed 0 to mean "seed
    from the clock" (measured: repeated runs differ by up to 0.07 mm), so 0 is replaced by 1.
    """
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(max(1, int(nthreads)))
    import ants

    if hasattr(ants, "config") and hasattr(ants.config, "set_ants_deterministic"):
        ants.config.set_ants_deterministic(True, seed or 1)  # seeds the metric sampling
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(max(1, int(nthreads)))  # it set 1
    return ants
