"""Regions in PET space for partial-volume correction (fractional maps + explicit background).

The atlas regions come from :func:`ketpet_bids.core.tacs.fraction_weights`: row ``r`` holds,
for every PET voxel, the fraction ``m_r(v)`` of the voxel covered by region ``r`` (fractions
of disjoint labels sum to at most 1 per voxel). PVC models the whole field of view, so one
more region is added explicitly:

``background``
    Everything the atlas does not label (extracerebral tissue, skull, scalp, air, and CSF
    when the atlas has no CSF label). It is estimated like a region so that its spill-in is
    removed rather than attributed to the brain; the regions then partition space
    (``Σ m = 1`` in every PET voxel). Because skull, scalp and air differ, the background is
    cut into shells by distance from the labelled tissue, measured on the label (T1w) grid
    (default edges 6 and 12 mm: ``background-0-6mm``, ``background-6-12mm``,
    ``background-12mm``), each with its own activity. The last shell is the complement of
    all other regions, ``1 − Σ m``, and so also holds everything outside the label grid.
    On the simulator's head (skull 0–6 mm and scalp 6–12 mm outside the CSF) one uniform
    background left CSF +27 % and the habenula −2.9 % after GTM
    (``benchmarks/results/pvc.md``).

CSF
    Atlas regions whose names mark CSF (``csf``, ``ventricle``, ``choroid``, as in
    :mod:`ketpet_bids.core.regions`) are ordinary regions with their own mean (GTM, RBV, IY)
    and a separate compartment in Müller-Gärtner; they are never assumed to be zero.

Tissue classes (for Müller-Gärtner): ``CSF`` as above, ``WM`` for names marking white
matter (``white-matter``, ``wm``; cerebellar white matter included), ``background`` for the
extra region, ``GM`` for every other region.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse

from ketpet_bids.core.regions import is_csf, is_white, normalise_name
from ketpet_bids.core.tacs import FractionWeights

BACKGROUND = "background"
BACKGROUND_SHELLS_MM = (6.0, 12.0)
"""Distances (mm) from the labelled tissue at which the background is cut into shells."""
EXPLODE_FACTOR = 10.0
"""Corrected values above this multiple of the frame's largest observed value are clipped."""


