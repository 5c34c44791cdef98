"""PSF definition and GTM: analytic two-region step, exact phantom recovery, symmetry."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage, sparse

from ketpet_bids.core.pvc.gtm import solve_gtm, transfer_matrix
from ketpet_bids.core.pvc.psf import blur_box, psf_from_fwhm
from ketpet_bids.core.pvc.regions import PVCRegions, clip_activity
from ketpet_bids.core.pvc.spread import spread_on_pet_grid
from ketpet_bids.errors import InputError

sys.path.insert(0, str(Path(__file__).parent))
from pvc_phantom import PET_AFFINE, TABLE, TRUTH, phantom  # noqa: E402


@pytest.fixture(scope="module")
def ph():
    return phantom()


def test_psf_sigma_follows_fwhm_and_voxel_size():
    """sigma = FWHM / 2.3548 / voxel per axis; blur equals gaussian_filter(mode=constant)."""
    affine = np.diag([2.0, 2.5, 3.0, 1.0])
    psf = psf_from_fwhm((6.0, 5.0, 0.0), affine)
    np.testing.assert_allclose(psf.sigma_voxels,
                               [6 / 2.354820045 / 2, 5 / 2.354820045 / 2.5, 0.0], rtol=1e-9)
    image = np.random.default_rng(0).random((9, 8, 7))
    np.testing.assert_allclose(psf.blur(image), ndimage.gaussian_filter(
        image, psf.sigma_voxels, mode="constant"), rtol=1e-5, atol=1e-6)
    assert psf_from_fwhm(4.0, affine).fwhm_mm == (4.0, 4.0, 4.0)
    with pytest.raises(InputError, match="--pvc-psf"):
        psf_from_fwhm((6.0, 5.0), affine)


@pytest.mark.parametrize("sigma", [(2.5, 2.5, 2.5), (1.7, 0.0, 3.1)])
def test_blur_box_equals_gaussian_filter(sigma):
    """Blurring only where a pass can reach (values non-zero only in ``inner``) gives
    ``gaussian_filter``'s float32 result: same passes, so agreement to 1 ulp of the peak
    (measured: bitwise); an axis with sigma 0 is left alone, as gaussian_filter does."""
    image = np.zeros((30, 27, 33), np.float32)
    inner = (slice(10, 19), slice(9, 15), slice(11, 23))
    image[inner] = np.random.default_rng(1).random((9, 6, 12)) > 0.5
    expected = ndimage.gaussian_filter(image, sigma, mode="constant", truncate=4.0,
                                       output=np.float32)
    got = blur_box(image.copy(), sigma, 4.0, inner)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1.2e-7 * expected.max())


def test_two_region_step_solved_exactly():
    """A blurred step between two halves: G matches a hand-written convolution; GTM is exact.

    64 voxels of 2 mm along x (regions A = first 32, B = last 32), PSF 6 mm along x only.
    The reference G is built from the sampled, normalised Gaussian kernel by explicit sums
    (independent of the PSF code); recovery of (a, b) is exact to float32 rounding.
    """
    n, half = 64, 32
    sigma = 6.0 / (2 * np.sqrt(2 * np.log(2))) / 2.0
    radius = int(4 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    conv = np.array([[taps[i - j + radius] if abs(i - j) <= radius else 0.0
                      for j in range(n)] for i in range(n)])
    in_a = np.arange(n) < half
    blur_a, blur_b = conv @ in_a, conv @ ~in_a
    expected = np.array([[blur_a[in_a].mean(), blur_b[in_a].mean()],
                         [blur_a[~in_a].mean(), blur_b[~in_a].mean()]])
    a, b = 40.0, 10.0
    pet = (a * blur_a + b * blur_b).reshape(n, 1, 1)
    regions = PVCRegions(fractions=sparse.csr_array(np.stack([in_a, ~in_a]).astype(float)),
                         names=("A", "B"), tissues=("GM", "WM"), pet_shape=(n, 1, 1))
    psf = psf_from_fwhm((6.0, 0.0, 0.0), PET_AFFINE)
    gtm = transfer_matrix(regions, spread_on_pet_grid(regions, psf))
    np.testing.assert_allclose(gtm.matrix, expected, atol=1e-6)
    observed = regions.means(pet)
    assert observed[0] < 0.98 * a and observed[1] > 1.02 * b      # the step is blurred
    values, report = solve_gtm(gtm, observed[None])
    np.testing.assert_allclose(values[0], [a, b], rtol=1e-5)
    assert report == {"negative": 0, "exploding": 0}


def test_gtm_recovers_every_region_at_matched_geometry(ph):
    """Noise-free phantom built from the same fractional maps: exact for all region sizes.

    Uncorrected fractional means are biased by 33–70 % (cortex −36 %, habenula (32 mm³)
    −70 %); GTM recovers every region, habenula included, to 1e-4 (float32 data).
    """
    frame = ph.frame()
    observed = ph.regions.means(frame)
    bias = np.abs(observed / TRUTH - 1)
    names = ph.regions.names
    assert bias[names.index("habenula-left")] > 0.45
    assert bias[names.index("cortex-left")] > 0.3
    setup_gtm = transfer_matrix(ph.regions, spread_on_pet_grid(ph.regions, ph.psf))
    values, report = solve_gtm(setup_gtm, observed[None])
    np.testing.assert_allclose(values[0], TRUTH, rtol=1e-4)
    assert report == {"negative": 0, "exploding": 0}
    nonneg, _ = solve_gtm(setup_gtm, observed[None], nonnegative=True)
    np.testing.assert_allclose(nonneg[0], TRUTH, rtol=1e-4)


def test_gtm_all_frames_at_once_equals_frame_by_frame(ph):
    gtm = transfer_matrix(ph.regions, spread_on_pet_grid(ph.regions, ph.psf))
    truths = np.stack([TRUTH, TRUTH[::-1], 0.5 * TRUTH])
    means = np.stack([ph.regions.means(ph.frame(t)) for t in truths])
    together, _ = solve_gtm(gtm, means)
    one_by_one = np.concatenate([solve_gtm(gtm, m[None])[0] for m in means])
    np.testing.assert_allclose(together, one_by_one, rtol=1e-10)
    np.testing.assert_allclose(together, truths, rtol=1e-4)


def test_gtm_symmetry(ph):
    """Σ_v m_i (h⊛m_j) is symmetric (h symmetric): diag(sizes)·G = (diag(sizes)·G)ᵀ.

    Rows sum to 1 (the regions partition the grid) up to the mass the blur loses at the grid
    border, which only the background touches. Mirror-image regions of the unrotated
    phantom get the same transfer fractions and the same corrected values.
    """
    gtm = transfer_matrix(ph.regions, spread_on_pet_grid(ph.regions, ph.psf))
    weighted = ph.regions.sizes[:, None] * gtm.matrix
    np.testing.assert_allclose(weighted, weighted.T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gtm.matrix[:-1].sum(axis=1), 1.0, atol=1e-5)
    straight = phantom(angle_deg=0.0)
    g_straight = transfer_matrix(straight.regions,
                                 spread_on_pet_grid(straight.regions, straight.psf))
    g = g_straight.matrix
    names = straight.regions.names
    for left, right in (("cortex-left", "cortex-right"), ("habenula-left", "habenula-right")):
        i, j = names.index(left), names.index(right)
        assert g[i, i] == pytest.approx(g[j, j], abs=1e-5)
    frame = straight.frame()
    values, _ = solve_gtm(g_straight, straight.regions.means(frame)[None])
    assert values[0, names.index("putamen-left")] == pytest.approx(
        values[0, names.index("putamen-right")], rel=1e-5)


def test_gtm_with_noise_is_non_negative_and_reports_clipping(ph):
    """Heavy noise drives tiny regions negative by least squares; NNLS and clipping do not.

    With 60 % voxel noise on a cold habenula (true 0.5), plain least squares gives negative
    values in some of 20 noise draws; every returned value is ≥ 0 and the number of
    clipped values is reported; NNLS never needs clipping.
    """
    rng = np.random.default_rng(3)
    truth = TRUTH.copy()
    truth[[4, 5]] = 0.5
    frame = ph.frame(truth)
    means = np.stack([ph.regions.means(frame * (1 + 0.6 * rng.standard_normal(frame.shape)))
                      for _ in range(20)])
    gtm = transfer_matrix(ph.regions, spread_on_pet_grid(ph.regions, ph.psf))
    raw = np.linalg.solve(gtm.matrix, means.T).T
    values, report = solve_gtm(gtm, means)
    assert (raw < 0).sum() > 0 and report["negative"] == (raw < 0).sum()
    assert np.all(values >= 0)
    nonneg, nn_report = solve_gtm(gtm, means, nonnegative=True)
    assert np.all(nonneg >= 0) and nn_report["negative"] == 0


def test_clip_activity_counts():
    values, report = clip_activity(np.array([-1.0, 0.5, np.nan, 30.0]), 10.0)
    np.testing.assert_array_equal(values, [0.0, 0.5, np.nan, 10.0])
    assert report == {"negative": 1, "exploding": 1}


def test_phantom_region_sizes(ph):
    """The phantom's regions: cortex ≥ 1 cm³ (9.3 cm³ per side), habenula 32 mm³ per side."""
    volumes = ph.regions.sizes[:-1] * 8.0          # PET voxel = 8 mm³
    counts = np.bincount(ph.labels.ravel(), minlength=9)[1:]
    np.testing.assert_allclose(volumes, counts, rtol=0.02)  # supersampled overlap ≈ 1 mm³ count
    assert counts[list(TABLE).index(5)] == 32


