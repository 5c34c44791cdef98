"""PET→T1w co-registration against known truth (ketpet_bids.core.coreg)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ketpet_bids.core import coreg
from ketpet_bids.core.motion import rotation_matrix
from ketpet_bids.core.tacs import read_matrix


def grid(shape: tuple[int, int, int], voxel: float, shift=(0.0, 0.0, 0.0)):
    """RAS affine of an axial grid centred near the origin, and its voxel centres (N, 3)."""
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2 * voxel + np.asarray(shift)
    ijk = np.indices(shape).reshape(3, -1)
    return affine, (affine[:3, :3] @ ijk + affine[:3, 3:]).T


def _inside(xyz, centre, axes):
    return np.sum(((xyz - np.asarray(centre)) / np.asarray(axes)) ** 2, axis=1) < 1.0


def tissue(xyz: np.ndarray) -> np.ndarray:
    """Head phantom labels at RAS points (N, 3): 0 air, 1 scalp, 2 GM, 3 WM, 4 CSF.

    A brain ellipsoid with a 5 mm cortex, ventricles, paired nuclei, a left-only nucleus and
    a cerebellum (so that no rotation is a symmetry), inside a scalp shell.
    """
    label = np.zeros(len(xyz), dtype=int)
    label[_inside(xyz, (0, 0, 0), (66, 82, 62))] = 1
    label[_inside(xyz, (0, 0, 0), (60, 76, 56))] = 0
    label[_inside(xyz, (0, 0, 0), (55, 70, 50))] = 2
    label[_inside(xyz, (0, -52, -34), (34, 18, 14))] = 2
    label[_inside(xyz, (0, 0, 0), (50, 65, 45))] = 3
    for x in (-9.0, 9.0):
        label[_inside(xyz, (x, 6, 6), (5, 20, 9))] = 4
        label[_inside(xyz, (2 * x, 12, -2), (5, 9, 7))] = 2
    label[_inside(xyz, (-24, -22, -12), (7, 7, 7))] = 2
    return label


T1W_CONTRAST = np.array([0.0, 0.8, 0.65, 1.0, 0.25])   # air scalp GM WM CSF
PET_CONTRAST = np.array([0.0, 0.15, 1.0, 1.4, 0.1])    # tracer with high white-matter uptake


@pytest.fixture(scope="module")
def t1w():
    """T1w phantom (2.5 mm), its brain mask and affine."""
    shape = (56, 68, 52)
    affine, xyz = grid(shape, 2.5)
    labels = tissue(xyz).reshape(shape)
    image = T1W_CONTRAST[labels] + np.random.default_rng(0).normal(0, 0.02, shape)
    return image.astype(np.float32), (labels >= 2), affine


def make_pet(pet_to_t1w: np.ndarray, seed: int = 1):
    """PET reference (4 mm, 6 mm FWHM blur, 2 % noise) seeing tissue at T1w point B p."""
    shape = (40, 46, 38)
    affine, xyz = grid(shape, 4.0, shift=(3.0, -5.0, 4.0))
    mapped = (pet_to_t1w[:3, :3] @ xyz.T + pet_to_t1w[:3, 3:]).T
    image = ndimage.gaussian_filter(PET_CONTRAST[tissue(mapped)].reshape(shape), 6.0 / 2.355 / 4)
    image = image + np.random.default_rng(seed).normal(0, 0.02, shape)
    return image.astype(np.float32), affine


def rigid(trans_mm, rot_deg) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = rotation_matrix(np.deg2rad(rot_deg))
    matrix[:3, 3] = trans_mm
    return matrix


def mean_displacement(estimate, truth, mask, affine) -> float:
    """Mean distance (mm) between where two PET→T1w matrices send the T1w brain voxels back."""
    ijk = np.c_[np.argwhere(mask), np.ones(mask.sum())]
    pts = ijk @ affine.T
    diff = pts @ np.linalg.inv(estimate).T - pts @ np.linalg.inv(truth).T
    return float(np.linalg.norm(diff[:, :3], axis=1).mean())


def test_itk_file_round_trip_and_ants_semantics(tmp_path, t1w):
    """The text file reads back exactly, and antsApplyTransforms with it (-i petref -r T1w)
    equals an independent scipy resampling with B⁻¹ (tolerance: float32 interpolation of
    values ~1: 1e-3)."""
    import ants

    image, _, t1w_affine = t1w
    truth = rigid((6.0, -4.0, 3.0), (5.0, -7.0, 10.0))
    pet, pet_affine = make_pet(truth)
    path = coreg.write_itk_affine(tmp_path / "xfm.txt", truth)
    assert "AffineTransform_double_3_3" in path.read_text()
    np.testing.assert_allclose(coreg.read_itk_affine(path), truth, atol=1e-12)
    coreg.write_pet_to_t1w(tmp_path / "b.txt", truth)
    np.testing.assert_allclose(read_matrix(tmp_path / "b.txt"), truth, atol=1e-10)

    # independent: voxel of T1w → world → B⁻¹ → PET voxel
    vox = np.linalg.inv(pet_affine) @ np.linalg.inv(truth) @ t1w_affine
    expected = ndimage.affine_transform(pet, vox[:3, :3], vox[:3, 3], output_shape=image.shape,
                                        order=1, mode="constant", cval=0.0)
    ours = coreg.resample_petref_to_t1w(pet, pet_affine, truth, image.shape, t1w_affine)
    np.testing.assert_allclose(ours, expected, atol=1e-5)

    from ketpet_bids.core.motion import to_ants
    by_ants = ants.apply_transforms(fixed=to_ants(image, t1w_affine),
                                    moving=to_ants(pet, pet_affine),
                                    transformlist=[str(path)], interpolator="linear").numpy()
    # compare away from the PET field-of-view edge, where ITK and scipy treat borders differently
    interior = ndimage.binary_erosion(expected > 0.05, iterations=2)
    assert np.abs(by_ants - expected)[interior].max() < 1e-3


def test_recovers_known_offset_with_different_contrast(t1w):
    """8 mm / 10° PET pose with a high-white-matter tracer: mean displacement over the T1w
    brain < 1 mm (issue 3 target), and the checks report a good alignment."""
    image, mask, t1w_affine = t1w
    truth = rigid((8.0 / np.sqrt(3),) * 3, (10.0, -6.0, 8.0))
    pet, pet_affine = make_pet(truth)
    result = coreg.register_pet_to_t1w(pet, pet_affine, image, t1w_affine, mask, seed=3)
    error = mean_displacement(result.pet_to_t1w, truth, mask, t1w_affine)
    assert error < 1.0, error
    assert result.inside_fraction > 0.95 and result.warnings == []
    start = coreg.assess_alignment(pet, pet_affine, image, t1w_affine, mask, np.eye(4), "none")
    assert result.mutual_information > start.mutual_information


def test_identity_scoring_and_failure_warning(t1w):
    """A PET already aligned scores well; a 40 mm shifted one is flagged by the mask check."""
    image, mask, t1w_affine = t1w
    aligned, pet_affine = make_pet(np.eye(4))
    good = coreg.assess_alignment(aligned, pet_affine, image, t1w_affine, mask, np.eye(4),
                                  "identity")
    assert good.inside_fraction > 0.95 and good.warnings == []
    bad = coreg.assess_alignment(aligned, pet_affine, image, t1w_affine, mask,
                                 rigid((40.0, 0.0, 0.0), (0, 0, 0)), "identity")
    assert bad.inside_fraction < coreg.MIN_INSIDE_FRACTION
    assert "co-registration may have failed" in bad.warnings[0]
    assert good.mutual_information > bad.mutual_information


def test_identity_resampling_is_exact(t1w):
    """Same grid and identity matrix: the data come back bit for bit."""
    image, _, affine = t1w
    out = coreg.resample_petref_to_t1w(image, affine, np.eye(4), image.shape, affine)
    np.testing.assert_array_equal(out, image)


def test_multistart_recovers_a_large_rotation(t1w, monkeypatch):
    """A 25° rotation about y (beyond the ~20° basin of a single start) is recovered < 1 mm
    from the truth when the ±20° starts are searched (six starts here), and the result says
    which start won."""
    image, mask, t1w_affine = t1w
    monkeypatch.setattr(coreg, "SEARCH_ANGLES_DEG", (-20.0, 20.0))
    truth = rigid((5.0, -5.0, 5.0), (0.0, -25.0, 10.0))
    pet, pet_affine = make_pet(truth)
    result = coreg.register_pet_to_t1w(pet, pet_affine, image, t1w_affine, mask, seed=3)
    assert mean_displacement(result.pet_to_t1w, truth, mask, t1w_affine) < 1.0
    assert "6 rotated starts" in result.initialisation and result.warnings == []


def test_failure_check_catches_8mm_10deg_misalignment(t1w):
    """The re-registration check flags an alignment off by 8 mm / 10° (which the mask check
    alone lets pass: > 90 % of the PET brain still lies in the dilated T1w brain) and stays
    quiet (< 0.5 mm shift) at the truth. Tolerances: the check registers at 8 and 4 mm, so a
    correct pose moves by noise only (~0.1 mm); an 8 mm / 10° error moves by several mm."""
    image, mask, t1w_affine = t1w
    truth = rigid((4.0, -3.0, 2.0), (3.0, 4.0, -5.0))
    pet, pet_affine = make_pet(truth)
    good = coreg.assess_alignment(pet, pet_affine, image, t1w_affine, mask, truth, "truth")
    assert good.warnings == [] and good.check_shift_mm < 0.5
    off = truth @ rigid((8.0 / np.sqrt(3),) * 3, (10.0 / np.sqrt(3),) * 3)
    bad = coreg.assess_alignment(pet, pet_affine, image, t1w_affine, mask, off, "off")
    assert bad.inside_fraction > coreg.MIN_INSIDE_FRACTION
    assert bad.check_shift_mm > coreg.MAX_CHECK_SHIFT_MM
    assert any("re-registering from the result moved" in w for w in bad.warnings)
