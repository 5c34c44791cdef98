"""Head-motion estimation and correction against known rigid motion (ketpet_bids.core.motion)."""

from __future__ import annotations

import os

# ITK fixes its thread count when first used in a process; registrations are bit-reproducible
# only if the variable is set before that (see motion.import_ants).
os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ketpet_bids.core import motion  # noqa: E402

SHAPE = (40, 40, 30)
VOXEL = 4.0


def grid_affine() -> np.ndarray:
    affine = np.diag([VOXEL, VOXEL, VOXEL, 1.0])
    affine[:3, 3] = -(np.asarray(SHAPE) - 1) / 2 * VOXEL + np.array([2.0, -3.0, 5.0])
    return affine


def phantom_at(points: np.ndarray) -> np.ndarray:
    """Smooth, asymmetric activity at RAS points (N, 3): a soft-edged head ellipsoid plus five
    Gaussian "nuclei" of different sizes and heights (no rotational symmetry)."""
    r = np.sqrt(np.sum((points / np.array([60.0, 70.0, 50.0])) ** 2, axis=1))
    value = 1.0 / (1.0 + np.exp((r - 1.0) * 12.0))
    for centre, width, height in (((25, 10, 5), 9, 1.5), ((-20, 15, -10), 7, 0.8),
                                  ((5, -35, 10), 11, 2.0), ((-10, -10, 25), 6, 1.2),
                                  ((15, 40, -15), 8, 1.0)):
        value += height * np.exp(-0.5 * np.sum((points - centre) ** 2, axis=1) / width**2)
    return value


def voxel_points(affine: np.ndarray) -> np.ndarray:
    ijk = np.indices(SHAPE).reshape(3, -1)
    return (affine[:3, :3] @ ijk + affine[:3, 3:]).T


