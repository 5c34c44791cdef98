"""Fractional region weights and regional TACs against analytically known phantoms.

Phantom: a 1 mm label image (40³) in T1w space, a 2 mm PET grid (20³). Activity is piecewise
constant per region on the fine grid; the PET voxel value is the exact mean of the fine
activity over the voxel (no PSF, no noise), generated here independently of the code under
test by sampling each PET voxel at n³ points in the chosen pose.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from ketpet_bids.core.tacs import (
    fraction_weights,
    read_matrix,
    regional_means,
    unmixed_means,
)
from ketpet_bids.errors import InputError

LABEL_AFFINE = np.array([[1.0, 0, 0, -20], [0, 1, 0, -22], [0, 0, 1, -18], [0, 0, 0, 1]])
PET_AFFINE = np.array([[2.0, 0, 0, -19.5], [0, 2, 0, -21.5], [0, 0, 2, -17.5], [0, 0, 0, 1]])
PET_SHAPE = (20, 20, 20)
# Frame values (Bq/mL) per region index; 0 is background (activity 0 outside regions).
ACTIVITY = {1: [100.0, 400.0, 900.0], 2: [50.0, 20.0, 5.0], 3: [300.0, 310.0, 320.0],
            4: [10.0, 80.0, 160.0]}


def _phantom() -> np.ndarray:
    """Label image: three boxes on 2 mm block boundaries (8–12 mm sides) and a sphere."""
    labels = np.zeros((40, 40, 40), dtype=np.int16)
    labels[8:20, 8:16, 10:22] = 1       # 12×8×12 mm box, aligned with PET voxels
    labels[20:30, 8:18, 10:20] = 2      # 10×10×10 mm box, touching box 1
    labels[8:16, 20:32, 20:28] = 3      # 8×12×8 mm box
    ijk = np.indices(labels.shape)
    sphere = ((ijk - np.array([28, 28, 28])[:, None, None, None]) ** 2).sum(0) <= 6.5 ** 2
    labels[sphere] = 4
    return labels


def _truth_pet(labels: np.ndarray, pet_to_t1w: np.ndarray, n: int
               ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """(X, Y, Z, frames) PET and the per-voxel region fractions from n³ points per voxel.

    For poses that keep the PET voxels on 2 mm blocks of the 1 mm labels, n = 4 puts no
    point on a label-voxel boundary and the fractions are exact.
    """
    sub = (np.arange(n) + 0.5) / n - 0.5
    ijk = np.indices(PET_SHAPE).reshape(3, -1).T.astype(float)          # (V, 3)
    off = np.stack(np.meshgrid(sub, sub, sub, indexing="ij"), -1).reshape(-1, 3)
    pts = (ijk[:, None, :] + off[None]).reshape(-1, 3)
    world = pts @ PET_AFFINE[:3, :3].T + PET_AFFINE[:3, 3]
    t1w = world @ pet_to_t1w[:3, :3].T + pet_to_t1w[:3, 3]
    vox = np.rint((t1w - LABEL_AFFINE[:3, 3]) / np.diag(LABEL_AFFINE)[:3]).astype(int)
    inside = np.all((vox >= 0) & (vox < 40), axis=1)
    lab = np.zeros(len(vox), dtype=int)
    lab[inside] = labels[tuple(vox[inside].T)]
    lab = lab.reshape(len(ijk), -1)
    fractions = {r: (lab == r).mean(axis=1).reshape(PET_SHAPE) for r in ACTIVITY}
    pet = sum(fractions[r][..., None] * np.array(v) for r, v in ACTIVITY.items())
    return pet.astype(np.float32), fractions


def _rigid(angle_deg: float, axis: tuple[float, float, float], shift: tuple[float, ...]
           ) -> np.ndarray:
    axis_v = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis_v[2], axis_v[1]], [axis_v[2], 0, -axis_v[0]],
                  [-axis_v[1], axis_v[0], 0]])
    a = np.deg2rad(angle_deg)
    out = np.eye(4)
    out[:3, :3] = np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k
    out[:3, 3] = shift
    return out


def _tacs(labels: np.ndarray, pet: np.ndarray, pose: np.ndarray):
    weights = fraction_weights(labels, LABEL_AFFINE, sorted(ACTIVITY), PET_SHAPE, PET_AFFINE,
                               pose)
    frames = (pet[..., i] for i in range(pet.shape[-1]))
    return weights, regional_means(weights.matrix, frames)


def test_identity_pose_aligned_boxes_exact_and_volumes():
    labels = _phantom()
    pet, fractions = _truth_pet(labels, np.eye(4), 4)
    weights, tacs = _tacs(labels, pet, np.eye(4))
    # Boxes on PET-voxel boundaries contain only pure voxels: the TAC is the region value
    # (float32 PET → 1e-6 relative).
    for col, r in enumerate(sorted(ACTIVITY)[:3]):
        np.testing.assert_allclose(tacs[:, col], ACTIVITY[r], rtol=1e-6)
    # The sphere is cut by voxel boundaries; the weighted mean is Σ f C / Σ f with the exact
    # fractions (identity pose, 4³ sub-voxels on 1 mm labels → fractions are exact).
    f = fractions[4].ravel()
    expected = (f[:, None] * pet.reshape(-1, 3)).sum(0) / f.sum()
    np.testing.assert_allclose(tacs[:, 3], expected, rtol=1e-6)
    # Σ w · V_pet equals the voxel-count volume of each region exactly here.
    true_volumes = [np.count_nonzero(labels == r) for r in sorted(ACTIVITY)]
    np.testing.assert_allclose(weights.volumes_mm3, true_volumes, rtol=1e-9)


def test_moved_pose_whole_voxel_shift_and_rotation_exact():
    """90° about z plus a shift that puts the moved PET voxels on the boxes' 2 mm blocks.

    This pins the direction of ``pet_to_t1w`` (B maps PET-world to T1w-world): using B⁻¹
    would move the boxes off their voxels and mix regions.
    """
    labels = _phantom()
    pose = _rigid(90.0, (0, 0, 1), (-3.0, 4.0, -4.0))
    pet, _ = _truth_pet(labels, pose, 4)
    _, tacs = _tacs(labels, pet, pose)
    for col, r in enumerate(sorted(ACTIVITY)[:3]):
        np.testing.assert_allclose(tacs[:, col], ACTIVITY[r], rtol=1e-6)
    _, wrong = _tacs(labels, pet, np.linalg.inv(pose))
    assert np.max(np.abs(wrong[:, 0] / ACTIVITY[1] - 1)) > 0.05


def test_oblique_pose_matches_exact_fractions():
    """10° oblique rotation and a sub-voxel shift: fractions, volumes and TACs vs truth.

    With the generator's own 6³ sampling the code must reproduce the generator's means
    (1e-6). With the default 4³ sampling the volumes agree within 0.5% and the means within
    1% of the frame's largest regional value (the error of a weighted mean is bounded by
    the fraction error times the largest activity it mixes in).
    """
    labels = _phantom()
    pose = _rigid(10.0, (1, 2, 3), (1.3, -0.7, 2.1))
    pet, fractions = _truth_pet(labels, pose, 6)
    expected = np.stack([(fractions[r].reshape(-1, 1) * pet.reshape(-1, 3)).sum(0)
                         / fractions[r].sum() for r in sorted(ACTIVITY)], axis=1)
    fine = fraction_weights(labels, LABEL_AFFINE, sorted(ACTIVITY), PET_SHAPE, PET_AFFINE,
                            pose, oversample=(6, 6, 6))
    np.testing.assert_allclose(regional_means(fine.matrix, np.moveaxis(pet, -1, 0)), expected,
                               rtol=1e-6)
    weights, tacs = _tacs(labels, pet, pose)
    true_volumes = np.array([np.count_nonzero(labels == r) for r in sorted(ACTIVITY)])
    np.testing.assert_allclose(weights.volumes_mm3, true_volumes, rtol=0.005)  # measured 5e-4
    scale = np.max(list(ACTIVITY.values()), axis=0)[:, None]
    assert np.all(np.abs(tacs - expected) <= 0.01 * scale)


def test_region_absent_gives_nan_and_matrix_reader(tmp_path):
    labels = _phantom()
    weights = fraction_weights(labels, LABEL_AFFINE, [1, 7], PET_SHAPE, PET_AFFINE, np.eye(4))
    tacs = regional_means(weights.matrix, [np.ones(PET_SHAPE, np.float32)])
    assert tacs[0, 0] == pytest.approx(1.0) and np.isnan(tacs[0, 1])
    pose = _rigid(10.0, (1, 2, 3), (1.3, -0.7, 2.1))
    np.savetxt(tmp_path / "m.txt", pose)
    np.save(tmp_path / "m.npy", pose)
    np.testing.assert_allclose(read_matrix(tmp_path / "m.txt"), pose, atol=1e-12)
    np.testing.assert_array_equal(read_matrix(tmp_path / "m.npy"), pose)
    np.savetxt(tmp_path / "bad.txt", np.eye(3))
    with pytest.raises(InputError, match="bad.txt"):
        read_matrix(tmp_path / "bad.txt")


BACKGROUND = np.array([20.0, 60.0, 40.0])  # unlabelled tissue, Bq/mL per frame


@pytest.mark.parametrize("oblique, oversample", [(False, None), (True, (6, 6, 6)),
                                                 (True, None)])
def test_unmixed_means_recover_region_values(oblique, oversample):
    """Noise-free, PSF-free PET with a uniform background: unmixing returns each region's
    activity, exactly (1e-6, float32 PET) when the weights are the generator's fractions
    (identity pose with 4³ samples, or the generator's own 6³ sampling of the oblique pose).

    With the default 4³ sampling on the oblique pose the fractions differ from the
    generator's by ~5e-4 of a region's volume; the error is then bounded by that times the
    activity contrast, so it is checked against 1% (the issue's criterion) of the frame's
    largest regional value (measured 0.43%; relative to its own value a region 180× colder
    than its neighbour is off by up to 16%). The fraction-weighted mean of the same data is
    biased by more than 5%.
    """
    labels = _phantom()
    pose = _rigid(10.0, (1, 2, 3), (1.3, -0.7, 2.1)) if oblique else np.eye(4)
    pet, fractions = _truth_pet(labels, pose, 6 if oblique else 4)
    pet = pet + (1.0 - sum(fractions.values()))[..., None] * BACKGROUND.astype(np.float32)
    weights = fraction_weights(labels, LABEL_AFFINE, sorted(ACTIVITY), PET_SHAPE, PET_AFFINE,
                               pose, oversample=oversample)
    frames = list(np.moveaxis(pet, -1, 0))
    truth = np.array([ACTIVITY[r] for r in sorted(ACTIVITY)]).T
    unmixed = unmixed_means(weights.matrix, frames)
    if oblique and oversample is None:
        assert np.all(np.abs(unmixed - truth) <= 0.01 * truth.max(axis=1, keepdims=True))
    else:
        np.testing.assert_allclose(unmixed, truth, rtol=1e-6)
    mixed = regional_means(weights.matrix, frames)
    assert np.max(np.abs(mixed / truth - 1)) > 0.05


def test_unmixed_means_absent_region_and_overlap_error():
    labels = _phantom()
    weights = fraction_weights(labels, LABEL_AFFINE, [1, 7], PET_SHAPE, PET_AFFINE, np.eye(4))
    out = unmixed_means(weights.matrix, [np.where(labels[::2, ::2, ::2] == 1, 5.0, 1.0)])
    assert out[0, 0] == pytest.approx(5.0) and np.isnan(out[0, 1])
    twice = sparse.vstack([weights.matrix[[0]], weights.matrix[[0]]])   # identical rows
    with pytest.raises(np.linalg.LinAlgError):
        unmixed_means(twice, [np.ones(PET_SHAPE)])