def test_background_shells_partition_the_unlabelled_space():
    """Shells at 6 and 12 mm on the 1 mm label grid: shell k holds the unlabelled voxels at
    [edge_k, edge_k+1) mm from the atlas voxels, the last one the rest (row −1); on the PET
    grid the atlas and shell fractions sum to 1 in every voxel."""
    from pvc_phantom import PET_AFFINE as pet_affine
    from pvc_phantom import T1W_AFFINE, labels, pose

    from ketpet_bids.core.pvc.regions import pvc_regions, shell_rows
    from ketpet_bids.core.tacs import fraction_weights

    lab = labels()
    lab[lab == 4] = 0                       # CSF left out of the atlas: background
    indices = [i for i in sorted(TABLE) if i != 4]
    rows, shells = shell_rows(lab, indices, (1.0, 1.0, 1.0))
    assert shells == ("background-0-6mm", "background-6-12mm", "background-12mm")
    distance = ndimage.distance_transform_edt(~np.isin(lab, indices))
    for row, (lo, hi) in zip((7, 8, -1), ((0, 6), (6, 12), (12, np.inf)), strict=True):
        assert np.any(rows == row)
        assert np.all((distance[rows == row] >= lo) & (distance[rows == row] < hi))
    np.testing.assert_array_equal(rows[np.isin(lab, indices)],
                                  np.searchsorted(indices, lab[np.isin(lab, indices)]))
    weights = fraction_weights(rows + 1, T1W_AFFINE, range(1, 10), (32, 32, 32), pet_affine,
                               pose())
    regions = pvc_regions(weights, [TABLE[i] for i in indices], shells)
    np.testing.assert_allclose(regions.fractions.sum(axis=0), 1.0, atol=1e-9)
    assert np.all(regions.sizes[-3:] > 0)
