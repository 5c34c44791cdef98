"""Thin nipype interfaces for reference masks and regional TACs (numerics in ``core``)."""

from __future__ import annotations

import json
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
from ketpet_bids.core.regions import (
    NAMED_REFERENCES,
    as_label_array,
    normalise_name,
    read_label_table,
    reference_mask,
    resample_nearest,
)
from ketpet_bids.core.tacs import fraction_weights, read_matrix, regional_means, unmixed_means
from ketpet_bids.errors import InputError


def load_labels(path: str) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Integer label array and image of a label NIfTI (InputError if not integer-valued)."""
    img = nib.load(path)
    return as_label_array(np.asanyarray(img.dataobj), path), img


class _ReferenceMaskInputSpec(BaseInterfaceInputSpec):
    dseg = File(exists=True, mandatory=True, desc="T1w-space label image")
    dseg_tsv = File(exists=True, mandatory=True, desc="label table (index, name)")
    brain_mask = File(exists=True, desc="T1w-space brain mask (restricts 'wholebrain')")
    ref_region = traits.Str("wholebrain", usedefault=True, desc="reference definition")
    erode_mm = traits.Float(0.0, usedefault=True, desc="erosion radius (mm)")


class _ReferenceMaskOutputSpec(TraitedSpec):
    ref_mask = File(exists=True, desc="reference mask (uint8) on the label image's grid")
    ref_json = File(exists=True, desc="reference definition (regions, erosion, volume)")


class ReferenceMask(SimpleInterface):
    """Reference-region mask from a label image and a definition (``core.regions``)."""

    input_spec = _ReferenceMaskInputSpec
    output_spec = _ReferenceMaskOutputSpec

    def _run_interface(self, runtime):
        labels, img = load_labels(self.inputs.dseg)
        table = read_label_table(Path(self.inputs.dseg_tsv))
        brain = None
        if self.inputs.brain_mask:
            mimg = nib.load(self.inputs.brain_mask)
            brain = resample_nearest(np.asanyarray(mimg.dataobj) > 0, mimg.affine,
                                     labels.shape, img.affine)
        definition = self.inputs.ref_region
        mask, indices = reference_mask(labels, table, definition,
                                       zooms=img.header.get_zooms()[:3], brain_mask=brain,
                                       erode_radius_mm=self.inputs.erode_mm)
        cwd = Path(runtime.cwd)
        header = img.header.copy()
        header.set_data_dtype(np.uint8)
        out = nib.Nifti1Image(mask.astype(np.uint8), img.affine, header)
        out.header.set_slope_inter(1, 0)
        nib.save(out, cwd / "ref_mask.nii.gz")
        named = NAMED_REFERENCES.get(normalise_name(definition))
        info = {"Name": definition,
                "Definition": named[0] if named else "union of the listed regions",
                "Regions": [table[i] for i in indices],
                "ErosionMM": self.inputs.erode_mm,
                "VolumeMM3": float(mask.sum() * abs(np.linalg.det(img.affine[:3, :3])))}
        self._results["ref_mask"] = str(cwd / "ref_mask.nii.gz")
        self._results["ref_json"] = str(write_json(cwd / "ref.json", info))
        return runtime


class _RegionalTACsInputSpec(BaseInterfaceInputSpec):
    pet_file = File(exists=True, mandatory=True, desc="3D/4D PET in PET space (Bq/mL)")
    frame_start = traits.List(traits.Float, mandatory=True, desc="frame starts (s)")
    frame_duration = traits.List(traits.Float, mandatory=True, desc="frame durations (s)")
    pet_to_t1w_matrix = File(exists=True, mandatory=True, desc="RAS 4×4 (.txt or .npy)")
    dseg = File(exists=True, mandatory=True, desc="T1w-space label image")
    dseg_tsv = File(exists=True, mandatory=True, desc="label table (index, name)")
    ref_mask = File(exists=True, mandatory=True, desc="T1w-space reference mask")
    ref_json = File(exists=True, mandatory=True, desc="reference definition")
    atlas_name = traits.Str(mandatory=True, desc="atlas name (for the JSON)")
    method = traits.Enum("weighted", "unmix", usedefault=True,
                         desc="fraction-weighted means or unmixing (core.tacs)")


class _RegionalTACsOutputSpec(TraitedSpec):
    tacs_tsv = File(exists=True, desc="frame_start frame_end then one column per region")
    ref_tacs_tsv = File(exists=True, desc="frame_start frame_end then the reference")
    tacs_json = File(exists=True, desc="weights, PET-space region sizes, reference")


class RegionalTACs(SimpleInterface):
    """Fractional-weight regional TACs of every atlas region and of the reference region.

    PET frames are read one at a time (memory grows with one frame).
    """

    input_spec = _RegionalTACsInputSpec
    output_spec = _RegionalTACsOutputSpec

    def _run_interface(self, runtime):
        pet = nib.load(self.inputs.pet_file, keep_file_open=True)
        n_frames = pet.shape[3] if len(pet.shape) == 4 else 1
        start = np.asarray(self.inputs.frame_start, dtype=float)
        duration = np.asarray(self.inputs.frame_duration, dtype=float)
        if not len(start) == len(duration) == n_frames:
            raise InputError(self.inputs.pet_file, f"image has {n_frames} frames but "
                             f"{len(start)} frame starts and {len(duration)} durations")
        pose = read_matrix(Path(self.inputs.pet_to_t1w_matrix))
        labels, img = load_labels(self.inputs.dseg)
        table = read_label_table(Path(self.inputs.dseg_tsv))
        ref, ref_img = load_labels(self.inputs.ref_mask)
        ref_info = json.loads(Path(self.inputs.ref_json).read_text())
        indices = sorted(table)
        geometry = {"pet_shape": pet.shape[:3], "pet_affine": pet.affine, "pet_to_t1w": pose}
        weights = fraction_weights(labels, img.affine, indices, **geometry)
        ref_weights = fraction_weights((ref > 0).astype(np.int32), ref_img.affine, [1],
                                       **geometry)
        if self.inputs.method == "unmix":
            means = unmixed_means(weights.matrix, iter_frames(pet, n_frames))
            overlap = _reference_overlap(labels, img.affine, ref, ref_img.affine, indices)
            overlap[~np.isfinite(means).all(axis=0)] = 0.0   # regions outside the PET
            ref_means = np.nan_to_num(means) @ overlap[:, None] / overlap.sum()
        else:
            both = sparse.vstack([weights.matrix, ref_weights.matrix], format="csr")
            means = regional_means(both, iter_frames(pet, n_frames))
            means, ref_means = means[:, :-1], means[:, -1:]

        times = {"frame_start": start, "frame_end": start + duration}
        cwd = Path(runtime.cwd)
        tacs = pd.DataFrame({**times, **{table[i]: means[:, k] for k, i in enumerate(indices)}})
        ref_tacs = pd.DataFrame({**times, ref_info["Name"]: ref_means[:, 0]})
        self._results["tacs_tsv"] = str(write_tsv(cwd / "tacs.tsv", tacs))
        self._results["ref_tacs_tsv"] = str(write_tsv(cwd / "ref_tacs.tsv", ref_tacs))
        self._results["tacs_json"] = str(write_json(cwd / "tacs.json", _sidecar(
            self.inputs.atlas_name, table, weights, ref_weights, ref_info,
            self.inputs.method)))
        return runtime


def iter_frames(pet: nib.Nifti1Image, n_frames: int):
    """Yield the PET frames one at a time as float32 (X, Y, Z) arrays."""
    if len(pet.shape) == 3:
        yield np.asarray(pet.dataobj, dtype=np.float32)
        return
    for i in range(n_frames):
        yield np.asarray(pet.dataobj[..., i], dtype=np.float32)


def _reference_overlap(labels: np.ndarray, label_affine: np.ndarray, ref: np.ndarray,
                       ref_affine: np.ndarray, indices: list[int]) -> np.ndarray:
    """(n_regions,) label voxels of each region inside the reference mask (label grid)."""
    inside = resample_nearest((ref > 0).astype(np.uint8), ref_affine, labels.shape,
                              label_affine) > 0
    counts = np.bincount(labels[inside], minlength=max(indices) + 1)
    return counts[indices].astype(float)


_WEIGHTING = {
    "weighted": "fractional: each region's mean is sum(w*C)/sum(w) over PET voxels, "
                "w = fraction of the PET voxel inside the region",
    "unmix": "unmixed: regional values c solve (W W^T) c = W C per frame, W = fractions of "
             "each PET voxel inside each region plus a background row 1 - sum(w) on the "
             "voxels the regions touch (a geometric transfer matrix without PSF); the "
             "reference is the volume-weighted mean of the unmixed values of its regions",
}


def _sidecar(atlas: str, table: dict[int, str], weights, ref_weights, ref_info: dict,
             method: str) -> dict:
    """JSON sidecar of the TACs: weighting method, PET-space region sizes, reference."""
    regions = {table[i]: {"Index": i, "PETVoxels": int(n), "PETVolumeMM3": float(v)}
               for i, n, v in zip(weights.indices, weights.n_voxels, weights.volumes_mm3,
                                  strict=True)}
    ref_info = {**ref_info, "PETVoxels": int(ref_weights.n_voxels[0]),
                "PETVolumeMM3": float(ref_weights.volumes_mm3[0])}
    return {
        "Atlas": atlas,
        "Units": "Bq/mL",
        "Method": method,
        "Weighting": (f"{_WEIGHTING[method]}; fractions from "
                      f"{'x'.join(map(str, weights.oversample))} sub-voxel samples mapped "
                      "into the T1w label image through the PET-to-T1w pose"),
        "Oversample": list(weights.oversample),
        "PETVoxelVolumeMM3": weights.voxel_volume_mm3,
        "Regions": regions,
        "ReferenceRegion": ref_info,
    }
