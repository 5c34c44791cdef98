"""Thin nipype interfaces for partial-volume correction (numerics in ``core.pvc``).

:class:`PreparePVC` does the per-run work shared by all methods once (region maps on the
PET grid, background, transfer matrix, reference weights) and stores it in one ``.npz``;
:class:`ApplyPVC` streams the PET frames through one method and writes its TACs, reference
TAC, JSON and (voxelwise methods) the corrected PET, frame by frame.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)
from scipy import sparse

from ketpet_bids.bids.sink import write_json, write_tsv
from ketpet_bids.core.pvc.gtm import with_inverse
from ketpet_bids.core.pvc.psf import GaussianPSF, psf_from_fwhm
from ketpet_bids.core.pvc.regions import (
    EXPLODE_FACTOR,
    PVCRegions,
    reference_weights,
)
from ketpet_bids.core.pvc.registry import PVCSetup, correct, get_method, prepare
from ketpet_bids.core.pvc.spread import regions_from_labels, subvoxels
from ketpet_bids.core.regions import read_label_table, reference_mask, resample_nearest
from ketpet_bids.core.tacs import read_matrix
from ketpet_bids.errors import InputError
from ketpet_bids.interfaces.tacs import iter_frames, load_labels


class _PreparePVCInputSpec(BaseInterfaceInputSpec):
    pet_file = File(exists=True, mandatory=True, desc="PET in PET space (grid only)")
    pet_to_t1w_matrix = File(exists=True, mandatory=True, desc="RAS 4×4 (.txt or .npy)")
    dseg = File(exists=True, mandatory=True, desc="T1w-space label image")
    dseg_tsv = File(exists=True, mandatory=True, desc="label table (index, name)")
    brain_mask = File(exists=True, desc="T1w-space brain mask (restricts 'wholebrain')")
    methods = traits.List(traits.Str, mandatory=True, desc="PVC method labels")
    psf_fwhm_mm = traits.List(traits.Float, mandatory=True, desc="FWHM (mm), 1 or 3 values")
    ref_region = traits.Str("wholebrain", usedefault=True, desc="reference definition")
    spread_grid = traits.Enum("T1w", "PET", usedefault=True,
                              desc="blur regions at the label (T1w) resolution or on the PET "
                                   "grid (PETPVC's model)")


class _PreparePVCOutputSpec(TraitedSpec):
    setup_file = File(exists=True, desc="shared PVC set-up (.npz)")


class PreparePVC(SimpleInterface):
    """Region maps, background, PSF, transfer matrix and reference weights, once per run."""

    input_spec = _PreparePVCInputSpec
    output_spec = _PreparePVCOutputSpec

    def _run_interface(self, runtime):
        pet = nib.load(self.inputs.pet_file)
        labels, img = load_labels(self.inputs.dseg)
        table = read_label_table(Path(self.inputs.dseg_tsv))
        indices = sorted(table)
        psf = psf_from_fwhm(self.inputs.psf_fwhm_mm, pet.affine)
        regions, spread = regions_from_labels(
            labels, img.affine, indices, [table[i] for i in indices], pet.shape[:3],
            pet.affine, read_matrix(Path(self.inputs.pet_to_t1w_matrix)),
            psf if self.inputs.spread_grid == "T1w" else None)
        setup = prepare(regions, psf, self.inputs.methods, spread)
        brain = None
        if self.inputs.brain_mask:
            mimg = nib.load(self.inputs.brain_mask)
            brain = resample_nearest(np.asanyarray(mimg.dataobj) > 0, mimg.affine,
                                     labels.shape, img.affine)
        mask, ref_indices = reference_mask(labels, table, self.inputs.ref_region,
                                           zooms=img.header.get_zooms()[:3],
                                           brain_mask=brain)
        path = Path(runtime.cwd) / "pvc_setup.npz"
        save_setup(path, setup, indices=np.array(indices),
                   ref_weights=reference_weights(labels, mask, indices),
                   ref_regions=np.array([table[i] for i in ref_indices]),
                   ref_name=np.array(self.inputs.ref_region),
                   spread=np.array(_spread_description(self.inputs.spread_grid, psf, img)))
        self._results["setup_file"] = str(path)
        return runtime


def save_setup(path: Path, setup: PVCSetup, **extra: np.ndarray) -> Path:
    """Store a :class:`PVCSetup` (and extra arrays) in one uncompressed ``.npz``."""
    regions, psf, gtm = setup.regions, setup.psf, setup.gtm
    fractions = regions.fractions
    np.savez(path, data=fractions.data, indices_=fractions.indices, indptr=fractions.indptr,
             names=np.array(regions.names), tissues=np.array(regions.tissues),
             pet_shape=np.array(regions.pet_shape), fwhm=np.array(psf.fwhm_mm),
             voxel=np.array(psf.voxel_mm), truncate=psf.truncate,
             spread_data=setup.spread.data, spread_indices=setup.spread.indices,
             spread_indptr=setup.spread.indptr, spread_shape=np.array(setup.spread.shape),
             gtm=np.zeros((0, 0)) if gtm is None else gtm.matrix,
             condition=np.nan if gtm is None else gtm.condition,
             overlap_inverse=setup.overlap_inverse, gm_blurred=setup.gm_blurred,
             wm_core=setup.wm_core, **extra)
    return path


def load_setup(path: Path) -> tuple[PVCSetup, dict[str, np.ndarray]]:
    """Read :func:`save_setup`'s file; returns the set-up and the extra arrays."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    shape = tuple(int(n) for n in arrays.pop("pet_shape"))
    names = tuple(str(n) for n in arrays.pop("names"))
    fractions = sparse.csr_array((arrays.pop("data"), arrays.pop("indices_"),
                                  arrays.pop("indptr")), shape=(len(names), int(np.prod(shape))))
    regions = PVCRegions(fractions=fractions, names=names,
                         tissues=tuple(str(t) for t in arrays.pop("tissues")), pet_shape=shape)
    psf = GaussianPSF(fwhm_mm=tuple(arrays.pop("fwhm").tolist()),
                      voxel_mm=tuple(arrays.pop("voxel").tolist()),
                      truncate=float(arrays.pop("truncate")))
    spread = sparse.csr_array((arrays.pop("spread_data"), arrays.pop("spread_indices"),
                               arrays.pop("spread_indptr")),
                              shape=tuple(int(n) for n in arrays.pop("spread_shape")))
    matrix = arrays.pop("gtm")
    arrays.pop("condition")
    gtm = with_inverse(matrix, regions.active) if matrix.size else None
    setup = PVCSetup(regions=regions, psf=psf, spread=spread, gtm=gtm,
                     overlap_inverse=arrays.pop("overlap_inverse"),
                     gm_blurred=arrays.pop("gm_blurred"), wm_core=arrays.pop("wm_core"))
    return setup, arrays


