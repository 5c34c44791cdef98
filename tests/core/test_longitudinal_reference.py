"""Unbiased longitudinal T1w reference (``core.longitudinal``, its interface) against truth.

Phantom sessions: the simulator's labels are rasterised once at 1.25 mm on an odd grid (so the
first session's 2.5 mm voxel centres fall exactly on fine voxel centres); each session's labels
are sampled (nearest) on its own 2.5 mm grid at a known pose and rendered as a T1w with 2 %
noise of its own seed. A pose ``P_i`` (rigid, about the phantom origin near the anterior
commissure) places the tissue at phantom point ``u`` at session-world point ``P_i u``; the first
session has ``P_0 = I``, so the true session → first matrix is ``B_i = P_i⁻¹`` and the true
session → mid matrices are ``S_i = M⁻¹ B_i`` with ``M`` the barycentre of the ``B_i``
(``B_1^(1/2)`` for two sessions, computed here with ``expm(logm(·)/2)``).

Accuracy is the mean distance (mm) between where an estimated and the true matrix send the
brain voxels of the first session. Measured (2-core shared VM, 2026-11-30, seed 0): two
sessions 6.1 mm / 5° apart — each session rotated by 2.521° (truth 2.500°) and its brain
centre moved by 3.053 mm (truth 3.052 mm), error 0.035 mm / 0.04°; swapped order 0.03 mm from
the original mid-space; three sessions 0.034, 0.042 and 0.070 mm. Across fresh processes the
seeded registration gave one of two results 0.02 mm apart. Tolerances 0.3 mm / 0.3° (~10 % of
the 2.5 mm voxel, ~10× the errors measured).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import linalg, ndimage

from ketpet_bids.core.coreg import read_itk_affine
from ketpet_bids.core.longitudinal import (
    average_in_mid_space,
    load_t1w,
    rigid_barycentre,
    unbiased_reference,
)
from ketpet_bids.core.motion import resample
from ketpet_bids.interfaces.longitudinal import UnbiasedReference
from ketpet_bids.sim.phantom import BY_NAME, REGIONS, build_labels, grid_to_phantom, t1w_image

FINE_MM, FINE_SHAPE = 1.25, (149, 181, 149)
VOXEL_MM, SHAPE = 2.5, (72, 88, 72)
TOL_MM, TOL_DEG = 0.3, 0.3
#: White-matter threshold (× the white-matter level): midway between brainstem (0.85) and
#: white matter (1.0), the two brightest tissues of the phantom T1w.
WM_THRESHOLD = 0.925
#: Dice of the thresholded white matter of the average vs the truth in mid-space. Measured:
#: average 0.954, one session resampled with the true transform 0.957, average without
#: registration 0.925, transforms applied in the wrong direction 0.855.
MIN_DICE = 0.94
#: Correlation with the noise-free truth rendering in mid-space (head voxels). Measured:
#: 0.986; without registration 0.958; wrong direction 0.847. (Not 0.99: the truth rendering
#: samples labels by nearest neighbour, the average interpolates.)
MIN_CORRELATION = 0.98


def pose(axis, angle_deg: float, trans_mm) -> np.ndarray:
    """Rigid RAS matrix: rotation by ``angle_deg`` about ``axis`` through the origin, then
    translation ``trans_mm``."""
    u = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    skew = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    matrix = np.eye(4)
    matrix[:3, :3] = linalg.expm(np.deg2rad(angle_deg) * skew)
    matrix[:3, 3] = trans_mm
    return matrix


POSE_2 = pose((1.0, -0.5, 0.8), 5.0, (4.0, -3.0, 3.5))      # 5°, 6.1 mm
POSE_3 = pose((-0.3, 1.0, 0.2), 4.0, (-3.0, 2.5, -4.0))     # 4°, 5.6 mm


def angle_deg(matrix: np.ndarray) -> float:
    """Rotation angle (degrees) of a rigid matrix."""
    return float(np.degrees(np.arccos(np.clip((np.trace(matrix[:3, :3]) - 1) / 2, -1, 1))))


def mean_distance(a: np.ndarray, b: np.ndarray, points: np.ndarray) -> float:
    """Mean distance (mm) between ``a p`` and ``b p`` over points ``(N, 4)``."""
    return float(np.linalg.norm((points @ (a - b).T)[:, :3], axis=1).mean())


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.sum(a & b) / (a.sum() + b.sum()))


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """Session writer: ``write(name, pose, shift_mm, seed) -> (path, labels, affine)``."""
    fine = build_labels(FINE_SHAPE, FINE_MM)
    fine_affine = grid_to_phantom(FINE_SHAPE, FINE_MM)
    folder = tmp_path_factory.mktemp("sessions")

    def write(name: str, matrix: np.ndarray, shift_mm=(0.0, 0.0, 0.0), seed: int = 0):
        affine = grid_to_phantom(SHAPE, VOXEL_MM)
        affine[:3, 3] += shift_mm
        labels = resample(fine, fine_affine, matrix, SHAPE, affine, order=0).astype(np.uint8)
        path = folder / f"{name}_T1w.nii.gz"
        nib.save(nib.Nifti1Image(t1w_image(labels, np.random.default_rng(seed), 0.02), affine),
                 path)
        return path, labels, affine

    write.fine = (fine, fine_affine)
    return write


@pytest.fixture(scope="module")
def sessions(phantom):
    """Three sessions: the reference pose, ``POSE_2`` and ``POSE_3`` (own grids and noise)."""
    return [phantom("ses-1", np.eye(4), seed=1),
            phantom("ses-2", POSE_2, (1.1, -0.7, 0.4), seed=2),
            phantom("ses-3", POSE_3, (-0.6, 0.9, -1.3), seed=3)]


@pytest.fixture(scope="module")
def brain_points(sessions):
    """RAS points (N, 4) of the first session's brain voxels."""
    _, labels, affine = sessions[0]
    brain = np.isin(labels, [r.index for r in REGIONS if r.in_atlas])
    return np.c_[np.argwhere(brain), np.ones(brain.sum())] @ affine.T