@dataclass(frozen=True)
class PVCRegions:
    """Fractional region maps on the PET grid, background shells last.

    Attributes
    ----------
    fractions
        Sparse (R, N) CSR array, N = X·Y·Z PET voxels in C order; ``Σ_r`` of a column is 1.
        Atlas regions first, background shells last.
    names
        Region names (atlas names, then the background shells).
    tissues
        ``GM``, ``WM``, ``CSF`` or ``background`` per region.
    pet_shape
        (X, Y, Z).
    """

    fractions: sparse.csr_array
    names: tuple[str, ...]
    tissues: tuple[str, ...]
    pet_shape: tuple[int, int, int]

    @property
    def sizes(self) -> np.ndarray:
        """(R,) ``Σ_v m_r(v)``: region sizes in PET voxels (0 for regions outside the FOV)."""
        return np.asarray(self.fractions.sum(axis=1)).ravel()

    @property
    def active(self) -> np.ndarray:
        """(R,) bool: regions with a non-zero size (others get NaN values)."""
        return self.sizes > 0

    def means(self, frame: np.ndarray) -> np.ndarray:
        """(R,) fraction-weighted means ``Σ_v m_r(v) f(v) / Σ_v m_r(v)`` of a 3D frame."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.fractions @ np.asarray(frame, np.float64).ravel()) / self.sizes

    def pseudo_image(self, values: np.ndarray) -> np.ndarray:
        """Piecewise-constant image ``Σ_r values_r · m_r(v)`` (float32, ``pet_shape``).

        NaN values (inactive regions) count as 0.
        """
        values = np.nan_to_num(np.asarray(values, np.float64))
        return (self.fractions.T @ values).astype(np.float32).reshape(self.pet_shape)

    def overlap_matrix(self) -> np.ndarray:
        """(R, R) ``F[i, j] = Σ_v m_i m_j / Σ_v m_i`` (PETPVC's fuzziness correction).

        ``F @ x`` are the region means of ``pseudo_image(x)``; identity for binary maps.
        Inactive rows are set to the identity row.
        """
        gram = (self.fractions @ self.fractions.T).toarray()
        sizes = self.sizes
        out = np.eye(len(sizes))
        out[self.active] = gram[self.active] / sizes[self.active, None]
        return out

    @property
    def atlas(self) -> np.ndarray:
        """(R,) bool: atlas regions (not background)."""
        return np.array([t != BACKGROUND for t in self.tissues])

    def tissue_fraction(self, tissue: str) -> np.ndarray:
        """(X, Y, Z) float32 summed fraction of the regions of one tissue class."""
        chosen = np.array([t == tissue for t in self.tissues], dtype=float)
        return self.pseudo_image(chosen)


def tissue_class(name: str) -> str:
    """``CSF``, ``WM`` or ``GM`` for an atlas region name (module docstring)."""
    key = normalise_name(name)
    if is_csf(key):
        return "CSF"
    return "WM" if is_white(key) else "GM"


def shell_rows(labels: np.ndarray, indices: Sequence[int], zooms: Sequence[float],
               shells_mm: Sequence[float] = BACKGROUND_SHELLS_MM
               ) -> tuple[np.ndarray, tuple[str, ...]]:
    """Region row of every label-grid voxel: atlas regions, then background shells.

    Parameters
    ----------
    labels
        (X, Y, Z) integer label image (T1w grid).
    indices
        Atlas labels; row ``r`` is ``indices[r]``.
    zooms
        Label voxel sizes (mm), for the shell distances.
    shells_mm
        Increasing distances (mm) from the atlas-labelled voxels at which the unlabelled
        voxels are cut; ``()`` keeps one background region.

    Returns
    -------
    rows, shell_names
        (X, Y, Z) int32: ``r`` for atlas region ``r``, ``len(indices) + s`` for the voxels of
        shell ``s`` at distances ``[edge_s, edge_s+1)``, ``−1`` for the last shell (the
        complement, :func:`pvc_regions`); and the names of all shells.
    """
    lut = np.full(max(int(labels.max()), max(indices, default=0)) + 1, -1, np.int32)
    lut[list(indices)] = np.arange(len(indices), dtype=np.int32)
    rows = lut[labels]
    edges = [0.0, *(float(d) for d in shells_mm), np.inf]
    names = tuple(BACKGROUND if len(edges) == 2 else
                  f"{BACKGROUND}-{lo:g}mm" if hi == np.inf else f"{BACKGROUND}-{lo:g}-{hi:g}mm"
                  for lo, hi in zip(edges[:-1], edges[1:], strict=True))
    if len(edges) > 2:
        outside = rows < 0
        distance = ndimage.distance_transform_edt(outside, sampling=tuple(map(float, zooms)))
        shell = np.searchsorted(np.asarray(edges[1:-1]), distance[outside], side="right")
        rows[outside] = np.where(shell < len(edges) - 2, len(indices) + shell, -1)
    return rows, names


def pvc_regions(weights: FractionWeights, names: Sequence[str],
                shell_names: Sequence[str] = (BACKGROUND,)) -> PVCRegions:
    """Region maps on the PET grid, the last background shell added as the complement.

    Parameters
    ----------
    weights
        Fractions (:func:`ketpet_bids.core.tacs.fraction_weights`) of the atlas regions, then
        of all background shells but the last (e.g. of :func:`shell_rows` ``+ 1``).
    names
        Atlas region names (the first rows of ``weights``).
    shell_names
        Names of the background shells; the last one is ``clip(1 − Σ_r m_r, 0, 1)``.

    Returns
    -------
    PVCRegions
        Atlas rows then the shells (empty shells are kept, inactive).
    """
    n_rows = len(names) + len(shell_names) - 1
    if n_rows != weights.matrix.shape[0]:
        raise ValueError(f"{n_rows} names for {weights.matrix.shape[0]} regions")
    rest = np.clip(1.0 - np.asarray(weights.matrix.sum(axis=0)).ravel(), 0.0, 1.0)
    rest[rest < 1e-9] = 0.0
    fractions = sparse.vstack([weights.matrix, sparse.csr_array(rest[None])], format="csr")
    return PVCRegions(fractions=fractions, names=(*names, *shell_names),
                      tissues=(*(tissue_class(n) for n in names),
                               *[BACKGROUND] * len(shell_names)),
                      pet_shape=tuple(weights.pet_shape))


def reference_weights(labels: np.ndarray, ref_mask: np.ndarray, indices: Sequence[int]
                      ) -> np.ndarray:
    """T1w volume (voxels) of the reference mask inside each atlas region.

    The PVC-corrected reference TAC is ``Σ_r w_r TAC_r / Σ_r w_r`` with these weights: exact
    for GTM (regions uniform) and equal to the fractional mean of a voxelwise-corrected image
    over the mask when the mask is a union of whole regions.

    Parameters
    ----------
    labels
        (X, Y, Z) T1w label image.
    ref_mask
        (X, Y, Z) bool reference mask on the same grid.
    indices
        Atlas label of each region (the order of the TAC columns).

    Returns
    -------
    numpy.ndarray
        (len(indices),) float64 voxel counts.
    """
    counts = np.bincount(labels[np.asarray(ref_mask, bool)].ravel(),
                         minlength=max(indices, default=0) + 1)
    return counts[np.asarray(indices, dtype=int)].astype(float)


def clip_activity(values: np.ndarray, upper: float) -> tuple[np.ndarray, dict[str, int]]:
    """Clip values to ``[0, upper]`` (NaN kept) and count what was clipped.

    Returns
    -------
    clipped, report
        The clipped array (same dtype) and ``{"negative": n, "exploding": n}``.
    """
    with np.errstate(invalid="ignore"):
        negative = int(np.count_nonzero(values < 0))
        exploding = int(np.count_nonzero(values > upper))
    if negative or exploding:
        values = np.clip(values, 0.0, upper).astype(values.dtype)
    return values, {"negative": negative, "exploding": exploding}


def explode_limit(observed: np.ndarray) -> float:
    """Upper clip value: ``EXPLODE_FACTOR`` × the largest observed value (∞ if none > 0)."""
    peak = float(np.nanmax(observed)) if np.size(observed) else 0.0
    return EXPLODE_FACTOR * peak if peak > 0 else float("inf")