def moved_frame(frame_to_reference: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """frame(p) = reference(M p), evaluated analytically (no interpolation)."""
    pts = voxel_points(affine)
    mapped = pts @ frame_to_reference[:3, :3].T + frame_to_reference[:3, 3]
    return phantom_at(mapped).reshape(SHAPE).astype(np.float32)


TRUE_PARAMS = np.array([
    [3.0, -2.0, 1.5, np.deg2rad(3.0), np.deg2rad(-2.0), np.deg2rad(4.0)],
    [-4.0, 1.0, -2.5, np.deg2rad(-4.0), np.deg2rad(3.0), np.deg2rad(-1.5)],
    [1.0, 4.0, 3.0, np.deg2rad(2.0), np.deg2rad(4.0), np.deg2rad(2.5)],
])


def test_ants_geometry_matches_ants_reader(tmp_path):
    """An oblique, anisotropic NIfTI read by ANTs has the origin/spacing/direction we compute."""
    import ants

    affine = np.eye(4)
    affine[:3, :3] = motion.rotation_matrix([0.1, -0.2, 0.3]) @ np.diag([2.0, 3.0, 4.0])
    affine[:3, 3] = [-30.0, 20.0, -10.0]
    data = np.random.default_rng(0).random((6, 7, 8)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "a.nii.gz")
    theirs = ants.image_read(str(tmp_path / "a.nii.gz"))
    ours = motion.to_ants(data, affine)
    np.testing.assert_allclose(ours.origin, theirs.origin, atol=1e-4)
    np.testing.assert_allclose(ours.spacing, theirs.spacing, atol=1e-5)
    np.testing.assert_allclose(ours.direction, theirs.direction, atol=1e-5)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_transform_conversions_round_trip():
    b = np.eye(4)
    b[:3, :3] = motion.rotation_matrix([0.05, -0.1, 0.2])
    b[:3, 3] = [4.0, -7.0, 2.0]
    np.testing.assert_allclose(motion.ras_from_ants(motion.ants_from_ras(b)), b, atol=1e-12)
    # ITK centre handling: x -> A (x - c) + t + c
    params = np.r_[b[:3, :3].ravel(), [1.0, 2.0, 3.0]]
    centre = np.array([10.0, -5.0, 7.0])
    m = motion.itk_to_matrix(params, centre)
    x = np.array([3.0, 4.0, 5.0])
    np.testing.assert_allclose(m[:3, :3] @ x + m[:3, 3],
                               b[:3, :3] @ (x - centre) + [1.0, 2.0, 3.0] + centre)
    np.testing.assert_allclose(motion.itk_to_matrix(*motion.matrix_to_itk(m)), m, atol=1e-12)


def test_parameter_convention():
    """trans_x = +3 mm: tissue moved 3 mm towards +x, so M p = p - (3, 0, 0); rot_z = +90°
    about the centre turns +x into +y (right-handed); parameters round-trip."""
    centre = np.array([1.0, 2.0, 3.0])
    m = motion.params_to_matrix([3, 0, 0, 0, 0, 0], centre)
    np.testing.assert_allclose(m @ [10, 20, 30, 1], [7, 20, 30, 1], atol=1e-12)
    head = np.linalg.inv(motion.params_to_matrix([0, 0, 0, 0, 0, np.pi / 2], centre))
    np.testing.assert_allclose(head @ np.r_[centre + [1, 0, 0], 1], np.r_[centre + [0, 1, 0], 1],
                               atol=1e-12)
    for p in TRUE_PARAMS:
        np.testing.assert_allclose(
            motion.matrix_to_params(motion.params_to_matrix(p, centre), centre), p, atol=1e-12)


def test_framewise_displacement_hand_worked():
    """Rows (mm, rad):   Δ to previous                                  FD
    f0  0  0   0   0     0 0                                              0
    f1  1  0   0   0     0 0.01   |1| + 50·|0.01|                         1.5
    f2  1 -2   0.5 0.002 0 0.01   |−2| + |0.5| + 50·|0.002|               2.6
    f3  0  0   0   0     0 0      1 + 2 + 0.5 + 50·(0.002 + 0.01)         4.1
    """
    params = [[0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0.01], [1, -2, 0.5, 0.002, 0, 0.01],
              [0, 0, 0, 0, 0, 0]]
    np.testing.assert_allclose(motion.framewise_displacement(params), [0, 1.5, 2.6, 4.1],
                               atol=1e-12)


def test_expand_transforms_inherits_first_estimated():
    mats = np.stack([np.eye(4) * s for s in (2.0, 3.0)])
    out = motion.expand_transforms(5, [3, 4], mats)
    assert [float(m[0, 0]) for m in out] == [2.0, 2.0, 2.0, 2.0, 3.0]
    with pytest.raises(ValueError):
        motion.expand_transforms(5, [2, 3], mats)


@pytest.fixture(scope="module")
def estimated():
    """Reference and three moved frames; estimated frame_to_reference matrices."""
    affine = grid_affine()
    reference = phantom_at(voxel_points(affine)).reshape(SHAPE).astype(np.float32)
    centre = motion.image_centre(SHAPE, affine)
    truths = [motion.params_to_matrix(p, centre) for p in TRUE_PARAMS]
    frames = [moved_frame(m, affine) for m in truths]
    ref_s, ref_mask = motion.smooth_and_mask(reference, affine, 6.0)
    estimates = [motion.estimate_frame_motion(motion.smooth_and_mask(f, affine, 6.0)[0], ref_s,
                                              affine, ref_mask, seed=7) for f in frames]
    return affine, reference, frames, truths, estimates, centre


def test_known_motion_is_recovered(estimated):
    """Noise-free frames moved by up to 4 mm / 4°: parameters within 0.3 mm / 0.3° and mean
    displacement over the head < 0.3 mm. Justification: 4 mm voxels smoothed to 6 mm FWHM;
    rigid MI registration of smooth images reaches ~1/20 voxel (0.05-0.15 mm measured on this
    phantom), so 0.3 mm (0.075 voxel) leaves margin for the random metric sampling while
    still failing for any convention error (those give errors of several mm or degrees)."""
    affine, reference, _, truths, estimates, centre = estimated
    head = reference > 0.5
    pts = np.c_[np.argwhere(head), np.ones(head.sum())] @ affine.T
    for truth, est, p_true in zip(truths, estimates, TRUE_PARAMS, strict=True):
        p_est = motion.matrix_to_params(est, centre)
        assert np.abs(p_est[:3] - p_true[:3]).max() < 0.3
        assert np.rad2deg(np.abs(p_est[3:] - p_true[3:])).max() < 0.3
        displacement = np.linalg.norm((pts @ est.T - pts @ truth.T)[:, :3], axis=1)
        assert displacement.mean() < 0.3, displacement.mean()


def test_correction_restores_reference(estimated):
    """Each frame resampled once with its estimate matches the reference inside the head
    (correlation > 0.999, RMS residual < 1/5 of the uncorrected one); a frame with the
    identity comes back unchanged."""
    affine, reference, frames, _, estimates, _ = estimated
    stack = np.stack([reference, *frames], axis=-1)
    corrected = motion.correct_frames(stack, affine, np.stack([np.eye(4), *estimates]))
    np.testing.assert_array_equal(corrected[..., 0], reference)
    inner = motion.smooth_and_mask(reference, affine, 0.0, 0.3)[1]
    for t in range(1, stack.shape[-1]):
        before = stack[..., t][inner] - reference[inner]
        after = corrected[..., t][inner] - reference[inner]
        assert np.corrcoef(corrected[..., t][inner], reference[inner])[0, 1] > 0.999
        assert np.sqrt(np.mean(after**2)) < 0.2 * np.sqrt(np.mean(before**2))


def test_estimation_is_reproducible_and_exact_for_identical_images(estimated):
    affine, reference, frames, _, estimates, _ = estimated
    ref_s, ref_mask = motion.smooth_and_mask(reference, affine, 6.0)
    again = motion.estimate_frame_motion(motion.smooth_and_mask(frames[0], affine, 6.0)[0],
                                         ref_s, affine, ref_mask, seed=7)
    np.testing.assert_array_equal(again, estimates[0])
    np.testing.assert_array_equal(motion.estimate_frame_motion(ref_s, ref_s, affine), np.eye(4))


@pytest.mark.parametrize(("starts", "start_time", "hmc_off", "expected"), [
    # (estimate, reference, petref, start_time_used, skipped, n_warnings)
    ([0, 60, 120, 300], 120.0, False, ((2, 3), (2, 3), (2, 3), 120.0, None, 0)),
    ([3600, 3900, 4200], 120.0, False, ((0, 1, 2), (0, 1, 2), (0, 1, 2), 3600.0, None, 0)),
    ([0, 60, 120, 300], 1000.0, False, ((3,), (3,), (0, 1, 2, 3), 300.0, None, 1)),
    ([0, 60, 120, 300], 120.0, True, ((), (2, 3), (2, 3), None, "disabled (--hmc-off)", 0)),
    ([0], 120.0, False, ((), (0,), (0,), None, "static (single-frame) PET", 0)),
])
def test_plan_hmc(starts, start_time, hmc_off, expected):
    """Normal, late first frame (3600 s), start time beyond the last frame, --hmc-off, 3D."""
    plan = motion.plan_hmc(starts, [60.0] * len(starts), start_time, hmc_off=hmc_off)
    got = (plan.estimate, plan.reference, plan.petref, plan.start_time_used, plan.skipped,
           len(plan.warnings))
    assert got == expected


def test_working_grid_crops_and_subsamples_in_world_coordinates():
    """Voxel (i, j, k) of data[slices] sits at the world point of the full-grid voxel it came
    from; the crop keeps the mask plus the margin; the step follows the target voxel size."""
    affine = np.diag([2.0, 2.0, 2.5, 1.0])
    affine[:3, 3] = [-50.0, -60.0, -40.0]
    mask = np.zeros((50, 60, 40), dtype=bool)
    mask[20:30, 25:35, 10:20] = True
    slices, work = motion.working_grid(mask, affine, voxel_mm=4.0, margin_mm=4.0)
    assert [s.step for s in slices] == [2, 2, 2]                  # 4/2, 4/2, round(4/2.5)
    assert [(s.start, s.stop) for s in slices] == [(18, 32), (23, 37), (8, 22)]
    data = np.random.default_rng(0).random(mask.shape)
    ijk = np.array([3, 5, 2])
    full_ijk = [s.start + s.step * n for s, n in zip(slices, ijk, strict=True)]
    np.testing.assert_allclose(work @ np.r_[ijk, 1], affine @ np.r_[full_ijk, 1])
    assert data[slices][tuple(ijk)] == data[tuple(full_ijk)]
    assert mask[slices].sum() == mask[18:32:2, 23:37:2, 8:22:2].sum() > 0


def test_refined_reference_undoes_the_motion_blur():
    """Frames moved by known motion: their plain mean is blurred, the mean corrected with the
    true transforms matches the motion-free image (RMS error < 1/4 of the plain mean's inside
    the head; linear interpolation of a smooth phantom on 4 mm voxels); identity transforms
    give exactly the weighted mean."""
    affine = grid_affine()
    reference = phantom_at(voxel_points(affine)).reshape(SHAPE).astype(np.float32)
    centre = motion.image_centre(SHAPE, affine)
    truths = np.stack([motion.params_to_matrix(p, centre) for p in TRUE_PARAMS])
    frames = np.stack([moved_frame(m, affine) for m in truths], axis=-1)
    weights = np.array([60.0, 120.0, 300.0])
    head = ndimage_erode(reference > 0.5)
    plain = np.tensordot(frames, weights, axes=([3], [0])) / weights.sum()
    refined = motion.refined_reference(frames, affine, truths, weights)
    rms = lambda x: float(np.sqrt(np.mean((x - reference)[head] ** 2)))  # noqa: E731
    assert rms(refined) < 0.25 * rms(plain), (rms(refined), rms(plain))
    np.testing.assert_allclose(motion.refined_reference(frames, affine, np.tile(np.eye(4),
                                                        (3, 1, 1)), weights), plain, rtol=1e-5)


def ndimage_erode(mask: np.ndarray) -> np.ndarray:
    """Head interior (two voxels from the edge), away from field-of-view effects."""
    from scipy import ndimage

    return ndimage.binary_erosion(mask, iterations=2)