@pytest.fixture(scope="module")
def pair(sessions, tmp_path_factory):
    """Two sessions through the nipype interface: (average image, session → mid matrices)."""
    cwd = tmp_path_factory.mktemp("interface")
    result = UnbiasedReference(t1w_files=[str(s[0]) for s in sessions[:2]], seed=0).run(
        cwd=str(cwd))
    matrices = [read_itk_affine(p) for p in result.outputs.session_to_reference]
    return nib.load(result.outputs.t1w), matrices


def true_session_to_mid(poses: list[np.ndarray]) -> list[np.ndarray]:
    """``S_i = M⁻¹ P_i⁻¹`` with ``M`` the barycentre of the true ``B_i = P_i⁻¹``."""
    to_first = [np.linalg.inv(p) for p in poses]
    mid = (linalg.expm(0.5 * np.real(linalg.logm(to_first[1]))) if len(poses) == 2
           else rigid_barycentre(to_first))
    return [np.linalg.solve(mid, b) for b in to_first]


def wm_sharpness(average: np.ndarray, phantom, first_to_mid: np.ndarray,
                 affine: np.ndarray) -> tuple[float, float]:
    """Dice of the thresholded white matter and correlation with the noise-free rendering,
    against the truth labels placed in mid-space (first session's grid)."""
    fine, fine_affine = phantom.fine
    truth = resample(fine, fine_affine, first_to_mid, SHAPE, affine, order=0).astype(np.uint8)
    wm = truth == BY_NAME["white-matter"].index
    level = np.median(average[ndimage.binary_erosion(wm, iterations=2)])
    head = truth > 0
    clean = t1w_image(truth, np.random.default_rng(0), 0.0)
    return (dice(average > WM_THRESHOLD * level, wm),
            float(np.corrcoef(average[head], clean[head])[0, 1]))


def test_rigid_barycentre_is_half_and_ignores_the_reference():
    """Analytic: the barycentre of (I, A) is the principal square root of A; for three poses it
    does not depend on which one the others are expressed against, and Σ log(M⁻¹ A_i) = 0.
    Tolerance 1e-9 (double precision, logm/expm of well-conditioned 4×4)."""
    half = rigid_barycentre([np.eye(4), POSE_2])
    np.testing.assert_allclose(half, np.real(linalg.sqrtm(POSE_2)), atol=1e-9)
    mats = [np.eye(4), POSE_2, POSE_3]
    mid = rigid_barycentre(mats)
    residual = sum(np.real(linalg.logm(np.linalg.solve(mid, m))) for m in mats)
    assert np.abs(residual).max() < 1e-9
    rebased = rigid_barycentre([np.linalg.solve(POSE_2, m) for m in mats])
    np.testing.assert_allclose(rebased, np.linalg.solve(POSE_2, mid), atol=1e-9)
    np.testing.assert_array_equal(rigid_barycentre([np.eye(4)]), np.eye(4))


