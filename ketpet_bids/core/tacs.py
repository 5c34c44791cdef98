"""Regional time-activity curves with partial-volume-aware (fractional) region weights.

A region defined on a fine T1w-space label image covers PET voxels partly. For every region
``r`` and PET voxel ``j`` we compute the fraction ``w[r, j]`` of the voxel's volume that
belongs to the region, by supersampling: each PET voxel is split into ``s1×s2×s3`` sub-voxels,
the centre ``p`` of each is mapped into the label image through the PET→T1w pose
(``x = B·p``, RAS mm, see :func:`read_matrix`) and looked up there (nearest label voxel, i.e.
the label image is treated as piecewise constant on its voxels). With the default
supersampling the sub-voxels are no larger than half a label voxel, so the fractions converge
to the exact overlap of the PET voxel with the region. ``Σ_j w[r, j] · V_pet`` is the region
volume.

The regional TAC is the weighted mean ``Σ_j w[r, j] C_j(t) / Σ_j w[r, j]`` per frame, computed
as a sparse (n_regions × n_voxels) matrix times one frame at a time, so memory grows with one
frame. This is the fractional-ROI mean (no PSF model): boundary voxels still mix neighbouring
tissue in proportion to their fractions, which biases small regions and region edges (13–22%
on the simulator's phantom); partial-volume correction (GTM etc.) reuses
:class:`FractionWeights` with a PSF.

:func:`unmixed_means` removes that mixing: it models each PET voxel as the fraction-weighted
sum of uniform regional activities, ``C_j = Σ_r w[r, j] c_r + b_j c_bg`` where the background
class ``b_j = 1 − Σ_r w[r, j]`` holds the unlabelled tissue of the voxels the regions touch,
and solves the normal equations ``(W Wᵀ) c = W C`` per frame (a geometric transfer matrix
without a PSF). It is exact for noise-free, PSF-free images whose activity is uniform within
every region and within the unlabelled tissue next to them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import linalg, sparse

from ketpet_bids.errors import InputError

_MAX_POINTS = 2_000_000  # sub-voxel points handled at once (~50 MB of float64 coordinates)
_MAX_BINS = 8_000_000  # voxel × region histogram bins handled at once


def read_matrix(path: Path) -> np.ndarray:
    """Read a 4×4 RAS affine from a whitespace-separated text file or a ``.npy`` file.

    Raises
    ------
    InputError
        Naming ``path`` when it is not a 4×4 affine with last row ``0 0 0 1``.
    """
    path = Path(path)
    try:
        matrix = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot read a 4×4 matrix ({err})") from err
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (4, 4) or not np.allclose(matrix[3], [0, 0, 0, 1]):
        raise InputError(path, f"expected a 4×4 affine with last row 0 0 0 1, got shape "
                         f"{matrix.shape}")
    return matrix


@dataclass(frozen=True)
class FractionWeights:
    """Fraction of each PET voxel covered by each region.

    Attributes
    ----------
    matrix
        Sparse (n_regions, n_pet_voxels) CSR array; column ``j`` is the C-order flat index
        of the PET voxel; values in [0, 1].
    indices
        Region label index of each row.
    pet_shape
        Spatial PET shape (X, Y, Z).
    voxel_volume_mm3
        Volume of one PET voxel (mm³).
    oversample
        Sub-voxels per PET voxel along each PET axis.
    """

    matrix: sparse.csr_array
    indices: tuple[int, ...]
    pet_shape: tuple[int, int, int]
    voxel_volume_mm3: float
    oversample: tuple[int, int, int]

    @property
    def volumes_mm3(self) -> np.ndarray:
        """(n_regions,) region volumes seen from the PET grid, ``Σ_j w · V_pet`` (mm³)."""
        return np.asarray(self.matrix.sum(axis=1)).ravel() * self.voxel_volume_mm3

    @property
    def n_voxels(self) -> np.ndarray:
        """(n_regions,) number of PET voxels with a non-zero fraction."""
        return np.diff(self.matrix.indptr)


def default_oversample(pet_zooms: Sequence[float], label_zooms: Sequence[float]
                       ) -> tuple[int, int, int]:
    """Sub-voxels per PET axis so that each is at most half the smallest label voxel."""
    step = 0.5 * min(float(z) for z in label_zooms)
    return tuple(max(1, int(np.ceil(float(z) / step - 1e-6))) for z in pet_zooms)


def fraction_weights(labels: np.ndarray, label_affine: np.ndarray, indices: Sequence[int],
                     pet_shape: Sequence[int], pet_affine: np.ndarray,
                     pet_to_t1w: np.ndarray, oversample: Sequence[int] | None = None
                     ) -> FractionWeights:
    """Fractional coverage of PET voxels by the regions of a T1w-space label image.

    Parameters
    ----------
    labels
        (X, Y, Z) integer label image in T1w space.
    label_affine
        4×4 voxel → T1w-world RAS mm affine of ``labels``.
    indices
        Region labels to compute (one matrix row each, in this order); other labels are
        ignored.
    pet_shape
        Spatial PET shape (X', Y', Z').
    pet_affine
        4×4 voxel → PET-world RAS mm affine.
    pet_to_t1w
        4×4 RAS matrix B: the tissue at PET-world point p sits at T1w-world point B·p.
    oversample
        Sub-voxels per PET axis; default :func:`default_oversample`.

    Returns
    -------
    FractionWeights
    """
    pet_shape = tuple(int(n) for n in pet_shape[:3])
    pet_zooms = np.sqrt((pet_affine[:3, :3] ** 2).sum(axis=0))
    label_zooms = np.sqrt((label_affine[:3, :3] ** 2).sum(axis=0))
    s = tuple(int(v) for v in (oversample or default_oversample(pet_zooms, label_zooms)))
    n_sub = int(np.prod(s))
    indices = tuple(int(i) for i in indices)
    n_regions, n_pet = len(indices), int(np.prod(pet_shape))

    lut = np.full(max(int(labels.max()), max(indices, default=0)) + 1, -1, dtype=np.int64)
    lut[list(indices)] = np.arange(n_regions)
    region_of = lut[labels]  # (X, Y, Z) row number or -1

    # PET voxel coordinates → label voxel coordinates.
    to_label = np.linalg.inv(label_affine) @ pet_to_t1w @ pet_affine
    offsets = np.stack(np.meshgrid(*[(np.arange(k) + 0.5) / k - 0.5 for k in s],
                                   indexing="ij"), axis=-1).reshape(-1, 3)
    lo, hi = _pet_box(region_of >= 0, to_label, pet_shape)

    rows, cols, counts = [], [], []
    plane = (hi[0] - lo[0]) * (hi[1] - lo[1])
    per_chunk = max(1, min(_MAX_POINTS // (n_sub * max(plane, 1)),
                           _MAX_BINS // (max(plane, 1) * max(n_regions, 1))))
    grid_xy = np.stack(np.meshgrid(np.arange(lo[0], hi[0]), np.arange(lo[1], hi[1]),
                                   indexing="ij"), axis=-1).reshape(-1, 2)
    for z0 in range(lo[2], hi[2], per_chunk):
        zs = np.arange(z0, min(z0 + per_chunk, hi[2]))
        vox = np.concatenate([np.repeat(grid_xy, len(zs), axis=0),
                              np.tile(zs, len(grid_xy))[:, None]], axis=1)  # (n, 3)
        points = (vox[:, None, :] + offsets[None]).reshape(-1, 3)
        ijk = np.floor(points @ to_label[:3, :3].T + to_label[:3, 3] + 0.5).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < labels.shape), axis=1)
        region = np.full(len(ijk), -1, dtype=np.int64)
        region[inside] = region_of[ijk[inside, 0], ijk[inside, 1], ijk[inside, 2]]
        keep = region >= 0
        local = np.repeat(np.arange(len(vox)), n_sub)[keep]
        hist = np.bincount(local * n_regions + region[keep],
                           minlength=len(vox) * n_regions)
        nz = np.flatnonzero(hist)
        flat = np.ravel_multi_index(tuple(vox[nz // n_regions].T), pet_shape)
        rows.append(nz % n_regions)
        cols.append(flat)
        counts.append(hist[nz])
    matrix = sparse.csr_array(
        (np.concatenate(counts or [np.zeros(0)]) / n_sub,
         (np.concatenate(rows or [np.zeros(0, int)]), np.concatenate(cols or [np.zeros(0, int)]))),
        shape=(n_regions, n_pet))
    return FractionWeights(matrix=matrix, indices=indices, pet_shape=pet_shape,
                           voxel_volume_mm3=float(abs(np.linalg.det(pet_affine[:3, :3]))),
                           oversample=s)


def _pet_box(mask: np.ndarray, to_label: np.ndarray, pet_shape: tuple[int, int, int]
             ) -> tuple[np.ndarray, np.ndarray]:
    """PET voxel index range [lo, hi) that can overlap the labelled voxels of ``mask``."""
    if not mask.any():
        return np.zeros(3, int), np.zeros(3, int)
    where = np.nonzero(mask)
    first = np.array([w.min() for w in where]) - 0.5
    last = np.array([w.max() for w in where]) + 0.5
    corners = np.array(np.meshgrid(*zip(first, last, strict=True), indexing="ij")
                       ).reshape(3, -1).T
    to_pet = np.linalg.inv(to_label)
    pet = corners @ to_pet[:3, :3].T + to_pet[:3, 3]
    lo = np.clip(np.floor(pet.min(axis=0)).astype(int) - 1, 0, pet_shape)
    hi = np.clip(np.ceil(pet.max(axis=0)).astype(int) + 2, 0, pet_shape)
    return lo, hi


def regional_means(weights: sparse.sparray, frames: Iterable[np.ndarray]) -> np.ndarray:
    """Weighted regional means ``Σ_j w[r, j] C_j / Σ_j w[r, j]`` of each frame.

    Parameters
    ----------
    weights
        Sparse (n_regions, n_voxels) weights, e.g. :attr:`FractionWeights.matrix` (several
        may be stacked with ``scipy.sparse.vstack`` to read the frames once).
    frames
        Iterable of PET frames (Bq/mL) with n_voxels voxels each (C-order), consumed one at
        a time.

    Returns
    -------
    numpy.ndarray
        (n_frames, n_regions) float64, Bq/mL; NaN for regions with no weight.
    """
    total = np.asarray(weights.sum(axis=1)).ravel()
    out = []
    for frame in frames:
        if frame.size != weights.shape[1]:
            raise ValueError(f"frame of {frame.size} voxels, weights for {weights.shape[1]}")
        out.append(weights @ np.asarray(frame, dtype=np.float64).ravel())
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.array(out).reshape(-1, len(total)) / total
    means[:, total == 0] = np.nan
    return means


def unmixed_means(weights: sparse.sparray, frames: Iterable[np.ndarray]) -> np.ndarray:
    """Regional activities that best explain the frames as mixtures of uniform regions.

    Solves ``(W̃ W̃ᵀ) c = W̃ C`` per frame (least squares), where ``W̃`` is ``weights`` with
    one background row ``b_j = max(0, 1 − Σ_r w[r, j])`` on the voxels any region touches.

    Parameters
    ----------
    weights
        Sparse (n_regions, n_voxels) fractions of one label image
        (:attr:`FractionWeights.matrix`; the rows must not overlap, so a reference mask
        cannot be stacked with the atlas here).
    frames
        Iterable of PET frames (Bq/mL) with n_voxels voxels each (C-order), consumed one at
        a time.

    Returns
    -------
    numpy.ndarray
        (n_frames, n_regions) float64, Bq/mL; NaN for regions with no weight.

    Raises
    ------
    numpy.linalg.LinAlgError
        When two regions cannot be told apart (proportional fraction rows).
    """
    weights = sparse.csr_array(weights)
    coverage = np.asarray(weights.sum(axis=0)).ravel()
    touched = np.flatnonzero(coverage > 0)
    background = sparse.csr_array(
        (np.clip(1.0 - coverage[touched], 0.0, None), (np.zeros(len(touched), int), touched)),
        shape=(1, weights.shape[1]))
    design = sparse.vstack([weights, background], format="csr")
    gram = (design @ design.T).toarray()
    present = np.diag(gram) > 0
    rhs = []
    for frame in frames:
        if frame.size != design.shape[1]:
            raise ValueError(f"frame of {frame.size} voxels, weights for {design.shape[1]}")
        rhs.append(design @ np.asarray(frame, dtype=np.float64).ravel())
    rhs = np.array(rhs).reshape(-1, len(gram))
    out = np.full(rhs.shape, np.nan)
    out[:, present] = linalg.solve(gram[np.ix_(present, present)], rhs[:, present].T,
                                   assume_a="sym").T
    return out[:, :-1]
