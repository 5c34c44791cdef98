"""Regional spread functions: every region blurred by the PSF, as seen on the PET grid.

The spread function of region ``j`` is ``S_j(v)``, the PET voxel value that region ``j`` at
unit activity (everything else 0) produces: a noise-free frame is ``y = Σ_j c_j S_j``. GTM
(``G_ij = Σ_v m_i S_j / Σ_v m_i``), RBV, Müller-Gärtner and iterative Yang all use ``S``
(the blurred pseudo image of regional values ``x`` is ``Sᵀ x``). ``S`` is a sparse
(R, N) float32 array built once per run and PSF. Two constructions:

:func:`spread_from_labels` (default, anatomical resolution)
    A PET voxel holds the mean of the blurred activity over its footprint. Each region's
    mask on the label (T1w) grid is blurred there with the Gaussian PSF
    (``scipy.ndimage.gaussian_filter``, ``mode="constant"``, on the mask's bounding box padded
    by the kernel radius: identical to blurring the whole grid), interpolated linearly at
    ``k_a`` sub-voxel centres per PET axis ``a`` and averaged over each PET voxel. ``k_a`` is
    the smallest number with sub-voxel spacing ``≤ max(0.6·σ, h/2)`` (``σ`` the smallest PSF
    sigma in mm, ``h`` the smallest label voxel): the blurred activity is smooth on the scale
    ``σ``, and the midpoint rule errs by at most ``0.0101·(s/σ)²`` of a step per axis
    (≤ 0.36 %). This is how ``ketpet_bids.sim`` renders PET, and how a scanner's voxel
    averages the blurred activity. The last region (the outermost background shell, the
    complement of the others, :mod:`.regions`) is ``1 − Σ_{j<R} S_j``, so a uniform activity
    field gives a uniform frame. An anisotropic PSF (FWHM per PET axis) is applied along the
    label axes with the variances it has along them (the off-diagonal covariance that a
    rotated grid adds is dropped; exact for an isotropic PSF and for aligned grids).

:func:`spread_on_pet_grid` (PETPVC's model)
    The fractional region maps on the PET grid are blurred on the PET grid. When the PSF is
    only a few PET voxels wide, blurring voxel averages is not averaging the blurred
    activity: with 4 mm voxels and a 6 mm PSF the transfer fractions of cortex err by ~2 %
    and those of a 64 mm³ nucleus by ~20 % (``benchmarks/results/pvc.md``). Exact for data
    made by that same operation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
from scipy import ndimage, sparse

from ketpet_bids.core.pvc.psf import FWHM_TO_SIGMA, GaussianPSF, blur_box
from ketpet_bids.core.pvc.regions import (
    BACKGROUND_SHELLS_MM,
    PVCRegions,
    pvc_regions,
    shell_rows,
)
from ketpet_bids.core.tacs import fraction_weights

MAX_SUBPOINTS = 4_000_000
"""Sub-voxel values interpolated at once (16 MB of float32)."""
_EMPTY = (np.zeros(0, np.int64), np.zeros(0, np.float32))
"""Entries of a region with no voxel."""


def regions_from_labels(labels: np.ndarray, label_affine: np.ndarray, indices: Sequence[int],
                        names: Sequence[str], pet_shape: Sequence[int], pet_affine: np.ndarray,
                        pet_to_t1w: np.ndarray, psf: GaussianPSF | None,
                        shells_mm: Sequence[float] = BACKGROUND_SHELLS_MM, threads: int = 1
                        ) -> tuple[PVCRegions, sparse.csr_array | None]:
    """Region maps on the PET grid (atlas + background shells) and their spread functions.

    Parameters
    ----------
    labels, label_affine
        (X, Y, Z) T1w-grid label image and its 4×4 affine.
    indices, names
        Atlas labels and their names (one region each, in this order).
    pet_shape, pet_affine, pet_to_t1w
        PET grid and the PET→T1w pose ``B``.
    psf
        PSF for :func:`spread_from_labels`; ``None`` skips the spread functions (``None``
        returned: :func:`.registry.prepare` then builds them on the PET grid).
    shells_mm
        Background shell edges (:func:`.regions.shell_rows`).
    threads
        Regions blurred at once (:func:`spread_from_labels`).
    """
    zooms = np.linalg.norm(label_affine[:3, :3], axis=0)
    rows, shells = shell_rows(labels, indices, zooms, shells_mm)
    n_rows = len(indices) + len(shells)
    weights = fraction_weights(rows + 1, label_affine, range(1, n_rows), pet_shape, pet_affine,
                               pet_to_t1w)
    regions = pvc_regions(weights, names, shells)
    spread = (None if psf is None else
              spread_from_labels(rows, n_rows, label_affine, regions.pet_shape, pet_affine,
                                 pet_to_t1w, psf, threads))
    return regions, spread


def spread_on_pet_grid(regions: PVCRegions, psf: GaussianPSF) -> sparse.csr_array:
    """(R, N) ``S`` from blurring each fractional map on the PET grid (module docstring).

    Each active region is blurred once, on its bounding box padded by the kernel radius.
    """
    shape = regions.pet_shape
    parts = []
    for j in range(len(regions.names)):
        row = regions.fractions[[j]]
        if not row.nnz:
            parts.append(_EMPTY)
            continue
        coords = np.unravel_index(row.indices, shape)
        found = tuple(slice(int(c.min()), int(c.max()) + 1) for c in coords)
        box = _padded(found, psf.radius_voxels, shape)
        dense = np.zeros([s.stop - s.start for s in box], np.float32)
        dense[tuple(c - s.start for c, s in zip(coords, box, strict=True))] = row.data
        blurred = blur_box(dense, psf.sigma_voxels, psf.truncate, _inside(found, box))
        parts.append(_box_entries(blurred, box, shape))
    return _stack(parts, int(np.prod(shape)))


def spread_from_labels(rows: np.ndarray, n_regions: int, label_affine: np.ndarray,
                       pet_shape: tuple[int, int, int], pet_affine: np.ndarray,
                       pet_to_t1w: np.ndarray, psf: GaussianPSF, threads: int = 1
                       ) -> sparse.csr_array:
    """(R, N) ``S`` from region masks blurred at the label grid's resolution (module docstring).

    Parameters
    ----------
    rows
        (X, Y, Z) int label-grid image: the region row (``0 … R−2``) of every voxel, ``−1``
        for voxels of the last region (the complement).
    n_regions
        ``R``.
    label_affine, pet_affine
        4×4 voxel → RAS mm affines of the label grid and the PET grid.
    pet_shape
        (X', Y', Z') PET grid.
    pet_to_t1w
        4×4 RAS pose ``B`` (the tissue at PET-world point ``p`` is at label-world ``B·p``).
    psf
        The PSF (FWHM along the PET axes).
    threads
        Regions processed at once in threads (``scipy.ndimage`` releases the GIL), largest
        first; each holds its padded box (up to the label grid: 4 bytes a voxel, ~3 copies).

    Returns
    -------
    scipy.sparse.csr_array
        (R, X'·Y'·Z') float32, C-order PET voxels; row ``R−1`` is ``max(0, 1 − Σ others)``.
    """
    pet_shape = tuple(int(n) for n in pet_shape)
    rows = np.asarray(rows)
    sigma = label_sigma(psf, label_affine, pet_to_t1w, pet_affine)
    boxes = ndimage.find_objects(rows + 1, max_label=n_regions - 1)
    one = partial(_region_spread, rows=rows, sigma=sigma, truncate=psf.truncate,
                  to_label=np.linalg.inv(label_affine) @ pet_to_t1w @ pet_affine,
                  k=subvoxels(psf, label_affine), pet_shape=pet_shape)
    work = [(j, found) for j, found in enumerate(boxes) if found is not None]
    work.sort(key=lambda item: -np.prod([s.stop - s.start for s in item[1]]))
    parts = [_EMPTY] * len(boxes)
    for (j, _), part in zip(work, _map(one, work, threads), strict=True):
        parts[j] = part
    explicit = _stack(parts, int(np.prod(pet_shape)))
    rest = np.clip(1.0 - np.asarray(explicit.sum(axis=0)).ravel(), 0.0, None)
    nz = np.flatnonzero(rest > 1e-7)
    return sparse.vstack([explicit, sparse.csr_array(
        (rest[nz].astype(np.float32), nz, [0, nz.size]), shape=(1, rest.size))], format="csr")


def _region_spread(item: tuple[int, tuple[slice, slice, slice]], *, rows: np.ndarray,
                   sigma: tuple[float, float, float], truncate: float, to_label: np.ndarray,
                   k: tuple[int, int, int], pet_shape: tuple[int, int, int]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """PET-grid entries of one region ``(j, bounding box)``: its mask blurred on the label
    grid (box padded by the kernel radius) and averaged over the PET voxel footprints."""
    j, found = item
    radius = [int(truncate * s + 0.5) for s in sigma]
    box = _padded(found, radius, rows.shape)
    blurred = blur_box(np.asarray(rows[box] == j, np.float32), sigma, truncate,
                       _inside(found, box))
    first = np.array([s.start for s in box])
    last = np.array([s.stop - 1 for s in box])
    pet_box = _pet_box(first, last, to_label, pet_shape, k)
    values = np.zeros([s.stop - s.start for s in pet_box], np.float32)
    for sub, part in _voxel_means(blurred, first, to_label, pet_box, k,
                                  order=1 if any(sigma) else 0):
        values[sub] = part
    return _box_entries(values, pet_box, pet_shape)


def _map(func: Callable, items: Iterable, threads: int) -> list:
    """``[func(i) for i in items]``, in ``threads`` threads when more than one."""
    if threads <= 1:
        return [func(i) for i in items]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(func, items))


def label_sigma(psf: GaussianPSF, label_affine: np.ndarray, pet_to_t1w: np.ndarray,
                pet_affine: np.ndarray) -> tuple[float, float, float]:
    """PSF sigma (label voxels) along each label axis: square roots of the diagonal of the
    PSF covariance expressed in label voxel coordinates."""
    axes = pet_affine[:3, :3] / np.linalg.norm(pet_affine[:3, :3], axis=0)
    sigma_mm = np.asarray(psf.fwhm_mm) * FWHM_TO_SIGMA
    world = pet_to_t1w[:3, :3] @ axes * sigma_mm                  # columns: σ_a · direction
    in_label = np.linalg.inv(label_affine[:3, :3]) @ world
    return tuple(float(v) for v in np.sqrt((in_label ** 2).sum(axis=1)))


def subvoxels(psf: GaussianPSF, label_affine: np.ndarray) -> tuple[int, int, int]:
    """Sub-voxels per PET axis: spacing ``≤ max(0.6·σ_min, h_min/2)`` (module docstring)."""
    sigma = [f * FWHM_TO_SIGMA for f in psf.fwhm_mm if f > 0]
    h = float(np.linalg.norm(label_affine[:3, :3], axis=0).min())
    step = max(0.6 * min(sigma, default=0.0), 0.5 * h)
    return tuple(max(1, int(np.ceil(v / step - 1e-6))) for v in psf.voxel_mm)


def _voxel_means(image: np.ndarray, first: np.ndarray, to_label: np.ndarray,
                 pet_box: tuple[slice, slice, slice], k: tuple[int, int, int], order: int
                 ) -> Iterator[tuple[tuple[slice, slice, slice], np.ndarray]]:
    """Mean of ``image`` (a label-grid box starting at voxel ``first``) over the ``k``
    sub-voxel centres of each PET voxel of ``pet_box``, in slabs along the first PET axis.

    Yields slices relative to ``pet_box`` and float32 means.
    """
    lo = np.array([s.start for s in pet_box])
    n = np.array([s.stop - s.start for s in pet_box])
    kk = np.asarray(k)
    linear = to_label[:3, :3] / kk                  # fine PET index → label voxel
    offset = to_label[:3, :3] @ (lo - 0.5 + 0.5 / kk) + to_label[:3, 3] - first
    per_slab = max(1, MAX_SUBPOINTS // int(np.prod(kk) * n[1] * n[2]))
    for x0 in range(0, n[0], per_slab):
        nx = min(per_slab, n[0] - x0)
        fine = ndimage.affine_transform(
            image, linear, offset=offset + to_label[:3, 0] * x0,
            output_shape=(nx * k[0], n[1] * k[1], n[2] * k[2]), order=order,
            mode="constant", cval=0.0, output=np.float32)
        yield (slice(x0, x0 + nx), slice(None), slice(None)), _block_mean(fine, k)


def _block_mean(fine: np.ndarray, k: tuple[int, int, int]) -> np.ndarray:
    """Means of the (k₀, k₁, k₂) blocks of a (n₀·k₀, n₁·k₁, n₂·k₂) array: strided sums, axis
    by axis (~9× faster than a reshaped ``mean`` over three non-contiguous axes)."""
    for axis, ka in enumerate(k):
        if ka > 1:
            step = [slice(None)] * 3
            total = fine[tuple(step[:axis] + [slice(0, None, ka)] + step[axis + 1:])].copy()
            for o in range(1, ka):
                total += fine[tuple(step[:axis] + [slice(o, None, ka)] + step[axis + 1:])]
            fine = total
    return fine * np.float32(1.0 / np.prod(k))


def _pet_box(first: np.ndarray, last: np.ndarray, to_label: np.ndarray,
             pet_shape: tuple[int, int, int], k: tuple[int, int, int]
             ) -> tuple[slice, slice, slice]:
    """PET voxels whose sub-voxel centres can reach the label-grid box ``[first, last]``.

    Linear interpolation at label coordinate ``q`` reads voxels ``floor(q)`` and
    ``floor(q) + 1``: only points in ``(first − 1, last + 1)`` can be non-zero. The sub-voxel
    centres of PET voxel ``i`` lie within ``i ± (1 − 1/k)/2`` (PET voxel units).
    """
    corners = np.array(np.meshgrid(*zip(first - 1, last + 1, strict=True), indexing="ij")
                       ).reshape(3, -1).T
    inverse = np.linalg.inv(to_label)
    pet = corners @ inverse[:3, :3].T + inverse[:3, 3]
    reach = 0.5 - 0.5 / np.asarray(k) + 1e-6
    lo = np.clip(np.ceil(pet.min(axis=0) - reach).astype(int), 0, pet_shape)
    hi = np.clip(np.floor(pet.max(axis=0) + reach).astype(int) + 1, 0, pet_shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def _padded(found: tuple[slice, ...], radius: Sequence[int], shape: Sequence[int]
            ) -> tuple[slice, ...]:
    """A bounding box padded by ``radius`` voxels per axis, clipped to the grid."""
    return tuple(slice(max(s.start - r, 0), min(s.stop + r, n))
                 for s, r, n in zip(found, radius, shape, strict=True))


def _inside(found: tuple[slice, ...], box: tuple[slice, ...]) -> tuple[slice, ...]:
    """``found`` in the coordinates of ``box`` (which contains it)."""
    return tuple(slice(f.start - b.start, f.stop - b.start)
                 for f, b in zip(found, box, strict=True))


def _box_entries(values: np.ndarray, box: tuple[slice, slice, slice],
                 shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Flat (C-order, increasing) grid indices and values of the non-zero voxels of a box."""
    local = np.flatnonzero(values)
    coords = np.unravel_index(local, values.shape)
    flat = np.ravel_multi_index(tuple(c + s.start for c, s in zip(coords, box, strict=True)),
                                shape)
    return flat, values.ravel()[local].astype(np.float32)


def _stack(parts: list[tuple[np.ndarray, np.ndarray]], n_voxels: int) -> sparse.csr_array:
    """CSR array with one row per ``(indices, values)`` part."""
    indptr = np.concatenate([[0], np.cumsum([len(i) for i, _ in parts])])
    return sparse.csr_array((np.concatenate([v for _, v in parts]),
                             np.concatenate([i for i, _ in parts]), indptr),
                            shape=(len(parts), n_voxels))