def test_two_sessions_each_move_half(pair, brain_points):
    """(a) Two sessions 6.1 mm / 5° apart: the session → mid matrices are inverses of each
    other, each rotates by half the true angle and moves the brain centre by the true half
    translation (within 0.3° / 0.3 mm), and each is within 0.3 mm of the truth."""
    _, estimated = pair
    truth = true_session_to_mid([np.eye(4), POSE_2])
    np.testing.assert_allclose(estimated[0] @ estimated[1], np.eye(4), atol=1e-9)
    assert abs(angle_deg(truth[0]) - 2.5) < 1e-9
    for est, true in zip(estimated, truth, strict=True):
        assert abs(angle_deg(est) - angle_deg(true)) < TOL_DEG
        assert abs(np.linalg.norm(est[:3, 3]) - np.linalg.norm(true[:3, 3])) < TOL_MM
        assert angle_deg(est @ np.linalg.inv(true)) < TOL_DEG
        assert mean_distance(est, true, brain_points) < TOL_MM


def test_average_is_sharp(pair, sessions, phantom):
    """(b) The mid-space average matches the truth in mid-space (Dice and correlation bounds
    above), and an average of the same images without registration fails them."""
    image, _ = pair
    affine = sessions[0][2]
    np.testing.assert_allclose(image.affine, affine)
    first_to_mid = true_session_to_mid([np.eye(4), POSE_2])[0]
    wm_dice, corr = wm_sharpness(image.get_fdata(dtype=np.float32), phantom, first_to_mid,
                                 affine)
    assert wm_dice >= MIN_DICE and corr >= MIN_CORRELATION, (wm_dice, corr)
    unregistered = average_in_mid_space([load_t1w(s[0]) for s in sessions[:2]],
                                        [np.eye(4), np.eye(4)])
    naive_dice, naive_corr = wm_sharpness(unregistered, phantom, first_to_mid, affine)
    assert naive_dice < MIN_DICE and naive_corr < MIN_CORRELATION, (naive_dice, naive_corr)


def test_session_order_does_not_matter(pair, sessions, brain_points):
    """(c) Swapping the sessions gives the same mid-space: session 1 → mid within 0.3 mm."""
    _, original = pair
    _, swapped = unbiased_reference([sessions[1][0], sessions[0][0]], seed=0)
    assert mean_distance(swapped[1], original[0], brain_points) < TOL_MM
    assert mean_distance(swapped[0], original[1], brain_points) < TOL_MM


def test_single_session_is_unchanged(sessions):
    """(d) One session: the identity, and the image itself (bit for bit, float32)."""
    path = sessions[0][0]
    image, matrices = unbiased_reference([path])
    assert len(matrices) == 1
    np.testing.assert_array_equal(matrices[0], np.eye(4))
    np.testing.assert_array_equal(image.get_fdata(dtype=np.float32),
                                  nib.load(path).get_fdata(dtype=np.float32))
    np.testing.assert_array_equal(image.affine, nib.load(path).affine)


def test_three_sessions(sessions, phantom, brain_points):
    """(e) Three sessions: every session → mid matrix within 0.3 mm of the truth, and the
    average as sharp as the two-session one."""
    image, estimated = unbiased_reference([s[0] for s in sessions], seed=0)
    truth = true_session_to_mid([np.eye(4), POSE_2, POSE_3])
    errors = [mean_distance(e, t, brain_points) for e, t in zip(estimated, truth, strict=True)]
    assert max(errors) < TOL_MM, errors
    wm_dice, corr = wm_sharpness(image.get_fdata(dtype=np.float32), phantom, truth[0],
                                 sessions[0][2])
    assert wm_dice >= MIN_DICE and corr >= MIN_CORRELATION, (wm_dice, corr)


def test_rejects_no_input():
    """No T1w at all is a clear error, not an empty average."""
    with pytest.raises(ValueError, match="at least one"):
        unbiased_reference([])