def _spread_description(grid: str, psf: GaussianPSF, labels: nib.Nifti1Image) -> str:
    """How the regional spread functions were built (for the sidecar)."""
    if grid == "PET":
        return "fractional region maps blurred on the PET grid (PETPVC's model)"
    k = "x".join(str(n) for n in subvoxels(psf, labels.affine))
    return ("region masks blurred on the T1w grid, interpolated linearly at "
            f"{k} sub-voxel centres per PET voxel and averaged")


class _ApplyPVCInputSpec(BaseInterfaceInputSpec):
    setup_file = File(exists=True, mandatory=True, desc="PreparePVC output")
    pet_file = File(exists=True, mandatory=True, desc="3D/4D PET in PET space (Bq/mL)")
    frame_start = traits.List(traits.Float, mandatory=True, desc="frame starts (s)")
    frame_duration = traits.List(traits.Float, mandatory=True, desc="frame durations (s)")
    method = traits.Str(mandatory=True, desc="PVC method label")
    iterations = traits.Either(None, traits.Int, default=None, usedefault=True,
                               desc="maximum iterations (iterative methods)")


class _ApplyPVCOutputSpec(TraitedSpec):
    method = traits.Str(desc="the method label")
    tacs_tsv = File(exists=True, desc="frame_start frame_end then one column per region")
    ref_tacs_tsv = File(exists=True, desc="frame_start frame_end then the reference")
    pvc_pet = File(exists=True, desc="corrected PET (voxelwise) or the input PET (gtm)")
    pvc_json = File(exists=True, desc="method, PSF, iterations, regions, clipping")


