"""Head phantom: labelled anatomy, T1w-like contrast and tissue probabilities.

The phantom is defined analytically in *phantom coordinates* (millimetres, RAS, origin near
the anterior commissure: +x right, +y anterior, +z superior) and rasterised on a grid whose
voxel centres are ``voxel_mm * (i - (n - 1) / 2)`` along each axis. Every subject of a study
shares this anatomy; only the T1w world pose (a translation of the grid) differs.

Regions (``REGIONS``) are painted in a fixed order, later shapes overriding earlier ones:
scalp and skull shells, an outer CSF layer, the cerebrum (white matter) with a cortical ribbon
(6 ± 3 mm deep, undulating like gyri; depth from a distance transform) and a medial cortical
sheet, split into lobes by position; insula; cerebellum (grey matter around a white-matter core); brainstem;
caudate, putamen and thalamus; lateral and third ventricles (CSF); and last the left and right
habenula (34 mm³ analytic: 32 mm³ at 1 mm and 64 mm³ at 2 mm voxels), dorsomedial to the
thalamus beside the third ventricle. Each habenula is guaranteed at least the voxel nearest to
its centre, so it survives coarse grids.

:func:`build_labels` rasterises the centred grid (the subjects' T1w); :func:`labels_at`
evaluates the same anatomy at arbitrary points, e.g. a deformed grid (the synthetic template,
``ketpet_bids.sim.templateflow``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Region:
    """One label of the phantom.

    Attributes
    ----------
    index
        Label value in the label images (1–255).
    name
        Region name: lowercase, alphanumeric and hyphens.
    tissue
        ``"GM"``, ``"WM"``, ``"CSF"`` or ``"other"`` (extracerebral).
    t1w
        Relative T1w intensity (white matter = 1).
    """

    index: int
    name: str
    tissue: str
    t1w: float

    @property
    def in_atlas(self) -> bool:
        """True for the regions of the ``seg-sim`` atlas (brain and CSF, not skull/scalp)."""
        return self.tissue != "other"

    @property
    def in_reference(self) -> bool:
        """True for the regions pooled into the whole-brain reference (atlas minus CSF)."""
        return self.tissue in ("GM", "WM")


CORTICAL = ("frontal", "parietal", "temporal", "occipital", "cingulate", "insula")

REGIONS: tuple[Region, ...] = (
    Region(1, "frontal", "GM", 0.62),
    Region(2, "parietal", "GM", 0.62),
    Region(3, "temporal", "GM", 0.62),
    Region(4, "occipital", "GM", 0.62),
    Region(5, "cingulate", "GM", 0.62),
    Region(6, "insula", "GM", 0.62),
    Region(7, "caudate", "GM", 0.68),
    Region(8, "putamen", "GM", 0.70),
    Region(9, "thalamus", "GM", 0.76),
    Region(10, "habenula-left", "GM", 0.58),
    Region(11, "habenula-right", "GM", 0.58),
    Region(12, "cerebellum", "GM", 0.60),
    Region(13, "brainstem", "WM", 0.85),
    Region(14, "white-matter", "WM", 1.00),
    Region(15, "csf", "CSF", 0.20),
    Region(16, "skull", "other", 0.08),
    Region(17, "scalp", "other", 0.70),
)
BY_NAME: dict[str, Region] = {r.name: r for r in REGIONS}

RIBBON_MM = 6.0  # mean cortical ribbon thickness
_FOLD_MM, _FOLD_DEPTH_MM = 32.0, 3.0  # wavelength and amplitude of the "gyral" undulation
# Ellipsoids: (centre xyz mm, semi-axes xyz mm) in phantom coordinates.
_HEAD_CENTRE = (0.0, -3.0, 0.0)
_INNER_SKULL = (71.0, 90.0, 70.0)
_CEREBRUM = ((0.0, 0.0, 8.0), (69.0, 87.0, 59.0))
_CEREBELLUM = ((0.0, -55.0, -32.0), (45.0, 24.0, 17.0))
_LATERAL_VENTRICLE = ((9.0, 0.0, 16.0), (4.0, 22.0, 6.0))  # right; the left is its mirror
_SUBCORTICAL: tuple[tuple[str, tuple[float, float, float], tuple[float, float, float]], ...] = (
    ("caudate", (14.0, 10.0, 12.0), (4.5, 11.0, 7.0)),
    ("putamen", (24.0, 4.0, 2.0), (5.0, 12.0, 8.0)),
    ("thalamus", (10.0, -16.0, 6.0), (7.0, 14.0, 8.0)),
    ("csf", *_LATERAL_VENTRICLE),
)
_HABENULA = ((4.0, -22.0, 10.0), (1.6, 2.5, 2.0))
HABENULA_CENTRES_MM: dict[str, tuple[float, float, float]] = {
    name: (_HABENULA[0][0] * sign, _HABENULA[0][1], _HABENULA[0][2])
    for sign, name in ((-1.0, "habenula-left"), (1.0, "habenula-right"))}
"""Centres of the habenulae (phantom coordinates, mm; left is x < 0)."""
_DEPTH_GRID_MM = 200.0  # side of the grid on which labels_at measures cortical depth


def phantom_coordinates(shape: tuple[int, int, int], voxel_mm: float) -> np.ndarray:
    """Phantom coordinates of the voxel centres, shape ``(3, *shape)`` in mm (float32)."""
    axes = [voxel_mm * (np.arange(n, dtype=np.float32) - (n - 1) / 2) for n in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def grid_to_phantom(shape: tuple[int, int, int], voxel_mm: float) -> np.ndarray:
    """4×4 matrix from voxel indices to phantom coordinates (mm)."""
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = -voxel_mm * (np.asarray(shape) - 1) / 2
    return affine


def in_ellipsoid(xyz: np.ndarray, centre, semi) -> np.ndarray:
    """Whether the points ``xyz`` (shape ``(3, ...)``, mm) lie in an axis-aligned ellipsoid."""
    expand = (3,) + (1,) * (xyz.ndim - 1)
    c = np.asarray(centre, dtype=np.float32).reshape(expand)
    s = np.asarray(semi, dtype=np.float32).reshape(expand)
    return (((xyz - c) / s) ** 2).sum(axis=0) <= 1.0


def _lobes(xyz: np.ndarray) -> np.ndarray:
    """Cortical label (1–4) for every voxel by position: occipital, temporal, frontal, parietal."""
    _, y, z = xyz
    lobe = np.where(y >= -5.0, BY_NAME["frontal"].index, BY_NAME["parietal"].index)
    lobe = np.where((z < -2.0) & (y < 20.0), BY_NAME["temporal"].index, lobe)
    return np.where(y < -55.0, BY_NAME["occipital"].index, lobe).astype(np.uint8)


def _cerebrum(xyz: np.ndarray) -> np.ndarray:
    return in_ellipsoid(xyz, *_CEREBRUM) & in_ellipsoid(xyz, _HEAD_CENTRE,
                                                         np.asarray(_INNER_SKULL) - 2.0)


def in_cerebellum(xyz: np.ndarray) -> np.ndarray:
    """Whether points ``xyz`` (``(3, ...)``, mm) lie in the cerebellum (its grey matter, its
    white-matter core, or the brainstem and nuclei painted over it)."""
    return in_ellipsoid(xyz, *_CEREBELLUM)


def in_lateral_ventricles(xyz: np.ndarray) -> np.ndarray:
    """Whether points ``xyz`` (``(3, ...)``, mm) lie in the left or right lateral ventricle
    ellipsoid (CSF there unless a later shape overrides it)."""
    (cx, cy, cz), semi = _LATERAL_VENTRICLE
    return in_ellipsoid(xyz, (-cx, cy, cz), semi) | in_ellipsoid(xyz, (cx, cy, cz), semi)


def _paint(xyz: np.ndarray, cerebrum: np.ndarray, depth: np.ndarray,
           nearest: Callable[[tuple[float, float, float]], tuple[np.intp, ...]]) -> np.ndarray:
    """Paint the phantom labels at points ``xyz`` (see module docstring).

    ``cerebrum`` is the cerebrum mask at ``xyz``, ``depth`` the depth (mm) of each point in
    the cerebrum, and ``nearest(centre)`` the index of the point nearest to ``centre``.
    """
    x, y, z = xyz
    lab = np.zeros(xyz.shape[1:], dtype=np.uint8)
    head_c = np.asarray(_HEAD_CENTRE)
    inner = np.asarray(_INNER_SKULL)
    lab[in_ellipsoid(xyz, head_c, inner + 12.0)] = BY_NAME["scalp"].index
    lab[in_ellipsoid(xyz, head_c, inner + 6.0)] = BY_NAME["skull"].index
    lab[in_ellipsoid(xyz, head_c, inner)] = BY_NAME["csf"].index

    lab[cerebrum] = BY_NAME["white-matter"].index
    lobes = _lobes(xyz)
    folds = np.cos(2 * np.pi * x / _FOLD_MM) * np.cos(2 * np.pi * y / _FOLD_MM) * np.cos(
        2 * np.pi * z / _FOLD_MM)
    ribbon = cerebrum & (depth <= RIBBON_MM + _FOLD_DEPTH_MM * folds)
    medial = cerebrum & (np.abs(x) <= 3.0) & (z >= 26.0)
    cortex = ribbon | medial
    lab[cortex] = lobes[cortex]
    cingulate = medial & (z < 45.0) & (y > -45.0) & (y < 35.0)
    lab[cingulate] = BY_NAME["cingulate"].index
    for sign in (-1.0, 1.0):
        lab[in_ellipsoid(xyz, (37.0 * sign, 2.0, 2.0), (3.0, 14.0, 12.0))] = BY_NAME[
            "insula"].index

    cb_centre, cb_semi = _CEREBELLUM
    lab[in_cerebellum(xyz)] = BY_NAME["cerebellum"].index
    lab[in_ellipsoid(xyz, cb_centre, 0.45 * np.asarray(cb_semi))] = BY_NAME[
        "white-matter"].index
    brainstem = (((x / 11.0) ** 2 + ((y + 22.0) / 12.0) ** 2) <= 1.0) & (z >= -62.0) & (z <= -4.0)
    lab[brainstem] = BY_NAME["brainstem"].index

    for name, (cx, cy, cz), semi in _SUBCORTICAL:
        for sign in (-1.0, 1.0):
            lab[in_ellipsoid(xyz, (cx * sign, cy, cz), semi)] = BY_NAME[name].index
    third = (np.abs(x) <= 1.5) & (y >= -25.0) & (y <= 5.0) & (z >= -5.0) & (z <= 15.0)
    lab[third] = BY_NAME["csf"].index
    for name, centre in HABENULA_CENTRES_MM.items():
        lab[in_ellipsoid(xyz, centre, _HABENULA[1])] = BY_NAME[name].index
        lab[nearest(centre)] = BY_NAME[name].index  # the nucleus survives coarse grids
    return lab


def build_labels(shape: tuple[int, int, int], voxel_mm: float) -> np.ndarray:
    """Rasterise the phantom labels on the centred grid (see module docstring).

    Parameters
    ----------
    shape
        Grid shape ``(nx, ny, nz)``; the head (about 166 × 204 × 164 mm) must fit.
    voxel_mm
        Isotropic voxel size (mm).

    Returns
    -------
    numpy.ndarray
        ``uint8`` labels of ``REGIONS`` (0 = background), shape ``shape``.
    """
    xyz = phantom_coordinates(shape, voxel_mm)
    cerebrum = _cerebrum(xyz)
    depth = ndimage.distance_transform_edt(cerebrum, sampling=voxel_mm)

    def nearest(centre):
        return tuple(np.rint(np.asarray(centre) / voxel_mm + (np.asarray(shape) - 1) / 2
                             ).astype(int))

    return _paint(xyz, cerebrum, depth, nearest)


def labels_at(xyz: np.ndarray, voxel_mm: float) -> np.ndarray:
    """Phantom labels at arbitrary points, e.g. a deformed grid.

    The shapes are evaluated at ``xyz`` exactly; the cortical depth comes from the distance
    transform of the cerebrum on the centred grid of spacing ``voxel_mm`` (as in
    :func:`build_labels`), interpolated linearly at ``xyz``; each habenula keeps at least the
    point of ``xyz`` nearest to its centre. On a centred grid it agrees with
    :func:`build_labels` except at ribbon-edge voxels (0.16 % of a 2 mm, 0.27 % of a 3 mm
    even-shaped grid).

    Parameters
    ----------
    xyz
        Phantom coordinates (mm), shape ``(3, ...)``.
    voxel_mm
        Spacing (mm) of the grid the points sample, which sets the depth resolution.

    Returns
    -------
    numpy.ndarray
        ``uint8`` labels of ``REGIONS``, shape ``xyz.shape[1:]``.
    """
    xyz = np.asarray(xyz, dtype=np.float32)
    n = int(np.ceil(_DEPTH_GRID_MM / voxel_mm)) | 1
    depth_grid = ndimage.distance_transform_edt(
        _cerebrum(phantom_coordinates((n, n, n), voxel_mm)), sampling=voxel_mm)
    depth = ndimage.map_coordinates(depth_grid, xyz / voxel_mm + (n - 1) / 2, order=1,
                                    mode="nearest")

    def nearest(centre):
        distance = ((xyz - np.asarray(centre, dtype=np.float32).reshape(
            (3,) + (1,) * (xyz.ndim - 1))) ** 2).sum(axis=0)
        return np.unravel_index(np.argmin(distance), distance.shape)

    return _paint(xyz, _cerebrum(xyz), depth, nearest)


def region_volumes(labels: np.ndarray, voxel_mm: float) -> dict[str, float]:
    """Volume (mm³) of every region in ``labels``."""
    counts = np.bincount(labels.ravel(), minlength=256)
    return {r.name: float(counts[r.index] * voxel_mm**3) for r in REGIONS}


def atlas_labels(labels: np.ndarray) -> np.ndarray:
    """The ``seg-sim`` atlas: ``labels`` with skull and scalp set to 0 (``uint8``)."""
    keep = np.zeros(256, dtype=bool)
    keep[[r.index for r in REGIONS if r.in_atlas]] = True
    return np.where(keep[labels], labels, 0).astype(np.uint8)


def t1w_image(labels: np.ndarray, rng: np.random.Generator, noise_sd: float) -> np.ndarray:
    """T1w-like image (WM 1000 > GM ≈ 620 > CSF 200), slightly blurred, with Gaussian noise.

    Parameters
    ----------
    labels
        Phantom labels.
    rng
        Random generator for the noise.
    noise_sd
        Noise standard deviation relative to white matter (0 = none).

    Returns
    -------
    numpy.ndarray
        ``float32`` image of ``labels.shape``.
    """
    lut = np.zeros(256, dtype=np.float32)
    for r in REGIONS:
        lut[r.index] = 1000.0 * r.t1w
    image = ndimage.gaussian_filter(lut[labels], 0.5, output=np.float32)
    if noise_sd > 0:
        image += rng.normal(0.0, 1000.0 * noise_sd, size=image.shape).astype(np.float32)
    return np.abs(image)


def tissue_probabilities(labels: np.ndarray) -> dict[str, np.ndarray]:
    """GM, WM and CSF probability maps: tissue indicators blurred by 0.5 voxel (``float32``).

    The three maps sum to the blurred brain mask (≤ 1) everywhere.
    """
    out = {}
    for tissue in ("GM", "WM", "CSF"):
        member = np.zeros(256, dtype=np.float32)
        member[[r.index for r in REGIONS if r.tissue == tissue]] = 1.0
        prob = ndimage.gaussian_filter(member[labels], 0.5, output=np.float32)
        out[tissue] = np.clip(prob, 0.0, 1.0)
    return out
