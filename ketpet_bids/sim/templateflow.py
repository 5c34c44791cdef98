"""A synthetic TemplateFlow tree whose template is the simulator's phantom, deformed.

The network of our build and test machines reaches no TemplateFlow server, so tests and the
demo read templates from a generated tree with TemplateFlow's layout and file names
(:func:`write_templateflow`, for every query of :data:`ketpet_bids.core.templates.REQUIRED`).
Its "MNI152NLin2009cAsym" is the phantom of :mod:`ketpet_bids.sim.phantom` seen through a known
smooth deformation (:class:`Deformation`), so that registering a subject (the undeformed phantom
in its own T1w pose) to it is a non-trivial, nonlinear problem with a known answer.

World coordinates of the template are RAS millimetres whose origin is the phantom's origin
(MNI-like): template point ``p`` shows the phantom at ``q = p / scale + u(p)``, with
``scale`` = :data:`SCALE` (the template brain is 4 % larger, like MNI brains) and ``u`` a
smooth displacement of at most ``deform_mm`` per axis (``u(0) = 0``).

Template-space atlases encode phantom regions (left/right by the sign of phantom x):

* ``seg-aseg`` (FreeSurfer LUT values): cerebral cortex 3/42 (all phantom cortical lobes),
  cerebral white matter 2/41, lateral ventricles 4/43, thalamus 10/49 (and the habenulae),
  caudate 11/50, putamen 12/51, cerebellum cortex 8/47, cerebellum white matter 7/46 (white
  matter inside the cerebellum), brainstem 16, other CSF 24. The phantom has no pallidum,
  hippocampus, amygdala or accumbens; stand-ins (:data:`STAND_INS`, 13/52, 17/53, 18/54,
  26/58) are carved out of phantom white matter so that the real default-atlas recipe runs
  unchanged — their truth is white matter.
* ``atlas-Schaefer2018_desc-100Parcels7Networks``: the phantom cortex split into networks by
  lobe (:data:`NETWORK_LOBES`; frontal cortex anterior of :data:`FRONTAL_SPLIT_Y_MM` is the
  default network, the rest somatomotor), × hemisphere, × 2 parcels (posterior ``_1`` and
  anterior ``_2`` of a per-network y plane), named in Schaefer's style
  (``7Networks_LH_Default_1`` …; 28 parcels, not 100).
* ``atlas-MASSP20`` (MASSP 2.0 label values, see :mod:`ketpet_bids.core.atlas`): caudate 1/2,
  thalamus 13/14, lateral ventricles 15/16, lateral habenula 36/37, putamen 38/39.

The ``res-01`` files hold a ``voxel_mm`` grid and the ``res-02`` files a ``2 * voxel_mm``
grid: tests use ``voxel_mm`` = 2–3 mm to stay fast (a 1 mm tree takes tens of seconds).
:func:`default_atlas_truth` gives the default atlas rasterised on an undeformed phantom grid
(a subject's T1w grid), the truth a template-to-T1w warp of the default atlas should reach.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ketpet_bids.core.atlas import SCHAEFER_NETWORKS, combine_default_atlas
from ketpet_bids.core.templates import DEFAULT_TEMPLATE
from ketpet_bids.sim import phantom, writer

SCALE = 1.04
"""Template size / phantom size (isotropic)."""
WAVELENGTH_MM = 120.0
"""Wavelength of the sinusoidal displacement."""
BOUNDS_MM = ((-96.0, 96.0), (-124.0, 112.0), (-96.0, 96.0))
"""Template field of view (world x, y, z ranges, mm): the scaled, deformed head fits."""

NETWORK_LOBES = {"Vis": "occipital", "SomMot": "frontal", "DorsAttn": "parietal",
                 "SalVentAttn": "insula", "Limbic": "temporal", "Cont": "cingulate",
                 "Default": "frontal"}
"""Network → phantom cortical region it covers (frontal is shared: see the module docstring)."""
FRONTAL_SPLIT_Y_MM = 30.0
_PARCEL_SPLIT_Y_MM = {"Vis": -71.0, "SomMot": 12.0, "DorsAttn": -31.0, "SalVentAttn": 2.0,
                      "Limbic": -11.0, "Cont": -5.0, "Default": 55.0}  # ~median y of each
SCHAEFER_NAMES: dict[int, str] = {
    i: name for i, name in enumerate(
        (f"7Networks_{h}_{net}_{k}" for h in ("LH", "RH") for net in SCHAEFER_NETWORKS
         for k in (1, 2)),
        start=1)}
"""Schaefer label table of the synthetic tree (index → name)."""

# FreeSurfer aseg (left, right) values of phantom regions; x < 0 is left.
_ASEG = {"frontal": (3, 42), "parietal": (3, 42), "temporal": (3, 42), "occipital": (3, 42),
         "cingulate": (3, 42), "insula": (3, 42), "caudate": (11, 50), "putamen": (12, 51),
         "thalamus": (10, 49), "habenula-left": (10, 49), "habenula-right": (10, 49),
         "cerebellum": (8, 47), "brainstem": (16, 16), "white-matter": (2, 41), "csf": (24, 24)}
_ASEG_CEREBELLUM_WM, _ASEG_LATERAL_VENTRICLE = (7, 46), (4, 43)
STAND_INS: dict[str, tuple[tuple[int, int], tuple[float, float, float],
                           tuple[float, float, float]]] = {
    "pallidum": ((13, 52), (19.0, 0.0, 0.0), (2.5, 7.0, 5.0)),
    "hippocampus": ((17, 53), (28.0, -25.0, -14.0), (5.0, 16.0, 5.0)),
    "amygdala": ((18, 54), (24.0, -4.0, -18.0), (5.0, 5.0, 5.0)),
    "accumbens": ((26, 58), (9.0, 14.0, -6.0), (3.5, 4.0, 3.5)),
}
"""aseg structures the phantom lacks: (left, right) values, right-side centre and semi-axes
(phantom mm) of an ellipsoid, painted where the phantom is (cerebral) white matter."""
# MASSP 2.0 (left, right) values (nighres massp_2p0 label list, see core.atlas).
_MASSP = {"caudate": (1, 2), "thalamus": (13, 14), "habenula-left": (36, 37),
          "habenula-right": (36, 37), "putamen": (38, 39)}
_MASSP_LATERAL_VENTRICLE = (15, 16)
_MASSP_NAMES = {1: "Caudate left", 2: "Caudate right", 13: "Thalamus left",
                14: "Thalamus right", 15: "Lateral ventricle left",
                16: "Lateral ventricle right", 36: "Lateral habenula left",
                37: "Lateral habenula right", 38: "Putamen left", 39: "Putamen right"}


@dataclass(frozen=True)
class Deformation:
    """Template → phantom mapping ``q = p / scale + u(p)``.

    ``u_x = A sin(k y) cos(k z + a_x)``, ``u_y = A sin(k z) cos(k x + a_y)``,
    ``u_z = A sin(k x) cos(k y + a_z)`` with ``k = 2π / wavelength_mm``: smooth, ``u(0) = 0``
    and ``|u_i| ≤ A``. Invertible while ``scale · A · k · √2 < 1`` (0.22 for the defaults).

    Attributes
    ----------
    amplitude_mm
        ``A``, the largest displacement along each axis (mm).
    phases
        ``(a_x, a_y, a_z)`` (radians).
    scale, wavelength_mm
        Global scaling and wavelength (mm).
    """

    amplitude_mm: float
    phases: tuple[float, float, float]
    scale: float = SCALE
    wavelength_mm: float = WAVELENGTH_MM

    @classmethod
    def from_seed(cls, amplitude_mm: float, seed: int) -> Deformation:
        """Deformation with phases drawn uniformly in [0, 2π) from ``seed``."""
        phases = np.random.default_rng(seed).uniform(0.0, 2 * np.pi, 3)
        return cls(float(amplitude_mm), tuple(float(a) for a in phases))

    def displacement(self, xyz: np.ndarray) -> np.ndarray:
        """``u(p)`` (mm) at template points ``xyz`` of shape ``(3, ...)`` (mm)."""
        k, a = 2 * np.pi / self.wavelength_mm, self.amplitude_mm
        x, y, z = xyz
        ax, ay, az = self.phases
        return np.stack([a * np.sin(k * y) * np.cos(k * z + ax),
                         a * np.sin(k * z) * np.cos(k * x + ay),
                         a * np.sin(k * x) * np.cos(k * y + az)])

    def template_to_phantom(self, xyz: np.ndarray) -> np.ndarray:
        """Phantom coordinates ``q`` (mm) shown at template points ``xyz`` (``(3, ...)``)."""
        xyz = np.asarray(xyz, dtype=np.float64)
        return xyz / self.scale + self.displacement(xyz)

    def phantom_to_template(self, xyz: np.ndarray, iterations: int = 60) -> np.ndarray:
        """Template points ``p`` (mm) that show phantom points ``xyz`` (``(3, ...)``).

        Fixed-point iteration ``p ← scale · (q − u(p))``, a contraction (factor ≤ 0.22 for
        the defaults): 60 iterations reach machine precision.
        """
        q = np.asarray(xyz, dtype=np.float64)
        p = q * self.scale
        for _ in range(iterations):
            p = self.scale * (q - self.displacement(p))
        return p


def template_grid(voxel_mm: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and 4×4 affine of the template grid of spacing ``voxel_mm`` over :data:`BOUNDS_MM`."""
    shape = tuple(int(np.floor((hi - lo) / voxel_mm + 1e-6)) + 1 for lo, hi in BOUNDS_MM)
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = [lo for lo, _ in BOUNDS_MM]
    return shape, affine


