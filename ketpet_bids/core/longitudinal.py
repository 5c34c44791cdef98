"""Unbiased within-subject anatomical reference for longitudinal studies.

With ``--anat-reference unbiased`` a participant's sessions share one T1w that favours none of
them: the sessions' T1w images are rigidly aligned (same brain, different days) and averaged
in a *mid-space*, the rigid "middle" of their poses (Reuter et al. 2012, NeuroImage 61:1402,
rigid only). Regions drawn once on the average are then identical across sessions.

Method
------
1. Every session's T1w is registered rigidly to the first (ANTs, Mattes mutual information,
   metric limited to the first T1w's head, levels 8, 4 and 2 mm, seeded with
   ``ants.config.set_ants_deterministic``), giving the RAS matrices ``B_i`` (tissue at
   session-``i`` world point ``p`` sits at first-session world point ``B_i p``; ``B_0 = I``).
2. The mid-space is the exponential barycentre of the ``B_i`` in the rigid group: the
   mid-world → first-world matrix ``M`` with ``Σ_i log(M⁻¹ B_i) = 0``, found by the fixed
   point ``M ← M exp(mean_i log(M⁻¹ B_i))`` from ``M = I`` (its first step is
   ``exp(mean_i log B_i)``). Each session's session-world → mid-world matrix is
   ``S_i = M⁻¹ B_i``; with two sessions ``S_0 = B_1^(-1/2)`` and ``S_1 = B_1^(1/2)``: each is
   moved by half of the relative transform. The barycentre is the same whichever session is
   registered to (up to registration error), so the session order does not matter.
3. Every T1w is resampled once (trilinear) onto the first T1w's voxel grid placed in
   mid-world coordinates (so the average has the first T1w's affine, read as mid-world),
   scaled so that all sessions have the same median over the head voxels they all cover, and
   averaged, each voxel over the sessions whose field of view covers it.

No bias-field correction is applied here: N4 runs later, on the average, in the anatomy
workflow.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
from scipy import linalg, ndimage

from ketpet_bids.core.motion import register_rigid, resample, rigid_schedule, smooth_and_mask

#: Registration levels (mm, coarse to fine) and iterations of the session → first rigid fit.
LEVELS_MM = (8.0, 4.0, 2.0)
ITERATIONS = (100, 60, 30)
#: Smoothing (mm FWHM) and threshold (× 99th percentile) of the head foreground.
HEAD_FWHM_MM = 4.0
HEAD_THRESHOLD = 0.1
#: Dilation (mm) of the first T1w's head mask that limits the registration metric.
METRIC_MARGIN_MM = 6.0
#: Convergence of the barycentre fixed point (largest entry of the log step) and its cap.
BARYCENTRE_TOL = 1e-10
BARYCENTRE_MAX_ITER = 50


def load_t1w(path: str | Path) -> nib.Nifti1Image:
    """A 3D T1w image (a 4D file with one volume is accepted), data as float32.

    Raises
    ------
    ValueError
        If the image is not 3D.
    """
    image = nib.load(path)
    data = image.get_fdata(dtype=np.float32)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{path}: expected a 3D T1w image, got shape {data.shape}")
    return nib.Nifti1Image(data, image.affine, image.header)


def head_mask(data: np.ndarray, affine: npt.ArrayLike) -> np.ndarray:
    """Head foreground: voxels above :data:`HEAD_THRESHOLD` × the 99th percentile after
    :data:`HEAD_FWHM_MM` smoothing. Boolean, shape of ``data``."""
    return smooth_and_mask(data, affine, HEAD_FWHM_MM, HEAD_THRESHOLD)[1]


def register_session(fixed: np.ndarray, fixed_affine: npt.ArrayLike, moving: np.ndarray,
                     moving_affine: npt.ArrayLike, *, seed: int = 0,
                     nthreads: int = 1) -> np.ndarray:
    """Rigid Mattes-MI registration of one session's T1w (moving) to another's (fixed).

    Parameters
    ----------
    fixed, moving
        Shape ``(X, Y, Z)`` T1w images with RAS affines ``(4, 4)``.
    seed, nthreads
        Seed of the metric sampling and ITK threads.

    Returns
    -------
    numpy.ndarray
        Shape ``(4, 4)``: RAS matrix ``B`` (tissue at moving-world point ``p`` sits at
        fixed-world point ``B p``).
    """
    voxel = float(np.mean(np.linalg.norm(np.asarray(fixed_affine)[:3, :3], axis=0)))
    mask = ndimage.binary_dilation(head_mask(fixed, fixed_affine),
                                   iterations=max(1, round(METRIC_MARGIN_MM / voxel)))
    return register_rigid(fixed, fixed_affine, moving, moving_affine,
                          schedule=rigid_schedule(voxel, LEVELS_MM, ITERATIONS),
                          fixed_mask=mask, seed=seed, nthreads=nthreads)


def rigid_barycentre(matrices: npt.ArrayLike) -> np.ndarray:
    """Exponential barycentre ``M`` of rigid matrices: ``Σ_i log(M⁻¹ A_i) = 0``.

    Parameters
    ----------
    matrices
        Shape ``(N, 4, 4)``, rigid (rotations below 180°).

    Returns
    -------
    numpy.ndarray
        Shape ``(4, 4)``, rigid; exactly the identity when every input is. For two matrices
        ``A, I`` it is ``A^(1/2)``. It is equivariant: the barycentre of ``C A_i D`` is
        ``C M D``.
    """
    mats = np.asarray(matrices, dtype=float).reshape(-1, 4, 4)
    mean = np.eye(4)
    for _ in range(BARYCENTRE_MAX_ITER):
        step = np.mean([np.real(linalg.logm(np.linalg.solve(mean, m))) for m in mats], axis=0)
        mean = mean @ linalg.expm(step)
        if np.abs(step).max() < BARYCENTRE_TOL:
            break
    return mean


def average_in_mid_space(images: list[nib.Nifti1Image],
                         session_to_mid: list[np.ndarray]) -> np.ndarray:
    """Intensity-normalised average of T1w images on the first image's grid in mid-world.

    Parameters
    ----------
    images
        ``N`` 3D T1w images (float32 data, RAS affines).
    session_to_mid
        ``N`` RAS matrices ``S_i`` (tissue at session-``i`` world point ``p`` sits at mid-world
        point ``S_i p``).

    Returns
    -------
    numpy.ndarray
        Float32, shape of the first image: ``Σ_i k_i T_i(S_i⁻¹ x) / Σ_i c_i(x)``, with ``c_i``
        the (trilinear) field-of-view coverage of session ``i`` and ``k_i`` scaling each
        session's median over the common head to the mean of those medians; 0 where no session
        covers. The first image unchanged when ``N = 1`` and ``S_0 = I``.
    """
    shape, affine = images[0].shape, images[0].affine
    moved = np.stack([resample(np.asanyarray(img.dataobj), img.affine, s, shape, affine)
                      for img, s in zip(images, session_to_mid, strict=True)])
    cover = np.stack([resample(np.ones(img.shape, np.float32), img.affine, s, shape, affine)
                      for img, s in zip(images, session_to_mid, strict=True)])
    common = np.all(cover > 0.999, axis=0) & head_mask(moved.mean(axis=0), affine)
    medians = np.median(moved[:, common], axis=1)
    scale = (medians.mean() / medians).astype(np.float32)
    total = np.tensordot(scale, moved, axes=1)
    weight = cover.sum(axis=0)
    return np.divide(total, weight, out=np.zeros(shape, np.float32),
                     where=weight > 0).astype(np.float32)


def unbiased_reference(t1ws: list[Path], *, seed: int = 0,
                       nthreads: int = 1) -> tuple[nib.Nifti1Image, list[np.ndarray]]:
    """Mid-space average T1w of a participant's sessions (module docstring).

    Parameters
    ----------
    t1ws
        The sessions' T1w files (3D NIfTI), first = the registration target and the grid of
        the result; at least one.
    seed, nthreads
        Seed of the registrations' metric sampling and ITK threads.

    Returns
    -------
    average
        Float32 NIfTI on the first T1w's grid and affine, in mid-world coordinates (the
        first T1w's units of intensity, up to the common scaling).
    session_to_mid
        One ``(4, 4)`` RAS matrix per input, in input order: tissue at session-world point
        ``p`` sits at mid-world point ``S_i p``; the identity for a single session.
    """
    if not t1ws:
        raise ValueError("unbiased_reference needs at least one T1w")
    images = [load_t1w(path) for path in t1ws]
    first = images[0]
    to_first = [np.eye(4)] + [
        register_session(np.asanyarray(first.dataobj), first.affine,
                         np.asanyarray(img.dataobj), img.affine, seed=seed, nthreads=nthreads)
        for img in images[1:]]
    mid_to_first = rigid_barycentre(to_first)
    session_to_mid = [np.linalg.solve(mid_to_first, b) for b in to_first]
    out = nib.Nifti1Image(average_in_mid_space(images, session_to_mid), first.affine,
                          first.header)
    out.set_data_dtype(np.float32)
    out.header.set_slope_inter(1.0, 0.0)
    return out, session_to_mid