class ApplyPVC(SimpleInterface):
    """One PVC method over all frames, streamed (memory grows with one frame)."""

    input_spec = _ApplyPVCInputSpec
    output_spec = _ApplyPVCOutputSpec

    def _run_interface(self, runtime):
        method = get_method(self.inputs.method)
        pet = nib.load(self.inputs.pet_file, keep_file_open=True)
        n_frames = pet.shape[3] if len(pet.shape) == 4 else 1
        start = np.asarray(self.inputs.frame_start, dtype=float)
        duration = np.asarray(self.inputs.frame_duration, dtype=float)
        if not len(start) == len(duration) == n_frames:
            raise InputError(self.inputs.pet_file, f"image has {n_frames} frames but "
                             f"{len(start)} frame starts and {len(duration)} durations")
        setup, extra = load_setup(Path(self.inputs.setup_file))
        if tuple(pet.shape[:3]) != setup.regions.pet_shape:
            raise InputError(self.inputs.pet_file, f"grid {pet.shape[:3]} differs from the "
                             f"PVC set-up's {setup.regions.pet_shape}")
        cwd = Path(runtime.cwd)
        frames = iter_frames(pet, n_frames)
        if method.voxelwise:
            out_path = cwd / f"pvc-{method.label}_pet.nii.gz"
            with FrameWriter(out_path, pet) as writer:
                result = correct(method.label, frames, setup,
                                 iterations=self.inputs.iterations, on_frame=writer.write)
        else:
            out_path = Path(self.inputs.pet_file)
            result = correct(method.label, frames, setup)

        atlas = setup.regions.atlas  # background shells are not TAC columns
        names = [n for n, a in zip(setup.regions.names, atlas, strict=True) if a]
        values = result.values[:, atlas]
        weights = extra["ref_weights"]
        usable = (weights > 0) & np.all(np.isfinite(values), axis=0)
        ref = (values[:, usable] @ weights[usable]) / weights[usable].sum()
        times = {"frame_start": start, "frame_end": start + duration}
        ref_name = str(extra["ref_name"])
        tacs = pd.DataFrame({**times, **{n: values[:, k] for k, n in enumerate(names)}})
        self._results["method"] = method.label
        self._results["tacs_tsv"] = str(write_tsv(cwd / "tacs.tsv", tacs))
        self._results["ref_tacs_tsv"] = str(write_tsv(cwd / "ref_tacs.tsv", pd.DataFrame(
            {**times, ref_name: ref})))
        self._results["pvc_pet"] = str(out_path)
        self._results["pvc_json"] = str(write_json(cwd / "pvc.json", _sidecar(
            method.label, setup, result, extra, iterations=self.inputs.iterations)))
        return runtime


class FrameWriter:
    """Write a float32 NIfTI (.nii.gz) one frame at a time (memory: one frame).

    The header is the source image's (affine, units, timing) with float32 data, slope 1;
    frames are appended in NIfTI (Fortran) order to a gzip stream.
    """

    def __init__(self, path: Path, like: nib.Nifti1Image) -> None:
        self.path = Path(path)
        header = like.header.copy()
        header.set_data_dtype(np.float32)
        header.set_data_shape(like.shape)
        header.set_slope_inter(1.0, 0.0)
        del header.extensions[:]
        header["vox_offset"] = 352
        self._header = header
        self._file = None

    def __enter__(self) -> FrameWriter:
        self._file = gzip.open(self.path, "wb", compresslevel=1)
        self._header.write_to(self._file)  # 348 bytes + the 4-byte extension flag
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one (X, Y, Z) frame."""
        self._file.write(np.asarray(frame, dtype="<f4").tobytes(order="F"))

    def __exit__(self, *exc) -> None:
        self._file.close()


def _sidecar(label: str, setup: PVCSetup, result, extra: dict, iterations) -> dict:
    """JSON sidecar: method, PSF, iterations, regions, background, clipping, reference."""
    method = get_method(label)
    regions = setup.regions
    atlas = regions.atlas
    return {
        "Method": label,
        "MethodDescription": method.description,
        "Units": "Bq/mL",
        "PointSpreadFunction": setup.psf.describe(),
        "RegionalSpreadFunctions": str(extra["spread"]),
        "Iterations": {"Maximum": iterations or method.default_iterations,
                       "RunPerFrame": result.iterations} if method.default_iterations else None,
        "GTMConditionNumber": None if setup.gtm is None else setup.gtm.condition,
        "Regions": {n: {"Index": int(i), "Tissue": t, "PETVoxels": float(s)}
                    for n, i, t, s in zip(np.array(regions.names)[atlas], extra["indices"],
                                          np.array(regions.tissues)[atlas],
                                          regions.sizes[atlas], strict=True)},
        "Background": {
            "Definition": "everything the atlas does not label, cut into shells by distance "
                          "from the labelled tissue on the T1w grid (the last shell is 1 - sum "
                          "of all other fractions), each estimated as one region",
            "Shells": {n: {"PETVoxels": float(s), "TAC": result.values[:, k].tolist()}
                       for k, (n, s) in enumerate(zip(regions.names, regions.sizes,
                                                      strict=True)) if not atlas[k]}},
        "RegionalValues": ("GTM solution" if not method.voxelwise else
                           "fraction-weighted means of the corrected image (GM regions) and "
                           "the assumed compartment activities (others)" if label == "mg" else
                           "fraction-weighted means of the corrected image de-mixed by the "
                           "inverse region-overlap matrix"),
        "Clipping": {**result.clipped,
                     "Rule": f"values below 0 or above {EXPLODE_FACTOR:g} x the frame's "
                             "largest observed value were clipped to that range"},
        "ReferenceRegion": {"Name": str(extra["ref_name"]),
                            "Regions": [str(r) for r in extra["ref_regions"]],
                            "Definition": "T1w-volume-weighted mean of the corrected TACs of "
                                          "the regions in the reference mask"},
    }