def grid_world(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """World coordinates (mm) of the voxel centres of an axis-aligned grid, ``(3, *shape)``."""
    axes = [affine[i, 3] + affine[i, i] * np.arange(n) for i, n in enumerate(shape)]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def atlas_images(labels: np.ndarray, xyz: np.ndarray) -> dict[str, np.ndarray]:
    """aseg, Schaefer and MASSP label images of phantom ``labels`` at phantom points ``xyz``.

    Parameters
    ----------
    labels
        Phantom labels (``phantom.REGIONS``), shape ``S``.
    xyz
        Phantom coordinates (mm) of the same points, shape ``(3, *S)``.

    Returns
    -------
    dict
        ``"aseg"``, ``"schaefer"``, ``"massp"``: ``uint8`` arrays of shape ``S`` (values: see
        the module docstring).
    """
    right = xyz[0] >= 0
    out = {key: np.zeros(labels.shape, dtype=np.uint8) for key in ("aseg", "schaefer", "massp")}

    def paint(key: str, mask: np.ndarray, pair: tuple[int, int]) -> None:
        out[key][mask] = np.where(right[mask], pair[1], pair[0])

    def region(name: str) -> np.ndarray:
        return labels == phantom.BY_NAME[name].index

    for name, pair in _ASEG.items():
        paint("aseg", region(name), pair)
    paint("aseg", region("white-matter") & phantom.in_cerebellum(xyz), _ASEG_CEREBELLUM_WM)
    paint("aseg", region("csf") & phantom.in_lateral_ventricles(xyz), _ASEG_LATERAL_VENTRICLE)
    cerebral_wm = region("white-matter") & ~phantom.in_cerebellum(xyz)
    for pair, (cx, cy, cz), semi in STAND_INS.values():
        inside = phantom.in_ellipsoid(xyz, (cx, cy, cz), semi) | phantom.in_ellipsoid(
            xyz, (-cx, cy, cz), semi)
        paint("aseg", cerebral_wm & inside, pair)

    index = {name: i for i, name in SCHAEFER_NAMES.items()}
    for net, lobe in NETWORK_LOBES.items():
        mask = region(lobe)
        if lobe == "frontal":
            anterior = xyz[1] >= FRONTAL_SPLIT_Y_MM
            mask &= anterior if net == "Default" else ~anterior
        first = np.where(right[mask], index[f"7Networks_RH_{net}_1"],
                         index[f"7Networks_LH_{net}_1"])  # "_2" follows "_1"
        out["schaefer"][mask] = first + (xyz[1][mask] >= _PARCEL_SPLIT_Y_MM[net])

    for name, pair in _MASSP.items():
        paint("massp", region(name), pair)
    paint("massp", region("csf") & phantom.in_lateral_ventricles(xyz), _MASSP_LATERAL_VENTRICLE)
    return out


def default_atlas_truth(shape: tuple[int, int, int], voxel_mm: float
                        ) -> tuple[np.ndarray, pd.DataFrame]:
    """The default atlas on the undeformed phantom grid (a subject's T1w grid).

    ``phantom.build_labels(shape, voxel_mm)`` are the subjects' truth labels (``seg-sim``
    regions before skull removal), so this is where a template-to-T1w warp of the default
    atlas should put each region. Cortex-network regions are parts of phantom lobes
    (:data:`NETWORK_LOBES`), subcortical regions and the habenulae are the phantom's, and the
    stand-ins (:data:`STAND_INS`) and ``white-matter`` are phantom white matter.

    Returns
    -------
    tuple
        ``uint16`` labels of shape ``shape`` and the ``index name`` table (as
        :func:`ketpet_bids.core.atlas.combine_default_atlas`).
    """
    xyz = phantom.phantom_coordinates(shape, voxel_mm)
    images = atlas_images(phantom.build_labels(shape, voxel_mm), xyz)
    return combine_default_atlas(images["aseg"], images["schaefer"], SCHAEFER_NAMES,
                                 images["massp"])


def _label_table(names: dict[int, str]) -> pd.DataFrame:
    return pd.DataFrame({"index": list(names), "name": list(names.values())})


def write_templateflow(root: Path, *, voxel_mm: float = 1.0, deform_mm: float = 3.0,
                       seed: int = 0) -> Path:
    """Write a TemplateFlow tree holding a phantom-based ``MNI152NLin2009cAsym``.

    Parameters
    ----------
    root
        TemplateFlow home to create (point ``TEMPLATEFLOW_HOME`` at it).
    voxel_mm
        Voxel size of the ``res-01`` files (mm); ``res-02`` files have twice that.
    deform_mm
        Largest displacement of the deformation along each axis (mm).
    seed
        Seed of the deformation phases.

    Returns
    -------
    pathlib.Path
        ``root``, holding ``dataset_description.json`` and ``tpl-MNI152NLin2009cAsym/``.
    """
    root = Path(root)
    folder = root / f"tpl-{DEFAULT_TEMPLATE}"
    folder.mkdir(parents=True, exist_ok=True)
    writer.write_sidecar(root / "dataset_description.json",
                         {"Name": "TemplateFlow (ketpet_bids phantom)", "BIDSVersion": "1.1.0"})
    deformation = Deformation.from_seed(deform_mm, seed)
    stem = folder / f"tpl-{DEFAULT_TEMPLATE}"
    grids = {}
    for res, spacing in (("01", voxel_mm), ("02", 2.0 * voxel_mm)):
        shape, affine = template_grid(spacing)
        grids[res] = {"origin": affine[:3, 3].tolist(), "shape": list(shape),
                      "zooms": [spacing] * 3}
        xyz = deformation.template_to_phantom(grid_world(shape, affine)).astype(np.float32)
        labels = phantom.labels_at(xyz, spacing)
        t1w = phantom.t1w_image(labels, np.random.default_rng(seed), 0.0)
        writer.write_nifti(Path(f"{stem}_res-{res}_T1w.nii.gz"), t1w, affine)
        writer.write_nifti(Path(f"{stem}_res-{res}_desc-brain_mask.nii.gz"),
                           (phantom.atlas_labels(labels) > 0).astype(np.uint8), affine)
        if res != "01":
            continue
        for tissue, prob in phantom.tissue_probabilities(labels).items():
            writer.write_nifti(Path(f"{stem}_res-01_label-{tissue}_probseg.nii.gz"), prob,
                               affine)
        images = atlas_images(labels, xyz)
        writer.write_nifti(Path(f"{stem}_res-01_seg-aseg_dseg.nii.gz"), images["aseg"], affine)
        schaefer = f"{stem}_res-01_atlas-Schaefer2018_desc-100Parcels7Networks_dseg.nii.gz"
        writer.write_nifti(Path(schaefer), images["schaefer"], affine)
        writer.write_nifti(Path(f"{stem}_res-01_atlas-MASSP20_dseg.nii.gz"), images["massp"],
                           affine)
    writer.write_table(Path(f"{stem}_atlas-Schaefer2018_desc-100Parcels7Networks_dseg.tsv"),
                       _label_table(SCHAEFER_NAMES))
    writer.write_table(Path(f"{stem}_res-01_atlas-MASSP20_dseg.tsv"), _label_table(_MASSP_NAMES))
    writer.write_sidecar(folder / "template_description.json", {
        "Identifier": DEFAULT_TEMPLATE, "Name": "ketpet_bids phantom posing as "
        "ICBM 152 Nonlinear Asymmetric v. 2009c", "BIDSVersion": "1.1.0", "res": grids,
        "KetpetBidsDeformation": {**asdict(deformation), "note": "template point p shows "
                                  "phantom point p / scale + u(p); see "
                                  "ketpet_bids.sim.templateflow.Deformation"}})
    return root

